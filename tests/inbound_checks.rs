//! The sender checks (issue 19) end to end below the SMTP dialogue: the
//! [`Gate`] with a resolver pointed at the tests' DNS server, on messages
//! signed by mailroom's own DKIM signer (rsa-sha256 and ed25519-sha256),
//! checked by the product's verifier (mail-auth): what the SMTP server
//! would answer, and the Authentication-Results it would write.  The
//! compat suite (test_inbound_checks.py) does the same through the
//! installed server, with dnsmasq, a second network namespace and dkimpy.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::fake_dns::{Entry, FakeDns, Zone};
use hickory_resolver::proto::rr::RData;
use hickory_resolver::proto::rr::rdata::{A, MX, TXT};
use mailroom::config::{Config, Paths};
use mailroom::dkim::{Algorithm, Key, generate, sign_message};
use mailroom::inbound::{Gate, Settings, Verifier};

const SENDER_IP: &str = "192.0.2.25";
const OTHER_IP: &str = "198.51.100.7";

fn txt(s: &str) -> Entry {
    let parts = s
        .as_bytes()
        .chunks(255)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    Entry::Record(RData::TXT(TXT::new(parts)))
}

fn a(ip: &str) -> Entry {
    Entry::Record(RData::A(A(ip.parse().unwrap())))
}

struct World {
    dns: FakeDns,
    rsa: Key,
    ed: Key,
}

/// example.org: SPF for SENDER_IP, DMARC p=reject, two DKIM keys;
/// quarantine.example: DMARC p=quarantine, no SPF; a blocklist zone
/// listing 192.0.2.66 (with its reason) and answering 192.0.2.67 with
/// Spamhaus's "public resolver" error code.
fn world() -> World {
    let rsa = Key::from_pem("rsa", &generate(Algorithm::Rsa, 2048).unwrap()).unwrap();
    let ed = Key::from_pem("ed", &generate(Algorithm::Ed25519, 0).unwrap()).unwrap();
    let mut z = Zone::new();
    z.add("example.org", txt(&format!("v=spf1 ip4:{SENDER_IP} -all")));
    z.add(
        "example.org",
        Entry::Record(RData::MX(MX::new(10, "mx.example.org.".parse().unwrap()))),
    );
    z.add("_dmarc.example.org", txt("v=DMARC1; p=reject"));
    z.add("rsa._domainkey.example.org", txt(&rsa.dns_record()));
    z.add("ed._domainkey.example.org", txt(&ed.dns_record()));
    z.add("quarantine.example", a("192.0.2.80"));
    z.add("_dmarc.quarantine.example", txt("v=DMARC1; p=quarantine"));
    z.add("shop.example", a("192.0.2.1"));
    z.add("66.2.0.192.bl.example", a("127.0.0.2"));
    z.add(
        "66.2.0.192.bl.example",
        txt("Listed: see https://bl.example/192.0.2.66"),
    );
    z.add("67.2.0.192.bl.example", a("127.255.255.254"));
    z.add("slow.example", Entry::Timeout);
    World {
        dns: FakeDns::start(z),
        rsa,
        ed,
    }
}

