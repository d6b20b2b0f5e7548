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
//!   `catchall clear` of a virtual domain puts back `@DOMAIN` [`REFUSAL`]
//!   (see [`is_refusal`]: such an entry is no catch-all).
//!
//! An address already in use anywhere (a virtusertable key, a mailbox, an
//! alias name, a system user) is refused naming the entry that owns it;
//! targets on this host must exist.  The `plan_*` functions stage the edits
//! into a [`Change`] without committing, for `mailroom import`, which
//! commits many at once.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::accounts::VirtualEntry;
use crate::change::Change;
use crate::config::Config;
use crate::exit::{ExitCode, Failure};
use crate::table::{class, makemap};

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
        AliasAction::List { domain, json } => list_command(cfg, domain.as_deref(), json),
    }
}

/// Run `mailroom forward ...`.
pub fn run_forward(cfg: &Config, action: ForwardAction) -> i32 {
    match action {
        ForwardAction::Set {
            address,
            targets,
            keep_copy,
        } => apply(cfg, |c| forward_set(c, cfg, &address, &targets, keep_copy)),
        ForwardAction::Clear { address } => apply(cfg, |c| forward_clear(c, cfg, &address)),
    }
}

/// Run `mailroom catchall ...`.
pub fn run_catchall(cfg: &Config, action: CatchallAction) -> i32 {
    match action {
        CatchallAction::Set { domain, targets } => {
            apply(cfg, |c| catchall_set(c, cfg, &domain, &targets))
        }
        CatchallAction::Clear { domain } => apply(cfg, |c| catchall_clear(c, cfg, &domain)),
    }
}

/// Take the lock, stage the edit, commit, print what was done.
pub(crate) fn apply(
    cfg: &Config,
    edit: impl FnOnce(&mut Change) -> Result<Vec<String>, Failure>,
) -> i32 {
    let result = Change::begin(cfg).and_then(|mut change| {
        let notes = edit(&mut change)?;
        change.commit()?;
        Ok(notes)
    });
    match result {
        Ok(notes) => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            for n in notes {
                let _ = writeln!(out, "{n}");
            }
            0
        }
        Err(f) => {
            eprintln!("mailroom: {f}");
            f.code.code()
        }
    }
}

// ---------------------------------------------------------------------
// What the files say, as the change will leave them.

/// The virtusertable value of `@D` for a virtual domain without a
/// catch-all (cf/README's idiom): unknown addresses of D are refused with
/// 550 5.1.1, by sendmail 8 as by mailroom.  Without an `@D` entry both
/// take them as remote and relay them to D's MX (this host: a loop).
pub const REFUSAL: &str = "error:5.1.1:550 User unknown";

/// Does this virtusertable value refuse mail (`error:...`, as the resolver
/// reads it)?  An `@D` entry with such a value is not a catch-all: the
/// domain's unknown addresses are refused, none is taken.
pub fn is_refusal(value: &str) -> bool {
    value.trim_start().starts_with("error:")
}

/// Where an entry lives: a file and line (none for the system's user
/// database) and the entry itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub text: String,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.path.display(), self.text),
            None => f.write_str(&self.text),
        }
    }
}

/// Where an aliases entry is, for messages.
fn alias_source(path: &Path, e: &crate::aliases::Entry) -> Source {
    Source {
        path: path.to_path_buf(),
        line: Some(e.line),
        text: format!("{}: {}", e.name, e.shown_value()),
    }
}

/// A domain of this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainKind {
    /// Class `{w}`: `local-host-names`, or the host's own name.
    Local,
    /// Class `{VirtHost}`: `virtuser-domains`.
    Virtual,
}

/// One system user as `/etc/passwd` has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdUser {
    pub name: String,
    pub uid: u32,
    pub line: usize,
}

/// The users of passwd(5) text, with their lines.
pub fn passwd_users(text: &str) -> Vec<PasswdUser> {
    crate::users::parse_passwd(text)
        .into_iter()
        .map(|e| PasswdUser {
            name: e.user.name,
            uid: e.user.uid,
            line: e.line,
        })
        .collect()
}

/// The tables that decide where addresses go, read through a [`Change`]
/// (so staged edits count) or from disk.
#[derive(Debug, Clone)]
pub struct View {
    pub vut_path: PathBuf,
    /// (key as written, value, line).
    pub vut: Vec<(String, String, usize)>,
    pub aliases_path: PathBuf,
    /// Every entry, duplicates included, read as newaliases reads them.
    pub aliases: Vec<crate::aliases::Entry>,
    pub passwd_path: PathBuf,
    pub users: Vec<PasswdUser>,
    /// Also ask the system's user database (NSS) about names the passwd
    /// file does not have.
    nss: bool,
    pub vpasswd_path: PathBuf,
    pub virtuals: Vec<VirtualEntry>,
    pub lhn_path: PathBuf,
    pub local_words: Vec<(String, usize)>,
    pub vd_path: PathBuf,
    pub virtual_words: Vec<(String, usize)>,
    /// The host's own names (always local).
    pub host_names: Vec<String>,
}

impl View {
    /// The files as `change` will leave them.
    pub fn of_change(change: &Change, cfg: &Config) -> Result<View, Failure> {
        View::load(cfg, |p| change.text(p))
    }

    /// The files on disk; unreadable ones count as empty (for listings by
    /// users who may not read everything).
    pub fn on_disk(cfg: &Config) -> View {
        View::load(cfg, |p| Ok(std::fs::read_to_string(p).unwrap_or_default()))
            .expect("reading never fails")
    }

