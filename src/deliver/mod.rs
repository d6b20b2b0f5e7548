//! Local delivery: resolve each recipient ([`crate::resolve`]) and deliver
//! every final target — mailbox, program, file — as its owner; hand remote
//! targets back to the queue.
//!
//! ## Modules
//!
//! `account.rs`: a mailbox copy (spamc, the filters, then the inbox or a
//! folder); `lmtp.rs`: mailbox copies handed to an LMTP server instead
//! (`mailbox_transport`, mailertable `lmtp:`); `program.rs`: `|program` targets; `file.rs`: `/file` targets;
//! `as_user.rs`: the switch to the target's owner.
//!
//! ## Privileges
//!
//! Started as root (by the queue runner), `deliver` writes each mailbox
//! and `/file` target with the target's user's file identity *before*
//! opening anything of that user's: the delivering thread takes it
//! (the user's groups plus `mail` for the spool's dotlocks, fsgid, fsuid,
//! no capabilities; verified, and given back after:
//! [`crate::privs::FilesAs`]), or, if the thread cannot, a child switches
//! fully (`setresgid`, `setresuid`) and reports back over a pipe.
//! Programs always run in a child that becomes the user.  Not started as
//! root (tests, `make demo`, a user running it by hand), it delivers as
//! itself.
//!
//! ## What is written
//!
//! Every mailbox copy gets `Return-Path: <sender>` and `Delivered-To:
//! <mailbox>` first; an existing `Delivered-To:` for the same mailbox means
//! a forwarding loop (5.4.6).  Programs (on standard input) and `/file`
//! targets get `Return-Path:`.  `/dev/null` discards.
//!
//! ## Filters
//!
//! Before a mailbox copy is written, the message goes through spamc when
//! configured and then the rule files ([`crate::filter`]); the decision
//! picks the inbox, a folder, nowhere (logged) or a 5.7.1 bounce, and may
//! add forwards, which are reported as extra targets only once the local
//! copy is safe (a retry would otherwise forward twice).  Only the
//! filters' reading of a user's file needs the user's privileges; it is
//! done by [`crate::privs::read_file_as`], so filtering happens here in
//! the parent, which can log.
//!
//! ## Outcomes
//!
//! Each final target ends as delivered, forwarded (a remote address for
//! the queue), deferred (4.x.x: lock busy, disk full, over quota within
//! `over_quota_defer` of submission, a program exiting 75) or failed
//! (5.x.x), with an enhanced status code and a text for the bounce.
//!
//! ## Mailing lists
//!
//! A target reached through a list is not delivered here: once per list
//! the posting rule is checked ([`crate::lists::List::may_post`]; a refusal
//! fails the list's address once, 5.7.1, to the poster) and the target is
//! reported as [`Outcome::List`], for the queue to deliver as a copy of the
//! message from `owner-LIST` with `List-Id:`/`List-Post:`.  So members get
//! the same message whether local or remote, and every bounce of that copy
//! goes to the list's owner.

mod account;
mod as_user;
mod file;
pub mod lmtp;
mod program;

use std::os::fd::RawFd;
use std::path::Path;

use account::{Copy, to_account};
pub use as_user::switches_users;

use crate::accounts::Account;
use crate::config::Config;
use crate::mailbox::{Failure, Message};
use crate::resolve::{Final, Owner, Resolver, Target};

/// What happened to one final target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// A remote address the queue must send to (from an alias or
    /// `.forward`), with the envelope sender to use if not the message's.
    Forward {
        address: String,
        sender: Option<String>,
    },
    /// Reached through mailing list `name` ([`crate::lists`]), which
    /// let the message in: the queue sends this target a copy of its own,
    /// under the list's envelope sender and with the list's headers.
    List {
        name: String,
    },
    Deferred(Failure),
    Failed(Failure),
}

/// The result for one final target of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The recipient as given.
    pub recipient: String,
    /// The final target as sendmail prints it (`\bob`, `"|prog"`, ...).
    pub printable: String,
    /// What the target is ("mailbox /var/mail/bob", ...).
    pub what: String,
    pub outcome: Outcome,
    /// How to address this same target on a later attempt without
    /// resolving it again: `\bob`, `"|program"`, `/file`, an address.
    pub again: String,
    /// The controlling user a later attempt needs (programs and files).
    pub ctl: Option<Owner>,
    /// The envelope sender for this target when not the message's
    /// (owner-LIST).
    pub sender: Option<String>,
    /// A quota warning this copy queued for the mailbox's owner
    /// ([`crate::quota::warning`]), for the runner to deliver next.
    pub warning: Option<crate::queue::QueueId>,
}

