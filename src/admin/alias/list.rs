//! `mailroom alias list`: every alias, forward and catch-all, with the
//! file and line of each.

use std::io::Write;
use std::path::PathBuf;

use crate::admin::directory::{Directory, is_refusal};
use crate::admin::names::{is_derived, parse_domain};
use crate::config::Config;

/// One row of `mailroom alias list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `alias`, `forward` or `catchall`.
    pub kind: &'static str,
    pub address: String,
    pub targets: Vec<String>,
    /// The aliases entry holding the targets, when not the row's own line.
    pub via: Option<String>,
    pub path: PathBuf,
    pub line: usize,
}

/// Every alias, forward and catch-all (mailboxes are not listed: see
/// `mailroom mailbox list`).
pub fn rows(view: &Directory) -> Vec<Row> {
    let mut out = Vec::new();
    let mut shown_via: Vec<String> = Vec::new();
    let split = |v: &str| -> Vec<String> {
        crate::aliases::split_list(v)
            .into_iter()
            .map(|s| s.trim().to_string())
            .collect()
    };
    for l in &view.vut {
        let key = l.key.clone();
        let value = l.value.as_str();
        let lv = value.to_ascii_lowercase();
        let is_catchall = key.starts_with('@');
        if is_catchall && is_refusal(value) {
            continue; // no catch-all: unknown addresses are refused
        }
        if !is_catchall && view.user(&lv).is_some() && is_derived(&key, &lv) {
            continue; // a mailbox
        }
        let (targets, via) = match view.alias_get(&lv) {
            Some(e) if !value.contains('@') && view.user(&lv).is_none() => {
                shown_via.push(e.name.clone());
                (split(&e.value), Some(e.name.clone()))
            }
            _ => (vec![value.to_string()], None),
        };
        out.push(Row {
            kind: if is_catchall { "catchall" } else { "alias" },
            address: key,
            targets,
            via,
            path: view.vut_path.clone(),
            line: l.line,
        });
    }
    for e in &view.aliases {
        if view.alias_get(&e.name).map(|last| last.line) != Some(e.line) {
            continue; // an earlier duplicate: the last definition wins
        }
        if shown_via.contains(&e.name) {
            continue;
        }
        let kind = if view.user(&e.name).is_some() {
            "forward"
        } else {
            "alias"
        };
        out.push(Row {
            kind,
            address: e.name.clone(),
            targets: split(&e.value),
            via: None,
            path: view.aliases_path.clone(),
            line: e.line,
        });
    }
    out
}

pub(super) fn list_command(cfg: &Config, domain: Option<&str>, json: bool) -> i32 {
    let view = Directory::on_disk(cfg);
    let domain = match domain.map(parse_domain).transpose() {
        Ok(d) => d,
        Err(f) => {
            eprintln!("mailroom: {f}");
            return f.code.code();
        }
    };
    let rows: Vec<Row> = rows(&view)
        .into_iter()
        .filter(|r| match &domain {
            Some(d) => r.address.ends_with(&format!("@{d}")),
            None => true,
        })
        .collect();
    crate::admin::print_listing(&rows, json, print_table, print_json)
}

fn print_table(rows: &[Row], out: &mut dyn Write) -> std::io::Result<()> {
    if rows.is_empty() {
        return writeln!(out, "no aliases, forwards or catch-alls");
    }
    let w = rows
        .iter()
        .map(|r| r.address.len())
        .max()
        .unwrap_or(0)
        .max(7);
    writeln!(out, "{:<8} {:<w$}  TARGETS  (SOURCE)", "KIND", "ADDRESS")?;
    for r in rows {
        let via = r
            .via
            .as_deref()
            .map(|v| format!(" via {v}"))
            .unwrap_or_default();
        writeln!(
            out,
            "{:<8} {:<w$}  {}  ({}:{}{via})",
            r.kind,
            r.address,
            r.targets.join(", "),
            r.path.display(),
            r.line
        )?;
    }
    Ok(())
}

fn print_json(rows: &[Row], out: &mut dyn Write) -> std::io::Result<()> {
    use crate::admin::queue::json_str;
    writeln!(out, "[")?;
    for (i, r) in rows.iter().enumerate() {
        let targets: Vec<String> = r.targets.iter().map(|t| json_str(t)).collect();
        writeln!(
            out,
            "  {{\"kind\": {}, \"address\": {}, \"targets\": [{}], \"via\": {}, \"file\": {}, \"line\": {}}}{}",
            json_str(r.kind),
            json_str(&r.address),
            targets.join(", "),
            r.via.as_deref().map_or("null".to_string(), json_str),
            json_str(&r.path.display().to_string()),
            r.line,
            if i + 1 < rows.len() { "," } else { "" }
        )?;
    }
    writeln!(out, "]")
}