    fn load(
        cfg: &Config,
        mut read: impl FnMut(&Path) -> Result<String, Failure>,
    ) -> Result<View, Failure> {
        let vut_path = cfg.paths.etc_mail("virtusertable");
        let aliases_path = cfg.paths.etc_mail("aliases");
        let passwd_path = cfg.paths.resolve("/etc/passwd");
        let vpasswd_path = cfg.paths.etc_mail("passwd");
        let lhn_path = cfg.paths.etc_mail("local-host-names");
        let vd_path = cfg.paths.etc_mail("virtuser-domains");
        let passwd_text = read(&passwd_path)?;
        // As crate::users::UserDb::for_root: a private root with its own
        // passwd file uses only that; the real system asks NSS too.
        let nss = cfg.paths.is_system() || !passwd_path.exists();
        let mut host_names = vec!["localhost".to_string()];
        let host = cfg.hostname.to_ascii_lowercase();
        if let Some(short) = host.split('.').next() {
            host_names.push(short.to_string());
        }
        host_names.push(host);
        if let Ok(h) = nix::unistd::gethostname()
            && let Some(h) = h.to_str()
        {
            host_names.push(h.to_ascii_lowercase());
        }
        Ok(View {
            vut: makemap::entries(&read(&vut_path)?)
                .into_iter()
                .map(|l| (l.written, l.value, l.line))
                .collect(),
            aliases: crate::aliases::entries(&read(&aliases_path)?),
            users: passwd_users(&passwd_text),
            nss,
            virtuals: crate::accounts::parse_virtual(&read(&vpasswd_path)?),
            local_words: class::words(&read(&lhn_path)?),
            virtual_words: class::words(&read(&vd_path)?),
            host_names,
            vut_path,
            aliases_path,
            passwd_path,
            vpasswd_path,
            lhn_path,
            vd_path,
        })
    }

    /// The virtusertable entry for `key` (the first, as makemap keeps it).
    pub fn vut_get(&self, key: &str) -> Option<(&str, usize)> {
        self.vut
            .iter()
            .find(|(k, _, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v, l)| (v.as_str(), *l))
    }

    /// The catch-all of `d`: its `@d` entry, unless that refuses mail
    /// ([`is_refusal`]).
    pub fn catch_all(&self, d: &str) -> Option<(&str, usize)> {
        self.vut_get(&format!("@{d}"))
            .filter(|(v, _)| !is_refusal(v))
    }

    fn vut_source(&self, key: &str) -> Option<Source> {
        let (k, v, l) = self
            .vut
            .iter()
            .find(|(k, _, _)| k.eq_ignore_ascii_case(key))?;
        Some(Source {
            path: self.vut_path.clone(),
            line: Some(*l),
            text: format!("{k} {v}"),
        })
    }

    /// The aliases entry `name` (as written or as keyed: `"Sales.Team"`
    /// is `sales.team`): the last definition wins, as in sendmail.
    pub fn alias_get(&self, name: &str) -> Option<&crate::aliases::Entry> {
        let key = crate::aliases::name_key(name.trim()).ok()?;
        self.aliases.iter().rev().find(|e| e.name == key)
    }

    fn alias_source(&self, name: &str) -> Option<Source> {
        let e = self.alias_get(name)?;
        Some(alias_source(&self.aliases_path, e))
    }

    /// The system user `name` (sendmail lower-cases local names).
    pub fn user(&self, name: &str) -> Option<Source> {
        let name = name.to_ascii_lowercase();
        if let Some(u) = self.users.iter().find(|u| u.name == name) {
            return Some(Source {
                path: self.passwd_path.clone(),
                line: Some(u.line),
                text: format!("system user {} (uid {})", u.name, u.uid),
            });
        }
        if self.nss
            && let Some(u) = crate::users::by_name(&name)
        {
            return Some(Source {
                path: self.passwd_path.clone(),
                line: None,
                text: format!(
                    "system user {} (uid {}, from the system's user database)",
                    u.name, u.uid
                ),
            });
        }
        None
    }

    /// The virtual account (`/etc/mail/passwd`) with this login.
    pub fn virtual_account(&self, login: &str) -> Option<Source> {
        let login = login.to_ascii_lowercase();
        let e = self.virtuals.iter().find(|e| e.login == login)?;
        Some(Source {
            path: self.vpasswd_path.clone(),
            line: Some(e.line),
            text: format!("virtual mailbox account {}", e.login),
        })
    }

    /// Is `d` one of this host's domains, and how?
    pub fn domain(&self, d: &str) -> Option<(DomainKind, Option<Source>)> {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        if let Some((_, l)) = self.local_words.iter().find(|(w, _)| *w == d) {
            return Some((
                DomainKind::Local,
                Some(Source {
                    path: self.lhn_path.clone(),
                    line: Some(*l),
                    text: d,
                }),
            ));
        }
        if self.host_names.contains(&d) {
            return Some((DomainKind::Local, None));
        }
        if let Some((_, l)) = self.virtual_words.iter().find(|(w, _)| *w == d) {
            return Some((
                DomainKind::Virtual,
                Some(Source {
                    path: self.vd_path.clone(),
                    line: Some(*l),
                    text: d,
                }),
            ));
        }
        None
    }

    /// Is `d` a local domain (class `{w}`)?
    pub fn is_local(&self, d: &str) -> bool {
        matches!(self.domain(d), Some((DomainKind::Local, _)))
    }

    /// Who owns the local name `name`: an alias, a system user, or a
    /// virtual account with a bare login (in sendmail's order).
    pub fn name_owner(&self, name: &str) -> Option<Source> {
        self.alias_source(name)
            .or_else(|| self.user(name))
            .or_else(|| self.virtual_account(name))
    }

    /// Who owns `addr` already (for the uniqueness check), if anyone.
    pub fn owner(&self, addr: &Addr) -> Option<Source> {
        let Some(d) = &addr.domain else {
            return self.name_owner(&addr.local);
        };
        let key = addr.key();
        if let Some(s) = self.vut_source(&key) {
            return Some(s);
        }
        if let Some(s) = self.virtual_account(&key) {
            return Some(s);
        }
        // In a local domain with no `@domain` entry, local@domain is the
        // local name `local`: taken when that exists.  (An `@domain` entry
        // comes first even when it refuses mail: then local@domain is
        // refused, taken by nothing.)
        if self.is_local(d) && self.vut_get(&format!("@{d}")).is_none() {
            return self.name_owner(&addr.local);
        }
        None
    }