/// One recipient to deliver to.
#[derive(Debug, Clone)]
pub struct Rcpt {
    pub address: String,
    /// The controlling user for `|program` and `/file` recipients taken
    /// from a queue file's `C` record (only honoured for a root caller).
    pub ctl: Option<Owner>,
}

/// The message and its envelope.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub sender: &'a str,
    /// When the message was submitted (seconds since the epoch).
    pub arrival: i64,
    pub message: &'a Message,
    /// The queue id, for log lines.
    pub queue_id: Option<&'a str>,
    /// An earlier attempt at this message died midway: look for the copy
    /// it may already have put in each mailbox before writing another.
    pub redelivery: bool,
    /// The queue job's locked control file, when a queue runner delivers:
    /// a delivery child keeps it open, so the job's `flock` outlives a
    /// runner killed while the child writes, and no other runner retries
    /// the job (and writes a second copy) until the child is done.
    pub job_lock: Option<RawFd>,
    /// The queue job's LMTP reply journal (`lfID`, see `lmtp.rs`): the
    /// mailboxes an LMTP server already accepted this message for.
    pub lmtp_journal: Option<&'a Path>,
}

impl Request<'_> {
    /// The open files a delivery child keeps: the message, and the job's
    /// lock.
    pub(super) fn child_keeps(&self) -> Vec<RawFd> {
        let mut keep = vec![self.message.as_raw_fd()];
        keep.extend(self.job_lock);
        keep
    }
}

/// Deliver to every recipient; one report per final target.
pub fn deliver(resolver: &Resolver, req: &Request<'_>, rcpts: &[Rcpt]) -> Vec<Report> {
    let cfg = resolver.config();
    let delivered_to = existing_delivered_to(req.message);
    let mut reports = Vec::new();
    // One copy per destination, however many recipients lead to it.
    let mut seen = std::collections::HashSet::new();
    // Each list's verdict on this message: Ok(true) = a list that lets it
    // in, Ok(false) = no (longer a) list.
    let mut lists: std::collections::HashMap<String, Result<bool, Failure>> =
        std::collections::HashMap::new();
    // Mailbox copies for an LMTP server, sent together at the end.
    let mut pending: Vec<lmtp::Pending> = Vec::new();
    for rcpt in rcpts {
        let mut finals = finals_for(resolver, rcpt);
        // A refused member carries no sender: give it its list's.
        let list_senders: Vec<(String, String)> = finals
            .iter()
            .filter_map(|f| Some((f.list.clone()?, f.sender.clone()?)))
            .collect();
        for f in finals.iter_mut().filter(|f| f.sender.is_none()) {
            if let Some((_, s)) = list_senders
                .iter()
                .find(|(l, _)| Some(l) == f.list.as_ref())
            {
                f.sender = Some(s.clone());
            }
        }
        let mut refused: Vec<String> = Vec::new();
        // A recipient that leads to one mailbox only is that mailbox's
        // address (its quota warning names it).
        let sole = finals.len() == 1;
        for f in finals {
            let verdict = f.list.as_ref().map(|name| {
                let v = lists
                    .entry(name.clone())
                    .or_insert_with(|| list_verdict(cfg, req, name));
                (name.clone(), v.clone())
            });
            if let Some((name, Err(fail))) = &verdict {
                // Once per list and recipient, named by the list.
                if !refused.contains(name) {
                    refused.push(name.clone());
                    reports.push(Report {
                        recipient: rcpt.address.clone(),
                        printable: rcpt.address.clone(),
                        what: format!("list {name}"),
                        outcome: if fail.temporary {
                            Outcome::Deferred(fail.clone())
                        } else {
                            Outcome::Failed(fail.clone())
                        },
                        again: rcpt.address.clone(),
                        ctl: None,
                        sender: None,
                        warning: None,
                    });
                }
                continue;
            }
            if !seen.insert(f.target.key(&f.printable)) {
                continue;
            }
            let mut warning = None;
            let (what, outcome, forwards) = match &verdict {
                // Errors too: the copy fails them again, to the owner.
                Some((name, Ok(true))) => (
                    format!("list {name} member"),
                    Outcome::List { name: name.clone() },
                    Vec::new(),
                ),
                _ => match deliver_final(
                    resolver,
                    req,
                    (&rcpt.address, sole),
                    &f,
                    &delivered_to,
                    &mut warning,
                ) {
                    Copy::Done(what, outcome, forwards) => (what, outcome, forwards),
                    // Its outcome comes with its transaction, below.
                    Copy::Lmtp(what, mut p) => {
                        p.report = reports.len();
                        pending.push(p);
                        let waiting = Failure::temp("4.3.0", "LMTP transaction not run");
                        (what, Outcome::Deferred(waiting), Vec::new())
                    }
                },
            };
            let (again, ctl) = match &f.target {
                Target::Mailbox { account, .. } => (format!("\\{}", account.login), None),
                Target::Program { owner, .. } | Target::File { owner, .. } => {
                    (f.printable.clone(), Some(owner.clone()))
                }
                Target::Remote { address, .. } => (address.clone(), None),
                Target::Error(_) => (f.printable.clone(), None),
            };
            let sender = match (&f.target, &f.sender) {
                (Target::Remote { .. }, None) => srs_sender(resolver, req.sender),
                _ => f.sender.clone(),
            };
            reports.push(Report {
                recipient: rcpt.address.clone(),
                printable: f.printable.clone(),
                what,
                outcome,
                again,
                ctl,
                sender,
                warning,
            });
            for address in forwards {
                if seen.insert(format!("filter forward {}", address.to_ascii_lowercase())) {
                    reports.push(forward_report(resolver, req, &rcpt.address, address));
                }
            }
        }
    }
    if !pending.is_empty() {
        let done = lmtp::run(cfg, req, pending, &mut |i, o| reports[i].outcome = o);
        for (i, forwards) in done {
            let recipient = reports[i].recipient.clone();
            for address in forwards {
                if seen.insert(format!("filter forward {}", address.to_ascii_lowercase())) {
                    reports.push(forward_report(resolver, req, &recipient, address));
                }
            }
        }
    }
    reports
}

