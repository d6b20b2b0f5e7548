//! `mailroom import FILE|-`: many mailboxes (and domains, aliases,
//! forwards, catch-alls, quotas) at once, all or nothing.
//!
//! ## The file
//!
//! One record a line; blank lines and lines starting with `#` are
//! skipped; words are separated by spaces or tabs.
//!
//! ```text
//! # what hosting panels export: ADDRESS PASSWORD
//! info@shop.example   s3cret
//! info@example.com    "An0ther one"
//! bob@example.com     {CRYPT}$6$salt$hash...
//! domain shop.example
//! domain virtual.example virtual
//! alias sales@shop.example bob carol@example.com
//! forward ceo@example.com ceo.phone@mobile.example keep-copy
//! catchall shop.example orders@shop.example
//! quota intern@example.com 200M
//! ```
//!
//! * `ADDRESS PASSWORD` — a mailbox, as `mailbox add` makes it (a system
//!   user; with `--virtual` a virtual account).  ADDRESS is `local@domain`
//!   with one of this host's domains (or one this import adds); PASSWORD is
//!   one word, or a double-quoted string for a password with spaces
//!   (`"correct horse"`; `\"` and `\\` inside stand for `"` and `\`).
//!   Anything else on a line is an error, so that a stray line of text
//!   never becomes a mailbox.  `{CRYPT}HASH` takes a crypt(3) hash as it
//!   is (moving from another host without knowing the passwords).
//! * `domain D [virtual]`, `alias ADDRESS TARGET...`,
//!   `forward ADDRESS TARGET... [keep-copy]`, `catchall DOMAIN TARGET...`,
//!   `quota ADDRESS SIZE|unlimited|none` — as the commands of those names.
//!   These words are keywords: a mailbox cannot be called `domain` etc.
//!
//! Records take effect in this order whatever their order in the file:
//! domains, mailboxes, quotas, aliases and forwards (an alias may name
//! another one defined further down), catch-alls.
//!
//! Everything is checked before anything is written: the first bad line
//! is reported as `FILE:LINE: why` (exit 65) and nothing changes.  All the
//! records are then one [`Change`]: an interrupted import (even `kill -9`)
//! leaves the old tables or all of the new ones.  The passwords are hashed
//! after the checks (SHA-512 crypt: a few milliseconds each), holding the
//! admin lock.

use std::collections::HashMap;
use std::io::Read;

use clap::Args;

use super::alias::{plan_alias, plan_catchall, plan_forward};
use super::domain::plan_domain_add;
use super::mailbox::{
    self, Plan, PlanKind, PwLock, Tables, check_password, hash_password, parse_quota,
};
use crate::change::Change;
use crate::config::Config;
use crate::exit::{ExitCode, Failure, io_reason};

pub const IMPORT_HELP: &str = "\
The file, one record a line ('#' comments and blank lines are skipped):

  info@shop.example  s3cret              a mailbox: ADDRESS PASSWORD
  info@example.com   \"two words\"         a password with spaces, quoted
  bob@example.com    {CRYPT}$6$...       a mailbox with a crypt(3) hash
  domain shop.example                    a local domain
  domain virt.example virtual            a virtual domain
  alias sales@shop.example bob carol@example.com
  forward ceo@example.com ceo@mobile.example keep-copy
  catchall shop.example orders@shop.example
  quota intern@example.com 200M

ADDRESS has one of this host's domains (or one the file adds); PASSWORD
is one word, or in double quotes when it holds spaces (\\\" and \\\\ inside
stand for \" and \\).  Any other line is an error.  Records apply in this
order: domains, mailboxes, quotas, aliases and forwards, catch-alls.

All or nothing: every line is checked first; a bad one is reported as
FILE:LINE: why (exit 65) and nothing is changed.  Then everything is one
transaction: an interrupted import leaves the old tables or the new ones.

Examples:
  mailroom import users.txt
  mailroom import --dry-run users.txt
  ssh oldhost cat export.txt | mailroom import -";

/// `mailroom import` arguments.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The file to read, or - for stdin.
    #[arg(value_name = "FILE")]
    pub file: String,
    /// Make the mailboxes virtual accounts (/etc/mail/passwd) instead of
    /// system users.
    #[arg(long = "virtual")]
    pub is_virtual: bool,
    /// Check every line and say what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// A mailbox's password as the file gives it.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    Plain(Vec<u8>),
    /// `{CRYPT}HASH`: used as it is.
    Hash(String),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Password::Plain(_) => f.write_str("Plain(..)"),
            Password::Hash(_) => f.write_str("Hash(..)"),
        }
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        if let Password::Plain(p) = self {
            for b in p.iter_mut() {
                // SAFETY: a valid, exclusive pointer; volatile so it stays.
                unsafe { std::ptr::write_volatile(b, 0) };
            }
        }
    }
}

