//! Where mail for an address goes: sendmail 8's resolution, exactly.
//!
//! Used by `deliver`, by `sendmail -bv`, by the SMTP server's RCPT check,
//! by the queue runner and by `mailroom explain`.
//!
//! For each address:
//!
//! 1. **Domains.**  An unqualified name is local.  A domain is *local*
//!    (class `{w}`) when it is in `/etc/mail/local-host-names`, is the host
//!    name (or its first label), `localhost`, or one of the host's own
//!    address literals (`[192.0.2.1]`); it is *virtual* (class `{VirtHost}`)
//!    when it is in `/etc/mail/virtuser-domains`.  Anything else is remote.
//! 2. **virtusertable** ([`virtuser`]), for local and virtual domains only:
//!    a local name goes on to step 3, an address is resolved again (at most
//!    50 rewrites), `error:` entries are errors.  With no entry, a local
//!    domain is dropped (`bob@example.com` → `bob`), and a virtual-only
//!    domain is relayed.  mailroom's virtual accounts (`/etc/mail/passwd`,
//!    see [`crate::accounts`]) are found between the user-specific keys
//!    and the domain-wide catch-alls, so an account always gets its mail.
//!    On this host's own domains and for unqualified names the local part
//!    is first read as sendmail's parse rules read it: a lone quoted string
//!    without white space loses its quotes (`"Sales.Team"` is
//!    `sales.team`, [`address::dequote_local`]), and routing left in it
//!    (`"a@b"`, the % hack `user%host`) is followed.  Virtual domains keep
//!    the local part as written; their table keys are looked up without
//!    quotes.
//! 3. **aliases** ([`crate::aliases`]): `user+detail`, `user+*`, `user`,
//!    lower-cased (`"John Smith"` is the name `"john smith"`); a backslash
//!    anywhere in the name (`\bob`, `"e\ve"`) skips them;
//!    values are lists of local names, addresses, `\user` (no further
//!    aliasing), `"|program"`, `/file` and `:include:/path`; `owner-LIST`
//!    becomes the envelope sender of LIST's mail; an alias naming itself
//!    delivers to the user; a loop that leaves nobody to deliver to is an
//!    error.
//! 4. **users**: system accounts (names lower-cased, as sendmail's local
//!    mailer does), then virtual accounts; then `~/.forward`, read as the
//!    user and ignored unless the user owns it and it is not group- or
//!    world-writable.
//!
//! Programs and files are allowed only from aliases, `:include:` files and
//! `.forward` files, never as envelope addresses, and run as the
//! controlling user: `default_user` for `/etc/mail/aliases`, the file's
//! owner for an `:include:`, the user for a `.forward`.

pub mod virtuser;

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::accounts::{Account, Accounts};
use crate::address;
use crate::aliases::split_list;
use crate::config::Config;
use crate::exit::ExitCode;
use crate::table::{Syntax, Table};
use crate::users::UserDb;
use virtuser::{Steps, TableError};

/// Deepest alias/include/forward nesting followed.
const MAX_DEPTH: usize = 20;
/// Most virtusertable rewrites of one address (sendmail's ruleset limit).
const MAX_REWRITES: usize = 50;
/// Largest `.forward` or `:include:` file read.
const MAX_LIST_FILE: usize = 1 << 20;

/// The user a program runs as or a file is written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// An error instead of a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// SMTP reply code (550, 553, 451, ...).
    pub code: u16,
    /// Enhanced status code (5.1.1, ...).
    pub dsn: String,
    /// The text sendmail prints after `ADDRESS... `.
    pub text: String,
    pub temporary: bool,
    /// The exit code `sendmail -bv` gives.
    pub exit: ExitCode,
}

impl Refusal {
    fn new(code: u16, dsn: &str, text: impl Into<String>, exit: ExitCode) -> Refusal {
        Refusal {
            code,
            dsn: dsn.to_string(),
            text: text.into(),
            temporary: dsn.starts_with('4'),
            exit,
        }
    }

    pub fn user_unknown() -> Refusal {
        Refusal::new(550, "5.1.1", "User unknown", ExitCode::NoUser)
    }

    fn from_table(e: TableError) -> Refusal {
        Refusal {
            code: e.code,
            dsn: e.dsn,
            text: e.text,
            temporary: e.temporary,
            exit: e.exit,
        }
    }
}

/// A final destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A local mailbox (sendmail's `local` mailer).
    Mailbox {
        account: Account,
        detail: Option<String>,
        /// The user as sendmail's local mailer is given it (what `-bv`
        /// shows): the login, or, when a backslash kept the name from the
        /// aliases, the name as written, lower-cased (`\bob`, `e\ve`).
        user: String,
    },
    /// `|command`, run by `/bin/sh -c` as `owner`.
    Program { command: String, owner: Owner },
    /// `/path`, appended to as `owner`.
    File { path: String, owner: Owner },
    /// Another host's address (sendmail's `esmtp` mailer): handed back to
    /// the queue.
    Remote { address: String, host: String },
    /// No destination.
    Error(Refusal),
}

