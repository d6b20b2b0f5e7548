//! One accepted transaction into the queue: the message read from DATA
//! straight into the data file, the envelope and the generated header
//! fields into the control file, committed durably before the `250`.
//!
//! Header fields added, in this order: `Return-Path:` (filled in at
//! delivery), `Received:` naming the client (HELO name, address, or the
//! local user), the protocol (`ESMTP`, `ESMTPS` with TLS, `ESMTPA`/`ESMTPSA`
//! when authenticated, RFC 3848), the TLS version and cipher, the
//! authenticated user, the queue id and, for a single recipient, `for
//! <rcpt>`; then `Date:`, `From:` and `Message-Id:` when the message lacks
//! them (as sendmail 8 does).  `Bcc:` fields are removed.  Every other
//! byte is kept as the client sent it.
//!
//! Log lines, as sendmail's:
//!
//! ```text
//! QID: from=<a@b>, size=N, class=N, nrcpts=N, msgid=<ID>, [bodytype=8BITMIME, ]proto=ESMTP, relay=HELO [IP]
//! QID: to=<x@y>, delay=00:00:00, mailer=local|esmtp, pri=N, stat=queued
//! ```

use std::io::BufWriter;

use super::incoming::{DataReader, Fault};
use crate::address;
use crate::cli::sendmail_args::{Notify, Ret};
use crate::config::Config;
use crate::date;
use crate::exit::ExitCode;
use crate::log;
use crate::message::{CollectError, CollectOptions, collect};
use crate::queue::{self, Envelope, IdGenerator, QHeader, Queue, QueueId, Recipient};
use crate::smtp::Reply;
use crate::submit::VERSION;

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
}

/// Where the message came from, for `Received:` and the log.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The name given in HELO/EHLO.
    pub helo: String,
    /// `[192.0.2.7]`, or `USER@localhost` for a local program.
    pub client: String,
    /// `SMTP`, `ESMTP`, `ESMTPS`, `ESMTPA`, `ESMTPSA`.
    pub proto: String,
    /// `version=TLSv1.3 cipher=...`.
    pub tls: Option<String>,
    /// The authenticated login.
    pub auth: Option<String>,
    /// A local program (the caller's login), not a network client.
    pub local_user: Option<String>,
}

/// Why the message was not queued.
#[derive(Debug)]
pub enum Refused {
    /// DATA broke off (bare LF, the client left, ...): the connection ends.
    Broken(Fault),
    /// A reply, and the session goes on.
    Reply(Reply),
}

/// `452 4.3.1`: the queue's file system is (nearly) full.
fn insufficient_space() -> Refused {
    Refused::Reply(Reply::new(
        452,
        "4.3.1 Insufficient disk space; try again later",
    ))
}

