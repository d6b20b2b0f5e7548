//! What the results lead to: the reply at `MAIL` and at the end of DATA,
//! and the `Authentication-Results:` field that goes on the message.
//!
//! | finding | default | setting |
//! |---------|---------|---------|
//! | SPF `fail` at `MAIL` | `550 5.7.1` | `spf_fail = refuse\|mark` |
//! | SPF `softfail`, `neutral`, `none`, `permerror` | marked only (RFC 7208 §8) | — |
//! | DMARC fail, policy `reject` | `550 5.7.1` after DATA | `dmarc_reject = refuse\|quarantine\|mark` |
//! | DMARC fail, policy `quarantine` | the Spam folder | `dmarc_quarantine = quarantine\|mark` |
//! | From: one of this box's domains, neither SPF nor DKIM passing for it | `550 5.7.1` after DATA | `own_domain_forgery = refuse\|quarantine\|mark` |
//! | DNS gave no answer (SPF, DMARC `temperror`) | `451 4.7.0` | `dns_failure = tempfail\|accept` |
//!
//! A refusal at the end of DATA is a refusal, not a bounce: the sending
//! server tells its user, and no backscatter leaves this box.

use super::results::{AuthResults, Method};
use super::settings::{Action, Settings};
use super::verify::{Identity, MessageCheck, SpfCheck};
use crate::smtp::Reply;

/// `451 4.7.0`: a DNS failure while checking.
fn dns_failure(what: &str) -> Reply {
    Reply::new(
        451,
        format!("4.7.0 Temporary DNS failure checking {what}; try again later"),
    )
}

/// The reply to `MAIL`, if not `250`.
pub fn at_mail(settings: &Settings, spf: &SpfCheck, ip: &str) -> Option<Reply> {
    match spf.result {
        "fail" if settings.spf_fail == Action::Refuse => {
            let mut text = format!(
                "5.7.1 SPF: {} does not allow {ip} to send its mail",
                spf.domain
            );
            if let Some(exp) = &spf.explanation {
                let exp: String = exp.chars().filter(|c| !c.is_control()).take(200).collect();
                text.push_str(&format!(": {exp}"));
            }
            Some(Reply::new(550, text))
        }
        "temperror" if settings.dns_failure_defers => {
            Some(dns_failure(&format!("the SPF record of {}", spf.domain)))
        }
        _ => None,
    }
}

/// What becomes of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// Refused (`550`/`451`): nothing is queued.
    pub refusal: Option<Reply>,
    /// The field for the top of the message (when accepted).
    pub results: AuthResults,
    /// Why it goes to the Spam folder, if it does.
    pub quarantine: Option<String>,
}

