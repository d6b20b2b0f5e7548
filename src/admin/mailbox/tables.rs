//! The files a mailbox change edits — `/etc/passwd`, `/etc/shadow`, the
//! virtusertable, `/etc/mail/quotas`, `/etc/mail/passwd` and the aliases —
//! as the change will leave them, and what they already hold.
//!
//! The texts are edited line by line ([`super::text`]); the questions (is this
//! address taken, which mailbox does it name, is this user name free) are
//! asked of the resolver delivery uses, reading the same texts
//! ([`crate::table::Source::Text`]).  An import plans thousands of
//! mailboxes against one load ([`super::plan`]): each one applied is
//! added to the resolver's tables too, so the next question sees it.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::name::{Name, valid_user};
use super::quota::QuotaSetting;
use super::text::{Text, set_virtual_fields};
use super::{FIRST_UID, HOME, LAST_UID};
use crate::change::Change;
use crate::config::Config;
use crate::exit::{ExitCode, Failure};
use crate::resolve::{DecidedBy, Decision, Resolver};
use crate::table::makemap;
use crate::table::source::{Source, Staging, Unstaged};

/// A user of the passwd file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
    /// Its line in the passwd file (0: from the system's user database).
    pub line: usize,
}

impl SysUser {
    /// Created by mailroom (or like it): no home, no shell, a normal uid.
    pub fn is_mailbox_only(&self) -> bool {
        self.home == HOME && self.shell.ends_with("/nologin") && self.uid >= FIRST_UID
    }
}

/// A mailbox found by its address or name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A system user; `key` is the virtusertable key it was found by.
    System { user: SysUser, key: Option<String> },
    /// A virtual account of `/etc/mail/passwd`.
    Virtual { login: String, line: usize },
}

/// Everything a mailbox change needs to know, loaded once (an import
/// adds thousands of mailboxes against the same tables).
#[derive(Debug)]
pub struct Tables {
    pub(super) passwd: Text,
    pub(super) shadow: Text,
    pub(super) vt: Text,
    pub(super) quotas: Text,
    pub(super) vpasswd: Text,
    pub(super) aliases: Text,
    /// Delivery's resolver over the same texts, and the mailboxes this
    /// change applied.
    pub(super) resolver: Resolver,
    pub(super) used_uids: HashSet<u32>,
    pub(super) max_uid: u32,
    /// Names and addresses planned but not applied yet → where they come
    /// from.
    pub(super) reserved: HashMap<String, String>,
    pub(super) mail_gid: u32,
    pub(super) virtual_owner: Option<(u32, u32)>,
    pub(super) virtual_user: String,
    pub(super) virtual_base: PathBuf,
    /// Where the entries added now come from, for messages ("users.txt:7").
    pub origin: Option<String>,
}

/// `PATH:LINE: TEXT`, the text cut short.
pub(super) fn at(path: &Path, line: usize, text: &str) -> String {
    let mut t = text.trim().to_string();
    if t.chars().count() > 72 {
        t = t.chars().take(69).collect::<String>() + "...";
    }
    format!("{}:{line}: {t}", path.display())
}

impl Tables {
    /// The tables as `change` would leave them.
    pub fn load(cfg: &Config, change: &Change) -> Result<Tables, Failure> {
        Tables::load_with(cfg, change, &|p| change.text(p))
    }

    /// The tables on disk (for reading commands).
    pub fn load_disk(cfg: &Config) -> Result<Tables, Failure> {
        Tables::load_with(cfg, &Unstaged, &|p| match fs::read(p) {
            Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(Failure::io("cannot read", p, &e).hint("run mailroom as root")),
        })
    }

    /// The tables on disk as far as they are readable (for `list` by a
    /// user who may not read `/etc/shadow`).
    pub fn load_readable(cfg: &Config) -> Tables {
        Tables::load_with(cfg, &Unstaged, &|p| {
            Ok(fs::read(p)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default())
        })
        .expect("reading never fails")
    }

