//! The virtusertable, looked up exactly as sendmail 8's standard
//! configuration does (`FEATURE(virtusertable)`, cf/README).
//!
//! For `L@D` the first hit of these keys wins:
//!
//! 1. `L@D` (`%1` = L)
//! 2. when L = `U+X` with X non-empty: `U++@D`
//! 3. when L contains `+`: `U+*@D`
//! 4. when L contains `+`: `U@D`
//! 5. when X is non-empty: `++@D`
//! 6. when L contains `+`: `+*@D`
//! 7. `@D`
//!
//! In steps 2–7 `%1` = U, `%2` = X, `%3` = `+X`; an address without `+` tries
//! only steps 1 and 7 (`%2`, `%3` empty).  The split is at the first `+`.
//! `%%` is a literal `%`.
//!
//! A value is a local name, a single address (looked up again), or an
//! error: `error:CODE TEXT` or `error:D.S.N:CODE TEXT` where CODE is a
//! sysexits word (`nouser`, `nohost`, `unavailable`, `tempfail`, ...) or an
//! SMTP reply code.

use crate::exit::ExitCode;
use crate::table::{Hit, Table};

/// Which of the seven keys matched (for `mailroom explain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match<'a> {
    pub key: String,
    pub hit: Hit<'a>,
    /// The value with `%1 %2 %3` substituted.
    pub value: String,
    /// True for the domain-wide keys (steps 5–7: `++@D`, `+*@D`, `@D`).
    pub catch_all: bool,
    /// True for the address's own key (step 1: `L@D`), not a `+detail`
    /// form of it or a domain-wide key.
    pub exact: bool,
}

/// The user-specific keys (steps 1–4), or the domain-wide ones (5–7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steps {
    User,
    Domain,
}

/// Look `local@domain` up, trying only the given steps.  `local` is the
/// local part as sendmail's rules leave it (quotes and all): keys are
/// looked up without quotes and escapes (sendmail's map lookups strip
/// them), `%1`, `%2`, `%3` keep them; a `+` inside quotes splits nothing.
pub fn lookup<'a>(table: &'a Table, local: &str, domain: &str, steps: Steps) -> Option<Match<'a>> {
    let domain = domain.to_ascii_lowercase();
    let (user, detail, plussed) = match crate::address::unquoted_find(local, '+') {
        Some(i) => (&local[..i], &local[i + 1..], true),
        None => (local, "", false),
    };
    let key_local = crate::address::unquote_local(local);
    let key_user = crate::address::unquote_local(user);
    let mut keys: Vec<(String, bool)> = Vec::new();
    match steps {
        Steps::User => {
            keys.push((format!("{key_local}@{domain}"), false));
            if plussed {
                if !detail.is_empty() {
                    keys.push((format!("{key_user}++@{domain}"), true));
                }
                keys.push((format!("{key_user}+*@{domain}"), true));
                keys.push((format!("{key_user}@{domain}"), true));
            }
        }
        Steps::Domain => {
            if !detail.is_empty() {
                keys.push((format!("++@{domain}"), true));
            }
            if plussed {
                keys.push((format!("+*@{domain}"), true));
            }
            keys.push((format!("@{domain}"), true));
        }
    }
    for (key, split) in keys {
        if let Some(hit) = table.get(&key) {
            let (p1, p2, p3) = if split && plussed {
                (user.to_string(), detail.to_string(), format!("+{detail}"))
            } else if split {
                (user.to_string(), String::new(), String::new())
            } else {
                (local.to_string(), String::new(), String::new())
            };
            let value = substitute(hit.value, &p1, &p2, &p3);
            return Some(Match {
                catch_all: steps == Steps::Domain,
                exact: !split,
                key,
                hit,
                value,
            });
        }
    }
    None
}

/// Replace `%1`, `%2`, `%3` and `%%`.
pub fn substitute(value: &str, p1: &str, p2: &str, p3: &str) -> String {
    let mut out = String::with_capacity(value.len() + 16);
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('1') => out.push_str(p1),
            Some('2') => out.push_str(p2),
            Some('3') => out.push_str(p3),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// An error a table entry gives instead of an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError {
    /// Enhanced status code, e.g. `5.1.1`.
    pub dsn: String,
    /// SMTP reply code, e.g. 550.
    pub code: u16,
    pub text: String,
    /// A 4xx: the message is deferred, not bounced.
    pub temporary: bool,
    /// The sysexits code sendmail exits with for it (`-bv`).
    pub exit: ExitCode,
}

