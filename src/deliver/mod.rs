//! Local delivery: resolve each recipient ([`crate::resolve`]) and deliver
//! every final target — mailbox, program, file — as its owner; hand remote
//! targets back to the queue.
//!
//! ## Privileges
//!
//! Started as root (by the queue runner), `deliver` forks one child per
//! target, and the child switches to the target's user (`setgroups` with
//! the user's groups plus `mail` for the spool's dotlocks, `setresgid`,
//! `setresuid`, verified) *before* opening anything of that user's; the
//! child reports back over a pipe.  Not started as root (tests, `make
//! demo`, a user running it by hand), it delivers as itself.
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

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::accounts::{Account, MailboxPath};
use crate::config::Config;
use crate::mailbox::{self, Failure, Message, maildir, mbox};
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
}

impl Request<'_> {
    /// The open files a delivery child keeps: the message, and the job's
    /// lock.
    fn child_keeps(&self) -> Vec<RawFd> {
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
                    });
                }
                continue;
            }
            if !seen.insert(f.target.key(&f.printable)) {
                continue;
            }
            let (what, outcome, forwards) = match &verdict {
                // Errors too: the copy fails them again, to the owner.
                Some((name, Ok(true))) => (
                    format!("list {name} member"),
                    Outcome::List { name: name.clone() },
                    Vec::new(),
                ),
                _ => deliver_final(cfg, req, &rcpt.address, &f, &delivered_to),
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
            });
            for address in forwards {
                if !seen.insert(format!("filter forward {}", address.to_ascii_lowercase())) {
                    continue;
                }
                reports.push(Report {
                    recipient: rcpt.address.clone(),
                    printable: address.clone(),
                    what: format!("remote {address}"),
                    outcome: Outcome::Forward {
                        address: address.clone(),
                        sender: None,
                    },
                    again: address.clone(),
                    ctl: None,
                    sender: srs_sender(resolver, req.sender),
                });
            }
        }
    }
    reports
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

