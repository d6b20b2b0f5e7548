//! `mailroom domain add|remove|list`: the domains this host takes mail
//! for.
//!
//! * A **local** domain (class `{w}`, `/etc/mail/local-host-names`): every
//!   system user and every alias has an address there (`bob@D` is `bob`),
//!   and the virtusertable may say otherwise for single addresses.
//! * A **virtual** domain (class `{VirtHost}`, `/etc/mail/virtuser-domains`):
//!   only the addresses the virtusertable (or a virtual account) names
//!   exist; `info@a.example` and `info@b.example` can be different people.
//!   Its virtusertable line `@D error:5.1.1:550 User unknown` (until a
//!   catch-all replaces it) refuses the others: without it sendmail 8, and
//!   mailroom alike, take them as remote and relay them to D's MX.

use std::io::Write;

use clap::Subcommand;

use super::apply;
use super::directory::{Directory, DomainKind, REFUSAL, Source, is_refusal};
use super::names::parse_domain;
use crate::change::Change;
use crate::config::Config;
use crate::exit::{ExitCode, Failure};
use crate::table::{class, makemap};

#[derive(Subcommand, Debug)]
pub enum DomainAction {
    /// Take mail for a domain.
    #[command(after_help = "\
Examples:
  mailroom domain add example.com
      local-host-names: every user and alias gets an address there
  mailroom domain add shop.example --virtual
      virtuser-domains: only the addresses you create exist
      virtusertable: @shop.example  error:5.1.1:550 User unknown

Then create addresses: 'mailroom mailbox add info@shop.example',
'mailroom alias add sales@shop.example bob'.  The domain's MX record must
point at this host for mail to arrive.")]
    Add {
        domain: String,
        /// A virtual domain (virtuser-domains) instead of a local one.
        #[arg(long = "virtual")]
        virtual_domain: bool,
    },
    /// Stop taking mail for a domain.
    #[command(after_help = "\
Examples:
  mailroom domain remove old.example
  mailroom domain remove old.example --force

Refused while addresses of the domain exist (they are named); remove them
first, or use --force to remove the domain anyway (its entries are left in
place, unused, and listed).")]
    Remove {
        domain: String,
        /// Remove it even though addresses of it exist.
        #[arg(long)]
        force: bool,
    },
    /// List the domains, with the file and line of each.
    #[command(after_help = "Examples:\n  mailroom domain list\n  mailroom domain list --json")]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Run `mailroom domain ...`.
pub fn run(cfg: &Config, action: DomainAction) -> i32 {
    match action {
        DomainAction::Add {
            domain,
            virtual_domain,
        } => apply(cfg, |c| domain_add(c, cfg, &domain, virtual_domain)),
        DomainAction::Remove { domain, force } => {
            apply(cfg, |c| domain_remove(c, cfg, &domain, force))
        }
        DomainAction::List { json } => list_command(cfg, json),
    }
}

fn kind_word(k: DomainKind) -> &'static str {
    match k {
        DomainKind::Local => "local",
        DomainKind::Virtual => "virtual",
    }
}

/// Stage `domain add DOMAIN [--virtual]`.  Adding a domain that is already
/// there the same way does nothing (an import may say it again).
pub fn plan_domain_add(
    change: &mut Change,
    cfg: &Config,
    domain: &str,
    virtual_domain: bool,
) -> Result<(), Failure> {
    domain_add(change, cfg, domain, virtual_domain).map(|_| ())
}

