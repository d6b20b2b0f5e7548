//! The one door into the queue: every message that becomes a job comes
//! through here — from a local program (`sendmail -t -i`), from an SMTP
//! client (`sendmail -bs`), or from mailroom itself (a bounce, an
//! autoreply, an envelope split off by the runner).
//!
//! The front ends only translate argv or an SMTP transaction into a
//! [`Request`]; this module does the rest, in the same order for every
//! origin:
//!
//! 1. [`open`]: the free-space check (`min_free_space`), then a new job
//!    reserved in the queue ([`super::spool`] steps 1–3).
//! 2. [`Incoming::read`]: the message collected straight into the data
//!    file with sendmail's line rules ([`crate::message::collect()`]).
//! 3. [`Incoming::commit`]: the header fix-ups for the origin, the
//!    envelope, recipients refused at submission bounced, the job
//!    committed durably (steps 4–5), and the `from=`/`to=` log lines.
//!    Only after this does the front end answer exit 0 or `250`.
//!
//! A job that is never committed (an error, a discarded transaction, every
//! recipient refused) is removed when the [`Incoming`] is dropped.
//!
//! ## Header fix-ups, by origin
//!
//! All origins: a `Return-Path:` placeholder (filled in at delivery) and a
//! `Received:` field first.  Every byte of the message's own header is
//! kept, except that programs' and SMTP clients' `Bcc:`/`Resent-Bcc:` are
//! removed.
//!
//! | origin | `Received:` | added when missing |
//! |--------|-------------|--------------------|
//! | program | `(from USER@localhost) by HOST (mailroom/V) id QID [for RCPT]; DATE` | `Date:` (the `From ` line's date if any), `From:` (full name from `-F` or GECOS), `Message-Id:`; `Resent-Date:`/`-From:`/`-Message-Id:` for a resent message; `Full-Name:`; `X-Authentication-Warning:` when an untrusted caller sets someone else as sender |
//! | SMTP | `from HELO (CLIENT) [(authenticated as LOGIN)] by HOST (mailroom/V) with PROTO id QID [(TLS)] [for <RCPT>]; DATE` | `Date:`, `From:` (the envelope sender), `Message-Id:` |
//! | mailroom | `from localhost (localhost) by HOST (mailroom/V) id QID; DATE` | nothing: the message is built complete |
//!
//! ## Log lines (sendmail's format; every line with its meaning is in [`crate::log::catalog`])
//!
//! ```text
//! QID: from=SENDER, size=N, class=N, nrcpts=N, msgid=<ID>[, bodytype=8BITMIME], relay=USER@localhost
//! QID: from=<a@b>, size=N, class=N, nrcpts=N, msgid=<ID>[, bodytype=8BITMIME], proto=ESMTP, relay=HELO [IP][, auth=LOGIN]
//! QID: from=<>, size=N, class=0, nrcpts=N, relay=MAILER-DAEMON@localhost
//! QID: to=RCPT, delay=00:00:00, mailer=local|esmtp, pri=N, stat=queued
//! QID: to=RCPT, delay=00:00:00, mailer=local, pri=0, dsn=5.1.1, reply=550 5.1.1 TEXT, stat=TEXT
//! QID: Authentication-Warning: HOST: USER set sender to ADDR using -f
//! QID: BOUNCEID: DSN: TEXT
//! QID: from=<a@b>, size=N, nrcpts=N: discarded (access DISCARD)
//! NEWQID: split from N: sender SENDER
//! ```

mod error;
mod fixups;

use std::io::{self, BufRead, BufWriter, Read, Seek, Write};

pub use error::{Error, check_free_space, queue_failure};
use fixups::{envelope, fix_header, smtp_relay};

use super::{Envelope, IdGenerator, Notify, QHeader, Queue, QueueId, Ret};
use crate::address;
use crate::config::Config;
use crate::date;
use crate::dsn;
use crate::exit::{ExitCode, Failure};
use crate::limits;
use crate::log;
use crate::message::{CollectOptions, Collected, collect};

/// Who hands the message in.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A local program through `sendmail` (`-t`, `-bm`).
    Program(Program),
    /// An SMTP client of `sendmail -bs`, on the network or a local pipe.
    Smtp(SmtpClient),
    /// mailroom itself: a bounce, a delay warning, a receipt, an autoreply.
    /// `relay` names the submitter for `Received:` and the log.
    Mailroom { relay: String },
}

