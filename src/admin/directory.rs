//! What the admin commands know about the addresses of this host: the
//! entries of the tables with their files and lines (to list them, edit
//! them and name them in messages), and the answers to "does this address
//! reach somewhere" and "who owns it already", which come from the
//! resolver delivery uses ([`crate::resolve`]), reading the files as the
//! change being staged leaves them ([`crate::table::Source::Text`]).

use std::fmt;
use std::path::{Path, PathBuf};

use super::names::Addr;
use crate::accounts::VirtualEntry;
use crate::change::Change;
use crate::config::Config;
use crate::exit::{ExitCode, Failure};
use crate::resolve::{DecidedBy, Decision, Resolver};
use crate::table::source::{Source as TextSource, Staging, Unstaged};
use crate::table::{class, makemap};

/// The virtusertable value of `@D` for a virtual domain without a
/// catch-all (cf/README's idiom): unknown addresses of D are refused with
/// 550 5.1.1, by sendmail 8 as by mailroom.  Without an `@D` entry both
/// take them as remote and relay them to D's MX (this host: a loop).
pub const REFUSAL: &str = "error:5.1.1:550 User unknown";

/// Does this virtusertable value refuse mail (`error:...`, as the resolver
/// reads it)?  An `@D` entry with such a value is not a catch-all: the
/// domain's unknown addresses are refused, none is taken.
pub fn is_refusal(value: &str) -> bool {
    value.trim_start().starts_with("error:")
}

/// Where an entry lives: a file and line (none for the system's user
/// database) and the entry itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub text: String,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.path.display(), self.text),
            None => f.write_str(&self.text),
        }
    }
}

/// Where an aliases entry is, for messages.
fn alias_source(path: &Path, e: &crate::aliases::Entry) -> Source {
    Source {
        path: path.to_path_buf(),
        line: Some(e.line),
        text: format!("{}: {}", e.name, e.shown_value()),
    }
}

/// A domain of this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainKind {
    /// Class `{w}`: `local-host-names`, or the host's own name.
    Local,
    /// Class `{VirtHost}`: `virtuser-domains`.
    Virtual,
}

/// The tables as a change leaves them (or as they are on disk), read
/// through the resolver.
#[derive(Debug)]
pub struct Directory {
    /// Delivery's resolver over the same texts (only checking: it reads
    /// no `:include:` or `.forward` file).
    pub resolver: Resolver,
    pub vut_path: PathBuf,
    /// Every virtusertable entry as written, in file order.
    pub vut: Vec<makemap::Line>,
    pub aliases_path: PathBuf,
    /// Every aliases entry, duplicates included, read as newaliases reads
    /// them.
    pub aliases: Vec<crate::aliases::Entry>,
    pub passwd_path: PathBuf,
    pub vpasswd_path: PathBuf,
    pub virtuals: Vec<VirtualEntry>,
    pub lhn_path: PathBuf,
    pub local_words: Vec<(String, usize)>,
    pub vd_path: PathBuf,
    pub virtual_words: Vec<(String, usize)>,
}

impl Directory {
    /// The files as `change` will leave them.
    pub fn of_change(change: &Change, cfg: &Config) -> Result<Directory, Failure> {
        Directory::staged(cfg, change)
    }

    /// The files as `staging` (a change, or texts over one) leaves them;
    /// a file that cannot be read is an error.
    pub fn staged(cfg: &Config, staging: &dyn Staging) -> Result<Directory, Failure> {
        Directory::load(cfg, &TextSource::Text(staging), true)
    }

    /// The files on disk; unreadable ones count as empty (for listings by
    /// users who may not read everything).
    pub fn on_disk(cfg: &Config) -> Directory {
        Directory::load(cfg, &TextSource::Text(&Unstaged), false).expect("reading never fails")
    }

    fn load(cfg: &Config, source: &TextSource, strict: bool) -> Result<Directory, Failure> {
        let read = |p: &Path| -> Result<String, Failure> {
            match source.read(p) {
                Ok(b) => Ok(b
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()),
                Err(e) if strict => Err(crate::change::failure("read", p, &e)),
                Err(_) => Ok(String::new()),
            }
        };
        let vut_path = cfg.paths.etc_mail("virtusertable");
        let aliases_path = cfg.paths.etc_mail("aliases");
        let passwd_path = cfg.paths.resolve("/etc/passwd");
        let vpasswd_path = cfg.paths.etc_mail("passwd");
        let lhn_path = cfg.paths.etc_mail("local-host-names");
        let vd_path = cfg.paths.etc_mail("virtuser-domains");
        read(&passwd_path)?;
        Ok(Directory {
            vut: makemap::entries(&read(&vut_path)?),
            aliases: crate::aliases::entries(&read(&aliases_path)?),
            virtuals: crate::accounts::parse_virtual(&read(&vpasswd_path)?),
            local_words: class::words(&read(&lhn_path)?),
            virtual_words: class::words(&read(&vd_path)?),
            resolver: Resolver::with_source(cfg, source).checking(),
            vut_path,
            aliases_path,
            passwd_path,
            vpasswd_path,
            lhn_path,
            vd_path,
        })
    }