/// The report for an address a filter forwards a delivered copy to.
fn forward_report(
    resolver: &Resolver,
    req: &Request<'_>,
    recipient: &str,
    address: String,
) -> Report {
    Report {
        recipient: recipient.to_string(),
        printable: address.clone(),
        what: format!("remote {address}"),
        outcome: Outcome::Forward {
            address: address.clone(),
            sender: None,
        },
        again: address,
        ctl: None,
        sender: srs_sender(resolver, req.sender),
        warning: None,
    }
}

/// The finals of one recipient: resolution, except for program and file
/// recipients that carry a controlling user from the queue.
fn finals_for(resolver: &Resolver, rcpt: &Rcpt) -> Vec<Final> {
    let root_caller = nix::unistd::getuid().is_root();
    if let (Some(owner), true) = (&rcpt.ctl, root_caller) {
        let plain = rcpt.address.trim().trim_matches('"');
        if let Some(cmd) = plain.strip_prefix('|') {
            return vec![Final {
                printable: rcpt.address.clone(),
                target: Target::Program {
                    command: cmd.trim().to_string(),
                    owner: owner.clone(),
                },
                sender: None,
                via: None,
                list: None,
            }];
        }
        if plain.starts_with('/') {
            return vec![Final {
                printable: rcpt.address.clone(),
                target: Target::File {
                    path: plain.to_string(),
                    owner: owner.clone(),
                },
                sender: None,
                via: None,
                list: None,
            }];
        }
    }
    resolver.resolve(&rcpt.address).finals
}

/// May this message go to list `name`'s members?  `Ok(false)`: `name`
/// is not a list (any more).
fn list_verdict(cfg: &Config, req: &Request<'_>, name: &str) -> Result<bool, Failure> {
    let list = match crate::lists::List::load(cfg, name) {
        Ok(Some(l)) => l,
        Ok(None) => return Ok(false),
        Err(e) => return Err(Failure::temp("4.3.0", e)),
    };
    let header = crate::message::Header::parse(&req.message.header_bytes().unwrap_or_default());
    let from: Vec<String> = header
        .all("From")
        .filter_map(|f| crate::address::parse_list(&f.value()).ok())
        .flatten()
        .map(|m| m.addr)
        .collect();
    let sender = req.sender.trim_start_matches('<').trim_end_matches('>');
    list.may_post(sender, &from, &cfg.hostname)
        .map(|()| true)
        .map_err(|why| Failure::perm("5.7.1", why))
}

