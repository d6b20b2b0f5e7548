//! Mailbox accounts and what hangs on them: the virtual passwd file,
//! quotas (and mailboxes nearly full), autoreplies, filters.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::super::directory::Directory;
use super::super::names::valid_local;
use super::{Findings, read};
use crate::config::Config;
use crate::table::{self, Syntax};

pub(super) fn check_virtual_passwd(cfg: &Config, view: &Directory, f: &mut Findings) {
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

pub(super) fn check_quotas(cfg: &Config, view: &Directory, f: &mut Findings) {
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
pub(super) fn check_autoreplies(cfg: &Config, f: &mut Findings) {
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
pub(super) fn check_filters(cfg: &Config, view: &Directory, f: &mut Findings) {
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

/// How full a mailbox may be before `check` says so (percent of its
/// quota): past it, the next few messages may well bounce.
pub(super) const NEARLY_FULL: u8 = 95;

/// Mailboxes at [`NEARLY_FULL`] or more of their quota (a warning: the
/// mailbox works, its owner has been warned, the admin may want to act).
pub(super) fn check_fullness(cfg: &Config, f: &mut Findings) {
    let Ok(rows) = crate::admin::mailbox::list::rows(cfg, None) else {
        return;
    };
    for r in rows.iter().filter(|r| r.quota > 0) {
        if crate::quota::level(r.size, r.quota, &[NEARLY_FULL]) == 0 {
            continue;
        }
        let how = if r.size > r.quota {
            "over its quota"
        } else {
            "nearly full"
        };
        f.warn(
            &PathBuf::from(r.mailbox.trim_end_matches('/')),
            None,
            format!(
                "{}: {how}, {}: mail to it is refused once full (delete mail, or raise the quota: mailroom mailbox quota {} SIZE)",
                r.address,
                crate::quota::usage_text(r.size, r.quota),
                r.address
            ),
        );
    }
}
