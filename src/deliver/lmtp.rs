//! Mailbox copies handed to an LMTP server (RFC 2033: Dovecot, Cyrus,
//! Stalwart) instead of written to the mbox or Maildir.
//!
//! ## Which mailboxes
//!
//! `mailbox_transport = lmtp:unix:/run/dovecot/lmtp` (or
//! `lmtp:[10.0.0.5]:24`, `lmtp:host:port`; port 24 by default) sends
//! every mailbox there; `local` (the default) writes the files.  A
//! mailertable entry for one of this host's domains overrides it for
//! the mailboxes of that domain: `shop.example lmtp:[10.0.0.5]:24`, or
//! `shop.example local:` to write that domain's files although the
//! default is LMTP.  A mailbox's domain is its login's (`info@shop.example`
//! → `shop.example`), and the host name for a system user: it does not
//! depend on the address the mail came to, so a retry (which names the
//! mailbox, `\login`) goes the same way as the first attempt.
//!
//! ## What the server gets
//!
//! MAIL FROM is the envelope sender, RCPT TO the mailbox's address (as in
//! `Delivered-To:`: `bob@HOST` for a system user, the login for a virtual
//! account); the server adds `Return-Path:` and `Delivered-To:` itself.
//! Mailboxes that get the same bytes from the same sender go in one
//! transaction (at most [`MAX_RCPTS`] recipients); a message spamc
//! rewrote for one user goes alone.
//!
//! ## Filters
//!
//! mailroom's filter still runs first (spamc, the rule files): it is what
//! the admin and the users configured, and it can do what the LMTP side
//! cannot see from here — refuse with 5.7.1, discard, forward (forwards
//! are queued only once the server took the copy).  A folder it picks is
//! passed as the address's detail, `info+Spam@shop.example`, which
//! Dovecot files there with `lmtp_save_to_detail_mailbox = yes` (and
//! `lda_mailbox_autocreate = yes` for a folder that does not exist yet);
//! Sieve on the server, if configured, runs after and may file it
//! elsewhere.
//!
//! ## Replies
//!
//! After the data the server answers once per accepted recipient: 2xx is
//! delivered, 4xx deferred for that mailbox only, 5xx bounced with the
//! server's text.  A reply whose enhanced status is `X.2.2` (mailbox
//! full: Dovecot's quota, `552 5.2.2` by default) follows mailroom's own
//! quota rule: deferred while the message is younger than
//! `over_quota_defer`, then bounced.  Failing to connect, or a refusal of
//! the session itself, defers every mailbox of the transaction.
//!
//! ## No duplicates, as far as LMTP allows
//!
//! Each 2xx reply is appended to the job's reply journal (`lfID` in the
//! queue's control directory) and `fdatasync`ed *before* the next reply
//! is read.  A later attempt at the same job reads the journal first and
//! counts the mailboxes listed there as delivered without sending again.
//! So a queue runner killed in the middle of the replies, or a session
//! cut after the final dot, retries only the mailboxes with no reply yet.
//! One window cannot be closed: a server that committed the message and
//! then lost the connection (or was cut) before its reply reached us
//! looks exactly like one that did not commit, and RFC 2033 gives no way
//! to ask.  That mailbox is deferred and retried, and may get the message
//! twice — the same window SMTP has between the final dot and its reply
//! (RFC 1047).  Its deferral says so.
//!
//! The journal, one line per accepted mailbox:
//!
//! ```text
//! delivered LOGIN
//! ```
//!
//! It is removed once the job's control file has been rewritten or the
//! job finished ([`crate::queue::Job`]); a journal whose job is gone is
//! removed by the queue's stale sweep.  `deliver` run by hand keeps none.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::ToSocketAddrs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{Outcome, Request, outcome};
use crate::accounts::Account;
use crate::config::Config;
use crate::hop::LmtpServer;
use crate::mailbox::{Failure, Message};
use crate::smtp::Reply;
use crate::smtp::client::{self, Endpoint, Session, Timeouts};

/// Most recipients in one transaction (Postfix's LMTP default too).
pub const MAX_RCPTS: usize = 50;

/// The domain a mailbox belongs to, for choosing its transport.
pub(super) fn mailbox_domain(account: &Account, host: &str) -> String {
    match account.login.rsplit_once('@') {
        Some((_, d)) if !d.is_empty() => d.to_string(),
        _ => host.to_string(),
    }
}

