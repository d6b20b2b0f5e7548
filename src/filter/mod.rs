//! Mail filters: the rule language, its strict parser and its evaluation.
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

pub mod files;
pub mod spamc;

use std::fmt;

use crate::message::Header;

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
    Text { on: On, op: Op, value: String },
    Size { cmp: Cmp, bytes: u64 },
    Spam { cmp: Cmp, score: f64 },
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

/// A rule file that does not parse: the line and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub source: String,
    pub line: usize,
    pub what: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.source, self.line, self.what)
    }
}

/// Largest rule file read; a bigger one is an error, not a truncation.
pub const MAX_FILE: u64 = 256 * 1024;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Semi,
}

fn tokenize(line: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == ';' {
            chars.next();
            out.push(Token::Semi);
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted string".to_string()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(e @ ('"' | '\\')) => s.push(e),
                        _ => return Err("only \\\" and \\\\ may follow \\ in a string".into()),
                    },
                    Some(x) => s.push(x),
                }
            }
            out.push(Token::Quoted(s));
        } else {
            let mut s = String::new();
            while let Some(&x) = chars.peek() {
                if x.is_whitespace() || x == ';' || x == '"' {
                    break;
                }
                s.push(x);
                chars.next();
            }
            out.push(Token::Word(s));
        }
    }
    Ok(out)
}

/// Parse a rule file; `source` names it in errors.
pub fn parse(source: &str, text: &str) -> Result<Rules, ParseError> {
    let mut rules = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |what: String| ParseError {
            source: source.to_string(),
            line: i + 1,
            what,
        };
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(err("control character in the line".to_string()));
        }
        let tokens = tokenize(line).map_err(err)?;
        let (tests, actions) = parse_rule(&tokens).map_err(err)?;
        rules.push(Rule {
            line: i + 1,
            tests,
            actions,
        });
    }
    Ok(Rules {
        source: source.to_string(),
        rules,
    })
}

struct Cursor<'a> {
    tokens: &'a [Token],
    at: usize,
}

impl Cursor<'_> {
    fn next(&mut self) -> Option<&Token> {
        let t = self.tokens.get(self.at);
        self.at += 1;
        t
    }

    /// A keyword (a bare word, any case).
    fn word(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w.to_ascii_lowercase()),
            Some(Token::Quoted(q)) => Err(format!("expected {what}, found \"{q}\"")),
            Some(Token::Semi) => Err(format!("expected {what}, found ';'")),
            None => Err(format!("expected {what} at the end of the line")),
        }
    }

    /// A value: a bare word or a quoted string.
    fn text(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w.clone()),
            Some(Token::Quoted(q)) => Ok(q.clone()),
            Some(Token::Semi) => Err(format!("expected {what}, found ';'")),
            None => Err(format!("expected {what} at the end of the line")),
        }
    }
}

fn parse_rule(tokens: &[Token]) -> Result<(Vec<Test>, Vec<Action>), String> {
    let mut c = Cursor { tokens, at: 0 };
    let first = c.word("'if'")?;
    if first != "if" {
        return Err(format!("a rule starts with 'if', not '{first}'"));
    }
    let mut tests = vec![parse_test(&mut c)?];
    loop {
        let w = c.word("'and' or 'then'")?;
        match w.as_str() {
            "and" => tests.push(parse_test(&mut c)?),
            "then" => break,
            other => return Err(format!("expected 'and' or 'then', found '{other}'")),
        }
    }
    let mut actions = Vec::new();
    loop {
        let a = parse_action(&mut c)?;
        if let Some(last @ (Action::Stop | Action::Reject(_))) = actions.last() {
            let name = if *last == Action::Stop {
                "stop"
            } else {
                "reject"
            };
            return Err(format!("nothing may follow {name}"));
        }
        actions.push(a);
        match c.next() {
            None => break,
            Some(Token::Semi) => continue,
            Some(Token::Word(w)) | Some(Token::Quoted(w)) => {
                return Err(format!("expected ';' or the end of the line, found '{w}'"));
            }
        }
    }
    Ok((tests, actions))
}

