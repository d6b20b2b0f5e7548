//! The tests' world: DNS answers from tables, around one box
//! (`mx.example.test`, 198.51.100.1) hosting `shop.example`, with every
//! record right until a test breaks one.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{DomainSetup, Finding, Level, Net, PublicKey, Report, Setup};
use crate::dkim::{self, Algorithm};
use crate::dns::Answer;
use crate::inbound::dnsbl::{self, Score, Sites};

pub const HOST: &str = "mx.example.test";
pub const SHOP: &str = "shop.example";
pub const IP: &str = "198.51.100.1";

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn key(selector: &str, domain: &str, alg: Algorithm) -> PublicKey {
    let k = dkim::Key::from_pem(selector, &dkim::generate(alg, 2048).unwrap()).unwrap();
    PublicKey {
        algorithm: alg,
        public: k.public_key(),
        zone: dkim::zone_entry(selector, domain, &k.dns_record()),
    }
}

/// The TXT text of a zone entry (its strings joined).
pub fn record_of(zone: &str) -> String {
    zone.split('"').skip(1).step_by(2).collect()
}

#[derive(Default)]
pub struct FakeNet {
    pub mx: HashMap<String, Answer<Vec<(u16, String)>>>,
    pub addresses: HashMap<String, Answer<Vec<IpAddr>>>,
    pub txt: HashMap<String, Answer<Vec<String>>>,
    pub ptr: HashMap<IpAddr, Answer<Vec<String>>>,
    /// (address, domain or EHLO name) → result; else `none`.
    pub spf: HashMap<(IpAddr, String), &'static str>,
    /// (address, zone) → the list's answer; else not listed.
    pub listed: HashMap<(IpAddr, String), dnsbl::Answer>,
    pub list_text: HashMap<(IpAddr, String), String>,
}

impl FakeNet {
    pub fn set_txt(&mut self, name: &str, records: &[&str]) {
        self.txt.insert(
            name.to_string(),
            Answer::Found(records.iter().map(|s| s.to_string()).collect()),
        );
    }
}

impl Net for FakeNet {
    fn mx(&self, domain: &str) -> Answer<Vec<(u16, String)>> {
        self.mx.get(domain).cloned().unwrap_or(Answer::NoData)
    }
    fn addresses(&self, host: &str) -> Answer<Vec<IpAddr>> {
        self.addresses
            .get(host)
            .cloned()
            .unwrap_or(Answer::NoSuchDomain)
    }
    fn txt(&self, name: &str) -> Answer<Vec<String>> {
        self.txt.get(name).cloned().unwrap_or(Answer::NoSuchDomain)
    }
    fn ptr(&self, ip: IpAddr) -> Answer<Vec<String>> {
        self.ptr.get(&ip).cloned().unwrap_or(Answer::NoSuchDomain)
    }
    fn spf(&self, ip: IpAddr, helo: &str, sender: &str) -> &'static str {
        let domain = sender.rsplit_once('@').map_or(helo, |(_, d)| d);
        self.spf
            .get(&(ip, domain.to_string()))
            .copied()
            .unwrap_or("none")
    }
    fn lists(&self, ip: IpAddr, sites: &Sites) -> Score {
        dnsbl::score(sites.0.iter().map(|s| {
            let a = self
                .listed
                .get(&(ip, s.zone.clone()))
                .cloned()
                .unwrap_or(dnsbl::Answer::NotListed);
            (s, a)
        }))
    }
    fn list_text(&self, ip: IpAddr, zone: &str) -> Option<String> {
        self.list_text.get(&(ip, zone.to_string())).cloned()
    }
}

/// The box hosting shop.example (one Ed25519 key, selector `sel`), and a
/// world where all is right.
pub fn world() -> (Setup, FakeNet) {
    let box_ip = ip(IP);
    let shop_key = key("sel", SHOP, Algorithm::Ed25519);
    let setup = Setup {
        host: HOST.into(),
        helo: HOST.into(),
        own: vec![box_ip],
        smarthost: None,
        blocklists: Sites::parse("zen.example=127.0.0.[2..11] bl.example", false).unwrap(),
        domains: vec![DomainSetup {
            name: SHOP.into(),
            hosted: true,
            senders: vec![box_ip],
            keys: Ok(vec![("sel".into(), Ok(shop_key.clone()))]),
        }],
    };
    let mut net = FakeNet::default();
    net.mx
        .insert(SHOP.into(), Answer::Found(vec![(10, HOST.into())]));
    net.addresses
        .insert(HOST.into(), Answer::Found(vec![box_ip]));
    net.set_txt(
        SHOP,
        &["v=spf1 ip4:198.51.100.1 -all", "google-site-verification=x"],
    );
    net.set_txt("sel._domainkey.shop.example", &[&record_of(&shop_key.zone)]);
    net.set_txt("_dmarc.shop.example", &["v=DMARC1; p=quarantine"]);
    net.spf.insert((box_ip, SHOP.into()), "pass");
    net.spf.insert((box_ip, HOST.into()), "pass");
    net.ptr.insert(box_ip, Answer::Found(vec![HOST.into()]));
    (setup, net)
}

/// Every finding of `super::judge`.
pub fn findings(setup: &Setup, net: &FakeNet) -> Vec<Finding> {
    let mut r = Report::default();
    super::judge(setup, net, &mut r);
    r.0
}

/// The one finding of `check`, at `level`.
pub fn only<'a>(findings: &'a [Finding], check: &str, level: Level) -> &'a Finding {
    let hits: Vec<&Finding> = findings.iter().filter(|f| f.check == check).collect();
    assert_eq!(hits.len(), 1, "{findings:#?}");
    assert_eq!(hits[0].level, level, "{findings:#?}");
    hits[0]
}
