//! Mail filters: the rule language ([`mod@parse`] reads it strictly,
//! [`mod@evaluate`] runs it; [`spam`] is the built-in rule on spamc's score,
//! [`quarantine`] the one that carries out the SMTP server's DMARC
//! quarantine).
//! Local delivery ([`crate::deliver`]) passes the message through spamc
//! when configured ([`spamc`]), runs the rule files ([`files`] says which,
//! in what order, and how they are trusted) and stores the message where
//! the [`Decision`] says: the inbox, a folder (Maildir++ `.NAME/` or an
//! mbox file, see [`crate::accounts::Account::mbox_folders`]), nowhere
//! (logged), or back to the sender (5.7.1).
//!
//! ## Why not Sieve
//!
//! Sieve (RFC 5228) needs a dozen extensions (fileinto, reject,
//! relational, spamtest, variables, ...) before it can say what this file
//! says, and half a Sieve is worse than none: a script that works in
//! Dovecot's Pigeonhole would fail here.  This language is one rule per
//! line, checked strictly, so an error names its line.
//!
//! ## The file format
//!
//! ```text
//! # comment lines start with #; blank lines are ignored
//! if header List-Id contains "news.example.com" then folder Newsletters
//! if from is boss@example.com then keep; stop
//! if spam-score at-least 5 and not to contains "abuse@" then folder Spam
//! if auth dmarc is fail then folder Spam
//! if auth spf is softfail and auth dkim is not pass then folder Suspicious
//! if size over 20M then reject "Too big for this mailbox"
//! if sender is "" then discard
//! if always then forward me@elsewhere.example
//! ```
//!
//! `if TEST [and TEST]... then ACTION [; ACTION]...`.  TEXT is a bare word
//! or a `"quoted string"` (`\"` and `\\` inside).
//!
//! Tests (each may be preceded by `not`):
//! * `header NAME contains|is|matches TEXT` — any field called NAME;
//! * `from`, `to` (To: and Cc:) — header addresses; `sender`, `recipient` —
//!   the envelope's sender and recipient; each with `contains|is|matches TEXT`;
//! * `size over|under N[K|M|G]` — the message's size in bytes;
//! * `spam-score over|under|at-least N` — the score in `X-Spam-Status:
//!   ... score=N` (what spamc adds), else `X-Spam-Score: N`; a message with
//!   neither passes no spam-score test;
//! * `auth spf|dkim|dmarc is [not] RESULT` — what this host found when the
//!   message came in from the internet, as its own `Authentication-Results:`
//!   field says (the one with this host's authserv-id, which the SMTP
//!   server removes from mail that arrives with it; any other is ignored).
//!   RESULT is one of `pass`, `fail`, `softfail` (spf only), `neutral` (spf,
//!   dkim), `none`, `temperror`, `permerror`, `policy` (spf, dkim).  Mail
//!   with no such field (local mail, mail from a user who logged in) is
//!   `none` for every method.  For dkim, `is` holds when any signature has
//!   that result, and `is not pass` when none passed;
//! * `always`.
//!
//! Text comparisons ignore case; `is` compares whole values (for address
//! tests: each address), `contains` looks for a substring, `matches` takes
//! a glob (`*` any run of characters, `?` one character).
//!
//! Actions: `folder NAME` (a folder; `a/b` is a subfolder; `INBOX` is the
//! inbox), `keep` (the inbox), `discard`, `reject "TEXT"` (a bounce, 5.7.1,
//! saying TEXT; ends filtering), `forward ADDRESS` (a copy sent on; unless
//! `keep`/`folder` is also given, the message is not stored here), `stop`
//! (no later rule, in this file or a later one, is looked at).  Where the
//! message goes is decided by the last matching rule that says so; forwards
//! add up.  Folder names are printable ASCII without `.`, `&`, `\`, `*`,
//! `%` (they are Maildir++ names and IMAP mailbox names; the rule is
//! [`crate::mailbox::folder`]'s).

pub mod evaluate;
pub mod files;
pub mod parse;
pub mod quarantine;
pub mod spam;
pub mod spamc;