fn parse_test(c: &mut Cursor<'_>) -> Result<Test, String> {
    let mut negate = false;
    let mut w = c.word("a test")?;
    if w == "not" {
        negate = true;
        w = c.word("a test after 'not'")?;
    }
    let kind = match w.as_str() {
        "always" => TestKind::Always,
        "header" => {
            let name = c.text("a header name")?;
            if name.is_empty()
                || name.ends_with(':')
                || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
            {
                return Err(format!(
                    "'{name}' is not a header name (write it without ':')"
                ));
            }
            text_test(c, On::Header(name))?
        }
        "from" => text_test(c, On::From)?,
        "to" => text_test(c, On::To)?,
        "sender" => text_test(c, On::Sender)?,
        "recipient" => text_test(c, On::Recipient)?,
        "size" => {
            let cmp = cmp(c, false)?;
            let v = c.text("a size")?;
            let bytes = crate::config::parse_size(&v)
                .ok_or_else(|| format!("'{v}' is not a size (e.g. 500K, 20M)"))?;
            TestKind::Size { cmp, bytes }
        }
        "spam-score" => {
            let cmp = cmp(c, true)?;
            let v = c.text("a score")?;
            let score = v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite())
                .ok_or_else(|| format!("'{v}' is not a number"))?;
            TestKind::Spam { cmp, score }
        }
        other => {
            return Err(format!(
                "unknown test '{other}' (header, from, to, sender, recipient, size, spam-score, always)"
            ));
        }
    };
    Ok(Test { negate, kind })
}

fn text_test(c: &mut Cursor<'_>, on: On) -> Result<TestKind, String> {
    let op = match c.word("contains, is or matches")?.as_str() {
        "contains" => Op::Contains,
        "is" => Op::Is,
        "matches" => Op::Matches,
        other => return Err(format!("expected contains, is or matches, found '{other}'")),
    };
    let value = c.text("the text to compare with")?;
    Ok(TestKind::Text { on, op, value })
}

fn cmp(c: &mut Cursor<'_>, at_least: bool) -> Result<Cmp, String> {
    match c.word("over or under")?.as_str() {
        "over" => Ok(Cmp::Over),
        "under" => Ok(Cmp::Under),
        "at-least" if at_least => Ok(Cmp::AtLeast),
        other if at_least => Err(format!("expected over, under or at-least, found '{other}'")),
        other => Err(format!("expected over or under, found '{other}'")),
    }
}

fn parse_action(c: &mut Cursor<'_>) -> Result<Action, String> {
    let w = c.word("an action")?;
    Ok(match w.as_str() {
        "folder" => {
            let name = c.text("a folder name")?;
            crate::mailbox::folder::check_name(&name)?;
            if name.eq_ignore_ascii_case("inbox") {
                Action::Keep
            } else {
                Action::Folder(name)
            }
        }
        "keep" => Action::Keep,
        "discard" => Action::Discard,
        "stop" => Action::Stop,
        "reject" => {
            let text = match c.tokens.get(c.at) {
                Some(Token::Quoted(_)) | Some(Token::Word(_)) => c.text("a text")?,
                _ => "Message rejected by the recipient's filter".to_string(),
            };
            if text.trim().is_empty() {
                return Err("the reject text is empty".to_string());
            }
            Action::Reject(text)
        }
        "forward" => {
            let a = c.text("an address")?;
            let bad = a.is_empty()
                || a.starts_with(['|', '/', '-', ':'])
                || a.contains(['<', '>', ',', '(', ')', ' ', '\\'])
                || !a.is_ascii()
                || crate::address::parse_one(&a).map_or(true, |m| m.addr.is_empty());
            if bad {
                return Err(format!("'{a}' is not a mail address"));
            }
            Action::Forward(a)
        }
        other => {
            return Err(format!(
                "unknown action '{other}' (folder, keep, discard, reject, forward, stop)"
            ));
        }
    })
}

