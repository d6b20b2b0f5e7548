//! The panel's changes: each one the `mailroom` command's own change
//! (the same functions, checks, messages, lock, journal and renames:
//! [`crate::change::Change`]), after two checks of the panel's own:
//!
//! 1. **Who**: the session may touch the object named
//!    ([`super::access`]); if not, `missing`, exactly as for an object
//!    that does not exist, and nothing is read or changed.
//! 2. **Stale**: with `seen`, the object's stamp ([`super::records`]) is
//!    compared under the change's lock, before anything is staged; a
//!    different one is `stale`, and nothing changes.
//!
//! A refused change answers `failed` with the command's own message.
//! Targets (aliases, forwards, catch-alls, list members and owners, and
//! those of an import) must be addresses or local names: programs
//! (`|cmd`), files and `:include:` are root's business at the shell, never
//! something a web form may write.

use super::access::{domain_of, may_address, may_domain, may_list, may_mailbox};
use super::records;
use super::session::Session;
use crate::admin::{alias, autoreply, domain, filter, import, list, mailbox};
use crate::change::Change;
use crate::config::Config;
use crate::exit::{ExitCode, Failure};
use crate::panel::protocol::{Answer, Record, Role};

/// Every change the panel makes (besides `logout` and `password.change`,
/// which the session module answers).
pub const CHANGES: &[&str] = &[
    "domain.add",
    "domain.remove",
    "mailbox.add",
    "mailbox.remove",
    "mailbox.password",
    "mailbox.quota",
    "import",
    "alias.set",
    "alias.remove",
    "forward.set",
    "forward.clear",
    "catchall.set",
    "catchall.clear",
    "autoreply.set",
    "autoreply.clear",
    "list.create",
    "list.delete",
    "list.add",
    "list.drop",
    "filter.set",
    "filter.clear",
];

/// What a change came to, and what it was about (for the audit line).
pub struct Outcome {
    pub answer: Answer,
    pub object: String,
}

fn failed(f: Failure) -> Answer {
    Answer::Failed {
        message: f.to_string(),
    }
}

