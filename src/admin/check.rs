//! `mailroom check`: read every file of `/etc/mail` the way the suite (and
//! sendmail 8) reads it, report what is wrong with its file and line, and
//! warn about settings that are risky even though they work: a catch-all
//! (it takes spam for made-up addresses), `Connect:` RELAY for whole
//! networks, pipes in aliases, group- or world-writable files.
//!
//! Exit status: 0 when there is no error (warnings alone still exit 0), 78
//! (configuration error) when there is one.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::directory::{Directory, is_refusal};
use super::names::valid_local;
use crate::config::Config;
use crate::exit::{ExitCode, Failure};
use crate::table::{self, Syntax};

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

struct Findings(Vec<Finding>);

impl Findings {
    fn error(&mut self, path: &Path, line: Option<usize>, text: impl Into<String>) {
        self.0.push(Finding {
            path: path.to_path_buf(),
            line,
            error: true,
            text: text.into(),
        });
    }
    fn warn(&mut self, path: &Path, line: Option<usize>, text: impl Into<String>) {
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
    check_class_files(cfg, &view, &mut f);
    check_aliases(cfg, &view, &mut f);
    check_virtusertable(cfg, &view, &mut f);
    check_access(cfg, &mut f);
    check_mailertable(cfg, &view, &mut f);
    check_virtual_passwd(cfg, &view, &mut f);
    check_quotas(cfg, &view, &mut f);
    check_autoreplies(cfg, &mut f);
    check_filters(cfg, &view, &mut f);
    check_lists(cfg, &view, &mut f);
    check_modes(cfg, &mut f);
    check_dkim(cfg, &mut f);
    f.0
}

/// Read a file; a missing one is fine (`None`), an unreadable one is an
/// error.
fn read(path: &Path, f: &mut Findings) -> Option<String> {
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

fn valid_domain_word(w: &str) -> bool {
    if w.starts_with('[') {
        return w.ends_with(']') && w.len() > 2;
    }
    crate::config::valid_hostname(w)
        && w.split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
}

fn check_class_files(cfg: &Config, view: &Directory, f: &mut Findings) {
    for (path, words, other) in [
        (&view.lhn_path, &view.local_words, &view.virtual_words),
        (&view.vd_path, &view.virtual_words, &view.local_words),
    ] {
        if read(path, f).is_none() {
            continue;
        }
        let mut seen: Vec<&str> = Vec::new();
        for (w, l) in words {
            if !valid_domain_word(w) {
                f.error(path, Some(*l), format!("{w:?} is not a domain name"));
            } else if seen.contains(&w.as_str()) {
                f.warn(path, Some(*l), format!("{w} is listed twice"));
            }
            seen.push(w);
            if path == &view.vd_path
                && let Some((_, ol)) = other.iter().find(|(o, _)| o == w)
            {
                f.warn(
                    path,
                    Some(*l),
                    format!(
                        "{w} is also a local domain ({}:{ol}): it is treated as local; keep it in one file",
                        view.lhn_path.display()
                    ),
                );
            }
        }
    }
    let _ = cfg;
}

/// Mailing lists ([`crate::lists`]): settings that parse, the members and
/// owner files, the two aliases entries, members that exist.
fn check_lists(cfg: &Config, view: &Directory, f: &mut Findings) {
    let Ok(rd) = std::fs::read_dir(crate::lists::dir(cfg)) else {
        return;
    };
    let mut names: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            Some(n.strip_suffix(".conf")?.to_string())
        })
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    for name in names {
        let conf = cfg.paths.resolve(crate::lists::conf_path(&name));
        if !crate::lists::valid_name(&name) {
            f.error(
                &conf,
                None,
                format!("{name:?} is not a list name (a-z, 0-9, _ and -)"),
            );
            continue;
        }
        if let Some(text) = read(&conf, f)
            && let Err(e) = crate::lists::Settings::parse(&text)
        {
            f.error(&conf, None, e);
        }
        let want = [
            (name.clone(), crate::lists::members_path(&name)),
            (format!("owner-{name}"), crate::lists::owner_path(&name)),
        ];
        for (alias, file) in want {
            let path = cfg.paths.resolve(&file);
            let Some(text) = read(&path, f) else {
                f.error(&path, None, format!("missing: list {name} needs it"));
                continue;
            };
            let include = format!(":include:{file}");
            match view.alias_get(&alias) {
                Some(e) if e.value.trim() == include => {}
                _ => f.error(
                    &view.aliases_path,
                    None,
                    format!("list {name} needs the entry '{alias}: {include}'"),
                ),
            }
            for (m, line) in crate::lists::parse_members(&text) {
                if crate::address::parse_one(&m).map_or(true, |a| a.addr.is_empty())
                    || m.starts_with(['|', '/'])
                    || m.to_ascii_lowercase().starts_with(":include:")
                {
                    f.error(&path, Some(line), format!("{m:?} is not an address"));
                } else {
                    check_local_target(view, &m, &path, line, "list member", f);
                }
            }
        }
    }
}

