//! `deliver`, the local delivery agent's front end (like mail.local; the
//! queue runner calls [`crate::deliver`] in-process, this program is for
//! use by hand and by other MTAs):
//!
//! `deliver [-f SENDER] [-T ARRIVAL] [-Q QUEUEID] [-q] [-C USER:UID:GID] RECIPIENT...`
//!
//! Not set-id: run by root it delivers as each target's owner; run by
//! anyone else, as itself.  `MAILROOM_ROOT` is honoured unless it was
//! started set-id.

use std::io::Write;
use std::time::Instant;

use crate::config::{Config, Paths};
use crate::deliver::{Outcome, Rcpt, Request, deliver, parse_ctl};
use crate::mailbox::Message;
use crate::resolve::{Owner, Resolver};

/// Run `deliver` with `args` (including `argv[0]`); returns the exit code.
///
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
    let paths = Paths::from_env(!crate::privs::is_elevated());
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
        lmtp_journal: None,
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
