//! Submission: a message from a local program (`sendmail -t -i`, `mail`,
//! cron) into the queue, the way sendmail 8 does it.
//!
//! 1. Recipients: command-line arguments (each may be a list), plus with
//!    `-t` those of `To:`/`Cc:`/`Bcc:` — or only `Resent-To:`/`-Cc:`/`-Bcc:`
//!    when any of those exists.  An address given twice is queued once.
//! 2. The message is read with sendmail's line rules ([`collect`](mod@crate::message::collect))
//!    straight into the queue's data file.
//! 3. Header fix-ups, on the raw header: `Bcc:`/`Resent-Bcc:` removed;
//!    `Received:` added; `Date:`, `From:`, `Message-Id:` added when missing
//!    (`Resent-Date:`/`Resent-Message-Id:` too for a resent message);
//!    `X-Authentication-Warning:` when a caller who is not trusted sets the
//!    envelope sender to someone else.  Every other byte is kept.
//! 4. The job is committed durably ([`crate::queue::spool`]); only then does
//!    the caller get exit 0.
//!
//! Nothing on this path touches DNS or the network.
//!
//! Log lines (one `from=` per message, one `to=` per recipient; every line
//! with its meaning is in [`crate::log::catalog`]):
//!
//! ```text
//! QID: from=SENDER, size=N, class=N, nrcpts=N, msgid=<ID>[, bodytype=8BITMIME], relay=USER@localhost
//! QID: to=RCPT, delay=00:00:00, mailer=local|esmtp, pri=N, stat=queued
//! QID: Authentication-Warning: HOST: USER set sender to ADDR using -f
//! ```

use std::fs;
use std::io::{self, BufRead, BufWriter, Write};

use crate::address::{self, AddrError, Mailbox};
use crate::cli::sendmail_args::{Invocation, Notify, Ret};
use crate::config::Config;
use crate::date;
use crate::exit::{ExitCode, Failure, io_reason};
use crate::log;
use crate::message::{CollectError, CollectOptions, Field, Header, collect};
use crate::queue::{self, Envelope, IdGenerator, QHeader, Queue, QueueId, Recipient};
use crate::resolve::{Domains, Refusal, Resolver};
use crate::users::User;

/// Program version, shown in `Received:` headers.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Users sendmail's standard configuration always trusts (class `{t}`).
const ALWAYS_TRUSTED: [&str; 3] = ["root", "daemon", "uucp"];

/// Who is submitting.
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: u32,
    /// Login name (from the passwd entry of the real uid).
    pub login: String,
    /// Full name from GECOS.
    pub full_name: String,
    /// May set the envelope sender freely (no warning header).
    pub trusted: bool,
}

impl Caller {
    /// The calling user, from the real uid.  Without a passwd entry the
    /// caller can still submit with `-f`.
    pub fn current(cfg: &Config) -> Option<Caller> {
        let uid = nix::unistd::getuid().as_raw();
        let user: User = crate::users::by_uid(uid)?;
        let trusted = is_trusted(cfg, &user.name);
        Some(Caller {
            uid,
            full_name: user.full_name(),
            login: user.name,
            trusted,
        })
    }
}