impl Target {
    /// What makes two targets the same destination (duplicate suppression).
    pub fn key(&self, printable: &str) -> String {
        match self {
            Target::Mailbox { account, .. } => format!("mbox:{}", account.login),
            Target::Program { command, owner } => format!("prog:{}:{command}", owner.uid),
            Target::File { path, .. } => format!("file:{path}"),
            Target::Remote { address, .. } => format!("smtp:{}", address::dedup_key(address)),
            Target::Error(_) => format!("error:{printable}"),
        }
    }
}

/// One resolved recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Final {
    /// The address as sendmail prints it (`\bob`, `"|/usr/bin/x"`, ...).
    pub printable: String,
    pub target: Target,
    /// Envelope sender for this recipient when an `owner-LIST` alias says so.
    pub sender: Option<String>,
    /// The alias (or `.forward` owner) this came from, if any.
    pub via: Option<String>,
    /// The mailing list ([`crate::lists`]) this was reached through, if
    /// any: delivered under the list's sender with its headers.
    pub list: Option<String>,
}

/// One step of the resolution, for `-bv` and `mailroom explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub text: String,
    /// The file and line that decided it.
    pub source: Option<(PathBuf, usize)>,
    pub kind: StepKind,
}

/// Who prints a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Only `mailroom explain`.
    Explain,
    /// sendmail's own verbose lines: `sendmail -bv -v` and explain.
    Trace,
    /// An error as sendmail reports it (`nosuch... User unknown`):
    /// always printed by `-bv`.
    Error,
}

/// The outcome for one address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    pub finals: Vec<Final>,
    pub steps: Vec<Step>,
    /// The mailing lists the address leads to (also when only checking,
    /// where their members are not read).
    pub lists: Vec<String>,
    /// Only checking: an `:include:` was reached and not read, so no
    /// finals does not mean the address leads nowhere.
    pub includes_unread: bool,
}

impl Resolution {
    /// The refusals among the finals.
    pub fn errors(&self) -> impl Iterator<Item = (&Final, &Refusal)> {
        self.finals.iter().filter_map(|f| match &f.target {
            Target::Error(r) => Some((f, r)),
            _ => None,
        })
    }

    /// True when no final is an error.
    pub fn ok(&self) -> bool {
        self.errors().next().is_none()
    }

    /// What `sendmail -bv` prints for this resolution, and its exit code:
    /// errors (and with `verbose` the "aliased to" lines) as they
    /// happened, then one "deliverable" line per destination.
    pub fn verify_lines(&self, verbose: bool) -> (Vec<String>, ExitCode) {
        let mut lines = Vec::new();
        let mut exit = ExitCode::Ok;
        for s in &self.steps {
            match s.kind {
                StepKind::Error => lines.push(s.text.clone()),
                StepKind::Trace if verbose => lines.push(s.text.clone()),
                _ => {}
            }
        }
        for f in &self.finals {
            let what = match &f.target {
                Target::Mailbox { detail, user, .. } => match detail {
                    Some(d) => format!("mailer local, host {d}, user {user}"),
                    None => format!("mailer local, user {user}"),
                },
                Target::Program { .. } => format!("mailer prog, user {}", f.printable),
                Target::File { path, .. } => format!("mailer *file*, user {path}"),
                Target::Remote { address, host } => {
                    format!("mailer esmtp, host {host}, user {address}")
                }
                Target::Error(r) if r.temporary => {
                    format!("mailer *error*, host {}, user {} {}", r.dsn, r.code, r.text)
                }
                Target::Error(r) => {
                    exit = r.exit;
                    continue;
                }
            };
            lines.push(format!("{}... deliverable: {what}", f.printable));
        }
        (lines, exit)
    }
}

/// Where a list element came from: what it may name and who it runs as.
#[derive(Debug, Clone)]
struct Origin {
    /// Programs, files and includes allowed (not for envelope addresses).
    special: bool,
    /// From a group- or world-writable file: no programs or files.
    unsafe_source: bool,
    /// Who programs and files run as.
    owner: Option<Owner>,
    /// The alias or user whose list this is.
    via: Option<String>,
    /// Read `:include:` files as this user (a `.forward`'s owner).
    read_as: Option<Owner>,
    /// The mailing list this came through.
    list: Option<String>,
}

impl Origin {
    fn envelope() -> Origin {
        Origin {
            special: false,
            unsafe_source: false,
            owner: None,
            via: None,
            read_as: None,
            list: None,
        }
    }
}