/// Warn when a local target (name or address of ours) leads nowhere.
fn check_local_target(
    view: &Directory,
    elem: &str,
    path: &Path,
    line: usize,
    what: &str,
    f: &mut Findings,
) {
    let e = elem.trim().trim_matches('"');
    if e.is_empty() || e.starts_with(['|', '/']) || e.to_ascii_lowercase().starts_with(":include:")
    {
        return;
    }
    if let Some(u) = e.strip_prefix('\\') {
        if view.user(u).is_none() {
            f.warn(
                path,
                Some(line),
                format!("{what}: {e}: there is no system user {u}; mail to it bounces"),
            );
        }
        return;
    }
    match e.rsplit_once('@') {
        Some((local, d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if view.domain(&d).is_some() && !view.address_resolves(local, &d) {
                f.warn(
                    path,
                    Some(line),
                    format!("{what}: {e} does not exist on this host; mail to it bounces"),
                );
            }
        }
        None => {
            let name = e.split('+').next().unwrap_or(e);
            if view.name_owner(name).is_none() {
                f.warn(
                    path,
                    Some(line),
                    format!(
                        "{what}: {e} is not a user, alias or mailbox account; mail to it bounces"
                    ),
                );
            }
        }
    }
}

fn check_aliases(cfg: &Config, view: &Directory, f: &mut Findings) {
    let path = &view.aliases_path;
    let Some(text) = read(path, f) else {
        f.warn(
            path,
            None,
            "missing: there is no postmaster alias (create the file with 'postmaster: root')",
        );
        return;
    };
    let parsed = crate::aliases::parse(text.as_bytes());
    for p in &parsed.problems {
        if p.warning {
            f.warn(path, Some(p.line), &p.text);
        } else {
            f.error(path, Some(p.line), &p.text);
        }
    }
    for e in parsed.effective() {
        for elem in crate::aliases::split_list(&e.value) {
            let plain = elem.trim().trim_matches('"');
            if plain.starts_with('|') {
                let also = if cfg.allow_programs {
                    format!("it runs as {} for every message", cfg.default_user)
                } else {
                    "allow_programs = no: it bounces".to_string()
                };
                f.warn(
                    path,
                    Some(e.line),
                    format!(
                        "{}: pipes mail to a program ({plain}): {also}; make sure it is meant",
                        e.name
                    ),
                );
            } else if plain.starts_with('/') && !cfg.allow_files {
                f.warn(
                    path,
                    Some(e.line),
                    format!("{}: {plain}: allow_files = no: it bounces", e.name),
                );
            } else if plain.to_ascii_lowercase().starts_with(":include:") {
                let p = plain[9..].trim();
                if !cfg.paths.resolve(p).is_file() {
                    f.warn(
                        path,
                        Some(e.line),
                        format!("{}: {p} does not exist", e.name),
                    );
                }
            } else if !plain.eq_ignore_ascii_case(&e.name) {
                check_local_target(view, &elem, path, e.line, &e.name, f);
            }
        }
    }
    if view.name_owner("postmaster").is_none() {
        f.warn(
            path,
            None,
            "no postmaster: mail to postmaster@ your domains bounces (RFC 5321 requires it); add 'postmaster: root'",
        );
    }
}

fn check_virtusertable(cfg: &Config, view: &Directory, f: &mut Findings) {
    let path = &view.vut_path;
    let Some(text) = read(path, f) else { return };
    let parsed = table::parse(Syntax::Makemap, text.as_bytes());
    for p in &parsed.problems {
        f.error(path, Some(p.line), &p.text);
    }
    for e in &parsed.entries {
        let Some((local, d)) = e.key.rsplit_once('@') else {
            f.warn(
                path,
                Some(e.line),
                format!(
                    "key {} has no @: never matched (keys are user@domain or @domain)",
                    e.key
                ),
            );
            continue;
        };
        if view.domain(d).is_none() {
            f.warn(
                path,
                Some(e.line),
                format!(
                    "{d} is neither a local nor a virtual domain: this entry is never used ('mailroom domain add {d} --virtual')"
                ),
            );
        }
        let value = e.value.trim();
        if local.is_empty() && !is_refusal(value) {
            f.warn(
                path,
                Some(e.line),
                format!("catch-all on for {d}: every address of {d} that nothing else takes goes to {value}, spam to made-up addresses included"),
            );
        }
        if is_refusal(value) {
            continue;
        }
        if crate::aliases::split_list(value).len() > 1 {
            f.error(
                path,
                Some(e.line),
                format!("{}: a virtusertable value is one address; for several use an aliases entry ('mailroom alias add' does this)", e.key),
            );
            continue;
        }
        if let Some((vl, vd)) = value.rsplit_once('@') {
            let vd = vd.to_ascii_lowercase();
            if !vl.contains('%') && view.domain(&vd).is_some() && !view.address_resolves(vl, &vd) {
                f.warn(
                    path,
                    Some(e.line),
                    format!(
                        "{}: {value} does not exist on this host; mail to it bounces",
                        e.key
                    ),
                );
            }
        } else if !value.contains('%') {
            check_local_target(view, value, path, e.line, &e.key, f);
        }
    }
    let _ = cfg;
}

/// Is an access key an IP prefix too wide to relay for?  Returns how wide.
fn wide_prefix(key: &str) -> Option<String> {
    if let Some(v6) = key
        .strip_prefix("IPv6:")
        .or_else(|| key.strip_prefix("ipv6:"))
    {
        let groups = v6.split(':').filter(|g| !g.is_empty()).count();
        if v6.ends_with("::") || v6.contains("::") {
            return None;
        }
        return (groups < 4).then(|| format!("a /{} network", groups * 16));
    }
    let parts: Vec<&str> = key.split('.').collect();
    if !parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        // A host or domain name: a top-level domain alone is wide.
        return (!key.contains('.') && !key.is_empty() && !key.eq_ignore_ascii_case("localhost"))
            .then(|| format!("every host of the top-level domain .{key}"));
    }
    if parts[0] == "127" {
        return None;
    }
    (parts.len() < 3).then(|| format!("a /{} network ({key}.*)", parts.len() * 8))
}

