//! `mailroom filter`: the administrator's rules for one mailbox,
//! `/etc/mail/filters/LOGIN` ([`crate::filter::files`]) — the way to give
//! filters to virtual accounts and to users without a home.  A file is
//! checked before it is installed (an error names its line); every change
//! goes through [`Change`] like the other admin commands.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use super::apply;
use crate::change::Change;
use crate::config::Config;
use crate::exit::{ExitCode, Failure};
use crate::resolve::{Resolver, Target};

#[derive(Subcommand, Debug)]
pub enum FilterAction {
    /// Filter the mail of the mailbox ADDRESS leads to with the rules in FILE.
    Set {
        address: String,
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the rules of the mailbox ADDRESS leads to.
    Show { address: String },
    /// Remove the rules of the mailbox ADDRESS leads to.
    Clear { address: String },
    /// The mailboxes with rules.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub const FILTER_HELP: &str = "\
Rules are one per line:  if TEST [and TEST]... then ACTION [; ACTION]...
  tests:   header NAME|from|to|sender|recipient contains|is|matches TEXT,
           size over|under N[K|M|G], spam-score over|under|at-least N,
           auth spf|dkim|dmarc is [not] pass|fail|softfail|neutral|none|
             temperror|permerror|policy (this host's Authentication-Results;
             none for local mail), always
  actions: folder NAME, keep, discard, reject \"TEXT\", forward ADDRESS, stop
  e.g.     if auth dmarc is fail then folder Spam
           if auth spf is softfail and auth dkim is not pass then folder Suspicious
They run after the built-in DMARC and spam rules and /etc/mail/filter, and
before the user's ~/.mailroom-filter.

Examples:
  mailroom filter set info@shop.example --file info.rules
  mailroom filter show info@shop.example
  mailroom filter clear info@shop.example
  mailroom filter list --json";

fn usage(text: String) -> Failure {
    Failure::new(ExitCode::Usage, text)
}

/// Where the rule files are.
pub fn dir(cfg: &Config) -> PathBuf {
    cfg.paths.etc_mail("filters")
}

/// The login of the one mailbox `address` delivers to.
pub fn login_for(cfg: &Config, address: &str) -> Result<String, Failure> {
    let resolver = Resolver::new(cfg, nix::unistd::geteuid().is_root());
    let mut logins: Vec<String> = resolver
        .resolve(address.trim())
        .finals
        .iter()
        .filter_map(|f| match &f.target {
            Target::Mailbox { account, .. } => Some(account.login.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    logins.dedup();
    match logins.len() {
        0 => Err(Failure::new(
            ExitCode::NoUser,
            format!("{address} does not deliver to a local mailbox"),
        )
        .hint("see 'mailroom explain ADDRESS'")),
        1 if !logins[0].contains('/') && !logins[0].starts_with('.') => Ok(logins.remove(0)),
        1 => Err(usage(format!("{} cannot name a rule file", logins[0]))),
        n => Err(usage(format!(
            "{address} delivers to {n} mailboxes ({}): name one of them",
            logins.join(", ")
        ))),
    }
}

/// Rules `filter set` accepts: they parse (an error names `name` and
/// the line) and fit [`crate::filter::MAX_FILE`] (the `mailroom` command
/// and the web panel).
pub fn check_rules(name: &str, text: &str) -> Result<(), Failure> {
    if let Err(e) = crate::filter::parse(name, text) {
        return Err(Failure::new(ExitCode::DataErr, e.to_string()));
    }
    if text.len() as u64 > crate::filter::MAX_FILE {
        return Err(usage(format!(
            "{name} is larger than {} bytes",
            crate::filter::MAX_FILE
        )));
    }
    Ok(())
}

/// `filter set` staged, with what the command prints.
pub fn set(
    change: &mut Change,
    cfg: &Config,
    address: &str,
    text: String,
) -> Result<Vec<String>, Failure> {
    let login = login_for(cfg, address)?;
    let d = dir(cfg);
    std::fs::create_dir_all(&d).map_err(|e| {
        Failure::new(
            ExitCode::CantCreat,
            format!(
                "cannot create {}: {}",
                d.display(),
                crate::exit::io_reason(&e)
            ),
        )
    })?;
    let path = d.join(&login);
    let rules = crate::filter::parse(&path.display().to_string(), &text)
        .map_err(|e| Failure::new(ExitCode::DataErr, e.to_string()))?;
    change.set(&path, text);
    Ok(vec![format!(
        "{login}: {} filter rule(s) in {}",
        rules.len(),
        path.display()
    )])
}

/// `filter clear` staged, with what the command prints.
pub fn clear(change: &mut Change, cfg: &Config, address: &str) -> Result<Vec<String>, Failure> {
    let login = login_for(cfg, address)?;
    let path = dir(cfg).join(&login);
    if !path.exists() {
        return Err(
            Failure::new(ExitCode::Usage, format!("{login} has no filter rules"))
                .hint("see 'mailroom filter list'"),
        );
    }
    change.remove(&path);
    Ok(vec![format!("{login}: filter rules cleared")])
}

struct Row {
    login: String,
    rules: Result<usize, String>,
}

fn rows(cfg: &Config) -> Vec<Row> {
    let mut out: Vec<Row> = std::fs::read_dir(dir(cfg))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let login = e.file_name().to_string_lossy().into_owned();
                    if login.starts_with('.') {
                        return None;
                    }
                    let rules = std::fs::read_to_string(e.path())
                        .map_err(|err| crate::exit::io_reason(&err))
                        .and_then(|t| {
                            crate::filter::parse(&e.path().display().to_string(), &t)
                                .map(|r| r.len())
                                .map_err(|err| err.to_string())
                        });
                    Some(Row { login, rules })
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.login.cmp(&b.login));
    out
}

fn print_table(rows: &[Row], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "{:<32} RULES", "MAILBOX")?;
    for r in rows {
        match &r.rules {
            Ok(n) => writeln!(out, "{:<32} {n}", r.login)?,
            Err(e) => writeln!(out, "{:<32} error: {e}", r.login)?,
        }
    }
    Ok(())
}

fn print_json(rows: &[Row], out: &mut dyn Write) -> std::io::Result<()> {
    use super::queue::json_str;
    let items: Vec<String> = rows
        .iter()
        .map(|r| match &r.rules {
            Ok(n) => format!("{{\"mailbox\":{},\"rules\":{n}}}", json_str(&r.login)),
            Err(e) => format!(
                "{{\"mailbox\":{},\"error\":{}}}",
                json_str(&r.login),
                json_str(e)
            ),
        })
        .collect();
    writeln!(out, "[{}]", items.join(","))
}

pub fn run(cfg: &Config, action: FilterAction) -> i32 {
    let fail = |f: Failure| {
        eprintln!("mailroom: {f}");
        f.code.code()
    };
    match action {
        FilterAction::Set { address, file } => {
            let text = match std::fs::read(&file) {
                Ok(b) => match String::from_utf8(b) {
                    Ok(t) => t,
                    Err(_) => return fail(usage(format!("{} is not UTF-8 text", file.display()))),
                },
                Err(e) => {
                    return fail(Failure::new(
                        ExitCode::NoInput,
                        format!(
                            "cannot read {}: {}",
                            file.display(),
                            crate::exit::io_reason(&e)
                        ),
                    ));
                }
            };
            // Errors name the file the admin wrote, not the copy.
            if let Err(f) = check_rules(&file.display().to_string(), &text) {
                return fail(f);
            }
            apply(cfg, |c| set(c, cfg, &address, text))
        }
        FilterAction::Show { address } => {
            let login = match login_for(cfg, &address) {
                Ok(l) => l,
                Err(f) => return fail(f),
            };
            match std::fs::read_to_string(dir(cfg).join(&login)) {
                Ok(t) => {
                    print!("{t}");
                    0
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => fail(
                    Failure::new(ExitCode::Usage, format!("{login} has no filter rules"))
                        .hint("see 'mailroom filter list'"),
                ),
                Err(e) => fail(Failure::new(
                    ExitCode::IoErr,
                    format!(
                        "cannot read the rules of {login}: {}",
                        crate::exit::io_reason(&e)
                    ),
                )),
            }
        }
        FilterAction::Clear { address } => apply(cfg, |c| clear(c, cfg, &address)),
        FilterAction::List { json } => {
            super::print_listing(&rows(cfg), json, print_table, print_json)
        }
    }
}