/// The RCPT TO address for `addr`, into `folder` when given
/// (`local+Folder@domain`, the local part quoted when it must be).
pub(super) fn rcpt_address(addr: &str, folder: Option<&str>) -> String {
    let Some(folder) = folder else {
        return addr.to_string();
    };
    let (local, domain) = addr.rsplit_once('@').unwrap_or((addr, ""));
    let local = format!("{local}+{folder}");
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    let local = if local.chars().all(atext) && !local.contains("..") && !local.ends_with('.') {
        local
    } else {
        format!("\"{}\"", local.replace('\\', "\\\\").replace('"', "\\\""))
    };
    if domain.is_empty() {
        local
    } else {
        format!("{local}@{domain}")
    }
}

/// One mailbox copy waiting for its LMTP transaction.
pub(super) struct Pending {
    /// Its report's index in the reports being built.
    pub report: usize,
    pub dest: LmtpServer,
    /// The mailbox's login: the journal's key.
    pub login: String,
    /// RCPT TO.
    pub rcpt: String,
    /// MAIL FROM ("" for the null sender).
    pub sender: String,
    /// The message spamc rewrote for this mailbox, if it did.
    pub scanned: Option<Message>,
    /// Addresses the filter forwards to once the copy is delivered.
    pub forwards: Vec<String>,
}

/// The job's reply journal (see the module documentation).
struct Journal<'a> {
    path: Option<&'a Path>,
    file: Option<File>,
}

impl Journal<'_> {
    /// The logins an earlier attempt already delivered to.
    fn delivered(&self) -> HashSet<String> {
        let Some(path) = self.path else {
            return HashSet::new();
        };
        let mut text = String::new();
        if let Ok(mut f) = File::open(path) {
            let _ = f.read_to_string(&mut text);
        }
        text.lines()
            .filter_map(|l| l.strip_prefix("delivered "))
            .map(str::to_string)
            .collect()
    }

    /// Record that `login` was delivered, durably, before anything else
    /// is read from the server.
    fn record(&mut self, login: &str) -> std::io::Result<()> {
        let Some(path) = self.path else {
            return Ok(());
        };
        if self.file.is_none() {
            let f = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(crate::queue::spool::FILE_MODE)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)?;
            // The new name must survive a crash too.
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
            self.file = Some(f);
        }
        let f = self.file.as_mut().expect("opened above");
        f.write_all(format!("delivered {login}\n").as_bytes())?;
        f.sync_data()
    }
}

/// The outcome for one recipient's final reply.
fn reply_outcome(cfg: &Config, req: &Request<'_>, dest: &LmtpServer, r: &Reply) -> Outcome {
    if r.is_positive() {
        return Outcome::Delivered;
    }
    let status = r.status();
    // The server's words first: mailq shows only the start of a status.
    let text = format!("{r} (from {dest})");
    let full = status.ends_with(".2.2");
    let f = Failure {
        temporary: r.is_temporary() && !full,
        // Over quota: our own rule picks 4.2.2 or 5.2.2 by age.
        dsn: if full { "5.2.2".to_string() } else { status },
        text,
        over_quota: full,
    };
    outcome(cfg, req, Err(f))
}

/// Why a session failed before the message was sent: every mailbox of
/// the transaction waits.
fn session_failure(dest: &LmtpServer, e: &client::Error) -> Failure {
    let dsn = match e {
        client::Error::Connect(_) => "4.4.1",
        client::Error::Io(_) => "4.4.2",
        _ => "4.3.0",
    };
    Failure::temp(dsn, format!("{dest}: {e}"))
}