fn check_access(cfg: &Config, f: &mut Findings) {
    let path = cfg.paths.etc_mail("access");
    let Some(text) = read(&path, f) else { return };
    let parsed = table::parse(Syntax::Makemap, text.as_bytes());
    for p in &parsed.problems {
        f.error(&path, Some(p.line), &p.text);
    }
    let lines: Vec<&str> = text.lines().collect();
    for e in &parsed.entries {
        // The key as the admin wrote it (the parser lower-cases it).
        let shown = lines
            .get(e.line - 1)
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or(&e.key);
        let (tag, rest) = match e.key.split_once(':') {
            Some((t, r)) if ["connect", "from", "to"].contains(&t) => (Some(t), r),
            Some((t, _)) if t != "ipv6" => {
                f.warn(
                    &path,
                    Some(e.line),
                    format!("tag {t}: is not used by mailroom (only Connect:, From: and To:)"),
                );
                continue;
            }
            _ => (None, e.key.as_str()),
        };
        let value = e.value.trim();
        let upper = value.to_ascii_uppercase();
        let known = ["OK", "RELAY", "REJECT", "DISCARD", "SKIP"].contains(&upper.as_str())
            || upper.starts_with("ERROR:");
        if !known {
            f.error(
                &path,
                Some(e.line),
                format!("{shown}: unknown action {value:?}: treated as SKIP (no decision); use OK, RELAY, REJECT, DISCARD, SKIP or ERROR:CODE TEXT"),
            );
            continue;
        }
        if upper == "RELAY" && tag != Some("from") {
            // Connect: (and untagged, which also counts for connections).
            let key = if tag == Some("to") { None } else { Some(rest) };
            if let Some(k) = key
                && let Some(how) = wide_prefix(k)
            {
                f.warn(
                    &path,
                    Some(e.line),
                    format!(
                        "{shown} RELAY: every client in {how} may send mail anywhere through this host; list single hosts or a /24 at most, and use SMTP AUTH for the rest"
                    ),
                );
            }
        }
    }
}