/// One record of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Mailbox {
        address: String,
        password: Password,
    },
    Domain {
        domain: String,
        is_virtual: bool,
    },
    Alias {
        address: String,
        targets: Vec<String>,
    },
    Forward {
        address: String,
        targets: Vec<String>,
        keep_copy: bool,
    },
    Catchall {
        domain: String,
        targets: Vec<String>,
    },
    Quota {
        address: String,
        size: String,
    },
}

/// A record and its line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub number: usize,
    pub record: Record,
}

/// Is `h` a crypt(3) hash (`$id$...`, the characters crypt writes)?
fn looks_like_hash(h: &str) -> bool {
    h.starts_with('$')
        && h.len() >= 13
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"./$=,".contains(&b))
}

/// Parse the file; the first bad line is an error naming `FILE:LINE`.
pub fn parse(bytes: &[u8], name: &str) -> Result<Vec<Line>, Failure> {
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        let bad = |why: String| {
            Failure::new(ExitCode::DataErr, format!("{name}:{n}: {why}"))
                .hint("nothing was imported; fix the line and run the import again")
        };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(line) = std::str::from_utf8(raw) else {
            return Err(bad("not UTF-8 text".into()));
        };
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = t.split_whitespace().collect();
        let args: Vec<String> = words[1..].iter().map(|s| s.to_string()).collect();
        let record = match words[0].to_ascii_lowercase().as_str() {
            "domain" => match args.as_slice() {
                [d] => Record::Domain {
                    domain: d.clone(),
                    is_virtual: false,
                },
                [d, v] if v.eq_ignore_ascii_case("virtual") => Record::Domain {
                    domain: d.clone(),
                    is_virtual: true,
                },
                _ => return Err(bad("expected: domain DOMAIN [virtual]".into())),
            },
            "alias" => {
                if args.len() < 2 {
                    return Err(bad("expected: alias ADDRESS TARGET...".into()));
                }
                Record::Alias {
                    address: args[0].clone(),
                    targets: args[1..].to_vec(),
                }
            }
            "forward" => {
                let mut a = args.clone();
                let keep_copy = a
                    .last()
                    .is_some_and(|w| w.eq_ignore_ascii_case("keep-copy") || w == "--keep-copy");
                if keep_copy {
                    a.pop();
                }
                if a.len() < 2 {
                    return Err(bad("expected: forward ADDRESS TARGET... [keep-copy]".into()));
                }
                Record::Forward {
                    address: a[0].clone(),
                    targets: a[1..].to_vec(),
                    keep_copy,
                }
            }
            "catchall" => {
                if args.len() < 2 {
                    return Err(bad("expected: catchall DOMAIN TARGET...".into()));
                }
                Record::Catchall {
                    domain: args[0].clone(),
                    targets: args[1..].to_vec(),
                }
            }
            "quota" => match args.as_slice() {
                [a, s] => {
                    parse_quota(s).map_err(|f| bad(f.message))?;
                    Record::Quota {
                        address: a.clone(),
                        size: s.clone(),
                    }
                }
                _ => return Err(bad("expected: quota ADDRESS SIZE|unlimited|none".into())),
            },
            _ => {
                let address = words[0];
                let rest = t[address.len()..].trim();
                if rest.is_empty() {
                    return Err(bad(format!(
                        "expected ADDRESS PASSWORD, found only {address:?} \
                         (or a record: domain, alias, forward, catchall, quota)"
                    )));
                }
                if !address.contains('@') {
                    return Err(bad(format!(
                        "{address:?} is not an address: a mailbox line is ADDRESS PASSWORD, \
                         the address with one of this host's domains (info@example.com s3cret)"
                    )));
                }
                mailbox::parse_name(address).map_err(|f| bad(f.message))?;
                let (rest, quoted) = password_field(rest).map_err(bad)?;
                let password = match rest.strip_prefix("{CRYPT}").filter(|_| !quoted) {
                    Some(h) => {
                        if !looks_like_hash(h) {
                            return Err(bad(
                                "{CRYPT} must be followed by a crypt(3) hash ($6$salt$...)".into(),
                            ));
                        }
                        Password::Hash(h.to_string())
                    }
                    None => {
                        check_password(rest.as_bytes()).map_err(bad)?;
                        Password::Plain(rest.into_bytes())
                    }
                };
                Record::Mailbox {
                    address: address.to_string(),
                    password,
                }
            }
        };
        out.push(Line { number: n, record });
    }
    Ok(out)
}

