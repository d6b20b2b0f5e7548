//! Running the rule files over one message: which rules match, and where
//! the message goes, what is forwarded, or why it is bounced.

use super::spam::spam_score;
use super::{Action, On, Op, Rules, Test, TestKind};
use crate::message::Header;

/// What a message is tested against.
pub struct Facts<'a> {
    pub header: &'a Header,
    /// The envelope sender (empty for `<>`).
    pub sender: &'a str,
    /// The envelope recipient(s) this delivery is for.
    pub recipients: &'a [String],
    pub size: u64,
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
    use super::super::test_support::*;
    use super::*;

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
