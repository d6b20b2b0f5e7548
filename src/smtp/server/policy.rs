//! Who may send what to whom: the acceptance and relay policy, decided at
//! `MAIL` and `RCPT` time so that mail the box will not deliver is never
//! accepted (no backscatter).
//!
//! * Mail for the box's own domains (local and virtual): each recipient is
//!   resolved at once ([`crate::resolve`]: virtusertable, aliases, users) —
//!   accepted, or refused with sendmail's reply (`550 5.1.1 User unknown`,
//!   a virtusertable `error:`'s own code and text, `452 4.2.2` for a full
//!   mailbox).
//! * Mail for other domains is relayed only for a client that may relay
//!   ([`RelayRight`]): a local program, an authenticated session, a
//!   loopback client, an address with `Connect:... RELAY` in
//!   `/etc/mail/access`, or one that logged in by POP3 within
//!   `pop_before_smtp_window`.  Anyone else: `550 5.7.1 Relaying denied`.
//! * The relay tricks of old are refused the same way: `user%other@local`
//!   (the % hack leads off the box), `"user@other"@local` and `other!user`
//!   (routing inside the local part), `@local:user@other` (a source route:
//!   its final address counts).
//! * `/etc/mail/access` `From:` and `To:` entries can reject, accept or
//!   discard ([`crate::access`]).

use std::net::IpAddr;

use crate::access::{Access, Found, Verdict};
use crate::accounts::MailboxPath;
use crate::address;
use crate::config::Config;
use crate::resolve::{Resolver, Target};
use crate::smtp::Reply;
use crate::state::stamps;

/// Why a client may relay (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayRight {
    LocalProgram,
    Authenticated(String),
    Loopback,
    Access(String),
    PopBeforeSmtp,
}

impl std::fmt::Display for RelayRight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelayRight::LocalProgram => f.write_str("local program"),
            RelayRight::Authenticated(u) => write!(f, "authenticated as {u}"),
            RelayRight::Loopback => f.write_str("loopback client"),
            RelayRight::Access(k) => write!(f, "access {k} RELAY"),
            RelayRight::PopBeforeSmtp => f.write_str("POP before SMTP"),
        }
    }
}

/// An accepted recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Stays on this host (sendmail's `local` mailer) rather than relayed.
    pub local: bool,
    /// `access` said DISCARD: accept and drop.
    pub discard: bool,
    /// The mailing lists it leads to (see [`Policy::check_posting`]).
    pub lists: Vec<String>,
}

/// The policy of one session.
pub struct Policy {
    cfg: Config,
    pub resolver: Resolver,
    access: Access,
    pop_before_smtp_window: u64,
    /// The client found in pop3d's stamps by [`Policy::look_up_pop_login`].
    pop_login: Option<IpAddr>,
}

impl Policy {
    /// Load the tables.  `secrets`: keep virtual accounts' secrets (only a
    /// process that checks passwords itself needs them).
    pub fn load(cfg: &Config, pop_before_smtp_window: u64, secrets: bool) -> Policy {
        let mut resolver = Resolver::for_checking(cfg);
        if !secrets {
            resolver.accounts.forget_secrets();
        }
        Policy {
            cfg: cfg.clone(),
            resolver,
            access: Access::load(cfg),
            pop_before_smtp_window,
            pop_login: None,
        }
    }

    /// Whether `ip` logged in by POP3 within `pop_before_smtp_window`,
    /// remembered for [`Policy::relay_right`].  The stamps are root's
    /// alone ([`stamps`]): the SMTP server asks while it still is root,
    /// before the dialogue starts, so a client must log in by POP3 before
    /// it connects (which is how mail programs and the hosting guides do
    /// it).
    pub fn look_up_pop_login(&mut self, ip: &IpAddr) {
        if self.pop_before_smtp_window == 0 {
            return;
        }
        let now = crate::date::now();
        let window = self.pop_before_smtp_window.min(i64::MAX as u64) as i64;
        if stamps::read(&self.cfg, stamps::POP_BEFORE_SMTP, now, window)
            .contains_key(&ip.to_string())
        {
            self.pop_login = Some(*ip);
        }
    }

    /// What `access` says about the client's address.
    pub fn connect(&self, ip: &IpAddr) -> Option<Found> {
        self.access.connect(ip)
    }

    /// Whether the client at `ip` may relay without logging in.
    pub fn relay_right(&self, ip: &IpAddr) -> Option<RelayRight> {
        if ip.is_loopback() {
            return Some(RelayRight::Loopback);
        }
        if let Some(f) = self.connect(ip)
            && f.verdict == Verdict::Relay
        {
            return Some(RelayRight::Access(f.key));
        }
        if self.pop_login == Some(*ip) {
            return Some(RelayRight::PopBeforeSmtp);
        }
        None
    }

    /// Check an envelope sender (`MAIL FROM`): `Err` is the reply.
    pub fn check_sender(&self, path: &str) -> Result<bool, Reply> {
        if path.is_empty() {
            return Ok(false);
        }
        let m = address::parse_one(path)
            .map_err(|e| Reply::new(553, format!("5.1.7 <{path}>... {e}")))?;
        if m.addr.is_empty() {
            return Err(Reply::new(553, format!("5.1.7 <{path}>... Invalid sender")));
        }
        let (local, _) = address::split_addr(&m.addr);
        if !local.starts_with('"') && local.contains('@') {
            return Err(Reply::new(
                553,
                format!("5.1.3 <{path}>... Invalid route address"),
            ));
        }
        match self.access.from(&m.addr).map(|f| f.verdict) {
            Some(Verdict::Reject(r)) => Err(prefix(r, path)),
            Some(Verdict::Discard) => Ok(true),
            _ => Ok(false),
        }
    }

