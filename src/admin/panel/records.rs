//! What the panel shows: the records of [`crate::panel::protocol`]'s
//! table, read from the same files the `mailroom` command lists, and each
//! changeable one's `stamp`.
//!
//! A stamp is the first 16 hex digits of the SHA-256 of the record's
//! fields as the files give them now (everything but `used`, which
//! delivery changes, and the stamp itself).  The page sends it back as
//! `seen` with a change; [`current`] builds the record again under the
//! change's lock, and a different stamp means someone (the `mailroom`
//! command, another browser) changed the object since: the change is
//! refused as `stale`, saying what the object is now.

use super::access::{Mailboxes, domain_of, may_domain};
use super::session::{Session, sha256_hex};
use crate::admin::directory::{Directory, is_refusal};
use crate::admin::mailbox::list::{Row, rows};
use crate::admin::names::{is_derived, parse_address};
use crate::config::Config;
use crate::exit::Failure;
use crate::panel::protocol::{Record, Role};

/// The stamp of `r` (see the module text).
pub fn stamp(r: &Record) -> String {
    let mut kept = Record::new();
    for (k, v) in &r.0 {
        if k != "stamp" && k != "used" {
            kept.push(k, v.clone());
        }
    }
    sha256_hex(kept.encode().as_bytes())[..16].to_string()
}

fn stamped(mut r: Record) -> Record {
    let s = stamp(&r);
    r.push("stamp", s);
    r
}