/// The password of a mailbox line (the text after the address): one word,
/// or one double-quoted string that may hold spaces (`\"` and `\\` inside
/// stand for `"` and `\`).  Anything more is an error, so that a line of
/// free text never becomes a mailbox.  Returns the password and whether it
/// was quoted.
fn password_field(rest: &str) -> Result<(String, bool), String> {
    let Some(quoted) = rest.strip_prefix('"') else {
        let n = rest.split_whitespace().count();
        if n > 1 {
            return Err(format!(
                "expected ADDRESS PASSWORD, found {} fields; \
                 a password with spaces goes in double quotes (\"my secret words\")",
                n + 1
            ));
        }
        return Ok((rest.to_string(), false));
    };
    let mut out = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, n)) => out.push(n),
                None => break,
            },
            '"' => {
                if !quoted[i + 1..].trim().is_empty() {
                    return Err(
                        "expected ADDRESS PASSWORD, found more after the quoted password".into(),
                    );
                }
                return Ok((out, true));
            }
            _ => out.push(c),
        }
    }
    Err("the quoted password has no closing '\"'".into())
}

/// Run `mailroom import`; the exit code.
pub fn run(cfg: &Config, args: ImportArgs) -> i32 {
    match import(cfg, &args) {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("mailroom: {f}");
            f.code.code()
        }
    }
}

/// A failure of the record on line `n`: `FILE:LINE: why`, exit 65 for
/// anything the line itself is to blame for.
fn at_line(name: &str, n: usize, f: Failure) -> Failure {
    let code = match f.code {
        ExitCode::Usage | ExitCode::DataErr | ExitCode::NoUser | ExitCode::CantCreat => {
            ExitCode::DataErr
        }
        c => c,
    };
    let hint = match f.hint {
        Some(h) => format!("{h}; nothing was imported"),
        None => "nothing was imported".into(),
    };
    Failure::new(code, format!("{name}:{n}: {}", f.message)).hint(hint)
}

fn read_input(file: &str) -> Result<(String, Vec<u8>), Failure> {
    if file == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut b)
            .map_err(|e| Failure::new(ExitCode::IoErr, format!("cannot read stdin: {e}")))?;
        return Ok(("stdin".into(), b));
    }
    match std::fs::read(file) {
        Ok(b) => Ok((file.to_string(), b)),
        Err(e) => Err(Failure::new(
            ExitCode::NoInput,
            format!("cannot read {file}: {}", io_reason(&e)),
        )),
    }
}

/// What an import did (or would do).
#[derive(Debug, Default)]
struct Counts {
    domains: usize,
    mailboxes: usize,
    quotas: usize,
    aliases: usize,
    forwards: usize,
    catchalls: usize,
}

impl Counts {
    fn text(&self) -> String {
        let parts = [
            (self.domains, "domain", "domains"),
            (self.mailboxes, "mailbox", "mailboxes"),
            (self.quotas, "quota", "quotas"),
            (self.aliases, "alias", "aliases"),
            (self.forwards, "forward", "forwards"),
            (self.catchalls, "catch-all", "catch-alls"),
        ];
        let v: Vec<String> = parts
            .iter()
            .filter(|(n, _, _)| *n > 0)
            .map(|(n, one, many)| format!("{n} {}", if *n == 1 { one } else { many }))
            .collect();
        if v.is_empty() {
            "nothing".into()
        } else {
            v.join(", ")
        }
    }
}

fn import(cfg: &Config, args: &ImportArgs) -> Result<(), Failure> {
    let (name, bytes) = read_input(&args.file)?;
    let lines = parse(&bytes, &name)?;
    drop(bytes);
    if lines.is_empty() {
        println!("{name}: no records; nothing to do");
        return Ok(());
    }
    let done = import_lines(
        cfg,
        Change::begin(cfg)?,
        &name,
        &lines,
        args.is_virtual,
        args.dry_run,
    )?;
    for n in &done.notes {
        println!("{n}");
    }
    for p in &done.warnings {
        eprintln!("mailroom: warning: {p}");
    }
    Ok(())
}

