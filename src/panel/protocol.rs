//! The panel's one request, one answer: what the unprivileged web front
//! end ([`super`]) may ask the root helper (`panel-helper`,
//! [`crate::admin::panel`]), and the only thing it can ask it.
//!
//! The front end holds nothing but the session cookie.  The helper owns
//! the sessions, checks the password (through [`crate::login::Door`]),
//! decides who may touch which object, and makes every change with the
//! `mailroom` command's own code under its lock and journal.  A front end
//! that was taken over can therefore do nothing a logged-in browser could
//! not: it never sees a hash, never names the acting user, and every
//! object it names is checked again here.
//!
//! ## On the wire
//!
//! The front end runs the helper once per request, writes the request on
//! its standard input and closes it, and reads the answer from its
//! standard output until end of file.  Both are lines; each line is one
//! `application/x-www-form-urlencoded` record (`key=value&key=value`,
//! the form crate's encoding, so any byte of a value survives).
//!
//! A **request** is one line, at most [`MAX_REQUEST`] bytes:
//!
//! ```text
//! op=mailbox.add&session=TOKEN&csrf=TOKEN&from=192.0.2.7&seen=STAMP&address=a%40shop.example&password=...
//! ```
//!
//! * `op`: one of [`Op`] (`op=login` needs no session).
//! * `session`: the token from the cookie; `csrf`: the form's token (every
//!   change; never for reads); `from`: the client's address, for the
//!   audit line and the login log.
//! * `seen`: on a change to an object that already exists, the `stamp`
//!   the page showed it with; the helper refuses with `stale` when the
//!   object changed since (someone else's change is never overwritten
//!   silently).  Absent: no such check (adding a new object).
//! * The rest: the operation's own fields ([`Op`]'s table).
//!
//! An **answer** is a first line with `answer=` and its fields, then zero
//! or more record lines, each with `kind=`:
//!
//! ```text
//! answer=done&note=added+mailbox+a%40shop.example
//! answer=data
//! kind=mailbox&address=a%40shop.example&used=1200&quota=10485760&stamp=9f2c...
//! ```
//!
//! See [`Answer`] for the first lines and [`Op`] for which records each
//! read returns.

use std::fmt;

/// The longest request line (a bulk import's text included).
pub const MAX_REQUEST: usize = 1 << 20;

/// The longest answer the front end reads (a list of thousands of
/// mailboxes fits many times over).
pub const MAX_ANSWER: usize = 64 << 20;

/// One record: an ordered list of fields.  A key may repeat (a list of
/// targets, the notes of a change).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record(pub Vec<(String, String)>);

impl Record {
    pub fn new() -> Record {
        Record(Vec::new())
    }

    /// Add a field (builder style).
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Record {
        self.push(key, value);
        self
    }

