//! One accepted transaction, translated into a request at the queue's
//! door ([`crate::queue::enqueue`]): the message read from DATA straight
//! into the data file, the header fix-ups of an SMTP client (`Received:`
//! naming the client, its protocol — `ESMTP`, `ESMTPS`, `ESMTPA`/`ESMTPSA`
//! per RFC 3848 — TLS and login; `Date:`, `From:`, `Message-Id:` when
//! missing; `Bcc:` removed), committed durably before the `250`.  The log
//! lines are the door's.

use super::incoming::{DataReader, Fault};
use crate::config::Config;
use crate::exit::ExitCode;
use crate::inbound::Judgement;
use crate::log;
use crate::queue::enqueue::{self, Origin, Request, Sender, SmtpClient};
use crate::queue::{Notify, QueueId, Ret};
use crate::smtp::Reply;

/// A recipient accepted by `RCPT`.
#[derive(Debug, Clone)]
pub struct Rcpt {
    /// The path as the client gave it, without `<>`.
    pub path: String,
    pub notify: Option<Notify>,
    pub orcpt: Option<String>,
    pub local: bool,
}

/// The transaction begun by `MAIL`.
#[derive(Debug, Clone, Default)]
pub struct Transaction {
    /// The reverse path, without `<>` (empty: the null sender).
    pub sender: String,
    pub size: Option<u64>,
    /// `BODY=8BITMIME` (true) or `BODY=7BIT` (false).
    pub body_8bit: Option<bool>,
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    pub rcpts: Vec<Rcpt>,
    /// An access entry said DISCARD: accept and throw away.
    pub discard: bool,
    /// The SPF result found at `MAIL` (mail from the internet only).
    pub spf: Option<crate::inbound::SpfCheck>,
}

/// A transaction the queue took.
#[derive(Debug, Default)]
pub struct Accepted {
    /// The job; `None` when the transaction was discarded.
    pub id: Option<QueueId>,
    /// Over an outbound limit (a local program's, held): not to be
    /// delivered now.
    pub held: bool,
    /// mailroom's own messages queued meanwhile (a limit alert).
    pub notices: Vec<QueueId>,
}

/// Why the message was not queued.
#[derive(Debug)]
pub enum Refused {
    /// DATA broke off (bare LF, the client left, ...): the connection ends.
    Broken(Fault),
    /// A reply, and the session goes on.
    Reply(Reply),
    /// Over an outbound limit: `451 4.7.0`, and the alert queued about it.
    OverLimit(Reply, Option<QueueId>),
}

/// `452 4.3.1`: the queue's file system is (nearly) full.
fn insufficient_space() -> Refused {
    Refused::Reply(Reply::new(
        452,
        "4.3.1 Insufficient disk space; try again later",
    ))
}

/// `451 4.3.0 WHAT; try again later`.
fn temp(what: &str) -> Refused {
    Refused::Reply(Reply::new(451, format!("4.3.0 {what}; try again later")))
}

/// A queue write that failed: a full disk is said as such (RFC 5321 452,
/// RFC 3463 4.3.1), as sendmail 8 does; any other failure is a local
/// problem (named so when the commit itself failed for a reason other
/// than a temporary one).  Logged with the command line's words.
fn queue_trouble(
    cfg: &Config,
    qid: Option<&QueueId>,
    what: &str,
    e: enqueue::Error,
    at_commit: bool,
) -> Refused {
    let f = e.failure(cfg);
    match &e {
        enqueue::Error::NoSpace(_) => log::warning(None, &f.to_string()),
        _ => log::err(qid.map(QueueId::as_str), &f.to_string()),
    }
    if e.is_disk_full() {
        insufficient_space()
    } else if f.code == ExitCode::TempFail || !at_commit {
        temp(what)
    } else {
        temp(&format!("{what} (local problem)"))
    }
}

/// The sender checks of one message, given it as received.
pub type Judge<'a> = &'a dyn Fn(&[u8]) -> Judgement;

/// Read DATA into a new queue entry and commit it.  `judge`: the sender
/// checks ([`crate::inbound`]), given the message as received; a refusal
/// there queues nothing, and an accepted message carries its
/// `Authentication-Results:`.
pub fn queue_message(
    cfg: &Config,
    client: &SmtpClient,
    txn: &Transaction,
    data: &mut DataReader<'_>,
    judge: Option<Judge<'_>>,
) -> Result<Accepted, Refused> {
    let mut incoming = match enqueue::open(cfg) {
        Ok(i) => i,
        Err(e) => {
            data.drain();
            return Err(queue_trouble(
                cfg,
                None,
                "Cannot queue the message",
                e,
                false,
            ));
        }
    };
    let collected = match incoming.read(&mut *data, true) {
        Ok(c) => c,
        Err(e) => {
            if let Some(f) = data.fault {
                return Err(Refused::Broken(f));
            }
            data.drain();
            if let Some(f) = data.fault {
                return Err(Refused::Broken(f));
            }
            return Err(match e {
                enqueue::Error::TooBig(limit) => Refused::Reply(Reply::new(
                    552,
                    format!("5.2.3 Message exceeds maximum fixed size ({limit})"),
                )),
                enqueue::Error::HeaderTooBig(_) => {
                    Refused::Reply(Reply::new(552, "5.3.4 Message header too long"))
                }
                enqueue::Error::Read(_) => temp("Cannot read the message"),
                e => {
                    let qid = incoming.id().clone();
                    queue_trouble(cfg, Some(&qid), "Cannot write the message", e, false)
                }
            });
        }
    };
    let mut auth_results = None;
    if let Some(judge) = judge {
        let judgement = judge(&incoming.as_received(&collected));
        if let Some(r) = judgement.refusal {
            return Err(Refused::Reply(r));
        }
        if let Some(why) = &judgement.quarantine {
            log::info(
                Some(incoming.id().as_str()),
                &format!("quarantined: {why}; delivered to the Spam folder"),
            );
        }
        auth_results = Some(judgement.results.render());
    }
    if txn.discard {
        incoming.discard(&collected, &txn.sender, txn.rcpts.len());
        return Ok(Accepted::default());
    }
    let qid = incoming.id().clone();
    let origin = Origin::Smtp(client.clone());
    let request = Request {
        origin: &origin,
        sender: if txn.sender.is_empty() {
            Sender::null()
        } else {
            Sender {
                recorded: format!("<{}>", txn.sender),
                addr: txn.sender.clone(),
            }
        },
        recipients: txn
            .rcpts
            .iter()
            .map(|r| enqueue::Rcpt {
                recorded: format!("<{}>", r.path),
                addr: r.path.clone(),
                notify: r.notify,
                orcpt: r.orcpt.clone(),
                local: r.local,
            })
            .collect(),
        refused: Vec::new(),
        envid: txn.envid.clone(),
        ret: txn.ret,
        body_8bit: txn.body_8bit,
        quiet_errors: true,
        auth_results,
    };
    match incoming.commit(collected, request) {
        Ok(queued) => Ok(Accepted {
            id: queued.id,
            held: queued.held,
            notices: queued.bounces,
        }),
        Err(enqueue::Error::OverLimit(what, alert)) => Err(Refused::OverLimit(
            Reply::new(
                451,
                format!("4.7.0 Sending limit reached: {what}; try again later"),
            ),
            alert,
        )),
        Err(e) => Err(queue_trouble(
            cfg,
            Some(&qid),
            "Cannot queue the message",
            e,
            true,
        )),
    }
}