    fn load_with(
        cfg: &Config,
        staging: &dyn Staging,
        read: &dyn Fn(&Path) -> Result<String, Failure>,
    ) -> Result<Tables, Failure> {
        let p = &cfg.paths;
        let text = |path: PathBuf| -> Result<Text, Failure> {
            let t = read(&path)?;
            Ok(Text::new(path, t))
        };
        let passwd = text(p.resolve("/etc/passwd"))?;
        let shadow = text(p.resolve("/etc/shadow"))?;
        let vt = text(p.etc_mail("virtusertable"))?;
        let quotas = text(p.etc_mail("quotas"))?;
        let vpasswd = text(p.etc_mail("passwd"))?;
        let aliases = text(p.etc_mail("aliases"))?;
        read(&p.etc_mail("local-host-names"))?;
        read(&p.etc_mail("virtuser-domains"))?;
        let resolver = Resolver::with_source(cfg, &Source::Text(staging)).checking();
        let users = resolver.accounts.users();
        let used_uids: HashSet<u32> = users
            .file()
            .map(|f| f.entries().iter().map(|e| e.user.uid).collect())
            .unwrap_or_default();
        let max_uid = used_uids
            .iter()
            .copied()
            .filter(|u| (FIRST_UID..=LAST_UID).contains(u))
            .max()
            .unwrap_or(FIRST_UID - 1);
        let virtual_owner = users.by_name(&cfg.virtual_user).map(|u| (u.uid, u.gid));
        Ok(Tables {
            passwd,
            shadow,
            vt,
            quotas,
            vpasswd,
            aliases,
            used_uids,
            max_uid,
            reserved: HashMap::new(),
            mail_gid: mail_gid(cfg),
            virtual_owner,
            virtual_user: cfg.virtual_user.clone(),
            virtual_base: cfg.virtual_mailbox_base.clone(),
            origin: None,
            resolver,
        })
    }

    /// Put every changed file into `change`.
    pub fn store(&self, change: &mut Change) {
        for t in [
            &self.passwd,
            &self.shadow,
            &self.vt,
            &self.quotas,
            &self.vpasswd,
            &self.aliases,
        ] {
            if t.dirty {
                change.set(&t.path, t.render());
            }
        }
    }

    /// Put only `/etc/shadow` and `/etc/mail/passwd` into `change` (after
    /// [`Tables::set_hashes`], when other edits were staged since
    /// [`Tables::store`]).
    pub fn store_secrets(&self, change: &mut Change) {
        for t in [&self.shadow, &self.vpasswd] {
            if t.dirty {
                change.set(&t.path, t.render());
            }
        }
    }

    /// Fill in the hash of a mailbox applied without one.
    pub fn set_hashes(&mut self, hashes: &HashMap<String, String>) {
        for t in [&mut self.shadow, &mut self.vpasswd] {
            t.set_hashes(hashes);
        }
    }

    /// The gid of group `mail`.
    pub fn mail_group(&self) -> u32 {
        self.mail_gid
    }

    /// Whether `/etc/passwd` or `/etc/shadow` would change.
    pub fn touches_system_users(&self) -> bool {
        self.passwd.dirty || self.shadow.dirty
    }

    /// Is `domain` local (class w) or virtual?
    pub fn is_known_domain(&self, domain: &str) -> bool {
        let d = &self.resolver.domains;
        d.is_local(domain) || d.is_virtual(domain)
    }

    /// A system user: the passwd file's, or (on the real system) NSS's.
    pub(super) fn user(&self, name: &str) -> Option<SysUser> {
        let (u, line) = self.resolver.accounts.users().find(name)?;
        Some(SysUser {
            name: u.name,
            uid: u.uid,
            gid: u.gid,
            gecos: u.gecos,
            home: u.home,
            shell: u.shell,
            line: line.unwrap_or(0),
        })
    }

    pub(super) fn pending_where(&self) -> String {
        self.origin
            .clone()
            .unwrap_or_else(|| "an entry added by this command".into())
    }

    /// The virtusertable entry on `line`, for messages.
    fn vt_at(&self, line: usize) -> String {
        let text = makemap::entries(&self.vt.text)
            .into_iter()
            .find(|l| l.line == line)
            .map(|l| format!("{} {}", l.written, l.value))
            .unwrap_or_default();
        at(&self.vt.path, line, &text)
    }

    /// The deciding entry, for messages: `FILE:LINE: entry`.
    fn where_(&self, d: &Decision) -> String {
        let line = d.source.as_ref().map(|(_, l)| *l);
        match (&d.by, line) {
            (DecidedBy::Virtusertable { .. }, Some(l)) => self.vt_at(l),
            (DecidedBy::VirtualAccount { login }, Some(l)) => at(
                &self.vpasswd.path,
                l,
                &format!("virtual mailbox account {login}"),
            ),
            (DecidedBy::Alias { name, value }, Some(l)) => {
                let shown = value.split_whitespace().collect::<Vec<_>>().join(" ");
                at(&self.aliases.path, l, &format!("{name}: {shown}"))
            }
            (DecidedBy::SystemUser { name, uid }, Some(l)) => at(
                &self.passwd.path,
                l,
                &format!("system user {name} (uid {uid})"),
            ),
            (DecidedBy::SystemUser { name, uid }, None) => {
                format!("the system user {name} (uid {uid}, from NSS)")
            }
            (_, None) => self.pending_where(),
        }
    }