/// The built-in spam rule: a score at or above `folder_at` goes to
/// `folder`, one above `discard_over` is discarded and nothing else looked
/// at.  `None` turns a half off.
pub fn spam_rules(folder_at: Option<f64>, discard_over: Option<f64>, folder: &str) -> Rules {
    let mut rules = Vec::new();
    if let Some(s) = discard_over {
        rules.push(Rule {
            line: 1,
            tests: vec![Test {
                negate: false,
                kind: TestKind::Spam {
                    cmp: Cmp::Over,
                    score: s,
                },
            }],
            actions: vec![Action::Discard, Action::Stop],
        });
    }
    if let Some(s) = folder_at {
        rules.push(Rule {
            line: 2,
            tests: vec![Test {
                negate: false,
                kind: TestKind::Spam {
                    cmp: Cmp::AtLeast,
                    score: s,
                },
            }],
            actions: vec![Action::Folder(folder.to_string())],
        });
    }
    Rules {
        source: "spam rule".to_string(),
        rules,
    }
}

/// What a message is tested against.
pub struct Facts<'a> {
    pub header: &'a Header,
    /// The envelope sender (empty for `<>`).
    pub sender: &'a str,
    /// The envelope recipient(s) this delivery is for.
    pub recipients: &'a [String],
    pub size: u64,
}

/// The spam score a header carries: `score=` in the first `X-Spam-Status:`,
/// else the first `X-Spam-Score:`.
pub fn spam_score(h: &Header) -> Option<f64> {
    let number = |s: &str| -> Option<f64> {
        let end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
            .unwrap_or(s.len());
        s[..end].parse::<f64>().ok().filter(|v| v.is_finite())
    };
    if let Some(f) = h.get("X-Spam-Status") {
        let v = f.value();
        if let Some(n) = v
            .split([' ', ',', '\t'])
            .find_map(|w| {
                w.strip_prefix("score=")
                    .or_else(|| w.strip_prefix("Score="))
            })
            .and_then(number)
        {
            return Some(n);
        }
    }
    h.get("X-Spam-Score").and_then(|f| number(f.value().trim()))
}

/// Where the message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    Inbox,
    Folder(String),
    /// Not stored here (discarded, or only forwarded).
    Nowhere,
    /// Bounced with this text.
    Reject(String),
}

/// The outcome of all rule files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub place: Place,
    /// `SOURCE:LINE` of the rule that chose the place (None: no rule did).
    pub by: Option<String>,
    pub forwards: Vec<String>,
}

/// Run the rule files in order.
pub fn evaluate(sets: &[&Rules], facts: &Facts<'_>) -> Decision {
    let score = spam_score(facts.header);
    let mut place: Option<(Place, String)> = None;
    let mut forwards: Vec<String> = Vec::new();
    let mut forward_by: Option<String> = None;
    'all: for set in sets {
        for rule in &set.rules {
            if !rule.tests.iter().all(|t| test(t, facts, score) != t.negate) {
                continue;
            }
            let at = format!("{}:{}", set.source, rule.line);
            for a in &rule.actions {
                match a {
                    Action::Keep => place = Some((Place::Inbox, at.clone())),
                    Action::Folder(n) => place = Some((Place::Folder(n.clone()), at.clone())),
                    Action::Discard => place = Some((Place::Nowhere, at.clone())),
                    Action::Forward(addr) => {
                        if !forwards.iter().any(|f| f.eq_ignore_ascii_case(addr)) {
                            forwards.push(addr.clone());
                        }
                        forward_by.get_or_insert(at.clone());
                    }
                    Action::Reject(text) => {
                        return Decision {
                            place: Place::Reject(text.clone()),
                            by: Some(at),
                            forwards: Vec::new(),
                        };
                    }
                    Action::Stop => break 'all,
                }
            }
        }
    }
    match place {
        Some((p, by)) => Decision {
            place: p,
            by: Some(by),
            forwards,
        },
        None if !forwards.is_empty() => Decision {
            place: Place::Nowhere,
            by: forward_by,
            forwards,
        },
        None => Decision {
            place: Place::Inbox,
            by: None,
            forwards,
        },
    }
}