fn gate(w: &World, extra: &str) -> Gate {
    let dir = std::env::temp_dir().join(format!("mailroom-inbound-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("etc/mail")).unwrap();
    std::fs::write(
        dir.join("etc/mail/mailroom.conf"),
        format!("hostname = mx.shop.example\ndnsbl = bl.example=127.0.0.[2..11]\ndns_timeout = 500ms\ninbound_check_time = 2s\n{extra}"),
    )
    .unwrap();
    let cfg = Config::load(Paths::under(&dir), None).unwrap();
    let settings = Settings::from_config(&cfg).unwrap();
    let v = Verifier::with_name_servers(
        &[w.dns.addr],
        "mx.shop.example",
        settings.dns_timeout,
        settings.check_time,
    )
    .unwrap();
    Gate::with_verifier(settings, "mx.shop.example", v)
}

fn message(from: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: accounts@shop.example\r\nSubject: Invoice 4711\r\nDate: Sat, 05 Dec 2026 10:00:00 +0000\r\nMessage-ID: <4711@example.org>\r\n\r\n{body}"
    )
    .into_bytes()
}

fn signed(key: &Key, from: &str, body: &str) -> Vec<u8> {
    sign_message(
        &message(from, body),
        "example.org",
        std::slice::from_ref(key),
        1_790_000_000,
    )
    .unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn nobody(_: &str) -> bool {
    false
}

#[test]
fn signed_mail_from_its_own_server_passes_everything() {
    let w = world();
    let g = gate(&w, "");
    let spf = g
        .at_mail(ip(SENDER_IP), "mail.example.org", "alice@example.org")
        .unwrap();
    assert_eq!(spf.result, "pass");
    for key in [&w.rsa, &w.ed] {
        let raw = signed(key, "Alice <alice@example.org>", "Pay it.\r\n");
        let j = g.at_data(&raw, &spf, &nobody);
        assert!(j.refusal.is_none(), "{j:?}");
        let ar = j.results.render();
        let alg = key.algorithm().tag();
        assert!(
            ar.starts_with("Authentication-Results: mx.shop.example;"),
            "{ar}"
        );
        assert!(
            ar.contains("spf=pass smtp.mailfrom=alice@example.org"),
            "{ar}"
        );
        assert!(
            ar.contains(&format!(
                "dkim=pass header.d=example.org header.s={}",
                key.selector
            )),
            "{ar}"
        );
        assert!(ar.contains(&format!("header.a={alg}")), "{ar}");
        assert!(
            ar.contains("dmarc=pass (p=reject) header.from=example.org"),
            "{ar}"
        );
    }
}

#[test]
fn a_changed_body_byte_fails_dkim_and_a_reject_policy_refuses() {
    let w = world();
    let g = gate(&w, "spf_fail = mark");
    // From elsewhere: SPF fails (marked here, refused by default).
    let spf = g
        .at_mail(ip(OTHER_IP), "mail.example.org", "alice@example.org")
        .unwrap();
    assert_eq!(spf.result, "fail");
    for key in [&w.rsa, &w.ed] {
        let mut raw = signed(key, "alice@example.org", "Pay it.\r\n");
        let n = raw.len();
        raw[n - 4] = b'!';
        let j = g.at_data(&raw, &spf, &nobody);
        assert!(j.results.says("dkim", "fail"), "{j:?}");
        assert!(j.results.says("dmarc", "fail"), "{j:?}");
        let r = j.refusal.expect("p=reject refuses");
        assert_eq!(r.code, 550);
        assert!(r.one_line().contains("5.7.1"), "{r:?}");
    }
    let g = gate(&w, "");
    let r = g
        .at_mail(ip(OTHER_IP), "mail.example.org", "alice@example.org")
        .unwrap_err();
    assert_eq!(r.code, 550);
    assert!(
        r.one_line()
            .contains("SPF: example.org does not allow 198.51.100.7"),
        "{r:?}"
    );
}

#[test]
fn quarantine_and_own_domain_forgery() {
    let w = world();
    let g = gate(&w, "");
    let spf = g
        .at_mail(
            ip(OTHER_IP),
            "x.quarantine.example",
            "news@quarantine.example",
        )
        .unwrap();
    assert_eq!(spf.result, "none");
    let j = g.at_data(&message("news@quarantine.example", "Hi\r\n"), &spf, &nobody);
    assert!(j.refusal.is_none());
    assert!(j.quarantine.is_some());
    assert_eq!(j.results.dmarc_disposition(), Some("quarantine"));

    // From: the box's own domain, which publishes no DMARC record.
    let ours = |d: &str| d == "shop.example";
    let spf = g
        .at_mail(ip(OTHER_IP), "evil.example", "ceo@shop.example")
        .unwrap();
    let j = g.at_data(
        &message("CEO <ceo@shop.example>", "Wire 9,800 EUR today.\r\n"),
        &spf,
        &ours,
    );
    let r = j.refusal.expect("forged own domain refused");
    assert_eq!(r.code, 550);
    assert!(r.one_line().contains("shop.example"), "{r:?}");
}

#[test]
fn a_sender_domain_that_does_not_exist_is_refused_as_sendmail_8_does() {
    let w = world();
    let g = gate(&w, "");
    let r = g
        .at_mail(ip(OTHER_IP), "x.example", "someone@nowhere.example")
        .unwrap_err();
    assert_eq!(r.code, 553);
    assert!(r.one_line().contains("5.1.8"), "{r:?}");
}

#[test]
fn dns_that_never_answers_is_451_within_the_budget() {
    let w = world();
    let g = gate(&w, "");
    let t = Instant::now();
    let r = g
        .at_mail(ip(OTHER_IP), "slow.example", "a@slow.example")
        .unwrap_err();
    assert_eq!(r.code, 451, "{r:?}");
    assert!(r.one_line().starts_with("451 4."), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // dns_failure = accept: marked temperror, accepted.
    let g = gate(&w, "dns_failure = accept");
    let spf = g
        .at_mail(ip(OTHER_IP), "slow.example", "a@slow.example")
        .unwrap();
    assert_eq!(spf.result, "temperror");
}

#[test]
fn blocklists_count_listings_and_never_error_codes() {
    let w = world();
    let g = gate(&w, "");
    let r = g
        .at_connect(ip("192.0.2.66"), "[192.0.2.66]")
        .expect("listed");
    assert_eq!(r.code, 554);
    let text = r.one_line();
    assert!(
        text.contains("5.7.1") && text.contains("bl.example"),
        "{text}"
    );
    assert!(
        text.contains("Listed: see https://bl.example/192.0.2.66"),
        "{text}"
    );
    assert!(g.at_connect(ip("192.0.2.67"), "[192.0.2.67]").is_none());
    assert!(g.at_connect(ip("192.0.2.68"), "[192.0.2.68]").is_none());
    // An allow list outweighs it.
    let w2 = world();
    let g = gate(&w2, "dnswl = bl.example=127.0.0.2*2\n");
    assert!(g.at_connect(ip("192.0.2.66"), "[192.0.2.66]").is_none());
}