/// Run the transactions for `pending` and fill in its reports' outcomes;
/// returns, for each delivered copy, its report index and the filter's
/// forwards.
pub(super) fn run(
    cfg: &Config,
    req: &Request<'_>,
    pending: Vec<Pending>,
    outcomes: &mut dyn FnMut(usize, Outcome),
) -> Vec<(usize, Vec<String>)> {
    let mut journal = Journal {
        path: req.lmtp_journal,
        file: None,
    };
    let done = journal.delivered();
    let mut forwards = Vec::new();
    let mut groups: Vec<Vec<Pending>> = Vec::new();
    for p in pending {
        if done.contains(&p.login) {
            crate::log::info(
                req.queue_id,
                &format!(
                    "{}: accepted by {} in an earlier attempt; not sent again",
                    p.rcpt, p.dest
                ),
            );
            outcomes(p.report, Outcome::Delivered);
            forwards.push((p.report, p.forwards));
            continue;
        }
        let joins = |g: &Vec<Pending>| {
            let first = &g[0];
            p.scanned.is_none()
                && first.scanned.is_none()
                && first.dest == p.dest
                && first.sender == p.sender
                && g.len() < MAX_RCPTS
        };
        match groups.iter_mut().find(|g| joins(g)) {
            Some(g) => g.push(p),
            None => groups.push(vec![p]),
        }
    }
    for group in groups {
        let first = &group[0];
        let message = first.scanned.as_ref().unwrap_or(req.message);
        let mut bytes = Vec::with_capacity(message.len() as usize);
        if let Err(e) = message.reader().read_to_end(&mut bytes) {
            let f = Failure::temp(
                "4.3.0",
                format!("cannot read the message: {}", crate::exit::io_reason(&e)),
            );
            for p in &group {
                outcomes(p.report, Outcome::Deferred(f.clone()));
            }
            continue;
        }
        let results = transaction(cfg, &group, &bytes, &mut journal, req);
        for (p, r) in group.into_iter().zip(results) {
            let o = match r {
                Ok(reply) => reply_outcome(cfg, req, &p.dest, &reply),
                Err(f) => Outcome::Deferred(f),
            };
            if o == Outcome::Delivered {
                forwards.push((p.report, p.forwards));
            }
            outcomes(p.report, o);
        }
    }
    forwards
}

/// One transaction: each recipient's final reply, or why it has none.
fn transaction(
    cfg: &Config,
    group: &[Pending],
    message: &[u8],
    journal: &mut Journal<'_>,
    req: &Request<'_>,
) -> Vec<Result<Reply, Failure>> {
    let dest = &group[0].dest;
    let all = |f: Failure| group.iter().map(|_| Err(f.clone())).collect();
    let timeouts = Timeouts::default();
    let session = match dest {
        LmtpServer::Unix(path) => Session::connect_lmtp(
            Endpoint::Unix(path),
            &dest.to_string(),
            &cfg.hostname,
            timeouts,
        ),
        LmtpServer::Tcp { host, port } => {
            let addrs: Vec<std::net::SocketAddr> = match (host.as_str(), *port).to_socket_addrs() {
                Ok(a) => a.collect(),
                Err(e) => {
                    return all(Failure::temp(
                        "4.4.3",
                        format!("{dest}: cannot resolve {host}: {e}"),
                    ));
                }
            };
            let mut last = None;
            let mut session = None;
            for a in addrs {
                match Session::connect_lmtp(
                    Endpoint::Tcp(a),
                    &dest.to_string(),
                    &cfg.hostname,
                    timeouts,
                ) {
                    Ok(s) => {
                        session = Some(Ok(s));
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            session.unwrap_or_else(|| {
                Err(last.unwrap_or_else(|| {
                    client::Error::Connect(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("{host} has no address"),
                    ))
                }))
            })
        }
    };
    let mut s = match session {
        Ok(s) => s,
        Err(e) => return all(session_failure(dest, &e)),
    };
    let rcpts: Vec<client::Rcpt> = group
        .iter()
        .map(|p| client::Rcpt {
            address: p.rcpt.clone(),
            notify: None,
            orcpt: None,
        })
        .collect();
    let out = s.send_lmtp(
        &client::Outgoing {
            sender: &group[0].sender,
            rcpts: &rcpts,
            message,
            ret: None,
            envid: None,
        },
        &mut |i, r| {
            if r.is_positive()
                && let Err(e) = journal.record(&group[i].login)
            {
                crate::log::err(
                    req.queue_id,
                    &format!(
                        "{}: delivered, but the reply journal cannot be written ({}): a crash now would send it again",
                        group[i].rcpt,
                        crate::exit::io_reason(&e)
                    ),
                );
            }
        },
    );
    let out = match out {
        Ok(o) => o,
        Err(e) => return all(session_failure(dest, &e)),
    };
    let cut = out.cut.as_ref().map(|e| {
        Failure::temp(
            "4.4.2",
            format!(
                "{dest}: connection lost after the message was sent, before this mailbox's reply ({e}); the server may have delivered it, so a retry may deliver it twice"
            ),
        )
    });
    if cut.is_none() {
        s.quit();
    }
    out.replies
        .into_iter()
        .map(|r| match r {
            Some(r) => Ok(r),
            None => Err(cut.clone().unwrap_or_else(|| {
                Failure::temp("4.4.2", format!("{dest}: no reply for this mailbox"))
            })),
        })
        .collect()
}

#[cfg(test)]
mod tests;
