//! Where mail for an address goes: sendmail 8's resolution, exactly.
//!
//! Used by `deliver`, by `sendmail -bv`, by the SMTP server's RCPT check,
//! by the queue runner and by `mailroom explain`.
//!
//! For each address:
//!
//! 1. **Domains.**  An unqualified name is local.  A domain is *local*
//!    (class `{w}`) when it is in `/etc/mail/local-host-names`, is the host
//!    name (or its first label), `localhost`, or one of the host's own
//!    address literals (`[192.0.2.1]`); it is *virtual* (class `{VirtHost}`)
//!    when it is in `/etc/mail/virtuser-domains`.  Anything else is remote.
//! 2. **virtusertable** ([`virtuser`]), for local and virtual domains only:
//!    a local name goes on to step 3, an address is resolved again (at most
//!    50 rewrites), `error:` entries are errors.  With no entry, a local
//!    domain is dropped (`bob@example.com` → `bob`), and a virtual-only
//!    domain is relayed.  mailroom's virtual accounts (`/etc/mail/passwd`,
//!    see [`crate::accounts`]) are found between the user-specific keys
//!    and the domain-wide catch-alls, so an account always gets its mail.
//!    On this host's own domains and for unqualified names the local part
//!    is first read as sendmail's parse rules read it: a lone quoted string
//!    without white space loses its quotes (`"Sales.Team"` is
//!    `sales.team`, [`crate::address::dequote_local`]), and routing left in it
//!    (`"a@b"`, the % hack `user%host`) is followed.  Virtual domains keep
//!    the local part as written; their table keys are looked up without
//!    quotes.
//! 3. **aliases** ([`crate::aliases`]): `user+detail`, `user+*`, `user`,
//!    lower-cased (`"John Smith"` is the name `"john smith"`); a backslash
//!    anywhere in the name (`\bob`, `"e\ve"`) skips them;
//!    values are lists of local names, addresses, `\user` (no further
//!    aliasing), `"|program"`, `/file` and `:include:/path`; `owner-LIST`
//!    becomes the envelope sender of LIST's mail; an alias naming itself
//!    delivers to the user; a loop that leaves nobody to deliver to is an
//!    error.
//! 4. **users**: system accounts (names lower-cased, as sendmail's local
//!    mailer does), then virtual accounts; then `~/.forward`, read as the
//!    user and ignored unless the user owns it and it is not group- or
//!    world-writable.
//!
//! Programs and files are allowed only from aliases, `:include:` files and
//! `.forward` files, never as envelope addresses, and run as the
//! controlling user: `default_user` for `/etc/mail/aliases`, the file's
//! owner for an `:include:`, the user for a `.forward`.
//!
//! A [`Resolution`] holds the destinations, the steps (with the file and
//! line of each, for `mailroom explain`) and the entry that first decided
//! where the address goes ([`Decision`]: what the admin commands call the
//! address's owner).  The resolver reads its tables through a
//! [`Source`]: the files on disk, or the texts an admin change is staging
//! ([`Resolver::with_source`]): the commands' "does this address exist,
//! who owns it" is this same code, checked by the same golden table
//! (`tests/resolution/`).
//!
//! The code: `domains` (step 1), [`virtuser`] (step 2's lookup), `walk`
//! (one element after another; steps 1 and 2), `local` (steps 3 and 4),
//! `include` (`:include:` and `.forward` files, programs and files),
//! `outcome` (what comes out).

mod domains;
mod include;
mod local;
mod outcome;
pub mod transport;
pub mod virtuser;
mod walk;

use std::collections::HashSet;

use crate::accounts::Accounts;
use crate::config::Config;
use crate::exit::ExitCode;
use crate::table::{Source, Syntax, Table};
use crate::users::UserDb;

pub use domains::Domains;
pub use outcome::{DecidedBy, Decision, Final, Owner, Refusal, Resolution, Step, StepKind, Target};
use walk::{Origin, Run};

/// Deepest alias/include/forward nesting followed.
const MAX_DEPTH: usize = 20;
/// Most virtusertable rewrites of one address (sendmail's ruleset limit).
const MAX_REWRITES: usize = 50;