    /// What already owns `name`, if anything: `FILE:LINE: entry`.  The
    /// entry delivery finds first for the address itself
    /// ([`Decision::owns`]), or a mailbox this change has planned.
    pub fn taken(&self, name: &Name) -> Option<String> {
        let key = name.text();
        if let Some(w) = self.reserved.get(&key) {
            return Some(w.clone());
        }
        let d = self.resolver.resolve(&key).decision?;
        d.owns().then(|| self.where_(&d))
    }

    /// Set the quota of the mailbox `address`; the quotas table's key.
    pub fn set_quota(&mut self, address: &str, setting: &QuotaSetting) -> Result<String, Failure> {
        let key = match self.find(address)? {
            Found::Virtual { login, .. } => {
                // The passwd file's quota field wins over the quotas table:
                // clear it so the table decides.
                if let Some(n) = set_virtual_fields(&self.vpasswd.text, &login, &[(3, "")]) {
                    self.vpasswd.replace(n);
                }
                login
            }
            Found::System { user, .. } => user.name,
        };
        match setting {
            QuotaSetting::Default => {
                if let Some(n) = makemap::remove_entry(&self.quotas.text, &key) {
                    self.quotas.replace(n);
                }
            }
            QuotaSetting::Limit(v) => {
                let n = makemap::set_entry(&self.quotas.text, &key, v);
                self.quotas.replace(n);
            }
        }
        Ok(key)
    }

    /// The virtual account `login`: its line in `/etc/mail/passwd`.
    fn virtual_line(&self, login: &str) -> Option<usize> {
        self.resolver.accounts.virtual_entry(login).map(|e| e.line)
    }

    /// The mailbox `address` (an address or a user/login name) names.
    pub fn find(&self, address: &str) -> Result<Found, Failure> {
        let a = address.trim().to_ascii_lowercase();
        let none = || {
            Failure::new(ExitCode::NoUser, format!("no mailbox {a}"))
                .hint("see mailroom mailbox list")
        };
        if let Some(line) = self.virtual_line(&a) {
            return Ok(Found::Virtual { login: a, line });
        }
        match a.rsplit_once('@') {
            Some((local, domain)) => {
                if let Some(hit) = self.resolver.virtusertable.get(&a) {
                    let v = hit.value.trim().to_ascii_lowercase();
                    // (An aliases entry of the same name is its forward.)
                    if valid_user(&v)
                        && let Some(u) = self.user(&v)
                    {
                        return Ok(Found::System {
                            user: u,
                            key: Some(a),
                        });
                    }
                    if let Some(line) = self.virtual_line(&v) {
                        return Ok(Found::Virtual { login: v, line });
                    }
                    let w = self.vt_at(hit.line);
                    return Err(Failure::new(
                        ExitCode::NoUser,
                        format!("{a} is not a mailbox: {w}"),
                    )
                    .hint("it is an alias or a forward: see mailroom alias list"));
                }
                if self.resolver.domains.is_local(domain) {
                    return self.find_bare(local).ok_or_else(none);
                }
                Err(none())
            }
            None => self.find_bare(&a).ok_or_else(none),
        }
    }

    fn find_bare(&self, name: &str) -> Option<Found> {
        self.user(name)
            .map(|u| Found::System { user: u, key: None })
    }