/// The values of a repeated field, each split on spaces, commas and line
/// breaks (a form's one text field), empty pieces dropped.
pub fn values(req: &Record, key: &str) -> Vec<String> {
    req.all(key)
        .flat_map(|v| v.split([' ', ',', '\n', '\r', '\t']))
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// A target a web form may write: an address or a local name.
fn plain_target(t: &str) -> Result<(), Failure> {
    let t = t.trim();
    if t.is_empty()
        || t.starts_with(['|', '/', ':', '"', '\\'])
        || t.contains(|c: char| c.is_whitespace() || c.is_control() || c == '"')
    {
        return Err(Failure::new(
            ExitCode::Usage,
            format!("target {t:?}: only addresses and local names can be set here"),
        )
        .hint("programs, files and :include: are set with the mailroom command"));
    }
    Ok(())
}

fn plain_targets(ts: &[String]) -> Result<(), Failure> {
    ts.iter().try_for_each(|t| plain_target(t))
}

/// A change in `edit`, under the lock, refused as stale when `seen` no
/// longer matches the `guard` object's stamp.
fn staged(
    cfg: &Config,
    req: &Record,
    guard: Option<(&str, &str)>,
    edit: impl FnOnce(&mut Change) -> Result<Vec<String>, Failure>,
) -> Answer {
    whole(cfg, req, guard, |mut change| {
        let notes = edit(&mut change)?;
        change.commit()?;
        Ok(notes)
    })
}

/// As [`staged`], for the changes that commit themselves (mailboxes,
/// imports: files are made after the commit).
fn whole(
    cfg: &Config,
    req: &Record,
    guard: Option<(&str, &str)>,
    work: impl FnOnce(Change) -> Result<Vec<String>, Failure>,
) -> Answer {
    let change = match Change::begin(cfg) {
        Ok(c) => c,
        Err(f) => return failed(f),
    };
    if let (Some(seen), Some((kind, object))) = (req.get("seen"), guard) {
        let now = records::current(cfg, kind, object);
        let stamp = now.as_ref().map_or("none".to_string(), records::stamp);
        if !super::session::same_secret(seen, &stamp) {
            return Answer::Stale {
                message: records::describe(kind, object, now.as_ref()),
            };
        }
    }
    match work(change) {
        Ok(notes) => Answer::Done { notes },
        Err(f) => failed(f),
    }
}

fn mailbox_done(d: Result<mailbox::Done, Failure>) -> Result<Vec<String>, Failure> {
    d.map(|d| {
        let mut notes = d.notes;
        notes.extend(d.after.map(|f| f.to_string()));
        notes
    })
}

/// Make the change `op` asks for, as session `s` (its CSRF token already
/// checked).
pub fn change(cfg: &Config, s: &Session, op: &str, req: &Record) -> Outcome {
    let field = |k: &str| req.str(k).trim().to_string();
    let admin = s.role == Role::Admin;
    let manager = s.role != Role::User;
    let address = field("address");
    let dom = field("domain");
    let yes = |k: &str| matches!(req.str(k), "yes" | "on" | "1" | "true");
    let object = match op {
        "domain.add" | "domain.remove" | "catchall.set" | "catchall.clear" | "import" => {
            dom.clone()
        }
        _ => address.clone(),
    };
    let missing = || Outcome {
        answer: Answer::Missing,
        object: object.clone(),
    };
    // Who may: the object named, before anything is read.
    let allowed = match op {
        "domain.add" | "domain.remove" => admin,
        "catchall.set" | "catchall.clear" | "import" => manager && may_domain(s, &dom),
        "mailbox.add" | "alias.set" | "alias.remove" | "list.create" => {
            manager && may_address(s, &address)
        }
        "list.delete" | "list.add" | "list.drop" => manager && may_list(cfg, s, &address),
        "mailbox.remove" | "mailbox.password" | "mailbox.quota" => {
            manager && may_mailbox(cfg, s, &address)
        }
        "forward.set" | "forward.clear" | "filter.set" | "filter.clear" => {
            may_mailbox(cfg, s, &address)
        }
        "autoreply.set" | "autoreply.clear" => may_address(s, &address),
        _ => false,
    };
    if !allowed {
        return missing();
    }
    let targets = values(req, "target");
    let members = values(req, "member");
    let a = address.as_str();
    let answer = match op {
        "domain.add" => staged(cfg, req, None, |c| {
            domain::domain_add(c, cfg, &dom, yes("virtual"))
        }),
        "domain.remove" => staged(cfg, req, None, |c| {
            domain::domain_remove(c, cfg, &dom, false)
        }),
        "mailbox.add" => mailbox_add(cfg, req, a, yes("virtual")),
        "mailbox.remove" => whole(cfg, req, Some(("mailbox", a)), |c| {
            mailbox::remove_in(cfg, c, a, false, false)
        }),
        "mailbox.password" => match hash(req.str("password")) {
            Ok(h) => whole(cfg, req, Some(("mailbox", a)), |c| {
                mailbox::passwd_in(cfg, c, a, &h)
            }),
            Err(f) => failed(f),
        },
        "mailbox.quota" => whole(cfg, req, Some(("mailbox", a)), |c| {
            mailbox::quota_in(cfg, c, a, &field("quota"))
        }),
        "import" => import_text(cfg, s, req, &dom, yes("virtual")),
        "alias.set" => match plain_targets(&targets) {
            Err(f) => failed(f),
            Ok(()) => staged(cfg, req, Some(("alias", a)), |c| {
                // Setting an alias again replaces it: the command's
                // remove, then its add, in one change.
                let view = crate::admin::directory::Directory::of_change(c, cfg)?;
                let mut notes = Vec::new();
                if records::alias(cfg, &view, a).is_some() {
                    notes.extend(alias::alias_remove(c, cfg, a)?);
                }
                notes.extend(alias::alias_add(c, cfg, a, &targets)?);
                Ok(notes)
            }),
        },
        "alias.remove" => staged(cfg, req, Some(("alias", a)), |c| {
            alias::alias_remove(c, cfg, a)
        }),
        "forward.set" => match plain_targets(&targets) {
            Err(f) => failed(f),
            Ok(()) => staged(cfg, req, Some(("forward", a)), |c| {
                alias::forward::forward_set(c, cfg, a, &targets, yes("keep"))
            }),
        },
        "forward.clear" => staged(cfg, req, Some(("forward", a)), |c| {
            alias::forward::forward_clear(c, cfg, a)
        }),
        "catchall.set" => match plain_targets(&targets) {
            Err(f) => failed(f),
            Ok(()) => staged(cfg, req, Some(("catchall", &dom)), |c| {
                alias::catchall::catchall_set(c, cfg, &dom, &targets)
            }),
        },
        "catchall.clear" => staged(cfg, req, Some(("catchall", &dom)), |c| {
            alias::catchall::catchall_clear(c, cfg, &dom)
        }),
        "autoreply.set" => {
            // The request's first `from` is the client's address; the
            // rule's first day is the one after it.
            let from_date = req.all("from").nth(1).unwrap_or("").trim().to_string();
            let until = field("until");
            let interval = match field("interval") {
                i if i.is_empty() => "7d".to_string(),
                i => i,
            };
            let opt = |v: String| (!v.is_empty()).then_some(v);
            match autoreply::rule(
                req.str("subject"),
                req.str("text"),
                opt(from_date),
                opt(until),
                &interval,
            ) {
                Err(f) => failed(f),
                Ok(rule) => staged(cfg, req, Some(("autoreply", a)), |c| {
                    autoreply::set(c, cfg, a, rule)
                }),
            }
        }
        "autoreply.clear" => staged(cfg, req, Some(("autoreply", a)), |c| {
            autoreply::clear(c, cfg, a)
        }),
        "list.create" => {
            let owner = match field("owner") {
                o if o.is_empty() => s.name.clone(),
                o => o,
            };
            match plain_targets(&members).and_then(|()| plain_target(&owner)) {
                Err(f) => failed(f),
                Ok(()) => staged(cfg, req, None, |c| {
                    let anyone = req.str("posting") == "anyone";
                    let mut notes = list::create(c, cfg, a, &owner, anyone)?;
                    if !members.is_empty() {
                        notes.extend(list::add(c, cfg, a, &members)?);
                    }
                    Ok(notes)
                }),
            }
        }
        "list.delete" => staged(cfg, req, Some(("list", a)), |c| list::delete(c, cfg, a)),
        "list.add" => match plain_targets(&members) {
            Err(f) => failed(f),
            Ok(()) => staged(cfg, req, Some(("list", a)), |c| {
                list::add(c, cfg, a, &members)
            }),
        },
        "list.drop" => staged(cfg, req, Some(("list", a)), |c| {
            list::remove(c, cfg, a, &members)
        }),
        "filter.set" => {
            let rules = req.str("rules").replace("\r\n", "\n");
            match filter::check_rules("rules", &rules) {
                Err(f) => failed(f),
                Ok(()) => staged(cfg, req, Some(("filter", a)), |c| {
                    filter::set(c, cfg, a, rules)
                }),
            }
        }
        "filter.clear" => staged(cfg, req, Some(("filter", a)), |c| filter::clear(c, cfg, a)),
        _ => return missing(),
    };
    Outcome { answer, object }
}

/// A new password's hash, its form checked as the command checks it.
pub fn hash(password: &str) -> Result<String, Failure> {
    mailbox::check_password(password.as_bytes()).map_err(|w| Failure::new(ExitCode::Usage, w))?;
    mailbox::hash_password(password.as_bytes())
}

fn mailbox_add(cfg: &Config, req: &Record, address: &str, is_virtual: bool) -> Answer {
    let quota = req.str("quota").trim();
    let quota = (!quota.is_empty()).then_some(quota);
    // Checked before the password is hashed (as the command does).
    let checked = mailbox::Tables::load_disk(cfg)
        .and_then(|mut t| t.plan(address, is_virtual, quota).map(|_| ()))
        .and_then(|()| hash(req.str("password")));
    match checked {
        Err(f) => failed(f),
        Ok(h) => whole(cfg, req, None, |c| {
            mailbox_done(mailbox::add_in(cfg, c, address, is_virtual, quota, &h))
        }),
    }
}

/// `mailroom import` of the request's `text` for domain `d`: every
/// record must be of `d`, every target plain, and a forward or quota
/// only for a mailbox the session may touch (else `missing`).
fn import_text(cfg: &Config, s: &Session, req: &Record, d: &str, is_virtual: bool) -> Answer {
    use import::Record as R;
    let name = "import";
    let lines = match import::parse(req.str("text").as_bytes(), name) {
        Ok(l) => l,
        Err(f) => return failed(f),
    };
    let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
    for l in &lines {
        let (subject, targets): (&str, &[String]) = match &l.record {
            R::Mailbox { address, .. } | R::Quota { address, .. } => (address, &[]),
            R::Alias { address, targets }
            | R::Forward {
                address, targets, ..
            } => (address, targets),
            R::Domain { domain, .. } => (domain, &[]),
            R::Catchall { domain, targets } => (domain, targets),
        };
        let of_d = match &l.record {
            R::Domain { .. } | R::Catchall { .. } => subject
                .trim()
                .trim_end_matches('.')
                .eq_ignore_ascii_case(&d),
            _ => domain_of(subject).as_deref() == Some(d.as_str()),
        };
        if !of_d {
            return failed(Failure::new(
                ExitCode::DataErr,
                format!("{name}:{}: {subject} is not of {d}", l.number),
            ));
        }
        if matches!(&l.record, R::Domain { .. }) && s.role != Role::Admin {
            return failed(Failure::new(
                ExitCode::DataErr,
                format!("{name}:{}: domains are added by the box admin", l.number),
            ));
        }
        let existing = matches!(&l.record, R::Forward { .. } | R::Quota { .. });
        if existing && !may_mailbox(cfg, s, subject) {
            return Answer::Missing;
        }
        if let Err(f) = plain_targets(targets) {
            return failed(Failure::new(
                ExitCode::DataErr,
                format!("{name}:{}: {}", l.number, f.message),
            ));
        }
    }
    whole(cfg, req, None, |c| {
        import::import_lines(cfg, c, name, &lines, is_virtual, false).map(|done| {
            let mut notes = done.notes;
            notes.extend(done.warnings.into_iter().map(|w| format!("warning: {w}")));
            notes
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_and_names_are_targets() {
        for ok in ["bob", "a@b.example", "info-shop"] {
            assert!(plain_target(ok).is_ok(), "{ok}");
        }
        for bad in [
            "|/bin/sh",
            "/root/.ssh/authorized_keys",
            ":include:/etc/shadow",
            "\\bob",
            "\"a b\"",
            "",
        ] {
            assert!(plain_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repeated_fields_split_like_a_text_field() {
        let r = Record::new()
            .with("target", "a@x, b@y\nc@z")
            .with("target", " d@w ");
        assert_eq!(values(&r, "target"), ["a@x", "b@y", "c@z", "d@w"]);
    }
}