fn check_mailertable(cfg: &Config, view: &Directory, f: &mut Findings) {
    let path = cfg.paths.etc_mail("mailertable");
    let Some(text) = read(&path, f) else { return };
    let parsed = table::parse(Syntax::Makemap, text.as_bytes());
    for p in &parsed.problems {
        f.error(&path, Some(p.line), &p.text);
    }
    for e in &parsed.entries {
        let d = e.key.trim_start_matches('.');
        if e.key != "." && !valid_domain_word(d) {
            f.error(
                &path,
                Some(e.line),
                format!(
                    "{:?} is not a domain (write example.com, .example.com or .)",
                    e.key
                ),
            );
            continue;
        }
        if !e.key.starts_with('.') && view.domain(d).is_some() {
            f.warn(
                &path,
                Some(e.line),
                format!("{d} is a domain of this host: its mail is delivered here and this entry is never used"),
            );
        }
        let (mailer, arg) = e.value.split_once(':').unwrap_or((&e.value, ""));
        match mailer.to_ascii_lowercase().as_str() {
            "smtp" | "esmtp" | "smtp8" | "dsmtp" | "relay" => {
                if !arg.is_empty() && crate::route::Hop::parse(arg, 25).is_none() {
                    f.error(
                        &path,
                        Some(e.line),
                        format!(
                            "{}: bad host {arg:?} (write host, [host] or [host]:port)",
                            e.key
                        ),
                    );
                }
            }
            "local" => {
                if !arg.is_empty() && view.name_owner(arg).is_none() {
                    f.warn(
                        &path,
                        Some(e.line),
                        format!("{}: local:{arg}: no such user or alias", e.key),
                    );
                }
            }
            "error" => {}
            other => f.error(
                &path,
                Some(e.line),
                format!(
                    "{}: unknown mailer {other:?} (use smtp:, esmtp:, relay:, local: or error:)",
                    e.key
                ),
            ),
        }
    }
}

fn check_virtual_passwd(cfg: &Config, view: &Directory, f: &mut Findings) {
    let path = &view.vpasswd_path;
    let Some(text) = read(path, f) else { return };
    let mut logins: Vec<(String, usize)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if raw.trim().is_empty() || raw.trim_start().starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = raw.splitn(5, ':').collect();
        let login = fields[0].trim().to_ascii_lowercase();
        if login.is_empty() {
            f.error(
                path,
                Some(n),
                "no login before the first ':' (login:password:mailbox:quota:name)",
            );
            continue;
        }
        if fields.len() < 2 {
            f.error(
                path,
                Some(n),
                format!("{login}: no password field (login:password:mailbox:quota:name)"),
            );
            continue;
        }
        let (local, domain) = match login.rsplit_once('@') {
            Some((l, d)) => (l, Some(d)),
            None => (login.as_str(), None),
        };
        if !valid_local(local) {
            f.error(
                path,
                Some(n),
                format!("{login:?} is not a login (an address or a name)"),
            );
        }
        if let Some(d) = domain
            && view.domain(d).is_none()
        {
            f.warn(
                path,
                Some(n),
                format!("{login}: {d} is not a domain of this host: no mail reaches it"),
            );
        }
        if let Some((_, first)) = logins.iter().find(|(l, _)| *l == login) {
            f.error(
                path,
                Some(n),
                format!("{login}: duplicate login (first at line {first})"),
            );
        }
        logins.push((login.clone(), n));
        let secret = fields[1];
        let ok_secret = secret.starts_with('$')
            || secret.starts_with("{PLAIN}")
            || secret.starts_with(['*', '!']);
        if secret.is_empty() {
            f.error(
                path,
                Some(n),
                format!("{login}: empty password field (use * for no POP3 login)"),
            );
        } else if !ok_secret {
            f.error(path, Some(n), format!("{login}: unknown password scheme (a crypt hash like $6$..., {{PLAIN}}secret, or *)"));
        } else if secret.starts_with("{PLAIN}") {
            f.warn(path, Some(n), format!("{login}: the password is stored in clear ({{PLAIN}}); set a hashed one with 'mailroom mailbox passwd {login}'"));
        }
        if let Some(mb) = fields.get(2).map(|s| s.trim())
            && !mb.is_empty()
            && !mb.starts_with('/')
        {
            f.error(
                path,
                Some(n),
                format!("{login}: mailbox {mb:?} is not an absolute path"),
            );
        }
        if let Some(q) = fields.get(3).map(|s| s.trim())
            && !q.is_empty()
            && crate::config::parse_size(q).is_none()
        {
            f.error(
                path,
                Some(n),
                format!("{login}: quota {q:?} is not a size (like 200M)"),
            );
        }
    }
    if !logins.is_empty() && view.user(&cfg.virtual_user).is_none() {
        f.error(
            path,
            None,
            format!("virtual_user {} does not exist: virtual mailboxes cannot be delivered to (create the user or set virtual_user in mailroom.conf)", cfg.virtual_user),
        );
    }
    if let Ok(m) = std::fs::metadata(path)
        && m.mode() & 0o077 != 0
    {
        f.warn(
            path,
            None,
            format!(
                "mode {:04o}: it holds password hashes; make it root-only (chmod 600)",
                m.mode() & 0o7777
            ),
        );
    }
}

