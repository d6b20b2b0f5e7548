//! `mailroom check --dns [DOMAIN...]`: the deliverability self-check.
//! What receivers look up about this box, looked up the same way, with
//! what to publish or change for each thing that is wrong.
//!
//! For each domain (the host's own name, `local-host-names` and
//! `virtuser-domains`, or the domains named):
//!
//! * **MX**: one of its MX hosts is this host (the host name, or one of
//!   its addresses);
//! * **SPF**: every address mail from it leaves from (the default route's
//!   address, or its `/etc/mail/source-addresses` entry) passes, evaluated
//!   by the same SPF evaluator the SMTP server checks senders with
//!   ([`Verifier`]): includes, redirects and the 10-lookup limit as a
//!   receiver meets them;
//! * **DKIM**: each key in `/etc/mail/dkim/DOMAIN` has its record at
//!   `SELECTOR._domainkey.DOMAIN`, holding that key;
//! * **DMARC**: a record at `_dmarc.DOMAIN` or a parent (the DMARCbis
//!   tree walk) that parses.
//!
//! For the box: each sending address has a PTR whose name resolves back
//! to it and is the EHLO name (`smtp_helo_name`); no sending address is
//! on the `dnsbl` lists (a 127.255.255.x answer is the list refusing this
//! resolver, a warning); the TLS certificate.
//!
//! Here: the findings, the box as configured (`Setup`), the report;
//! `records.rs` the domains' records, `sending.rs` the sending
//! addresses, `certificate.rs` the certificate.  The checks ask DNS
//! through `Net`, which the tests answer from tables.
//!
//! Every lookup is bounded (`dns_timeout`, two tries; SPF as a whole
//! `inbound_check_time`; after three unanswered lookups in a row the rest
//! are not tried), and a lookup that fails is reported as not checked,
//! never as a fault of the domain.  Exit status: 78 when there
//! is an error, else 75 when something could not be checked, else 0
//! (warnings alone exit 0).

mod certificate;
#[cfg(test)]
mod fake;
mod records;
mod sending;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use super::super::directory::Directory;
use super::super::queue::json_str;
use crate::config::Config;
use crate::dkim::{self, Algorithm};
use crate::dns::{Answer, Dns};
use crate::exit::{ExitCode, Failure};
use crate::inbound::dnsbl::{Score, Sites};
use crate::inbound::verify::Verifier;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Mail is refused, lost or filed as spam because of it.
    Error,
    /// Risky, or soon wrong; mail goes out today.
    Warning,
    /// DNS did not answer: neither good nor bad.
    Unchecked,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Unchecked => "not checked",
        }
    }

    fn json(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Unchecked => "unchecked",
        }
    }
}

/// One thing the check found, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What it is about: a domain, an address, a file.
    pub subject: String,
    /// `mx`, `spf`, `dkim`, `dmarc`, `ptr`, `ehlo`, `dnsbl`, `tls`, `domain`.
    pub check: &'static str,
    pub level: Level,
    pub text: String,
    /// Zone-file lines to publish, as they are to be pasted.
    pub publish: Vec<String>,
}

/// The findings so far.
#[derive(Default)]
pub(super) struct Report(pub(super) Vec<Finding>);

impl Report {
    pub(super) fn add(
        &mut self,
        level: Level,
        subject: &str,
        check: &'static str,
        text: impl Into<String>,
        publish: Vec<String>,
    ) {
        self.0.push(Finding {
            subject: subject.to_string(),
            check,
            level,
            text: text.into(),
            publish,
        });
    }

    /// A lookup that failed: `what` could not be checked.
    fn dns_failed(&mut self, subject: &str, check: &'static str, what: &str, why: &str) {
        self.add(
            Level::Unchecked,
            subject,
            check,
            format!("{what}: DNS did not answer ({why}); run the check again later"),
            Vec::new(),
        );
    }
}

/// The lookups the checks make: DNS as the world sees it, SPF evaluated
/// as a receiver does, the blocklists.  (The tests answer from tables.)
pub(super) trait Net {
    fn mx(&self, domain: &str) -> Answer<Vec<(u16, String)>>;
    fn addresses(&self, host: &str) -> Answer<Vec<IpAddr>>;
    fn txt(&self, name: &str) -> Answer<Vec<String>>;
    fn ptr(&self, ip: IpAddr) -> Answer<Vec<String>>;
    /// SPF's result word (`pass`, `fail`, ..., `temperror`) for mail from
    /// `sender` (empty: the EHLO name's) sent by `ip` after EHLO `helo`.
    fn spf(&self, ip: IpAddr, helo: &str, sender: &str) -> &'static str;
    fn lists(&self, ip: IpAddr, sites: &Sites) -> Score;
    fn list_text(&self, ip: IpAddr, zone: &str) -> Option<String>;
}