/// The host's own domains (class `{w}`) and its virtual domains (class
/// `{VirtHost}`).  Cheap to load: two small files and the host name; the
/// interface addresses are only probed when an address literal is asked
/// about.
#[derive(Debug)]
pub struct Domains {
    local: HashSet<String>,
    virtual_domains: HashSet<String>,
    /// Where each local name came from (for explain).
    sources: Vec<(String, PathBuf, usize)>,
    probe_interfaces: bool,
    literals: std::sync::OnceLock<HashSet<String>>,
}

impl Domains {
    pub fn load(cfg: &Config) -> Domains {
        let lhn = cfg.paths.etc_mail("local-host-names");
        let mut local = HashSet::new();
        let mut sources = Vec::new();
        for (w, line) in crate::table::class::read_words(&lhn) {
            local.insert(w.clone());
            sources.push((w, lhn.clone(), line));
        }
        let host = cfg.hostname.to_ascii_lowercase();
        local.insert(host.clone());
        if let Some(short) = host.split('.').next() {
            local.insert(short.to_string());
        }
        if let Ok(h) = nix::unistd::gethostname()
            && let Some(h) = h.to_str()
        {
            local.insert(h.to_ascii_lowercase());
        }
        local.insert("localhost".to_string());
        let virtual_domains =
            crate::table::class::read_words(&cfg.paths.etc_mail("virtuser-domains"))
                .into_iter()
                .map(|(w, _)| w)
                .collect();
        Domains {
            local,
            virtual_domains,
            sources,
            probe_interfaces: cfg.probe_interfaces,
            literals: std::sync::OnceLock::new(),
        }
    }

    /// Is `domain` one of this host's names (class `{w}`)?
    pub fn is_local(&self, domain: &str) -> bool {
        let d = normalize_domain(domain);
        if d.starts_with('[') {
            return self.probe_interfaces
                && self
                    .literals
                    .get_or_init(|| interface_literals().into_iter().collect())
                    .contains(&d);
        }
        self.local.contains(&d)
    }

    /// Is `domain` a virtual domain (class `{VirtHost}`)?
    pub fn is_virtual(&self, domain: &str) -> bool {
        self.virtual_domains.contains(&normalize_domain(domain))
    }

    /// Could mail for `addr` stay on this host (unqualified, or a local or
    /// virtual domain)?
    pub fn is_local_address(&self, addr: &str) -> bool {
        match address::split_addr(addr) {
            (_, None) => true,
            (_, Some(d)) => self.is_local(d) || self.is_virtual(d),
        }
    }

    /// Where the local domain `d` was declared (file and line), if in a file.
    pub fn source(&self, d: &str) -> Option<(PathBuf, usize)> {
        let d = normalize_domain(d);
        self.sources
            .iter()
            .find(|(w, _, _)| *w == d)
            .map(|(_, p, l)| (p.clone(), *l))
    }
}

/// What the resolver knows: domains, tables, accounts.
#[derive(Debug)]
pub struct Resolver {
    cfg: Config,
    pub domains: Domains,
    pub virtusertable: Table,
    pub aliases: Table,
    pub accounts: Accounts,
    /// Only checking (submission, SMTP RCPT): `:include:` and `.forward`
    /// files are not read, so that a process without the privileges to
    /// read them does not take them for errors.
    check_only: bool,
    /// The SRS secret, read when first needed.
    srs: std::sync::OnceLock<Option<crate::srs::Secret>>,
}

/// The host's own interface addresses as address literals.
fn interface_literals() -> Vec<String> {
    let mut out = vec!["[127.0.0.1]".to_string(), "[ipv6:::1]".to_string()];
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(sa) = a.address else { continue };
            if let Some(v4) = sa.as_sockaddr_in() {
                out.push(format!("[{}]", v4.ip()));
            } else if let Some(v6) = sa.as_sockaddr_in6() {
                out.push(format!("[ipv6:{}]", v6.ip()).to_ascii_lowercase());
            }
        }
    }
    out
}

impl Resolver {
    /// Load everything resolution needs.  `may_rebuild`: this process may
    /// rebuild stale table indexes (it can write `/etc/mail`).
    pub fn new(cfg: &Config, may_rebuild: bool) -> Resolver {
        if may_rebuild {
            crate::change::recover_if_idle(cfg);
        }
        let users = UserDb::for_root(&cfg.paths);
        Resolver::with_users(cfg, users, may_rebuild)
    }

    pub fn with_users(cfg: &Config, users: UserDb, may_rebuild: bool) -> Resolver {
        Resolver {
            virtusertable: Table::open(
                &cfg.paths.etc_mail("virtusertable"),
                Syntax::Makemap,
                may_rebuild,
            ),
            aliases: Table::open(&cfg.paths.etc_mail("aliases"), Syntax::Aliases, may_rebuild),
            accounts: Accounts::load(cfg, users),
            domains: Domains::load(cfg),
            cfg: cfg.clone(),
            check_only: false,
            srs: std::sync::OnceLock::new(),
        }
    }

