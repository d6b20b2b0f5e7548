//! The built-in DMARC rule: mail whose `Authentication-Results:` field
//! of this host says DMARC failed and the SMTP server applied quarantine
//! (`dmarc=fail ... policy.dmarc=quarantine`, see
//! [`crate::inbound::results`]) goes to `spam_folder`.  Which failures
//! the server quarantines is its settings' business (`dmarc_quarantine`,
//! `dmarc_reject`, `own_domain_forgery`); delivery only carries out what
//! the field says.  Like the spam rule it runs before the rule files, so
//! a user's rule can take a message back out with `keep`.

use super::{Action, Rule, Rules, Test, TestKind};
use crate::inbound::results::AuthResults;

/// Where its filings are logged from (`by DMARC rule:1`).
pub const SOURCE: &str = "DMARC rule";

/// Does this host's field say the SMTP server quarantined the message?
pub fn quarantined(auth: &AuthResults) -> bool {
    auth.dmarc_disposition()
        .is_some_and(|d| d.eq_ignore_ascii_case("quarantine"))
}

/// The rule, filing into `folder`.
pub fn quarantine_rule(folder: &str) -> Rules {
    Rules {
        source: SOURCE.to_string(),
        rules: vec![Rule {
            line: 1,
            tests: vec![Test {
                negate: false,
                kind: TestKind::Quarantined,
            }],
            actions: vec![Action::Folder(folder.to_string())],
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::super::evaluate::{Facts, Place, evaluate};
    use super::super::{parse, spam_rules};
    use super::*;
    use crate::inbound::results::ours;
    use crate::message::Header;

    const ID: &str = "mx.test.example";

    /// The built-in rules, then `user`, over a message with `head`.
    fn run(head: &str, user: &str) -> (Place, Option<String>) {
        let h = Header::parse(head.as_bytes());
        let auth = ours(&h, ID);
        let sets = [
            quarantine_rule("Junk"),
            spam_rules(Some(5.0), Some(10.0), "Junk"),
            parse("user", user).unwrap(),
        ];
        let refs: Vec<&Rules> = sets.iter().collect();
        let d = evaluate(
            &refs,
            &Facts {
                header: &h,
                sender: "a@example.org",
                recipients: &[],
                size: 100,
                auth: auth.as_ref(),
            },
        );
        (d.place, d.by)
    }

    fn field(id: &str, dmarc: &str) -> String {
        format!(
            "Authentication-Results: {id};\n\tspf=pass smtp.mailfrom=a@example.org;\n\tdkim=none;\n\t{dmarc}\nFrom: a@example.org\nSubject: hi\n"
        )
    }

    #[test]
    fn quarantine_by_our_field_only() {
        let junk = Place::Folder("Junk".into());
        let q = "dmarc=fail (p=quarantine) header.from=example.org policy.dmarc=quarantine";
        assert_eq!(
            run(&field(ID, q), ""),
            (junk.clone(), Some("DMARC rule:1".into()))
        );
        // The id compares without case and a trailing dot.
        assert_eq!(run(&field("MX.Test.Example.", q), "").0, junk);
        // Own-domain forgery quarantined: dmarc=fail, no policy record.
        let forged = "dmarc=fail (no DMARC record; this server's own domain) header.from=test.example policy.dmarc=quarantine";
        assert_eq!(run(&field(ID, forged), "").0, junk);
        // Someone else's field, or none: nothing happens.
        assert_eq!(run(&field("mx.other.example", q), "").0, Place::Inbox);
        assert_eq!(run("Subject: local\n", "").0, Place::Inbox);
        // Our field, but the server only marked the failure, or let a
        // p=reject failure through as mark; or DMARC passed.
        for other in [
            "dmarc=fail (p=quarantine) header.from=example.org policy.dmarc=none",
            "dmarc=fail (p=reject) header.from=example.org policy.dmarc=none",
            "dmarc=pass (p=quarantine) header.from=example.org",
            "dmarc=none header.from=example.org",
        ] {
            assert_eq!(run(&field(ID, other), "").0, Place::Inbox, "{other}");
        }
        // A p=reject failure the server was told to quarantine.
        let rq = "dmarc=fail (p=reject) header.from=example.org policy.dmarc=quarantine";
        assert_eq!(run(&field(ID, rq), "").0, junk);
        // A user's rule can take it back out, as from the spam rule ...
        let (place, by) = run(&field(ID, q), "if from is a@example.org then keep");
        assert_eq!((place, by.as_deref()), (Place::Inbox, Some("user:1")));
        // ... and the spam rule's discard still wins over both.
        let heavy = format!("{}X-Spam-Score: 12\n", field(ID, q));
        assert_eq!(run(&heavy, "").0, Place::Nowhere);
    }
}
