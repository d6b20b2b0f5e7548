//! `mailroom list`: simple mailing lists kept sendmail's way (see
//! [`crate::lists`] for the files).  Every change is one [`Change`]: the
//! members, owner and settings files, the aliases entries `NAME` and
//! `owner-NAME`, and for `team@domain` the virtusertable line, together.
//!
//! No `NAME-request` alias is made: sendmail gives it no meaning, and
//! membership is changed with this command, not by mail.

use std::io::Write;
use std::path::Path;

use clap::Subcommand;

use super::alias::target::check_target;
use super::apply;
use super::directory::{Directory, require_domain, taken};
use super::names::{derive_name, parse_address, with_suffix};
use crate::change::Change;
use crate::config::Config;
use crate::exit::{ExitCode, Failure};
use crate::lists::{self, Settings};
use crate::table::makemap;

#[derive(Subcommand, Debug)]
pub enum ListAction {
    /// Make a list: NAME (every local domain) or NAME@DOMAIN, owned by
    /// OWNER, who gets its bounces.
    Create {
        address: String,
        #[arg(long, value_name = "ADDRESS")]
        owner: String,
        /// Let anyone post (the default: only members).
        #[arg(long)]
        anyone_may_post: bool,
    },
    /// Add members (addresses, or local user names).
    Add {
        list: String,
        #[arg(required = true, value_name = "ADDRESS")]
        members: Vec<String>,
    },
    /// Remove members.
    Remove {
        list: String,
        #[arg(required = true, value_name = "ADDRESS")]
        members: Vec<String>,
    },
    /// The members, one per line.
    Members {
        list: String,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Remove a list: its files, aliases and virtusertable entry.
    Delete { list: String },
    /// The lists (the default).
    Show {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub const LIST_HELP: &str = "\
A list NAME is the aliases entry 'NAME: :include:/etc/mail/lists/NAME'
(the members, one address per line, # comments allowed) plus
'owner-NAME: :include:/etc/mail/lists/NAME.owner', so its mail goes out
from owner-NAME and bounces reach the owner, never the poster.  Settings
(list address, posting = members|anyone) are in /etc/mail/lists/NAME.conf.
Members get List-Id: and List-Post: headers.  Only members (by envelope
sender, or From: for mail submitted on this host) may post unless the
list was created with --anyone-may-post.

Examples:
  mailroom list create team@shop.example --owner boss@shop.example
  mailroom list add team@shop.example alice@shop.example bob@example.org
  mailroom list members team@shop.example
  mailroom list remove team@shop.example bob@example.org
  mailroom list --json";

/// A list found from the command line: its aliases name and settings.
struct Found {
    name: String,
    settings: Settings,
}

/// The list ARG names: `NAME`, or an address the virtusertable maps to
/// a list's name.  `read`: a file as the change leaves it, or on disk.
fn find(
    cfg: &Config,
    view: &Directory,
    read: &dyn Fn(&Path) -> Result<String, Failure>,
    arg: &str,
) -> Result<Found, Failure> {
    let addr = parse_address(arg)?;
    let name = match &addr.domain {
        Some(_) => match view.vut_get(&addr.key()) {
            Some((v, _)) => v.trim().to_ascii_lowercase(),
            None => String::new(),
        },
        None => addr.local.clone(),
    };
    let not_a_list = || {
        Failure::new(ExitCode::NoUser, format!("{arg}: no such list"))
            .hint("see 'mailroom list show'")
    };
    if !lists::valid_name(&name) {
        return Err(not_a_list());
    }
    let conf = cfg.paths.resolve(lists::conf_path(&name));
    let text = read(&conf)?;
    if text.is_empty() {
        return Err(not_a_list());
    }
    let settings = Settings::parse(&text).map_err(|e| {
        Failure::new(ExitCode::Config, format!("{}: {e}", conf.display()))
            .hint("fix the file by hand (see 'mailroom list --help')")
    })?;
    Ok(Found { name, settings })
}

fn ensure_dir(cfg: &Config) -> Result<(), Failure> {
    let dir = lists::dir(cfg);
    std::fs::create_dir_all(&dir).map_err(|e| {
        Failure::new(
            ExitCode::CantCreat,
            format!(
                "cannot create {}: {}",
                dir.display(),
                crate::exit::io_reason(&e)
            ),
        )
    })
}

/// `list create` staged, with what the command prints (the `mailroom` command
/// and the web panel).
pub fn create(
    change: &mut Change,
    cfg: &Config,
    address: &str,
    owner: &str,
    anyone: bool,
) -> Result<Vec<String>, Failure> {
    let view = Directory::of_change(change, cfg)?;
    let addr = parse_address(address)?;
    if let Some(d) = &addr.domain {
        require_domain(&view, d)?;
    }
    if let Some(o) = view.owner(&addr) {
        return Err(taken(&addr, &o, &view));
    }
    let key = addr.key();
    let list_address = match &addr.domain {
        Some(_) => key.clone(),
        None => format!("{key}@{}", cfg.hostname),
    };
    let unused = |n: &str| {
        lists::valid_name(n)
            && crate::table::syntax_of(Path::new(n)).is_none()
            && !n.starts_with("owner-")
            && view.name_free(n)
            && view.name_free(&format!("owner-{n}"))
            && [
                lists::members_path(n),
                lists::owner_path(n),
                lists::conf_path(n),
            ]
            .iter()
            .all(|p| !cfg.paths.resolve(p).exists())
    };
    let name = match &addr.domain {
        None if !unused(&key) => {
            return Err(Failure::new(
                ExitCode::DataErr,
                format!("{key} cannot be a list name"),
            )
            .hint("use letters, digits, _ and - (not 'owner-...', not a table name), not taken by owner-NAME or an old list file"));
        }
        None => key.clone(),
        Some(_) => {
            let base = derive_name(&key);
            (1..100)
                .map(|n| {
                    if n == 1 {
                        base.clone()
                    } else {
                        with_suffix(&base, n)
                    }
                })
                .find(|c| unused(c))
                .ok_or_else(|| {
                    Failure::new(
                        ExitCode::DataErr,
                        format!("no free aliases name for {key} ({base}...)"),
                    )
                })?
        }
    };
    let owner_t = check_target(&view, cfg, owner, &key)?;
    if !owner_t.simple {
        return Err(Failure::usage(format!(
            "--owner {owner:?}: the owner must be an address or a local name"
        )));
    }
    ensure_dir(cfg)?;
    let settings = Settings {
        address: list_address.clone(),
        anyone_may_post: anyone,
    };
    change.set(
        &cfg.paths.resolve(lists::members_path(&name)),
        format!(
            "# Members of {list_address}: one address per line (sendmail :include: format).\n\
             # Change with 'mailroom list add|remove {list_address} ADDRESS'.\n"
        ),
    );
    change.set(
        &cfg.paths.resolve(lists::owner_path(&name)),
        format!(
            "# Owner of {list_address}: gets its bounces.\n{}\n",
            owner_t.text
        ),
    );
    change.set(
        &cfg.paths.resolve(lists::conf_path(&name)),
        settings.to_text(),
    );
    let aliases_path = cfg.paths.etc_mail("aliases");
    let mut aliases = change.text(&aliases_path)?;
    aliases = crate::aliases::set_entry(
        &aliases,
        &name,
        &format!(":include:{}", lists::members_path(&name)),
    );
    aliases = crate::aliases::set_entry(
        &aliases,
        &format!("owner-{name}"),
        &format!(":include:{}", lists::owner_path(&name)),
    );
    change.set(&aliases_path, aliases);
    let mut where_ = format!("aliases {name} and owner-{name}");
    if addr.domain.is_some() {
        let vut_path = cfg.paths.etc_mail("virtusertable");
        let vut = makemap::set_entry(&change.text(&vut_path)?, &key, &name);
        change.set(&vut_path, vut);
        where_.push_str(&format!(", virtusertable {key} {name}"));
    }
    Ok(vec![format!(
        "{list_address}: list created, owner {}, {} may post ({where_}; members in {})",
        owner_t.text,
        if anyone { "anyone" } else { "members" },
        lists::members_path(&name)
    )])
}

/// A list's members file and its elements.
fn members_of(
    read: &dyn Fn(&Path) -> Result<String, Failure>,
    cfg: &Config,
    name: &str,
) -> Result<(String, Vec<String>), Failure> {
    let text = read(&cfg.paths.resolve(lists::members_path(name)))?;
    let members = lists::parse_members(&text)
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    Ok((text, members))
}

/// `list add` staged, with what the command prints (the `mailroom` command
/// and the web panel).
pub fn add(
    change: &mut Change,
    cfg: &Config,
    list: &str,
    raw: &[String],
) -> Result<Vec<String>, Failure> {
    let view = Directory::of_change(change, cfg)?;
    let found = find(cfg, &view, &|p| change.text(p), list)?;
    let (mut text, mut members) = members_of(&|p| change.text(p), cfg, &found.name)?;
    let host = &cfg.hostname;
    let shown = &found.settings.address;
    let mut notes = Vec::new();
    for r in raw {
        for piece in crate::aliases::split_list(r) {
            let t = check_target(&view, cfg, &piece, shown)?;
            let own = [found.name.clone(), format!("owner-{}", found.name)];
            if !t.simple
                || own
                    .iter()
                    .any(|o| lists::comparable(o, host) == lists::comparable(&t.text, host))
            {
                return Err(Failure::usage(format!(
                    "{piece:?} cannot be a member of {shown}: give an address or a user name"
                )));
            }
            let c = lists::comparable(&t.text, host);
            if members.iter().any(|m| lists::comparable(m, host) == c) {
                notes.push(format!(
                    "{}: already a member of {shown} (nothing changed)",
                    t.text
                ));
                continue;
            }
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&t.text);
            text.push('\n');
            members.push(t.text.clone());
            notes.push(format!("{}: added to {shown}", t.text));
        }
    }
    change.set(&cfg.paths.resolve(lists::members_path(&found.name)), text);
    Ok(notes)
}

/// `list remove` staged, with what the command prints (the `mailroom` command
/// and the web panel).
pub fn remove(
    change: &mut Change,
    cfg: &Config,
    list: &str,
    raw: &[String],
) -> Result<Vec<String>, Failure> {
    let view = Directory::of_change(change, cfg)?;
    let found = find(cfg, &view, &|p| change.text(p), list)?;
    let (text, _) = members_of(&|p| change.text(p), cfg, &found.name)?;
    let host = &cfg.hostname;
    let shown = &found.settings.address;
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut notes = Vec::new();
    for r in raw {
        for piece in crate::aliases::split_list(r) {
            let c = lists::comparable(&piece, host);
            let mut hit = false;
            for line in lines.iter_mut() {
                let l = line.trim();
                if l.is_empty() || l.starts_with('#') {
                    continue;
                }
                let elems = crate::aliases::split_list(l);
                let kept: Vec<&String> = elems
                    .iter()
                    .filter(|e| lists::comparable(e, host) != c)
                    .collect();
                if kept.len() != elems.len() {
                    hit = true;
                    *line = kept.iter().map(|e| e.trim()).collect::<Vec<_>>().join(", ");
                }
            }
            if !hit {
                return Err(Failure::new(
                    ExitCode::NoUser,
                    format!("{}: not a member of {shown}", piece.trim()),
                )
                .hint(format!("see 'mailroom list members {shown}'")));
            }
            notes.push(format!("{}: removed from {shown}", piece.trim()));
        }
    }
    // Lines emptied by the removal go; the admin's blank lines stay.
    let before: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        if l.is_empty() && !before.get(i).is_some_and(|b| b.trim().is_empty()) {
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    change.set(&cfg.paths.resolve(lists::members_path(&found.name)), out);
    Ok(notes)
}

/// `list delete` staged, with what the command prints.
pub fn delete(change: &mut Change, cfg: &Config, list: &str) -> Result<Vec<String>, Failure> {
    let view = Directory::of_change(change, cfg)?;
    let found = find(cfg, &view, &|p| change.text(p), list)?;
    let name = &found.name;
    let refs: Vec<String> = view
        .references(name)
        .into_iter()
        .filter(|s| s.path != view.vut_path)
        .map(|s| s.to_string())
        .collect();
    if !refs.is_empty() {
        return Err(Failure::new(
            ExitCode::DataErr,
            format!("{name} is still used by {}", refs.join("; ")),
        )
        .hint("remove those entries first"));
    }
    for p in [
        lists::members_path(name),
        lists::owner_path(name),
        lists::conf_path(name),
    ] {
        change.remove(&cfg.paths.resolve(p));
    }
    let aliases_path = cfg.paths.etc_mail("aliases");
    let mut aliases = change.text(&aliases_path)?;
    for n in [name.clone(), format!("owner-{name}")] {
        aliases = crate::aliases::remove_entry(&aliases, &n).unwrap_or(aliases);
    }
    change.set(&aliases_path, aliases);
    let vut_path = cfg.paths.etc_mail("virtusertable");
    let mut vut = change.text(&vut_path)?;
    for l in makemap::entries(&vut.clone()) {
        if l.value.eq_ignore_ascii_case(name) {
            vut = makemap::remove_entry(&vut, &l.key).unwrap_or(vut);
        }
    }
    change.set(&vut_path, vut);
    Ok(vec![format!("{}: list deleted", found.settings.address)])
}

struct Row {
    name: String,
    list: Result<(Settings, Vec<String>, usize), String>,
}

fn rows(cfg: &Config) -> Vec<Row> {
    let mut out: Vec<Row> = std::fs::read_dir(lists::dir(cfg))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let f = e.file_name().to_string_lossy().into_owned();
                    let name = f.strip_suffix(".conf")?.to_string();
                    if name.starts_with('.') {
                        return None;
                    }
                    let list = lists::List::load(cfg, &name).and_then(|l| {
                        let l = l.ok_or("not a list name")?;
                        let owners =
                            std::fs::read_to_string(cfg.paths.resolve(lists::owner_path(&name)))
                                .map(|t| {
                                    lists::parse_members(&t)
                                        .into_iter()
                                        .map(|(a, _)| a)
                                        .collect()
                                })
                                .unwrap_or_default();
                        Ok((l.settings, owners, l.members.len()))
                    });
                    Some(Row { name, list })
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn print_table(rows: &[Row], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<32} {:<16} {:<8} {:>7} OWNER",
        "ADDRESS", "NAME", "POSTING", "MEMBERS"
    )?;
    for r in rows {
        match &r.list {
            Ok((s, owners, n)) => writeln!(
                out,
                "{:<32} {:<16} {:<8} {:>7} {}",
                s.address,
                r.name,
                if s.anyone_may_post {
                    "anyone"
                } else {
                    "members"
                },
                n,
                owners.join(", ")
            )?,
            Err(e) => writeln!(out, "{:<32} {:<16} error: {e}", "-", r.name)?,
        }
    }
    Ok(())
}

fn print_json(rows: &[Row], out: &mut dyn Write) -> std::io::Result<()> {
    use super::queue::json_str;
    let items: Vec<String> = rows
        .iter()
        .map(|r| match &r.list {
            Ok((s, owners, n)) => format!(
                "{{\"address\":{},\"name\":{},\"posting\":{},\"members\":{n},\"owners\":[{}]}}",
                json_str(&s.address),
                json_str(&r.name),
                json_str(if s.anyone_may_post {
                    "anyone"
                } else {
                    "members"
                }),
                owners
                    .iter()
                    .map(|o| json_str(o))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Err(e) => format!(
                "{{\"name\":{},\"error\":{}}}",
                json_str(&r.name),
                json_str(e)
            ),
        })
        .collect();
    writeln!(out, "[{}]", items.join(","))
}

fn print_members(cfg: &Config, list: &str, json: bool) -> i32 {
    let read = |p: &Path| match std::fs::read(p) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Failure::new(
            ExitCode::NoPerm,
            format!(
                "cannot read {}: {}",
                p.display(),
                crate::exit::io_reason(&e)
            ),
        )),
    };
    let view = Directory::on_disk(cfg);
    let result = find(cfg, &view, &read, list)
        .and_then(|found| members_of(&read, cfg, &found.name).map(|(_, m)| m));
    let members = match result {
        Ok(m) => m,
        Err(f) => {
            eprintln!("mailroom: {f}");
            return f.code.code();
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let r = if json {
        let items: Vec<String> = members.iter().map(|m| super::queue::json_str(m)).collect();
        writeln!(out, "[{}]", items.join(","))
    } else {
        members.iter().try_for_each(|m| writeln!(out, "{m}"))
    };
    if r.is_err() {
        ExitCode::IoErr.code()
    } else {
        0
    }
}

pub fn run(cfg: &Config, action: Option<ListAction>, json: bool) -> i32 {
    match action.unwrap_or(ListAction::Show { json }) {
        ListAction::Create {
            address,
            owner,
            anyone_may_post,
        } => apply(cfg, |c| create(c, cfg, &address, &owner, anyone_may_post)),
        ListAction::Add { list, members } => apply(cfg, |c| add(c, cfg, &list, &members)),
        ListAction::Remove { list, members } => apply(cfg, |c| remove(c, cfg, &list, &members)),
        ListAction::Delete { list } => apply(cfg, |c| delete(c, cfg, &list)),
        ListAction::Members { list, json: j } => print_members(cfg, &list, j || json),
        ListAction::Show { json: j } => {
            super::print_listing(&rows(cfg), j || json, print_table, print_json)
        }
    }
}