    /// A resolver that only checks addresses (see `check_only`).
    pub fn for_checking(cfg: &Config) -> Resolver {
        let mut r = Resolver::new(cfg, false);
        r.check_only = true;
        r
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The host's SRS secret ([`crate::srs`]), if it can be read.
    pub fn srs_secret(&self) -> Option<&crate::srs::Secret> {
        self.srs
            .get_or_init(|| crate::srs::Secret::load(&self.cfg))
            .as_ref()
    }

    /// Is `domain` one of this host's names (class `{w}`)?
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.domains.is_local(domain)
    }

    /// Is `domain` a virtual domain (class `{VirtHost}`)?
    pub fn is_virtual_domain(&self, domain: &str) -> bool {
        self.domains.is_virtual(domain)
    }

    /// Resolve an envelope recipient.
    pub fn resolve(&self, recipient: &str) -> Resolution {
        let mut run = Run {
            r: self,
            res: Resolution::default(),
            seen: HashSet::new(),
            loop_seen: false,
        };
        run.element(
            recipient.trim(),
            &Origin::envelope(),
            &mut Vec::new(),
            &None,
            0,
        );
        if run.res.finals.is_empty() && run.loop_seen {
            run.res.steps.push(Step {
                text: "aliasing/forwarding loop broken".to_string(),
                source: None,
                kind: StepKind::Error,
            });
            run.res.finals.push(Final {
                printable: recipient.trim().to_string(),
                target: Target::Error(Refusal::new(
                    554,
                    "5.4.6",
                    "aliasing/forwarding loop broken",
                    ExitCode::Usage,
                )),
                sender: None,
                via: None,
                list: None,
            });
        }
        run.res
    }

    fn owner_named(&self, name: &str) -> Option<Owner> {
        let u = self.accounts.users().by_name(name)?;
        Some(Owner {
            name: u.name,
            uid: u.uid,
            gid: u.gid,
            home: u.home,
        })
    }
}

/// Routing left in a local part of this host, which sendmail parses again
/// as an address: `a@b` itself, and the % hack, `user%host` → `user@host`
/// (at the last `%`).  Quoted characters route nowhere.
fn route_in(local: &str) -> Option<String> {
    if address::has_unquoted(local, '@') {
        return Some(local.to_string());
    }
    let p = address::unquoted_rfind(local, '%')?;
    Some(format!("{}@{}", &local[..p], &local[p + 1..]))
}

fn normalize_domain(d: &str) -> String {
    d.trim_end_matches('.').to_ascii_lowercase()
}

/// `"text"` wholly quoted → `text` (escapes undone); anything else as is.
fn unquote_whole(s: &str) -> String {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        address::unquote_local(s)
    } else {
        s.to_string()
    }
}

/// Is a list file safe: not group- or world-writable, in directories that
/// are not group- or world-writable (unless sticky)?
fn safe_file(path: &Path, meta: &std::fs::Metadata) -> bool {
    if meta.mode() & 0o022 != 0 {
        return false;
    }
    let mut dir = path.parent();
    while let Some(d) = dir {
        match std::fs::metadata(d) {
            Ok(m) if m.mode() & 0o022 != 0 && m.mode() & 0o1000 == 0 => return false,
            Ok(_) => {}
            Err(_) => return false,
        }
        dir = d.parent();
    }
    true
}

struct Run<'r> {
    r: &'r Resolver,
    res: Resolution,
    /// Final destinations already produced (duplicate suppression).
    seen: HashSet<String>,
    loop_seen: bool,
}