/// `domain add` staged, with what the command prints (the `mailroom`
/// command and the web panel).
pub fn domain_add(
    change: &mut Change,
    cfg: &Config,
    domain: &str,
    virtual_domain: bool,
) -> Result<Vec<String>, Failure> {
    let d = parse_domain(domain)?;
    let view = Directory::of_change(change, cfg)?;
    let want = if virtual_domain {
        DomainKind::Virtual
    } else {
        DomainKind::Local
    };
    match view.domain(&d) {
        Some((k, Some(src))) if k == want => {
            let mut notes = Vec::new();
            // One added before mailroom wrote the refusal line gets it now.
            if virtual_domain && let Some(n) = refuse_unknown(change, &view, &d)? {
                notes.push(n);
            } else {
                notes.push(format!(
                    "{d} is already a {} domain ({}:{}); nothing to do",
                    kind_word(k),
                    src.path.display(),
                    src.line.unwrap_or(0)
                ));
            }
            return Ok(notes);
        }
        Some((k, Some(src))) => {
            return Err(Failure::new(
                ExitCode::DataErr,
                format!(
                    "{d} is already a {} domain: {}:{}",
                    kind_word(k),
                    src.path.display(),
                    src.line.unwrap_or(0)
                ),
            )
            .hint(format!(
                "a domain is either local or virtual; to change it run 'mailroom domain remove {d} --force' first"
            )));
        }
        Some((_, None)) if virtual_domain => {
            return Err(Failure::new(
                ExitCode::DataErr,
                format!("{d} is this host's own name, always a local domain"),
            )
            .hint("add it without --virtual, or use another name"));
        }
        _ => {}
    }
    let (path, kind) = if virtual_domain {
        (&view.vd_path, "virtual")
    } else {
        (&view.lhn_path, "local")
    };
    let text = change.text(path)?;
    change.set(path, class::add_word(&text, &d));
    let what = if virtual_domain {
        format!(
            "create its addresses with 'mailroom mailbox add USER@{d}' or 'mailroom alias add ADDRESS@{d} TARGET'"
        )
    } else {
        format!("every user and alias now has an address @{d}")
    };
    let mut notes = vec![format!(
        "{d}: added as a {kind} domain ({}); {what}",
        path.display()
    )];
    if virtual_domain {
        notes.extend(refuse_unknown(change, &view, &d)?);
    }
    Ok(notes)
}

/// Stage the virtusertable line `@d error:5.1.1:550 User unknown` unless
/// `@d` has an entry already (a catch-all, or such a line).  Without it
/// sendmail 8 and mailroom take an unknown address of the virtual domain
/// `d` as remote and relay it to d's MX.  The note, when it was added.
fn refuse_unknown(
    change: &mut Change,
    view: &Directory,
    d: &str,
) -> Result<Option<String>, Failure> {
    let key = format!("@{d}");
    if view.vut_get(&key).is_some() {
        return Ok(None);
    }
    let text = change.text(&view.vut_path)?;
    change.set(&view.vut_path, makemap::set_entry(&text, &key, REFUSAL));
    Ok(Some(format!(
        "{d}: unknown addresses are refused ({}: {key} {REFUSAL})",
        view.vut_path.display()
    )))
}

/// Is this virtusertable entry the line refusing unknown addresses of `d`
/// (`@d error:...`)?  It is no address of `d`.
fn is_refusal_of(d: &str, key: &str, value: &str) -> bool {
    key.strip_prefix('@')
        .is_some_and(|kd| kd.eq_ignore_ascii_case(d))
        && is_refusal(value)
}

/// The addresses of `d` that exist: virtusertable keys (the catch-all
/// included, not the line refusing unknown addresses) and virtual accounts.
pub fn addresses_of(view: &Directory, d: &str) -> Vec<Source> {
    let suffix = format!("@{d}");
    let mut out: Vec<Source> = view
        .vut
        .iter()
        .filter(|l| l.key.ends_with(&suffix) && !is_refusal_of(d, &l.key, &l.value))
        .map(|l| Source {
            path: view.vut_path.clone(),
            line: Some(l.line),
            text: format!("{} {}", l.written, l.value),
        })
        .collect();
    out.extend(
        view.virtuals
            .iter()
            .filter(|e| e.login.ends_with(&suffix))
            .map(|e| Source {
                path: view.vpasswd_path.clone(),
                line: Some(e.line),
                text: format!("virtual mailbox account {}", e.login),
            }),
    );
    out
}

