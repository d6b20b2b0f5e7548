//! The walk: one address (or list element) after another through the
//! steps the module text describes, recording each step, the first
//! deciding entry and the destinations.  Here the envelope and list
//! elements, domains and the virtusertable (steps 1 and 2); local names
//! (steps 3 and 4) in `local`.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::address;
use crate::aliases::split_list;
use crate::exit::ExitCode;

use super::domains::normalize_domain;
use super::outcome::{
    DecidedBy, Decision, Final, Owner, Refusal, Resolution, Step, StepKind, Target,
};
use super::virtuser::{self, Steps};
use super::{MAX_DEPTH, MAX_REWRITES, Resolver};

/// Where a list element came from: what it may name and who it runs as.
#[derive(Debug, Clone)]
pub(super) struct Origin {
    /// Programs, files and includes allowed (not for envelope addresses).
    pub(super) special: bool,
    /// From a group- or world-writable file: no programs or files.
    pub(super) unsafe_source: bool,
    /// Who programs and files run as.
    pub(super) owner: Option<Owner>,
    /// The alias or user whose list this is.
    pub(super) via: Option<String>,
    /// Read `:include:` files as this user (a `.forward`'s owner).
    pub(super) read_as: Option<Owner>,
    /// The mailing list this came through.
    pub(super) list: Option<String>,
}

impl Origin {
    pub(super) fn envelope() -> Origin {
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

pub(super) struct Run<'r> {
    pub(super) r: &'r Resolver,
    pub(super) res: Resolution,
    /// Final destinations already produced (duplicate suppression).
    pub(super) seen: HashSet<String>,
    pub(super) loop_seen: bool,
}

impl Run<'_> {
    pub(super) fn step(&mut self, text: String, source: Option<(PathBuf, usize)>, trace: bool) {
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

    pub(super) fn push(
        &mut self,
        printable: &str,
        target: Target,
        sender: &Option<String>,
        origin: &Origin,
    ) {
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

    pub(super) fn refuse(&mut self, printable: &str, r: Refusal, origin: &Origin) {
        self.res.steps.push(Step {
            text: format!("{printable}... {}", r.text),
            source: None,
            kind: StepKind::Error,
        });
        self.push(printable, Target::Error(r), &None, origin);
    }

    /// Note the entry that decided where the address goes, unless one
    /// already did (only the first counts: [`Resolution::decision`]).
    pub(super) fn decide(&mut self, by: DecidedBy, source: Option<(PathBuf, usize)>, exact: bool) {
        if self.res.decision.is_none() {
            self.res.decision = Some(Decision { by, source, exact });
        }
    }

    fn decide_virtuser(&mut self, m: &virtuser::Match) {
        let source = Some((self.r.virtusertable.path().to_path_buf(), m.hit.line));
        self.decide(
            DecidedBy::Virtusertable {
                key: m.key.clone(),
                value: m.hit.value.to_string(),
                catch_all: m.catch_all,
            },
            source,
            m.exact,
        );
    }

    pub(super) fn decide_virtual(&mut self, login: &str, exact: bool) {
        let r = self.r;
        let source = r
            .accounts
            .virtual_entry(login)
            .map(|e| (r.cfg.paths.etc_mail("passwd"), e.line));
        self.decide(
            DecidedBy::VirtualAccount {
                login: login.to_string(),
            },
            source,
            exact,
        );
    }

    /// One element of a list (or the envelope address itself).
    pub(super) fn element(
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
            self.decide_virtuser(&m);
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
            self.decide_virtual(&acct.login, base_local == plain_local);
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
            self.decide_virtuser(&m);
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

/// `"text"` wholly quoted → `text` (escapes undone); anything else as is.
pub(super) fn unquote_whole(s: &str) -> String {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        address::unquote_local(s)
    } else {
        s.to_string()
    }
}