/// What the resolver knows: domains, tables, accounts.
#[derive(Debug)]
pub struct Resolver {
    cfg: Config,
    pub domains: Domains,
    pub virtusertable: Table,
    pub aliases: Table,
    pub accounts: Accounts,
    /// Only checking (submission, SMTP RCPT): `:include:` and `.forward`
    /// files are not read, so that a process without the privileges to
    /// read them does not take them for errors.
    check_only: bool,
    /// The SRS secret, read when first needed.
    srs: std::sync::OnceLock<Option<crate::srs::Secret>>,
    /// Where mailbox copies go, read when first needed.
    transports: std::sync::OnceLock<transport::Transports>,
}

impl Resolver {
    /// Load everything resolution needs from the disk.  `may_rebuild`:
    /// this process may rebuild stale table indexes (it can write
    /// `/etc/mail`); it first finishes a change a crash interrupted
    /// ([`crate::change::recover_if_idle`]).
    pub fn new(cfg: &Config, may_rebuild: bool) -> Resolver {
        if may_rebuild {
            crate::change::recover_if_idle(cfg);
        }
        Resolver::load(cfg, &Source::Disk, may_rebuild)
    }

    /// Load everything resolution needs from `source`: the files on disk,
    /// or as a change being staged leaves them ([`Source::Text`]: what an
    /// admin command asks about).  Rebuilds no index.
    pub fn with_source(cfg: &Config, source: &Source) -> Resolver {
        Resolver::load(cfg, source, false)
    }

    fn load(cfg: &Config, source: &Source, may_rebuild: bool) -> Resolver {
        let users = UserDb::from_source(&cfg.paths, source);
        Resolver {
            virtusertable: source.table(
                &cfg.paths.etc_mail("virtusertable"),
                Syntax::Makemap,
                may_rebuild,
            ),
            aliases: source.table(&cfg.paths.etc_mail("aliases"), Syntax::Aliases, may_rebuild),
            accounts: Accounts::load_from(cfg, users, source),
            domains: Domains::load_from(cfg, source),
            cfg: cfg.clone(),
            check_only: false,
            srs: std::sync::OnceLock::new(),
            transports: std::sync::OnceLock::new(),
        }
    }

    /// Where mailbox copies go: files, or an LMTP server.
    pub fn transports(&self) -> &transport::Transports {
        self.transports
            .get_or_init(|| transport::Transports::load(&self.cfg))
    }

    /// A resolver that only checks addresses (see `check_only`).
    pub fn for_checking(cfg: &Config) -> Resolver {
        Resolver::new(cfg, false).checking()
    }

    /// This resolver, only checking addresses from now on (see
    /// `check_only`).
    pub fn checking(mut self) -> Resolver {
        self.check_only = true;
        self
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The host's SRS secret ([`crate::srs`]), if it can be read.
    pub fn srs_secret(&self) -> Option<&crate::srs::Secret> {
        self.srs
            .get_or_init(|| crate::srs::Secret::load(&self.cfg))
            .as_ref()
    }

    /// Is `domain` one of this host's names (class `{w}`)?
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.domains.is_local(domain)
    }

    /// Is `domain` a virtual domain (class `{VirtHost}`)?
    pub fn is_virtual_domain(&self, domain: &str) -> bool {
        self.domains.is_virtual(domain)
    }

    /// Resolve an envelope recipient.
    pub fn resolve(&self, recipient: &str) -> Resolution {
        let mut run = Run {
            r: self,
            res: Resolution::default(),
            seen: HashSet::new(),
            loop_seen: false,
        };
        run.element(
            recipient.trim(),
            &Origin::envelope(),
            &mut Vec::new(),
            &None,
            0,
        );
        if run.res.finals.is_empty() && run.loop_seen {
            run.res.steps.push(Step {
                text: "aliasing/forwarding loop broken".to_string(),
                source: None,
                kind: StepKind::Error,
            });
            run.res.finals.push(Final {
                printable: recipient.trim().to_string(),
                target: Target::Error(Refusal::new(
                    554,
                    "5.4.6",
                    "aliasing/forwarding loop broken",
                    ExitCode::Usage,
                )),
                sender: None,
                via: None,
                list: None,
            });
        }
        run.res
    }

