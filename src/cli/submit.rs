//! Submission: a message from a local program (`sendmail -t -i`, `mail`,
//! cron), translated from argv into a request at the queue's door
//! ([`crate::queue::enqueue`]), the way sendmail 8 does it.
//!
//! 1. Recipients: command-line arguments (each may be a list), plus with
//!    `-t` those of `To:`/`Cc:`/`Bcc:` — or only `Resent-To:`/`-Cc:`/`-Bcc:`
//!    when any of those exists.  An address given twice is queued once.
//! 2. Local recipients are checked now, as sendmail does: one whose
//!    resolution ends only in errors is refused (reported on stderr, and
//!    bounced with a copy of the message by the door).
//! 3. The door collects the message, applies the header fix-ups of a
//!    local program, commits durably, and logs; only then does the caller
//!    get exit 0.
//!
//! Nothing on this path touches DNS or the network.

use std::fs;
use std::io::BufRead;

use super::sendmail_args::Invocation;
use crate::address::{self, AddrError, Mailbox};
use crate::config::Config;
use crate::exit::{ExitCode, Failure};
use crate::message::Header;
use crate::queue::QueueId;
use crate::queue::enqueue::{self, Origin, Program, Rcpt, RefusedRcpt, Request, Sender};
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
    /// Mailroom's own messages queued meanwhile: bounces for the refused
    /// recipients, an alert about a limit.
    pub bounces: Vec<QueueId>,
    /// Over an outbound limit: queued held, not to be delivered now.
    pub held: bool,
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
    let sender = match &inv.sender {
        Some((s, _)) => {
            let m = address::parse_one(s).map_err(|e| bad_address(s, e))?;
            let recorded = if m.addr.is_empty() {
                "<>".to_string()
            } else {
                m.display.clone()
            };
            Sender {
                recorded,
                addr: m.addr,
            }
        }
        None => match caller {
            Some(c) => Sender {
                recorded: c.login.clone(),
                addr: c.login.clone(),
            },
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

    let mut incoming = enqueue::open(cfg).map_err(|e| e.failure(cfg))?;
    let collected = incoming
        .read(input, inv.ignore_dots)
        .map_err(|e| e.failure(cfg))?;

    // Recipients.
    let mut rcpts = Vec::new();
    if inv.extract_recipients {
        rcpts.extend(header_recipients(&collected.header));
    }
    rcpts.extend(argv_rcpts.iter().cloned());
    let rcpts = dedup(rcpts);
    if rcpts.is_empty() {
        return Err(Failure::usage("No recipient addresses found in header")
            .hint("add To:, Cc: or Bcc: to the message, or name recipients as arguments"));
    }
    let domains = Domains::load(cfg);
    let (rcpts, refused) = check_local(cfg, &domains, rcpts);

    // Full name: -F, else GECOS when the sender is the caller.
    let full_name = match &inv.full_name {
        Some(f) => f.clone(),
        None => match caller {
            Some(c) if sender.addr == c.login => c.full_name.clone(),
            _ => String::new(),
        },
    };
    let origin = Origin::Program(Program {
        login,
        full_name,
        trusted: caller.is_some_and(|c| c.trusted),
        set_sender: inv.sender.clone(),
        only_argv_recipient: match argv_rcpts.as_slice() {
            [only] => Some(only.display.clone()),
            _ => None,
        },
        extract: inv.extract_recipients,
        cwd: std::env::current_dir()
            .ok()
            .map(|d| d.display().to_string()),
    });
    let request = Request {
        origin: &origin,
        sender,
        recipients: rcpts
            .iter()
            .map(|m| Rcpt {
                recorded: m.display.clone(),
                addr: m.addr.clone(),
                notify: inv.notify,
                orcpt: None,
                local: domains.is_local_address(&m.addr),
            })
            .collect(),
        refused: refused
            .iter()
            .map(|(rcpt, r)| RefusedRcpt {
                rcpt: rcpt.clone(),
                code: r.code,
                dsn: r.dsn.clone(),
                text: r.text.clone(),
            })
            .collect(),
        envid: inv.envid.clone(),
        ret: inv.ret,
        body_8bit: inv.body_8bit,
        quiet_errors: inv.error_mode == Some('q'),
        auth_results: None,
    };
    let queued = incoming
        .commit(collected, request)
        .map_err(|e| e.failure(cfg))?;
    Ok(Accepted {
        recipients: if queued.id.is_some() { rcpts.len() } else { 0 },
        held: queued.held,
        id: queued.id,
        refused,
        bounces: queued.bounces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
