//! `mailroom mailbox add|remove|list|passwd|quota`: mailboxes, the POP3
//! accounts of a hosting panel.
//!
//! ## What a mailbox is
//!
//! By default a **system user**, so that real sendmail 8 resolves every
//! address the same way from the files mailroom writes:
//!
//! * `mailbox add info@shop.example` creates the user `info-shop` (the
//!   local part, `-`, the domain's first label; lower case,
//!   `[a-z][a-z0-9_-]*`, at most 32 characters; a name already in use gets
//!   `-2`, `-3`, ...), uid the next free one above the highest in
//!   1000..59999, primary group `mail`, home `/nonexistent`, shell
//!   `/usr/sbin/nologin`, GECOS the address; its `/etc/shadow` line holds a
//!   SHA-512 crypt hash (`$6$`, 16 random salt characters from
//!   `/dev/urandom`, the system's `crypt(3)`); and the virtusertable line
//!   `info@shop.example  info-shop`.  `/etc/passwd`, `/etc/shadow` and the
//!   virtusertable change in one journaled [`Change`] (under `lckpwdf()`),
//!   so an interrupted command leaves all of them old or all new.  The
//!   empty mbox `/var/mail/info-shop` (owner the user, group `mail`, mode
//!   0660) is created after the commit.  The POP3 login is the address.
//! * `mailbox add NAME` (no `@`) creates the system user `NAME`: mail for
//!   `NAME@` every local domain.
//! * `mailbox add ADDRESS --virtual` makes a virtual account in
//!   `/etc/mail/passwd` instead (see [`crate::accounts`]): no system user,
//!   the mailbox `virtual_mailbox_base/DOMAIN/LOCAL` owned by
//!   `virtual_user`.  Only mailroom knows those: real sendmail 8 does not.
//!
//! Passwords are read from the terminal without echo (twice), or one line
//! from stdin with `--password-stdin`; never from the command line.
//!
//! The parts: [`name`] (addresses and user names), [`password`] (reading
//! and hashing), [`pwlock`] (`lckpwdf`), [`tables`] (the files a change
//! edits and what they hold, asked of the resolver), [`text`] (line
//! edits), [`plan`] (new mailboxes), [`quota`], [`files`] (the mbox
//! files), [`list`].

pub mod files;
pub mod list;
pub mod name;
pub mod password;
pub mod plan;
pub mod pwlock;
pub mod quota;
pub mod tables;
pub mod text;

use clap::Subcommand;

use crate::accounts::MailboxPath;
use crate::change::Change;
use crate::config::Config;
use crate::exit::{ExitCode, Failure};
use crate::table::makemap;
use files::remove_mailbox;
pub use files::{create_mailbox, create_mbox};
pub use name::{MAX_USER, Name, parse_name, valid_user};
pub use password::{Secret, check_password, hash_password, read_password};
use plan::shadow_line;
pub use plan::{Plan, PlanKind};
pub use pwlock::PwLock;
pub use quota::{QuotaSetting, human, parse_quota};
pub use tables::{Found, SysUser, Tables};
use text::{
    remove_colon_line, remove_passwd_entry, remove_virtual_line, set_colon_fields,
    set_passwd_fields, set_virtual_fields,
};

/// The range mailbox uids are taken from.
pub const FIRST_UID: u32 = 1000;
pub const LAST_UID: u32 = 59999;
/// Home and shell of a mailbox user: no shell login, no home.
pub const HOME: &str = "/nonexistent";
pub const SHELL: &str = "/usr/sbin/nologin";

const ADD_HELP: &str = "\
Examples:
  mailroom mailbox add info@shop.example
      asks for the password twice; creates the system user info-shop,
      its /etc/shadow hash, the virtusertable line
      'info@shop.example info-shop' and the mbox /var/mail/info-shop
  echo 's3cret' | mailroom mailbox add intern@example.com --password-stdin --quota 200M
  mailroom mailbox add bob
      the system user bob: mail to bob@ every local domain
  mailroom mailbox add orders@virtual.example --virtual
      an account in /etc/mail/passwd (mailroom only; sendmail 8 does not
      know those)