/// The real lookups: the system's resolvers.
struct Live {
    dns: Dns,
    verifier: Verifier,
    breaker: Breaker,
}

/// When DNS does not answer at all, each lookup would wait its full
/// timeout: after [`GIVE_UP_AFTER`] failures in a row the rest fail at
/// once, so a dead resolver costs seconds, not minutes.
#[derive(Default)]
struct Breaker {
    failures_in_a_row: std::cell::Cell<u32>,
}

const GIVE_UP_AFTER: u32 = 3;
const GAVE_UP: &str = "no answer to the lookups before it either";

impl Breaker {
    fn open(&self) -> bool {
        self.failures_in_a_row.get() >= GIVE_UP_AFTER
    }

    fn count(&self, failed: bool) {
        let n = self.failures_in_a_row.get();
        self.failures_in_a_row.set(if failed { n + 1 } else { 0 });
    }

    fn ask<T>(&self, lookup: impl FnOnce() -> Answer<T>) -> Answer<T> {
        if self.open() {
            return Answer::TempFail(GAVE_UP.to_string());
        }
        let a = lookup();
        self.count(matches!(a, Answer::TempFail(_)));
        a
    }
}

impl Net for Live {
    fn mx(&self, domain: &str) -> Answer<Vec<(u16, String)>> {
        self.breaker.ask(|| self.dns.mx(domain))
    }
    fn addresses(&self, host: &str) -> Answer<Vec<IpAddr>> {
        self.breaker.ask(|| self.dns.addresses(host))
    }
    fn txt(&self, name: &str) -> Answer<Vec<String>> {
        self.breaker.ask(|| self.dns.txt(name))
    }
    fn ptr(&self, ip: IpAddr) -> Answer<Vec<String>> {
        self.breaker.ask(|| self.dns.ptr(ip))
    }
    fn spf(&self, ip: IpAddr, helo: &str, sender: &str) -> &'static str {
        if self.breaker.open() {
            return "temperror";
        }
        let result = self.verifier.spf(ip, helo, sender).result;
        self.breaker.count(result == "temperror");
        result
    }
    fn lists(&self, ip: IpAddr, sites: &Sites) -> Score {
        if self.breaker.open() {
            return Score {
                failed: sites
                    .0
                    .iter()
                    .map(|s| (s.zone.clone(), GAVE_UP.to_string()))
                    .collect(),
                ..Score::default()
            };
        }
        let score = self.verifier.lists(ip, sites, &Sites::default());
        self.breaker
            .count(!sites.is_empty() && score.failed.len() == sites.0.len());
        score
    }
    fn list_text(&self, ip: IpAddr, zone: &str) -> Option<String> {
        self.verifier.list_text(ip, zone)
    }
}

/// A DKIM key's public half, as its DNS record must hold it.
#[derive(Debug, Clone)]
pub(super) struct PublicKey {
    pub algorithm: Algorithm,
    /// `p=`, decoded.
    pub public: Vec<u8>,
    /// The zone-file entry `mailroom dkim show` prints.
    pub zone: String,
}

/// One domain to check.
#[derive(Debug, Clone)]
pub(super) struct DomainSetup {
    pub name: String,
    /// One of this host's domains (else only named on the command line).
    pub hosted: bool,
    /// The addresses mail from it leaves from.
    pub senders: Vec<IpAddr>,
    /// Its DKIM keys by selector, or why the directory cannot be read.
    pub keys: Keys,
}

/// What the box is, as far as the checks need it.
#[derive(Debug, Clone)]
pub(super) struct Setup {
    pub host: String,
    /// The name the queue runner gives in EHLO.
    pub helo: String,
    /// This host's addresses: the sending ones, the interfaces', the host
    /// name's in DNS.
    pub own: Vec<IpAddr>,
    /// `smarthost`: remote mail leaves through it, not from here.
    pub smarthost: Option<String>,
    pub blocklists: Sites,
    pub domains: Vec<DomainSetup>,
}

impl Setup {
    /// Every sending address, once.
    fn senders(&self) -> Vec<IpAddr> {
        let set: BTreeSet<IpAddr> = self
            .domains
            .iter()
            .flat_map(|d| d.senders.iter().copied())
            .collect();
        set.into_iter().collect()
    }
}