impl Run<'_> {
    fn step(&mut self, text: String, source: Option<(PathBuf, usize)>, trace: bool) {
        self.res.steps.push(Step {
            text,
            source,
            kind: if trace {
                StepKind::Trace
            } else {
                StepKind::Explain
            },
        });
    }

    fn push(&mut self, printable: &str, target: Target, sender: &Option<String>, origin: &Origin) {
        let key = target.key(printable);
        if !self.seen.insert(key) {
            self.step(format!("{printable}... duplicate suppressed"), None, true);
            return;
        }
        self.res.finals.push(Final {
            printable: printable.to_string(),
            target,
            sender: sender.clone(),
            via: origin.via.clone(),
            list: origin.list.clone(),
        });
    }

    fn refuse(&mut self, printable: &str, r: Refusal, origin: &Origin) {
        self.res.steps.push(Step {
            text: format!("{printable}... {}", r.text),
            source: None,
            kind: StepKind::Error,
        });
        self.push(printable, Target::Error(r), &None, origin);
    }

    /// One element of a list (or the envelope address itself).
    fn element(
        &mut self,
        printable: &str,
        origin: &Origin,
        chain: &mut Vec<String>,
        sender: &Option<String>,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            self.refuse(
                printable,
                Refusal::new(
                    554,
                    "5.4.6",
                    "aliasing/forwarding loop broken (too deep)",
                    ExitCode::Usage,
                ),
                origin,
            );
            return;
        }
        let plain = unquote_whole(printable.trim_end());
        let lower = plain.to_ascii_lowercase();
        if let Some(cmd) = plain.strip_prefix('|') {
            return self.program(printable, cmd.trim(), origin);
        }
        if plain.starts_with('/') {
            return self.file(printable, &plain, origin);
        }
        if lower.starts_with(":include:") {
            let path = plain[":include:".len()..].trim().to_string();
            return self.include(printable, &path, origin, chain, sender, depth);
        }
        if plain.starts_with('\\') {
            // \user: this user's mailbox, no aliases, no .forward
            return self.user(printable, &plain, false, origin, chain, sender, depth);
        }
        self.address(printable, printable, origin, chain, sender, depth, 0);
    }

    fn program(&mut self, printable: &str, command: &str, origin: &Origin) {
        if !origin.special {
            return self.refuse(
                printable,
                Refusal::new(
                    550,
                    "5.7.1",
                    "Cannot mail directly to programs",
                    ExitCode::Usage,
                ),
                origin,
            );
        }
        if origin.unsafe_source || !self.r.cfg.allow_programs {
            return self.refuse(
                printable,
                Refusal::new(
                    550,
                    "5.7.1",
                    format!("Address {printable} is unsafe for mailing to programs"),
                    ExitCode::Unavailable,
                ),
                origin,
            );
        }
        match origin.owner.clone() {
            Some(owner) => self.push(
                printable,
                Target::Program {
                    command: command.to_string(),
                    owner,
                },
                &None,
                origin,
            ),
            None => self.refuse(
                printable,
                Refusal::new(
                    451,
                    "4.3.0",
                    "no user to run the program as (default_user)",
                    ExitCode::TempFail,
                ),
                origin,
            ),
        }
    }

    fn file(&mut self, printable: &str, path: &str, origin: &Origin) {
        if !origin.special {
            return self.refuse(
                printable,
                Refusal::new(
                    550,
                    "5.7.1",
                    "Cannot mail directly to files",
                    ExitCode::Usage,
                ),
                origin,
            );
        }
        if origin.unsafe_source || !self.r.cfg.allow_files {
            return self.refuse(
                printable,
                Refusal::new(
                    550,
                    "5.7.1",
                    format!("Address {printable} is unsafe for mailing to files"),
                    ExitCode::Unavailable,
                ),
                origin,
            );
        }
        match origin.owner.clone() {
            Some(owner) => self.push(
                printable,
                Target::File {
                    path: path.to_string(),
                    owner,
                },
                &None,
                origin,
            ),
            None => self.refuse(
                printable,
                Refusal::new(
                    451,
                    "4.3.0",
                    "no user to write the file as (default_user)",
                    ExitCode::TempFail,
                ),
                origin,
            ),
        }
    }

    fn include(
        &mut self,
        printable: &str,
        path: &str,
        origin: &Origin,
        chain: &mut Vec<String>,
        sender: &Option<String>,
        depth: usize,
    ) {
        if !origin.special {
            return self.refuse(
                printable,
                Refusal::new(
                    550,
                    "5.7.1",
                    "Cannot mail directly to :include:s",
                    ExitCode::Usage,
                ),
                origin,
            );
        }
        self.step(format!("{printable}... including file {path}"), None, true);
        if self.r.check_only {
            self.res.includes_unread = true;
            return;
        }
        let p = self.r.cfg.paths.resolve(path);
        let (uid, gid) = match &origin.read_as {
            Some(o) => (o.uid, o.gid),
            None => (0, 0),
        };
        let (bytes, meta) = match crate::privs::read_file_as(&p, uid, gid, MAX_LIST_FILE) {
            Ok(x) => x,
            Err(e) => {
                let why = crate::exit::io_reason(&e);
                let temporary = matches!(
                    e.raw_os_error(),
                    Some(libc::EIO) | Some(libc::ENFILE) | Some(libc::EMFILE)
                );
                let mut r = Refusal::new(
                    550,
                    "5.1.1",
                    format!("Cannot open {path}: {why}"),
                    ExitCode::Usage,
                );
                if temporary {
                    r = Refusal::new(
                        451,
                        "4.3.0",
                        format!("Cannot open {path}: {why}"),
                        ExitCode::TempFail,
                    );
                }
                return self.refuse(printable, r, origin);
            }
        };
        // Programs and files named in the include run as its owner; a
        // root-owned include is treated like the aliases file itself.
        let owner = if meta.uid() == 0 {
            origin.owner.clone()
        } else {
            self.r.accounts.users().by_uid(meta.uid()).map(|u| Owner {
                name: u.name,
                uid: u.uid,
                gid: u.gid,
                home: u.home,
            })
        };
        let child = Origin {
            special: true,
            unsafe_source: origin.unsafe_source || !safe_file(&p, &meta),
            owner,
            via: origin.via.clone(),
            read_as: origin.read_as.clone(),
            list: origin.list.clone(),
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            self.step(
                format!("{path}: line {}: sending to {l}", i + 1),
                Some((p.clone(), i + 1)),
                true,
            );
            for e in split_list(l) {
                self.element(&e, &child, chain, sender, depth + 1);
            }
        }
    }

    /// An address: domains and the virtusertable, then a local name.
    #[allow(clippy::too_many_arguments)]
    fn address(
        &mut self,
        printable: &str,
        text: &str,
        origin: &Origin,
        chain: &mut Vec<String>,
        sender: &Option<String>,
        depth: usize,
        rewrites: usize,
    ) {
        let mb = match address::parse_one(text) {
            Ok(m) => m,
            Err(e) => {
                return self.refuse(
                    printable,
                    Refusal::new(553, "5.1.3", e.to_string(), ExitCode::Usage),
                    origin,
                );
            }
        };
        if mb.addr.is_empty() {
            return self.refuse(
                printable,
                Refusal::new(553, "5.1.3", "User address required", ExitCode::Usage),
                origin,
            );
        }
        let (local_raw, domain) = address::split_addr(&mb.addr);
        if address::has_unquoted(local_raw, '@') {
            return self.refuse(
                printable,
                Refusal::new(553, "5.1.3", "Invalid route address", ExitCode::Usage),
                origin,
            );
        }
        let r = self.r;
        let d = domain.map(normalize_domain);
        let is_local = d.as_deref().is_none_or(|d| r.domains.is_local(d));
        // On this host a local part is read as sendmail's Parse0 reads it:
        // a lone quoted string loses its quotes, and routing left in it
        // (`"a@b"`, `a%b`) is followed.  Other domains keep it as written.
        let local = if is_local {
            address::dequote_local(local_raw)
        } else {
            std::borrow::Cow::Borrowed(local_raw)
        };
        if local != local_raw {
            self.step(
                format!("{local_raw} is the local name {local} (quotes removed)"),
                None,
                false,
            );
        }
        let Some((d, domain)) = d.zip(domain) else {
            if let Some(next) = route_in(&local) {
                self.step(format!("{} is {next} (routed)", mb.addr), None, false);
                return self.address(printable, &next, origin, chain, sender, depth, rewrites + 1);
            }
            return self.local_name(printable, &local, origin, chain, sender, depth);
        };
        let is_virtual = r.domains.is_virtual(&d);
        if !is_local && !is_virtual {
            self.step(format!("domain {d} is not local: relay to it"), None, false);
            return self.push(
                printable,
                Target::Remote {
                    address: mb.addr.clone(),
                    host: domain.to_string(),
                },
                sender,
                origin,
            );
        }
        if is_local {
            let src = r.domains.source(&d);
            self.step(format!("domain {d} is local"), src, false);
        } else {
            self.step(
                format!("domain {d} is a virtual domain (virtuser-domains)"),
                None,
                false,
            );
        }
        // A bounce to an address SRS gave a forwarded message's sender.
        if crate::srs::is_srs(&local)
            && let Some(secret) = r.srs_secret()
        {
            return match crate::srs::reverse(secret, &local, crate::date::now()) {
                Ok(orig) => {
                    self.step(format!("{} is SRS for {orig}", mb.addr), None, false);
                    let host = address::split_addr(&orig).1.unwrap_or("").to_string();
                    self.push(
                        printable,
                        Target::Remote {
                            address: orig,
                            host,
                        },
                        sender,
                        origin,
                    )
                }
                Err(why) => {
                    let why = match why {
                        crate::srs::Invalid::Malformed => "malformed",
                        crate::srs::Invalid::BadHash => "bad hash",
                        crate::srs::Invalid::Expired => "expired",
                    };
                    self.step(format!("{}: SRS address {why}", mb.addr), None, false);
                    self.refuse(printable, Refusal::user_unknown(), origin)
                }
            };
        }
        if is_local && let Some(next) = route_in(&local) {
            self.step(format!("{} is {next} (routed)", mb.addr), None, false);
            return self.address(printable, &next, origin, chain, sender, depth, rewrites + 1);
        }
        if rewrites > MAX_REWRITES {
            for ruleset in ["canonify", "parse"] {
                self.res.steps.push(Step {
                    text: format!("rewrite: excessive recursion (max 50), ruleset {ruleset}"),
                    source: None,
                    kind: StepKind::Error,
                });
            }
            return self.refuse(
                printable,
                Refusal::new(550, "5.1.1", "User unknown", ExitCode::Software),
                origin,
            );
        }
        if !r.virtusertable.is_empty()
            && let Some(m) = virtuser::lookup(&r.virtusertable, &local, &d, Steps::User)
        {
            return self.virtuser_value(
                printable, &m.key, &m.value, m.hit.line, origin, chain, sender, depth, rewrites,
            );
        }
        // mailroom's virtual accounts beat the domain's catch-all.
        let plain_local = address::unquote_local(&local);
        let base_local = plain_local.split('+').next().unwrap_or(&plain_local);
        let vlogin = format!("{base_local}@{d}");
        if let Some(acct) = r.accounts.virtual_account(&vlogin) {
            self.step(
                format!("{vlogin} is a virtual mailbox account (passwd)"),
                None,
                false,
            );
            let detail = plain_local.split_once('+').map(|(_, x)| x.to_string());
            return self.push(
                printable,
                Target::Mailbox {
                    user: acct.login.clone(),
                    account: acct,
                    detail,
                },
                sender,
                origin,
            );
        }
        if !r.virtusertable.is_empty()
            && let Some(m) = virtuser::lookup(&r.virtusertable, &local, &d, Steps::Domain)
        {
            return self.virtuser_value(
                printable, &m.key, &m.value, m.hit.line, origin, chain, sender, depth, rewrites,
            );
        }
        if is_local {
            self.step(
                format!("no virtusertable entry for {}: local name {local}", mb.addr),
                None,
                false,
            );
            return self.local_name(printable, &local, origin, chain, sender, depth);
        }
        self.step(
            format!("no virtusertable entry for {}: relay to {d}", mb.addr),
            None,
            false,
        );
        self.push(
            printable,
            Target::Remote {
                address: mb.addr.clone(),
                host: format!("{d}."),
            },
            sender,
            origin,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn virtuser_value(
        &mut self,
        printable: &str,
        key: &str,
        value: &str,
        line: usize,
        origin: &Origin,
        chain: &mut Vec<String>,
        sender: &Option<String>,
        depth: usize,
        rewrites: usize,
    ) {
        let src = Some((self.r.virtusertable.path().to_path_buf(), line));
        self.step(format!("virtusertable: {key} -> {value}"), src, false);
        if let Some(spec) = value.strip_prefix("error:") {
            return self.refuse(
                printable,
                Refusal::from_table(virtuser::parse_error(spec)),
                origin,
            );
        }
        if split_list(value).len() > 1 {
            return self.refuse(
                printable,
                Refusal::new(553, "5.1.3", "Invalid route address", ExitCode::Usage),
                origin,
            );
        }
        // Parsed again from the start, as sendmail does (ruleset Recurse).
        self.address(
            printable,
            value.trim(),
            origin,
            chain,
            sender,
            depth,
            rewrites + 1,
        );
    }

    /// A local name, as sendmail's parse rules leave it (quotes removed
    /// where [`address::dequote_local`] removes them): aliases, then users.
    /// A backslash anywhere in it (`\\bob`, `"e\\ve"`) skips the aliases,
    /// as in sendmail.
    fn local_name(
        &mut self,
        printable: &str,
        name: &str,
        origin: &Origin,
        chain: &mut Vec<String>,
        sender: &Option<String>,
        depth: usize,
    ) {
        if name.is_empty() {
            return self.refuse(
                printable,
                Refusal::new(553, "5.1.3", "User address required", ExitCode::Usage),
                origin,
            );
        }
        if name.contains('\\') {
            return self.user(printable, name, false, origin, chain, sender, depth);
        }
        let lname = name.to_ascii_lowercase();
        let r = self.r;
        let mut keys = vec![lname.clone()];
        if let Some(p) = address::unquoted_find(&lname, '+') {
            keys.push(format!("{}+*", &lname[..p]));
            keys.push(lname[..p].to_string());
        }
        for key in keys {
            let Some(hit) = r.aliases.get(&key) else {
                continue;
            };
            if chain.contains(&key) {
                self.loop_seen = true;
                self.step(format!("{printable}... duplicate suppressed"), None, true);
                return;
            }
            let src = Some((r.aliases.path().to_path_buf(), hit.line));
            self.step(
                format!("{printable}... aliased to {}", hit.value),
                src,
                true,
            );
            // owner-LIST sends the list's mail on behalf of its owner.
            let owner_key = format!("owner-{key}");
            let list_sender = match r.aliases.get(&owner_key) {
                Some(o) => {
                    let parts = split_list(o.value);
                    let s = if parts.len() == 1 && !parts[0].starts_with(['|', '/', '"', ':']) {
                        parts[0].trim_start_matches('\\').to_string()
                    } else {
                        owner_key.clone()
                    };
                    Some(s)
                }
                None => sender.clone(),
            };
            let list = if crate::lists::is_list(&r.cfg, &key) {
                self.res.lists.push(key.clone());
                Some(key.clone())
            } else {
                origin.list.clone()
            };
            let child = Origin {
                special: true,
                unsafe_source: false,
                owner: r.owner_named(&r.cfg.default_user),
                via: Some(key.clone()),
                read_as: None,
                list,
            };
            let elements = split_list(hit.value);
            chain.push(key.clone());
            for e in elements {
                let e_name = address::dequote_local(e.trim_end());
                // An alias naming itself delivers to the user of that name
                // (sendmail keeps the alias's own address for it).
                if e_name.eq_ignore_ascii_case(&key) {
                    self.user(
                        printable,
                        &e_name,
                        true,
                        &child,
                        chain,
                        &list_sender,
                        depth + 1,
                    );
                } else {
                    self.element(&e, &child, chain, &list_sender, depth + 1);
                }
            }
            chain.pop();
            return;
        }
        self.user(printable, name, true, origin, chain, sender, depth);
    }

    /// A user's mailbox, after `.forward` when `forward` allows it.
    /// `name` is the local name as written, quotes and backslashes and all
    /// (`\\bob`): looked up without them, shown with them.
    #[allow(clippy::too_many_arguments)]
    fn user(
        &mut self,
        printable: &str,
        name: &str,
        forward: bool,
        origin: &Origin,
        chain: &mut Vec<String>,
        sender: &Option<String>,
        depth: usize,
    ) {
        let escaped = name.contains('\\');
        let forward = forward && !escaped;
        let lname = address::unquote_local(name).to_ascii_lowercase();
        let (user, detail) = match lname.split_once('+') {
            Some((u, d)) => (u.to_string(), Some(d.to_string()).filter(|d| !d.is_empty())),
            None => (lname.clone(), None),
        };
        let r = self.r;
        let account = r
            .accounts
            .system(&user)
            .or_else(|| r.accounts.virtual_account(&user));
        let Some(account) = account else {
            self.step(
                format!("{user}: no such system user or virtual account"),
                None,
                false,
            );
            return self.refuse(printable, Refusal::user_unknown(), origin);
        };
        if forward
            && !account.is_virtual
            && r.cfg.forward_files
            && !r.check_only
            && !chain.contains(&format!("~{user}"))
            && let Some(list) = self.read_forward(&account)
        {
            let owner = Owner {
                name: account.owner.name.clone(),
                uid: account.owner.uid,
                gid: account.owner.gid,
                home: account.owner.home.clone(),
            };
            let fwd_path = PathBuf::from(&account.owner.home).join(".forward");
            self.step(
                format!("{printable}... forwarded to {}", list.join(", ")),
                Some((fwd_path, 1)),
                false,
            );
            let child = Origin {
                special: true,
                unsafe_source: false,
                owner: Some(owner.clone()),
                via: Some(user.clone()),
                read_as: Some(owner),
                list: origin.list.clone(),
            };
            chain.push(format!("~{user}"));
            for e in list {
                let e_plain = unquote_whole(e.trim_end());
                // "bob" in bob's own .forward means bob's mailbox.
                let bare = e_plain.trim_start_matches('\\');
                if bare.eq_ignore_ascii_case(&user) {
                    self.user(&e, &e_plain, false, &child, chain, sender, depth + 1);
                } else {
                    self.element(&e, &child, chain, sender, depth + 1);
                }
            }
            chain.pop();
            return;
        }
        // sendmail's local mailer gets the name as written when a backslash
        // kept it from the aliases (`\\bob`), else the login.
        let user = if escaped {
            let shown = name.to_ascii_lowercase();
            match address::unquoted_find(&shown, '+') {
                Some(p) => shown[..p].to_string(),
                None => shown,
            }
        } else {
            account.login.clone()
        };
        self.push(
            printable,
            Target::Mailbox {
                account,
                detail,
                user,
            },
            sender,
            origin,
        );
    }

    /// The entries of a user's `~/.forward`, read as the user; `None` when
    /// there is none or it must be ignored (not the user's, group- or
    /// world-writable).
    fn read_forward(&mut self, account: &Account) -> Option<Vec<String>> {
        let home = self.r.cfg.paths.resolve(&account.owner.home);
        let path = home.join(".forward");
        let (bytes, meta) =
            crate::privs::read_file_as(&path, account.owner.uid, account.owner.gid, MAX_LIST_FILE)
                .ok()?;
        let me = nix::unistd::geteuid().as_raw();
        let owner_ok =
            meta.uid() == account.owner.uid || meta.uid() == 0 || (me != 0 && meta.uid() == me);
        if !owner_ok || meta.mode() & 0o022 != 0 {
            self.step(
                format!(
                    "{}: ignored (not owned by {} or group/world writable)",
                    path.display(),
                    account.login
                ),
                None,
                false,
            );
            crate::log::warning(
                None,
                &format!("forward: {}: unsafe, ignored", path.display()),
            );
            return None;
        }
        let text = String::from_utf8_lossy(&bytes);
        let list: Vec<String> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(split_list)
            .collect();
        if list.is_empty() { None } else { Some(list) }
    }
}