The domain must be known first: mailroom domain add shop.example.
The POP3 login is the address (info@shop.example), or the name for a bare
NAME.";

const MAILBOX_HELP: &str = "\
Examples:
  mailroom mailbox add info@shop.example
  mailroom mailbox list
  mailroom mailbox passwd info@shop.example
  mailroom mailbox quota intern@example.com 200M
  mailroom mailbox remove info@shop.example --keep-mail

Files: /etc/passwd and /etc/shadow (system users), /etc/mail/virtusertable
(address -> user), /etc/mail/quotas (USER SIZE), /etc/mail/passwd (virtual
accounts), /var/mail/USER (the mailboxes).  Every change is one journaled
transaction: an interrupted command leaves the old files or the new ones.";

/// `mailroom mailbox ...`
#[derive(Subcommand, Debug)]
pub enum MailboxAction {
    /// Create a mailbox: a system user (or with --virtual an account in
    /// /etc/mail/passwd), its password and its empty mbox.
    #[command(after_help = ADD_HELP)]
    Add {
        /// local@domain (the domain must be known), or a bare user NAME.
        address: String,
        /// A virtual account in /etc/mail/passwd instead of a system user.
        #[arg(long = "virtual")]
        is_virtual: bool,
        /// Read the password from the first line of stdin (for scripts).
        #[arg(long)]
        password_stdin: bool,
        /// A size limit for the mailbox (200M, 1G; see 'mailbox quota').
        #[arg(long, value_name = "SIZE")]
        quota: Option<String>,
    },
    /// Remove a mailbox: its user (or virtual account), its address, its
    /// quota, its forward, and its mail unless --keep-mail.
    #[command(after_help = "\
Examples:
  mailroom mailbox remove info@shop.example
  mailroom mailbox remove info@shop.example --keep-mail

Other entries that still deliver to the mailbox (aliases, other addresses)
make the command refuse and name them; --force removes the mailbox anyway
and leaves them (mail for them then bounces).  Only users mailroom created
(home /nonexistent, a nologin shell) are removed: login accounts are
userdel's business.")]
    Remove {
        /// The mailbox's address or user name.
        address: String,
        /// Leave the mailbox file (/var/mail/USER) in place.
        #[arg(long)]
        keep_mail: bool,
        /// Remove it even while aliases or other addresses still point at it.
        #[arg(long)]
        force: bool,
    },
    /// List the mailboxes: address, user, quota, usage against it, mailbox file.
    #[command(after_help = "\
Examples:
  mailroom mailbox list
  mailroom mailbox list shop.example
  mailroom mailbox list --json

Mailboxes are the virtusertable's addresses that lead to a system user,
the virtual accounts of /etc/mail/passwd, and the other users with uids in
1000..59999 (every user account is a mail account).  USED is what the quota
counts (an mbox's file; a Maildir with its folders), against the quota
when there is one: 12.3M / 200M (6%).")]
    List {
        /// Only this domain's mailboxes.
        domain: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Set a mailbox's password (POP3 and SMTP AUTH); takes effect at the
    /// next login.
    #[command(after_help = "\
Examples:
  mailroom mailbox passwd info@shop.example
  printf '%s\\n' \"$NEWPW\" | mailroom mailbox passwd info@shop.example --password-stdin

The hash is SHA-512 crypt; system users' goes into /etc/shadow, virtual
accounts' into /etc/mail/passwd.")]
    Passwd {
        /// The mailbox's address or user name.
        address: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set or remove a mailbox's size limit (/etc/mail/quotas).
    #[command(after_help = "\
Examples:
  mailroom mailbox quota intern@example.com 200M
  mailroom mailbox quota intern@example.com unlimited
  mailroom mailbox quota intern@example.com none

SIZE is bytes with K, M or G (powers of 1024).  'unlimited' (or 0) means no
limit at all; 'none' removes the mailbox's own setting, so that the default
(mailbox_size_limit in mailroom.conf) applies.  Mail that would take the
mailbox past its limit is refused.")]
    Quota {
        /// The mailbox's address or user name.
        address: String,
        /// 200M, 1G, unlimited, or none.
        size: String,
    },
}

/// The long help of `mailroom mailbox`.
pub fn mailbox_help() -> &'static str {
    MAILBOX_HELP
}

/// Run `mailroom mailbox ACTION`; returns the exit code.
pub fn run(cfg: &Config, action: MailboxAction) -> i32 {
    let r = match action {
        MailboxAction::Add {
            address,
            is_virtual,
            password_stdin,
            quota,
        } => add(cfg, &address, is_virtual, password_stdin, quota.as_deref()),
        MailboxAction::Remove {
            address,
            keep_mail,
            force,
        } => remove(cfg, &address, keep_mail, force),
        MailboxAction::List { domain, json } => list::list(cfg, domain.as_deref(), json),
        MailboxAction::Passwd {
            address,
            password_stdin,
        } => passwd(cfg, &address, password_stdin),
        MailboxAction::Quota { address, size } => quota(cfg, &address, &size),
    };
    match r {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("mailroom: {f}");
            f.code.code()
        }
    }
}

// ---------------------------------------------------------------------
// The commands.  Each change is a function of an open [`Change`] (the
// lock taken: a caller may look at the files under it first, as the web
// panel does for its stale check) that returns what the command prints;
// the `mailroom` command and the web panel both call them.

/// What a mailbox change did: the lines the command prints, and a
/// failure that came after the change was committed (an account whose
/// mailbox file could not be made).
#[derive(Debug)]
pub struct Done {
    pub notes: Vec<String>,
    pub after: Option<Failure>,
}

/// Print what a change did; its late failure is the command's error.
fn print(done: Result<Done, Failure>) -> Result<(), Failure> {
    let done = done?;
    for n in &done.notes {
        println!("{n}");
    }
    done.after.map_or(Ok(()), Err)
}

fn notes(done: Result<Vec<String>, Failure>) -> Result<Done, Failure> {
    done.map(|notes| Done { notes, after: None })
}

fn add(
    cfg: &Config,
    address: &str,
    is_virtual: bool,
    password_stdin: bool,
    quota: Option<&str>,
) -> Result<(), Failure> {
    // Check before asking for a password (and without holding the lock
    // while someone types).
    Tables::load_disk(cfg)?.plan(address, is_virtual, quota)?;
    let pw = read_password(address.trim(), password_stdin)?;
    let hash = hash_password(&pw.0)?;
    drop(pw);
    print(add_in(
        cfg,
        Change::begin(cfg)?,
        address,
        is_virtual,
        quota,
        &hash,
    ))
}

/// `mailbox add` with the password's `hash`, in `change`: committed,
/// then the mailbox file made.
pub fn add_in(
    cfg: &Config,
    mut change: Change,
    address: &str,
    is_virtual: bool,
    quota: Option<&str>,
    hash: &str,
) -> Result<Done, Failure> {
    let pwlock = if is_virtual {
        None
    } else {
        Some(PwLock::take(cfg)?)
    };
    let mut t = Tables::load(cfg, &change)?;
    let plan = t.plan(address, is_virtual, quota)?;
    t.apply(&plan, Some(hash));
    t.store(&mut change);
    change.commit()?;
    drop(pwlock);
    let mailbox = create_mailbox(cfg, &plan, t.mail_group());
    let mut notes = Vec::new();
    match &plan.kind {
        PlanKind::System { user, uid, .. } => {
            crate::log::info(
                None,
                &format!(
                    "mailroom: mailbox {} added: user {user}, uid {uid}",
                    plan.address
                ),
            );
            notes.push(format!(
                "{}: mailbox added: system user {user} (uid {uid}, group mail)",
                plan.address
            ));
        }
        PlanKind::Virtual { .. } => {
            crate::log::info(
                None,
                &format!("mailroom: virtual mailbox {} added", plan.address),
            );
            notes.push(format!(
                "{}: mailbox added: virtual account in {}",
                plan.address,
                cfg.paths.etc_mail("passwd").display()
            ));
        }
    }
    if let Some(q) = &plan.quota {
        notes.push(format!("  quota: {q}"));
    }
    let after = match mailbox {
        Ok(m) => {
            notes.push(format!("  mailbox: {m}"));
            notes.push(format!("  POP3 login: {}", plan.address));
            None
        }
        Err(e) => Some(
            Failure::new(ExitCode::CantCreat, e)
                .hint("the account exists; delivery creates the mailbox with the first message"),
        ),
    };
    Ok(Done { notes, after })
}

fn remove(cfg: &Config, address: &str, keep_mail: bool, force: bool) -> Result<(), Failure> {
    print(notes(remove_in(
        cfg,
        Change::begin(cfg)?,
        address,
        keep_mail,
        force,
    )))
}

/// `mailbox remove` in `change`: committed, then the mailbox file
/// removed unless `keep_mail`.
pub fn remove_in(
    cfg: &Config,
    mut change: Change,
    address: &str,
    keep_mail: bool,
    force: bool,
) -> Result<Vec<String>, Failure> {
    let pwlock = PwLock::take(cfg)?;
    let mut t = Tables::load(cfg, &change)?;
    let found = t.find(address)?;
    let accounts = &t.resolver.accounts;
    let (target, own_keys, mailbox, what) = match &found {
        Found::Virtual { login, .. } => {
            let mb = accounts.virtual_account(login).map(|a| a.mailbox);
            let mut keys = Vec::new();
            if login.contains('@') {
                keys.push(login.clone());
            }
            (login.clone(), keys, mb, format!("virtual account {login}"))
        }
        Found::System { user, key } => {
            if !user.is_mailbox_only() {
                return Err(Failure::new(
                    ExitCode::NoPerm,
                    format!(
                        "{} is a login account (uid {}, home {}, shell {}), not a mailbox mailroom created",
                        user.name, user.uid, user.home, user.shell
                    ),
                )
                .hint("remove it with userdel; mailroom only removes users with home /nonexistent and a nologin shell"));
            }
            if user.line == 0 {
                return Err(Failure::new(
                    ExitCode::NoPerm,
                    format!(
                        "{} is not in {} (it comes from NSS)",
                        user.name,
                        t.passwd.path.display()
                    ),
                ));
            }
            let mut keys: Vec<String> = key.iter().cloned().collect();
            let own = user.gecos.trim().to_ascii_lowercase();
            if t.vt_value(&own).is_some_and(|v| v == user.name) && !keys.contains(&own) {
                keys.push(own);
            }
            let mb = accounts.system(&user.name).map(|a| a.mailbox);
            (
                user.name.clone(),
                keys,
                mb,
                format!("system user {}", user.name),
            )
        }
    };
    let refs = t.references(&target, &own_keys);
    if !refs.is_empty() && !force {
        return Err(Failure::new(
            ExitCode::DataErr,
            format!(
                "{} still receives mail through: {}",
                address.trim(),
                refs.join("; ")
            ),
        )
        .hint(
            "remove those first (mailroom alias remove ...), or use --force to leave them bouncing",
        ));
    }
    for k in &own_keys {
        if let Some(n) = makemap::remove_entry(&t.vt.text, k) {
            t.vt.replace(n);
        }
    }
    if let Some(n) = makemap::remove_entry(&t.quotas.text, &target) {
        t.quotas.replace(n);
    }
    match &found {
        Found::Virtual { login, .. } => {
            if let Some(n) = remove_virtual_line(&t.vpasswd.text, login) {
                t.vpasswd.replace(n);
            }
        }
        Found::System { user, .. } => {
            if let Some(n) = remove_passwd_entry(&t.passwd.text, &user.name) {
                t.passwd.replace(n);
            }
            if let Some(n) = remove_colon_line(&t.shadow.text, &user.name) {
                t.shadow.replace(n);
            }
            // Its forward (`user: target, \user`) goes with it.
            if let Some(n) = crate::aliases::remove_entry(&t.aliases.text, &user.name) {
                t.aliases.replace(n);
            }
        }
    }
    t.store(&mut change);
    change.commit()?;
    drop(pwlock);
    crate::log::info(
        None,
        &format!("mailroom: mailbox {} removed ({what})", address.trim()),
    );
    let mut notes = vec![format!("{}: mailbox removed ({what})", address.trim())];
    for k in &own_keys {
        notes.push(format!("  address {k}: removed from the virtusertable"));
    }
    for r in &refs {
        notes.push(format!(
            "  warning: still delivers to {target}, which is gone: {r}"
        ));
    }
    match (&mailbox, keep_mail) {
        (Some(MailboxPath::Mbox(p) | MailboxPath::Maildir(p)), true) => {
            notes.push(format!("  mail kept in {}", p.display()))
        }
        (Some(mb), false) => {
            if let Some(line) = remove_mailbox(cfg, mb) {
                notes.push(format!("  {line}"));
            }
        }
        (None, _) => {}
    }
    Ok(notes)
}

fn passwd(cfg: &Config, address: &str, password_stdin: bool) -> Result<(), Failure> {
    Tables::load_disk(cfg)?.find(address)?;
    let pw = read_password(address.trim(), password_stdin)?;
    let hash = hash_password(&pw.0)?;
    drop(pw);
    print(notes(passwd_in(cfg, Change::begin(cfg)?, address, &hash)))
}

/// `mailbox passwd` with the new password's `hash`, in `change`.
pub fn passwd_in(
    cfg: &Config,
    mut change: Change,
    address: &str,
    hash: &str,
) -> Result<Vec<String>, Failure> {
    let pwlock = PwLock::take(cfg)?;
    let mut t = Tables::load(cfg, &change)?;
    let what = match t.find(address)? {
        Found::Virtual { login, .. } => {
            let n = set_virtual_fields(&t.vpasswd.text, &login, &[(1, hash)])
                .ok_or_else(|| Failure::new(ExitCode::NoUser, format!("no mailbox {login}")))?;
            t.vpasswd.replace(n);
            format!("virtual account {login}")
        }
        Found::System { user, .. } => {
            if user.line == 0 {
                return Err(Failure::new(
                    ExitCode::NoPerm,
                    format!(
                        "{} is not in {} (it comes from NSS: LDAP, sssd...)",
                        user.name,
                        t.passwd.path.display()
                    ),
                )
                .hint("change its password where the account lives"));
            }
            let days = (crate::date::now() / 86400).to_string();
            match set_colon_fields(&t.shadow.text, &user.name, &[(1, hash), (2, &days)]) {
                Some(n) => t.shadow.replace(n),
                None => {
                    t.shadow.append(&shadow_line(&user.name, hash));
                }
            }
            // The hash lives in /etc/shadow: the passwd field says so.
            if user.line > 0
                && let Some(n) = set_passwd_fields(&t.passwd.text, &user.name, &[(1, "x")])
            {
                t.passwd.replace(n);
            }
            format!("system user {}", user.name)
        }
    };
    t.store(&mut change);
    change.commit()?;
    drop(pwlock);
    crate::log::info(
        None,
        &format!("mailroom: password of {} changed ({what})", address.trim()),
    );
    Ok(vec![format!(
        "{}: password changed ({what}); it applies from the next login",
        address.trim()
    )])
}

fn quota(cfg: &Config, address: &str, size: &str) -> Result<(), Failure> {
    // A bad size is refused before the lock is taken.
    parse_quota(size)?;
    print(notes(quota_in(cfg, Change::begin(cfg)?, address, size)))
}

/// `mailbox quota ADDRESS SIZE` in `change`.
pub fn quota_in(
    cfg: &Config,
    mut change: Change,
    address: &str,
    size: &str,
) -> Result<Vec<String>, Failure> {
    let setting = parse_quota(size)?;
    let mut t = Tables::load(cfg, &change)?;
    let key = t.set_quota(address, &setting)?;
    t.store(&mut change);
    change.commit()?;
    let a = address.trim();
    let note = match setting {
        QuotaSetting::Default => {
            let d = if cfg.mailbox_size_limit == 0 {
                "unlimited".to_string()
            } else {
                human(cfg.mailbox_size_limit)
            };
            format!("{a}: own quota removed; the default applies (mailbox_size_limit: {d})")
        }
        QuotaSetting::Limit(v) if v == "0" => format!("{a}: quota unlimited"),
        QuotaSetting::Limit(v) => format!("{a}: quota {v}"),
    };
    crate::log::info(
        None,
        &format!("mailroom: quota of {a} set to {size} ({key})"),
    );
    Ok(vec![note])
}