/// A zone-file TXT line; text over 255 bytes is cut into strings.
pub(super) fn zone_txt(name: &str, text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    let parts: Vec<String> = escaped
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!("{}. IN TXT {}", name.trim_end_matches('.'), parts.join(" "))
}

/// `IN A` or `IN AAAA` for `ip`.
fn zone_address(name: &str, ip: IpAddr) -> String {
    let kind = if ip.is_ipv4() { "A" } else { "AAAA" };
    format!("{}. IN {kind} {ip}", name.trim_end_matches('.'))
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Addresses receivers on the internet can see (the documentation ranges
/// count: the tests live there).
pub(super) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xfe00) == 0xfc00
                || v6.to_ipv4_mapped().is_some())
        }
    }
}

/// Run every check of `s`; the MX names that point here come back for
/// the certificate check.
pub(super) fn judge(s: &Setup, net: &dyn Net, r: &mut Report) -> Vec<String> {
    let mut mx_names = Vec::new();
    for d in &s.domains {
        if !d.hosted {
            r.add(
                Level::Warning,
                &d.name,
                "domain",
                format!("{} is not one of this host's domains: mail for it is not taken here ('mailroom domain add')", d.name),
                Vec::new(),
            );
        }
        let (here, exists) = records::check_mx(s, d, net, r);
        for n in here {
            if !mx_names.contains(&n) {
                mx_names.push(n);
            }
        }
        if !exists {
            continue;
        }
        records::check_spf(s, d, net, r);
        records::check_dkim(d, net, r);
        records::check_dmarc(d, net, r);
    }
    if let Some(relay) = &s.smarthost {
        r.add(
            Level::Warning,
            &s.host,
            "spf",
            format!("mail leaves through the smarthost {relay}: its addresses, not this host's, must pass SPF (usually the include: its provider names), and reverse DNS is its provider's; not checked here"),
            Vec::new(),
        );
    } else if s.senders().is_empty() {
        r.add(
            Level::Unchecked,
            &s.host,
            "spf",
            "SPF and reverse DNS: this host has no route to the internet, so the address mail leaves from is unknown",
            Vec::new(),
        );
    } else {
        sending::check_ptr(s, net, r);
        sending::check_helo(s, net, r);
    }
    sending::check_lists(s, net, r);
    mx_names
}

// ---------------------------------------------------------------------
// The box as configured, and the report

/// Names no receiver sees (RFC 6761, RFC 8375, the usual private ones).
fn checkable(d: &str) -> bool {
    dkim::valid_domain(d)
        && ![
            "localhost",
            "localdomain",
            "local",
            "internal",
            "lan",
            "home.arpa",
        ]
        .iter()
        .any(|t| d == *t || d.ends_with(&format!(".{t}")))
}

/// Addresses on the internet the kernel's route to them tells the
/// sending address by (a UDP connect sends nothing).
const PROBES: [&str; 2] = ["8.8.8.8:53", "[2001:4860:4860::8888]:53"];

/// The local address the kernel picks to reach `probe`.
fn route_source(probe: &str) -> Option<IpAddr> {
    let probe: SocketAddr = probe.parse().ok()?;
    let any = if probe.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(any).ok()?;
    socket.connect(probe).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

fn interface_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(sa) = a.address else { continue };
            if let Some(v4) = sa.as_sockaddr_in() {
                out.push(IpAddr::V4(v4.ip()));
            } else if let Some(v6) = sa.as_sockaddr_in6() {
                out.push(IpAddr::V6(v6.ip()));
            }
        }
    }
    out.retain(|ip| is_public(*ip));
    out
}

/// A domain's DKIM keys as `mailroom dkim show` reads them.
type Keys = Result<Vec<(String, Result<PublicKey, String>)>, String>;

fn public_keys(cfg: &Config, domain: &str) -> Keys {
    let io = |path: &std::path::Path, e: &std::io::Error| {
        format!("{}: {}", path.display(), crate::exit::io_reason(e))
    };
    let files =
        dkim::key_files(cfg, domain).map_err(|e| io(&dkim::keys_dir(cfg).join(domain), &e))?;
    let mut out = Vec::new();
    for (selector, path) in files {
        // Not root: the keys are not this user's to read.
        if let Err(e) = std::fs::File::open(&path)
            && e.kind() == std::io::ErrorKind::PermissionDenied
        {
            return Err(io(&path, &e));
        }
        let key = dkim::load_key(&selector, &path).map(|k| PublicKey {
            algorithm: k.algorithm(),
            public: k.public_key(),
            zone: dkim::zone_entry(&selector, domain, &k.dns_record()),
        });
        out.push((selector, key));
    }
    Ok(out)
}