pub use evaluate::{Decision, Facts, Place, evaluate};
pub use parse::{MAX_FILE, ParseError, parse};
pub use quarantine::quarantine_rule;
pub use spam::{spam_rules, spam_score};

/// One rule file, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Where the rules came from (a path, or `spam rule`).
    pub source: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    line: usize,
    tests: Vec<Test>,
    actions: Vec<Action>,
}

#[derive(Debug, Clone, PartialEq)]
struct Test {
    negate: bool,
    kind: TestKind,
}

#[derive(Debug, Clone, PartialEq)]
enum TestKind {
    Always,
    Text {
        on: On,
        op: Op,
        value: String,
    },
    Size {
        cmp: Cmp,
        bytes: u64,
    },
    Spam {
        cmp: Cmp,
        score: f64,
    },
    /// `auth METHOD is RESULT` (`is not` is a negated test).
    Auth {
        method: AuthMethod,
        result: &'static str,
    },
    /// This host's field says DMARC failed and the door applied
    /// quarantine (the built-in DMARC rule; not in the language).
    Quarantined,
}

/// What an `auth` test looks at: a method of RFC 8601's registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthMethod {
    Spf,
    Dkim,
    Dmarc,
}

impl AuthMethod {
    fn name(self) -> &'static str {
        match self {
            AuthMethod::Spf => "spf",
            AuthMethod::Dkim => "dkim",
            AuthMethod::Dmarc => "dmarc",
        }
    }

    /// The results the method can have (RFC 8601 §2.7, RFC 7489 §11.2).
    fn results(self) -> &'static [&'static str] {
        match self {
            AuthMethod::Spf => &[
                "pass",
                "fail",
                "softfail",
                "neutral",
                "none",
                "temperror",
                "permerror",
                "policy",
            ],
            AuthMethod::Dkim => &[
                "pass",
                "fail",
                "neutral",
                "none",
                "temperror",
                "permerror",
                "policy",
            ],
            AuthMethod::Dmarc => &["pass", "fail", "none", "temperror", "permerror"],
        }
    }
}

/// What a text test looks at.
#[derive(Debug, Clone, PartialEq)]
enum On {
    Header(String),
    From,
    To,
    Sender,
    Recipient,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Contains,
    Is,
    Matches,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Over,
    Under,
    AtLeast,
}

impl Cmp {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Cmp::Over => a > b,
            Cmp::Under => a < b,
            Cmp::AtLeast => a >= b,
        }
    }
}

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Folder(String),
    Keep,
    Discard,
    Reject(String),
    Forward(String),
    Stop,
}

impl Rules {
    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod test_support {
    //! What the filter tests decide with.
    use super::*;
    use crate::message::Header;

    pub fn facts_for<'a>(h: &'a Header, rcpts: &'a [String], size: u64) -> Facts<'a> {
        Facts {
            header: h,
            sender: "list-bounces@news.example",
            recipients: rcpts,
            size,
            auth: None,
        }
    }

    /// The authserv-id the tests' hosts have.
    pub const AUTHSERV_ID: &str = "mx.test.example";

    /// Run rule files over a message with header `head`; an
    /// Authentication-Results field with [`AUTHSERV_ID`] is ours.
    pub fn decide(files: &[&str], head: &str, size: u64) -> Decision {
        let h = Header::parse(head.as_bytes());
        let auth = crate::inbound::results::ours(&h, AUTHSERV_ID);
        let rcpts = vec!["bob@test.example".to_string()];
        let sets: Vec<Rules> = files
            .iter()
            .enumerate()
            .map(|(i, t)| parse(&format!("f{i}"), t).unwrap())
            .collect();
        let refs: Vec<&Rules> = sets.iter().collect();
        evaluate(
            &refs,
            &Facts {
                auth: auth.as_ref(),
                ..facts_for(&h, &rcpts, size)
            },
        )
    }

    pub const NEWS: &str = "From: \"News Desk\" <news@news.example>\nTo: bob@test.example, Carol <carol@x.example>\nSubject: Weekly digest\nList-Id: <weekly.news.example>\n";
}