    /// Every virtusertable key (lower case) by its value (lower case, a
    /// user or a login): the addresses that lead to each.
    pub fn keys_by_value(&self) -> HashMap<String, Vec<String>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for l in makemap::entries(&self.vt.text) {
            out.entry(l.value.trim().to_ascii_lowercase())
                .or_default()
                .push(l.key);
        }
        out
    }

    /// The virtusertable value of `key`, if it has an entry.
    pub(super) fn vt_value(&self, key: &str) -> Option<String> {
        self.resolver
            .virtusertable
            .get(key)
            .map(|h| h.value.trim().to_string())
    }

    /// Entries other than the mailbox's own that deliver to `target`
    /// (a user name or virtual login): `FILE:LINE: entry` each.
    pub(super) fn references(&self, target: &str, own_keys: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for l in makemap::entries(&self.vt.text) {
            if own_keys.contains(&l.key) {
                continue;
            }
            if self.names_target(&l.value, target) {
                out.push(at(
                    &self.vt.path,
                    l.line,
                    &format!("{} {}", l.written, l.value),
                ));
            }
        }
        for e in crate::aliases::entries(&self.aliases.text) {
            if e.name == target {
                continue; // its own forward, removed with it
            }
            if crate::aliases::split_list(&e.value)
                .iter()
                .any(|t| self.names_target(t, target))
            {
                let text = format!("{}: {}", e.name, e.shown_value());
                out.push(at(&self.aliases.path, e.line, &text));
            }
        }
        out
    }

    /// Does the table value or alias target `t` deliver to `target`?
    fn names_target(&self, t: &str, target: &str) -> bool {
        let t = t
            .trim()
            .trim_start_matches('\\')
            .trim_matches('"')
            .to_ascii_lowercase();
        if t == target {
            return true;
        }
        match t.rsplit_once('@') {
            Some((l, d)) => {
                !target.contains('@')
                    && l == target
                    && self.resolver.domains.is_local(d)
                    && self.resolver.virtusertable.get(&t).is_none()
            }
            None => false,
        }
    }
}

/// The gid of group `mail`: the root's `/etc/group`, else NSS, else 8.
fn mail_gid(cfg: &Config) -> u32 {
    if let Ok(t) = fs::read_to_string(cfg.paths.resolve("/etc/group")) {
        for l in t.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 3
                && f[0] == "mail"
                && let Ok(g) = f[2].parse()
            {
                return g;
            }
        }
    }
    crate::users::group_id("mail").unwrap_or(8)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::Paths;

    pub(crate) fn root(name: &str) -> (PathBuf, Config) {
        let dir = std::env::temp_dir().join(format!(
            "mailroom-mailbox-unit-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        for d in ["etc/mail", "var/mail"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000:Bob:/home/bob:/bin/bash\n\
             info-shop:x:1001:8:x:/nonexistent:/usr/sbin/nologin\n",
        )
        .unwrap();
        fs::write(dir.join("etc/group"), "mail:x:8:\n").unwrap();
        fs::write(
            dir.join("etc/mail/local-host-names"),
            "example.com\nshop.example\n",
        )
        .unwrap();
        fs::write(dir.join("etc/mail/virtuser-domains"), "virt.example\n").unwrap();
        fs::write(
            dir.join("etc/mail/virtusertable"),
            "# header\nsales@example.com\tbob\n",
        )
        .unwrap();
        fs::write(
            dir.join("etc/mail/aliases"),
            "postmaster: root\nbilling: bob\n",
        )
        .unwrap();
        let mut cfg = Config::defaults(Paths::under(&dir));
        cfg.hostname = "test.example".into();
        (dir, cfg)
    }

    #[test]
    fn find_and_references() {
        let (dir, cfg) = root("find");
        fs::write(
            dir.join("etc/mail/virtusertable"),
            "info@shop.example\tinfo-shop\nsales@shop.example info-shop\nfwd@example.com a@b.example\n",
        )
        .unwrap();
        fs::write(
            dir.join("etc/mail/aliases"),
            "team: bob, \\info-shop\ninfo-shop: x@y.example, \\info-shop\n",
        )
        .unwrap();
        let t = Tables::load_disk(&cfg).unwrap();
        let Found::System { user, key } = t.find("INFO@shop.example").unwrap() else {
            panic!()
        };
        assert_eq!(user.name, "info-shop");
        assert_eq!(key.as_deref(), Some("info@shop.example"));
        assert!(user.is_mailbox_only());
        let refs = t.references("info-shop", &["info@shop.example".into()]);
        assert_eq!(refs.len(), 2, "{refs:?}");
        assert!(refs[0].contains("virtusertable:2"));
        assert!(refs[1].contains("aliases:1: team"));
        let e = t.find("fwd@example.com").unwrap_err();
        assert_eq!(e.code, ExitCode::NoUser);
        assert!(e.message.contains("not a mailbox"));
        assert!(matches!(
            t.find("bob@example.com").unwrap(),
            Found::System { .. }
        ));
        assert_eq!(
            t.find("nobody@example.com").unwrap_err().code,
            ExitCode::NoUser
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