/// Judge a message from its checks.  `own_domain`: is this one of the
/// box's domains?
pub fn at_data(
    settings: &Settings,
    spf: &SpfCheck,
    msg: &MessageCheck,
    own_domain: &dyn Fn(&str) -> bool,
) -> Judgement {
    let mut results = AuthResults::new(&settings.authserv_id);
    results.methods.push(spf_method(spf));
    if msg.dkim.is_empty() {
        results.methods.push(Method::new("dkim", "none"));
    }
    for d in &msg.dkim {
        let mut m = Method::new("dkim", d.result);
        if let Some(r) = &d.reason {
            m = m.reason(r);
        }
        if !d.domain.is_empty() {
            m = m.prop("header.d", &d.domain).prop("header.s", &d.selector);
            if !d.identity.is_empty() {
                m = m.prop("header.i", &d.identity);
            }
            m = m.prop("header.a", &d.algorithm).prop("header.b", &d.b);
        }
        results.methods.push(m);
    }

    let dmarc = &msg.dmarc;
    let aligned = |from: &str| {
        let spf_ok = spf.passed() && aligns(&spf.domain, from);
        let dkim_ok = msg
            .dkim
            .iter()
            .any(|d| d.result == "pass" && aligns(&d.domain, from));
        spf_ok || dkim_ok
    };
    // The disposition: the DMARC policy's, then the own-domain rule.
    let mut action = Action::Mark;
    let mut why = String::new();
    let mut refusal = None;
    if dmarc.result == "temperror" && settings.dns_failure_defers {
        refusal = Some(dns_failure(&format!(
            "the DMARC policy of {}",
            if dmarc.from_domain.is_empty() {
                "the sender"
            } else {
                &dmarc.from_domain
            }
        )));
    } else if dmarc.result == "fail" {
        match dmarc.policy {
            Some("reject") => {
                action = settings.dmarc_reject;
                why = format!("DMARC policy of {} is reject", dmarc.from_domain);
            }
            Some("quarantine") => {
                action = settings.dmarc_quarantine;
                why = format!("DMARC policy of {} is quarantine", dmarc.from_domain);
            }
            _ => {}
        }
    }
    let forged: Option<&String> = msg
        .from_domains
        .iter()
        .find(|d| own_domain(d) && dmarc.result != "pass" && !aligned(d));
    if let Some(d) = forged
        && refusal.is_none()
        && rank(settings.own_domain_forgery) > rank(action)
    {
        action = settings.own_domain_forgery;
        why = format!("{d} is this server's own domain, and neither SPF nor DKIM passed for it");
    }
    if refusal.is_none() && action == Action::Refuse {
        let text = match forged {
            Some(d) if why.contains("own domain") => format!(
                "5.7.1 Mail from {d} must come from this server's own users: log in to send it"
            ),
            _ => format!(
                "5.7.1 Unauthenticated mail from {} is not accepted: its domain's DMARC policy is reject",
                dmarc.from_domain
            ),
        };
        refusal = Some(Reply::new(550, text));
    }

    let applied = match action {
        Action::Refuse => "reject",
        Action::Quarantine => "quarantine",
        Action::Mark => "none",
    };
    let mut m = Method::new(
        "dmarc",
        if forged.is_some() && dmarc.result == "none" {
            "fail"
        } else {
            dmarc.result
        },
    );
    match (dmarc.policy, forged) {
        (Some(p), _) => m = m.comment(&format!("p={p}")),
        (None, Some(_)) => m = m.comment("no DMARC record; this server's own domain"),
        _ => {}
    }
    let header_from = if dmarc.from_domain.is_empty() {
        msg.from_domains.first().cloned().unwrap_or_default()
    } else {
        dmarc.from_domain.clone()
    };
    if !header_from.is_empty() {
        m = m.prop("header.from", &header_from);
    }
    if m.result == "fail" {
        m = m.prop("policy.dmarc", applied);
    }
    results.methods.push(m);
    Judgement {
        refusal,
        results,
        quarantine: (action == Action::Quarantine).then_some(why),
    }
}

fn rank(a: Action) -> u8 {
    match a {
        Action::Mark => 0,
        Action::Quarantine => 1,
        Action::Refuse => 2,
    }
}

/// Relaxed alignment (RFC 7489 §3.1) for the box's purposes: the same
/// domain, or one a subdomain of the other.
fn aligns(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    a == b || a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}"))
}