/// What an import did: the lines the command prints, and the warnings
/// about mailbox files it could not make (the accounts exist).
#[derive(Debug, Default)]
pub struct Imported {
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

/// Import the parsed `lines` of the file `name` in `change` (the lock
/// taken), all or nothing: the `mailroom` command and the web panel.
pub fn import_lines(
    cfg: &Config,
    mut change: Change,
    name: &str,
    lines: &[Line],
    is_virtual: bool,
    dry_run: bool,
) -> Result<Imported, Failure> {
    let mut done = Imported::default();
    if lines.is_empty() {
        done.notes
            .push(format!("{name}: no records; nothing to do"));
        return Ok(done);
    }
    let name = name.to_string();
    let of = |pred: fn(&Record) -> bool| lines.iter().filter(move |l| pred(&l.record));
    let has_system_mailboxes =
        !is_virtual && of(|r| matches!(r, Record::Mailbox { .. })).next().is_some();

    let pwlock = if has_system_mailboxes && !dry_run {
        Some(PwLock::take(cfg)?)
    } else {
        None
    };
    let mut counts = Counts::default();

    // 1. Domains.
    for l in of(|r| matches!(r, Record::Domain { .. })) {
        if let Record::Domain { domain, is_virtual } = &l.record {
            plan_domain_add(&mut change, cfg, domain, *is_virtual)
                .map_err(|f| at_line(&name, l.number, f))?;
            counts.domains += 1;
        }
    }

    // 2. Mailboxes, 3. quotas: through the mailbox tables.
    let mut t = Tables::load(cfg, &change)?;
    let mut plans: Vec<(usize, Plan)> = Vec::new();
    for l in of(|r| matches!(r, Record::Mailbox { .. })) {
        if let Record::Mailbox { address, password } = &l.record {
            t.origin = Some(format!(
                "{name}:{}: {} (earlier in this import)",
                l.number,
                address.to_ascii_lowercase()
            ));
            let plan = t
                .plan(address, is_virtual, None)
                .map_err(|f| at_line(&name, l.number, f))?;
            let hash = match password {
                Password::Hash(h) => Some(h.as_str()),
                Password::Plain(_) => None,
            };
            t.apply(&plan, hash);
            plans.push((l.number, plan));
            counts.mailboxes += 1;
        }
    }
    t.origin = None;
    for l in of(|r| matches!(r, Record::Quota { .. })) {
        if let Record::Quota { address, size } = &l.record {
            let setting = parse_quota(size).map_err(|f| at_line(&name, l.number, f))?;
            t.set_quota(address, &setting)
                .map_err(|f| at_line(&name, l.number, f))?;
            counts.quotas += 1;
        }
    }
    t.store(&mut change);

    // 4. Aliases and forwards, until all are in (one may name another
    // further down); the first that never fits is the error.
    let mut pending: Vec<&Line> =
        of(|r| matches!(r, Record::Alias { .. } | Record::Forward { .. })).collect();
    while !pending.is_empty() {
        let mut failed: Vec<(&Line, Failure)> = Vec::new();
        let before = pending.len();
        for l in pending {
            let r = match &l.record {
                Record::Alias { address, targets } => {
                    plan_alias(&mut change, cfg, address, targets).map(|()| &mut counts.aliases)
                }
                Record::Forward {
                    address,
                    targets,
                    keep_copy,
                } => plan_forward(&mut change, cfg, address, targets, *keep_copy)
                    .map(|()| &mut counts.forwards),
                _ => continue,
            };
            match r {
                Ok(c) => *c += 1,
                Err(f) => failed.push((l, f)),
            }
        }
        if failed.len() == before {
            let (l, f) = failed.swap_remove(0);
            return Err(at_line(&name, l.number, f));
        }
        pending = failed.into_iter().map(|(l, _)| l).collect();
    }

    // 5. Catch-alls last: once a domain has one, every address of it
    // "exists" for the checks above.
    for l in of(|r| matches!(r, Record::Catchall { .. })) {
        if let Record::Catchall { domain, targets } = &l.record {
            plan_catchall(&mut change, cfg, domain, targets)
                .map_err(|f| at_line(&name, l.number, f))?;
            counts.catchalls += 1;
        }
    }

    if dry_run {
        done.notes.push(format!(
            "{name}: {} records checked, all good; an import would add {} (nothing was changed)",
            lines.len(),
            counts.text()
        ));
        return Ok(done);
    }

    // 6. The passwords: hashed now that every line is known to be good.
    let mut hashes = HashMap::new();
    let by_line: HashMap<usize, &Password> = lines
        .iter()
        .filter_map(|l| match &l.record {
            Record::Mailbox { password, .. } => Some((l.number, password)),
            _ => None,
        })
        .collect();
    for (n, plan) in &plans {
        if let Some(Password::Plain(pw)) = by_line.get(n) {
            hashes.insert(plan.login().to_string(), hash_password(pw)?);
        }
    }
    t.set_hashes(&hashes);
    t.store_secrets(&mut change);
    change.commit()?;
    drop(pwlock);
    crate::log::info(
        None,
        &format!("mailroom: imported {name}: {}", counts.text()),
    );

    // 7. The mailbox files.
    for (_, plan) in &plans {
        done.notes.push(match &plan.kind {
            PlanKind::System { user, uid, .. } => {
                format!("{}: system user {user} (uid {uid})", plan.address)
            }
            PlanKind::Virtual { .. } => format!("{}: virtual account", plan.address),
        });
        if let Err(e) = mailbox::create_mailbox(cfg, plan, t.mail_group()) {
            done.warnings
                .push(format!("{e} (delivery creates it with the first message)"));
        }
    }
    done.notes
        .push(format!("{name}: imported {}", counts.text()));
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records() {
        let text = b"# export\n\ninfo@shop.example  \"s3cret with spaces\"  \r\nbob@x.example {CRYPT}$6$salt$abcdefghijklmnop\n\
domain shop.example\nDOMAIN v.example virtual\nalias sales@shop.example bob carol@x.example\n\
forward ceo@example.com a@b.example keep-copy\ncatchall shop.example orders\nquota bob 200M\n";
        let lines = parse(text, "f").unwrap();
        assert_eq!(lines.len(), 8);
        assert_eq!(lines[0].number, 3);
        assert_eq!(
            lines[0].record,
            Record::Mailbox {
                address: "info@shop.example".into(),
                password: Password::Plain(b"s3cret with spaces".to_vec())
            }
        );
        assert!(
            matches!(&lines[1].record, Record::Mailbox { password: Password::Hash(h), .. } if h == "$6$salt$abcdefghijklmnop")
        );
        assert_eq!(
            lines[3].record,
            Record::Domain {
                domain: "v.example".into(),
                is_virtual: true
            }
        );
        assert_eq!(
            lines[5].record,
            Record::Forward {
                address: "ceo@example.com".into(),
                targets: vec!["a@b.example".into()],
                keep_copy: true
            }
        );
    }

    #[test]
    fn a_quoted_password_may_hold_spaces_quotes_and_backslashes() {
        let lines = parse(
            b"a@x.example \"my \\\"good\\\" pass\\\\word\"\nb@x.example \"{CRYPT}x\"\n",
            "f",
        )
        .unwrap();
        assert_eq!(
            lines[0].record,
            Record::Mailbox {
                address: "a@x.example".into(),
                password: Password::Plain(b"my \"good\" pass\\word".to_vec())
            }
        );
        // Quoted, {CRYPT} is just text.
        assert!(
            matches!(&lines[1].record, Record::Mailbox { password: Password::Plain(p), .. } if p == b"{CRYPT}x")
        );
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, line, why) in [
            (
                &b"a@b.example pw\nlonely@b.example\n"[..],
                2,
                "expected ADDRESS PASSWORD",
            ),
            (b"# c\nbad@@x.example pw\n", 2, "not a domain name"),
            (b"\n\ndomain\n", 3, "expected: domain"),
            (b"alias x@y.example\n", 1, "expected: alias"),
            (b"forward x@y.example keep-copy\n", 1, "expected: forward"),
            (b"quota bob lots\n", 1, "not a size"),
            (b"bob@x.example {CRYPT}plain\n", 1, "crypt(3) hash"),
            (b"ok@x.example pw\n\xff\xfe pw\n", 2, "UTF-8"),
            (b"a+b@x.example pw\n", 1, "'+'"),
            // What once became the system user "this", password "line is
            // broken"; and its relatives.
            (b"this line is broken\n", 1, "\"this\" is not an address"),
            (b"ok@x.example pw\nword\n", 2, "found only \"word\""),
            (b"bob secret\n", 1, "\"bob\" is not an address"),
            (b"a@x.example pass word\n", 1, "found 3 fields"),
            (b"a@x.example \"pass word\n", 1, "no closing '\"'"),
            (
                b"a@x.example \"pass\" word\n",
                1,
                "more after the quoted password",
            ),
            (b"a@x.example \"\"\n", 1, "the password is empty"),
        ] {
            let e = parse(text, "users.txt").unwrap_err();
            assert_eq!(e.code, ExitCode::DataErr);
            assert!(
                e.message.starts_with(&format!("users.txt:{line}: ")),
                "{}",
                e.message
            );
            assert!(e.message.contains(why), "{} lacks {why}", e.message);
        }
    }
}