    /// Does mail for `local@d` (d one of ours) reach somewhere?
    /// `skip_catchall`: ignore this domain's catch-all (checking the
    /// target of that catch-all itself).
    pub fn address_resolves(&self, local: &str, d: &str, skip_catchall: Option<&str>) -> bool {
        let local = local.to_ascii_lowercase();
        let base = local.split('+').next().unwrap_or(&local).to_string();
        let mut keys = vec![format!("{local}@{d}")];
        if base != local {
            keys.push(format!("{base}+*@{d}"));
            keys.push(format!("{base}@{d}"));
        }
        // The first entry found decides, as in the resolver: one that
        // refuses mail (`error:...`) means the address does not exist.
        if let Some((v, _)) = keys.iter().find_map(|k| self.vut_get(k)) {
            return !is_refusal(v);
        }
        if self.virtual_account(&format!("{base}@{d}")).is_some() {
            return true;
        }
        if skip_catchall != Some(d)
            && let Some((v, _)) = self.vut_get(&format!("@{d}"))
        {
            return !is_refusal(v);
        }
        self.is_local(d) && self.name_owner(&base).is_some()
    }

    /// Is `name` free for a new aliases entry?
    pub fn name_free(&self, name: &str) -> bool {
        self.name_owner(name).is_none()
    }

    /// `base`, else `base-2`, `base-3`, ...: the first free name.
    pub fn free_name(&self, base: &str) -> String {
        if self.name_free(base) {
            return base.to_string();
        }
        (2..)
            .map(|n| with_suffix(base, n))
            .find(|c| self.name_free(c))
            .expect("some suffix is free")
    }

    /// The entries that mention the local name `name` as a target:
    /// virtusertable values and aliases list elements.
    pub fn references(&self, name: &str) -> Vec<Source> {
        let name = name.to_ascii_lowercase();
        let mut out = Vec::new();
        for (k, v, l) in &self.vut {
            if v.trim().eq_ignore_ascii_case(&name) {
                out.push(Source {
                    path: self.vut_path.clone(),
                    line: Some(*l),
                    text: format!("{k} {v}"),
                });
            }
        }
        for e in &self.aliases {
            if e.name == name {
                continue;
            }
            let hit = crate::aliases::split_list(&e.value).iter().any(|t| {
                let t = crate::address::dequote_local(t.trim());
                t.trim_start_matches('\\').eq_ignore_ascii_case(&name)
            });
            if hit {
                out.push(alias_source(&self.aliases_path, e));
            }
        }
        out
    }

    /// The system user behind the mailbox `addr`: the virtusertable's
    /// value for it, or (in a local domain) the local part itself.
    pub fn mailbox_user(&self, addr: &Addr) -> Result<String, Failure> {
        let shown = addr.key();
        let Some(d) = &addr.domain else {
            return match self.user(&addr.local) {
                Some(_) => Ok(addr.local.clone()),
                None => Err(Failure::new(
                    ExitCode::NoUser,
                    format!("{shown}: no such mailbox (no system user {shown})"),
                )
                .hint("see 'mailroom mailbox list'")),
            };
        };
        if let Some((value, line)) = self.vut_get(&shown) {
            let v = value.trim();
            let at = format!("{}:{line}", self.vut_path.display());
            if v.contains(['@', ',', ' ', '\t']) || is_refusal(v) {
                return Err(Failure::new(
                    ExitCode::DataErr,
                    format!("{shown} is an alias, not a mailbox ({at}: {shown} {v})"),
                )
                .hint(format!(
                    "change where it goes with 'mailroom alias remove {shown}' and 'mailroom alias add {shown} ...'"
                )));
            }
            if self.user(v).is_some() {
                return Ok(v.to_ascii_lowercase());
            }
            return Err(Failure::new(
                ExitCode::DataErr,
                format!("{shown} is an alias of {v}, not a mailbox ({at}: {shown} {v})"),
            )
            .hint(format!(
                "change the alias itself ('mailroom alias remove {shown}', then 'mailroom alias add {shown} ...')"
            )));
        }
        if let Some(s) = self.virtual_account(&shown) {
            return Err(Failure::new(
                ExitCode::Unavailable,
                format!("{shown} is a virtual mailbox account ({s}): forwards are made for system-user mailboxes only"),
            )
            .hint(format!("use an alias instead: 'mailroom alias add {shown} TARGET...' after removing the account")));
        }
        if self.domain(d).is_none() {
            return Err(unknown_domain(d));
        }
        // Local names count only without an `@d` entry (a catch-all, or
        // one refusing unknown addresses: either comes first).
        if self.is_local(d) && self.vut_get(&format!("@{d}")).is_none() {
            if let Some(a) = self.alias_source(&addr.local)
                && self.user(&addr.local).is_none()
            {
                return Err(Failure::new(
                    ExitCode::DataErr,
                    format!("{shown} is an alias, not a mailbox ({a})"),
                ));
            }
            if self.user(&addr.local).is_some() {
                return Ok(addr.local.clone());
            }
        }
        Err(
            Failure::new(ExitCode::NoUser, format!("{shown}: no such mailbox")).hint(format!(
                "create it with 'mailroom mailbox add {shown}', or see 'mailroom mailbox list'"
            )),
        )
    }