/// Stage `domain remove DOMAIN [--force]`.
pub fn plan_domain_remove(
    change: &mut Change,
    cfg: &Config,
    domain: &str,
    force: bool,
) -> Result<(), Failure> {
    domain_remove(change, cfg, domain, force).map(|_| ())
}

/// `domain remove` staged, with what the command prints.
pub fn domain_remove(
    change: &mut Change,
    cfg: &Config,
    domain: &str,
    force: bool,
) -> Result<Vec<String>, Failure> {
    let d = parse_domain(domain)?;
    let view = Directory::of_change(change, cfg)?;
    let kind = match view.domain(&d) {
        None => {
            return Err(Failure::new(
                ExitCode::NoUser,
                format!("{d} is not a domain of this host"),
            )
            .hint("see 'mailroom domain list'"));
        }
        Some((_, None)) => {
            return Err(Failure::new(
                ExitCode::DataErr,
                format!("{d} is this host's own name (hostname in mailroom.conf), always local"),
            ));
        }
        Some((k, Some(_))) => k,
    };
    let addrs = addresses_of(&view, &d);
    if !addrs.is_empty() && !force {
        for a in &addrs {
            eprintln!("  {a}");
        }
        return Err(Failure::new(
            ExitCode::DataErr,
            format!(
                "{d} still has {} address{} (listed above)",
                addrs.len(),
                if addrs.len() == 1 { "" } else { "es" }
            ),
        )
        .hint(
            "remove them first ('mailroom alias remove', 'mailroom mailbox remove', 'mailroom catchall clear'), or use --force to remove the domain and leave them unused",
        ));
    }
    // Remove the word from both files: a hand-made layout may have it in
    // both.
    let mut notes = Vec::new();
    for path in [&view.lhn_path, &view.vd_path] {
        let text = change.text(path)?;
        if let Some(new) = class::remove_word(&text, &d) {
            change.set(path, new);
            notes.push(format!(
                "{d}: removed ({} domain, {})",
                kind_word(kind),
                path.display()
            ));
        }
    }
    // The line refusing its unknown addresses goes with it.
    let key = format!("@{d}");
    if let Some((v, l)) = view.vut_get(&key).filter(|(v, _)| is_refusal(v)) {
        let text = change.text(&view.vut_path)?;
        if let Some(new) = makemap::remove_entry(&text, &key) {
            change.set(&view.vut_path, new);
            notes.push(format!(
                "{d}: removed {}:{l}: {key} {}",
                view.vut_path.display(),
                v.trim()
            ));
        }
    }
    if !addrs.is_empty() {
        notes.push(format!("left in place, unused until {d} is added again:"));
        notes.extend(addrs.iter().map(|a| format!("  {a}")));
    }
    Ok(notes)
}

/// One row of `mailroom domain list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRow {
    pub domain: String,
    pub kind: &'static str,
    /// `None` for the host's own name.
    pub source: Option<(std::path::PathBuf, usize)>,
    /// How many addresses of it the virtusertable and the virtual accounts
    /// name.
    pub addresses: usize,
    pub catch_all: Option<String>,
}

/// The domains: the host's own name, then local-host-names, then
/// virtuser-domains, in file order.
pub fn domain_rows(view: &Directory, cfg: &Config) -> Vec<DomainRow> {
    let mut out: Vec<DomainRow> = Vec::new();
    let row =
        |d: &str, kind: &'static str, source: Option<(std::path::PathBuf, usize)>| DomainRow {
            domain: d.to_string(),
            kind,
            source,
            addresses: addresses_of(view, d).len(),
            catch_all: view.catch_all(d).map(|(v, _)| v.trim().to_string()),
        };
    let host = cfg.hostname.to_ascii_lowercase();
    if !view.local_words.iter().any(|(w, _)| *w == host) {
        out.push(row(&host, "local", None));
    }
    for (w, l) in &view.local_words {
        if !out.iter().any(|r| r.domain == *w) {
            out.push(row(w, "local", Some((view.lhn_path.clone(), *l))));
        }
    }
    for (w, l) in &view.virtual_words {
        if !out.iter().any(|r| r.domain == *w) {
            out.push(row(w, "virtual", Some((view.vd_path.clone(), *l))));
        }
    }
    out
}