/// An alert to send about a key over its limit.
struct Alerting {
    to: String,
    offending: limits::alert::Offending,
}

impl Origin {
    /// Who the outbound limits count this message against, when
    /// `remote` of its recipients leave the box; `None`: not counted
    /// (mailroom's own messages, inbound mail, local mail).
    fn counted_as(&self, remote: u32) -> Option<limits::Who> {
        if remote == 0 {
            return None;
        }
        match self {
            Origin::Program(p) => Some(limits::Who::User(p.login.clone())),
            Origin::Smtp(c) => Some(match (&c.auth, &c.local_user) {
                (Some(login), _) => limits::Who::Login(login.clone()),
                (None, Some(user)) => limits::Who::User(user.clone()),
                (None, None) => limits::Who::Client(
                    c.client
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .trim_start_matches("IPv6:")
                        .to_string(),
                ),
            }),
            Origin::Mailroom { .. } => None,
        }
    }

    /// Over a limit, is the message held (a local program, which must not
    /// see an error) rather than refused (an SMTP client, which retries)?
    fn holds_over_limit(&self) -> bool {
        match self {
            Origin::Program(_) => true,
            Origin::Smtp(c) => c.local_user.is_some() && c.auth.is_none(),
            Origin::Mailroom { .. } => false,
        }
    }
}

/// A local program submitting with `sendmail`.
#[derive(Debug, Clone)]
pub struct Program {
    /// The caller's login (`uidN` without a passwd entry).
    pub login: String,
    /// The sender's full name: `-F`, else the caller's GECOS when the
    /// sender is the caller; empty for none.
    pub full_name: String,
    /// May set the envelope sender freely.
    pub trusted: bool,
    /// `-f`/`-r` as given, and the letter used.
    pub set_sender: Option<(String, char)>,
    /// The one recipient named on the command line, if exactly one was
    /// (sendmail then writes `for RCPT` in `Received:`).
    pub only_argv_recipient: Option<String>,
    /// `-t`: recipients were read from the header (flag `b`).
    pub extract: bool,
    /// The program's working directory (named in a limit alert when the
    /// message does not say which script sent it).
    pub cwd: Option<String>,
}

/// An SMTP client, for `Received:` and the log.
#[derive(Debug, Clone)]
pub struct SmtpClient {
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

/// The envelope sender.
#[derive(Debug, Clone)]
pub struct Sender {
    /// As the control file records it: `<a@b>`, `<>`, or for a program
    /// the address as given (`dave`, `Dave <dave@example.com>`).
    pub recorded: String,
    /// The bare address; empty for the null sender.
    pub addr: String,
}

impl Sender {
    /// The null sender `<>`.
    pub fn null() -> Sender {
        Sender {
            recorded: "<>".to_string(),
            addr: String::new(),
        }
    }
}

/// One recipient of a request.
#[derive(Debug, Clone)]
pub struct Rcpt {
    /// As the control file records it (`<a@b>` from SMTP, the printable
    /// form from a program, the bare address from mailroom).
    pub recorded: String,
    /// The bare address.
    pub addr: String,
    pub notify: Option<Notify>,
    pub orcpt: Option<String>,
    /// Delivered on this host (the log's `mailer=local`).
    pub local: bool,
}

/// A recipient a program named that was refused at submission (an
/// unknown local user, an `error:` entry); it is bounced with a copy of
/// the message.
#[derive(Debug, Clone)]
pub struct RefusedRcpt {
    /// The recipient as named.
    pub rcpt: String,
    /// The SMTP code, enhanced status and text (`550`, `5.1.1`, `User unknown`).
    pub code: u16,
    pub dsn: String,
    pub text: String,
}

/// What the front end asks for, once the message is read.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub origin: &'a Origin,
    pub sender: Sender,
    pub recipients: Vec<Rcpt>,
    /// Recipients refused at once, to be bounced (program origin only).
    pub refused: Vec<RefusedRcpt>,
    /// `-V`/`ENVID=`.
    pub envid: Option<String>,
    /// `-R`/`RET=`.
    pub ret: Option<Ret>,
    /// Declared body type (`-B`/`BODY=`): 8BITMIME (true) or 7BIT.
    pub body_8bit: Option<bool>,
    /// `-oeq`: refused recipients are not bounced.
    pub quiet_errors: bool,
    /// The sender checks' `Authentication-Results:` field, whole (mail
    /// from the internet): it goes on top, under `Return-Path:`.
    pub auth_results: Option<String>,
}