/// The box: its names, its sending addresses, the domains to check.
fn gather(cfg: &Config, wanted: &[String], net: &dyn Net) -> Result<Setup, Failure> {
    let host = cfg.hostname.trim_end_matches('.').to_ascii_lowercase();
    let helo = crate::runner::settings::Settings::from_config(cfg)?
        .helo
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let blocklists = crate::inbound::Settings::from_config(cfg)?.blocklists;
    let host_addresses = match net.addresses(&host) {
        Answer::Found(a) => a,
        _ => Vec::new(),
    };
    // The default sending address of each family; behind NAT (a private
    // address) the host name's public address stands for it.
    let mut defaults: Vec<IpAddr> = Vec::new();
    for probe in PROBES {
        let Some(source) = route_source(probe) else {
            continue;
        };
        if is_public(source) {
            defaults.push(source);
        } else {
            defaults.extend(
                host_addresses
                    .iter()
                    .filter(|a| a.is_ipv4() == source.is_ipv4() && is_public(**a)),
            );
        }
    }
    let mut own = defaults.clone();
    own.extend(interface_addresses());
    own.extend(host_addresses);
    let hosted: Vec<String> = super::super::domain::domain_rows(&Directory::on_disk(cfg), cfg)
        .into_iter()
        .map(|r| r.domain)
        .filter(|d| checkable(d))
        .collect();
    let names = if wanted.is_empty() {
        hosted.clone()
    } else {
        wanted.to_vec()
    };
    let table = crate::route::SourceAddresses::load(cfg, false);
    let mut domains = Vec::new();
    for name in names {
        // route.rs: the entry's address for its family, the default
        // address for the other.
        let senders = match table.for_sender(&format!("postmaster@{name}")) {
            Some(ip) => {
                own.push(ip);
                let mut v = vec![ip];
                v.extend(defaults.iter().filter(|a| a.is_ipv4() != ip.is_ipv4()));
                v
            }
            None => defaults.clone(),
        };
        domains.push(DomainSetup {
            hosted: hosted.contains(&name),
            keys: public_keys(cfg, &name),
            senders,
            name,
        });
    }
    own.sort();
    own.dedup();
    Ok(Setup {
        host,
        helo,
        own,
        smarthost: cfg
            .get("smarthost")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        blocklists,
        domains,
    })
}