    /// Does mail for `addr` reach a destination?  Resolved as delivery
    /// resolves it: no error, not handed back to a domain of this host (a
    /// virtual domain's address no entry takes would be relayed to its MX,
    /// this host), and something found (or, when only checking, an
    /// `:include:` not read).  What the admin commands ask of a target.
    pub fn reaches(&self, addr: &str) -> bool {
        let res = self.resolve(addr);
        let back_here = res.finals.iter().any(|f| match &f.target {
            Target::Remote { host, .. } => {
                let h = host.trim_end_matches('.');
                self.domains.is_local(h) || self.domains.is_virtual(h)
            }
            _ => false,
        });
        res.ok() && !back_here && (!res.finals.is_empty() || res.includes_unread)
    }

    fn owner_named(&self, name: &str) -> Option<Owner> {
        let u = self.accounts.users().by_name(name)?;
        Some(Owner {
            name: u.name,
            uid: u.uid,
            gid: u.gid,
            home: u.home,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::source::{Overlay, Unstaged};

    /// A root whose tables are only staged texts.
    fn staged_site() -> (
        std::path::PathBuf,
        Config,
        Vec<(&'static str, &'static str)>,
    ) {
        let dir = std::env::temp_dir().join(format!("mr-resolve-decide-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc/mail")).unwrap();
        let mut cfg = Config::defaults(crate::config::Paths::under(&dir));
        cfg.hostname = "host.test".into();
        cfg.forward_files = false;
        cfg.probe_interfaces = false;
        let texts = vec![
            (
                "/etc/passwd",
                "root:x:0:0::/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\nvmail:x:999:8::/var/mail:/usr/sbin/nologin\n",
            ),
            ("/etc/mail/local-host-names", "example.com\n"),
            ("/etc/mail/virtuser-domains", "shop.example\nvirt.example\n"),
            (
                "/etc/mail/virtusertable",
                "info@shop.example\tbob\n@shop.example\terror:5.1.1:550 User unknown\nold+*@example.com x@remote.test\n",
            ),
            ("/etc/mail/aliases", "postmaster: root\nsales: bob\n"),
            ("/etc/mail/passwd", "v@virt.example:{PLAIN}x:::\n"),
        ];
        (dir, cfg, texts)
    }

    #[test]
    fn the_first_deciding_entry_is_named_with_its_line() {
        let (dir, cfg, texts) = staged_site();
        let mut staged = Overlay::new(&Unstaged);
        for (p, t) in &texts {
            staged.set(&cfg.paths.resolve(p), *t);
        }
        let r = Resolver::with_source(&cfg, &Source::Text(&staged)).checking();
        let decision = |a: &str| r.resolve(a).decision;
        let d = decision("info@shop.example").unwrap();
        assert!(d.owns());
        assert_eq!(d.source, Some((cfg.paths.etc_mail("virtusertable"), 1)));
        let d = decision("nosuch@shop.example").unwrap();
        assert!(matches!(
            d.by,
            DecidedBy::Virtusertable {
                catch_all: true,
                ..
            }
        ));
        assert!(!d.owns());
        let d = decision("bob@example.com").unwrap();
        assert_eq!(
            d.by,
            DecidedBy::SystemUser {
                name: "bob".into(),
                uid: 1000
            }
        );
        assert_eq!(d.source, Some((cfg.paths.resolve("/etc/passwd"), 2)));
        assert!(d.owns());
        assert!(!decision("bob+x@example.com").unwrap().owns());
        let d = decision("Sales").unwrap();
        assert!(matches!(d.by, DecidedBy::Alias { ref name, .. } if name == "sales"));
        assert_eq!(d.source, Some((cfg.paths.etc_mail("aliases"), 2)));
        assert!(!decision("old+y@example.com").unwrap().owns());
        let d = decision("v@virt.example").unwrap();
        assert!(matches!(d.by, DecidedBy::VirtualAccount { .. }) && d.owns());
        assert_eq!(decision("x@virt.example"), None);
        assert_eq!(decision("far@remote.test"), None);

        // Reaching somewhere: as delivery resolves it.
        assert!(r.reaches("info@shop.example"));
        assert!(r.reaches("bob+x@example.com"));
        assert!(r.reaches("far@remote.test"));
        assert!(!r.reaches("nosuch@shop.example"), "refused");
        assert!(!r.reaches("x@virt.example"), "relayed back to this host");
        assert!(!r.reaches("nobody@example.com"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