/// What became of a request.
#[derive(Debug)]
pub struct Queued {
    /// The job; `None` when every recipient was refused.
    pub id: Option<QueueId>,
    /// Over an outbound limit: committed held, not to be delivered.
    pub held: bool,
    /// Bounces queued for refused recipients.
    pub bounces: Vec<QueueId>,
}

/// A message being handed in: its job reserved, not yet committed.
pub struct Incoming<'c> {
    cfg: &'c Config,
    draft: super::Draft,
    now: i64,
}

/// Reserve a new job, after the free-space check.
pub fn open(cfg: &Config) -> Result<Incoming<'_>, Error> {
    check_free_space(cfg).map_err(Error::NoSpace)?;
    reserve(cfg)
}

/// Reserve a new job without the free-space check (mailroom's own
/// notifications must go out even on a nearly full disk).
fn reserve(cfg: &Config) -> Result<Incoming<'_>, Error> {
    let now = date::now();
    let draft = Queue::new(&cfg.queue_dir)
        .create(&mut IdGenerator::new(), now)
        .map_err(Error::Queue)?;
    Ok(Incoming { cfg, draft, now })
}

impl Incoming<'_> {
    /// The job's queue id.
    pub fn id(&self) -> &QueueId {
        &self.draft.id
    }

    /// Collect the message from `input` into the data file
    /// (`message_size_limit` applies).  `ignore_dots`: `-i`, or SMTP's
    /// already unstuffed DATA.
    pub fn read(&mut self, input: impl BufRead, ignore_dots: bool) -> Result<Collected, Error> {
        self.read_limited(input, ignore_dots, self.cfg.message_size_limit)
    }

    /// [`Incoming::read`] with a size limit of its own (0: none).
    fn read_limited(
        &mut self,
        input: impl BufRead,
        ignore_dots: bool,
        size_limit: u64,
    ) -> Result<Collected, Error> {
        let opts = CollectOptions {
            ignore_dots,
            size_limit,
            ..Default::default()
        };
        let mut w = BufWriter::with_capacity(64 * 1024, self.draft.data());
        let collected = collect(input, &mut w, &opts)?;
        Ok(collected)
    }

    /// Throw the message away (an access `DISCARD`): logged, nothing
    /// queued.
    pub fn discard(self, collected: &Collected, sender: &str, recipients: usize) {
        log::info(
            Some(self.draft.id.as_str()),
            &format!(
                "from=<{sender}>, size={}, nrcpts={recipients}: discarded (access DISCARD)",
                collected.size
            ),
        );
    }

    /// The message as it came in — its header, then the body read back
    /// from the data file — with CRLF line ends, as a DKIM signer saw it.
    pub fn as_received(&mut self, collected: &Collected) -> Vec<u8> {
        let mut lf = collected.header.to_bytes();
        lf.push(b'\n');
        lf.extend_from_slice(&self.data_written());
        let mut out = Vec::with_capacity(lf.len() + lf.len() / 30);
        for line in lf.split_inclusive(|&b| b == b'\n') {
            match line.strip_suffix(b"\n") {
                Some(l) => {
                    out.extend_from_slice(l.strip_suffix(b"\r").unwrap_or(l));
                    out.extend_from_slice(b"\r\n");
                }
                None => out.extend_from_slice(line),
            }
        }
        out
    }

    /// What has been written to the data file (for a bounce's copy).
    fn data_written(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let df = self.draft.data();
        let _ = df.flush();
        let _ = df.seek(io::SeekFrom::Start(0));
        let _ = df.read_to_end(&mut out);
        out
    }

    /// Apply the fix-ups, write the envelope, bounce refused recipients,
    /// commit durably and log.  Without recipients nothing is committed.
    pub fn commit(mut self, collected: Collected, req: Request<'_>) -> Result<Queued, Error> {
        let qid = self.draft.id.clone();
        let host = self.cfg.hostname.clone();
        let mut header = collected.header;
        if !matches!(req.origin, Origin::Mailroom { .. }) {
            header.remove("Bcc");
            header.remove("Resent-Bcc");
            // RFC 8601 §5: a field claiming to be ours that we did not
            // write is a forgery (a sender's "dmarc=pass").
            let authserv_id = crate::inbound::authserv_id(self.cfg);
            let forged = crate::inbound::results::remove_ours(&mut header, &authserv_id);
            if forged > 0 {
                log::notice(
                    Some(qid.as_str()),
                    &format!(
                        "removed {forged} Authentication-Results field(s) claiming to be from {authserv_id}"
                    ),
                );
            }
        }
        let fixed = fix_header(
            &req,
            &header,
            collected.from_line.as_deref(),
            &qid,
            &host,
            self.now,
        );
        let class = match req.origin {
            Origin::Mailroom { .. } => 0,
            _ => super::precedence_class(header.get("Precedence").map(|f| f.value()).as_deref()),
        };
        let mut env = envelope(
            &req,
            collected.size,
            collected.has_8bit,
            class,
            self.now,
            &host,
        );
        env.headers = fixed.generated;
        env.headers
            .extend(header.fields.iter().map(|f| QHeader::new("", &f.raw)));

        let bounces = if req.refused.is_empty() || req.sender.addr.is_empty() || req.quiet_errors {
            Vec::new()
        } else {
            self.bounce_refused(&req, &env)
        };
        for r in &req.refused {
            log::info(
                Some(qid.as_str()),
                &format!(
                    "to={}, delay=00:00:00, mailer=local, pri=0, dsn={}, reply={} {} {}, stat={}",
                    r.rcpt, r.dsn, r.code, r.dsn, r.text, r.text
                ),
            );
        }
        if req.recipients.is_empty() {
            return Ok(Queued {
                id: None,
                held: false,
                bounces,
            });
        }
        // The outbound limits (crate::limits): a local program's message
        // over a limit is held, an SMTP client's refused.
        let over = self.over_limit(&req, &header);
        let (cfg, now) = (self.cfg, self.now);
        let held = match over {
            None => false,
            Some((over, alert)) if req.origin.holds_over_limit() => {
                env.quarantine = Some(format!("held: {}", over.text()));
                self.draft.commit_held(&mut env).map_err(Error::Queue)?;
                log::notice(Some(qid.as_str()), &format!("held: {}", over.text()));
                let alert = alert.and_then(|a| send_alert(cfg, now, &over, a, &qid, true));
                log_accepted(
                    &qid,
                    &req,
                    &env,
                    collected.size,
                    class,
                    fixed.msgid.as_deref(),
                );
                return Ok(Queued {
                    id: Some(qid),
                    held: true,
                    bounces: bounces.into_iter().chain(alert).collect(),
                });
            }
            Some((over, alert)) => {
                log::notice(Some(qid.as_str()), &format!("refused: {}", over.text()));
                let alert =
                    alert.and_then(|a| send_alert(self.cfg, self.now, &over, a, &qid, false));
                return Err(Error::OverLimit(over.text(), alert));
            }
        };
        self.draft.commit(&mut env).map_err(Error::Queue)?;
        log_accepted(
            &qid,
            &req,
            &env,
            collected.size,
            class,
            fixed.msgid.as_deref(),
        );
        Ok(Queued {
            id: Some(qid),
            held,
            bounces,
        })
    }

    /// Count the request against the outbound limits; the key over its
    /// limit and, when an alert is due, who gets it.
    fn over_limit(
        &self,
        req: &Request<'_>,
        header: &crate::message::Header,
    ) -> Option<(limits::Over, Option<Alerting>)> {
        let remote = req.recipients.iter().filter(|r| !r.local).count() as u32;
        let who = req.origin.counted_as(remote)?;
        let sender_domain = address::split_addr(&req.sender.addr).1;
        let sub = limits::Submission {
            who,
            sender_domain,
            remote_recipients: remote,
        };
        let over = limits::check(self.cfg, &sub, self.now)?;
        let alert = over
            .alert_due
            .then(|| limits::Settings::from_config(self.cfg).ok()?.alert)
            .flatten()
            .map(|to| Alerting {
                to,
                offending: limits::alert::Offending {
                    qid: String::new(),
                    held: false,
                    subject: header.get("Subject").map(|f| f.value()),
                    recipient_domains: req
                        .recipients
                        .iter()
                        .filter(|r| !r.local)
                        .filter_map(|r| address::split_addr(&r.addr).1)
                        .map(str::to_ascii_lowercase)
                        .collect(),
                    script: header
                        .get("X-PHP-Originating-Script")
                        .map(|f| f.value())
                        .or_else(|| match req.origin {
                            Origin::Program(p) => p.cwd.clone().map(|d| format!("run in {d}")),
                            _ => None,
                        }),
                },
            });
        Some((over, alert))
    }

    /// Bounce the refused recipients with a copy of the message as it
    /// would have been queued.
    fn bounce_refused(&mut self, req: &Request<'_>, env: &Envelope) -> Vec<QueueId> {
        let qid = self.draft.id.clone();
        let host = &self.cfg.hostname;
        let mut original = Vec::new();
        for h in &env.headers {
            if !h.cond.is_empty() && h.cond != "D" && h.cond != "F" && h.cond != "M" {
                continue;
            }
            original.extend_from_slice(&h.field);
            original.push(b'\n');
        }
        original.push(b'\n');
        original.extend(self.data_written());
        let entries: Vec<dsn::Entry> = req
            .refused
            .iter()
            .map(|r| dsn::Entry {
                recipient: address::qualify(
                    &address::parse_one(&r.rcpt)
                        .map(|m| m.addr)
                        .unwrap_or_else(|_| r.rcpt.clone()),
                    host,
                ),
                actual: None,
                original: None,
                status: r.dsn.clone(),
                diagnostic: format!("{} {} {}", r.code, r.dsn, r.text),
                remote_reply: false,
                remote_mta: None,
                last_attempt: self.now,
            })
            .collect();
        let to = address::qualify(&req.sender.addr, host);
        let received_from = match req.origin {
            Origin::Program(p) => format!("{}@localhost", p.login),
            _ => "localhost".to_string(),
        };
        let report = dsn::Report {
            kind: dsn::Kind::Failure,
            qid: qid.as_str(),
            host,
            to: &to,
            arrival: self.now,
            received_from: &received_from,
            envid: req.envid.as_deref(),
            headers_only: req.ret == Some(Ret::Headers),
            to_postmaster: false,
            entries: &entries,
        };
        match dsn::build(&report, &mut &original[..]) {
            Ok(bounce) => match notification(self.cfg, &to, &bounce, "MAILER-DAEMON@localhost") {
                Ok(bid) => {
                    log::info(
                        Some(qid.as_str()),
                        &format!(
                            "{bid}: DSN: {}",
                            req.refused.first().map(|r| r.text.as_str()).unwrap_or("")
                        ),
                    );
                    vec![bid]
                }
                Err(f) => {
                    log::err(Some(qid.as_str()), &format!("cannot queue the bounce: {f}"));
                    Vec::new()
                }
            },
            Err(e) => {
                log::err(Some(qid.as_str()), &format!("cannot build the bounce: {e}"));
                Vec::new()
            }
        }
    }
}

