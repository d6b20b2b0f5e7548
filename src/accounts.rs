//! Mailbox accounts: system users, and virtual accounts for addresses that
//! are not system users.
//!
//! ## `/etc/mail/passwd` — virtual mailbox accounts
//!
//! One account per line, colon-separated, `#` comment lines:
//!
//! ```text
//! # login:password:mailbox:quota:full name
//! info@example.com:$y$j9T$...:/var/mail/virtual/example.com/info:200M:Info desk
//! orders@shop.example:{PLAIN}s3cret:::
//! ```
//!
//! * `login` — what the owner types as POP3 user name: an address
//!   (`info@example.com`) or a bare name; case-insensitive.
//! * `password` — a crypt(3) hash (`$y$`, `$6$`, `$5$`, ...), `{PLAIN}` and
//!   the secret itself (needed for APOP), or `*`/`!` for no POP3 login.
//! * `mailbox` — an mbox file, or a Maildir when it ends in `/`; empty for
//!   the default `virtual_mailbox_base/DOMAIN/LOCAL` (mbox).
//! * `quota` — bytes with K/M/G; empty for the default.
//! * `full name` — free text.
//!
//! Every virtual mailbox is owned by one system user, `virtual_user` in
//! mailroom.conf (default `vmail`); delivery and pop3d act as that user.
//! The file holds password hashes: keep it `root:root 0600`.
//!
//! ## `/etc/mail/quotas` — per-mailbox quotas
//!
//! makemap syntax, `LOGIN SIZE`: a system user name or a virtual login and a
//! size with K/M/G (`0` = none); overrides `mailbox_size_limit`.
//! `/etc/mail/passwd`'s quota field, when set, wins over both.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::{Config, MailboxFormat, parse_size};
use crate::table::{Source, Syntax, Table};
use crate::users::{User, UserDb};

/// Where a mailbox lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxPath {
    Mbox(PathBuf),
    Maildir(PathBuf),
}

impl MailboxPath {
    /// The mbox file, or the Maildir's directory.
    pub fn path(&self) -> &std::path::Path {
        match self {
            MailboxPath::Mbox(p) | MailboxPath::Maildir(p) => p,
        }
    }
}

/// An account mail can be delivered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// System user name or virtual login (lower-cased).
    pub login: String,
    /// The system user the mailbox belongs to (the user itself, or
    /// `virtual_user` for a virtual account).
    pub owner: User,
    pub mailbox: MailboxPath,
    /// Size limit in bytes, 0 = none.
    pub quota: u64,
    pub is_virtual: bool,
    /// The password field of a virtual account.
    pub secret: Option<String>,
    pub full_name: String,
}

/// One line of `/etc/mail/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualEntry {
    pub login: String,
    pub secret: String,
    pub mailbox: String,
    pub quota: String,
    pub full_name: String,
    pub line: usize,
}

/// Parse `/etc/mail/passwd`.
pub fn parse_virtual(text: &str) -> Vec<VirtualEntry> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(|(i, l)| {
            let mut f = l.splitn(5, ':');
            let login = f.next()?.trim().to_ascii_lowercase();
            if login.is_empty() {
                return None;
            }
            Some(VirtualEntry {
                login,
                secret: f.next().unwrap_or("").to_string(),
                mailbox: f.next().unwrap_or("").trim().to_string(),
                quota: f.next().unwrap_or("").trim().to_string(),
                full_name: f.next().unwrap_or("").trim().to_string(),
                line: i + 1,
            })
        })
        .collect()
}

/// All accounts: system users plus virtual ones, and quotas.
#[derive(Debug)]
pub struct Accounts {
    users: UserDb,
    virtuals: HashMap<String, VirtualEntry>,
    quotas: Table,
    default_quota: u64,
    format: MailboxFormat,
    mail_spool: PathBuf,
    virtual_user: String,
    virtual_base: PathBuf,
    paths: crate::config::Paths,
}

impl Accounts {
    pub fn load(cfg: &Config, users: UserDb) -> Accounts {
        Accounts::load_from(cfg, users, &Source::Disk)
    }

    /// The accounts as `source` has them (see [`Source`]).  A login given
    /// twice in `/etc/mail/passwd` is the last line's.
    pub fn load_from(cfg: &Config, users: UserDb, source: &Source) -> Accounts {
        let text = source.read_lossy(&cfg.paths.etc_mail("passwd"));
        let virtuals = parse_virtual(&text)
            .into_iter()
            .map(|e| (e.login.clone(), e))
            .collect();
        Accounts {
            users,
            virtuals,
            quotas: source.table(&cfg.paths.etc_mail("quotas"), Syntax::Makemap, false),
            default_quota: cfg.mailbox_size_limit,
            format: cfg.mailbox_format,
            mail_spool: cfg.mail_spool.clone(),
            virtual_user: cfg.virtual_user.clone(),
            virtual_base: cfg.virtual_mailbox_base.clone(),
            paths: cfg.paths.clone(),
        }
    }

    pub fn users(&self) -> &UserDb {
        &self.users
    }

    /// The user database, to stage a user an admin change plans.
    pub fn users_mut(&mut self) -> &mut UserDb {
        &mut self.users
    }