fn split(value: &str) -> Vec<String> {
    crate::aliases::split_list(value)
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The targets an entry's value stands for: its own aliases entry's
/// (one mailroom made for it), else the value itself.
fn targets(view: &Directory, value: &str) -> Vec<String> {
    let lv = value.trim().to_ascii_lowercase();
    match view.alias_get(&lv) {
        Some(e) if !lv.contains('@') && view.user(&lv).is_none() => split(&e.value),
        _ => vec![value.trim().to_string()],
    }
}

/// The forward of the mailbox `address` leads to.
pub fn forward(view: &Directory, address: &str) -> Option<Record> {
    let addr = parse_address(address).ok()?;
    let user = view.mailbox_user(&addr).ok()?;
    let e = view.alias_get(&user)?;
    let copy = format!("\\{user}");
    let mut r = Record::new()
        .with("kind", "forward")
        .with("address", addr.key());
    let mut keep = false;
    for t in split(&e.value) {
        if t.eq_ignore_ascii_case(&copy) {
            keep = true;
        } else {
            r.push("target", t);
        }
    }
    r.push("keep", if keep { "yes" } else { "no" });
    Some(stamped(r))
}

/// The alias `address` (not a mailbox, not a list).
pub fn alias(cfg: &Config, view: &Directory, address: &str) -> Option<Record> {
    let addr = parse_address(address).ok()?;
    let key = addr.key();
    let value = match &addr.domain {
        Some(_) => view.vut_get(&key)?.0.trim().to_string(),
        None if view.user(&key).is_none() => view.alias_get(&key)?.value.clone(),
        None => return None,
    };
    let lv = value.to_ascii_lowercase();
    if addr.domain.is_some()
        && (view.user(&lv).is_some() && is_derived(&key, &lv) || crate::lists::is_list(cfg, &lv))
    {
        return None;
    }
    let ts = match &addr.domain {
        Some(_) => targets(view, &value),
        None => split(&value),
    };
    let mut r = Record::new().with("kind", "alias").with("address", key);
    for t in ts {
        r.push("target", t);
    }
    Some(stamped(r))
}

/// The catch-all of domain `d`.
pub fn catchall(view: &Directory, d: &str) -> Option<Record> {
    let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
    let (value, _) = view.catch_all(&d)?;
    if is_refusal(value) {
        return None;
    }
    let mut r = Record::new().with("kind", "catchall").with("domain", d);
    for t in targets(view, value) {
        r.push("target", t);
    }
    Some(stamped(r))
}

/// The autoreply of `address`.
pub fn autoreply(cfg: &Config, address: &str) -> Option<Record> {
    let key = crate::autoreply::key(address, &cfg.hostname)?;
    let rule = crate::autoreply::load(cfg, &key).ok()??;
    Some(stamped(
        Record::new()
            .with("kind", "autoreply")
            .with("address", key)
            .with("subject", rule.subject)
            .with("text", rule.body)
            .with("from", rule.from_date.unwrap_or_default())
            .with("until", rule.until_date.unwrap_or_default())
            .with("interval", rule.interval_text),
    ))
}

/// The list `address` names.
pub fn list(cfg: &Config, view: &Directory, address: &str) -> Option<Record> {
    let addr = parse_address(address).ok()?;
    let name = match &addr.domain {
        Some(_) => view.vut_get(&addr.key())?.0.trim().to_ascii_lowercase(),
        None => addr.local.clone(),
    };
    let l = crate::lists::List::load(cfg, &name).ok()??;
    let mut r = Record::new()
        .with("kind", "list")
        .with("address", addr.key());
    for m in l.members {
        r.push("member", m);
    }
    r.push(
        "posting",
        if l.settings.anyone_may_post {
            "anyone"
        } else {
            "members"
        },
    );
    Some(stamped(r))
}

/// The filter rules of the mailbox `address` leads to.
pub fn filter(cfg: &Config, address: &str) -> Option<Record> {
    let login = crate::admin::filter::login_for(cfg, address).ok()?;
    filter_of(cfg, address, &login)
}

/// The filter rules of `login`'s mailbox, shown for `address`.
fn filter_of(cfg: &Config, address: &str, login: &str) -> Option<Record> {
    let path = crate::admin::filter::dir(cfg).join(login);
    let rules = std::fs::read_to_string(path).ok()?;
    Some(stamped(
        Record::new()
            .with("kind", "filter")
            .with("address", address.trim().to_ascii_lowercase())
            .with("rules", rules),
    ))
}

fn mailbox(row: &Row) -> Record {
    stamped(
        Record::new()
            .with("kind", "mailbox")
            .with("address", row.address.clone())
            .with("used", row.size.to_string())
            .with("quota", row.quota.to_string()),
    )
}

/// The mailbox `address` (as `mailroom mailbox list` shows it).
pub fn mailbox_of(cfg: &Config, address: &str) -> Option<Record> {
    let a = address.trim();
    let all = rows(cfg, domain_of(a).as_deref()).ok()?;
    all.iter()
        .find(|r| r.address.eq_ignore_ascii_case(a))
        .map(mailbox)
}

/// The record of kind `kind` for `object` as the files have it now
/// (`None`: there is none).
pub fn current(cfg: &Config, kind: &str, object: &str) -> Option<Record> {
    let view = || Directory::on_disk(cfg);
    match kind {
        "forward" => forward(&view(), object),
        "alias" => alias(cfg, &view(), object),
        "catchall" => catchall(&view(), object),
        "autoreply" => autoreply(cfg, object),
        "list" => list(cfg, &view(), object),
        "filter" => filter(cfg, object),
        "mailbox" => mailbox_of(cfg, object),
        _ => None,
    }
}

/// What the object is now, for a `stale` answer.
pub fn describe(kind: &str, object: &str, now: Option<&Record>) -> String {
    let Some(r) = now else {
        return format!(
            "the {kind} of {object} changed since the page was shown: there is none now"
        );
    };
    let mut parts: Vec<String> = Vec::new();
    for (k, v) in &r.0 {
        if matches!(k.as_str(), "kind" | "address" | "domain" | "stamp" | "used") {
            continue;
        }
        let mut v = v.replace(['\r', '\n'], " ");
        if v.chars().count() > 80 {
            v = v.chars().take(77).collect::<String>() + "...";
        }
        parts.push(format!("{k} {v}"));
    }
    format!(
        "the {kind} of {object} changed since the page was shown: now {}",
        parts.join(", ")
    )
}

/// The domains the session manages, each with its count of mailboxes.
pub fn domains(cfg: &Config, s: &Session) -> Vec<Record> {
    let view = Directory::on_disk(cfg);
    let boxes = rows(cfg, None).unwrap_or_default();
    crate::admin::domain::domain_rows(&view, cfg)
        .into_iter()
        .filter(|d| may_domain(s, &d.domain))
        .map(|d| {
            let n = boxes
                .iter()
                .filter(|r| domain_of(&r.address).as_deref() == Some(d.domain.as_str()))
                .count();
            Record::new()
                .with("kind", "domain")
                .with("domain", d.domain)
                .with("mailboxes", n.to_string())
        })
        .collect()
}

/// Everything of domain `d` the session may see.
pub fn domain_show(cfg: &Config, s: &Session, d: &str) -> Result<Vec<Record>, Failure> {
    let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
    let view = Directory::on_disk(cfg);
    let owned = Mailboxes::load(cfg);
    let of_d = |a: &str| domain_of(a).as_deref() == Some(d.as_str());
    let mut out = Vec::new();
    let boxes: Vec<Row> = rows(cfg, Some(&d))?
        .into_iter()
        .filter(|r| s.role == Role::Admin || owned.may(s, &r.address))
        .collect();
    out.extend(boxes.iter().map(mailbox));
    for l in &view.vut {
        if !l.key.starts_with('@') && of_d(&l.key) {
            out.extend(alias(cfg, &view, &l.key));
        }
    }
    for b in &boxes {
        out.extend(forward(&view, &b.address));
    }
    // Rule files are named by login; only the mailboxes that have one are
    // read (a thousand mailboxes, a handful of rule files).
    let rule_files: std::collections::HashSet<String> = file_names(&crate::admin::filter::dir(cfg))
        .into_iter()
        .collect();
    for b in &boxes {
        let login = b.user.to_ascii_lowercase();
        if rule_files.contains(&login) {
            out.extend(filter_of(cfg, &b.address, &login));
        }
    }
    out.extend(catchall(&view, &d));
    let mut replies: Vec<String> = file_names(&crate::autoreply::rules_dir(cfg))
        .into_iter()
        .filter(|n| of_d(n))
        .collect();
    replies.sort();
    out.extend(replies.iter().filter_map(|a| autoreply(cfg, a)));
    for l in &view.vut {
        if !l.key.starts_with('@') && of_d(&l.key) {
            out.extend(list(cfg, &view, &l.key));
        }
    }
    Ok(out)
}

/// The names in `dir` (none when it cannot be read), without the
/// hidden ones (a change's staged files).
fn file_names(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// The queued messages from or to domain `d`, each with its last error.
pub fn queue(cfg: &Config, d: &str) -> Result<Vec<Record>, Failure> {
    let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
    let settings = crate::runner::Settings::from_config(cfg)?;
    let q = crate::queue::Queue::new(&cfg.queue_dir);
    let items = crate::admin::queue::list(&q, &settings).map_err(|e| {
        Failure::new(
            crate::exit::ExitCode::NoPerm,
            format!(
                "cannot read the queue {}: {}",
                cfg.queue_dir.display(),
                crate::exit::io_reason(&e)
            ),
        )
    })?;
    let now = crate::date::now();
    let of_d = |a: &str| domain_of(a).as_deref() == Some(d.as_str());
    Ok(items
        .into_iter()
        .filter(|i| of_d(&i.sender) || i.recipients.iter().any(|(a, _)| of_d(a)))
        .map(|i| {
            let mut r = Record::new()
                .with("kind", "queued")
                .with("id", i.id)
                .with("from", i.sender);
            for (a, _) in &i.recipients {
                r.push("to", a.clone());
            }
            r.with("age", (now - i.created).max(0).to_string())
                .with("size", i.size.to_string())
                .with("attempts", i.attempts.to_string())
                .with("error", i.last_error.unwrap_or_default())
        })
        .collect())
}

/// The session's own mailbox: usage, and its forward, autoreply and
/// filter when it has them.
/// A spam threshold as mailroom.conf writes it ("" when off).
fn score(s: Option<f64>) -> String {
    s.map_or(String::new(), |v| v.to_string())
}

pub fn me(cfg: &Config, s: &Session) -> Vec<Record> {
    let all = rows(cfg, domain_of(&s.name).as_deref()).unwrap_or_default();
    let row = all
        .iter()
        .find(|r| r.address.eq_ignore_ascii_case(&s.name))
        .or_else(|| all.iter().find(|r| r.user == s.login));
    let mut out = vec![
        Record::new()
            .with("kind", "me")
            .with("login", s.login.clone())
            .with("address", s.name.clone())
            .with("used", row.map_or(0, |r| r.size).to_string())
            .with("quota", row.map_or(0, |r| r.quota).to_string())
            // The box's spam rule, which runs before the user's own rules.
            .with("spam_folder", cfg.spam_folder.clone())
            .with("spam_folder_at", score(cfg.spam_folder_score))
            .with("spam_discard_over", score(cfg.spam_discard_score)),
    ];
    let view = Directory::on_disk(cfg);
    out.extend(forward(&view, &s.name));
    out.extend(autoreply(cfg, &s.name));
    out.extend(filter(cfg, &s.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_follows_the_content_not_the_usage() {
        let r = Record::new()
            .with("kind", "mailbox")
            .with("address", "a@x")
            .with("used", "10")
            .with("quota", "100");
        let mut busier = r.clone();
        busier.0[2].1 = "20".into();
        assert_eq!(stamp(&r), stamp(&busier));
        let mut bigger = r.clone();
        bigger.0[3].1 = "200".into();
        assert_ne!(stamp(&r), stamp(&bigger));
        assert_eq!(stamp(&r).len(), 16);
    }

    #[test]
    fn records_read_the_files_as_the_cli_wrote_them() {
        let (dir, cfg) = crate::admin::directory::test_site();
        let mut c = crate::change::Change::begin(&cfg).unwrap();
        crate::admin::alias::plan_forward(
            &mut c,
            &cfg,
            "info@shop.example",
            &["far@away.example".into()],
            true,
        )
        .unwrap();
        crate::admin::alias::plan_alias(
            &mut c,
            &cfg,
            "sales@shop.example",
            &["bob".into(), "info@shop.example".into()],
        )
        .unwrap();
        c.commit().unwrap();
        let view = Directory::on_disk(&cfg);
        let f = forward(&view, "info@shop.example").unwrap();
        assert_eq!(f.all("target").collect::<Vec<_>>(), ["far@away.example"]);
        assert_eq!(f.str("keep"), "yes");
        let a = alias(&cfg, &view, "sales@shop.example").unwrap();
        assert_eq!(
            a.all("target").collect::<Vec<_>>(),
            ["bob", "info@shop.example"]
        );
        // A mailbox is no alias.
        assert!(alias(&cfg, &view, "info@shop.example").is_none());
        let msg = describe("forward", "info@shop.example", Some(&f));
        assert!(
            msg.contains("now target far@away.example, keep yes"),
            "{msg}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