/// The domains named on the command line, as domain names.
fn named_domains(args: &[String]) -> Result<Vec<String>, Failure> {
    let mut out: Vec<String> = Vec::new();
    for a in args {
        let d = a.trim_end_matches('.').to_ascii_lowercase();
        if !dkim::valid_domain(&d) {
            return Err(Failure::usage(format!("{a:?} is not a domain name")));
        }
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

/// The exit status for these findings.
pub(super) fn exit_code(findings: &[Finding]) -> i32 {
    if findings.iter().any(|f| f.level == Level::Error) {
        ExitCode::Config.code()
    } else if findings.iter().any(|f| f.level == Level::Unchecked) {
        ExitCode::TempFail.code()
    } else {
        0
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn print_text(s: &Setup, findings: &[Finding], out: &mut dyn Write) -> std::io::Result<()> {
    for f in findings {
        writeln!(out, "{}: {}: {}", f.subject, f.level.word(), f.text)?;
        for line in &f.publish {
            for l in line.lines() {
                writeln!(out, "    {}", l.trim_start())?;
            }
        }
    }
    let count = |l: Level| findings.iter().filter(|f| f.level == l).count();
    let names: Vec<&str> = s.domains.iter().map(|d| d.name.as_str()).collect();
    let senders = s.senders();
    writeln!(
        out,
        "checked {} ({}), sending from {} as {}: {}, {}, {} not checked",
        plural(names.len(), "domain"),
        names.join(", "),
        if senders.is_empty() {
            "(unknown)".to_string()
        } else {
            list(&senders)
        },
        s.helo,
        plural(count(Level::Error), "error"),
        plural(count(Level::Warning), "warning"),
        count(Level::Unchecked)
    )
}

fn print_json(s: &Setup, findings: &[Finding], out: &mut dyn Write) -> std::io::Result<()> {
    let strings = |v: Vec<String>| v.iter().map(|x| json_str(x)).collect::<Vec<_>>().join(", ");
    writeln!(out, "{{")?;
    writeln!(
        out,
        "  \"domains\": [{}],",
        strings(s.domains.iter().map(|d| d.name.clone()).collect())
    )?;
    writeln!(
        out,
        "  \"senders\": [{}],",
        strings(s.senders().iter().map(IpAddr::to_string).collect())
    )?;
    writeln!(out, "  \"ehlo\": {},", json_str(&s.helo))?;
    writeln!(out, "  \"findings\": [")?;
    for (i, f) in findings.iter().enumerate() {
        writeln!(
            out,
            "    {{\"subject\": {}, \"check\": {}, \"level\": {}, \"message\": {}, \"publish\": [{}]}}{}",
            json_str(&f.subject),
            json_str(f.check),
            json_str(f.level.json()),
            json_str(&f.text),
            strings(f.publish.clone()),
            if i + 1 < findings.len() { "," } else { "" }
        )?;
    }
    writeln!(out, "  ]")?;
    writeln!(out, "}}")
}

/// Run `mailroom check --dns [DOMAIN...]`.
pub fn run(cfg: &Config, args: &[String], json: bool) -> i32 {
    let fail = |f: Failure| {
        eprintln!("mailroom: {f}");
        f.code.code()
    };
    let wanted = match named_domains(args) {
        Ok(w) => w,
        Err(f) => return fail(f),
    };
    let inbound = match crate::inbound::Settings::from_config(cfg) {
        Ok(s) => s,
        Err(f) => return fail(f),
    };
    let net = Dns::public(inbound.dns_timeout).and_then(|dns| {
        Verifier::system(&cfg.hostname, inbound.dns_timeout, inbound.check_time).map(|verifier| {
            Live {
                dns,
                verifier,
                breaker: Breaker::default(),
            }
        })
    });
    let net = match net {
        Ok(n) => n,
        Err(e) => {
            return fail(Failure::new(
                ExitCode::TempFail,
                format!("cannot check DNS: {e}"),
            ));
        }
    };
    let setup = match gather(cfg, &wanted, &net) {
        Ok(s) => s,
        Err(f) => return fail(f),
    };
    let mut report = Report::default();
    let mx_names = judge(&setup, &net, &mut report);
    certificate::check(
        &crate::tls::ServerCert::from_config(cfg),
        &setup.host,
        &mx_names,
        crate::date::now(),
        &mut report,
    );
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let written = if json {
        print_json(&setup, &report.0, &mut out)
    } else {
        print_text(&setup, &report.0, &mut out)
    };
    if written.is_err() {
        return ExitCode::IoErr.code();
    }
    exit_code(&report.0)
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;

    #[test]
    fn a_box_with_everything_right_has_nothing_to_report() {
        let (setup, net) = world();
        let f = findings(&setup, &net);
        assert_eq!(f, vec![]);
        assert_eq!(exit_code(&f), 0);
    }

    #[test]
    fn errors_exit_78_dns_failures_75_warnings_0() {
        let finding = |level| Finding {
            subject: SHOP.into(),
            check: "spf",
            level,
            text: String::new(),
            publish: Vec::new(),
        };
        assert_eq!(exit_code(&[finding(Level::Warning)]), 0);
        assert_eq!(
            exit_code(&[finding(Level::Warning), finding(Level::Unchecked)]),
            75
        );
        assert_eq!(
            exit_code(&[finding(Level::Unchecked), finding(Level::Error)]),
            78
        );
    }

    #[test]
    fn after_three_dns_failures_in_a_row_the_rest_fail_at_once() {
        let b = Breaker::default();
        let asked = std::cell::Cell::new(0);
        let fail = || {
            asked.set(asked.get() + 1);
            Answer::<()>::TempFail("request timed out".into())
        };
        assert_eq!(b.ask(fail), Answer::TempFail("request timed out".into()));
        assert_eq!(b.ask(|| Answer::Found(())), Answer::Found(()));
        for _ in 0..3 {
            b.ask(fail);
        }
        assert_eq!(
            asked.get(),
            4,
            "a success in between starts the count again"
        );
        assert_eq!(b.ask(fail), Answer::TempFail(GAVE_UP.into()));
        assert_eq!(
            b.ask(|| Answer::Found(())),
            Answer::TempFail(GAVE_UP.into())
        );
        assert_eq!(asked.get(), 4);
    }

    #[test]
    fn zone_lines_quote_and_cut_long_text() {
        assert_eq!(
            zone_txt("shop.example", "v=spf1 ip4:192.0.2.25 -all"),
            r#"shop.example. IN TXT "v=spf1 ip4:192.0.2.25 -all""#
        );
        assert_eq!(
            zone_txt("x.example.", r#"a "quoted" \ b"#),
            r#"x.example. IN TXT "a \"quoted\" \\ b""#
        );
        let long = "a".repeat(300);
        assert_eq!(
            zone_txt("x.example", &long),
            format!(
                "x.example. IN TXT \"{}\" \"{}\"",
                "a".repeat(255),
                "a".repeat(45)
            )
        );
        assert_eq!(
            zone_address("mx.example", ip("2001:db8::1")),
            "mx.example. IN AAAA 2001:db8::1"
        );
    }

    #[test]
    fn private_addresses_are_not_what_receivers_see() {
        for private in [
            "10.0.0.4",
            "172.16.1.1",
            "192.168.1.1",
            "100.64.0.1",
            "127.0.0.1",
            "fd00::1",
            "fe80::1",
            "::1",
        ] {
            assert!(!is_public(ip(private)), "{private}");
        }
        for public in [
            "198.51.100.1",
            "203.0.113.9",
            "8.8.8.8",
            "2001:db8:51::1",
            "2a01:4f8::1",
        ] {
            assert!(is_public(ip(public)), "{public}");
        }
    }

    #[test]
    fn named_domains_must_be_domain_names() {
        assert_eq!(
            named_domains(&["Shop.Example.".into(), "shop.example".into()]).unwrap(),
            vec!["shop.example"]
        );
        let e = named_domains(&["shop".into()]).unwrap_err();
        assert_eq!(e.code, ExitCode::Usage);
        assert!(named_domains(&["a b.example".into()]).is_err());
    }

    #[test]
    fn names_no_receiver_sees_are_not_checked() {
        assert!(checkable("shop.example"));
        for d in [
            "localhost",
            "box.localdomain",
            "nas.local",
            "x.home.arpa",
            "mx",
        ] {
            assert!(!checkable(d), "{d}");
        }
    }

    #[test]
    fn the_text_report_gives_the_lines_to_paste_indented() {
        let (setup, mut net) = world();
        net.txt.remove("_dmarc.shop.example");
        let f = findings(&setup, &net);
        let mut out = Vec::new();
        print_text(&setup, &f, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(
                "_dmarc.shop.example: error: no DMARC record: receivers cannot refuse forgeries of shop.example,"
            ),
            "{text}"
        );
        assert!(
            text.contains("\n    _dmarc.shop.example. IN TXT \"v=DMARC1; p=none; rua=mailto:postmaster@shop.example\"\n"),
            "{text}"
        );
        assert!(
            text.ends_with("checked 1 domain (shop.example), sending from 198.51.100.1 as mx.example.test: 1 error, 0 warnings, 0 not checked\n"),
            "{text}"
        );
        let mut out = Vec::new();
        print_json(&setup, &f, &mut out).unwrap();
        let json = String::from_utf8(out).unwrap();
        assert!(json.contains("\"senders\": [\"198.51.100.1\"]"), "{json}");
        assert!(
            json.contains("\"check\": \"dmarc\", \"level\": \"error\""),
            "{json}"
        );
    }

    #[test]
    fn a_domain_not_hosted_here_is_checked_with_a_warning() {
        let (mut setup, net) = world();
        setup.domains[0].hosted = false;
        let f = findings(&setup, &net);
        assert!(
            only(&f, "domain", Level::Warning)
                .text
                .contains("mailroom domain add")
        );
    }

    #[test]
    fn with_a_smarthost_this_hosts_address_is_not_held_to_spf_and_ptr() {
        let (mut setup, mut net) = world();
        setup.smarthost = Some("[relay.example]:587".into());
        net.spf.clear();
        net.ptr.clear();
        let f = findings(&setup, &net);
        assert!(
            only(&f, "spf", Level::Warning)
                .text
                .contains("relay.example")
        );
        assert!(!f.iter().any(|x| x.check == "ptr"), "{f:#?}");
    }

    #[test]
    fn without_a_route_out_the_sending_address_is_unknown() {
        let (mut setup, net) = world();
        setup.domains[0].senders.clear();
        let f = findings(&setup, &net);
        only(&f, "spf", Level::Unchecked);
        assert_eq!(exit_code(&f), 75);
    }
}
