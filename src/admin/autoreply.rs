//! `mailroom autoreply`: set, clear and list the autoresponders of
//! `/etc/mail/autoreply/ADDRESS` (see [`crate::autoreply`]).  Every change
//! goes through [`Change`] like the other admin commands.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use super::apply;
use crate::autoreply::{self, Rule};
use crate::change::Change;
use crate::config::Config;
use crate::exit::{ExitCode, Failure};
use crate::resolve::{Resolver, Target};

#[derive(Subcommand, Debug)]
pub enum AutoreplyAction {
    /// Answer mail to ADDRESS (a local mailbox, directly or by alias) with
    /// SUBJECT and the text of FILE, once per sender per interval.
    Set {
        address: String,
        #[arg(long)]
        subject: String,
        /// The reply's text (UTF-8).
        #[arg(long, value_name = "FILE")]
        body_file: PathBuf,
        /// First day to answer (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// Last day to answer (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        /// Answer one sender at most once in this long (7d, 12h, ...).
        #[arg(long, default_value = "7d")]
        interval: String,
    },
    /// Stop answering mail to ADDRESS.
    Clear { address: String },
    /// The autoresponders.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub const AUTOREPLY_HELP: &str = "\
Replies follow RFC 3834: never to the null sender, MAILER-DAEMON,
-request/owner- senders, Precedence bulk/list/junk, List-* or
Auto-Submitted mail, nor when the address is not in To or Cc.  Replies
come from <> and count toward the DSN rate limits.

Examples:
  mailroom autoreply set support@shop.example --subject 'We got your message' \\
      --body-file reply.txt --from 2026-07-01 --until 2026-07-31 --interval 7d
  mailroom autoreply clear support@shop.example
  mailroom autoreply list --json";

fn usage(text: String) -> Failure {
    Failure::new(ExitCode::Usage, text)
}

/// The file key of ADDRESS, checked to reach a local mailbox.
fn mailbox_key(cfg: &Config, address: &str) -> Result<String, Failure> {
    let key = autoreply::key(address, &cfg.hostname)
        .ok_or_else(|| usage(format!("{address:?} is not an address")))?;
    let resolver = Resolver::new(cfg, nix::unistd::geteuid().is_root());
    let res = resolver.resolve(&key);
    if !res
        .finals
        .iter()
        .any(|f| matches!(f.target, Target::Mailbox { .. }))
    {
        return Err(Failure::new(
            ExitCode::NoUser,
            format!("{key} does not deliver to a local mailbox"),
        )
        .hint("see 'mailroom explain ADDRESS'"));
    }
    Ok(key)
}

/// The rule `autoreply set` writes, checked as the command checks it:
/// a one-line subject, dates `YYYY-MM-DD` in order, an interval (the
/// `mailroom` command and the web panel).
pub fn rule(
    subject: &str,
    body: &str,
    from: Option<String>,
    until: Option<String>,
    interval: &str,
) -> Result<Rule, Failure> {
    let subject = subject.trim().to_string();
    if subject.is_empty() || subject.contains(['\n', '\r']) {
        return Err(usage("the subject must be one non-empty line".into()));
    }
    for d in [&from, &until].into_iter().flatten() {
        if !autoreply::valid_date(d) {
            return Err(usage(format!("{d:?} is not a date YYYY-MM-DD")));
        }
    }
    if let (Some(f), Some(u)) = (&from, &until)
        && f > u
    {
        return Err(usage(format!("--from {f} is after --until {u}")));
    }
    let secs = crate::config::parse_duration(interval, 86400)
        .filter(|s| *s > 0)
        .ok_or_else(|| usage(format!("{interval:?} is not an interval (7d, 12h)")))?;
    let rule = Rule {
        subject,
        from_date: from,
        until_date: until,
        interval: secs,
        interval_text: interval.trim().to_string(),
        body: body.replace("\r\n", "\n"),
    };
    // What is written must read back the same.
    Rule::parse(&rule.to_text()).map_err(usage)?;
    Ok(rule)
}

/// `autoreply set` staged, with what the command prints.
pub fn set(
    change: &mut Change,
    cfg: &Config,
    address: &str,
    rule: Rule,
) -> Result<Vec<String>, Failure> {
    let key = mailbox_key(cfg, address)?;
    let dir = autoreply::rules_dir(cfg);
    std::fs::create_dir_all(&dir).map_err(|e| {
        Failure::new(
            ExitCode::CantCreat,
            format!(
                "cannot create {}: {}",
                dir.display(),
                crate::exit::io_reason(&e)
            ),
        )
    })?;
    change.set(&dir.join(&key), rule.to_text());
    let window = match (&rule.from_date, &rule.until_date) {
        (None, None) => String::new(),
        (f, u) => format!(
            " from {} until {}",
            f.as_deref().unwrap_or("now"),
            u.as_deref().unwrap_or("cleared")
        ),
    };
    Ok(vec![format!(
        "{key}: autoreply \"{}\"{window}, once per sender per {}",
        rule.subject, rule.interval_text
    )])
}

/// `autoreply clear` staged, with what the command prints.
pub fn clear(change: &mut Change, cfg: &Config, address: &str) -> Result<Vec<String>, Failure> {
    let key = autoreply::key(address, &cfg.hostname)
        .ok_or_else(|| usage(format!("{address:?} is not an address")))?;
    let path = autoreply::rules_dir(cfg).join(&key);
    if !path.exists() {
        return Err(
            Failure::new(ExitCode::Usage, format!("{key} has no autoreply"))
                .hint("see 'mailroom autoreply list'"),
        );
    }
    change.remove(&path);
    Ok(vec![format!("{key}: autoreply cleared")])
}

struct Row {
    address: String,
    rule: Result<Rule, String>,
}

fn rows(cfg: &Config) -> Vec<Row> {
    let mut out: Vec<Row> = std::fs::read_dir(autoreply::rules_dir(cfg))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') {
                        return None;
                    }
                    let rule = autoreply::load(cfg, &name)
                        .and_then(|r| r.ok_or_else(|| "gone".to_string()));
                    Some(Row {
                        address: name,
                        rule,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.address.cmp(&b.address));
    out
}

fn print_table(rows: &[Row], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<32} {:<10} {:<10} {:<8} SUBJECT",
        "ADDRESS", "FROM", "UNTIL", "INTERVAL"
    )?;
    for r in rows {
        match &r.rule {
            Ok(rule) => writeln!(
                out,
                "{:<32} {:<10} {:<10} {:<8} {}",
                r.address,
                rule.from_date.as_deref().unwrap_or("-"),
                rule.until_date.as_deref().unwrap_or("-"),
                rule.interval_text,
                rule.subject
            )?,
            Err(e) => writeln!(out, "{:<32} error: {e}", r.address)?,
        }
    }
    Ok(())
}