/// Queue the alert about `over` (see [`crate::limits::alert`]).
fn send_alert(
    cfg: &Config,
    now: i64,
    over: &limits::Over,
    mut a: Alerting,
    qid: &QueueId,
    held: bool,
) -> Option<QueueId> {
    a.offending.qid = qid.to_string();
    a.offending.held = held;
    let msg = limits::alert::build(cfg, over, &a.offending, &a.to, now);
    match notification(cfg, &a.to, &msg, "MAILER-DAEMON@localhost") {
        Ok(id) => {
            log::info(
                Some(qid.as_str()),
                &format!("{id}: limit alert to {}: {}", a.to, over.text()),
            );
            Some(id)
        }
        Err(f) => {
            log::err(
                Some(qid.as_str()),
                &format!("cannot queue the limit alert: {f}"),
            );
            None
        }
    }
}

/// Queue a complete message made by mailroom itself (a bounce, a delay
/// warning, a receipt, an autoreply) from the null sender to `to`.
/// `relay` names the submitter for `Received:` and the log.
pub fn notification(
    cfg: &Config,
    to: &str,
    message: &[u8],
    relay: &str,
) -> Result<QueueId, Failure> {
    let origin = Origin::Mailroom {
        relay: relay.to_string(),
    };
    let queue = |e: Error| e.failure(cfg);
    let mut incoming = reserve(cfg).map_err(queue)?;
    // A bounce quotes a message that was itself at most the size limit:
    // no limit of its own.
    let collected = incoming
        .read_limited(message, true, 0)
        .map_err(|e| match e {
            Error::Queue(_) | Error::Read(_) => queue(e),
            _ => Failure::new(ExitCode::Software, "generated message too large"),
        })?;
    let req = Request {
        origin: &origin,
        sender: Sender::null(),
        recipients: vec![Rcpt {
            recorded: to.to_string(),
            addr: to.to_string(),
            notify: None,
            orcpt: None,
            local: false,
        }],
        refused: Vec::new(),
        envid: None,
        ret: None,
        body_8bit: None,
        quiet_errors: true,
        auth_results: None,
    };
    let queued = incoming.commit(collected, req).map_err(queue)?;
    queued
        .id
        .ok_or_else(|| Failure::new(ExitCode::Software, "notification without a recipient"))
}

