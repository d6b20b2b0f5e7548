//! `mailroom forward set|clear`: a mailbox's mail to other addresses,
//! instead of or as well as the mailbox: the aliases entry
//! `USER: TARGET, ..., \USER`, USER being the system user behind the
//! mailbox (`\USER`: its stored copy).

use super::target::check_targets;
use super::{Texts, join_targets};
use crate::admin::directory::Directory;
use crate::admin::names::parse_address;
use crate::change::Change;
use crate::config::Config;
use crate::exit::{ExitCode, Failure};

/// Stage `forward set ADDRESS TARGET... [--keep-copy]`.
pub fn plan_forward(
    change: &mut Change,
    cfg: &Config,
    address: &str,
    targets: &[String],
    keep_copy: bool,
) -> Result<(), Failure> {
    forward_set(change, cfg, address, targets, keep_copy).map(|_| ())
}

/// `forward set` staged, with what the command prints (the `mailroom`
/// command and the web panel).
pub fn forward_set(
    change: &mut Change,
    cfg: &Config,
    address: &str,
    targets: &[String],
    keep_copy: bool,
) -> Result<Vec<String>, Failure> {
    let view = Directory::of_change(change, cfg)?;
    let addr = parse_address(address)?;
    let user = view.mailbox_user(&addr)?;
    let ts = check_targets(&view, cfg, targets, &user)?;
    // A target that is the mailbox itself would loop back.
    for t in &ts {
        let back = t.text.trim_start_matches('\\').eq_ignore_ascii_case(&user)
            || (t.text.contains('@')
                && view
                    .vut_get(&t.text)
                    .is_some_and(|(v, _)| v.trim().eq_ignore_ascii_case(&user)));
        if back {
            return Err(Failure::new(
                ExitCode::DataErr,
                format!("target {} is the mailbox {} itself", t.text, addr.key()),
            )
            .hint("to keep a copy in the mailbox use --keep-copy"));
        }
    }
    let mut value = join_targets(&ts);
    if keep_copy {
        value.push_str(&format!(", \\{user}"));
    }
    let mut texts = Texts::read(change, cfg)?;
    let mut notes = Vec::new();
    if let Some(e) = view.alias_get(&user) {
        notes.push(format!(
            "{user}: replacing the forward at {}:{} (was {})",
            view.aliases_path.display(),
            e.line,
            e.shown_value()
        ));
    }
    texts.aliases = crate::aliases::set_entry(&texts.aliases, &user, &value);
    let others: Vec<String> = view
        .vut
        .iter()
        .filter(|l| l.value.eq_ignore_ascii_case(&user) && l.key != addr.key())
        .map(|l| format!("{} ({}:{})", l.written, view.vut_path.display(), l.line))
        .collect();
    let who = if addr.key() == user {
        user.clone()
    } else {
        format!("{} (the user {user})", addr.key())
    };
    notes.push(format!(
        "{who}: forwarded to {}{} (aliases {user}: {value})",
        join_targets(&ts),
        if keep_copy {
            ", keeping a copy"
        } else {
            ", no copy kept"
        }
    ));
    if !others.is_empty() {
        notes.push(format!(
            "note: the forward is the user {user}'s, so it applies to {} too",
            others.join(", ")
        ));
    }
    texts.stage(change);
    Ok(notes)
}

/// Stage `forward clear ADDRESS`.
pub fn plan_forward_clear(change: &mut Change, cfg: &Config, address: &str) -> Result<(), Failure> {
    forward_clear(change, cfg, address).map(|_| ())
}

/// `forward clear` staged, with what the command prints.
pub fn forward_clear(
    change: &mut Change,
    cfg: &Config,
    address: &str,
) -> Result<Vec<String>, Failure> {
    let view = Directory::of_change(change, cfg)?;
    let addr = parse_address(address)?;
    let user = view.mailbox_user(&addr)?;
    let mut texts = Texts::read(change, cfg)?;
    let Some(new) = crate::aliases::remove_entry(&texts.aliases, &user) else {
        return Err(Failure::new(
            ExitCode::NoUser,
            format!("{}: no forward set (no aliases entry {user})", addr.key()),
        ));
    };
    texts.aliases = new;
    texts.stage(change);
    Ok(vec![format!(
        "{}: forward cleared; mail stays in the mailbox ({user})",
        addr.key()
    )])
}