    pub fn push(&mut self, key: &str, value: impl Into<String>) {
        self.0.push((key.to_string(), value.into()));
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `key`, or "".
    pub fn str(&self, key: &str) -> &str {
        self.get(key).unwrap_or("")
    }

    /// Every value of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// One line, without its newline.
    pub fn encode(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.0 {
            s.append_pair(k, v);
        }
        s.finish()
    }

    /// One line (a trailing newline is ignored).
    pub fn decode(line: &str) -> Record {
        let line = line.strip_suffix('\n').unwrap_or(line);
        Record(
            form_urlencoded::parse(line.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
}

/// What the front end may ask.  Each request names its operation with
/// `op=NAME`; the fields are those of the table, all strings.
///
/// | op | who may | fields | answer |
/// |----|---------|--------|--------|
/// | `login` | anyone | `name`, `password` | `session` or `refused` |
/// | `logout` | a session | – (its `csrf`, as a change) | `done` |
/// | `whoami` | a session | – | `session` (same token) |
/// | `domains` | box admin: all; domain admin: theirs | – | `data`: `domain` records |
/// | `domain.add` / `domain.remove` | box admin | `domain`; add: `virtual` (`yes`: a virtual domain) | `done` |
/// | `domain.show` | admin of `domain` | `domain` | `data`: `mailbox`, `alias`, `forward`, `catchall`, `autoreply`, `list`, `filter` records of that domain |
/// | `queue` | admin of `domain` | `domain` | `data`: `queued` records |
/// | `mailbox.add` | admin of its domain | `address`, `password`, `quota` (may be empty), `virtual` (`yes`: an account of `/etc/mail/passwd`; absent: a system user, as the CLI's default) | `done` |
/// | `mailbox.remove` | admin of its domain | `address` | `done` |
/// | `mailbox.password` | admin of its domain | `address`, `password` | `done` |
/// | `mailbox.quota` | admin of its domain | `address`, `quota` | `done` |
/// | `import` | admin of `domain` | `domain`, `text` (the CLI's import format; every line must be of that domain, targets addresses or names), `virtual` (as `mailbox.add`) | `done` |
/// | `alias.set` / `alias.remove` | admin of its domain | `address`, `target` (repeated) | `done` |
/// | `forward.set` | admin of its domain, or its own mailbox user | `address`, `target` (repeated), `keep` (`yes`/absent) | `done` |
/// | `forward.clear` | same | `address` | `done` |
/// | `catchall.set` / `catchall.clear` | admin of `domain` | `domain`, `target` (repeated) | `done` |
/// | `autoreply.set` | as forward | `address`, `subject`, `text`, `from`, `until` (dates `YYYY-MM-DD` or empty; this `from` is the request's second: the first is the client's address), `interval` (optional, the CLI's `--interval`, default `7d`) | `done` |
/// | `autoreply.clear` | as forward | `address` | `done` |
/// | `list.create` / `list.delete` | admin of its domain | `address` (the list's), `member` (repeated, create only), `owner` (create only; optional: the session's login name), `posting` (create only: `anyone`, else members only) | `done` |
/// | `list.add` / `list.drop` | admin of its domain | `address`, `member` (repeated) | `done` |
/// | `filter.set` / `filter.clear` | admin of the mailbox's domain, or the mailbox user | `address`, `rules` (the filter file's text) | `done` |
/// | `me` | a mailbox user (anyone logged in: their own mailbox) | – | `data`: one `me` record, plus its `forward`, `autoreply`, `filter` |
/// | `password.change` | the mailbox user, for themself | `old`, `new` | `session` (a new token: the old one ends) |
///
/// Every object named must be one the session may touch; one it may not
/// gets exactly the answer a name that does not exist gets (`missing`).
/// An operation not in this table is `failed`.  Targets and members set
/// here are addresses or local names only (programs, files and
/// `:include:` are the `mailroom` command's, as root).  A `seen` stamp is
/// checked for: `mailbox.remove`/`password`/`quota` (the `mailbox`
/// record), `alias.*`, `forward.*`, `catchall.*`, `autoreply.*`,
/// `list.delete`/`add`/`drop`, `filter.*` (their records); a `seen` of
/// `none` means "there was none".  Setting an alias that exists replaces
/// it (the CLI's remove, then its add, in one change).
///
/// Records (`kind=`…), each with a `stamp` (see `seen` above) where it is
/// something that can be changed:
///
/// | kind | fields |
/// |------|--------|
/// | `domain` | `domain`, `mailboxes` (count) |
/// | `mailbox` | `address`, `used` (bytes), `quota` (bytes, 0 = none), `stamp` |
/// | `alias` | `address`, `target` (repeated), `stamp` |
/// | `forward` | `address`, `target` (repeated), `keep` (`yes`/`no`), `stamp` |
/// | `catchall` | `domain`, `target` (repeated), `stamp` |
/// | `autoreply` | `address`, `subject`, `text`, `from`, `until`, `interval`, `stamp` |
/// | `list` | `address`, `member` (repeated), `posting` (`members`/`anyone`), `stamp` |
/// | `filter` | `address`, `rules`, `stamp` |
/// | `queued` | `id`, `from`, `to` (repeated), `age` (seconds), `size`, `attempts`, `error` (the last) |
/// | `me` | `login`, `address`, `used`, `quota`, `spam_folder`, `spam_folder_at`, `spam_discard_over` (the box's spam rule; a score, or empty when off) |
pub struct Op;

/// A session's role, as `whoami` and `login` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Manages everything, domains included.
    Admin,
    /// Manages the domains in `domain` fields of the `session` answer.
    DomainAdmin,
    /// Manages only their own mailbox.
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::DomainAdmin => "domain-admin",
            Role::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "domain-admin" => Some(Role::DomainAdmin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first line of an answer (`answer=NAME`), and what comes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Logged in (or still logged in): `session`, `csrf`, `login`, `role`,
    /// `domain` (repeated: the domains a domain admin manages),
    /// `expires` (Unix seconds).
    Session {
        session: String,
        csrf: String,
        login: String,
        role: Role,
        domains: Vec<String>,
        expires: i64,
    },
    /// A change was made; `note` (repeated): what the `mailroom` command
    /// would have printed.
    Done { notes: Vec<String> },
    /// A read: the records follow.
    Data(Vec<Record>),
    /// A login that did not succeed: the same for every reason.
    Refused,
    /// No valid session (none, unknown, expired, logged out), or a change
    /// without the session's CSRF token: the front end shows the login.
    NoSession,
    /// The object named does not exist, or this session may not touch
    /// it: one answer for both.
    Missing,
    /// The object changed since the page showed it (`seen` ≠ its stamp):
    /// `message` says what it is now.
    Stale { message: String },
    /// The change was refused: `message` is the `mailroom` command's own
    /// error text (without its `mailroom: ` prefix).
    Failed { message: String },
}

impl Answer {
    /// The answer as lines, newline-terminated.
    pub fn encode(&self) -> String {
        let mut first = Record::new();
        let mut rest: &[Record] = &[];
        match self {
            Answer::Session {
                session,
                csrf,
                login,
                role,
                domains,
                expires,
            } => {
                first.push("answer", "session");
                first.push("session", session.clone());
                first.push("csrf", csrf.clone());
                first.push("login", login.clone());
                first.push("role", role.as_str());
                for d in domains {
                    first.push("domain", d.clone());
                }
                first.push("expires", expires.to_string());
            }
            Answer::Done { notes } => {
                first.push("answer", "done");
                for n in notes {
                    first.push("note", n.clone());
                }
            }
            Answer::Data(records) => {
                first.push("answer", "data");
                rest = records;
            }
            Answer::Refused => first.push("answer", "refused"),
            Answer::NoSession => first.push("answer", "nosession"),
            Answer::Missing => first.push("answer", "missing"),
            Answer::Stale { message } => {
                first.push("answer", "stale");
                first.push("message", message.clone());
            }
            Answer::Failed { message } => {
                first.push("answer", "failed");
                first.push("message", message.clone());
            }
        }
        let mut out = first.encode();
        out.push('\n');
        for r in rest {
            out.push_str(&r.encode());
            out.push('\n');
        }
        out
    }

    /// Read an answer; `None` when it is not one (a helper that crashed
    /// or printed something else).
    pub fn decode(text: &str) -> Option<Answer> {
        let mut lines = text.lines();
        let first = Record::decode(lines.next()?);
        let message = || first.str("message").to_string();
        Some(match first.get("answer")? {
            "session" => Answer::Session {
                session: first.get("session")?.to_string(),
                csrf: first.get("csrf")?.to_string(),
                login: first.get("login")?.to_string(),
                role: Role::parse(first.get("role")?)?,
                domains: first.all("domain").map(str::to_string).collect(),
                expires: first.get("expires")?.parse().ok()?,
            },
            "done" => Answer::Done {
                notes: first.all("note").map(str::to_string).collect(),
            },
            "data" => Answer::Data(lines.map(Record::decode).collect()),
            "refused" => Answer::Refused,
            "nosession" => Answer::NoSession,
            "missing" => Answer::Missing,
            "stale" => Answer::Stale { message: message() },
            "failed" => Answer::Failed { message: message() },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_byte_of_a_value_survives_a_line() {
        let r = Record::new()
            .with("op", "autoreply.set")
            .with("text", "line one\nline two & = % +\r\n\u{e9}")
            .with("target", "a@x")
            .with("target", "b@y");
        let line = r.encode();
        assert!(!line.contains('\n'));
        let back = Record::decode(&line);
        assert_eq!(back, r);
        assert_eq!(back.all("target").collect::<Vec<_>>(), ["a@x", "b@y"]);
    }

    #[test]
    fn answers_round_trip() {
        let answers = [
            Answer::Session {
                session: "s".into(),
                csrf: "c".into(),
                login: "postmaster@shop.example".into(),
                role: Role::DomainAdmin,
                domains: vec!["shop.example".into(), "b.example".into()],
                expires: 1_700_000_000,
            },
            Answer::Done {
                notes: vec!["added mailbox a@shop.example".into()],
            },
            Answer::Data(vec![
                Record::new().with("kind", "mailbox").with("address", "a@x"),
                Record::new().with("kind", "alias").with("target", "b"),
            ]),
            Answer::Data(vec![]),
            Answer::Refused,
            Answer::NoSession,
            Answer::Missing,
            Answer::Stale {
                message: "forward of a@x changed: now b@y".into(),
            },
            Answer::Failed {
                message: "a@x: no such mailbox".into(),
            },
        ];
        for a in answers {
            assert_eq!(Answer::decode(&a.encode()), Some(a.clone()), "{a:?}");
        }
    }

    #[test]
    fn garbage_is_no_answer() {
        assert_eq!(Answer::decode(""), None);
        assert_eq!(Answer::decode("thread 'main' panicked"), None);
        assert_eq!(Answer::decode("answer=session&session=x"), None);
    }
}