    /// The virtusertable entry for `key` that counts (the first, as
    /// makemap keeps it): its value and line.
    pub fn vut_get(&self, key: &str) -> Option<(&str, usize)> {
        let hit = self.resolver.virtusertable.get(key)?;
        Some((hit.value, hit.line))
    }

    /// The catch-all of `d`: its `@d` entry, unless that refuses mail
    /// ([`is_refusal`]).
    pub fn catch_all(&self, d: &str) -> Option<(&str, usize)> {
        self.vut_get(&format!("@{d}"))
            .filter(|(v, _)| !is_refusal(v))
    }

    /// The virtusertable entry on `line`, as written.
    fn vut_source_at(&self, line: usize) -> Option<Source> {
        let l = self.vut.iter().find(|l| l.line == line)?;
        Some(Source {
            path: self.vut_path.clone(),
            line: Some(l.line),
            text: format!("{} {}", l.written, l.value),
        })
    }

    /// The aliases entry `name` (as written or as keyed: `"Sales.Team"`
    /// is `sales.team`): the last definition wins, as in sendmail.
    pub fn alias_get(&self, name: &str) -> Option<&crate::aliases::Entry> {
        let key = crate::aliases::name_key(name.trim()).ok()?;
        self.aliases.iter().rev().find(|e| e.name == key)
    }

    /// The system user `name` (sendmail lower-cases local names), from the
    /// passwd file or the system's user database.
    pub fn user(&self, name: &str) -> Option<Source> {
        let (u, line) = self
            .resolver
            .accounts
            .users()
            .find(&name.to_ascii_lowercase())?;
        Some(match line {
            Some(l) => Source {
                path: self.passwd_path.clone(),
                line: Some(l),
                text: format!("system user {} (uid {})", u.name, u.uid),
            },
            None => Source {
                path: self.passwd_path.clone(),
                line: None,
                text: format!(
                    "system user {} (uid {}, from the system's user database)",
                    u.name, u.uid
                ),
            },
        })
    }

    /// The virtual account (`/etc/mail/passwd`) with this login.
    pub fn virtual_account(&self, login: &str) -> Option<Source> {
        let e = self.resolver.accounts.virtual_entry(login)?;
        Some(Source {
            path: self.vpasswd_path.clone(),
            line: Some(e.line),
            text: format!("virtual mailbox account {}", e.login),
        })
    }

    /// Is `d` one of this host's domains, and how (with the file and line
    /// that says so; none for the host's own names)?
    pub fn domain(&self, d: &str) -> Option<(DomainKind, Option<Source>)> {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        let domains = &self.resolver.domains;
        let (kind, path, words) = if domains.is_local(&d) {
            (DomainKind::Local, &self.lhn_path, &self.local_words)
        } else if domains.is_virtual(&d) {
            (DomainKind::Virtual, &self.vd_path, &self.virtual_words)
        } else {
            return None;
        };
        let source = words.iter().find(|(w, _)| *w == d).map(|(_, l)| Source {
            path: path.clone(),
            line: Some(*l),
            text: d.clone(),
        });
        Some((kind, source))
    }

    /// Is `d` a local domain (class `{w}`)?
    pub fn is_local(&self, d: &str) -> bool {
        matches!(self.domain(d), Some((DomainKind::Local, _)))
    }

    /// The entry that owns `address` (an address or a local name) already,
    /// if any: the first entry resolution finds for the address itself
    /// ([`Decision::owns`]): its virtusertable key, virtual account,
    /// aliases name or system user.
    pub fn owner_of(&self, address: &str) -> Option<Source> {
        let d = self.resolver.resolve(address).decision?;
        d.owns().then(|| self.source_of(&d))
    }

    /// Who owns `addr` already (for the uniqueness check), if anyone.
    pub fn owner(&self, addr: &Addr) -> Option<Source> {
        self.owner_of(&addr.key())
    }

    /// Who owns the local name `name`: an alias, a system user, or a
    /// virtual account with a bare login (in sendmail's order).
    pub fn name_owner(&self, name: &str) -> Option<Source> {
        self.owner_of(name)
    }