fn check_quotas(cfg: &Config, view: &Directory, f: &mut Findings) {
    let path = cfg.paths.etc_mail("quotas");
    let Some(text) = read(&path, f) else { return };
    let parsed = table::parse(Syntax::Makemap, text.as_bytes());
    for p in &parsed.problems {
        f.error(&path, Some(p.line), &p.text);
    }
    for e in &parsed.entries {
        if crate::config::parse_size(&e.value).is_none() {
            f.error(
                &path,
                Some(e.line),
                format!(
                    "{}: {:?} is not a size (like 200M, or 0 for none)",
                    e.key, e.value
                ),
            );
        }
        if view.user(&e.key).is_none() && view.virtual_account(&e.key).is_none() {
            f.warn(
                &path,
                Some(e.line),
                format!("{}: no such user or mailbox account: never used", e.key),
            );
        }
    }
}

/// Each autoreply rule file parses, still leads to a local mailbox, and is
/// not past its last day (then it answers no one: worth cleaning up).
fn check_autoreplies(cfg: &Config, f: &mut Findings) {
    let dir = crate::autoreply::rules_dir(cfg);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    paths.sort();
    let resolver = crate::resolve::Resolver::new(cfg, false);
    let today = crate::autoreply::today(crate::date::now());
    for path in paths {
        let Some(text) = read(&path, f) else { continue };
        let rule = match crate::autoreply::Rule::parse(&text) {
            Ok(r) => r,
            Err(e) => {
                f.error(&path, None, format!("{e}: this address sends no replies"));
                continue;
            }
        };
        let key = path.file_name().unwrap_or_default().to_string_lossy();
        let to_mailbox = resolver
            .resolve(&key)
            .finals
            .iter()
            .any(|x| matches!(x.target, crate::resolve::Target::Mailbox { .. }));
        if !to_mailbox {
            f.warn(
                &path,
                None,
                format!("{key} no longer delivers to a local mailbox: never used ('mailroom autoreply clear {key}')"),
            );
        }
        if rule
            .until_date
            .as_deref()
            .is_some_and(|u| u < today.as_str())
        {
            f.warn(
                &path,
                None,
                format!(
                    "ended on {}: answers no one ('mailroom autoreply clear {key}')",
                    rule.until_date.as_deref().unwrap_or("")
                ),
            );
        }
    }
}