/// Read DATA into a new queue entry and commit it.  Returns its id, or
/// `None` when the transaction is discarded.
pub fn queue_message(
    cfg: &Config,
    origin: &Origin,
    txn: &Transaction,
    data: &mut DataReader<'_>,
) -> Result<Option<QueueId>, Refused> {
    let temp =
        |what: &str| Refused::Reply(Reply::new(451, format!("4.3.0 {what}; try again later")));
    // A full disk is said as such (RFC 5321 452, RFC 3463 4.3.1), as
    // sendmail 8 does; any other write failure is a local problem.
    let failed = |what: &str, e: &std::io::Error| match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => insufficient_space(),
        _ => temp(what),
    };
    if let Err(f) = crate::submit::check_free_space(cfg) {
        data.drain();
        log::warning(None, &f.to_string());
        return Err(insufficient_space());
    }
    let queue = Queue::new(&cfg.queue_dir);
    let now = date::now();
    let mut draft = match queue.create(&mut IdGenerator::new(), now) {
        Ok(d) => d,
        Err(e) => {
            data.drain();
            log::err(None, &crate::submit::queue_failure(cfg, &e).to_string());
            return Err(failed("Cannot queue the message", &e));
        }
    };
    let qid = draft.id.clone();
    let opts = CollectOptions {
        ignore_dots: true,
        size_limit: cfg.message_size_limit,
        ..Default::default()
    };
    let collected = {
        let mut w = BufWriter::with_capacity(64 * 1024, draft.data());
        collect(&mut *data, &mut w, &opts)
    };
    let collected = match collected {
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
                CollectError::TooBig(limit) => Refused::Reply(Reply::new(
                    552,
                    format!("5.2.3 Message exceeds maximum fixed size ({limit})"),
                )),
                CollectError::HeaderTooBig(_) => {
                    Refused::Reply(Reply::new(552, "5.3.4 Message header too long"))
                }
                CollectError::Write(e) => {
                    log::err(
                        Some(qid.as_str()),
                        &crate::submit::queue_failure(cfg, &e).to_string(),
                    );
                    failed("Cannot write the message", &e)
                }
                CollectError::Read(_) => temp("Cannot read the message"),
            });
        }
    };
    if txn.discard {
        log::info(
            Some(qid.as_str()),
            &format!(
                "from=<{}>, size={}, nrcpts={}: discarded (access DISCARD)",
                txn.sender,
                collected.size,
                txn.rcpts.len()
            ),
        );
        return Ok(None);
    }
    let mut header = collected.header;
    header.remove("Bcc");
    header.remove("Resent-Bcc");
    let host = &cfg.hostname;
    let date_now = date::rfc5322(now);

    let mut generated = vec![QHeader::new("P", b"Return-Path: <\x81g>")];
    let from_part = match &origin.local_user {
        Some(user) => format!("from {} ({user}@localhost)", origin.helo),
        None if origin.helo.is_empty() => format!("from {} ({})", origin.client, origin.client),
        None => format!("from {} ({})", origin.helo, origin.client),
    };
    let mut received = format!("Received: {from_part}");
    if let Some(a) = &origin.auth {
        received.push_str(&format!("\n\t(authenticated as {a})"));
    }
    received.push_str(&format!(
        "\n\tby {host} (mailroom/{VERSION}) with {} id {qid}",
        origin.proto
    ));
    if let Some(t) = &origin.tls {
        received.push_str(&format!("\n\t({t})"));
    }
    match txn.rcpts.as_slice() {
        [only] => received.push_str(&format!("\n\tfor <{}>; {date_now}", only.path)),
        _ => received.push_str(&format!(";\n\t{date_now}")),
    }
    generated.push(QHeader::new("", received.as_bytes()));
    if !header.has("Date") {
        generated.push(QHeader::new("D", format!("Date: {date_now}").as_bytes()));
    }
    if !header.has("From") && !txn.sender.is_empty() {
        generated.push(QHeader::new(
            "F",
            format!("From: {}", txn.sender).as_bytes(),
        ));
    }
    let msgid_logged = match header.get("Message-Id") {
        Some(f) => f.value(),
        None => {
            let id = format!("<{}.{qid}@{host}>", date::message_id_stamp(now));
            generated.push(QHeader::new("M", format!("Message-Id: {id}").as_bytes()));
            id
        }
    };

    let class = queue::precedence_class(header.get("Precedence").map(|f| f.value()).as_deref());
    let sender = if txn.sender.is_empty() {
        "<>".to_string()
    } else {
        format!("<{}>", txn.sender)
    };
    let mut env = Envelope {
        created: now,
        priority: queue::initial_priority(collected.size, class, txn.rcpts.len()),
        sender: sender.clone(),
        envid: txn.envid.clone(),
        ..Default::default()
    };
    env.body_type = match txn.body_8bit {
        Some(true) => Some("8BITMIME".to_string()),
        Some(false) => Some("7BIT".to_string()),
        None => None,
    };
    env.set_flag('8', collected.has_8bit);
    env.set_flag('d', txn.ret.is_some());
    env.set_flag('n', txn.ret == Some(Ret::Headers));
    if txn.sender.is_empty() {
        env.set_flag('r', true);
    }
    let relay = match &origin.local_user {
        Some(u) => format!("{u}@localhost"),
        None => format!("{} {}", origin.helo, origin.client),
    };
    env.macros
        .push(("_".to_string(), relay.clone().into_bytes()));
    env.macros
        .push(("r".to_string(), origin.proto.clone().into_bytes()));
    env.macros
        .push(("s".to_string(), origin.helo.clone().into_bytes()));
    if let Some(a) = &origin.auth {
        env.auth = Some(format!("<{a}>"));
    }
    env.recipients = txn
        .rcpts
        .iter()
        .map(|r| Recipient {
            flags: format!("P{}", Notify::rcpt_flags(r.notify)),
            addr: format!("<{}>", r.path),
            orcpt: r.orcpt.clone(),
            final_rcpt: Some(format!("RFC822; {}", address::qualify(&r.path, host))),
            ..Default::default()
        })
        .collect();
    env.headers = generated;
    env.headers
        .extend(header.fields.iter().map(|f| QHeader::new("", &f.raw)));
    if let Err(e) = draft.commit(&mut env) {
        let f = crate::submit::queue_failure(cfg, &e);
        log::err(Some(qid.as_str()), &f.to_string());
        return Err(if f.code == ExitCode::TempFail {
            failed("Cannot queue the message", &e)
        } else {
            temp("Cannot queue the message (local problem)")
        });
    }
    let mut line = format!(
        "from={sender}, size={}, class={class}, nrcpts={}, msgid={msgid_logged}",
        collected.size,
        txn.rcpts.len()
    );
    if env.body_type.as_deref() == Some("8BITMIME") {
        line.push_str(", bodytype=8BITMIME");
    }
    line.push_str(&format!(", proto={}, relay={relay}", origin.proto));
    if let Some(a) = &origin.auth {
        line.push_str(&format!(", auth={a}"));
    }
    log::info(Some(qid.as_str()), &line);
    for r in &txn.rcpts {
        log::info(
            Some(qid.as_str()),
            &format!(
                "to=<{}>, delay=00:00:00, mailer={}, pri={}, stat=queued",
                r.path,
                if r.local { "local" } else { "esmtp" },
                env.priority
            ),
        );
    }
    Ok(Some(qid))
}