    /// Check one target and return it as it is to be written; `owner` is
    /// what the entry is for (no pointing at itself); `skip_catchall`: see
    /// [`View::address_resolves`].
    pub fn check_target(
        &self,
        cfg: &Config,
        raw: &str,
        owner: &str,
        skip_catchall: Option<&str>,
    ) -> Result<Target, Failure> {
        let t = raw.trim();
        let bad = |why: &str| Failure::new(ExitCode::Usage, format!("target {raw:?}: {why}"));
        if t.is_empty() {
            return Err(bad("empty"));
        }
        if t.contains(['\n', '\r', '\0']) {
            return Err(bad("contains a line break"));
        }
        let plain = if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
            &t[1..t.len() - 1]
        } else {
            t
        };
        let quote = |s: &str| -> Result<String, Failure> {
            if s.contains('"') || s.contains('\\') {
                return Err(bad("quotes and backslashes cannot be written into aliases"));
            }
            Ok(if s.contains([' ', '\t', ',']) {
                format!("\"{s}\"")
            } else {
                s.to_string()
            })
        };
        if let Some(cmd) = plain.strip_prefix('|') {
            if cmd.trim().is_empty() {
                return Err(bad("no program after |"));
            }
            if !cfg.allow_programs {
                return Err(Failure::new(
                    ExitCode::DataErr,
                    format!("target {raw:?}: programs are turned off (allow_programs = no in mailroom.conf)"),
                )
                .hint("give an address instead, or set allow_programs = yes"));
            }
            return Ok(Target::special(quote(plain)?));
        }
        if plain.starts_with('/') {
            if !cfg.allow_files {
                return Err(Failure::new(
                    ExitCode::DataErr,
                    format!(
                        "target {raw:?}: delivery to files is turned off (allow_files = no in mailroom.conf)"
                    ),
                ));
            }
            return Ok(Target::special(quote(plain)?));
        }
        if plain.len() >= 9 && plain[..9].eq_ignore_ascii_case(":include:") {
            let path = plain[9..].trim();
            if !path.starts_with('/') {
                return Err(bad(":include: needs an absolute path"));
            }
            if !cfg.paths.resolve(path).is_file() {
                return Err(Failure::new(
                    ExitCode::NoUser,
                    format!("target {raw:?}: {path} does not exist"),
                )
                .hint("create the list file first (one address per line)"));
            }
            return Ok(Target::special(quote(&format!(":include:{path}"))?));
        }
        if plain.len() >= 6 && plain[..6].eq_ignore_ascii_case("error:") {
            return Err(bad(
                "error: entries are not made by mailroom; write them into the virtusertable by hand",
            ));
        }
        if let Some(user) = plain.strip_prefix('\\') {
            let user = user.to_ascii_lowercase();
            if !valid_local(&user) {
                return Err(bad("not a user name"));
            }
            if self.user(&user).is_none() {
                return Err(Failure::new(
                    ExitCode::NoUser,
                    format!("target {raw:?}: there is no system user {user}"),
                ));
            }
            return Ok(Target::special(format!("\\{user}")));
        }
        if let Some((local, domain)) = plain.rsplit_once('@') {
            let d = parse_domain(domain).map_err(|f| bad(&f.message))?;
            if local.is_empty()
                || local.len() > 64
                || local
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || ",;:<>()[]\"\\@".contains(c))
            {
                return Err(bad("not an address (local@domain)"));
            }
            if self.domain(&d).is_none() {
                return Ok(Target::simple(format!("{local}@{d}")));
            }
            let local = local.to_ascii_lowercase();
            let text = format!("{local}@{d}");
            if text.eq_ignore_ascii_case(owner) {
                return Err(Failure::new(
                    ExitCode::DataErr,
                    format!("target {text} is {owner} itself"),
                )
                .hint(SELF_HINT));
            }
            if !self.address_resolves(&local, &d, skip_catchall) {
                return Err(Failure::new(
                    ExitCode::NoUser,
                    format!(
                        "target {text} does not exist: {d} is a domain of this host and nothing takes {text}"
                    ),
                )
                .hint(format!(
                    "create it first ('mailroom mailbox add {text}' or 'mailroom alias add {text} ...')"
                )));
            }
            return Ok(Target::simple(text));
        }
        let Some(name) = parse_local_name(t) else {
            return Err(bad("not an address or a local name"));
        };
        if name == owner.to_ascii_lowercase() {
            return Err(Failure::new(
                ExitCode::DataErr,
                format!("target {name} is {owner} itself"),
            )
            .hint(SELF_HINT));
        }
        if self.name_owner(&name).is_none() {
            let mut f = Failure::new(
                ExitCode::NoUser,
                format!("target {name} is not a user, alias or mailbox account of this host"),
            );
            let prefix = format!("{name}@");
            let similar: Vec<&str> = self
                .vut
                .iter()
                .filter(|(k, _, _)| k.to_ascii_lowercase().starts_with(&prefix))
                .map(|(k, _, _)| k.as_str())
                .take(3)
                .collect();
            f = if similar.is_empty() {
                f.hint("give a full address, or create it first ('mailroom mailbox add NAME')")
            } else {
                f.hint(format!("did you mean {}?", similar.join(" or ")))
            };
            return Err(f);
        }
        Ok(Target::simple(name))
    }

    fn check_targets(
        &self,
        cfg: &Config,
        raw: &[String],
        owner: &str,
        skip_catchall: Option<&str>,
    ) -> Result<Vec<Target>, Failure> {
        if raw.is_empty() {
            return Err(Failure::usage("no target given").hint("name at least one TARGET"));
        }
        let mut out: Vec<Target> = Vec::new();
        for r in raw {
            // "a, b" in one argument is two targets.
            for piece in crate::aliases::split_list(r) {
                let t = self.check_target(cfg, &piece, owner, skip_catchall)?;
                if !out.iter().any(|o| o.text.eq_ignore_ascii_case(&t.text)) {
                    out.push(t);
                }
            }
        }
        if out.is_empty() {
            return Err(Failure::usage("no target given").hint("name at least one TARGET"));
        }
        Ok(out)
    }
}

const SELF_HINT: &str =
    "an entry cannot lead to itself (for a forward, --keep-copy keeps a copy in the mailbox)";

/// A checked target, as it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub text: String,
    /// An address or a local name: may stand alone as a virtusertable
    /// value (programs, files, includes and `\user` need aliases).
    pub simple: bool,
}