    /// The line of `/etc/mail/passwd` that makes `login` a virtual account.
    pub fn virtual_entry(&self, login: &str) -> Option<&VirtualEntry> {
        self.virtuals.get(&login.to_ascii_lowercase())
    }

    /// Add a virtual account an admin change plans.
    pub fn stage_virtual(&mut self, e: VirtualEntry) {
        self.virtuals.insert(e.login.clone(), e);
    }

    fn quota_for(&self, login: &str) -> u64 {
        self.quotas
            .get(login)
            .and_then(|h| parse_size(h.value))
            .unwrap_or(self.default_quota)
    }

    /// The system user `name` (already lower-cased by the caller, as
    /// sendmail's local mailer does).
    pub fn system(&self, name: &str) -> Option<Account> {
        let user = self.users.by_name(name)?;
        let maildir = self.paths.resolve(&user.home).join("Maildir");
        let mailbox = if self.format == MailboxFormat::Maildir || is_own_dir(&maildir, user.uid) {
            MailboxPath::Maildir(maildir)
        } else {
            MailboxPath::Mbox(self.mail_spool.join(&user.name))
        };
        Some(Account {
            login: user.name.clone(),
            quota: self.quota_for(&user.name),
            full_name: user.full_name(),
            owner: user,
            mailbox,
            is_virtual: false,
            secret: None,
        })
    }

    /// The virtual account `login` (an address or bare name).
    pub fn virtual_account(&self, login: &str) -> Option<Account> {
        let e = self.virtuals.get(&login.to_ascii_lowercase())?;
        let owner = self.users.by_name(&self.virtual_user)?;
        let mailbox = if e.mailbox.is_empty() {
            let (local, domain) = match e.login.rsplit_once('@') {
                Some((l, d)) => (l.to_string(), d.to_string()),
                None => (e.login.clone(), "local".to_string()),
            };
            MailboxPath::Mbox(self.virtual_base.join(domain).join(local))
        } else if e.mailbox.ends_with('/') {
            MailboxPath::Maildir(self.paths.resolve(&e.mailbox))
        } else {
            MailboxPath::Mbox(self.paths.resolve(&e.mailbox))
        };
        let quota = if e.quota.is_empty() {
            self.quota_for(&e.login)
        } else {
            parse_size(&e.quota).unwrap_or(self.default_quota)
        };
        Some(Account {
            login: e.login.clone(),
            owner,
            mailbox,
            quota,
            is_virtual: true,
            secret: Some(e.secret.clone()),
            full_name: e.full_name.clone(),
        })
    }

    /// Forget the virtual accounts' secrets: for a process that only
    /// checks addresses and talks to the network (the SMTP server).
    pub fn forget_secrets(&mut self) {
        for e in self.virtuals.values_mut() {
            e.secret.clear();
        }
    }

    /// Is `login` a virtual account (even if its owner is missing)?
    pub fn has_virtual(&self, login: &str) -> bool {
        self.virtuals.contains_key(&login.to_ascii_lowercase())
    }
}

impl Account {
    /// The directory holding this account's mbox folders (filters'
    /// `folder NAME` is the mbox file `DIR/NAME`):
    ///
    /// * `~/mail/` for a system user whose home exists — what Dovecot uses
    ///   with `mail_location = mbox:~/mail:INBOX=/var/mail/%u`, and mutt's
    ///   and Pine's habit;
    /// * otherwise (virtual accounts, users with home `/nonexistent`)
    ///   `INBOX.folders/` next to the inbox mbox: `/var/mail/bob.folders/`,
    ///   `/var/mail/virtual/example.com/info.folders/`; for Dovecot,
    ///   `mail_location = mbox:/var/mail/%u.folders:INBOX=/var/mail/%u`.
    ///
    /// `None` for a Maildir account (its folders are Maildir++ `.NAME/`).
    pub fn mbox_folders(&self, paths: &crate::config::Paths) -> Option<PathBuf> {
        let MailboxPath::Mbox(inbox) = &self.mailbox else {
            return None;
        };
        let home = paths.resolve(&self.owner.home);
        if !self.is_virtual && self.owner.home != "/" && is_own_dir(&home, self.owner.uid) {
            return Some(home.join("mail"));
        }
        let mut dir = inbox.clone().into_os_string();
        dir.push(".folders");
        Some(PathBuf::from(dir))
    }
}

/// `dir` is a directory owned by `uid` (not a symlink).
fn is_own_dir(dir: &std::path::Path, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(dir) {
        Ok(m) => {
            m.is_dir()
                && (m.uid() == uid
                    || !nix::unistd::geteuid().is_root()
                        && m.uid() == nix::unistd::geteuid().as_raw())
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_file_format() {
        let v = parse_virtual(
            "# comment\nInfo@Example.com:$6$x$y:/var/mail/v/info:200M:Info desk\nbare:{PLAIN}pw:::\n:bad\n",
        );
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].login, "info@example.com");
        assert_eq!(v[0].quota, "200M");
        assert_eq!(v[0].full_name, "Info desk");
        assert_eq!(v[1].secret, "{PLAIN}pw");
        assert_eq!(v[1].line, 3);
    }
}