/// `/etc/mail/filter` and `/etc/mail/filters/LOGIN` parse, belong to
/// root and are not group/world-writable (delivery ignores them
/// otherwise), and each LOGIN is a mailbox.
fn check_filters(cfg: &Config, view: &Directory, f: &mut Findings) {
    let global = cfg.paths.etc_mail("filter");
    let mut paths = vec![(global, None)];
    if let Ok(rd) = std::fs::read_dir(cfg.paths.etc_mail("filters")) {
        let mut more: Vec<(PathBuf, Option<String>)> = rd
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| (e.path(), Some(e.file_name().to_string_lossy().into_owned())))
            .collect();
        more.sort();
        paths.extend(more);
    }
    let me = nix::unistd::geteuid().as_raw();
    for (path, login) in paths {
        let Some(text) = read(&path, f) else { continue };
        if let Err(e) = crate::filter::parse(&path.display().to_string(), &text) {
            f.error(
                &path,
                Some(e.line),
                format!("{}: the rules are not used; mail goes to the inbox", e.what),
            );
        }
        if let Ok(m) = std::fs::metadata(&path)
            && ((m.uid() != 0 && m.uid() != me) || m.mode() & 0o022 != 0)
        {
            f.warn(
                &path,
                None,
                "not owned by root or group/world-writable: delivery ignores it",
            );
        }
        if let Some(login) = login
            && view.user(&login).is_none()
            && view.virtual_account(&login).is_none()
        {
            f.warn(
                &path,
                None,
                format!("{login}: no such user or mailbox account: never used ('mailroom filter clear' it)"),
            );
        }
    }
}

fn check_modes(cfg: &Config, f: &mut Findings) {
    let dir = cfg.paths.etc_mail("");
    let mut paths = vec![dir.clone()];
    if let Ok(rd) = std::fs::read_dir(&dir) {
        let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        paths.extend(entries);
    }
    for p in paths {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.file_type().is_symlink() {
            continue;
        }
        let mode = m.mode() & 0o7777;
        if mode & 0o002 != 0 {
            f.warn(
                &p,
                None,
                format!(
                    "world-writable (mode {mode:04o}): anyone can change where mail goes; chmod o-w"
                ),
            );
        } else if mode & 0o020 != 0 && !(m.is_dir() && mode & 0o1000 != 0) {
            f.warn(
                &p,
                None,
                format!("group-writable (mode {mode:04o}): every member of its group can change where mail goes; chmod g-w"),
            );
        }
    }
}

/// DKIM keys: each must load (else its domain's mail waits in the queue)
/// and be private.
fn check_dkim(cfg: &Config, f: &mut Findings) {
    let top = crate::dkim::keys_dir(cfg);
    let Ok(rd) = std::fs::read_dir(&top) else {
        return;
    };
    let mut domains: Vec<(String, PathBuf)> = rd
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, _)| !n.starts_with('.'))
        .collect();
    domains.sort();
    for (domain, dir) in domains {
        if !crate::dkim::valid_domain(&domain) {
            f.warn(&dir, None, "not a domain name: its keys are never used");
            continue;
        }
        let files = match crate::dkim::key_files(cfg, &domain) {
            Ok(files) => files,
            Err(e) => {
                f.error(
                    &dir,
                    None,
                    format!(
                        "cannot read it: {} (run as root)",
                        crate::exit::io_reason(&e)
                    ),
                );
                continue;
            }
        };
        for (selector, path) in files {
            if let Err(e) = crate::dkim::load_key(&selector, &path) {
                let e = e
                    .strip_prefix(&format!("{}: ", path.display()))
                    .unwrap_or(&e)
                    .to_string();
                f.error(
                    &path,
                    None,
                    format!("{e}: mail from {domain} stays queued until this is fixed"),
                );
            }
            if let Ok(m) = std::fs::metadata(&path)
                && m.mode() & 0o077 != 0
            {
                f.warn(
                    &path,
                    None,
                    format!(
                        "private key readable by others (mode {:04o}); chmod 600",
                        m.mode() & 0o7777
                    ),
                );
            }
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
    fn wide_relay_prefixes() {
        assert!(wide_prefix("10").is_some());
        assert!(wide_prefix("192.168").is_some());
        assert_eq!(wide_prefix("192.168.1"), None);
        assert_eq!(wide_prefix("192.168.1.7"), None);
        assert_eq!(wide_prefix("127"), None);
        assert_eq!(wide_prefix("127.0.0.1"), None);
        assert!(wide_prefix("IPv6:2001:db8").is_some());
        assert_eq!(wide_prefix("IPv6:2001:db8:1:2"), None);
        assert_eq!(wide_prefix("mx.example.com"), None);
        assert!(wide_prefix("com").is_some());
        assert_eq!(wide_prefix("localhost"), None);
    }

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
