//! The built-in spam rule (the `spam_folder_score`, `spam_discard_score`
//! and `spam_folder` settings) and the score a message carries, which
//! spam-score tests compare with.

use super::{Action, Cmp, Rule, Rules, Test, TestKind};
use crate::message::Header;

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

#[cfg(test)]
mod tests {
    use super::super::evaluate::{Place, evaluate};
    use super::super::test_support::*;
    use super::*;

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
}
