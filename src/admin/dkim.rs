//! `mailroom dkim`: make, show, list and remove the signing keys of
//! `/etc/mail/dkim/DOMAIN/SELECTOR.key` (see [`crate::dkim`]).  New keys
//! are written through [`Change`] like every admin edit (mode 0600).

use std::io::Write;
use std::path::Path;

use clap::{Subcommand, ValueEnum};

use super::apply;
use crate::change::Change;
use crate::config::Config;
use crate::dkim::{self, Algorithm};
use crate::exit::{ExitCode, Failure};

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Rsa,
    Ed25519,
    Both,
}

#[derive(Subcommand, Debug)]
pub enum DkimAction {
    /// Make signing keys for DOMAIN and print the DNS records to publish.
    Generate {
        domain: String,
        /// Selector (the DNS name's first part); with both algorithms the
        /// keys are SELECTOR-rsa and SELECTOR-ed25519.  Default: YYYYMM.
        #[arg(long)]
        selector: Option<String>,
        #[arg(long, value_enum, default_value = "both")]
        algorithm: Which,
        /// RSA key size (2048 to 4096).
        #[arg(long, default_value_t = 2048)]
        bits: usize,
        /// Replace DOMAIN's key of the same algorithm by one with a new
        /// selector (mail is signed with it at once: publish its record
        /// right away; keep the old record a few days for mail in transit).
        #[arg(long)]
        replace: bool,
    },
    /// Print DOMAIN's DNS records again.
    Show { domain: String },
    /// Every signing key.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop signing DOMAIN's mail: remove its keys (or the one SELECTOR).
    Remove {
        domain: String,
        #[arg(long)]
        selector: Option<String>,
    },
}

pub const DKIM_HELP: &str = "\
Mail leaving by SMTP is signed for the domain of its From: address when
that domain has keys, else for the envelope sender's domain (no
inheritance by subdomains).  Signed: From (over-signed), Reply-To,
Subject, Date, To, Cc, Message-ID, In-Reply-To, References, MIME and
List-* fields; relaxed/relaxed; the whole body.  A domain with an RSA and
an Ed25519 key signs with both.  A key that cannot be read keeps that
domain's mail queued (see 'mailroom check').

Examples:
  mailroom dkim generate shop.example
  mailroom dkim generate shop.example --algorithm rsa --selector mail --bits 4096
  mailroom dkim show shop.example
  mailroom dkim remove shop.example --selector 202611-rsa";

fn usage(text: String) -> Failure {
    Failure::new(ExitCode::Usage, text)
}

fn domain_arg(d: &str) -> Result<String, Failure> {
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    if dkim::valid_domain(&d) {
        Ok(d)
    } else {
        Err(usage(format!("{d:?} is not a domain name")))
    }
}

fn io_fail(what: &str, path: &Path, e: &std::io::Error) -> Failure {
    let code = if e.kind() == std::io::ErrorKind::PermissionDenied {
        ExitCode::NoPerm
    } else {
        ExitCode::CantCreat
    };
    Failure::new(
        code,
        format!(
            "cannot {what} {}: {}",
            path.display(),
            crate::exit::io_reason(e)
        ),
    )
}

/// `/etc/mail/dkim/DOMAIN`, made (and its entry made durable) if new; a
/// stray staged key of an interrupted change is removed.
fn domain_dir(cfg: &Config, domain: &str) -> Result<std::path::PathBuf, Failure> {
    use std::os::unix::fs::DirBuilderExt;
    let top = dkim::keys_dir(cfg);
    let dir = top.join(domain);
    for (d, parent) in [(&top, cfg.paths.etc_mail("")), (&dir, top.clone())] {
        if !d.exists() {
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(d)
                .map_err(|e| io_fail("create", d, &e))?;
            std::fs::File::open(&parent)
                .and_then(|f| f.sync_all())
                .map_err(|e| io_fail("sync", &parent, &e))?;
        }
    }
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with('.') && n.ends_with(".mailroom-new") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(dir)
}