fn list_command(cfg: &Config, json: bool) -> i32 {
    let view = Directory::on_disk(cfg);
    let rows = domain_rows(&view, cfg);
    super::print_listing(&rows, json, print_table, print_json)
}

fn source_text(r: &DomainRow) -> String {
    match &r.source {
        Some((p, l)) => format!("{}:{l}", p.display()),
        None => "(the host's own name)".to_string(),
    }
}

fn print_table(rows: &[DomainRow], out: &mut dyn Write) -> std::io::Result<()> {
    let w = rows
        .iter()
        .map(|r| r.domain.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let sw = rows
        .iter()
        .map(|r| source_text(r).len())
        .max()
        .unwrap_or(0)
        .max(6);
    writeln!(
        out,
        "{:<w$}  {:<7}  {:<sw$}  {:>9}  CATCH-ALL",
        "DOMAIN", "KIND", "SOURCE", "ADDRESSES"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<w$}  {:<7}  {:<sw$}  {:>9}  {}",
            r.domain,
            r.kind,
            source_text(r),
            r.addresses,
            r.catch_all.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

fn print_json(rows: &[DomainRow], out: &mut dyn Write) -> std::io::Result<()> {
    use super::queue::json_str;
    writeln!(out, "[")?;
    for (i, r) in rows.iter().enumerate() {
        let (file, line) = match &r.source {
            Some((p, l)) => (json_str(&p.display().to_string()), l.to_string()),
            None => ("null".to_string(), "null".to_string()),
        };
        writeln!(
            out,
            "  {{\"domain\": {}, \"kind\": {}, \"file\": {file}, \"line\": {line}, \"addresses\": {}, \"catch_all\": {}}}{}",
            json_str(&r.domain),
            json_str(r.kind),
            r.addresses,
            r.catch_all.as_deref().map_or("null".to_string(), json_str),
            if i + 1 < rows.len() { "," } else { "" }
        )?;
    }
    writeln!(out, "]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(name: &str) -> (std::path::PathBuf, Config) {
        let dir = std::env::temp_dir().join(format!("mr-domain-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc/mail")).unwrap();
        std::fs::write(dir.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::write(
            dir.join("etc/mail/mailroom.conf"),
            "hostname = host.test.example\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("etc/mail/local-host-names"),
            "# my domains\nexample.com\n",
        )
        .unwrap();
        let cfg = Config::load(crate::config::Paths::under(&dir), None).unwrap();
        (dir, cfg)
    }

    #[test]
    fn add_and_remove_keep_the_files_shape() {
        let (dir, cfg) = site("addrm");
        let lhn = cfg.paths.etc_mail("local-host-names");
        let vd = cfg.paths.etc_mail("virtuser-domains");
        let mut c = Change::begin(&cfg).unwrap();
        plan_domain_add(&mut c, &cfg, "Shop.Example", true).unwrap();
        plan_domain_add(&mut c, &cfg, "shop.example", true).unwrap(); // again: no-op
        let e = plan_domain_add(&mut c, &cfg, "example.com", true).unwrap_err();
        assert!(e.message.contains("local-host-names:2"), "{e}");
        assert!(plan_domain_add(&mut c, &cfg, "host.test.example", true).is_err());
        plan_domain_add(&mut c, &cfg, "other.example", false).unwrap();
        assert_eq!(c.text(&vd).unwrap(), "shop.example\n");
        assert_eq!(
            c.text(&lhn).unwrap(),
            "# my domains\nexample.com\nother.example\n"
        );
        c.set(
            &cfg.paths.etc_mail("virtusertable"),
            "info@shop.example bob\n".into(),
        );
        let e = plan_domain_remove(&mut c, &cfg, "shop.example", false).unwrap_err();
        assert_eq!(e.code, ExitCode::DataErr);
        plan_domain_remove(&mut c, &cfg, "shop.example", true).unwrap();
        assert_eq!(c.text(&vd).unwrap(), "");
        plan_domain_remove(&mut c, &cfg, "example.com", false).unwrap();
        assert_eq!(c.text(&lhn).unwrap(), "# my domains\nother.example\n");
        assert_eq!(
            plan_domain_remove(&mut c, &cfg, "nope.example", false)
                .unwrap_err()
                .code,
            ExitCode::NoUser
        );
        drop(c);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_virtual_domain_refuses_its_unknown_addresses() {
        let (dir, cfg) = site("refusal");
        let vut = cfg.paths.etc_mail("virtusertable");
        std::fs::write(&vut, "# by hand\n@old.example\tbob\n").unwrap();
        let mut c = Change::begin(&cfg).unwrap();
        plan_domain_add(&mut c, &cfg, "shop.example", true).unwrap();
        // A local domain gets no such line; one with a catch-all keeps it.
        plan_domain_add(&mut c, &cfg, "other.example", false).unwrap();
        plan_domain_add(&mut c, &cfg, "old.example", true).unwrap();
        plan_domain_add(&mut c, &cfg, "shop.example", true).unwrap(); // again: no-op
        assert_eq!(
            c.text(&vut).unwrap(),
            format!("# by hand\n@old.example\tbob\n@shop.example\t{REFUSAL}\n")
        );
        let view = Directory::of_change(&c, &cfg).unwrap();
        assert!(addresses_of(&view, "shop.example").is_empty());
        assert_eq!(addresses_of(&view, "old.example").len(), 1);
        let rows = domain_rows(&view, &cfg);
        let row = |d: &str| rows.iter().find(|r| r.domain == d).unwrap().clone();
        assert_eq!(row("shop.example").catch_all, None);
        assert_eq!(row("shop.example").addresses, 0);
        assert_eq!(row("old.example").catch_all.as_deref(), Some("bob"));
        // Removed without --force (the line is no address), and with it.
        plan_domain_remove(&mut c, &cfg, "shop.example", false).unwrap();
        assert_eq!(c.text(&vut).unwrap(), "# by hand\n@old.example\tbob\n");
        c.set(
            &vut,
            format!("a@shop.example\tbob\n@shop.example\t{REFUSAL}\n"),
        );
        plan_domain_add(&mut c, &cfg, "shop.example", true).unwrap();
        assert!(plan_domain_remove(&mut c, &cfg, "shop.example", false).is_err());
        plan_domain_remove(&mut c, &cfg, "shop.example", true).unwrap();
        assert_eq!(c.text(&vut).unwrap(), "a@shop.example\tbob\n");
        drop(c);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rows_list_both_kinds() {
        let (dir, cfg) = site("rows");
        std::fs::write(cfg.paths.etc_mail("virtuser-domains"), "shop.example\n").unwrap();
        std::fs::write(
            cfg.paths.etc_mail("virtusertable"),
            "a@shop.example bob\n@shop.example bob\n",
        )
        .unwrap();
        let rows = domain_rows(&Directory::on_disk(&cfg), &cfg);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].domain, "host.test.example");
        assert_eq!(rows[1].source.as_ref().unwrap().1, 2);
        assert_eq!(rows[2].kind, "virtual");
        assert_eq!(rows[2].addresses, 2);
        assert_eq!(rows[2].catch_all.as_deref(), Some("bob"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