/// Deliver to one final target: what it is, the outcome, and the
/// addresses a filter forwards to.
fn deliver_final(
    cfg: &Config,
    req: &Request<'_>,
    rcpt: &str,
    f: &Final,
    delivered_to: &[String],
) -> (String, Outcome, Vec<String>) {
    let host = &cfg.hostname;
    let sender = qualify_sender(f.sender.as_deref().unwrap_or(req.sender), host);
    if let Target::Mailbox { account, .. } = &f.target {
        return to_account(cfg, req, rcpt, account, &sender, delivered_to);
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
            let r = to_program(
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
            let r = to_file(
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
    (what, outcome, Vec::new())
}

/// A mailbox copy: spamc, the filters, then the inbox, a folder, nowhere
/// or a bounce.
fn to_account(
    cfg: &Config,
    req: &Request<'_>,
    rcpt: &str,
    account: &Account,
    sender: &str,
    delivered_to: &[String],
) -> (String, Outcome, Vec<String>) {
    use crate::filter::{self, Place, files::Loaded};
    let qid = req.queue_id;
    let addr = mailbox_address(account, &cfg.hostname);
    let inbox = match &account.mailbox {
        MailboxPath::Mbox(p) => format!("mailbox {}", p.display()),
        MailboxPath::Maildir(p) => format!("maildir {}", p.display()),
    };
    if delivered_to.iter().any(|d| *d == addr.to_ascii_lowercase()) {
        let fail = Failure::perm("5.4.6", format!("mail forwarding loop for {addr}"));
        return (inbox, Outcome::Failed(fail), Vec::new());
    }
    let scanned;
    let mut msg = req.message;
    if let Some(spamc) = &cfg.spamc {
        match filter::spamc::scan(
            spamc,
            Duration::from_secs(cfg.spamc_timeout),
            switches_users(cfg),
            &account.owner,
            &account.login,
            req.message,
        ) {
            Ok(m) => {
                scanned = m;
                msg = &scanned;
            }
            Err(why) => crate::log::warning(
                qid,
                &format!("spamc: {why}; delivering to {addr} unscanned"),
            ),
        }
    }
    // From here on the message is the scanned one.
    let scanned_req = Request {
        message: msg,
        ..*req
    };
    let req = &scanned_req;
    let header = crate::message::Header::parse(&msg.header_bytes().unwrap_or_default());
    let decision = match filter::files::load(cfg, account, qid) {
        Loaded::Broken(e) => {
            crate::log::warning(
                qid,
                &format!("filter: {e}; rules not applied, delivered to the inbox of {addr}"),
            );
            filter::Decision {
                place: Place::Inbox,
                by: None,
                forwards: Vec::new(),
            }
        }
        Loaded::Rules(sets) => {
            let recipients = [
                rcpt.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string(),
                addr.clone(),
            ];
            let refs: Vec<&filter::Rules> = sets.iter().collect();
            filter::evaluate(
                &refs,
                &filter::Facts {
                    header: &header,
                    sender,
                    recipients: &recipients,
                    size: msg.len(),
                },
            )
        }
    };
    let by = decision.by.as_deref().unwrap_or("");
    let score = filter::spam_score(&header)
        .map(|s| format!(", spam score {s}"))
        .unwrap_or_default();
    let prepend = format!("Return-Path: <{sender}>\nDelivered-To: {addr}\n");
    let trace_id = req
        .redelivery
        .then(|| msg.header_bytes().ok())
        .flatten()
        .and_then(|h| mailbox::first_received_id(&h));
    let already = trace_id.as_deref().map(|id| {
        (
            mailbox::Already {
                id,
                delivered_to: &addr,
            },
            req.arrival,
        )
    });
    let (what, r) = match &decision.place {
        Place::Reject(text) => {
            crate::log::info(qid, &format!("filter: {addr}: rejected by {by}{score}"));
            let fail = Failure::perm("5.7.1", text.clone());
            return (
                format!("rejected by {by}"),
                Outcome::Failed(fail),
                Vec::new(),
            );
        }
        Place::Nowhere => {
            let what = if decision.forwards.is_empty() {
                format!("discarded by {by}")
            } else {
                format!("not kept, forwarded by {by}")
            };
            crate::log::info(qid, &format!("filter: {addr}: {what}{score}"));
            (what, Ok(()))
        }
        Place::Inbox => (
            inbox,
            to_mailbox(cfg, account, None, sender, prepend.as_bytes(), req, already),
        ),
        Place::Folder(name) => {
            crate::log::info(
                qid,
                &format!("filter: {addr}: into folder {name} by {by}{score}"),
            );
            (
                format!("folder {name} of {inbox}"),
                to_mailbox(
                    cfg,
                    account,
                    Some(name),
                    sender,
                    prepend.as_bytes(),
                    req,
                    already,
                ),
            )
        }
    };
    let outcome = outcome(cfg, req, r);
    let forwards = if outcome == Outcome::Delivered {
        decision.forwards
    } else {
        Vec::new()
    };
    (what, outcome, forwards)
}

/// Turn a result into an outcome; over quota defers (4.2.2) while the
/// message is younger than `over_quota_defer`, then fails (5.2.2).
fn outcome(cfg: &Config, req: &Request<'_>, r: Result<(), Failure>) -> Outcome {
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

/// Does this process switch to each target's user?  Only when it runs as
/// root on the real system; under a private root (tests, `make demo`) or
/// as another user it delivers as itself.
pub fn switches_users(cfg: &Config) -> bool {
    nix::unistd::geteuid().is_root() && cfg.paths.is_system()
}

/// Run `work` as `owner` (uid, gid, name) with `extra` groups: in a child
/// process that switches to them when `switch` (and the user is not who we
/// already are), directly otherwise.  `keep` are the only open files the
/// child keeps (see [`Request::child_keeps`]).
///
/// The child is forked from a threaded runner: another thread may have
/// held a libc lock at the fork (the time zone's, the user database's,
/// syslog's), which the child would wait on forever.  So `work` calls no
/// such function: the `From ` line's local time and the user's groups are
/// worked out before the fork.
fn as_user(
    keep: &[RawFd],
    switch: bool,
    name: &str,
    uid: u32,
    gid: u32,
    extra: &[u32],
    work: impl FnOnce() -> Result<(), Failure>,
) -> Result<(), Failure> {
    if !switch || uid == nix::unistd::geteuid().as_raw() {
        return work();
    }
    let groups = crate::privs::groups_for(name, gid, extra)
        .map_err(|e| Failure::temp("4.3.0", format!("cannot find the groups of {name}: {e}")))?;
    let (rd, wr) =
        nix::unistd::pipe().map_err(|e| Failure::temp("4.3.0", format!("pipe: {}", e.desc())))?;
    // SAFETY: the child switches ids, does the delivery and _exits; it
    // never returns into the caller's code.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(Failure::temp("4.3.0", format!("fork: {}", e.desc()))),
        Ok(nix::unistd::ForkResult::Child) => {
            drop(rd);
            // A copy of the runner's threads' descriptors would keep their
            // queue-file locks and pipe ends alive for as long as this
            // child lives; keep only the result pipe.  What it logs is
            // held and sent back with the result (another thread may have
            // held syslog's lock at the fork); the parent writes it.
            crate::privs::mark_forked_child();
            let mut kept = keep.to_vec();
            kept.push(wr.as_raw_fd());
            crate::privs::close_other_descriptors(&kept);
            let mut out = std::fs::File::from(wr);
            let result = match crate::privs::set_ids(uid, gid, &groups) {
                Ok(()) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                    .unwrap_or_else(|_| Err(Failure::temp("4.3.0", "delivery process failed"))),
                Err(e) => Err(Failure::temp("4.3.0", format!("cannot become {name}: {e}"))),
            };
            // What it logged first, one `L` line each, then the result.
            let mut report = String::new();
            for (level, text) in crate::log::take_held() {
                report.push_str(&format!("L\t{}\t{text}\n", level.letter()));
            }
            let line = match result {
                Ok(()) => "OK\n".to_string(),
                Err(f) => format!(
                    "{}\t{}\t{}\t{}\n",
                    if f.temporary { "T" } else { "P" },
                    if f.over_quota { "Q" } else { "-" },
                    f.dsn,
                    f.text.replace(['\n', '\t'], " ")
                ),
            };
            report.push_str(&line);
            let _ = out.write_all(report.as_bytes());
            drop(out);
            // SAFETY: leave the child without unwinding into the parent's state.
            unsafe { libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(wr);
            let mut s = String::new();
            let _ = std::fs::File::from(rd).read_to_string(&mut s);
            let _ = nix::sys::wait::waitpid(child, None);
            let mut line = "";
            for l in s.lines() {
                match l.strip_prefix("L\t").and_then(|l| l.split_once('\t')) {
                    Some((level, text)) => {
                        let level = crate::log::Level::from_letter(level);
                        crate::log::log(level.unwrap_or(crate::log::Level::Notice), None, text);
                    }
                    None => line = l,
                }
            }
            if line == "OK" {
                return Ok(());
            }
            let parts: Vec<&str> = line.splitn(4, '\t').collect();
            if parts.len() == 4 {
                return Err(Failure {
                    temporary: parts[0] == "T",
                    over_quota: parts[1] == "Q",
                    dsn: parts[2].to_string(),
                    text: parts[3].to_string(),
                });
            }
            Err(Failure::temp("4.3.0", "delivery process died"))
        }
    }
}

fn mail_gid() -> Vec<u32> {
    crate::users::group_id("mail").into_iter().collect()
}

/// Append to an account's mbox, or deliver into its Maildir; into
/// `folder` instead of the inbox when given.  Folders have the inbox's
/// locking and fsync rules; a Maildir's quota counts its folders, an
/// mbox's quota only the inbox file (folders live under the user's home
/// and its file-system quota).
fn to_mailbox(
    cfg: &Config,
    account: &Account,
    folder: Option<&str>,
    sender: &str,
    prepend: &[u8],
    req: &Request<'_>,
    already: Option<(mailbox::Already<'_>, i64)>,
) -> Result<(), Failure> {
    let msg = req.message;
    let keep = req.child_keeps();
    let owner = &account.owner;
    let switch = switches_users(cfg);
    let expect_uid = if switch { Some(owner.uid) } else { None };
    let lock_timeout = Duration::from_secs(cfg.mailbox_lock_timeout);
    let quota = account.quota;
    let host = cfg.hostname.clone();
    match &account.mailbox {
        MailboxPath::Mbox(inbox) => {
            let (path, folders, quota, create_mode) = match folder {
                None => (inbox.clone(), None, quota, 0o660),
                Some(name) => {
                    let Some(dir) = account.mbox_folders(&cfg.paths) else {
                        return Err(Failure::temp("4.3.0", "no folder directory"));
                    };
                    let path = dir.join(name);
                    let parent = path.parent().map(Path::to_path_buf);
                    (path, parent, 0, 0o600)
                }
            };
            // A forked child cannot take the in-process turn; hold it here.
            let _turn = if switch { mbox::turn(&path) } else { None };
            // localtime(3) before the fork (see as_user).
            let from = mbox::from_line(sender, crate::date::now());
            as_user(
                &keep,
                switch,
                &owner.name,
                owner.uid,
                owner.gid,
                // Group mail (for the spool's dotlocks) matters only to a
                // process that switches users: skip the lookup otherwise.
                &if switch { mail_gid() } else { Vec::new() },
                || {
                    if folders.is_none()
                        && account.is_virtual
                        && let Some(parent) = path.parent()
                        && !parent.exists()
                    {
                        std::fs::create_dir_all(parent).map_err(|e| {
                            Failure::from_io(&format!("cannot create {}", parent.display()), &e)
                        })?;
                    }
                    if let Some(dir) = &folders {
                        mailbox::ensure_dir(dir, 0o700).map_err(|e| {
                            Failure::from_io(&format!("cannot create {}", dir.display()), &e)
                        })?;
                    }
                    mbox::append(
                        &path,
                        &mbox::Append {
                            from_line: &from,
                            prepend,
                            message: msg,
                            quota,
                            lock_timeout,
                            owner: expect_uid,
                            create_mode,
                            in_process_turn: !switch,
                            already: already.map(|(a, _)| a),
                        },
                    )
                    .map(|_| ())
                },
            )
        }
        MailboxPath::Maildir(dir) => {
            let dir = dir.clone();
            as_user(
                &keep,
                switch,
                &owner.name,
                owner.uid,
                owner.gid,
                &[],
                || {
                    let d = maildir::Deliver {
                        prepend,
                        message: msg,
                        quota,
                        host: &host,
                        already,
                    };
                    match folder {
                        None => maildir::deliver(&dir, &d),
                        Some(name) => maildir::deliver_folder(&dir, name, &d),
                    }
                    .map(|_| ())
                },
            )
        }
    }
}

/// Append to a `/file` named in an alias, include or `.forward`.
fn to_file(
    cfg: &Config,
    path: &Path,
    owner: &Owner,
    sender: &str,
    prepend: &[u8],
    req: &Request<'_>,
) -> Result<(), Failure> {
    let msg = req.message;
    // "/dev/null" discards, as in sendmail and Postfix.
    if path == Path::new("/dev/null") {
        return Ok(());
    }
    let path: PathBuf = cfg.paths.resolve(path);
    let lock_timeout = Duration::from_secs(cfg.mailbox_lock_timeout);
    let _turn = if switches_users(cfg) {
        mbox::turn(&path)
    } else {
        None
    };
    // localtime(3) before the fork (see as_user).
    let from = mbox::from_line(sender, crate::date::now());
    as_user(
        &req.child_keeps(),
        switches_users(cfg),
        &owner.name,
        owner.uid,
        owner.gid,
        &[],
        || {
            mbox::append(
                &path,
                &mbox::Append {
                    from_line: &from,
                    prepend,
                    message: msg,
                    quota: 0,
                    lock_timeout,
                    owner: None,
                    create_mode: 0o600,
                    in_process_turn: !switches_users(cfg),
                    already: None,
                },
            )
            .map(|_| ())
        },
    )
}

/// Wait for `child` until `deadline`; then kill its process group.
/// `None` when it had to be killed.
fn wait_until(
    child: &mut std::process::Child,
    pid: i32,
    deadline: Instant,
) -> Result<Option<std::process::ExitStatus>, Failure> {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Ok(Some(s)),
            Ok(None) if Instant::now() >= deadline => {
                // SAFETY: signalling the program's own process group.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                let _ = child.wait();
                return Ok(None);
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(e) => {
                return Err(Failure::temp(
                    "4.3.0",
                    format!("waiting for the program: {}", crate::exit::io_reason(&e)),
                ));
            }
        }
    }
}

/// Most program output kept for the bounce.
const PROGRAM_OUTPUT: usize = 4096;

/// Read a pipe to its end in a thread, keeping the first bytes.
fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut r) = r {
            let mut buf = [0u8; 8192];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let room = PROGRAM_OUTPUT - kept.len().min(PROGRAM_OUTPUT);
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
        kept
    })
}

/// Run `|command` as `owner` with the message on standard input.
fn to_program(
    cfg: &Config,
    command: &str,
    owner: &Owner,
    sender: &str,
    recipient: &str,
    prepend: &[u8],
    msg: &Message,
) -> Result<(), Failure> {
    let root = switches_users(cfg) && owner.uid != nix::unistd::geteuid().as_raw();
    let groups = if root {
        crate::privs::groups_for(&owner.name, owner.gid, &[])
            .map_err(|e| Failure::temp("4.3.0", e))?
    } else {
        Vec::new()
    };
    let home = if Path::new(&owner.home).is_dir() {
        owner.home.clone()
    } else {
        "/".to_string()
    };
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &owner.home)
        .env("USER", &owner.name)
        .env("LOGNAME", &owner.name)
        .env("SHELL", "/bin/sh")
        .env("SENDER", sender)
        .env("RECIPIENT", recipient)
        .current_dir(&home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::privs::start_as(&mut cmd, root.then_some((owner.uid, owner.gid, groups)));
    let mut child = cmd.spawn().map_err(|e| {
        Failure::temp(
            "4.3.0",
            format!("cannot start the program: {}", crate::exit::io_reason(&e)),
        )
    })?;
    let pid = child.id() as i32;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_thread = drain(stdout.take());
    let err_thread = drain(stderr.take());
    // Feed the message from its own thread, so that a program that never
    // reads it still meets its timeout (it is killed; the write then fails
    // with EPIPE).  A program that stops reading early is not an error by
    // itself: its exit status decides.
    let deadline = Instant::now() + Duration::from_secs(cfg.program_timeout.max(1));
    let status = std::thread::scope(|scope| {
        if let Some(mut w) = stdin.take() {
            scope.spawn(move || {
                let _ = mailbox::write_message(
                    &mut w,
                    prepend,
                    msg,
                    mailbox::Format {
                        quote_from: false,
                        strip_private: false,
                    },
                );
            });
        }
        wait_until(&mut child, pid, deadline)
    })?;
    let mut output = out_thread.join().unwrap_or_default();
    output.extend(err_thread.join().unwrap_or_default());
    let said = String::from_utf8_lossy(&output)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect::<Vec<_>>()
        .join(" / ");
    let with_output = |text: String| {
        if said.is_empty() {
            text
        } else {
            format!("{text}: {said}")
        }
    };
    let Some(status) = status else {
        return Err(Failure::temp(
            "4.3.0",
            with_output(format!(
                "program timed out after {} seconds",
                cfg.program_timeout
            )),
        ));
    };
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        return Err(Failure::temp(
            "4.3.0",
            with_output(format!("program killed by signal {sig}")),
        ));
    }
    match status.code().unwrap_or(1) {
        0 | 99 => Ok(()),
        // Temporary by sysexits (EX_TEMPFAIL, EX_OSERR, EX_IOERR) and by
        // qmail's convention (111).
        75 => Err(Failure::temp(
            "4.3.0",
            with_output("program deferred (exit 75)".to_string()),
        )),
        71 | 74 | 111 => Err(Failure::temp(
            "4.3.0",
            with_output(format!(
                "program failed temporarily (exit {})",
                status.code().unwrap_or(0)
            )),
        )),
        code => {
            let text = match code {
                64 => "usage error",
                65 => "data format error",
                66 => "cannot open input",
                67 => "User unknown",
                68 => "Host unknown",
                69 => "Service unavailable",
                70 => "internal software error",
                72 => "critical OS file missing",
                73 => "can't create (user) output file",
                76 => "remote error in protocol",
                77 => "permission denied",
                78 => "configuration error",
                _ => "",
            };
            let dsn = match code {
                67 => "5.1.1",
                68 => "5.1.2",
                77 => "5.7.1",
                _ => "5.3.0",
            };
            let t = if text.is_empty() {
                format!("unknown mailer error {code}")
            } else {
                format!("{text} (exit {code})")
            };
            Err(Failure::perm(dsn, with_output(t)))
        }
    }
}