/// The keys of `domain` with what is wrong with each.
fn domain_keys(cfg: &Config, domain: &str) -> Vec<(String, Result<dkim::Key, String>)> {
    match dkim::key_files(cfg, domain) {
        Ok(files) => files
            .into_iter()
            .map(|(s, p)| {
                let k = dkim::load_key(&s, &p);
                (s, k)
            })
            .collect(),
        Err(e) => vec![(
            "*".into(),
            Err(format!(
                "{}: {}",
                dkim::keys_dir(cfg).join(domain).display(),
                crate::exit::io_reason(&e)
            )),
        )],
    }
}

#[allow(clippy::too_many_arguments)]
fn generate(
    change: &mut Change,
    cfg: &Config,
    domain: &str,
    selector: Option<&str>,
    which: Which,
    bits: usize,
    replace: bool,
) -> Result<Vec<String>, Failure> {
    let base = match selector {
        Some(s) => s.to_string(),
        None => {
            let t = crate::date::utc(crate::date::now());
            format!("{:04}{:02}", t.year, t.month + 1)
        }
    };
    let wanted: Vec<(Algorithm, String)> = match which {
        Which::Rsa => vec![(Algorithm::Rsa, base)],
        Which::Ed25519 => vec![(Algorithm::Ed25519, base)],
        Which::Both => vec![
            (Algorithm::Rsa, format!("{base}-rsa")),
            (Algorithm::Ed25519, format!("{base}-ed25519")),
        ],
    };
    for (_, s) in &wanted {
        if !dkim::valid_selector(s) {
            return Err(usage(format!("{s:?} is not a selector (DNS labels)")));
        }
    }
    let dir = domain_dir(cfg, domain)?;
    let existing = domain_keys(cfg, domain);
    for (alg, sel) in &wanted {
        for (old_sel, old) in &existing {
            let same_alg = matches!(old, Ok(k) if k.algorithm() == *alg);
            if old_sel == sel || same_alg {
                if replace && old_sel != sel {
                    change.remove(&dir.join(format!("{old_sel}.key")));
                } else {
                    // A selector names one key for good: resolvers cache
                    // its record, so a new key takes a new selector.
                    let (what, hint) = if old_sel == sel {
                        (
                            format!("a key with selector {sel:?}"),
                            "a new key needs a new --selector (DNS caches the old record)",
                        )
                    } else {
                        (
                            format!("an {} key ({old_sel:?})", alg.key_type()),
                            "use --replace, or 'mailroom dkim remove' first",
                        )
                    };
                    return Err(Failure::new(
                        ExitCode::CantCreat,
                        format!("{domain} already has {what}"),
                    )
                    .hint(hint));
                }
            }
        }
    }
    let mut out = Vec::new();
    for (alg, sel) in &wanted {
        let pem = dkim::generate(*alg, bits).map_err(usage)?;
        let key = dkim::Key::from_pem(sel, &pem)
            .map_err(|e| Failure::new(ExitCode::Software, format!("new key unusable: {e}")))?;
        change.set(&dir.join(format!("{sel}.key")), pem);
        out.push(dkim::zone_entry(sel, domain, &key.dns_record()));
    }
    Ok(out)
}

fn show(cfg: &Config, domain: &str) -> i32 {
    let keys = domain_keys(cfg, domain);
    if keys.is_empty() {
        eprintln!("mailroom: {domain} has no DKIM keys; see 'mailroom dkim generate'");
        return ExitCode::NoInput.code();
    }
    let mut code = 0;
    for (sel, k) in keys {
        match k {
            Ok(k) => println!("{}", dkim::zone_entry(&sel, domain, &k.dns_record())),
            Err(e) => {
                eprintln!("mailroom: {e}");
                code = ExitCode::Config.code();
            }
        }
    }
    code
}

struct Row {
    domain: String,
    selector: String,
    key: Result<(Algorithm, usize), String>,
}

fn rows(cfg: &Config) -> Vec<Row> {
    let mut domains: Vec<String> = std::fs::read_dir(dkim::keys_dir(cfg))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    domains.sort();
    let mut out = Vec::new();
    for d in domains {
        for (selector, k) in domain_keys(cfg, &d) {
            out.push(Row {
                domain: d.clone(),
                selector,
                key: k.map(|k| (k.algorithm(), k.bits())),
            });
        }
    }
    out
}

