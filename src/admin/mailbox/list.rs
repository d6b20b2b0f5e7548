//! `mailroom mailbox list`: the mailboxes with their users, quotas,
//! usage against the quota (as delivery measures it: [`crate::quota::used`])
//! and files.

use std::collections::HashSet;
use std::io::{self, Write};

use super::name::valid_user;
use super::quota::human;
use super::tables::Tables;
use super::{FIRST_UID, LAST_UID};
use crate::accounts::{MailboxPath, parse_virtual};
use crate::config::{Config, parse_size};
use crate::exit::{ExitCode, Failure};
use crate::quota::{percent, usage_text};
use crate::table::makemap;

/// One row of `mailbox list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub address: String,
    /// System user or virtual login.
    pub user: String,
    pub is_virtual: bool,
    /// Bytes (0 = unlimited).
    pub quota: u64,
    /// Where the quota comes from: `quotas`, `passwd`, `default`.
    pub quota_source: &'static str,
    pub mailbox: String,
    /// Bytes held, as the quota counts them.
    pub size: u64,
}

/// The mailboxes (see the `list` help).
pub fn rows(cfg: &Config, domain: Option<&str>) -> Result<Vec<Row>, Failure> {
    let t = Tables::load_readable(cfg);
    let accounts = &t.resolver.accounts;
    let quota_of = |login: &str, field: &str| -> (u64, &'static str) {
        if let Some(q) = parse_size(field).filter(|_| !field.trim().is_empty()) {
            return (q, "passwd");
        }
        match makemap::get(&t.quotas.text, login).and_then(|(v, _)| parse_size(&v)) {
            Some(q) => (q, "quotas"),
            None => (cfg.mailbox_size_limit, "default"),
        }
    };
    let place = |mb: &MailboxPath| match mb {
        MailboxPath::Mbox(p) => p.display().to_string(),
        MailboxPath::Maildir(p) => format!("{}/", p.display()),
    };
    let mut out = Vec::new();
    let mut seen_users = HashSet::new();
    for l in makemap::entries(&t.vt.text) {
        let key = l.key;
        let v = l.value.as_str();
        if key.starts_with('@') || !valid_user(v) {
            continue;
        }
        let Some(a) = accounts.system(v) else {
            continue;
        };
        seen_users.insert(v.to_string());
        let (quota, quota_source) = quota_of(v, "");
        out.push(Row {
            address: key,
            user: v.to_string(),
            is_virtual: false,
            quota,
            quota_source,
            size: crate::quota::used(&a.mailbox).unwrap_or(0),
            mailbox: place(&a.mailbox),
        });
    }
    for e in parse_virtual(&t.vpasswd.text) {
        let Some(a) = accounts.virtual_account(&e.login) else {
            continue;
        };
        let (quota, quota_source) = quota_of(&e.login, &e.quota);
        out.push(Row {
            address: e.login.clone(),
            user: e.login.clone(),
            is_virtual: true,
            quota,
            quota_source,
            size: crate::quota::used(&a.mailbox).unwrap_or(0),
            mailbox: place(&a.mailbox),
        });
    }
    // The passwd file's users, each name once (its entry that counts), in
    // file order.
    let file_users = accounts.users().file().map(|f| {
        f.entries()
            .iter()
            .filter(|e| {
                f.get(&e.user.name)
                    .is_some_and(|first| first.line == e.line)
            })
            .map(|e| &e.user)
            .collect::<Vec<_>>()
    });
    let users = file_users.unwrap_or_default().into_iter().filter(|u| {
        (FIRST_UID..=LAST_UID).contains(&u.uid)
            && !seen_users.contains(&u.name)
            && u.name != cfg.virtual_user
    });
    for u in users {
        let Some(a) = accounts.system(&u.name) else {
            continue;
        };
        let (quota, quota_source) = quota_of(&u.name, "");
        out.push(Row {
            address: u.name.clone(),
            user: u.name.clone(),
            is_virtual: false,
            quota,
            quota_source,
            size: crate::quota::used(&a.mailbox).unwrap_or(0),
            mailbox: place(&a.mailbox),
        });
    }
    if let Some(d) = domain {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        out.retain(|r| r.address.rsplit_once('@').is_some_and(|(_, rd)| rd == d));
    }
    let sort_key = |r: &Row| -> (String, String) {
        match r.address.rsplit_once('@') {
            Some((l, d)) => (d.to_string(), l.to_string()),
            None => (String::new(), r.address.clone()),
        }
    };
    out.sort_by_key(sort_key);
    Ok(out)
}

pub(super) fn list(cfg: &Config, domain: Option<&str>, json: bool) -> Result<(), Failure> {
    crate::change::recover_if_idle(cfg);
    let rows = rows(cfg, domain)?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let r = if json {
        print_json(&rows, &mut out)
    } else {
        print_table(&rows, &mut out)
    };
    r.map_err(|e| Failure::new(ExitCode::IoErr, format!("cannot write: {e}")))
}

fn quota_text(r: &Row) -> String {
    let q = if r.quota == 0 {
        "unlimited".to_string()
    } else {
        human(r.quota)
    };
    if r.quota_source == "default" {
        format!("{q} (default)")
    } else {
        q
    }
}

pub fn print_table(rows: &[Row], out: &mut dyn Write) -> io::Result<()> {
    if rows.is_empty() {
        return writeln!(out, "no mailboxes (add one: mailroom mailbox add ADDRESS)");
    }
    let w_addr = rows
        .iter()
        .map(|r| r.address.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let w_user = rows
        .iter()
        .map(|r| r.user.len() + if r.is_virtual { 10 } else { 0 })
        .max()
        .unwrap_or(0)
        .max(4);
    let w_quota = rows
        .iter()
        .map(|r| quota_text(r).len())
        .max()
        .unwrap_or(0)
        .max(5);
    let w_used = rows
        .iter()
        .map(|r| usage_text(r.size, r.quota).len())
        .max()
        .unwrap_or(0)
        .max(4);
    writeln!(
        out,
        "{:w_addr$}  {:w_user$}  {:w_quota$}  {:>w_used$}  MAILBOX",
        "ADDRESS", "USER", "QUOTA", "USED"
    )?;
    for r in rows {
        let user = if r.is_virtual {
            format!("{} (virtual)", r.user)
        } else {
            r.user.clone()
        };
        writeln!(
            out,
            "{:w_addr$}  {:w_user$}  {:w_quota$}  {:>w_used$}  {}",
            r.address,
            user,
            quota_text(r),
            usage_text(r.size, r.quota),
            r.mailbox
        )?;
    }
    writeln!(
        out,
        "{} mailbox{}",
        rows.len(),
        if rows.len() == 1 { "" } else { "es" }
    )
}

pub fn print_json(rows: &[Row], out: &mut dyn Write) -> io::Result<()> {
    use crate::admin::queue::json_str;
    writeln!(out, "[")?;
    for (i, r) in rows.iter().enumerate() {
        writeln!(
            out,
            "  {{\"address\": {}, \"user\": {}, \"virtual\": {}, \"quota\": {}, \"quota_source\": {}, \"mailbox\": {}, \"size\": {}, \"percent\": {}}}{}",
            json_str(&r.address),
            json_str(&r.user),
            r.is_virtual,
            r.quota,
            json_str(r.quota_source),
            json_str(&r.mailbox),
            r.size,
            match r.quota {
                0 => "null".to_string(),
                q => percent(r.size, q).to_string(),
            },
            if i + 1 < rows.len() { "," } else { "" }
        )?;
    }
    writeln!(out, "]")
}