/// Is `login` a trusted user: root, daemon, uucp, a name in
/// `/etc/mail/trusted-users`, or in `trusted_users` of mailroom.conf?
pub fn is_trusted(cfg: &Config, login: &str) -> bool {
    if ALWAYS_TRUSTED.contains(&login) || cfg.trusted_users.iter().any(|u| u == login) {
        return true;
    }
    match fs::read_to_string(cfg.paths.etc_mail("trusted-users")) {
        Ok(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .any(|l| l == login),
        Err(_) => false,
    }
}

/// What became of a submission.
#[derive(Debug)]
pub struct Accepted {
    /// The queued message; `None` when every recipient was refused.
    pub id: Option<QueueId>,
    pub recipients: usize,
    /// Recipients refused at once (unknown local users, `error:` entries),
    /// with why.  They have been reported on stderr and bounced.
    pub refused: Vec<(String, Refusal)>,
    /// The bounces queued for them.
    pub bounces: Vec<QueueId>,
}

impl Accepted {
    /// The exit code sendmail gives: 0, or the last refusal's code
    /// (67 for "User unknown").
    pub fn exit_code(&self) -> ExitCode {
        self.refused.last().map_or(ExitCode::Ok, |(_, r)| r.exit)
    }
}

/// Check local recipients now, as sendmail does at submission: a recipient
/// whose resolution ends only in errors is refused (and reported); one
/// with at least one good destination is kept (its bad members bounce at
/// delivery).  Remote recipients are not looked at: no DNS here.
fn check_local(
    cfg: &Config,
    domains: &Domains,
    rcpts: Vec<Mailbox>,
) -> (Vec<Mailbox>, Vec<(String, Refusal)>) {
    if !rcpts.iter().any(|m| domains.is_local_address(&m.addr)) {
        return (rcpts, Vec::new());
    }
    let resolver = Resolver::for_checking(cfg);
    let mut kept = Vec::new();
    let mut refused = Vec::new();
    for m in rcpts {
        if !domains.is_local_address(&m.addr) {
            kept.push(m);
            continue;
        }
        let res = resolver.resolve(&m.display);
        let errors: Vec<(String, Refusal)> = res
            .errors()
            .filter(|(_, r)| !r.temporary)
            .map(|(f, r)| (f.printable.clone(), r.clone()))
            .collect();
        for (p, r) in &errors {
            eprintln!("{p}... {}", r.text);
        }
        let good = res
            .finals
            .iter()
            .any(|f| !matches!(f.target, crate::resolve::Target::Error(_)));
        if errors.is_empty() || good {
            kept.push(m);
        } else {
            refused.extend(errors.into_iter().map(|(_, r)| (m.display.clone(), r)));
        }
    }
    (kept, refused)
}

fn bad_address(text: &str, e: AddrError) -> Failure {
    Failure::usage(format!("invalid address {:?}: {e}", shortened(text)))
        .hint("correct the address and send again")
}

/// At most 100 characters of `text` for an error line (a hostile
/// argument may be 100 KB long).
fn shortened(text: &str) -> String {
    match text.char_indices().nth(100) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

/// Parse command-line recipients; each argument may hold a list.
pub fn parse_recipients(args: &[String]) -> Result<Vec<Mailbox>, Failure> {
    let mut out = Vec::new();
    for a in args {
        out.extend(address::parse_list(a).map_err(|e| bad_address(a, e))?);
    }
    Ok(out)
}

/// Recipients named in the header for `-t`: `Resent-To/Cc/Bcc` if any is
/// present, else `To/Cc/Bcc`.  Addresses that do not parse are reported on
/// stderr and skipped, as sendmail does.
pub fn header_recipients(header: &Header) -> Vec<Mailbox> {
    let resent = ["Resent-To", "Resent-Cc", "Resent-Bcc"];
    let plain = ["To", "Cc", "Bcc"];
    let names: &[&str] = if resent.iter().any(|n| header.has(n)) {
        &resent
    } else {
        &plain
    };
    let mut out = Vec::new();
    for f in &header.fields {
        if !names.iter().any(|n| f.is(n)) {
            continue;
        }
        let value = f.value();
        match address::parse_list(&value) {
            Ok(list) => out.extend(list.into_iter().filter(|m| !m.addr.is_empty())),
            Err(e) => eprintln!(
                "sendmail: ignoring {} header address {:?}: {e}",
                f.name,
                shortened(&value)
            ),
        }
    }
    out
}

/// Remove later duplicates (same address, domain case-insensitive).
pub fn dedup(list: Vec<Mailbox>) -> Vec<Mailbox> {
    let mut seen = std::collections::HashSet::new();
    list.into_iter()
        .filter(|m| seen.insert(address::dedup_key(&m.addr)))
        .collect()
}

/// A display name for `From:`, quoted when it holds characters that are
/// special in addresses (as sendmail's MustQuoteChars).
pub fn quote_display_name(name: &str) -> String {
    let special = |c: char| "()<>@,;:\\\".[]'".contains(c);
    if name.chars().any(special) {
        let escaped: String = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    } else {
        name.to_string()
    }
}

/// Is there enough free space in the queue file system?
pub fn check_free_space(cfg: &Config) -> Result<(), Failure> {
    if cfg.min_free_space == 0 {
        return Ok(());
    }
    let st = match nix::sys::statvfs::statvfs(&cfg.queue_dir) {
        Ok(s) => s,
        Err(_) => return Ok(()), // the open will report the real problem
    };
    let free = st.blocks_available() as u64 * st.fragment_size() as u64;
    if free < cfg.min_free_space {
        return Err(Failure::new(
            ExitCode::TempFail,
            format!(
                "message not queued: insufficient disk space in {} ({} bytes free, {} required)",
                cfg.queue_dir.display(),
                free,
                cfg.min_free_space
            ),
        )
        .hint("free some space and send again"));
    }
    Ok(())
}

pub fn queue_failure(cfg: &Config, e: &io::Error) -> Failure {
    let code = match ExitCode::for_io(e) {
        // A file system remounted read-only (after errors, or for
        // maintenance) comes back: the caller should retry, as for a
        // full disk, not be told sendmail is installed wrongly.
        _ if e.raw_os_error() == Some(libc::EROFS) => ExitCode::TempFail,
        ExitCode::TempFail => ExitCode::TempFail,
        ExitCode::NoPerm | ExitCode::OsFile => ExitCode::CantCreat,
        _ => ExitCode::TempFail,
    };
    let hint = match code {
        ExitCode::CantCreat => format!(
            "check that {} exists and that sendmail is installed set-group-id mqueue (run 'make install' or 'mailroom check')",
            cfg.queue_dir.display()
        ),
        _ => "try again later".to_string(),
    };
    Failure::new(
        code,
        format!(
            "cannot queue message in {}: {}",
            cfg.queue_dir.display(),
            io_reason(e)
        ),
    )
    .hint(hint)
}

/// Queue one message read from `input`.
pub fn submit(
    cfg: &Config,
    inv: &Invocation,
    caller: Option<&Caller>,
    input: impl BufRead,
) -> Result<Accepted, Failure> {
    if !inv.extract_recipients && inv.recipients.is_empty() {
        return Err(Failure::usage("Recipient names must be specified")
            .hint("name the recipients as arguments, or use -t to read them from the header"));
    }
    let argv_rcpts = parse_recipients(&inv.recipients)?;

    // The envelope sender.
    let (sender_text, sender_addr) = match &inv.sender {
        Some((s, _)) => {
            let m = address::parse_one(s).map_err(|e| bad_address(s, e))?;
            let text = if m.addr.is_empty() {
                "<>".to_string()
            } else {
                m.display.clone()
            };
            (text, m.addr)
        }
        None => match caller {
            Some(c) => (c.login.clone(), c.login.clone()),
            None => {
                return Err(Failure::new(
                    ExitCode::NoUser,
                    format!(
                        "cannot determine the sender: no passwd entry for uid {}",
                        nix::unistd::getuid().as_raw()
                    ),
                )
                .hint("give the sender with -f ADDRESS, or add the user to /etc/passwd"));
            }
        },
    };
    let login = caller
        .map(|c| c.login.clone())
        .unwrap_or_else(|| format!("uid{}", nix::unistd::getuid().as_raw()));
    let trusted = caller.is_some_and(|c| c.trusted);

    check_free_space(cfg)?;
    let queue = Queue::new(&cfg.queue_dir);
    let now = date::now();
    let mut ids = IdGenerator::new();
    let mut draft = queue
        .create(&mut ids, now)
        .map_err(|e| queue_failure(cfg, &e))?;
    let qid = draft.id.clone();

    let opts = CollectOptions {
        ignore_dots: inv.ignore_dots,
        size_limit: cfg.message_size_limit,
        ..Default::default()
    };
    let collected = {
        let mut w = BufWriter::with_capacity(64 * 1024, draft.data());
        collect(input, &mut w, &opts)
    };
    let collected = match collected {
        Ok(c) => c,
        Err(CollectError::Write(e)) => return Err(queue_failure(cfg, &e)),
        Err(CollectError::Read(e)) => {
            return Err(Failure::new(
                ExitCode::IoErr,
                format!("cannot read the message: {}", io_reason(&e)),
            )
            .hint("nothing was queued; send again"));
        }
        Err(CollectError::TooBig(limit)) => {
            return Err(Failure::new(
                ExitCode::DataErr,
                format!("message not queued: Message exceeds maximum fixed size ({limit})"),
            )
            .hint(
                "send a smaller message, or raise message_size_limit in /etc/mail/mailroom.conf",
            ));
        }
        Err(CollectError::HeaderTooBig(limit)) => {
            return Err(Failure::new(
                ExitCode::DataErr,
                format!("message not queued: the header is larger than {limit} bytes"),
            )
            .hint("check the program that wrote the message"));
        }
    };
    let mut header = collected.header;

    // Recipients.
    let mut rcpts = Vec::new();
    if inv.extract_recipients {
        rcpts.extend(header_recipients(&header));
    }
    rcpts.extend(argv_rcpts.iter().cloned());
    let rcpts = dedup(rcpts);
    if rcpts.is_empty() {
        return Err(Failure::usage("No recipient addresses found in header")
            .hint("add To:, Cc: or Bcc: to the message, or name recipients as arguments"));
    }
    let domains = Domains::load(cfg);
    let (rcpts, refused) = check_local(cfg, &domains, rcpts);

    let host = &cfg.hostname;
    let resent = header.has_prefix("Resent-");
    header.remove("Bcc");
    header.remove("Resent-Bcc");

    // Generated headers, in sendmail's order.
    let mut generated: Vec<QHeader> = Vec::new();
    generated.push(QHeader::new("P", b"Return-Path: <\x81g>"));
    let date_now = date::rfc5322(now);
    // sendmail adds "for RCPT" when exactly one recipient was named on the
    // command line.
    let received = match argv_rcpts.as_slice() {
        [only] => format!(
            "Received: (from {login}@localhost)\n\tby {host} (mailroom/{VERSION}) id {qid}\n\tfor {}; {date_now}",
            only.display
        ),
        _ => format!(
            "Received: (from {login}@localhost)\n\tby {host} (mailroom/{VERSION}) id {qid};\n\t{date_now}"
        ),
    };
    generated.push(QHeader::new("", received.as_bytes()));
    let msg_date = collected
        .from_line
        .as_deref()
        .and_then(|l| {
            // "From sender DATE"
            let rest = l.strip_prefix("From ")?;
            let date_part = rest.split_once(' ').map(|(_, d)| d)?;
            date::parse_ctime(date_part)
        })
        .map(date::rfc5322)
        .unwrap_or_else(|| date_now.clone());
    if resent && !header.has("Resent-Date") {
        generated.push(QHeader::new(
            "D",
            format!("Resent-Date: {date_now}").as_bytes(),
        ));
    }
    if !header.has("Date") {
        generated.push(QHeader::new("D", format!("Date: {msg_date}").as_bytes()));
    }
    // Full name: -F, else GECOS when the sender is the caller.
    let full_name = match &inv.full_name {
        Some(f) => f.clone(),
        None => match caller {
            Some(c) if sender_addr == c.login => c.full_name.clone(),
            _ => String::new(),
        },
    };
    let from_addr = if sender_addr.is_empty() {
        "MAILER-DAEMON".to_string()
    } else {
        sender_addr.clone()
    };
    if resent && !header.has("Resent-From") {
        let v = if full_name.is_empty() {
            from_addr.clone()
        } else {
            format!("{} <{from_addr}>", quote_display_name(&full_name))
        };
        generated.push(QHeader::new("F", format!("Resent-From: {v}").as_bytes()));
    }
    if !header.has("From") {
        let v = if full_name.is_empty() {
            from_addr.clone()
        } else {
            format!("{} <{from_addr}>", quote_display_name(&full_name))
        };
        generated.push(QHeader::new("F", format!("From: {v}").as_bytes()));
    }
    if !full_name.is_empty() {
        generated.push(QHeader::new(
            "x",
            format!("Full-Name: {}", quote_display_name(&full_name)).as_bytes(),
        ));
    }
    let message_id = format!("<{}.{qid}@{host}>", date::message_id_stamp(now));
    if resent && !header.has("Resent-Message-Id") {
        generated.push(QHeader::new(
            "M",
            format!("Resent-Message-Id: {message_id}").as_bytes(),
        ));
    }
    let msgid_logged = match header.get("Message-Id") {
        Some(f) => f.value(),
        None => {
            generated.push(QHeader::new(
                "M",
                format!("Message-Id: {message_id}").as_bytes(),
            ));
            message_id.clone()
        }
    };
    if let Some((_, flag)) = &inv.sender
        && !trusted
        && !is_own_address(&sender_addr, &login, host)
    {
        let text = format!("{host}: {login} set sender to {sender_text} using -{flag}");
        generated.push(QHeader::new(
            "",
            format!("X-Authentication-Warning: {text}").as_bytes(),
        ));
        log::notice(
            Some(qid.as_str()),
            &format!("Authentication-Warning: {text}"),
        );
    }

    // The envelope.
    let class = queue::precedence_class(header.get("Precedence").map(|f| f.value()).as_deref());
    let size = collected.size;
    let mut env = Envelope {
        created: now,
        priority: queue::initial_priority(size, class, rcpts.len()),
        sender: sender_text.clone(),
        envid: inv.envid.clone(),
        ..Default::default()
    };
    env.body_type = match inv.body_8bit {
        Some(true) if collected.has_8bit => Some("8BITMIME".to_string()),
        Some(_) => Some("7BIT".to_string()),
        None => None,
    };
    env.set_flag('8', collected.has_8bit);
    env.set_flag('b', inv.extract_recipients);
    env.set_flag('d', inv.ret.is_some());
    env.set_flag('n', inv.ret == Some(Ret::Headers));
    env.set_flag('s', true);
    env.macros
        .push(("_".to_string(), format!("{login}@localhost").into_bytes()));
    env.macros
        .push(("daemon_flags".to_string(), b"c u".to_vec()));
    if trusted && !sender_addr.is_empty() {
        env.auth = Some(address::qualify(&sender_addr, host));
    }
    let rflags = format!("P{}", Notify::rcpt_flags(inv.notify));
    env.recipients = rcpts
        .iter()
        .map(|m| Recipient {
            flags: rflags.clone(),
            addr: m.display.clone(),
            final_rcpt: Some(format!("RFC822; {}", address::qualify(&m.addr, host))),
            ..Default::default()
        })
        .collect();
    env.headers = generated;
    env.headers.extend(
        header
            .fields
            .iter()
            .map(|f: &Field| QHeader::new("", &f.raw)),
    );

    // The refused recipients are bounced with a copy of the message.
    let mut bounces = Vec::new();
    if !refused.is_empty() && !sender_addr.is_empty() && inv.error_mode != Some('q') {
        let mut original = Vec::new();
        for h in &env.headers {
            if !h.cond.is_empty() && h.cond != "D" && h.cond != "F" && h.cond != "M" {
                continue;
            }
            original.extend_from_slice(&h.field);
            original.push(b'\n');
        }
        original.push(b'\n');
        {
            use std::io::{Read, Seek};
            let df = draft.data();
            let _ = df.flush();
            let _ = df.seek(std::io::SeekFrom::Start(0));
            let _ = df.read_to_end(&mut original);
        }
        let arrival = now;
        let entries: Vec<crate::dsn::Entry> = refused
            .iter()
            .map(|(rcpt, r)| crate::dsn::Entry {
                recipient: address::qualify(
                    &address::parse_one(rcpt)
                        .map(|m| m.addr)
                        .unwrap_or_else(|_| rcpt.clone()),
                    host,
                ),
                actual: None,
                original: None,
                status: r.dsn.clone(),
                diagnostic: format!("{} {} {}", r.code, r.dsn, r.text),
                remote_reply: false,
                remote_mta: None,
                last_attempt: arrival,
            })
            .collect();
        let to = address::qualify(&sender_addr, host);
        let report = crate::dsn::Report {
            kind: crate::dsn::Kind::Failure,
            qid: qid.as_str(),
            host,
            to: &to,
            arrival,
            received_from: &format!("{login}@localhost"),
            envid: inv.envid.as_deref(),
            headers_only: inv.ret == Some(Ret::Headers),
            to_postmaster: false,
            entries: &entries,
        };
        match crate::dsn::build(&report, &mut &original[..]) {
            Ok(bounce) => {
                match inject(
                    cfg,
                    "<>",
                    std::slice::from_ref(&to),
                    &bounce,
                    "MAILER-DAEMON@localhost",
                ) {
                    Ok(bid) => {
                        log::info(
                            Some(qid.as_str()),
                            &format!(
                                "{bid}: DSN: {}",
                                refused.first().map(|(_, r)| r.text.as_str()).unwrap_or("")
                            ),
                        );
                        bounces.push(bid);
                    }
                    Err(f) => {
                        log::err(Some(qid.as_str()), &format!("cannot queue the bounce: {f}"))
                    }
                }
            }
            Err(e) => log::err(Some(qid.as_str()), &format!("cannot build the bounce: {e}")),
        }
    }
    for (rcpt, r) in &refused {
        log::info(
            Some(qid.as_str()),
            &format!(
                "to={rcpt}, delay=00:00:00, mailer=local, pri=0, dsn={}, reply={} {} {}, stat={}",
                r.dsn, r.code, r.dsn, r.text, r.text
            ),
        );
    }
    if rcpts.is_empty() {
        drop(draft);
        return Ok(Accepted {
            id: None,
            recipients: 0,
            refused,
            bounces,
        });
    }

    draft.commit(&mut env).map_err(|e| queue_failure(cfg, &e))?;

    // Log as sendmail does.
    let mut from_line = format!(
        "from={sender_text}, size={size}, class={class}, nrcpts={}, msgid={msgid_logged}",
        rcpts.len()
    );
    if env.body_type.as_deref() == Some("8BITMIME") {
        from_line.push_str(", bodytype=8BITMIME");
    }
    from_line.push_str(&format!(", relay={login}@localhost"));
    log::info(Some(qid.as_str()), &from_line);
    for m in &rcpts {
        let mailer = if domains.is_local_address(&m.addr) {
            "local"
        } else {
            "esmtp"
        };
        log::info(
            Some(qid.as_str()),
            &format!(
                "to={}, delay=00:00:00, mailer={mailer}, pri={}, stat=queued",
                m.display, env.priority
            ),
        );
    }
    Ok(Accepted {
        id: Some(qid),
        recipients: rcpts.len(),
        refused,
        bounces,
    })
}

/// Queue a complete message (header and body) made by mailroom itself — a
/// bounce, an autoreply — from `sender` to `rcpts`.  `relay` names the
/// submitter for the `Received:` header and the log.
pub fn inject(
    cfg: &Config,
    sender: &str,
    rcpts: &[String],
    message: &[u8],
    relay: &str,
) -> Result<QueueId, Failure> {
    let queue = Queue::new(&cfg.queue_dir);
    let now = date::now();
    let mut ids = IdGenerator::new();
    let mut draft = queue
        .create(&mut ids, now)
        .map_err(|e| queue_failure(cfg, &e))?;
    let qid = draft.id.clone();
    let collected = {
        let mut w = BufWriter::new(draft.data());
        collect(
            message,
            &mut w,
            &CollectOptions {
                ignore_dots: true,
                ..Default::default()
            },
        )
    }
    .map_err(|e| match e {
        CollectError::Write(e) | CollectError::Read(e) => queue_failure(cfg, &e),
        _ => Failure::new(ExitCode::Software, "generated message too large"),
    })?;
    let host = &cfg.hostname;
    let mut env = Envelope {
        created: now,
        priority: queue::initial_priority(collected.size, 0, rcpts.len()),
        sender: sender.to_string(),
        ..Default::default()
    };
    env.set_flag('8', collected.has_8bit);
    env.set_flag('s', true);
    if sender == "<>" {
        env.set_flag('r', true);
    }
    env.macros
        .push(("_".to_string(), relay.as_bytes().to_vec()));
    env.recipients = rcpts
        .iter()
        .map(|r| Recipient {
            flags: "PFD".to_string(),
            addr: r.clone(),
            final_rcpt: Some(format!("RFC822; {}", address::qualify(r, host))),
            ..Default::default()
        })
        .collect();
    env.headers.push(QHeader::new("P", b"Return-Path: <\x81g>"));
    env.headers.push(QHeader::new(
        "",
        format!("Received: from localhost (localhost)\n\tby {host} (mailroom/{VERSION}) id {qid};\n\t{}", date::rfc5322(now)).as_bytes(),
    ));
    env.headers.extend(
        collected
            .header
            .fields
            .iter()
            .map(|f| QHeader::new("", &f.raw)),
    );
    draft.commit(&mut env).map_err(|e| queue_failure(cfg, &e))?;
    log::info(
        Some(qid.as_str()),
        &format!(
            "from={sender}, size={}, class=0, nrcpts={}, relay={relay}",
            collected.size,
            rcpts.len()
        ),
    );
    Ok(qid)
}

/// Does `addr` name the caller themselves (`dave`, `dave@HOST`,
/// `dave@localhost`)?
fn is_own_address(addr: &str, login: &str, host: &str) -> bool {
    match address::split_addr(addr) {
        (l, None) => l == login,
        (l, Some(d)) => {
            l == login && (d.eq_ignore_ascii_case(host) || d.eq_ignore_ascii_case("localhost"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_quoted_like_sendmail() {
        assert_eq!(quote_display_name("Dave Q. User"), "\"Dave Q. User\"");
        assert_eq!(quote_display_name("root"), "root");
        assert_eq!(quote_display_name("CronDaemon"), "CronDaemon");
    }

    #[test]
    fn resent_headers_take_over_for_t() {
        let h = Header::parse(b"To: a@x\nResent-To: b@y\nCc: c@z\nResent-Bcc: d@w\n");
        let v: Vec<String> = header_recipients(&h).into_iter().map(|m| m.addr).collect();
        assert_eq!(v, ["b@y", "d@w"]);
        let h = Header::parse(b"To: a@x, b@y\nCc: c@z\nBcc: a@X\n");
        let v: Vec<String> = dedup(header_recipients(&h))
            .into_iter()
            .map(|m| m.addr)
            .collect();
        assert_eq!(v, ["a@x", "b@y", "c@z"]);
    }

    #[test]
    fn own_address() {
        assert!(is_own_address("dave", "dave", "h.example"));
        assert!(is_own_address("dave@h.example", "dave", "h.example"));
        assert!(!is_own_address("forged@remote.test", "dave", "h.example"));
    }
}