    /// The deciding entry, for messages.
    fn source_of(&self, d: &Decision) -> Source {
        let (path, line) = match &d.source {
            Some((p, l)) => (p.clone(), Some(*l)),
            None => (self.passwd_path.clone(), None),
        };
        let text = match &d.by {
            DecidedBy::Virtusertable { key, value, .. } => {
                if let Some(s) = line.and_then(|l| self.vut_source_at(l)) {
                    return s;
                }
                format!("{key} {value}")
            }
            DecidedBy::Alias { name, value } => {
                let e = self.aliases.iter().find(|e| Some(e.line) == line);
                if let Some(e) = e {
                    return alias_source(&self.aliases_path, e);
                }
                format!("{name}: {value}")
            }
            DecidedBy::VirtualAccount { login } => format!("virtual mailbox account {login}"),
            DecidedBy::SystemUser { name, uid } if line.is_some() => {
                format!("system user {name} (uid {uid})")
            }
            DecidedBy::SystemUser { name, uid } => {
                format!("system user {name} (uid {uid}, from the system's user database)")
            }
        };
        Source { path, line, text }
    }

    /// Does mail for `local@d` (d one of ours) reach somewhere?  As
    /// delivery resolves it ([`Resolver::reaches`]).
    pub fn address_resolves(&self, local: &str, d: &str) -> bool {
        self.resolver.reaches(&format!("{local}@{d}"))
    }

    /// Is `name` free for a new aliases entry?
    pub fn name_free(&self, name: &str) -> bool {
        self.name_owner(name).is_none()
    }

    /// `base`, else `base-2`, `base-3`, ...: the first free name.
    pub fn free_name(&self, base: &str) -> String {
        if self.name_free(base) {
            return base.to_string();
        }
        (2..)
            .map(|n| super::names::with_suffix(base, n))
            .find(|c| self.name_free(c))
            .expect("some suffix is free")
    }

    /// The entries that mention the local name `name` as a target:
    /// virtusertable values and aliases list elements.
    pub fn references(&self, name: &str) -> Vec<Source> {
        let name = name.to_ascii_lowercase();
        let mut out = Vec::new();
        for l in &self.vut {
            if l.value.eq_ignore_ascii_case(&name) {
                out.push(Source {
                    path: self.vut_path.clone(),
                    line: Some(l.line),
                    text: format!("{} {}", l.written, l.value),
                });
            }
        }
        for e in &self.aliases {
            if e.name == name {
                continue;
            }
            let hit = crate::aliases::split_list(&e.value).iter().any(|t| {
                let t = crate::address::dequote_local(t.trim());
                t.trim_start_matches('\\').eq_ignore_ascii_case(&name)
            });
            if hit {
                out.push(alias_source(&self.aliases_path, e));
            }
        }
        out
    }

    /// The system user behind the mailbox `addr`: the virtusertable's
    /// value for it, or (in a local domain) the local part itself; found
    /// as delivery finds it (the entry that owns the address).
    pub fn mailbox_user(&self, addr: &Addr) -> Result<String, Failure> {
        let shown = addr.key();
        let Some(d) = &addr.domain else {
            return match self.user(&addr.local) {
                Some(_) => Ok(addr.local.clone()),
                None => Err(Failure::new(
                    ExitCode::NoUser,
                    format!("{shown}: no such mailbox (no system user {shown})"),
                )
                .hint("see 'mailroom mailbox list'")),
            };
        };
        let decision = self
            .resolver
            .resolve(&shown)
            .decision
            .filter(Decision::owns);
        match decision.as_ref().map(|x| (&x.by, x)) {
            Some((DecidedBy::Virtusertable { value, .. }, x)) => {
                let v = value.trim();
                let line = x.source.as_ref().map_or(0, |(_, l)| *l);
                let at = format!("{}:{line}", self.vut_path.display());
                if v.contains(['@', ',', ' ', '\t']) || is_refusal(v) {
                    return Err(Failure::new(
                        ExitCode::DataErr,
                        format!("{shown} is an alias, not a mailbox ({at}: {shown} {v})"),
                    )
                    .hint(format!(
                        "change where it goes with 'mailroom alias remove {shown}' and 'mailroom alias add {shown} ...'"
                    )));
                }
                if self.user(v).is_some() {
                    return Ok(v.to_ascii_lowercase());
                }
                Err(Failure::new(
                    ExitCode::DataErr,
                    format!("{shown} is an alias of {v}, not a mailbox ({at}: {shown} {v})"),
                )
                .hint(format!(
                    "change the alias itself ('mailroom alias remove {shown}', then 'mailroom alias add {shown} ...')"
                )))
            }
            Some((DecidedBy::VirtualAccount { .. }, x)) => Err(Failure::new(
                ExitCode::Unavailable,
                format!(
                    "{shown} is a virtual mailbox account ({}): forwards are made for system-user mailboxes only",
                    self.source_of(x)
                ),
            )
            .hint(format!(
                "use an alias instead: 'mailroom alias add {shown} TARGET...' after removing the account"
            ))),
            // A user's forward is an aliases entry of the user's name.
            Some((DecidedBy::Alias { .. }, x)) if self.user(&addr.local).is_none() => {
                Err(Failure::new(
                    ExitCode::DataErr,
                    format!("{shown} is an alias, not a mailbox ({})", self.source_of(x)),
                ))
            }
            Some((DecidedBy::Alias { .. } | DecidedBy::SystemUser { .. }, _)) => {
                Ok(addr.local.clone())
            }
            None if self.domain(d).is_none() => Err(unknown_domain(d)),
            None => Err(
                Failure::new(ExitCode::NoUser, format!("{shown}: no such mailbox")).hint(format!(
                    "create it with 'mailroom mailbox add {shown}', or see 'mailroom mailbox list'"
                )),
            ),
        }
    }
}