fn spf_method(spf: &SpfCheck) -> Method {
    let m = Method::new("spf", spf.result);
    match &spf.identity {
        Identity::MailFrom(a) => m.prop("smtp.mailfrom", a),
        Identity::Helo(h) => m.prop("smtp.helo", h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::verify::{DkimCheck, DmarcCheck};

    fn settings() -> Settings {
        let mut cfg = crate::config::Config::defaults(crate::config::Paths::under("/nonexistent"));
        cfg.hostname = "mx.shop.example".to_string();
        Settings::from_config(&cfg).unwrap()
    }

    fn spf(result: &'static str) -> SpfCheck {
        let mut s = SpfCheck::unanswered("mail.example.org", "alice@example.org");
        s.result = result;
        s
    }

    fn msg(dmarc: &'static str, policy: Option<&'static str>, from: &str) -> MessageCheck {
        MessageCheck {
            dkim: vec![],
            dmarc: DmarcCheck {
                result: dmarc,
                from_domain: from.to_string(),
                policy,
                reason: None,
            },
            from_domains: vec![from.to_string()],
            timed_out: false,
        }
    }

    fn nobody(_: &str) -> bool {
        false
    }

    #[test]
    fn spf_at_mail() {
        let s = settings();
        let r = at_mail(&s, &spf("fail"), "192.0.2.9").unwrap();
        assert_eq!(r.code, 550);
        assert!(
            r.one_line()
                .contains("5.7.1 SPF: example.org does not allow 192.0.2.9")
        );
        assert_eq!(
            at_mail(&s, &spf("temperror"), "192.0.2.9").unwrap().code,
            451
        );
        for ok in ["pass", "softfail", "neutral", "none", "permerror"] {
            assert!(at_mail(&s, &spf(ok), "192.0.2.9").is_none(), "{ok}");
        }
        let mut mark = s.clone();
        mark.spf_fail = Action::Mark;
        mark.dns_failure_defers = false;
        assert!(at_mail(&mark, &spf("fail"), "192.0.2.9").is_none());
        assert!(at_mail(&mark, &spf("temperror"), "192.0.2.9").is_none());
    }

    #[test]
    fn dmarc_policies() {
        let s = settings();
        let j = at_data(
            &s,
            &spf("fail"),
            &msg("fail", Some("reject"), "example.org"),
            &nobody,
        );
        assert_eq!(j.refusal.unwrap().code, 550);
        let j = at_data(
            &s,
            &spf("fail"),
            &msg("fail", Some("quarantine"), "example.org"),
            &nobody,
        );
        assert!(j.refusal.is_none());
        assert!(j.quarantine.is_some());
        assert_eq!(j.results.dmarc_disposition(), Some("quarantine"));
        let j = at_data(
            &s,
            &spf("fail"),
            &msg("fail", Some("none"), "example.org"),
            &nobody,
        );
        assert!(j.refusal.is_none() && j.quarantine.is_none());
        assert_eq!(j.results.dmarc_disposition(), Some("none"));
        let j = at_data(
            &s,
            &spf("pass"),
            &msg("temperror", None, "example.org"),
            &nobody,
        );
        assert_eq!(j.refusal.unwrap().code, 451);
        let mut relaxed = s.clone();
        relaxed.dmarc_reject = Action::Quarantine;
        let j = at_data(
            &relaxed,
            &spf("fail"),
            &msg("fail", Some("reject"), "example.org"),
            &nobody,
        );
        assert!(j.refusal.is_none());
        assert_eq!(j.results.dmarc_disposition(), Some("quarantine"));
    }

    #[test]
    fn own_domain_forgery_needs_spf_or_dkim_for_it() {
        let s = settings();
        let ours = |d: &str| d == "shop.example";
        let forged = msg("none", None, "shop.example");
        let j = at_data(&s, &spf("none"), &forged, &ours);
        let r = j.refusal.unwrap();
        assert_eq!(r.code, 550);
        assert!(r.one_line().contains("shop.example"));
        // SPF passing for a subdomain of it aligns.
        let mut sp = spf("pass");
        sp.domain = "bounce.shop.example".to_string();
        assert!(at_data(&s, &sp, &forged, &ours).refusal.is_none());
        // So does a DKIM pass for it.
        let mut signed = forged.clone();
        signed.dkim.push(DkimCheck {
            result: "pass",
            domain: "shop.example".to_string(),
            selector: "s".to_string(),
            algorithm: "ed25519-sha256".to_string(),
            identity: String::new(),
            b: "x".to_string(),
            reason: None,
        });
        assert!(at_data(&s, &spf("none"), &signed, &ours).refusal.is_none());
        // Someone else's domain with no DMARC: accepted, marked.
        let j = at_data(&s, &spf("none"), &msg("none", None, "example.org"), &ours);
        assert!(j.refusal.is_none());
        assert!(j.results.says("dmarc", "none"));
    }
}