impl Target {
    fn simple(text: String) -> Target {
        Target { text, simple: true }
    }
    fn special(text: String) -> Target {
        Target {
            text,
            simple: false,
        }
    }
}

// ---------------------------------------------------------------------
// Addresses and names.

/// An address given on the command line: `local@domain` or a bare local
/// name, lower-cased (makemap and aliases fold keys to lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub local: String,
    pub domain: Option<String>,
}

impl Addr {
    /// `local@domain` or `local`.
    pub fn key(&self) -> String {
        match &self.domain {
            Some(d) => format!("{}@{d}", self.local),
            None => self.local.clone(),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// A local part or local name mailroom writes: letters, digits, `. _ + - =`,
/// starting with a letter, digit or `_`, at most 64 characters.
pub fn valid_local(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-=".contains(c))
        && !s.contains("..")
        && !s.ends_with('.')
}

/// A local name as mailroom writes it into the tables, or `None`: a
/// [`valid_local`] name, or a quoted name whose words ([`valid_local`]
/// characters) are separated by single spaces (`"john smith"`).  Returned
/// as newaliases keys it ([`crate::address::dequote_local`], lower-cased):
/// quotes only where the name has spaces, so `"Sales.Team"` is
/// `sales.team`.  Quotes that would need escapes inside, or that hide an
/// address (`"a@b"`), are not names.
pub fn parse_local_name(s: &str) -> Option<String> {
    let key = crate::address::dequote_local(s.trim()).to_ascii_lowercase();
    if valid_local(&key) {
        return Some(key);
    }
    let inner = key.strip_prefix('"')?.strip_suffix('"')?;
    let words_ok = inner.len() <= 64
        && inner.split(' ').all(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._+-=".contains(c))
        });
    words_ok.then_some(key)
}

/// A domain name: `example.com` (lower-cased, no trailing dot), labels of
/// letters, digits and `-`, at least two of them.
pub fn parse_domain(s: &str) -> Result<String, Failure> {
    let d = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let bad = |why: &str| {
        Failure::usage(format!("{s:?} is not a domain name: {why}"))
            .hint("write it like example.com")
    };
    if d.is_empty() {
        return Err(bad("empty"));
    }
    if d.len() > 253 {
        return Err(bad("too long"));
    }
    if !d.contains('.') {
        return Err(bad("it has no dot"));
    }
    for label in d.split('.') {
        if label.is_empty() {
            return Err(bad("an empty label (two dots)"));
        }
        if label.len() > 63 {
            return Err(bad("a label longer than 63 characters"));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(bad("only letters, digits, '-' and '.' may appear"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with '-'"));
        }
    }
    Ok(d)
}

/// Parse an address argument: `local@domain` or a bare `NAME`.
pub fn parse_address(s: &str) -> Result<Addr, Failure> {
    let t = s.trim();
    if let Some(d) = t.strip_prefix('@') {
        return Err(
            Failure::usage(format!("{s:?}: an address needs a local part")).hint(format!(
                "for every address of a domain use 'mailroom catchall set {d} TARGET'"
            )),
        );
    }
    let (local, domain) = match crate::address::unquoted_find(t, '@') {
        Some(at) => (&t[..at], Some(&t[at + 1..])),
        None => (t, None),
    };
    let Some(local) = parse_local_name(local) else {
        return Err(Failure::usage(format!(
            "{s:?} is not an address mailroom can create"
        ))
        .hint(
            "use letters, digits and . _ + - = (starting with a letter or digit), like sales@example.com; \
             a name with spaces goes in double quotes: '\"john smith\"'",
        ));
    };
    let domain = match domain {
        Some(d) => Some(parse_domain(d)?),
        None => None,
    };
    if domain.is_some() && local.starts_with('"') {
        return Err(Failure::usage(format!(
            "{s:?}: a local part with spaces cannot be written into the virtusertable \
             (its keys end at the first space)"
        ))
        .hint(format!(
            "for this host's local domains use the bare name, which serves them all: \
             'mailroom alias add {local} TARGET...'"
        )));
    }
    Ok(Addr { local, domain })
}

fn unknown_domain(d: &str) -> Failure {
    Failure::new(
        ExitCode::NoUser,
        format!("{d} is not a domain of this host"),
    )
    .hint(format!(
        "add it first: 'mailroom domain add {d}' (or --virtual), see 'mailroom domain list'"
    ))
}

pub(crate) fn require_domain(view: &View, d: &str) -> Result<(), Failure> {
    match view.domain(d) {
        Some(_) => Ok(()),
        None => Err(unknown_domain(d)),
    }
}

pub(crate) fn taken(addr: &Addr, owner: &Source, view: &View) -> Failure {
    let shown = addr.key();
    let f = Failure::new(
        ExitCode::DataErr,
        format!("{shown} is already taken: {owner}"),
    );
    if addr.domain.is_none()
        && view.user(&addr.local).is_some()
        && view.alias_get(&addr.local).is_none()
    {
        f.hint(format!(
            "to send {shown}'s mail elsewhere use 'mailroom forward set {shown} TARGET...'"
        ))
    } else {
        f.hint(
            "pick another address, or remove that entry first (see 'mailroom alias list', 'mailroom mailbox list')",
        )
    }
}

/// The system user / aliases name derived from an address:
/// `info@shop.example` → `info-shop`; lower-case, `[a-z][a-z0-9_-]*`, at
/// most 32 characters.  (Collisions: see [`View::free_name`].)
pub fn derive_name(address: &str) -> String {
    let (local, domain) = address.split_once('@').unwrap_or((address, ""));
    let label = domain.split('.').next().unwrap_or("");
    let raw = if label.is_empty() {
        local.to_string()
    } else {
        format!("{local}-{label}")
    };
    let mut out = String::new();
    for c in raw.to_ascii_lowercase().chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert(0, 'm');
    }
    out.truncate(32);
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// `base-N`, shortened so that the whole stays within 32 characters.
pub fn with_suffix(base: &str, n: usize) -> String {
    let suffix = format!("-{n}");
    let mut b = base.to_string();
    b.truncate(32 - suffix.len());
    while b.ends_with('-') {
        b.pop();
    }
    format!("{b}{suffix}")
}

/// Was `name` derived from `address` ([`derive_name`], or a collision's
/// `-N` form)?  How mailroom tells the entries it made for an address.
pub fn is_derived(address: &str, name: &str) -> bool {
    let base = derive_name(address);
    if name == base {
        return true;
    }
    match name.rsplit_once('-') {
        Some((_, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n
            .parse::<usize>()
            .is_ok_and(|n| n >= 2 && with_suffix(&base, n) == name),
        _ => false,
    }
}

// ---------------------------------------------------------------------
// The edits.

struct Texts {
    vut_path: PathBuf,
    vut: String,
    aliases_path: PathBuf,
    aliases: String,
}

impl Texts {
    fn read(change: &Change, cfg: &Config) -> Result<Texts, Failure> {
        let vut_path = cfg.paths.etc_mail("virtusertable");
        let aliases_path = cfg.paths.etc_mail("aliases");
        Ok(Texts {
            vut: change.text(&vut_path)?,
            aliases: change.text(&aliases_path)?,
            vut_path,
            aliases_path,
        })
    }

    fn stage(self, change: &mut Change) {
        change.set(&self.vut_path, self.vut);
        change.set(&self.aliases_path, self.aliases);
    }

    /// Remove the aliases entry `name` if mailroom made it for `owner`
    /// (its name derives from `owner`) and nothing refers to it any more.
    fn drop_generated(&mut self, change: &Change, cfg: &Config, owner: &str, name: &str) -> bool {
        if !is_derived(owner, name) {
            return false;
        }
        let mut view = match View::of_change(change, cfg) {
            Ok(v) => v,
            Err(_) => return false,
        };
        view.vut = makemap::entries(&self.vut)
            .into_iter()
            .map(|l| (l.written, l.value, l.line))
            .collect();
        view.aliases = crate::aliases::entries(&self.aliases);
        if view.user(name).is_some() || !view.references(name).is_empty() {
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
fn join_targets(ts: &[Target]) -> String {
    ts.iter()
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Stage `alias add ADDRESS TARGET...` (validated; not committed).
pub fn plan_alias(
    change: &mut Change,
    cfg: &Config,
    address: &str,
    targets: &[String],
) -> Result<(), Failure> {
    alias_add(change, cfg, address, targets).map(|_| ())
}

fn alias_add(
    change: &mut Change,
    cfg: &Config,
    address: &str,
    targets: &[String],
) -> Result<Vec<String>, Failure> {
    let view = View::of_change(change, cfg)?;
    let addr = parse_address(address)?;
    if let Some(d) = &addr.domain {
        require_domain(&view, d)?;
    }
    if let Some(owner) = view.owner(&addr) {
        return Err(taken(&addr, &owner, &view));
    }
    let key = addr.key();
    let ts = view.check_targets(cfg, targets, &key, None)?;
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

fn alias_remove(change: &mut Change, cfg: &Config, address: &str) -> Result<Vec<String>, Failure> {
    let view = View::of_change(change, cfg)?;
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

fn forward_set(
    change: &mut Change,
    cfg: &Config,
    address: &str,
    targets: &[String],
    keep_copy: bool,
) -> Result<Vec<String>, Failure> {
    let view = View::of_change(change, cfg)?;
    let addr = parse_address(address)?;
    let user = view.mailbox_user(&addr)?;
    let ts = view.check_targets(cfg, targets, &user, None)?;
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
        .filter(|(k, v, _)| {
            v.trim().eq_ignore_ascii_case(&user) && !k.eq_ignore_ascii_case(&addr.key())
        })
        .map(|(k, _, l)| format!("{k} ({}:{l})", view.vut_path.display()))
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

fn forward_clear(change: &mut Change, cfg: &Config, address: &str) -> Result<Vec<String>, Failure> {
    let view = View::of_change(change, cfg)?;
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

/// Stage `catchall set DOMAIN TARGET...`.
pub fn plan_catchall(
    change: &mut Change,
    cfg: &Config,
    domain: &str,
    targets: &[String],
) -> Result<(), Failure> {
    catchall_set(change, cfg, domain, targets).map(|_| ())
}

fn catchall_set(
    change: &mut Change,
    cfg: &Config,
    domain: &str,
    targets: &[String],
) -> Result<Vec<String>, Failure> {
    let view = View::of_change(change, cfg)?;
    let d = parse_domain(domain.trim_start_matches('@'))?;
    require_domain(&view, &d)?;
    let key = format!("@{d}");
    let owner = format!("catchall@{d}");
    let ts = view.check_targets(cfg, targets, &key, Some(&d))?;
    let mut texts = Texts::read(change, cfg)?;
    let mut notes = Vec::new();
    // The line refusing unknown addresses (a virtual domain's) is replaced
    // in place; it is no catch-all to replace.
    let refusal = view.vut_get(&key).filter(|(v, _)| is_refusal(v));
    let old = view
        .catch_all(&d)
        .map(|(v, l)| (v.trim().to_ascii_lowercase(), l));
    let value = if ts.len() == 1 && ts[0].simple {
        ts[0].text.clone()
    } else {
        // Reuse the entry made for the old catch-all, else a new name.
        let name = match &old {
            Some((v, _)) if is_derived(&owner, v) && view.user(v).is_none() => v.clone(),
            _ => view.free_name(&derive_name(&owner)),
        };
        texts.aliases = crate::aliases::set_entry(&texts.aliases, &name, &join_targets(&ts));
        name
    };
    texts.vut = makemap::set_entry(&texts.vut, &key, &value);
    if let Some((v, l)) = refusal {
        notes.push(format!(
            "{d}: replacing {}:{l} ({key} {}): unknown addresses were refused",
            view.vut_path.display(),
            v.trim()
        ));
    }
    if let Some((v, l)) = &old {
        notes.push(format!(
            "{d}: replacing the catch-all at {}:{l} (was {v})",
            view.vut_path.display()
        ));
        if *v != value && texts.drop_generated(change, cfg, &owner, v) {
            notes.push(format!("{v}: aliases entry removed"));
        }
    }
    notes.push(format!(
        "{d}: catch-all on: every other address of {d} goes to {}",
        join_targets(&ts)
    ));
    texts.stage(change);
    Ok(notes)
}

/// Stage `catchall clear DOMAIN`.
pub fn plan_catchall_clear(change: &mut Change, cfg: &Config, domain: &str) -> Result<(), Failure> {
    catchall_clear(change, cfg, domain).map(|_| ())
}

fn catchall_clear(change: &mut Change, cfg: &Config, domain: &str) -> Result<Vec<String>, Failure> {
    let view = View::of_change(change, cfg)?;
    let d = parse_domain(domain.trim_start_matches('@'))?;
    let key = format!("@{d}");
    // A virtual domain needs its `@d` entry refusing unknown addresses:
    // without one they would be relayed to the domain's MX.
    let is_virtual = matches!(view.domain(&d), Some((DomainKind::Virtual, _)));
    let old = match view.vut_get(&key) {
        Some((v, l)) if is_refusal(v) => {
            return Ok(vec![format!(
                "{d} has no catch-all: unknown addresses of {d} are refused ({}:{l}: {key} {}); nothing to do",
                view.vut_path.display(),
                v.trim()
            )]);
        }
        Some((v, _)) => Some(v.trim().to_ascii_lowercase()),
        None if is_virtual => None,
        None => {
            return Err(
                Failure::new(ExitCode::NoUser, format!("{d} has no catch-all"))
                    .hint("see 'mailroom alias list'"),
            );
        }
    };
    let mut texts = Texts::read(change, cfg)?;
    texts.vut = if is_virtual {
        makemap::set_entry(&texts.vut, &key, REFUSAL)
    } else {
        makemap::remove_entry(&texts.vut, &key).unwrap_or(texts.vut)
    };
    let refused = if is_virtual {
        format!(" ({key} {REFUSAL})")
    } else {
        String::new()
    };
    let Some(old) = old else {
        texts.stage(change);
        return Ok(vec![format!(
            "{d} had no catch-all; unknown addresses of {d} are now refused{refused}"
        )]);
    };
    let mut notes = vec![format!(
        "{d}: catch-all off (was {old}); unknown addresses of {d} are refused{refused}"
    )];
    if texts.drop_generated(change, cfg, &format!("catchall@{d}"), &old) {
        notes.push(format!("{old}: aliases entry removed"));
    }
    texts.stage(change);
    Ok(notes)
}

// ---------------------------------------------------------------------
// Listing.

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
pub fn rows(view: &View) -> Vec<Row> {
    let mut out = Vec::new();
    let mut shown_via: Vec<String> = Vec::new();
    let split = |v: &str| -> Vec<String> {
        crate::aliases::split_list(v)
            .into_iter()
            .map(|s| s.trim().to_string())
            .collect()
    };
    for (k, v, l) in &view.vut {
        let key = k.to_ascii_lowercase();
        let value = v.trim();
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
            line: *l,
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

fn list_command(cfg: &Config, domain: Option<&str>, json: bool) -> i32 {
    let view = View::on_disk(cfg);
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
    super::print_listing(&rows, json, print_table, print_json)
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
    use super::queue::json_str;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_from_addresses() {
        assert_eq!(derive_name("info@shop.example"), "info-shop");
        assert_eq!(derive_name("First.Last@Example.com"), "first-last-example");
        assert_eq!(derive_name("123@x.example"), "m123-x");
        assert_eq!(derive_name("catchall@shop.example"), "catchall-shop");
        let long = derive_name(&format!("{}@example.com", "a".repeat(40)));
        assert_eq!(long.len(), 32);
        assert_eq!(with_suffix(&long, 12).len(), 32);
        assert!(is_derived("info@shop.example", "info-shop"));
        assert!(is_derived("info@shop.example", "info-shop-3"));
        assert!(!is_derived("info@shop.example", "info-shop-1"));
        assert!(!is_derived("info@shop.example", "info-example"));
        assert!(!is_derived("info@shop.example", "bob"));
    }

    #[test]
    fn quoted_names_are_keyed_as_newaliases_keys_them() {
        assert_eq!(
            parse_local_name("\"Sales.Team\"").as_deref(),
            Some("sales.team")
        );
        assert_eq!(
            parse_local_name("\"John Smith\"").as_deref(),
            Some("\"john smith\"")
        );
        assert_eq!(parse_local_name("Bob").as_deref(), Some("bob"));
        for bad in [
            "\"a@b\"",
            "\"x\\\"y\"",
            "\"two  words\"",
            "\" x\"",
            "\"\"",
            "a b",
            "\"open",
        ] {
            assert_eq!(parse_local_name(bad), None, "{bad}");
        }
        assert_eq!(
            parse_address("\"Sales.Team\"@Example.COM").unwrap().key(),
            "sales.team@example.com"
        );
        assert_eq!(
            parse_address("\"John Smith\"").unwrap().key(),
            "\"john smith\""
        );
        assert!(parse_address("\"john smith\"@example.com").is_err());
    }

    #[test]
    fn addresses_and_domains_parse() {
        let a = parse_address("Sales@Shop.Example").unwrap();
        assert_eq!(a.key(), "sales@shop.example");
        assert_eq!(parse_address("webmaster").unwrap().domain, None);
        assert_eq!(
            parse_address("@shop.example").unwrap_err().code,
            ExitCode::Usage
        );
        assert!(parse_address("a b@x.example").is_err());
        assert!(parse_address("a@x").is_err());
        assert!(parse_address("a@-x.example").is_err());
        assert!(parse_address(".a@x.example").is_err());
        assert_eq!(parse_domain("Example.COM.").unwrap(), "example.com");
        assert!(parse_domain("exa mple.com").is_err());
    }

    fn site() -> (PathBuf, Config) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mr-alias-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc/mail")).unwrap();
        let w = |p: &str, t: &str| std::fs::write(dir.join(p), t).unwrap();
        w(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\ninfo-shop:x:1001:8::/nonexistent:/usr/sbin/nologin\n",
        );
        w("etc/mail/mailroom.conf", "hostname = host.test.example\n");
        w("etc/mail/local-host-names", "# ours\nexample.com\n");
        w("etc/mail/virtuser-domains", "shop.example\n");
        w(
            "etc/mail/virtusertable",
            "# vut\ninfo@shop.example\tinfo-shop\n",
        );
        w("etc/mail/aliases", "# a\npostmaster: root\n");
        let cfg = Config::load(crate::config::Paths::under(&dir), None).unwrap();
        (dir, cfg)
    }

    #[test]
    fn the_owner_of_an_address_is_named() {
        let (dir, cfg) = site();
        let v = View::on_disk(&cfg);
        let own = |a: &str| v.owner(&parse_address(a).unwrap()).map(|s| s.to_string());
        let o = own("info@shop.example").unwrap();
        assert!(
            o.ends_with("virtusertable:2: info@shop.example info-shop"),
            "{o}"
        );
        // example.com is local: bob@example.com is the user bob.
        assert!(
            own("bob@example.com")
                .unwrap()
                .contains("passwd:2: system user bob")
        );
        assert!(
            own("postmaster@example.com")
                .unwrap()
                .contains("aliases:2: postmaster: root")
        );
        assert_eq!(own("bob@shop.example"), None);
        assert_eq!(own("nobody-here@example.com"), None);
        assert!(own("postmaster").is_some());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn targets_on_this_host_must_exist() {
        let (dir, cfg) = site();
        let v = View::on_disk(&cfg);
        assert_eq!(
            v.check_target(&cfg, "Bob", "x", None).unwrap(),
            Target::simple("bob".into())
        );
        assert!(v.check_target(&cfg, "info@shop.example", "x", None).is_ok());
        assert_eq!(
            v.check_target(&cfg, "nosuch@shop.example", "x", None)
                .unwrap_err()
                .code,
            ExitCode::NoUser
        );
        let e = v.check_target(&cfg, "info", "x", None).unwrap_err();
        assert!(
            e.to_string().contains("did you mean info@shop.example"),
            "{e}"
        );
        assert!(
            v.check_target(&cfg, "someone@far.example", "x", None)
                .is_ok()
        );
        assert_eq!(
            v.check_target(&cfg, "|/usr/bin/x -y", "x", None).unwrap(),
            Target::special("\"|/usr/bin/x -y\"".into())
        );
        assert!(v.check_target(&cfg, "error:nouser x", "x", None).is_err());
        assert!(v.check_target(&cfg, "x", "x", None).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_refusing_domain_entry_is_no_catch_all() {
        assert!(is_refusal(REFUSAL));
        assert!(is_refusal(" error:nouser No such user"));
        assert!(!is_refusal("bob"));
        assert!(!is_refusal("errors@example.com"));
        let (dir, cfg) = site();
        std::fs::write(
            cfg.paths.etc_mail("virtusertable"),
            format!(
                "info@shop.example\tinfo-shop\ngone@shop.example\terror:nouser gone\n@shop.example\t{REFUSAL}\n@example.com\t{REFUSAL}\n"
            ),
        )
        .unwrap();
        let v = View::on_disk(&cfg);
        assert_eq!(v.catch_all("shop.example"), None);
        assert_eq!(v.vut_get("@shop.example"), Some((REFUSAL, 3)));
        // Unknown and refused addresses do not exist; made ones do.
        assert!(v.address_resolves("info", "shop.example", None));
        assert!(!v.address_resolves("nosuch", "shop.example", None));
        assert!(!v.address_resolves("gone", "shop.example", None));
        // In a local domain the entry comes before the local names too.
        assert!(!v.address_resolves("bob", "example.com", None));
        assert_eq!(v.owner(&parse_address("bob@example.com").unwrap()), None);
        assert!(
            v.check_target(&cfg, "nosuch@shop.example", "x", None)
                .is_err()
        );
        assert!(rows(&v).iter().all(|r| r.kind != "catchall"));

        // `catchall set` replaces it in place, `clear` puts it back.
        let mut c = Change::begin(&cfg).unwrap();
        let vut_path = cfg.paths.etc_mail("virtusertable");
        plan_catchall(&mut c, &cfg, "shop.example", &["bob".into()]).unwrap();
        let vut = c.text(&vut_path).unwrap();
        assert!(
            vut.contains("gone\n@shop.example\tbob\n@example.com"),
            "{vut}"
        );
        let v = View::of_change(&c, &cfg).unwrap();
        assert_eq!(v.catch_all("shop.example"), Some(("bob", 3)));
        assert!(v.address_resolves("nosuch", "shop.example", None));
        plan_catchall_clear(&mut c, &cfg, "shop.example").unwrap();
        let vut = c.text(&vut_path).unwrap();
        assert!(
            vut.contains(&format!("gone\n@shop.example\t{REFUSAL}\n@example.com")),
            "{vut}"
        );
        // Again: nothing to do, not an error.
        let notes = catchall_clear(&mut c, &cfg, "shop.example").unwrap();
        assert!(notes[0].contains("nothing to do"), "{notes:?}");
        assert_eq!(c.text(&vut_path).unwrap(), vut);
        // A local domain's refusing entry is no catch-all either.
        catchall_clear(&mut c, &cfg, "example.com").unwrap();
        assert_eq!(c.text(&vut_path).unwrap(), vut);
        drop(c);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn plans_stage_without_committing() {
        let (dir, cfg) = site();
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