fn print_table(rows: &[Row], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<32} {:<20} {:<8} BITS",
        "DOMAIN", "SELECTOR", "TYPE"
    )?;
    for r in rows {
        match &r.key {
            Ok((a, b)) => writeln!(
                out,
                "{:<32} {:<20} {:<8} {b}",
                r.domain,
                r.selector,
                a.key_type()
            )?,
            Err(e) => writeln!(out, "{:<32} {:<20} error: {e}", r.domain, r.selector)?,
        }
    }
    Ok(())
}

fn print_json(rows: &[Row], out: &mut dyn Write) -> std::io::Result<()> {
    use super::queue::json_str;
    let items: Vec<String> = rows
        .iter()
        .map(|r| match &r.key {
            Ok((a, b)) => format!(
                "{{\"domain\":{},\"selector\":{},\"type\":{},\"bits\":{b}}}",
                json_str(&r.domain),
                json_str(&r.selector),
                json_str(a.key_type())
            ),
            Err(e) => format!(
                "{{\"domain\":{},\"selector\":{},\"error\":{}}}",
                json_str(&r.domain),
                json_str(&r.selector),
                json_str(e)
            ),
        })
        .collect();
    writeln!(out, "[{}]", items.join(","))
}

fn remove(
    change: &mut Change,
    cfg: &Config,
    domain: &str,
    selector: Option<&str>,
) -> Result<Vec<String>, Failure> {
    let files =
        dkim::key_files(cfg, domain).map_err(|e| io_fail("read", &dkim::keys_dir(cfg), &e))?;
    let chosen: Vec<_> = files
        .iter()
        .filter(|(s, _)| selector.is_none_or(|want| want == s))
        .collect();
    if chosen.is_empty() {
        return Err(usage(match selector {
            Some(s) => format!("{domain} has no DKIM key {s:?}"),
            None => format!("{domain} has no DKIM keys"),
        })
        .hint("see 'mailroom dkim list'"));
    }
    let mut out = Vec::new();
    for (s, p) in chosen {
        change.remove(p);
        out.push(format!(
            "{domain}: key {s} removed; remove {s}._domainkey.{domain} from DNS after a few days"
        ));
    }
    Ok(out)
}

pub fn run(cfg: &Config, action: DkimAction) -> i32 {
    let domain = match &action {
        DkimAction::Generate { domain, .. }
        | DkimAction::Show { domain }
        | DkimAction::Remove { domain, .. } => match domain_arg(domain) {
            Ok(d) => d,
            Err(f) => {
                eprintln!("mailroom: {f}");
                return f.code.code();
            }
        },
        DkimAction::List { .. } => String::new(),
    };
    match action {
        DkimAction::Generate {
            selector,
            algorithm,
            bits,
            replace,
            ..
        } => {
            if algorithm != Which::Ed25519 && !dkim::RSA_BITS.contains(&bits) {
                eprintln!(
                    "mailroom: --bits {bits}: RSA keys have {} to {} bits",
                    dkim::RSA_BITS.start(),
                    dkim::RSA_BITS.end()
                );
                return ExitCode::Usage.code();
            }
            let code = apply(cfg, |c| {
                generate(
                    c,
                    cfg,
                    &domain,
                    selector.as_deref(),
                    algorithm,
                    bits,
                    replace,
                )
            });
            if code == 0 {
                eprintln!(
                    "mailroom: mail from {domain} is signed from now on: publish the record(s) above in its DNS now"
                );
            }
            code
        }
        DkimAction::Show { .. } => show(cfg, &domain),
        DkimAction::List { json } => {
            super::print_listing(&rows(cfg), json, print_table, print_json)
        }
        DkimAction::Remove { selector, .. } => {
            let code = apply(cfg, |c| remove(c, cfg, &domain, selector.as_deref()));
            // The empty directory goes too (best effort: it signs nothing).
            let _ = std::fs::remove_dir(dkim::keys_dir(cfg).join(&domain));
            code
        }
    }
}
