//! The rule files' parser: strict, so an error names its line and says
//! what is wrong (the language is described in [`super`]).

use std::fmt;

use super::{Action, AuthMethod, Cmp, On, Op, Rule, Rules, Test, TestKind};

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
        "auth" => {
            let (kind, is_not) = auth_test(c)?;
            negate ^= is_not;
            kind
        }
        other => {
            return Err(format!(
                "unknown test '{other}' (header, from, to, sender, recipient, size, spam-score, auth, always)"
            ));
        }
    };
    Ok(Test { negate, kind })
}

/// `auth METHOD is [not] RESULT` after `auth`: the test, and whether it
/// said `is not`.
fn auth_test(c: &mut Cursor<'_>) -> Result<(TestKind, bool), String> {
    let method = match c.word("spf, dkim or dmarc after 'auth'")?.as_str() {
        "spf" => AuthMethod::Spf,
        "dkim" => AuthMethod::Dkim,
        "dmarc" => AuthMethod::Dmarc,
        other => {
            return Err(format!(
                "expected spf, dkim or dmarc after 'auth', found '{other}'"
            ));
        }
    };
    match c.word("'is' or 'is not'")?.as_str() {
        "is" => {}
        other => return Err(format!("expected 'is' or 'is not', found '{other}'")),
    }
    let results = method.results();
    let mut w = c.word(&format!("a result for {}", method.name()))?;
    let is_not = w == "not";
    if is_not {
        w = c.word(&format!("a result for {} after 'not'", method.name()))?;
    }
    match results.iter().find(|r| **r == w) {
        Some(result) => Ok((TestKind::Auth { method, result }, is_not)),
        None => Err(format!(
            "{} has no result '{w}' ({})",
            method.name(),
            results.join(", ")
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse("F", text).unwrap_err().to_string()
    }

    /// The one test of a one-rule file.
    fn only_test(text: &str) -> Test {
        let rules = parse("F", text).unwrap();
        assert_eq!(rules.rules.len(), 1);
        rules.rules[0].tests[0].clone()
    }

    #[test]
    fn auth_tests_and_their_negations() {
        let auth = |negate, method, result| Test {
            negate,
            kind: TestKind::Auth { method, result },
        };
        use AuthMethod::*;
        assert_eq!(
            only_test("if auth dmarc is fail then folder Spam"),
            auth(false, Dmarc, "fail")
        );
        assert_eq!(
            only_test("if auth spf is softfail then folder Suspicious"),
            auth(false, Spf, "softfail")
        );
        assert_eq!(
            only_test("if auth dkim is not pass then keep"),
            auth(true, Dkim, "pass")
        );
        assert_eq!(
            only_test("if not auth dkim is pass then keep"),
            auth(true, Dkim, "pass")
        );
        // Two negations cancel.
        assert_eq!(
            only_test("if not auth spf is not none then keep"),
            auth(false, Spf, "none")
        );
        // Every result each method has.
        for (m, method) in [("spf", Spf), ("dkim", Dkim), ("dmarc", Dmarc)] {
            for r in method.results() {
                assert_eq!(
                    only_test(&format!("if auth {m} is {r} then keep")),
                    auth(false, method, r)
                );
            }
        }
        let rule = parse("F", "if auth spf is pass and auth dkim is pass then keep").unwrap();
        assert_eq!(rule.rules[0].tests.len(), 2);
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
        assert_eq!(
            err("if bogus then keep"),
            "F:1: unknown test 'bogus' (header, from, to, sender, recipient, size, spam-score, auth, always)"
        );
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
        assert_eq!(
            err("if auth arc is pass then keep"),
            "F:1: expected spf, dkim or dmarc after 'auth', found 'arc'"
        );
        assert_eq!(
            err("if auth then keep"),
            "F:1: expected spf, dkim or dmarc after 'auth', found 'then'"
        );
        assert_eq!(
            err("if auth"),
            "F:1: expected spf, dkim or dmarc after 'auth' at the end of the line"
        );
        assert_eq!(
            err("if auth dmarc = fail then keep"),
            "F:1: expected 'is' or 'is not', found '='"
        );
        assert_eq!(
            err("if auth dmarc contains fail then keep"),
            "F:1: expected 'is' or 'is not', found 'contains'"
        );
        assert_eq!(
            err("if auth dmarc is softfail then keep"),
            "F:1: dmarc has no result 'softfail' (pass, fail, none, temperror, permerror)"
        );
        assert_eq!(
            err("if auth dkim is not softfail then keep"),
            "F:1: dkim has no result 'softfail' (pass, fail, neutral, none, temperror, permerror, policy)"
        );
        assert_eq!(
            err("if auth spf is hardfail then keep"),
            "F:1: spf has no result 'hardfail' (pass, fail, softfail, neutral, none, temperror, permerror, policy)"
        );
        assert_eq!(
            err("if auth spf is then keep"),
            "F:1: spf has no result 'then' (pass, fail, softfail, neutral, none, temperror, permerror, policy)"
        );
        assert_eq!(
            err("if auth spf is not"),
            "F:1: expected a result for spf after 'not' at the end of the line"
        );
        assert_eq!(
            err("if auth spf is \"pass\" then keep"),
            "F:1: expected a result for spf, found \"pass\""
        );
        // Keywords are case-insensitive; quoted keywords are values, not keywords.
        assert!(parse("F", "IF Always THEN Folder \"Lists/Rust\"; STOP").is_ok());
        assert!(parse("F", "if AUTH DMARC IS NOT Pass then keep").is_ok());
        assert_eq!(
            err("\"if\" always then keep"),
            "F:1: expected 'if', found \"if\""
        );
    }
}