/// The `Delivered-To:` values already in the message (lower-cased).
fn existing_delivered_to(msg: &Message) -> Vec<String> {
    let h = crate::message::Header::parse(&msg.header_bytes().unwrap_or_default());
    h.all("Delivered-To")
        .map(|f| f.value().to_ascii_lowercase())
        .collect()
}

/// The address a mailbox is known by in `Delivered-To:`.
pub fn mailbox_address(account: &Account, host: &str) -> String {
    if account.login.contains('@') {
        account.login.clone()
    } else {
        format!("{}@{host}", account.login)
    }
}

/// The envelope sender for mail forwarded off the box: an outside
/// sender becomes an SRS address of this host ([`crate::srs`]), so that the
/// next server's SPF check passes and a bounce comes back here.
fn srs_sender(resolver: &Resolver, sender: &str) -> Option<String> {
    let s = sender.trim_start_matches('<').trim_end_matches('>');
    if s.is_empty() || resolver.domains.is_local_address(s) {
        return None;
    }
    let secret = resolver.srs_secret()?;
    let host = &resolver.config().hostname;
    crate::srs::forward_sender(secret, s, host, crate::date::now()).map(|a| format!("<{a}>"))
}

fn qualify_sender(sender: &str, host: &str) -> String {
    if sender.is_empty() || sender == "<>" {
        String::new()
    } else {
        crate::address::qualify(sender.trim_start_matches('<').trim_end_matches('>'), host)
    }
}

/// Deliver to one final target of recipient `rcpt` (`sole`: its only
/// one): what it is, the outcome, and the addresses a filter forwards to
/// — or, for an LMTP mailbox, the copy to send; a quota warning queued
/// goes to `warning`.
fn deliver_final(
    resolver: &Resolver,
    req: &Request<'_>,
    (rcpt, sole): (&str, bool),
    f: &Final,
    delivered_to: &[String],
    warning: &mut Option<crate::queue::QueueId>,
) -> Copy {
    let cfg = resolver.config();
    let host = &cfg.hostname;
    let sender = qualify_sender(f.sender.as_deref().unwrap_or(req.sender), host);
    if let Target::Mailbox { account, .. } = &f.target {
        let domain = lmtp::mailbox_domain(account, host);
        let transport = resolver.transports().for_domain(&domain);
        let whom = (rcpt, sole);
        return to_account(
            cfg,
            req,
            whom,
            account,
            &sender,
            delivered_to,
            transport,
            warning,
        );
    }
    let (what, outcome) = match &f.target {
        Target::Error(r) => {
            let fail = if r.temporary {
                Outcome::Deferred(Failure::temp(&r.dsn, r.text.clone()))
            } else {
                Outcome::Failed(Failure::perm(&r.dsn, r.text.clone()))
            };
            ("error".to_string(), fail)
        }
        Target::Remote { address, .. } => (
            format!("remote {address}"),
            Outcome::Forward {
                address: address.clone(),
                sender: f.sender.clone(),
            },
        ),
        Target::Mailbox { .. } => unreachable!("handled above"),
        Target::Program { command, owner } => {
            let prepend = format!("Return-Path: <{sender}>\n");
            let r = program::to_program(
                cfg,
                command,
                owner,
                &sender,
                &f.printable,
                prepend.as_bytes(),
                req.message,
            );
            (format!("program {command}"), outcome(cfg, req, r))
        }
        Target::File { path, owner } => {
            let prepend = format!("Return-Path: <{sender}>\n");
            let r = file::to_file(
                cfg,
                Path::new(path),
                owner,
                &sender,
                prepend.as_bytes(),
                req,
            );
            (format!("file {path}"), outcome(cfg, req, r))
        }
    };
    Copy::Done(what, outcome, Vec::new())
}