fn print_json(rows: &[Row], out: &mut dyn Write) -> std::io::Result<()> {
    use super::queue::json_str;
    let opt = |v: &Option<String>| v.as_deref().map_or("null".to_string(), json_str);
    let items: Vec<String> = rows
        .iter()
        .map(|r| match &r.rule {
            Ok(rule) => format!(
                "{{\"address\":{},\"subject\":{},\"from\":{},\"until\":{},\"interval\":{},\"interval_seconds\":{},\"body\":{}}}",
                json_str(&r.address),
                json_str(&rule.subject),
                opt(&rule.from_date),
                opt(&rule.until_date),
                json_str(&rule.interval_text),
                rule.interval,
                json_str(&rule.body)
            ),
            Err(e) => format!(
                "{{\"address\":{},\"error\":{}}}",
                json_str(&r.address),
                json_str(e)
            ),
        })
        .collect();
    writeln!(out, "[{}]", items.join(","))
}

pub fn run(cfg: &Config, action: AutoreplyAction) -> i32 {
    match action {
        AutoreplyAction::Set {
            address,
            subject,
            body_file,
            from,
            until,
            interval,
        } => {
            let rule = std::fs::read(&body_file)
                .map_err(|e| {
                    Failure::new(
                        ExitCode::NoInput,
                        format!(
                            "cannot read {}: {}",
                            body_file.display(),
                            crate::exit::io_reason(&e)
                        ),
                    )
                })
                .and_then(|body| {
                    String::from_utf8(body)
                        .map_err(|_| usage(format!("{} is not UTF-8 text", body_file.display())))
                })
                .and_then(|body| rule(&subject, &body, from, until, &interval));
            match rule {
                Ok(rule) => apply(cfg, |c| set(c, cfg, &address, rule)),
                Err(f) => {
                    eprintln!("mailroom: {f}");
                    f.code.code()
                }
            }
        }
        AutoreplyAction::Clear { address } => apply(cfg, |c| clear(c, cfg, &address)),
        AutoreplyAction::List { json } => {
            super::print_listing(&rows(cfg), json, print_table, print_json)
        }
    }
}
