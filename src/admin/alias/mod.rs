//! `mailroom alias`, `mailroom forward` and `mailroom catchall`: addresses
//! that lead somewhere else, written sendmail's way so that real sendmail 8
//! resolves them the same.
//!
//! * `alias add local@domain TARGET` → virtusertable `local@domain TARGET`;
//!   several targets (or a program, a file, an `:include:`) → an aliases
//!   entry named after the address (`sales@shop.example` → `sales-shop`)
//!   holding them, and virtusertable `local@domain sales-shop`.
//! * `alias add NAME TARGET...` → aliases `NAME: TARGET, ...` (every local
//!   domain, as sendmail's aliases are).
//! * `forward set ADDRESS TARGET... [--keep-copy]` → aliases
//!   `USER: TARGET, ..., \USER` where USER is the system user behind the
//!   mailbox (`\USER` = the mailbox itself: the stored copy).
//! * `catchall set DOMAIN TARGET...` → virtusertable `@DOMAIN TARGET`;
//!   `catchall clear` of a virtual domain puts back `@DOMAIN`
//!   [`REFUSAL`](super::directory::REFUSAL)
//!   (see [`is_refusal`](super::directory::is_refusal): such an entry is
//!   no catch-all).
//!
//! An address already in use anywhere (a virtusertable key, a mailbox, an
//! alias name, a system user) is refused naming the entry that owns it;
//! targets on this host must reach somewhere.  Both are asked of the
//! resolver delivery uses, reading the tables as the change leaves them
//! ([`Directory`]).  The `plan_*` functions stage the edits into a
//! [`Change`] without committing, for `mailroom import`, which commits
//! many at once.
//!
//! The commands: `alias` here, [`forward`], [`catchall`], [`list`] (the
//! listing); [`target`] checks what they point at.

pub mod catchall;
pub mod forward;
pub mod list;
pub mod target;

use std::path::PathBuf;

use clap::Subcommand;

use super::apply;
use super::directory::{Directory, Source, require_domain, taken};
use super::names::{derive_name, is_derived, parse_address};
use crate::change::Change;
use crate::config::Config;
use crate::exit::{ExitCode, Failure};
use crate::table::makemap;
use crate::table::source::Overlay;
pub use catchall::{plan_catchall, plan_catchall_clear};
pub use forward::{plan_forward, plan_forward_clear};
use target::{Target, check_targets};

// ---------------------------------------------------------------------
// The command line.

