//! The sendmail tables and class files: each line read as sendmail 8 and
//! the suite read it, and each local target resolved.

use std::path::Path;

use super::super::directory::{Directory, is_refusal};
use super::{Findings, read};
use crate::config::Config;
use crate::table::{self, Syntax};

fn valid_domain_word(w: &str) -> bool {
    if w.starts_with('[') {
        return w.ends_with(']') && w.len() > 2;
    }
    crate::config::valid_hostname(w)
        && w.split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
}

pub(super) fn check_class_files(cfg: &Config, view: &Directory, f: &mut Findings) {
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
pub(super) fn check_lists(cfg: &Config, view: &Directory, f: &mut Findings) {
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
pub(super) fn check_local_target(
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

pub(super) fn check_aliases(cfg: &Config, view: &Directory, f: &mut Findings) {
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

pub(super) fn check_virtusertable(cfg: &Config, view: &Directory, f: &mut Findings) {
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

pub(super) fn check_access(cfg: &Config, f: &mut Findings) {
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

pub(super) fn check_mailertable(cfg: &Config, view: &Directory, f: &mut Findings) {
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
        let (mailer, arg) = e.value.split_once(':').unwrap_or((&e.value, ""));
        let mailer = mailer.to_ascii_lowercase();
        // For this host's domains only lmtp: and a bare local: mean
        // something: where their mailboxes' copies go.
        let mailbox_transport = mailer == "lmtp" || (mailer == "local" && arg.trim().is_empty());
        if mailer == "lmtp" && e.key == "." {
            f.error(
                &path,
                Some(e.line),
                ". lmtp: would send every remote domain's mail there too (and keep it queued); for every mailbox of this host set mailbox_transport in mailroom.conf",
            );
        } else if mailer == "lmtp" && !e.key.starts_with('.') && view.domain(d).is_none() {
            f.error(
                &path,
                Some(e.line),
                format!(
                    "{}: lmtp: hands this host's own mailboxes to an LMTP server, and {d} is not a domain of this host (add it to local-host-names or virtuser-domains)",
                    e.key
                ),
            );
        }
        if !e.key.starts_with('.') && view.domain(d).is_some() && !mailbox_transport {
            f.warn(
                &path,
                Some(e.line),
                format!("{d} is a domain of this host: its mail is delivered here and this entry is never used"),
            );
        }
        match mailer.as_str() {
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
            "lmtp" => {
                if let Err(why) = crate::hop::LmtpServer::parse(arg) {
                    f.error(&path, Some(e.line), format!("{}: {why}", e.key));
                }
            }
            other => f.error(
                &path,
                Some(e.line),
                format!(
                    "{}: unknown mailer {other:?} (use smtp:, esmtp:, relay:, local:, lmtp: or error:)",
                    e.key
                ),
            ),
        }
    }
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
}
