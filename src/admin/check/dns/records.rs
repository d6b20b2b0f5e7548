//! A domain's own records, as receivers look them up: MX, SPF, DKIM and
//! DMARC (see [`super`]).

use std::net::IpAddr;

use mail_auth::common::parse::TxtRecordParser;

use super::{DomainSetup, Level, Net, PublicKey, Report, Setup, list, zone_txt};
use crate::dkim::Algorithm;
use crate::dns::Answer;

/// MX: one of the domain's MX hosts is this host.  Returns the MX names
/// that are (the names sending servers connect to: the certificate must
/// cover them), and whether the domain exists at all.
pub(super) fn check_mx(
    s: &Setup,
    d: &DomainSetup,
    net: &dyn Net,
    r: &mut Report,
) -> (Vec<String>, bool) {
    let name = &d.name;
    let fix = vec![format!("{name}. IN MX 10 {}.", s.host)];
    let points_here =
        |host: &str, addrs: &[IpAddr]| host == s.host || addrs.iter().any(|a| s.own.contains(a));
    match net.mx(name) {
        Answer::Found(mxs) => {
            let mut here = Vec::new();
            let mut elsewhere = Vec::new();
            for (_, mx) in &mxs {
                if mx.is_empty() {
                    r.add(
                        Level::Error,
                        name,
                        "mx",
                        format!("{name} publishes a null MX (RFC 7505): it says it takes no mail at all; replace it by"),
                        fix.clone(),
                    );
                    return (here, true);
                }
                match net.addresses(mx) {
                    Answer::Found(a) if points_here(mx, &a) => here.push(mx.clone()),
                    Answer::Found(a) => elsewhere.push(format!("{mx} ({})", list(&a))),
                    Answer::NoSuchDomain | Answer::NoData if *mx == s.host => here.push(mx.clone()),
                    Answer::NoSuchDomain | Answer::NoData => {
                        elsewhere.push(format!("{mx} (no address)"))
                    }
                    Answer::TempFail(why) => {
                        r.dns_failed(name, "mx", &format!("the address of its MX {mx}"), &why);
                        return (here, true);
                    }
                }
            }
            if here.is_empty() {
                r.add(
                    Level::Error,
                    name,
                    "mx",
                    format!(
                        "its MX points at {}, not at this host ({}): mail for {name} does not arrive here; publish instead",
                        elsewhere.join(", "),
                        s.host
                    ),
                    fix,
                );
            }
            (here, true)
        }
        Answer::NoData => {
            // RFC 5321 §5.1: without MX, senders use the address records.
            match net.addresses(name) {
                Answer::Found(a) if points_here(name, &a) => {
                    if *name != s.host {
                        r.add(
                            Level::Warning,
                            name,
                            "mx",
                            format!("no MX record: mail for {name} arrives only through its address record (the implicit MX), which some senders and every checker frown on; publish"),
                            fix,
                        );
                    }
                    (vec![name.clone()], true)
                }
                Answer::TempFail(why) => {
                    r.dns_failed(name, "mx", "its address (it has no MX)", &why);
                    (Vec::new(), true)
                }
                _ => {
                    r.add(
                        Level::Error,
                        name,
                        "mx",
                        format!("no MX record, and no address of this host: mail for {name} does not arrive here; publish"),
                        fix,
                    );
                    (Vec::new(), true)
                }
            }
        }
        Answer::NoSuchDomain => {
            r.add(
                Level::Error,
                name,
                "domain",
                format!("{name} does not exist in DNS (NXDOMAIN): no mail reaches it, and receivers refuse mail from it; register it, then publish at least"),
                fix,
            );
            (Vec::new(), false)
        }
        Answer::TempFail(why) => {
            r.dns_failed(name, "mx", "its MX", &why);
            (Vec::new(), true)
        }
    }
}

/// The `v=spf1` records among TXT records.
fn spf_records(txt: &Answer<Vec<String>>) -> Vec<String> {
    match txt {
        Answer::Found(v) => v
            .iter()
            .filter(|t| {
                let t = t.trim_start().to_ascii_lowercase();
                t == "v=spf1" || t.starts_with("v=spf1 ")
            })
            .map(|t| t.trim().to_string())
            .collect(),
        _ => Vec::new(),
    }
}