/// Queue a copy of a job's message under another envelope: the runner's
/// split (mail for a list goes out as its `owner-`, a `.forward` of
/// another owner).  `env` is the new envelope (its attempts cleared by the
/// caller); `body` the data file's bytes.
pub fn copy(
    cfg: &Config,
    mut env: Envelope,
    body: &[u8],
    parent_rcpts: usize,
) -> Result<QueueId, String> {
    let mut draft = Queue::new(&cfg.queue_dir)
        .create(&mut IdGenerator::new(), date::now())
        .map_err(|e| e.to_string())?;
    draft.data().write_all(body).map_err(|e| e.to_string())?;
    env.df_inode = None;
    let sender = env.sender.clone();
    let nid = draft.commit(&mut env).map_err(|e| e.to_string())?;
    log::info(
        Some(nid.as_str()),
        &format!("split from {parent_rcpts}: sender {sender}"),
    );
    Ok(nid)
}

/// The `from=` line and, but for mailroom's own messages, one `to=` line
/// per recipient.
fn log_accepted(
    qid: &QueueId,
    req: &Request<'_>,
    env: &Envelope,
    size: u64,
    class: i64,
    msgid: Option<&str>,
) {
    let n = req.recipients.len();
    let sender = &env.sender;
    let msgid = msgid.map(|m| format!(", msgid={m}")).unwrap_or_default();
    let body = if env.body_type.as_deref() == Some("8BITMIME") {
        ", bodytype=8BITMIME"
    } else {
        ""
    };
    // One whole line per origin, so that each is found as written in the
    // log catalogue.
    match req.origin {
        Origin::Program(p) => log::info(
            Some(qid.as_str()),
            &format!(
                "from={sender}, size={size}, class={class}, nrcpts={n}{msgid}{body}, relay={}@localhost",
                p.login
            ),
        ),
        Origin::Smtp(c) => {
            let auth = c
                .auth
                .as_ref()
                .map(|a| format!(", auth={a}"))
                .unwrap_or_default();
            log::info(
                Some(qid.as_str()),
                &format!(
                    "from={sender}, size={size}, class={class}, nrcpts={n}{msgid}{body}, proto={}, relay={}{auth}",
                    c.proto,
                    smtp_relay(c)
                ),
            );
        }
        Origin::Mailroom { relay } => {
            log::info(
                Some(qid.as_str()),
                &format!(
                    "from={sender}, size={size}, class={class}, nrcpts={n}{msgid}{body}, relay={relay}"
                ),
            );
            return;
        }
    }
    for r in &req.recipients {
        log::info(
            Some(qid.as_str()),
            &format!(
                "to={}, delay=00:00:00, mailer={}, pri={}, stat=queued",
                r.recorded,
                if r.local { "local" } else { "esmtp" },
                env.priority
            ),
        );
    }
}