#[derive(Subcommand, Debug)]
pub enum AliasAction {
    /// Make an address (or a local name) deliver to other addresses.
    #[command(after_help = "\
Examples:
  mailroom alias add sales@shop.example bob
      virtusertable: sales@shop.example  bob
  mailroom alias add sales@shop.example bob carol@example.com
      aliases: sales-shop: bob, carol@example.com
      virtusertable: sales@shop.example  sales-shop
  mailroom alias add webmaster root
      aliases: webmaster: root (webmaster@ every local domain)
  mailroom alias add '\"john smith\"' john
      aliases: \"john smith\": john (a name with spaces goes in quotes)

The domain must be one of this host's (mailroom domain add).  Targets on
this host must exist; other hosts' addresses are taken as given.  An
address already in use is refused, naming the file and line that own it.")]
    Add {
        /// local@domain, or a bare NAME for every local domain.
        address: String,
        /// Where its mail goes: addresses, local names, "|program",
        /// /file, :include:/file.
        #[arg(required = true, value_name = "TARGET")]
        targets: Vec<String>,
    },
    /// Remove an alias (and the aliases entry made for it).
    #[command(after_help = "\
Examples:
  mailroom alias remove sales@shop.example
  mailroom alias remove webmaster")]
    Remove { address: String },
    /// List aliases, forwards and catch-alls, with the file and line of each.
    #[command(after_help = "\
Examples:
  mailroom alias list
  mailroom alias list shop.example
  mailroom alias list --json")]
    List {
        /// Only this domain's entries.
        domain: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ForwardAction {
    /// Send a mailbox's mail to other addresses (instead of, or as well as,
    /// the mailbox).
    #[command(after_help = "\
Examples:
  mailroom forward set ceo@example.com ceo.phone@mobile.example --keep-copy
      aliases: ceo-example: ceo.phone@mobile.example, \\ceo-example
  mailroom forward set bob bob@gmail.example
      aliases: bob: bob@gmail.example   (nothing stays in bob's mailbox)

ADDRESS is a mailbox: a system user, or an address the virtusertable maps
to one.  Setting a forward again replaces the old one.")]
    Set {
        /// The mailbox: local@domain or a user name.
        address: String,
        #[arg(required = true, value_name = "TARGET")]
        targets: Vec<String>,
        /// Keep a copy in the mailbox too.
        #[arg(long)]
        keep_copy: bool,
    },
    /// Stop forwarding: mail stays in the mailbox again.
    #[command(after_help = "Example:\n  mailroom forward clear ceo@example.com")]
    Clear { address: String },
}

#[derive(Subcommand, Debug)]
pub enum CatchallAction {
    /// Send every address of DOMAIN that nothing else takes to TARGET.
    #[command(after_help = "\
Examples:
  mailroom catchall set shop.example orders@shop.example
      virtusertable: @shop.example  orders@shop.example
  mailroom catchall set shop.example alice bob
      aliases: catchall-shop: alice, bob
      virtusertable: @shop.example  catchall-shop

A catch-all also takes spam sent to made-up addresses: 'mailroom check'
warns about every one.  Setting it again replaces the old target.")]
    Set {
        domain: String,
        #[arg(required = true, value_name = "TARGET")]
        targets: Vec<String>,
    },
    /// Unknown addresses of DOMAIN are refused again (User unknown).
    #[command(after_help = "\
Example:
  mailroom catchall clear shop.example
      virtusertable: @shop.example  error:5.1.1:550 User unknown
      (a local domain's @DOMAIN line is removed instead)")]
    Clear { domain: String },
}

/// Run `mailroom alias ...`.
pub fn run_alias(cfg: &Config, action: AliasAction) -> i32 {
    match action {
        AliasAction::Add { address, targets } => {
            apply(cfg, |c| alias_add(c, cfg, &address, &targets))
        }
        AliasAction::Remove { address } => apply(cfg, |c| alias_remove(c, cfg, &address)),
        AliasAction::List { domain, json } => list::list_command(cfg, domain.as_deref(), json),
    }
}

/// Run `mailroom forward ...`.
pub fn run_forward(cfg: &Config, action: ForwardAction) -> i32 {
    match action {
        ForwardAction::Set {
            address,
            targets,
            keep_copy,
        } => apply(cfg, |c| {
            forward::forward_set(c, cfg, &address, &targets, keep_copy)
        }),
        ForwardAction::Clear { address } => {
            apply(cfg, |c| forward::forward_clear(c, cfg, &address))
        }
    }
}

/// Run `mailroom catchall ...`.
pub fn run_catchall(cfg: &Config, action: CatchallAction) -> i32 {
    match action {
        CatchallAction::Set { domain, targets } => {
            apply(cfg, |c| catchall::catchall_set(c, cfg, &domain, &targets))
        }
        CatchallAction::Clear { domain } => {
            apply(cfg, |c| catchall::catchall_clear(c, cfg, &domain))
        }
    }
}

// ---------------------------------------------------------------------
// The edits.

/// The virtusertable and aliases texts a command edits.
pub(super) struct Texts {
    pub(super) vut_path: PathBuf,
    pub(super) vut: String,
    pub(super) aliases_path: PathBuf,
    pub(super) aliases: String,
}

impl Texts {
    pub(super) fn read(change: &Change, cfg: &Config) -> Result<Texts, Failure> {
        let vut_path = cfg.paths.etc_mail("virtusertable");
        let aliases_path = cfg.paths.etc_mail("aliases");
        Ok(Texts {
            vut: change.text(&vut_path)?,
            aliases: change.text(&aliases_path)?,
            vut_path,
            aliases_path,
        })
    }

    pub(super) fn stage(self, change: &mut Change) {
        change.set(&self.vut_path, self.vut);
        change.set(&self.aliases_path, self.aliases);
    }

    /// Remove the aliases entry `name` if mailroom made it for `owner`
    /// (its name derives from `owner`) and nothing refers to it any more
    /// (as these texts have it).
    pub(super) fn drop_generated(
        &mut self,
        change: &Change,
        cfg: &Config,
        owner: &str,
        name: &str,
    ) -> bool {
        if !is_derived(owner, name) {
            return false;
        }
        let mut now = Overlay::new(change);
        now.set(&self.vut_path, self.vut.as_str());
        now.set(&self.aliases_path, self.aliases.as_str());
        let Ok(dir) = Directory::staged(cfg, &now) else {
            return false;
        };
        if dir.user(name).is_some() || !dir.references(name).is_empty() {
            return false;
        }
        match crate::aliases::remove_entry(&self.aliases, name) {
            Some(t) => {
                self.aliases = t;
                true
            }
            None => false,
        }
    }
}

/// Join targets into an aliases value.
pub(super) fn join_targets(ts: &[Target]) -> String {
    ts.iter()
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------
// alias add, alias remove.

/// Stage `alias add ADDRESS TARGET...` (validated; not committed).
pub fn plan_alias(
    change: &mut Change,
    cfg: &Config,
    address: &str,
    targets: &[String],
) -> Result<(), Failure> {
    alias_add(change, cfg, address, targets).map(|_| ())
}

/// `alias add ADDRESS TARGET...` staged, with what the command prints
/// (the `mailroom` command and the web panel).
pub fn alias_add(
    change: &mut Change,
    cfg: &Config,
    address: &str,
    targets: &[String],
) -> Result<Vec<String>, Failure> {
    let view = Directory::of_change(change, cfg)?;
    let addr = parse_address(address)?;
    if let Some(d) = &addr.domain {
        require_domain(&view, d)?;
    }
    if let Some(owner) = view.owner(&addr) {
        return Err(taken(&addr, &owner, &view));
    }
    let key = addr.key();
    let ts = check_targets(&view, cfg, targets, &key)?;
    let mut texts = Texts::read(change, cfg)?;
    let note = match &addr.domain {
        Some(_) if ts.len() == 1 && ts[0].simple => {
            texts.vut = makemap::set_entry(&texts.vut, &key, &ts[0].text);
            format!(
                "{key}: alias to {} (virtusertable {})",
                ts[0].text,
                texts.vut_path.display()
            )
        }
        Some(_) => {
            let name = view.free_name(&derive_name(&key));
            texts.aliases = crate::aliases::set_entry(&texts.aliases, &name, &join_targets(&ts));
            texts.vut = makemap::set_entry(&texts.vut, &key, &name);
            format!(
                "{key}: alias to {} (aliases entry {name}, virtusertable {key} {name})",
                join_targets(&ts)
            )
        }
        None => {
            texts.aliases = crate::aliases::set_entry(&texts.aliases, &key, &join_targets(&ts));
            format!(
                "{key}: alias to {} (aliases {})",
                join_targets(&ts),
                texts.aliases_path.display()
            )
        }
    };
    texts.stage(change);
    Ok(vec![note])
}

/// Stage `alias remove ADDRESS`.
pub fn plan_alias_remove(change: &mut Change, cfg: &Config, address: &str) -> Result<(), Failure> {
    alias_remove(change, cfg, address).map(|_| ())
}

/// `alias remove ADDRESS` staged, with what the command prints.
pub fn alias_remove(
    change: &mut Change,
    cfg: &Config,
    address: &str,
) -> Result<Vec<String>, Failure> {
    let view = Directory::of_change(change, cfg)?;
    let addr = parse_address(address)?;
    let key = addr.key();
    let mut texts = Texts::read(change, cfg)?;
    let mut notes = Vec::new();
    if addr.domain.is_some() {
        let Some((value, line)) = view.vut_get(&key) else {
            let mut f = Failure::new(ExitCode::NoUser, format!("{key}: no such alias"));
            f = match view.virtual_account(&key) {
                Some(s) => f.hint(format!(
                    "it is a mailbox ({s}): use 'mailroom mailbox remove {key}'"
                )),
                None => f.hint("see 'mailroom alias list'"),
            };
            return Err(f);
        };
        let value = value.trim().to_string();
        if view.user(&value).is_some() && is_derived(&key, &value.to_ascii_lowercase()) {
            return Err(Failure::new(
                ExitCode::DataErr,
                format!(
                    "{key} is a mailbox ({}:{line}: {key} {value}), not an alias",
                    view.vut_path.display()
                ),
            )
            .hint(format!("use 'mailroom mailbox remove {key}'")));
        }
        texts.vut = makemap::remove_entry(&texts.vut, &key).unwrap_or(texts.vut);
        notes.push(format!("{key}: removed (was {value})"));
        if texts.drop_generated(change, cfg, &key, &value.to_ascii_lowercase()) {
            notes.push(format!("{value}: aliases entry removed"));
        }
    } else {
        let Some((value, first)) = view.alias_get(&key).map(|e| (e.shown_value(), e.line)) else {
            let mut f = Failure::new(ExitCode::NoUser, format!("{key}: no such alias"));
            f = if view.user(&key).is_some() {
                f.hint(format!("{key} is a system user, not an alias"))
            } else {
                f.hint("see 'mailroom alias list'")
            };
            return Err(f);
        };
        if view.user(&key).is_some() {
            return Err(Failure::new(
                ExitCode::DataErr,
                format!(
                    "{key} is a forward of the user {key} ({}:{first}: {key}: {value})",
                    view.aliases_path.display()
                ),
            )
            .hint(format!("use 'mailroom forward clear {key}'")));
        }
        let refs = view.references(&key);
        if !refs.is_empty() {
            return Err(still_used(&key, &refs));
        }
        texts.aliases = crate::aliases::remove_entry(&texts.aliases, &key).unwrap_or(texts.aliases);
        notes.push(format!("{key}: removed (was {value})"));
    }
    texts.stage(change);
    Ok(notes)
}

fn still_used(name: &str, refs: &[Source]) -> Failure {
    let list: Vec<String> = refs.iter().take(3).map(|s| s.to_string()).collect();
    let more = if refs.len() > 3 {
        format!(" and {} more", refs.len() - 3)
    } else {
        String::new()
    };
    let how = refs
        .iter()
        .find_map(|s| {
            let first = s.text.split_whitespace().next()?;
            first
                .contains('@')
                .then(|| format!(" ('mailroom alias remove {first}')"))
        })
        .unwrap_or_default();
    Failure::new(
        ExitCode::DataErr,
        format!("{name} is still used by {}{more}", list.join("; ")),
    )
    .hint(format!("remove those first{how}"))
}

#[cfg(test)]
mod tests {
    use super::super::directory::test_site;
    use super::*;

    #[test]
    fn plans_stage_without_committing() {
        let (dir, cfg) = test_site();
        let mut c = Change::begin(&cfg).unwrap();
        plan_alias(
            &mut c,
            &cfg,
            "sales@shop.example",
            &["bob".into(), "info@shop.example".into()],
        )
        .unwrap();
        // The staged alias is visible to the next plan in the same change.
        let e = plan_alias(&mut c, &cfg, "sales@shop.example", &["bob".into()]).unwrap_err();
        assert!(e.message.contains("already taken"), "{e}");
        plan_catchall(&mut c, &cfg, "shop.example", &["sales@shop.example".into()]).unwrap();
        plan_forward(
            &mut c,
            &cfg,
            "info@shop.example",
            &["far@away.example".into()],
            true,
        )
        .unwrap();
        let vut = c.text(&cfg.paths.etc_mail("virtusertable")).unwrap();
        let aliases = c.text(&cfg.paths.etc_mail("aliases")).unwrap();
        assert_eq!(
            vut,
            "# vut\ninfo@shop.example\tinfo-shop\nsales@shop.example\tsales-shop\n@shop.example\tsales@shop.example\n"
        );
        assert_eq!(
            aliases,
            "# a\npostmaster: root\nsales-shop: bob, info@shop.example\ninfo-shop: far@away.example, \\info-shop\n"
        );
        // Nothing on disk yet.
        let disk = std::fs::read_to_string(cfg.paths.etc_mail("virtusertable")).unwrap();
        assert!(!disk.contains("sales"));
        drop(c);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
