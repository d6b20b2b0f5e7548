//! What resolution finds for an address: its destinations ([`Final`],
//! [`Target`]), the steps that led there ([`Step`]), what `sendmail -bv`
//! prints of them, and the table entry that first decided where it goes
//! ([`Decision`]).

use std::path::PathBuf;

use crate::accounts::Account;
use crate::address;
use crate::exit::ExitCode;

use super::virtuser::TableError;

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
    pub(super) fn new(code: u16, dsn: &str, text: impl Into<String>, exit: ExitCode) -> Refusal {
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

    pub(super) fn from_table(e: TableError) -> Refusal {
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
    /// The table entry that first decided where the address goes.
    pub decision: Option<Decision>,
}

/// The entry that first decided where an address goes: a virtusertable
/// key, a virtual account, an aliases name or a system user.  With
/// [`Decision::owns`] it is what makes an address taken: the admin
/// commands refuse to create an address some entry already owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub by: DecidedBy,
    /// The entry's file and line (`None`: the system's user database).
    pub source: Option<(PathBuf, usize)>,
    /// Found under the address itself: not through a `+detail` form of
    /// it, and not a domain's catch-all.
    pub exact: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecidedBy {
    /// A virtusertable key (`catch_all`: `@D` or another domain-wide key);
    /// the value as the entry has it.
    Virtusertable {
        key: String,
        value: String,
        catch_all: bool,
    },
    /// A virtual account of `/etc/mail/passwd`.
    VirtualAccount { login: String },
    /// An aliases name, and its value.
    Alias { name: String, value: String },
    /// A system user.
    SystemUser { name: String, uid: u32 },
}

impl Decision {
    /// Does this entry own the address: found under the address itself,
    /// not a domain-wide key?
    pub fn owns(&self) -> bool {
        self.exact
            && !matches!(
                self.by,
                DecidedBy::Virtusertable {
                    catch_all: true,
                    ..
                }
            )
    }
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