/// Parse `error:...` (the part after `error:`).
pub fn parse_error(spec: &str) -> TableError {
    let spec = spec.trim();
    let (code_part, text) = match spec.find([' ', '\t']) {
        Some(i) => (&spec[..i], spec[i..].trim()),
        None => (spec, ""),
    };
    // error:D.S.N:CODE TEXT
    if let Some((dsn, code)) = code_part.split_once(':')
        && is_dsn(dsn)
    {
        let code: u16 = code
            .parse()
            .unwrap_or(if dsn.starts_with('4') { 450 } else { 550 });
        return TableError {
            temporary: dsn.starts_with('4'),
            exit: dsn_to_exit(dsn),
            dsn: dsn.to_string(),
            code,
            text: text.to_string(),
        };
    }
    // error:CODE TEXT with CODE a number
    if let Ok(code) = code_part.parse::<u16>() {
        let dsn = if (400..500).contains(&code) {
            "4.0.0"
        } else {
            "5.0.0"
        };
        return TableError {
            temporary: (400..500).contains(&code),
            exit: dsn_to_exit(dsn),
            dsn: dsn.to_string(),
            code,
            text: text.to_string(),
        };
    }
    // error:WORD TEXT with WORD a sysexits name
    let (exit, dsn, code) = match code_part.to_ascii_lowercase().as_str() {
        "nouser" => (ExitCode::NoUser, "5.3.0", 553),
        "nohost" => (ExitCode::NoHost, "5.1.2", 550),
        "unavailable" => (ExitCode::Unavailable, "5.0.0", 550),
        "tempfail" => (ExitCode::TempFail, "4.0.0", 450),
        "usage" => (ExitCode::Usage, "5.5.4", 500),
        "dataerr" => (ExitCode::DataErr, "5.6.0", 501),
        "noperm" => (ExitCode::NoPerm, "5.7.1", 550),
        "protocol" => (ExitCode::Protocol, "5.5.0", 554),
        "config" => (ExitCode::Config, "5.3.5", 554),
        "software" => (ExitCode::Software, "5.3.0", 554),
        "oserr" => (ExitCode::OsErr, "4.0.0", 451),
        "ioerr" => (ExitCode::IoErr, "4.0.0", 451),
        _ => (ExitCode::Unavailable, "5.0.0", 550),
    };
    TableError {
        temporary: dsn.starts_with('4'),
        exit,
        dsn: dsn.to_string(),
        code,
        text: if text.is_empty() {
            "Service unavailable".to_string()
        } else {
            text.to_string()
        },
    }
}

fn is_dsn(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// sendmail's `dsntoexitstat`: the exit code for an enhanced status code.
pub fn dsn_to_exit(dsn: &str) -> ExitCode {
    let mut parts = dsn.split('.');
    let class = parts.next().unwrap_or("5");
    let subject: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let detail: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    match class {
        "2" => return ExitCode::Ok,
        "4" => return ExitCode::TempFail,
        "5" => {}
        _ => return ExitCode::Config,
    }
    match (subject, detail) {
        (0, _) => ExitCode::Unavailable,
        (1, 0) => ExitCode::DataErr,
        (1, 1) | (1, 6) => ExitCode::NoUser,
        (1, 2) | (1, 8) => ExitCode::NoHost,
        (1, 3) | (1, 7) => ExitCode::Usage,
        (1, 4) => ExitCode::Unavailable,
        (1, 5) => ExitCode::Config,
        (2, 3) => ExitCode::DataErr,
        (2, _) => ExitCode::Unavailable,
        (3, _) => ExitCode::OsErr,
        (4, 1) | (4, 3) | (4, 5) => ExitCode::TempFail,
        (4, 4) => ExitCode::Protocol,
        (4, 6) => ExitCode::Config,
        (4, 7) => ExitCode::Unavailable,
        (4, _) => ExitCode::IoErr,
        (5, _) => ExitCode::Protocol,
        (6, _) => ExitCode::Unavailable,
        (7, _) => ExitCode::DataErr,
        _ => ExitCode::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Syntax, Table};

    fn table(text: &str) -> (Table, std::path::PathBuf) {
        let d = std::env::temp_dir().join(format!("mr-vut-{}-{}", std::process::id(), text.len()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("virtusertable");
        std::fs::write(&p, text).unwrap();
        (Table::open(&p, Syntax::Makemap, false), d)
    }

    fn resolve(t: &Table, addr: &str) -> Option<String> {
        let (l, d) = addr.split_once('@').unwrap();
        lookup(t, l, d, Steps::User)
            .or_else(|| lookup(t, l, d, Steps::Domain))
            .map(|m| m.value)
    }

    #[test]
    fn lookup_order_and_substitutions_as_sendmail() {
        // The examples verified against sendmail 8.17 (sendmail.md §3.1).
        let (t, d) = table(
            "old+*@plus.example new+%2@remote.test\ndave++@plus.example dave-detail%3@remote.test\n+*@plus.example %1%3@remote.test\n@plus.example %1%3@other.test\n@pct.example %1@remote.test\n",
        );
        assert_eq!(
            resolve(&t, "old+foo@plus.example").unwrap(),
            "new+foo@remote.test"
        );
        assert_eq!(
            resolve(&t, "dave+x@plus.example").unwrap(),
            "dave-detail+x@remote.test"
        );
        assert_eq!(
            resolve(&t, "dave+@plus.example").unwrap(),
            "dave+@remote.test"
        );
        assert_eq!(resolve(&t, "x@plus.example").unwrap(), "x@other.test");
        assert_eq!(resolve(&t, "a+b@pct.example").unwrap(), "a@remote.test");
        assert_eq!(resolve(&t, "Dave@PCT.example").unwrap(), "Dave@remote.test");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn errors() {
        let e = parse_error("nouser No such user here");
        assert_eq!(
            (e.code, e.dsn.as_str(), e.text.as_str()),
            (553, "5.3.0", "No such user here")
        );
        assert_eq!(e.exit, ExitCode::NoUser);
        let e = parse_error("5.7.1:550 Abuse desk closed");
        assert_eq!(
            (e.code, e.dsn.as_str(), e.exit),
            (550, "5.7.1", ExitCode::DataErr)
        );
        let e = parse_error("5.1.1:550 Unknown list");
        assert_eq!(e.exit, ExitCode::NoUser);
        let e = parse_error("4.7.1:450 Try later");
        assert!(e.temporary);
        assert_eq!(
            parse_error("5.2.2:552 Mailbox full").exit,
            ExitCode::Unavailable
        );
        assert_eq!(parse_error("nohost Bad host").exit, ExitCode::NoHost);
        assert!(parse_error("tempfail Later").temporary);
    }
}