/// Turn a result into an outcome; over quota defers (4.2.2) while the
/// message is younger than `over_quota_defer`, then fails (5.2.2).
pub(super) fn outcome(cfg: &Config, req: &Request<'_>, r: Result<(), Failure>) -> Outcome {
    match r {
        Ok(()) => Outcome::Delivered,
        Err(mut f) if f.over_quota => {
            let age = crate::date::now() - req.arrival;
            if age < cfg.over_quota_defer as i64 {
                f.temporary = true;
                f.dsn = "4.2.2".to_string();
                Outcome::Deferred(f)
            } else {
                Outcome::Failed(f)
            }
        }
        Err(f) if f.temporary => Outcome::Deferred(f),
        Err(f) => Outcome::Failed(f),
    }
}

/// `user:uid:gid[:alias]` (a queue file's C record) or `:alias`/empty.
pub fn parse_ctl(v: &str) -> Option<Owner> {
    let mut f = v.split(':');
    let name = f.next()?.to_string();
    let uid = f.next()?.parse().ok()?;
    let gid = f.next()?.parse().ok()?;
    if name.is_empty() {
        return None;
    }
    let home = crate::users::by_name(&name)
        .map(|u| u.home)
        .unwrap_or_else(|| "/".to_string());
    Some(Owner {
        name,
        uid,
        gid,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Paths;

    fn req<'a>(message: &'a Message, arrival: i64) -> Request<'a> {
        Request {
            sender: "<a@far.example>",
            arrival,
            message,
            queue_id: None,
            redelivery: false,
            job_lock: None,
            lmtp_journal: None,
        }
    }

    #[test]
    fn a_full_mailbox_defers_within_the_grace_period_then_fails() {
        let cfg = Config::defaults(Paths::under("/nonexistent"));
        let msg = Message::from_bytes(b"Subject: x\n\nbody\n").unwrap();
        let now = crate::date::now();
        let full = || Err(Failure::over_quota(900, 200, 1000));
        // Young: 4.2.2, deferred.
        match outcome(&cfg, &req(&msg, now), full()) {
            Outcome::Deferred(f) => assert_eq!((f.dsn.as_str(), f.temporary), ("4.2.2", true)),
            o => panic!("{o:?}"),
        }
        // Older than over_quota_defer: failed with the mailbox's own 5.2.2.
        let old = now - cfg.over_quota_defer as i64 - 1;
        match outcome(&cfg, &req(&msg, old), full()) {
            Outcome::Failed(f) => assert_eq!(f.dsn, "5.2.2"),
            o => panic!("{o:?}"),
        }
        // Other failures keep their kind.
        assert!(matches!(
            outcome(&cfg, &req(&msg, now), Err(Failure::temp("4.3.0", "busy"))),
            Outcome::Deferred(_)
        ));
        assert!(matches!(
            outcome(&cfg, &req(&msg, old), Err(Failure::perm("5.1.1", "gone"))),
            Outcome::Failed(_)
        ));
        assert_eq!(outcome(&cfg, &req(&msg, now), Ok(())), Outcome::Delivered);
    }

    #[test]
    fn senders_are_qualified_and_the_null_sender_stays_empty() {
        assert_eq!(qualify_sender("<>", "mx.example"), "");
        assert_eq!(qualify_sender("", "mx.example"), "");
        assert_eq!(qualify_sender("root", "mx.example"), "root@mx.example");
        assert_eq!(
            qualify_sender("<a@far.example>", "mx.example"),
            "a@far.example"
        );
    }

    #[test]
    fn a_queue_files_controlling_user_is_parsed_or_ignored() {
        let o = parse_ctl("nobody:65534:65534:sales").unwrap();
        assert_eq!((o.name.as_str(), o.uid, o.gid), ("nobody", 65534, 65534));
        assert!(
            parse_ctl(":sales").is_none(),
            "an alias name alone names no user"
        );
        assert!(parse_ctl("").is_none());
        assert!(parse_ctl("eve:x:100").is_none());
    }

    #[test]
    fn a_mailbox_already_named_in_delivered_to_is_a_loop() {
        let msg = Message::from_bytes(
            b"Delivered-To: Bob@mx.example\nDelivered-To: anna@mx.example\nSubject: x\n\nbody\n",
        )
        .unwrap();
        assert_eq!(
            existing_delivered_to(&msg),
            ["bob@mx.example", "anna@mx.example"]
        );
    }
}