/// `deliver [-f SENDER] [-T ARRIVAL] [-Q QUEUEID] [-q] [-C USER:UID:GID] RECIPIENT...`
///
/// * `-f` envelope sender (default: the caller's login name);
/// * `-T` when the message was submitted (seconds since the epoch; for the
///   over-quota grace period), default now;
/// * `-Q` the queue id, for log lines;
/// * `-q` report mode: one tab-separated line per final target on
///   standard output: `KIND RECIPIENT PRINTABLE AGAIN CTL SENDER DSN TEXT`
///   where KIND is `ok`, `defer`, `fail` or `forward`, AGAIN how to address
///   the target next time, CTL its controlling user, SENDER its envelope
///   sender when not the message's;
/// * `-C USER:UID:GID` the controlling user for the `|program` and `/file`
///   recipients that follow (a queue file's `C` record; root callers only);
///   `-C ''` resets.
///
/// Exit status as sendmail's: 0 all delivered (or handed on), 75 something
/// deferred, else the code of the first failure (67 user unknown, ...).
pub fn main(args: Vec<String>) -> i32 {
    use crate::exit::ExitCode;
    let mut sender: Option<String> = None;
    let mut arrival = crate::date::now();
    let mut qid: Option<String> = None;
    let mut report_mode = false;
    let mut ctl: Option<Owner> = None;
    let mut rcpts: Vec<Rcpt> = Vec::new();
    let usage = |m: &str| -> i32 {
        eprintln!(
            "deliver: {m}; usage: deliver [-f sender] [-T arrival] [-Q id] [-q] [-C user:uid:gid] recipient..."
        );
        ExitCode::Usage.code()
    };
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let mut value = |flag: &str| -> Option<String> {
            if a.len() > flag.len() {
                Some(a[flag.len()..].to_string())
            } else if i < args.len() {
                i += 1;
                Some(args[i - 1].clone())
            } else {
                None
            }
        };
        if a == "--" {
            rcpts.extend(args[i..].iter().map(|r| Rcpt {
                address: r.clone(),
                ctl: ctl.clone(),
            }));
            break;
        } else if a.starts_with("-f") {
            match value("-f") {
                Some(v) => sender = Some(v),
                None => return usage("-f needs a sender"),
            }
        } else if a.starts_with("-T") {
            match value("-T").and_then(|v| v.parse().ok()) {
                Some(v) => arrival = v,
                None => return usage("-T needs a time in seconds"),
            }
        } else if a.starts_with("-Q") {
            qid = value("-Q");
        } else if a == "-q" {
            report_mode = true;
        } else if a.starts_with("-C") {
            let Some(v) = value("-C") else {
                return usage("-C needs user:uid:gid");
            };
            ctl = parse_ctl(&v);
        } else if a.starts_with('-') && a.len() > 1 {
            return usage(&format!("unknown option {a}"));
        } else {
            rcpts.push(Rcpt {
                address: a.clone(),
                ctl: ctl.clone(),
            });
        }
    }
    if rcpts.is_empty() {
        return usage("no recipients");
    }
    let paths = match std::env::var_os(crate::config::ROOT_ENV) {
        Some(r) if !r.is_empty() && !crate::privs::is_elevated() => {
            crate::config::Paths::under(PathBuf::from(r))
        }
        _ => crate::config::Paths::system(),
    };
    let cfg = match Config::load(paths, None) {
        Ok(c) => c,
        Err(f) => {
            eprintln!("deliver: {f}");
            return f.code.code();
        }
    };
    crate::log::init("mailroom-deliver", &cfg.log, &cfg.hostname);
    let sender = sender.unwrap_or_else(|| {
        crate::users::by_uid(nix::unistd::getuid().as_raw())
            .map(|u| u.name)
            .unwrap_or_else(|| "MAILER-DAEMON".to_string())
    });
    let stdin = std::io::stdin();
    let message = match stdin_message(stdin.lock()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "deliver: cannot read the message: {}",
                crate::exit::io_reason(&e)
            );
            return ExitCode::TempFail.code();
        }
    };
    let root = nix::unistd::geteuid().is_root();
    let resolver = Resolver::new(&cfg, root);
    let req = Request {
        sender: &sender,
        arrival,
        message: &message,
        queue_id: qid.as_deref(),
        redelivery: false,
        job_lock: None,
    };
    let start = Instant::now();
    let reports = deliver(&resolver, &req, &rcpts);
    let mut exit = ExitCode::Ok;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for r in &reports {
        let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
        let (stat, dsn) = match &r.outcome {
            Outcome::Delivered => ("Sent".to_string(), "2.0.0".to_string()),
            Outcome::Forward { address, .. } => {
                (format!("forwarded to {address}"), "2.0.0".to_string())
            }
            Outcome::List { name } => (format!("to list {name}'s copy"), "2.0.0".to_string()),
            Outcome::Deferred(f) => (format!("Deferred: {}", f.text), f.dsn.clone()),
            Outcome::Failed(f) => (f.text.clone(), f.dsn.clone()),
        };
        crate::log::info(
            qid.as_deref(),
            &format!(
                "to={}, delay={}, xdelay={}, mailer=local, dsn={dsn}, stat={stat}",
                r.printable,
                crate::date::duration(crate::date::now() - arrival),
                crate::date::duration(start.elapsed().as_secs() as i64),
            ),
        );
        if report_mode {
            let (kind, dsn, text) = match &r.outcome {
                Outcome::Delivered => ("ok", "2.0.0".to_string(), r.what.clone()),
                Outcome::Forward { address, .. } => (
                    "forward",
                    "2.0.0".to_string(),
                    format!("forwarded to {address}"),
                ),
                Outcome::List { name } => (
                    "list",
                    "2.0.0".to_string(),
                    format!("to list {name}'s copy"),
                ),
                Outcome::Deferred(f) => ("defer", f.dsn.clone(), f.text.clone()),
                Outcome::Failed(f) => ("fail", f.dsn.clone(), f.text.clone()),
            };
            let ctl = r
                .ctl
                .as_ref()
                .map(|o| format!("{}:{}:{}", o.name, o.uid, o.gid))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{kind}\t{}\t{}\t{}\t{ctl}\t{}\t{dsn}\t{}",
                clean(&r.recipient),
                clean(&r.printable),
                clean(&r.again),
                clean(r.sender.as_deref().unwrap_or("")),
                clean(&text)
            );
        } else {
            match &r.outcome {
                Outcome::Deferred(f) | Outcome::Failed(f) => {
                    eprintln!("{}... {}", r.printable, f.text)
                }
                _ => {}
            }
        }
        match &r.outcome {
            Outcome::Deferred(_) => exit = ExitCode::TempFail,
            Outcome::Failed(f) if exit == ExitCode::Ok => {
                exit = crate::resolve::virtuser::dsn_to_exit(&f.dsn)
            }
            _ => {}
        }
    }
    exit.code()
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

/// The message on standard input: used in place when it is a regular file
/// (the queue runner passes one), copied into memory otherwise.
fn stdin_message(stdin: std::io::StdinLock<'_>) -> std::io::Result<Message> {
    use std::os::fd::AsFd;
    let fd = stdin.as_fd().try_clone_to_owned()?;
    let file = std::fs::File::from(fd);
    if file.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Message::from_file(file);
    }
    Message::from_reader(stdin)
}