/// `ip4:A ip6:B` for the addresses.
pub(super) fn spf_mechanisms(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(|ip| match ip {
            IpAddr::V4(v4) => format!("ip4:{v4}"),
            IpAddr::V6(v6) => format!("ip6:{v6}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `record` with `ips` authorised first.
fn spf_with(record: &str, ips: &[IpAddr]) -> String {
    let rest = record.get(6..).unwrap_or("");
    format!("v=spf1 {}{rest}", spf_mechanisms(ips))
}

/// SPF: every sending address passes for `postmaster@DOMAIN`.
pub(super) fn check_spf(s: &Setup, d: &DomainSetup, net: &dyn Net, r: &mut Report) {
    let name = &d.name;
    if s.smarthost.is_some() || d.senders.is_empty() {
        return;
    }
    let sender = format!("postmaster@{name}");
    let mut failing: Vec<(IpAddr, &str)> = Vec::new();
    let mut permerror = false;
    for ip in &d.senders {
        match net.spf(*ip, &s.helo, &sender) {
            "pass" => {}
            "temperror" => {
                r.dns_failed(name, "spf", &format!("SPF for {ip}"), "temperror");
                return;
            }
            "permerror" => permerror = true,
            other => failing.push((*ip, other)),
        }
    }
    let txt = net.txt(name);
    if let Answer::TempFail(why) = &txt {
        if permerror || !failing.is_empty() {
            r.dns_failed(name, "spf", "its SPF record", why);
        }
        return;
    }
    let records = spf_records(&txt);
    if permerror {
        let (why, fix) = match records.as_slice() {
            [] => (
                "no v=spf1 record of its own".to_string(),
                zone_txt(name, &format!("v=spf1 {} -all", spf_mechanisms(&d.senders))),
            ),
            [one] => (
                match mail_auth::spf::Spf::parse(one.as_bytes()) {
                    Err(e) => format!("its record does not parse ({e})"),
                    Ok(_) => "more than 10 DNS lookups (RFC 7208 §4.6.4), or an include:/redirect= naming a domain without SPF".to_string(),
                },
                zone_txt(name, one),
            ),
            [first, ..] => (
                format!("{} v=spf1 records where there must be one", records.len()),
                zone_txt(name, first),
            ),
        };
        r.add(
            Level::Error,
            name,
            "spf",
            format!("SPF of {name} is broken (permerror: {why}): receivers treat its mail as unauthenticated or refuse it; fix it to one record, now"),
            vec![fix],
        );
        return;
    }
    if failing.is_empty() {
        return;
    }
    let ips: Vec<IpAddr> = failing.iter().map(|(ip, _)| *ip).collect();
    match records.first() {
        None => r.add(
            Level::Error,
            name,
            "spf",
            format!("{name} publishes no SPF record: receivers cannot tell its mail from this host ({}) from forgeries; publish", list(&ips)),
            vec![zone_txt(name, &format!("v=spf1 {} -all", spf_mechanisms(&ips)))],
        ),
        Some(record) => {
            let said: Vec<String> = failing
                .iter()
                .map(|(ip, res)| format!("{ip} ({res})"))
                .collect();
            r.add(
                Level::Error,
                name,
                "spf",
                format!(
                    "SPF of {name} does not authorise the address{} this host sends its mail from: {}; receivers treat that mail as forged; publish instead",
                    if said.len() == 1 { "" } else { "es" },
                    said.join(", ")
                ),
                vec![zone_txt(name, &spf_with(record, &ips))],
            )
        }
    }
}

/// The tags of a DKIM or DMARC record (`k=v; ...`), names lower case.
fn tags(record: &str) -> Vec<(String, String)> {
    record
        .split(';')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

/// Does the published `p=` hold `key`?  RSA keys may be published as
/// PKCS#1 instead of SubjectPublicKeyInfo: the SPKI ends with them.
fn same_key(published: &[u8], key: &PublicKey) -> bool {
    published == key.public
        || (key.algorithm == Algorithm::Rsa
            && published.len() > 64
            && key.public.ends_with(published))
}

/// DKIM: each key's record is published and holds that key.
pub(super) fn check_dkim(d: &DomainSetup, net: &dyn Net, r: &mut Report) {
    let name = &d.name;
    let keys = match &d.keys {
        Err(why) => {
            r.add(
                Level::Warning,
                name,
                "dkim",
                format!("its DKIM keys were not checked: {why} (run as root)"),
                Vec::new(),
            );
            return;
        }
        Ok(k) => k,
    };
    if keys.is_empty() {
        r.add(
            Level::Warning,
            name,
            "dkim",
            format!("mail from {name} is not DKIM-signed: receivers have only SPF, which forwarding breaks (and bulk senders need both); run 'mailroom dkim generate {name}' and publish the records it prints"),
            Vec::new(),
        );
        return;
    }
    for (selector, key) in keys {
        let at = format!("{selector}._domainkey.{name}");
        let key = match key {
            Ok(k) => k,
            Err(e) => {
                r.add(
                    Level::Error,
                    name,
                    "dkim",
                    format!("the key for selector {selector} cannot be used ({e}): mail from {name} stays queued ('mailroom check')"),
                    Vec::new(),
                );
                continue;
            }
        };
        let fix = vec![key.zone.clone()];
        let records = match net.txt(&at) {
            Answer::Found(v) => v,
            Answer::NoData | Answer::NoSuchDomain => {
                r.add(
                    Level::Error,
                    &at,
                    "dkim",
                    format!("no DKIM record: receivers cannot verify the signatures of mail from {name} (selector {selector}); publish"),
                    fix,
                );
                continue;
            }
            Answer::TempFail(why) => {
                r.dns_failed(&at, "dkim", "its DKIM record", &why);
                continue;
            }
        };
        if records.len() > 1 {
            r.add(
                Level::Error,
                &at,
                "dkim",
                format!(
                    "{} TXT records where there must be one: receivers read either; keep only",
                    records.len()
                ),
                fix,
            );
            continue;
        }
        let record = &records[0];
        let t = tags(record);
        let tag = |k: &str| t.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let p: String = tag("p")
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let alg = tag("k").unwrap_or("rsa").to_ascii_lowercase();
        let problem = if let Err(e) = mail_auth::common::verify::DomainKey::parse(record.as_bytes())
        {
            Some(format!("it does not parse as receivers read it ({e})"))
        } else if alg != key.algorithm.key_type() {
            Some(format!(
                "it is for a k={alg} key, the key on disk is {}",
                key.algorithm.key_type()
            ))
        } else if !crate::b64::decode(&p).is_some_and(|b| same_key(&b, key)) {
            Some(format!(
                "it holds another key than /etc/mail/dkim/{name}/{selector}.key: every signature fails"
            ))
        } else {
            None
        };
        if let Some(why) = problem {
            r.add(
                Level::Error,
                &at,
                "dkim",
                format!("the DKIM record does not match the key mail from {name} is signed with: {why}; publish instead"),
                fix,
            );
        } else if tag("t").is_some_and(|v| v.split(':').any(|f| f.trim() == "y")) {
            r.add(
                Level::Warning,
                &at,
                "dkim",
                "t=y (testing): receivers treat failed signatures as none; remove t=y now that the record matches",
                fix,
            );
        }
    }
}

/// The `v=DMARC1` records among TXT records.
fn dmarc_records(v: &[String]) -> Vec<&String> {
    v.iter()
        .filter(|t| {
            let t = t.trim_start();
            t.len() >= 8 && t[..8].eq_ignore_ascii_case("v=DMARC1")
        })
        .collect()
}

/// DMARC: a record at `_dmarc.DOMAIN`, else at a parent (the tree walk
/// of DMARCbis, RFC 9989 §4.10, down to two labels), that parses.
pub(super) fn check_dmarc(d: &DomainSetup, net: &dyn Net, r: &mut Report) {
    let name = &d.name;
    let at = format!("_dmarc.{name}");
    let fix = vec![zone_txt(
        &at,
        &format!("v=DMARC1; p=none; rua=mailto:postmaster@{name}"),
    )];
    let labels: Vec<&str> = name.split('.').collect();
    let mut asked = Vec::new();
    for start in 0..labels.len().saturating_sub(1).max(1) {
        let domain = labels[start..].join(".");
        let q = format!("_dmarc.{domain}");
        let records = match net.txt(&q) {
            Answer::Found(v) => v,
            Answer::NoData | Answer::NoSuchDomain => {
                asked.push(q);
                continue;
            }
            Answer::TempFail(why) => {
                r.dns_failed(name, "dmarc", &format!("its DMARC record ({q})"), &why);
                return;
            }
        };
        let found = dmarc_records(&records);
        match found.as_slice() {
            [] => {
                asked.push(q);
                continue;
            }
            [one] => {
                if let Err(e) = mail_auth::dmarc::Dmarc::parse(one.as_bytes()) {
                    r.add(
                        Level::Error,
                        &q,
                        "dmarc",
                        format!("the DMARC record does not parse ({e}): receivers ignore it; publish instead"),
                        fix,
                    );
                }
            }
            _ => r.add(
                Level::Error,
                &q,
                "dmarc",
                format!(
                    "{} DMARC records where there must be one: receivers apply none; keep only",
                    found.len()
                ),
                fix,
            ),
        }
        return;
    }
    let parents = if asked.len() > 1 {
        format!(" (nor at {})", asked[1..].join(", "))
    } else {
        String::new()
    };
    r.add(
        Level::Error,
        &at,
        "dmarc",
        format!(
            "no DMARC record{parents}: receivers cannot refuse forgeries of {name}, and Gmail, Yahoo and Outlook want one from bulk senders; publish (p=none only asks for reports: raise it to quarantine once they show only your own mail)"
        ),
        fix,
    );
}

#[cfg(test)]
mod tests {
    use super::super::fake::*;
    use super::*;

    #[test]
    fn an_mx_elsewhere_is_an_error_with_the_record_to_publish() {
        let (setup, mut net) = world();
        net.mx.insert(
            SHOP.into(),
            Answer::Found(vec![(10, "mx.other.example".into())]),
        );
        net.addresses.insert(
            "mx.other.example".into(),
            Answer::Found(vec![ip("203.0.113.5")]),
        );
        let f = findings(&setup, &net);
        let mx = only(&f, "mx", Level::Error);
        assert!(mx.text.contains("mx.other.example (203.0.113.5)"), "{mx:?}");
        assert_eq!(mx.publish, vec!["shop.example. IN MX 10 mx.example.test."]);
    }

    #[test]
    fn a_backup_mx_elsewhere_is_fine_and_an_mx_by_address_counts() {
        let (setup, mut net) = world();
        net.mx.insert(
            SHOP.into(),
            Answer::Found(vec![
                (10, "mail.shop.example".into()),
                (20, "backup.example".into()),
            ]),
        );
        net.addresses
            .insert("mail.shop.example".into(), Answer::Found(vec![ip(IP)]));
        net.addresses.insert(
            "backup.example".into(),
            Answer::Found(vec![ip("203.0.113.5")]),
        );
        let mut r = Report::default();
        let (here, exists) = check_mx(&setup, &setup.domains[0], &net, &mut r);
        assert_eq!(r.0, vec![]);
        assert_eq!(
            (here, exists),
            (vec!["mail.shop.example".to_string()], true)
        );
    }

    #[test]
    fn without_mx_the_address_record_is_a_warning_except_for_the_host_name() {
        let (mut setup, mut net) = world();
        net.mx.clear();
        net.addresses
            .insert(SHOP.into(), Answer::Found(vec![ip(IP)]));
        let f = findings(&setup, &net);
        only(&f, "mx", Level::Warning);
        setup.domains[0].name = HOST.into();
        let mut r = Report::default();
        check_mx(&setup, &setup.domains[0], &net, &mut r);
        assert_eq!(r.0, vec![]);
    }

    #[test]
    fn a_domain_that_does_not_exist_is_one_error() {
        let (setup, mut net) = world();
        net.mx.insert(SHOP.into(), Answer::NoSuchDomain);
        net.txt.clear();
        let f = findings(&setup, &net);
        let shop: Vec<_> = f.iter().filter(|x| x.subject.ends_with(SHOP)).collect();
        assert_eq!(shop.len(), 1, "{f:#?}");
        assert_eq!((shop[0].check, shop[0].level), ("domain", Level::Error));
    }

    #[test]
    fn spf_that_misses_this_host_gets_its_address_added_to_the_record() {
        let (setup, mut net) = world();
        net.set_txt(SHOP, &["v=spf1 include:_spf.provider.example -all"]);
        net.spf.insert((ip(IP), SHOP.into()), "fail");
        let f = findings(&setup, &net);
        let spf = only(&f, "spf", Level::Error);
        assert!(
            spf.text
                .contains("sends its mail from: 198.51.100.1 (fail);"),
            "{spf:?}"
        );
        assert_eq!(
            spf.publish,
            vec![
                r#"shop.example. IN TXT "v=spf1 ip4:198.51.100.1 include:_spf.provider.example -all""#
            ]
        );
    }

    #[test]
    fn no_spf_record_gets_one_naming_the_sending_addresses() {
        let (mut setup, mut net) = world();
        setup.domains[0].senders.push(ip("2001:db8:51::1"));
        net.set_txt(SHOP, &["google-site-verification=x"]);
        net.spf.clear();
        let mut r = Report::default();
        check_spf(&setup, &setup.domains[0], &net, &mut r);
        let spf = only(&r.0, "spf", Level::Error);
        assert_eq!(
            spf.publish,
            vec![r#"shop.example. IN TXT "v=spf1 ip4:198.51.100.1 ip6:2001:db8:51::1 -all""#]
        );
    }

    #[test]
    fn spf_permerror_says_why() {
        let (setup, mut net) = world();
        net.spf.insert((ip(IP), SHOP.into()), "permerror");
        net.set_txt(SHOP, &["v=spf1 ip4:198.51.100.1 -all", "v=spf1 mx -all"]);
        let mut r = Report::default();
        check_spf(&setup, &setup.domains[0], &net, &mut r);
        assert!(
            only(&r.0, "spf", Level::Error)
                .text
                .contains("2 v=spf1 records")
        );
        net.set_txt(SHOP, &["v=spf1 ip4:198.51.100.1 include -all"]);
        let mut r = Report::default();
        check_spf(&setup, &setup.domains[0], &net, &mut r);
        assert!(
            only(&r.0, "spf", Level::Error)
                .text
                .contains("does not parse"),
            "{:?}",
            r.0
        );
    }

    #[test]
    fn an_spf_dns_failure_is_not_the_domains_fault() {
        let (setup, mut net) = world();
        net.spf.insert((ip(IP), SHOP.into()), "temperror");
        let f = findings(&setup, &net);
        let spf = only(&f, "spf", Level::Unchecked);
        assert!(spf.text.contains("DNS did not answer"), "{spf:?}");
        assert!(!f.iter().any(|x| x.level == Level::Error), "{f:#?}");
    }

    #[test]
    fn a_missing_dkim_record_is_published_as_mailroom_dkim_show_prints_it() {
        let (setup, mut net) = world();
        net.txt.remove("sel._domainkey.shop.example");
        let f = findings(&setup, &net);
        let dkim = only(&f, "dkim", Level::Error);
        assert_eq!(dkim.subject, "sel._domainkey.shop.example");
        let Ok(keys) = &setup.domains[0].keys else {
            panic!()
        };
        assert_eq!(dkim.publish, vec![keys[0].1.as_ref().unwrap().zone.clone()]);
    }

    #[test]
    fn a_dkim_record_with_another_key_is_an_error() {
        let (setup, mut net) = world();
        let other = key("sel", SHOP, Algorithm::Ed25519);
        net.set_txt("sel._domainkey.shop.example", &[&record_of(&other.zone)]);
        let f = findings(&setup, &net);
        assert!(only(&f, "dkim", Level::Error).text.contains("another key"));
        // Another algorithm; an unparsable record; two records.
        for records in [
            vec!["v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"],
            vec!["v=DKIM1; k=ed25519; p="],
            vec!["v=DKIM1; k=ed25519; p=AAAA", "v=DKIM1; k=ed25519; p=BBBB"],
        ] {
            net.set_txt("sel._domainkey.shop.example", &records);
            let f = findings(&setup, &net);
            only(&f, "dkim", Level::Error);
        }
    }

    #[test]
    fn a_dkim_record_in_testing_mode_warns() {
        let (setup, mut net) = world();
        let Ok(keys) = &setup.domains[0].keys else {
            panic!()
        };
        let record = record_of(&keys[0].1.as_ref().unwrap().zone);
        net.set_txt("sel._domainkey.shop.example", &[&format!("{record}; t=y")]);
        let f = findings(&setup, &net);
        only(&f, "dkim", Level::Warning);
    }

    #[test]
    fn no_dkim_keys_is_a_warning() {
        let (mut setup, net) = world();
        setup.domains[0].keys = Ok(Vec::new());
        let f = findings(&setup, &net);
        assert!(
            only(&f, "dkim", Level::Warning)
                .text
                .contains("mailroom dkim generate shop.example")
        );
    }

    #[test]
    fn an_rsa_key_published_as_pkcs1_is_the_same_key() {
        let spki: Vec<u8> = (0..=255u8).collect();
        let k = PublicKey {
            algorithm: Algorithm::Rsa,
            public: spki.clone(),
            zone: String::new(),
        };
        assert!(same_key(&spki, &k));
        assert!(same_key(&spki[24..], &k));
        assert!(!same_key(&spki[250..], &k), "too short to be a key");
        assert!(!same_key(&spki[..200], &k));
    }

    #[test]
    fn dmarc_is_looked_for_up_the_tree_and_must_parse() {
        let (mut setup, mut net) = world();
        setup.domains[0].name = "eu.shop.example".into();
        let d = &setup.domains[0];
        let mut r = Report::default();
        check_dmarc(d, &net, &mut r);
        assert_eq!(r.0, vec![], "_dmarc.shop.example covers eu.shop.example");
        net.set_txt("_dmarc.shop.example", &["v=DMARC1; p=sometimes"]);
        let mut r = Report::default();
        check_dmarc(d, &net, &mut r);
        let e = only(&r.0, "dmarc", Level::Error);
        assert!(e.text.contains("does not parse"), "{e:?}");
        net.set_txt(
            "_dmarc.shop.example",
            &["v=DMARC1; p=none", "v=DMARC1; p=reject"],
        );
        let mut r = Report::default();
        check_dmarc(d, &net, &mut r);
        assert!(
            only(&r.0, "dmarc", Level::Error)
                .text
                .contains("2 DMARC records")
        );
        net.txt.insert(
            "_dmarc.eu.shop.example".into(),
            Answer::TempFail("timed out".into()),
        );
        let mut r = Report::default();
        check_dmarc(d, &net, &mut r);
        only(&r.0, "dmarc", Level::Unchecked);
    }

    #[test]
    fn no_dmarc_up_the_tree_names_every_place_looked_at() {
        let (mut setup, mut net) = world();
        net.txt.remove("_dmarc.shop.example");
        setup.domains[0].name = "eu.shop.example".into();
        let mut r = Report::default();
        check_dmarc(&setup.domains[0], &net, &mut r);
        let e = only(&r.0, "dmarc", Level::Error);
        assert_eq!(e.subject, "_dmarc.eu.shop.example");
        assert!(
            e.text
                .starts_with("no DMARC record (nor at _dmarc.shop.example):"),
            "{e:?}"
        );
    }

    #[test]
    fn no_dmarc_anywhere_is_an_error_with_a_first_record() {
        let (setup, mut net) = world();
        net.set_txt("_dmarc.shop.example", &["some other text"]);
        let f = findings(&setup, &net);
        let e = only(&f, "dmarc", Level::Error);
        assert_eq!(
            e.publish,
            vec![
                r#"_dmarc.shop.example. IN TXT "v=DMARC1; p=none; rua=mailto:postmaster@shop.example""#
            ]
        );
    }
}