fn unknown_domain(d: &str) -> Failure {
    Failure::new(
        ExitCode::NoUser,
        format!("{d} is not a domain of this host"),
    )
    .hint(format!(
        "add it first: 'mailroom domain add {d}' (or --virtual), see 'mailroom domain list'"
    ))
}

/// `d` must be one of this host's domains.
pub fn require_domain(dir: &Directory, d: &str) -> Result<(), Failure> {
    match dir.domain(d) {
        Some(_) => Ok(()),
        None => Err(unknown_domain(d)),
    }
}

/// The refusal of an address `owner` owns already.
pub fn taken(addr: &Addr, owner: &Source, dir: &Directory) -> Failure {
    let shown = addr.key();
    let f = Failure::new(
        ExitCode::DataErr,
        format!("{shown} is already taken: {owner}"),
    );
    if addr.domain.is_none()
        && dir.user(&addr.local).is_some()
        && dir.alias_get(&addr.local).is_none()
    {
        f.hint(format!(
            "to send {shown}'s mail elsewhere use 'mailroom forward set {shown} TARGET...'"
        ))
    } else {
        f.hint(
            "pick another address, or remove that entry first (see 'mailroom alias list', 'mailroom mailbox list')",
        )
    }
}

/// A private root for the admin commands' unit tests: users root, bob and
/// info-shop, the local domain example.com, the virtual domain
/// shop.example.
#[cfg(test)]
pub(crate) fn test_site() -> (PathBuf, Config) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mr-alias-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("etc/mail")).unwrap();
    let w = |p: &str, t: &str| std::fs::write(dir.join(p), t).unwrap();
    w(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\ninfo-shop:x:1001:8::/nonexistent:/usr/sbin/nologin\n",
    );
    w("etc/mail/mailroom.conf", "hostname = host.test.example\n");
    w("etc/mail/local-host-names", "# ours\nexample.com\n");
    w("etc/mail/virtuser-domains", "shop.example\n");
    w(
        "etc/mail/virtusertable",
        "# vut\ninfo@shop.example\tinfo-shop\n",
    );
    w("etc/mail/aliases", "# a\npostmaster: root\n");
    let cfg = Config::load(crate::config::Paths::under(&dir), None).unwrap();
    (dir, cfg)
}

#[cfg(test)]
mod tests {
    use super::super::names::parse_address;
    use super::*;

    #[test]
    fn the_owner_of_an_address_is_named() {
        let (dir, cfg) = test_site();
        let v = Directory::on_disk(&cfg);
        let own = |a: &str| v.owner(&parse_address(a).unwrap()).map(|s| s.to_string());
        let o = own("info@shop.example").unwrap();
        assert!(
            o.ends_with("virtusertable:2: info@shop.example info-shop"),
            "{o}"
        );
        // example.com is local: bob@example.com is the user bob.
        assert!(
            own("bob@example.com")
                .unwrap()
                .contains("passwd:2: system user bob")
        );
        assert!(
            own("postmaster@example.com")
                .unwrap()
                .contains("aliases:2: postmaster: root")
        );
        assert_eq!(own("bob@shop.example"), None);
        assert_eq!(own("nobody-here@example.com"), None);
        assert!(own("postmaster").is_some());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