fn test(t: &Test, f: &Facts<'_>, score: Option<f64>) -> bool {
    match &t.kind {
        TestKind::Always => true,
        TestKind::Size { cmp, bytes } => cmp.holds(f.size as f64, *bytes as f64),
        TestKind::Spam { cmp, score: s } => score.is_some_and(|v| cmp.holds(v, *s)),
        TestKind::Text { on, op, value } => {
            let values: Vec<String> = match on {
                On::Header(name) => f.header.all(name).map(|x| x.value()).collect(),
                On::From => addresses(f.header, &["From"]),
                On::To => addresses(f.header, &["To", "Cc"]),
                On::Sender => vec![f.sender.to_string()],
                On::Recipient => f.recipients.to_vec(),
            };
            values.iter().any(|v| compare(*op, v, value))
        }
    }
}

/// The addresses in the named fields; for `contains`, the whole values too
/// (display names are worth matching).
fn addresses(h: &Header, names: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for n in names {
        for f in h.all(n) {
            let v = f.value();
            if let Ok(list) = crate::address::parse_list(&v) {
                out.extend(list.into_iter().map(|m| m.addr));
            }
            out.push(v);
        }
    }
    out
}

fn compare(op: Op, have: &str, want: &str) -> bool {
    let have = have.to_lowercase();
    let want = want.to_lowercase();
    match op {
        Op::Is => have == want,
        Op::Contains => have.contains(&want),
        Op::Matches => glob(
            &have.chars().collect::<Vec<_>>(),
            &want.chars().collect::<Vec<_>>(),
        ),
    }
}

