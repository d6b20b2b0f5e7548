//! Running the rule files over one message: which rules match, and where
//! the message goes, what is forwarded, or why it is bounced.

use super::spam::spam_score;
use super::{Action, AuthMethod, On, Op, Rules, Test, TestKind};
use crate::inbound::results::AuthResults;
use crate::message::Header;

/// What a message is tested against.
pub struct Facts<'a> {
    pub header: &'a Header,
    /// The envelope sender (empty for `<>`).
    pub sender: &'a str,
    /// The envelope recipient(s) this delivery is for.
    pub recipients: &'a [String],
    pub size: u64,
    /// This host's own `Authentication-Results:` field
    /// ([`crate::inbound::results::ours`]); None: there is none.
    pub auth: Option<&'a AuthResults>,
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
        TestKind::Auth { method, result } => auth_says(f.auth, *method, result),
        TestKind::Quarantined => f.auth.is_some_and(super::quarantine::quarantined),
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

/// Did this host's field give `method` the `result` (any of the results,
/// for DKIM's several signatures)?  A method the field does not mention,
/// or no field at all, is `none`.
fn auth_says(auth: Option<&AuthResults>, method: AuthMethod, result: &str) -> bool {
    let Some(auth) = auth else {
        return result == "none";
    };
    let name = method.name();
    if result == "none" && auth.results(name).next().is_none() {
        return true;
    }
    auth.says(name, result)
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

    /// `NEWS` with an Authentication-Results field of `id` whose methods
    /// are `methods`.
    fn with_results(id: &str, methods: &str) -> String {
        format!("Authentication-Results: {id};\n\t{methods}\n{NEWS}")
    }

    /// Does `rule` (filing into A) match a message with `head`?
    fn matches(rule: &str, head: &str) -> bool {
        decide(&[rule], head, 10).place == Place::Folder("A".into())
    }

    #[test]
    fn auth_reads_our_field() {
        let head = with_results(
            AUTHSERV_ID,
            "spf=softfail smtp.mailfrom=news@news.example;\n\tdkim=pass header.d=news.example header.s=a header.a=rsa-sha256 header.b=Ab12;\n\tdkim=fail (bad signature) header.d=relay.example header.s=b;\n\tdmarc=fail (p=quarantine) header.from=news.example policy.dmarc=quarantine",
        );
        let cases: &[(&str, bool)] = &[
            ("if auth spf is softfail then folder A", true),
            ("if auth spf is pass then folder A", false),
            ("if auth spf is none then folder A", false),
            ("if auth spf is not pass then folder A", true),
            ("if auth dmarc is fail then folder A", true),
            ("if auth dmarc is not fail then folder A", false),
            ("if auth dmarc is none then folder A", false),
            // DKIM: any signature with the result.
            ("if auth dkim is pass then folder A", true),
            ("if auth dkim is fail then folder A", true),
            ("if auth dkim is not pass then folder A", false),
            ("if not auth dkim is fail then folder A", false),
            ("if auth dkim is none then folder A", false),
            ("if auth dkim is neutral then folder A", false),
            (
                "if auth dmarc is fail and auth dkim is pass then folder A",
                true,
            ),
        ];
        for (rule, want) in cases {
            assert_eq!(matches(rule, &head), *want, "{rule}");
        }
        // Results and method names compare without case, as RFC 8601 says.
        let head = with_results(AUTHSERV_ID, "SPF=Pass smtp.mailfrom=a@b.example");
        assert!(matches("if auth spf is pass then folder A", &head));
    }

    #[test]
    fn without_our_field_every_method_is_none() {
        let theirs = with_results(
            "mx.elsewhere.example",
            "spf=pass smtp.mailfrom=a@news.example;\n\tdkim=pass header.d=news.example;\n\tdmarc=pass header.from=news.example",
        );
        // A client that logged in: our field, but no spf, dkim or dmarc.
        let logged_in = with_results(AUTHSERV_ID, "auth=pass smtp.auth=bob");
        // Ours, saying nothing was checked.
        let nothing = with_results(AUTHSERV_ID, "none");
        for head in [NEWS.to_string(), theirs, logged_in, nothing] {
            for m in ["spf", "dkim", "dmarc"] {
                assert!(
                    matches(&format!("if auth {m} is none then folder A"), &head),
                    "{m} none: {head}"
                );
                for r in ["pass", "fail", "temperror", "permerror"] {
                    let rule = format!("if auth {m} is {r} then folder A");
                    assert!(!matches(&rule, &head), "{rule}: {head}");
                    let rule = format!("if auth {m} is not {r} then folder A");
                    assert!(matches(&rule, &head), "{rule}: {head}");
                }
            }
        }
        // Only the first field of ours counts (the door put it on top).
        let two = format!(
            "Authentication-Results: {AUTHSERV_ID}; dmarc=pass header.from=news.example\n{}",
            with_results(AUTHSERV_ID, "dmarc=fail header.from=news.example")
        );
        assert!(matches("if auth dmarc is pass then folder A", &two));
        assert!(!matches("if auth dmarc is fail then folder A", &two));
        // ... and one of ours that does not parse is no field.
        let broken = with_results(AUTHSERV_ID, "dmarc fail");
        assert!(matches("if auth dmarc is none then folder A", &broken));
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
