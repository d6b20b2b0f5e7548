//! `mailroom check`: read every file of `/etc/mail` the way the suite (and
//! sendmail 8) reads it, report what is wrong with its file and line, and
//! warn about settings that are risky even though they work: a catch-all
//! (it takes spam for made-up addresses), `Connect:` RELAY for whole
//! networks, pipes in aliases, group- or world-writable files.
//!
//! Exit status: 0 when there is no error (warnings alone still exit 0), 78
//! (configuration error) when there is one.

//!
//! One file per family of checks: `tables.rs` (the class files, aliases,
//! lists, virtusertable, access, mailertable), `accounts.rs` (mailbox
//! accounts, quotas and mailboxes over 95% of theirs, autoreplies,
//! filters), `system.rs` (file modes, DKIM
//! keys, the outbound limits).  `mailroom check --dns` looks at the box
//! from outside instead: `dns.rs` (MX, SPF, DKIM and DMARC records,
//! reverse DNS, blocklists, the TLS certificate).

mod accounts;
pub mod dns;
mod system;
mod tables;

use std::io::Write;
use std::path::{Path, PathBuf};

use super::directory::Directory;
use crate::config::Config;
use crate::exit::{ExitCode, Failure};

/// One thing `check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub error: bool,
    pub text: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = if self.error { "error" } else { "warning" };
        match self.line {
            Some(l) => write!(f, "{}:{l}: {level}: {}", self.path.display(), self.text),
            None => write!(f, "{}: {level}: {}", self.path.display(), self.text),
        }
    }
}

pub(super) struct Findings(Vec<Finding>);

impl Findings {
    pub(super) fn error(&mut self, path: &Path, line: Option<usize>, text: impl Into<String>) {
        self.0.push(Finding {
            path: path.to_path_buf(),
            line,
            error: true,
            text: text.into(),
        });
    }
    pub(super) fn warn(&mut self, path: &Path, line: Option<usize>, text: impl Into<String>) {
        self.0.push(Finding {
            path: path.to_path_buf(),
            line,
            error: false,
            text: text.into(),
        });
    }
}

/// Check everything.  `config_error`: the configuration file could not be
/// loaded (then `cfg` holds the defaults).
pub fn check(cfg: &Config, config_error: Option<&Failure>) -> Vec<Finding> {
    let mut f = Findings(Vec::new());
    let conf_path = cfg
        .source
        .clone()
        .unwrap_or_else(|| cfg.paths.resolve(crate::config::CONFIG_FILE));
    if let Some(e) = config_error {
        f.error(&conf_path, None, e.to_string());
    }
    for (key, line) in crate::conf_keys::unknown(cfg) {
        f.warn(
            &conf_path,
            Some(line),
            format!("unknown key {key:?}, ignored (a typing mistake? see mailroom.conf(5))"),
        );
    }
    let view = Directory::on_disk(cfg);
    tables::check_class_files(cfg, &view, &mut f);
    tables::check_aliases(cfg, &view, &mut f);
    tables::check_virtusertable(cfg, &view, &mut f);
    tables::check_access(cfg, &mut f);
    tables::check_mailertable(cfg, &view, &mut f);
    accounts::check_virtual_passwd(cfg, &view, &mut f);
    accounts::check_quotas(cfg, &view, &mut f);
    accounts::check_fullness(cfg, &mut f);
    accounts::check_autoreplies(cfg, &mut f);
    accounts::check_filters(cfg, &view, &mut f);
    tables::check_lists(cfg, &view, &mut f);
    system::check_modes(cfg, &mut f);
    system::check_dkim(cfg, &mut f);
    system::check_limits(cfg, &conf_path, &mut f);
    system::check_inbound(cfg, &conf_path, &mut f);
    f.0
}

/// Read a file; a missing one is fine (`None`), an unreadable one is an
/// error.
pub(super) fn read(path: &Path, f: &mut Findings) -> Option<String> {
    match std::fs::read(path) {
        Ok(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            f.warn(
                path,
                None,
                format!(
                    "not checked: cannot read it: {} (run as root)",
                    crate::exit::io_reason(&e)
                ),
            );
            None
        }
    }
}

/// Run `mailroom check`.
pub fn run(cfg: &Config, config_error: Option<&Failure>, json: bool) -> i32 {
    let mut findings = check(cfg, config_error);
    findings.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
    let errors = findings.iter().filter(|x| x.error).count();
    let warnings = findings.len() - errors;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let r = if json {
        print_json(&findings, &mut out)
    } else {
        findings
            .iter()
            .try_for_each(|x| writeln!(out, "{x}"))
            .and_then(|()| {
                writeln!(
                    out,
                    "{errors} error{}, {warnings} warning{}",
                    if errors == 1 { "" } else { "s" },
                    if warnings == 1 { "" } else { "s" }
                )
            })
    };
    if r.is_err() {
        return ExitCode::IoErr.code();
    }
    if errors > 0 {
        ExitCode::Config.code()
    } else {
        0
    }
}

fn print_json(findings: &[Finding], out: &mut dyn Write) -> std::io::Result<()> {
    use super::queue::json_str;
    writeln!(out, "[")?;
    for (i, x) in findings.iter().enumerate() {
        writeln!(
            out,
            "  {{\"file\": {}, \"line\": {}, \"level\": {}, \"message\": {}}}{}",
            json_str(&x.path.display().to_string()),
            x.line.map_or("null".to_string(), |l| l.to_string()),
            json_str(if x.error { "error" } else { "warning" }),
            json_str(&x.text),
            if i + 1 < findings.len() { "," } else { "" }
        )?;
    }
    writeln!(out, "]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_print_file_line_and_level() {
        let x = Finding {
            path: PathBuf::from("/etc/mail/aliases"),
            line: Some(3),
            error: true,
            text: "missing colon".into(),
        };
        assert_eq!(x.to_string(), "/etc/mail/aliases:3: error: missing colon");
    }
}