/// `*` and `?` glob, iteratively with one backtrack point (linear-ish, no
/// exponential blow-up on hostile patterns).
fn glob(s: &[char], p: &[char]) -> bool {
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts_for<'a>(h: &'a Header, rcpts: &'a [String], size: u64) -> Facts<'a> {
        Facts {
            header: h,
            sender: "list-bounces@news.example",
            recipients: rcpts,
            size,
        }
    }

    fn decide(files: &[&str], head: &str, size: u64) -> Decision {
        let h = Header::parse(head.as_bytes());
        let rcpts = vec!["bob@test.example".to_string()];
        let sets: Vec<Rules> = files
            .iter()
            .enumerate()
            .map(|(i, t)| parse(&format!("f{i}"), t).unwrap())
            .collect();
        let refs: Vec<&Rules> = sets.iter().collect();
        evaluate(&refs, &facts_for(&h, &rcpts, size))
    }

    fn err(text: &str) -> String {
        parse("F", text).unwrap_err().to_string()
    }

    const NEWS: &str = "From: \"News Desk\" <news@news.example>\nTo: bob@test.example, Carol <carol@x.example>\nSubject: Weekly digest\nList-Id: <weekly.news.example>\n";

    #[test]
    fn every_test_kind() {
        let cases: &[(&str, bool)] = &[
            ("if always then folder A", true),
            ("if header list-id contains WEEKLY then folder A", true),
            ("if header Subject is \"weekly digest\" then folder A", true),
            ("if header Subject is weekly then folder A", false),
            ("if header Subject matches \"*dig?st\" then folder A", true),
            ("if header Subject matches \"dig*\" then folder A", false),
            ("if header X-None contains a then folder A", false),
            ("if from is news@news.example then folder A", true),
            ("if from contains \"news desk\" then folder A", true),
            ("if from is \"News Desk\" then folder A", false),
            ("if to is carol@x.example then folder A", true),
            ("if to matches *@x.example then folder A", true),
            ("if sender is list-bounces@news.example then folder A", true),
            ("if sender contains other then folder A", false),
            ("if recipient is BOB@test.example then folder A", true),
            ("if size over 1K then folder A", true),
            ("if size under 1K then folder A", false),
            ("if size under 2K then folder A", true),
            ("if spam-score over 0 then folder A", false),
            ("if not spam-score over 0 then folder A", true),
            ("if not header Subject contains digest then folder A", false),
            (
                "if from contains news and to contains carol then folder A",
                true,
            ),
            (
                "if from contains news and to contains dave then folder A",
                false,
            ),
        ];
        for (rule, want) in cases {
            let d = decide(&[rule], NEWS, 1500);
            let got = d.place == Place::Folder("A".into());
            assert_eq!(got, *want, "{rule}: {d:?}");
        }
    }

    #[test]
    fn spam_scores_and_the_builtin_rule() {
        let spam = spam_rules(Some(5.0), Some(10.0), "Spam");
        let run = |head: &str| {
            let h = Header::parse(head.as_bytes());
            evaluate(&[&spam], &facts_for(&h, &[], 10))
        };
        assert_eq!(
            run("X-Spam-Score: 7.2\n").place,
            Place::Folder("Spam".into())
        );
        assert_eq!(run("X-Spam-Score: 5\n").place, Place::Folder("Spam".into()));
        assert_eq!(
            run("X-Spam-Score: 10\n").place,
            Place::Folder("Spam".into())
        );
        assert_eq!(run("X-Spam-Score: 4.9\n").place, Place::Inbox);
        let d = run("X-Spam-Score: 12.0\n");
        assert_eq!(
            (d.place, d.by.as_deref()),
            (Place::Nowhere, Some("spam rule:1"))
        );
        assert_eq!(run("Subject: x\n").place, Place::Inbox);
        assert_eq!(run("X-Spam-Score: lots\n").place, Place::Inbox);
        // spamc's header wins over a score a sender wrote itself.
        let h = "X-Spam-Score: -50\nX-Spam-Status: Yes, score=1004.1 required=5.0 tests=GTUBE\n";
        assert_eq!(run(h).place, Place::Nowhere);
        assert_eq!(
            spam_score(&Header::parse(
                b"X-Spam-Status: No, score=-0.3 required=5.0\n"
            )),
            Some(-0.3)
        );
        // Either half can be turned off.
        let off = spam_rules(None, Some(10.0), "Spam");
        let h = Header::parse(b"X-Spam-Score: 7\n");
        assert_eq!(
            evaluate(&[&off], &facts_for(&h, &[], 1)).place,
            Place::Inbox
        );
    }

    #[test]
    fn actions_order_and_stop() {
        // The last rule that places the message wins ...
        let d = decide(
            &["if always then folder A\nif always then folder B"],
            NEWS,
            1,
        );
        assert_eq!(d.place, Place::Folder("B".into()));
        assert_eq!(d.by.as_deref(), Some("f0:2"));
        // ... unless an earlier one stops, across files too.
        let d = decide(
            &["if always then folder A; stop", "if always then folder B"],
            NEWS,
            1,
        );
        assert_eq!(d.place, Place::Folder("A".into()));
        // A user rule can take a message back out of the spam folder.
        let d = decide(
            &[
                "if always then folder Spam",
                "if from contains news then keep",
            ],
            NEWS,
            1,
        );
        assert_eq!(d.place, Place::Inbox);
        // Forward alone stores nothing here; with keep it stores too.
        let d = decide(&["if always then forward a@b.example"], NEWS, 1);
        assert_eq!(
            (d.place, d.forwards),
            (Place::Nowhere, vec!["a@b.example".into()])
        );
        let d = decide(
            &["if always then forward a@b.example; keep; forward A@b.example"],
            NEWS,
            1,
        );
        assert_eq!(
            (d.place, d.forwards),
            (Place::Inbox, vec!["a@b.example".into()])
        );
        // Reject ends everything and drops forwards.
        let d = decide(
            &[
                "if always then forward a@b.example",
                "if size over 1 then reject \"no \\\"thanks\\\"\"",
                "if always then keep",
            ],
            NEWS,
            5,
        );
        assert_eq!(d.place, Place::Reject("no \"thanks\"".into()));
        assert!(d.forwards.is_empty());
        assert_eq!(d.by.as_deref(), Some("f1:1"));
        let d = decide(&["if always then discard"], NEWS, 1);
        assert_eq!(d.place, Place::Nowhere);
        let d = decide(&["# nothing\n\n   \nif always then folder INBOX"], NEWS, 1);
        assert_eq!((d.place, d.by.as_deref()), (Place::Inbox, Some("f0:4")));
        let d = decide(&["if always then reject"], NEWS, 1);
        assert!(matches!(d.place, Place::Reject(t) if t.contains("filter")));
    }

    #[test]
    fn broken_files_name_the_line() {
        assert_eq!(
            err("\nif always folder A"),
            "F:2: expected 'and' or 'then', found 'folder'"
        );
        assert_eq!(
            err("when always then keep"),
            "F:1: a rule starts with 'if', not 'when'"
        );
        assert!(err("if bogus then keep").starts_with("F:1: unknown test 'bogus'"));
        assert!(err("if always then explode").starts_with("F:1: unknown action 'explode'"));
        assert_eq!(
            err("if always then"),
            "F:1: expected an action at the end of the line"
        );
        assert_eq!(
            err("if header Subject contains \"x then keep"),
            "F:1: unterminated quoted string"
        );
        assert_eq!(
            err("if header Subject: is x then keep"),
            "F:1: 'Subject:' is not a header name (write it without ':')"
        );
        assert_eq!(
            err("if from resembles x then keep"),
            "F:1: expected contains, is or matches, found 'resembles'"
        );
        assert_eq!(
            err("if size over lots then keep"),
            "F:1: 'lots' is not a size (e.g. 500K, 20M)"
        );
        assert_eq!(
            err("if size at-least 5 then keep"),
            "F:1: expected over or under, found 'at-least'"
        );
        assert_eq!(
            err("if spam-score over x then keep"),
            "F:1: 'x' is not a number"
        );
        assert_eq!(
            err("if spam-score over inf then keep"),
            "F:1: 'inf' is not a number"
        );
        assert_eq!(
            err("if always then stop; keep"),
            "F:1: nothing may follow stop"
        );
        assert_eq!(
            err("if always then reject x; keep"),
            "F:1: nothing may follow reject"
        );
        assert_eq!(
            err("if always then keep discard"),
            "F:1: expected ';' or the end of the line, found 'discard'"
        );
        assert_eq!(
            err("if always then reject \"  \""),
            "F:1: the reject text is empty"
        );
        assert_eq!(
            err("if always then forward |/bin/sh"),
            "F:1: '|/bin/sh' is not a mail address"
        );
        assert_eq!(
            err("if always then forward /etc/passwd"),
            "F:1: '/etc/passwd' is not a mail address"
        );
        assert_eq!(
            err("if always then forward \"a@b, c@d\""),
            "F:1: 'a@b, c@d' is not a mail address"
        );
        assert!(err("if always then folder ../x").contains("'.' is not allowed"));
        assert!(err("if always then folder a//b").contains("empty part"));
        assert!(err("if always then folder ~x").contains("empty part or '~'"));
        assert!(err("if always then folder \"caf\u{e9}\"").contains("is not allowed"));
        assert_eq!(
            err("if header x contains \"a\\nb\" then keep"),
            "F:1: only \\\" and \\\\ may follow \\ in a string"
        );
        assert_eq!(
            err("if always then keep\nif always then keep\x01"),
            "F:2: control character in the line"
        );
        // Keywords are case-insensitive; quoted keywords are values, not keywords.
        assert!(parse("F", "IF Always THEN Folder \"Lists/Rust\"; STOP").is_ok());
        assert_eq!(
            err("\"if\" always then keep"),
            "F:1: expected 'if', found \"if\""
        );
    }

    #[test]
    fn globs() {
        let g = |s: &str, p: &str| {
            glob(
                &s.chars().collect::<Vec<_>>(),
                &p.chars().collect::<Vec<_>>(),
            )
        };
        assert!(g("abc", "a*c"));
        assert!(g("abc", "*"));
        assert!(g("", "*"));
        assert!(g("abc", "a?c"));
        assert!(!g("abc", "a?d"));
        assert!(g("aaaaaaaaaaaaaaaaaaaaaaaaab", "*a*a*a*a*a*b"));
        assert!(!g("aaaaaaaaaaaaaaaaaaaaaaaaaa", "*a*a*a*a*a*b"));
        assert!(g("news@x.example", "*@*.example"));
    }
}