    /// Check a recipient (`RCPT TO`): accepted, or the reply.  `relay`: the
    /// session may relay.  `size`: the size the client declared, if any.
    pub fn check_recipient(
        &self,
        path: &str,
        relay: bool,
        size: Option<u64>,
    ) -> Result<Accepted, Reply> {
        let refuse = |code: u16, dsn: &str, text: &str| {
            Err(Reply::new(code, format!("{dsn} <{path}>... {text}")))
        };
        let denied = || refuse(550, "5.7.1", "Relaying denied");
        if path.is_empty() {
            return refuse(553, "5.0.0", "User address required");
        }
        let m = match address::parse_one(path) {
            Ok(m) if !m.addr.is_empty() => m,
            Ok(_) => return refuse(553, "5.1.3", "User address required"),
            Err(e) => return refuse(553, "5.1.3", &e.to_string()),
        };
        let mut relay = relay;
        let mut discard = false;
        match self.access.to(&m.addr).map(|f| f.verdict) {
            Some(Verdict::Reject(r)) => return Err(prefix(r, path)),
            Some(Verdict::Relay) => relay = true,
            Some(Verdict::Discard) => discard = true,
            _ => {}
        }
        let domains = &self.resolver.domains;
        let (local_raw, domain) = address::split_addr(&m.addr);
        let local = address::unquote_local(local_raw);
        if !relay {
            // Routing hidden in the local part leads off the box.
            let quoted_route = local_raw.starts_with('"') && local.contains(['@', '%', '!']);
            if local.contains('!') || quoted_route {
                return denied();
            }
            // The % hack, followed to the end: where does it lead?
            let mut next = m.addr.clone();
            loop {
                let (l, d) = address::split_addr(&next);
                let l = address::unquote_local(l);
                match d {
                    Some(d) if !domains.is_local(d) && !domains.is_virtual(d) => return denied(),
                    Some(_) if !l.contains('@') => match l.rfind('%') {
                        Some(p) => next = format!("{}@{}", &l[..p], &l[p + 1..]),
                        None => break,
                    },
                    _ => break,
                }
            }
        }
        let local_domain = match domain {
            None => true,
            Some(d) => domains.is_local(d) || domains.is_virtual(d),
        };
        if !local_domain {
            return Ok(Accepted {
                local: false,
                discard,
                lists: Vec::new(),
            });
        }
        let res = self.resolver.resolve(&m.addr);
        let good = res
            .finals
            .iter()
            .filter(|f| !matches!(f.target, Target::Error(_)))
            .count();
        if good == 0 && !res.includes_unread {
            if let Some((_, r)) = res.errors().find(|(_, r)| !r.temporary) {
                return refuse(r.code, &r.dsn, &r.text);
            }
            if let Some((_, r)) = res.errors().next() {
                return refuse(r.code.max(450), &r.dsn, &r.text);
            }
            return refuse(550, "5.1.1", "User unknown");
        }
        // A full mailbox is refused now rather than bounced later — when
        // no destination has room.
        #[derive(PartialEq)]
        enum Room {
            Fits,
            Full,
            Never,
        }
        let rooms: Vec<Room> = res
            .finals
            .iter()
            .filter_map(|f| match &f.target {
                Target::Mailbox { account, .. } if account.quota > 0 => {
                    // As delivery holds it: plus the warnings' bytes.
                    let q = account.quota.saturating_add(crate::quota::state::allowance(
                        &self.cfg,
                        account.mailbox.path(),
                    ));
                    Some(match mailbox_usage(&account.mailbox) {
                        Some(_) if size.is_some_and(|s| s > q) => Room::Never,
                        Some(u) if u >= q || size.is_some_and(|s| u + s > q) => Room::Full,
                        _ => Room::Fits,
                    })
                }
                Target::Error(_) => None,
                _ => Some(Room::Fits),
            })
            .collect();
        if !rooms.is_empty() && !rooms.contains(&Room::Fits) {
            return if rooms.contains(&Room::Full) {
                refuse(452, "4.2.2", "Mailbox full")
            } else {
                refuse(552, "5.2.2", "Message too large for the mailbox's quota")
            };
        }
        Ok(Accepted {
            local: true,
            discard,
            lists: res.lists,
        })
    }

    /// May envelope sender `sender` post to the lists `ok` leads to?
    /// Refused now (550 5.7.1) rather than bounced later: over SMTP only
    /// the envelope sender counts (the runner also accepts a member's
    /// `From:` for mail submitted on this host).
    pub fn check_posting(&self, ok: &Accepted, sender: &str, path: &str) -> Result<(), Reply> {
        for name in &ok.lists {
            if let Ok(Some(list)) = crate::lists::List::load(&self.cfg, name)
                && let Err(why) = list.may_post(sender, &[], &self.cfg.hostname)
            {
                return Err(Reply::new(550, format!("5.7.1 <{path}>... {why}")));
            }
        }
        Ok(())
    }
}

/// `access`'s reply with the address in it, as sendmail words it.
fn prefix(r: Reply, path: &str) -> Reply {
    let text = r.lines.join(" ");
    match text.split_once(' ') {
        Some((dsn, rest)) if r.enhanced().is_some() => {
            Reply::new(r.code, format!("{dsn} <{path}>... {rest}"))
        }
        _ => Reply::new(r.code, format!("<{path}>... {text}")),
    }
}

/// Bytes in a mailbox now, when this process can see (mbox: its size;
/// Maildir: its `maildirsize` or a count).
fn mailbox_usage(mailbox: &MailboxPath) -> Option<u64> {
    match mailbox {
        MailboxPath::Mbox(p) => match std::fs::metadata(p) {
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(0),
            Err(_) => None,
        },
        MailboxPath::Maildir(p) => crate::mailbox::maildir::usage(p).ok(),
    }
}
