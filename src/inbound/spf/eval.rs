//! check_host() (RFC 7208 §4–§6): the record of a domain fetched, read,
//! and its terms evaluated against the client's address.
//!
//! - §4.3: a domain that cannot have a record (no name of two labels or
//!   more, each 1–63 bytes, 253 in all; an address literal) is `none`.
//! - §4.4–4.5: its TXT records fetched (a DNS failure is `temperror`),
//!   those starting `v=spf1` kept: none is `none`, two or more are
//!   `permerror`; a syntax error anywhere is `permerror`.
//! - §4.6–4.7, §5: the mechanisms left to right, the first that matches
//!   gives its qualifier's result; none matching, `redirect=` is
//!   followed, else `neutral`.  `include:` matches on the inner `pass`,
//!   not on `fail`/`softfail`/`neutral`, and passes on `temperror`;
//!   `permerror` or `none` inside is `permerror` (§5.2).
//! - §4.6.4 limits, over the whole evaluation: at most 10 terms that
//!   query DNS (`include a mx ptr exists redirect`), at most 10 MX names
//!   per `mx` (more: `permerror`), at most the first 10 PTR names per
//!   `ptr` or `%{p}` (the rest ignored), at most 2 lookups that find
//!   nothing (NXDOMAIN or NODATA; a third: `permerror`).
//! - §6.2: for a `fail`, the explanation of the record that decided it
//!   (`include:` never lends its own, `redirect=` replaces it): the
//!   `exp=` name's one TXT record, in ASCII, expanded; anything else
//!   (no record, two, DNS trouble, a bad macro) and there is none.  The
//!   explanation's lookups count against no limit.
//!
//! A DNS failure where the RFC asks for a lookup's answer is `temperror`
//! (§2.6.6); a record's mistake is `permerror` (§2.6.7), never a
//! `temperror` that would turn its mail away forever.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::Name;

use super::SpfResult;
use super::lookup::{Answer, Dns, is_at_or_below, name_text, target_name};
use super::macros::{MacroString, Place, Values};
use super::record::{Cidr, Mechanism, Record, is_spf1};

/// Terms that query DNS, over one whole evaluation (§4.6.4).
const MAX_DNS_TERMS: u32 = 10;
/// MX names one `mx` may look at; PTR names one `ptr` or `%{p}` looks at.
const MAX_NAMES: usize = 10;
/// Lookups that find nothing (§4.6.4).
const MAX_VOID_LOOKUPS: u32 = 2;

/// What is checked: the arguments of check_host() and the values macros
/// need.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The client (an IPv4-mapped IPv6 address is checked as IPv4).
    pub ip: IpAddr,
    pub helo: &'a str,
    /// `MAIL FROM` (empty: the null sender, and the HELO name is checked).
    pub sender: &'a str,
    /// This host's name, for `%{r}`.
    pub receiver: &'a str,
}

/// The answer of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub result: SpfResult,
    /// The domain checked (lower case).
    pub domain: String,
    /// For a `fail`, the domain's explanation (§6.2).
    pub explanation: Option<String>,
    /// Why, for `none`, `temperror` and `permerror` (the syntax error...).
    pub reason: Option<String>,
}

/// Whether SPF can apply to `domain` (§4.3): a name of two labels or
/// more, each 1 to 63 bytes (a root dot aside), 253 bytes at most; an
/// address literal (`[192.0.2.1]`) is no domain name.
pub fn is_checkable_domain(domain: &str) -> bool {
    let d = domain.strip_suffix('.').unwrap_or(domain);
    d.len() <= 253
        && !d.starts_with('[')
        && d.split('.').count() >= 2
        && d.split('.').all(|l| (1..=63).contains(&l.len()))
}

/// check_host() for `MAIL FROM` (or the HELO name for the null sender).
pub async fn check(resolver: &TokioResolver, req: &Request<'_>) -> Evaluation {
    let domain = match req.sender.rsplit_once('@') {
        Some((_, d)) => d,
        None => req.helo,
    }
    .to_ascii_lowercase();
    if !is_checkable_domain(&domain) {
        return Evaluation {
            result: SpfResult::None,
            reason: Some(format!("{domain:?} is no domain name SPF applies to")),
            domain,
            explanation: None,
        };
    }
    // §4.3, §2.4: no local part, or the null sender, is postmaster.
    let sender = match req.sender.rsplit_once('@') {
        Some((local, d)) if !local.is_empty() => format!("{local}@{d}"),
        Some((_, d)) => format!("postmaster@{d}"),
        None => format!("postmaster@{domain}"),
    };
    let mut ev = Evaluator {
        dns: Dns { resolver },
        sender,
        ip: crate::wire::unmapped(req.ip),
        helo: req.helo,
        receiver: req.receiver,
        now: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        dns_terms: 0,
        voids: 0,
    };
    let outcome = ev.check_host(domain.clone()).await;
    let explanation = match (&outcome.result, &outcome.exp) {
        (SpfResult::Fail, Some((d, spec))) => ev.explain(d, spec).await,
        _ => None,
    };
    Evaluation {
        result: outcome.result,
        domain,
        explanation,
        reason: outcome.reason,
    }
}

/// One record's result: with its reason, and (for the explanation) the
/// domain and `exp=` of the record that decided it.
struct Outcome {
    result: SpfResult,
    reason: Option<String>,
    exp: Option<(String, MacroString)>,
}

impl Outcome {
    fn of(result: SpfResult, reason: impl Into<String>) -> Outcome {
        Outcome {
            result,
            reason: Some(reason.into()),
            exp: None,
        }
    }
}

/// A mechanism's verdict, or the end of the evaluation (an error).
type Matched = Result<bool, Outcome>;

/// One evaluation's state: its values, and the counts the limits keep.
struct Evaluator<'a> {
    dns: Dns<'a>,
    /// `<sender>`, with its local part.
    sender: String,
    ip: IpAddr,
    helo: &'a str,
    receiver: &'a str,
    now: u64,
    dns_terms: u32,
    voids: u32,
}

impl Evaluator<'_> {
    fn values<'v>(&'v self, domain: &'v str) -> Values<'v> {
        Values {
            sender: &self.sender,
            domain,
            ip: self.ip,
            helo: self.helo,
            receiver: self.receiver,
            now: self.now,
        }
    }

    /// check_host() for `domain`, recursively for include and redirect.
    async fn check_host(&mut self, domain: String) -> Outcome {
        let record = match self.record(&domain).await {
            Ok(r) => r,
            Err(o) => return o,
        };
        for d in &record.directives {
            match self.matches(&d.mechanism, &domain).await {
                Ok(true) => {
                    return Outcome {
                        result: d.qualifier,
                        reason: None,
                        exp: record.exp.clone().map(|e| (domain.clone(), e)),
                    };
                }
                Ok(false) => {}
                Err(o) => return o,
            }
        }
        let Some(redirect) = &record.redirect else {
            return Outcome {
                result: SpfResult::Neutral,
                reason: None,
                exp: None,
            };
        };
        if let Err(o) = self.count_dns_term() {
            return o;
        }
        let Some(target) = self.target(Some(redirect), &domain).await else {
            return Outcome::of(
                SpfResult::PermError,
                format!("{domain}: redirect= names no valid domain"),
            );
        };
        let inner = Box::pin(self.check_host(name_text(&target).to_ascii_lowercase())).await;
        match inner.result {
            // §6.1: a redirect to a domain without a record is an error.
            SpfResult::None => Outcome::of(
                SpfResult::PermError,
                format!(
                    "{domain}: redirect= to {} which has no SPF record",
                    name_text(&target)
                ),
            ),
            _ => inner,
        }
    }

    /// The domain's one SPF record (§4.4, §4.5).
    async fn record(&mut self, domain: &str) -> Result<Record, Outcome> {
        let Some(name) = target_name(domain) else {
            return Err(Outcome::of(
                SpfResult::None,
                format!("{domain:?} is no DNS name"),
            ));
        };
        let texts = match self.dns.txt(&name).await {
            Answer::Found(t) => t,
            Answer::NoSuchDomain => {
                return Err(Outcome::of(
                    SpfResult::None,
                    format!("{domain} does not exist"),
                ));
            }
            Answer::NoData => {
                return Err(Outcome::of(
                    SpfResult::None,
                    format!("{domain} has no SPF record"),
                ));
            }
            Answer::TempFail(e) => {
                return Err(Outcome::of(
                    SpfResult::TempError,
                    format!("{domain}: no DNS answer for its TXT records: {e}"),
                ));
            }
        };
        let mut spf = texts.iter().filter(|t| is_spf1(t));
        match (spf.next(), spf.next()) {
            (None, _) => Err(Outcome::of(
                SpfResult::None,
                format!("{domain} has no SPF record"),
            )),
            (Some(_), Some(_)) => Err(Outcome::of(
                SpfResult::PermError,
                format!("{domain} has more than one SPF record"),
            )),
            (Some(text), None) => Record::parse(text).map_err(|why| {
                Outcome::of(
                    SpfResult::PermError,
                    format!("{domain}: syntax error in the SPF record: {why}"),
                )
            }),
        }
    }

    /// Whether `m`, in the record of `domain`, matches the client.
    async fn matches(&mut self, m: &Mechanism, domain: &str) -> Matched {
        if m.queries_dns() {
            self.count_dns_term()?;
        }
        let ipv6 = self.ip.is_ipv6();
        match m {
            Mechanism::All => Ok(true),
            Mechanism::Ip(net, len) => Ok(in_network(self.ip, *net, *len)),
            Mechanism::A(spec, cidr) => {
                let Some(name) = self.target(spec.as_ref(), domain).await else {
                    return Ok(false);
                };
                match self.dns.addresses(&name, ipv6).await {
                    Answer::Found(addrs) => Ok(addrs.iter().any(|a| in_cidr(self.ip, *a, *cidr))),
                    Answer::NoSuchDomain | Answer::NoData => self.void(&name),
                    Answer::TempFail(e) => Err(dns_failed(&name, &e)),
                }
            }
            Mechanism::Mx(spec, cidr) => {
                let Some(name) = self.target(spec.as_ref(), domain).await else {
                    return Ok(false);
                };
                let hosts = match self.dns.mx(&name).await {
                    Answer::Found(h) => h,
                    Answer::NoSuchDomain | Answer::NoData => return self.void(&name),
                    Answer::TempFail(e) => return Err(dns_failed(&name, &e)),
                };
                if hosts.len() > MAX_NAMES {
                    return Err(Outcome::of(
                        SpfResult::PermError,
                        format!(
                            "{}: more than {MAX_NAMES} MX records to check",
                            name_text(&name)
                        ),
                    ));
                }
                for host in &hosts {
                    match self.dns.addresses(host, ipv6).await {
                        Answer::Found(addrs) => {
                            if addrs.iter().any(|a| in_cidr(self.ip, *a, *cidr)) {
                                return Ok(true);
                            }
                        }
                        Answer::NoSuchDomain | Answer::NoData => {}
                        Answer::TempFail(e) => return Err(dns_failed(host, &e)),
                    }
                }
                Ok(false)
            }
            Mechanism::Ptr(spec) => {
                let Some(target) = self.target(spec.as_ref(), domain).await else {
                    return Ok(false);
                };
                // §5.5: a failed PTR lookup is no match, not an error.
                let Answer::Found(names) = self.dns.ptr(self.ip).await else {
                    return Ok(false);
                };
                // A validated name equal to or below the target matches
                // (§5.5's prose; erratum 4751 fixes its bullet to agree).
                for name in names.iter().take(MAX_NAMES) {
                    if is_at_or_below(name, &target) && self.validates(name).await {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Exists(spec) => {
                let Some(name) = self.target(Some(spec), domain).await else {
                    return Ok(false);
                };
                // §5.7: always an A lookup, whatever the client's family.
                match self.dns.addresses(&name, false).await {
                    Answer::Found(_) => Ok(true),
                    Answer::NoSuchDomain | Answer::NoData => self.void(&name),
                    Answer::TempFail(e) => Err(dns_failed(&name, &e)),
                }
            }
            Mechanism::Include(spec) => {
                let Some(target) = self.target(Some(spec), domain).await else {
                    return Err(Outcome::of(
                        SpfResult::PermError,
                        format!("{domain}: include: names no valid domain"),
                    ));
                };
                let target = name_text(&target).to_ascii_lowercase();
                let inner = Box::pin(self.check_host(target.clone())).await;
                match inner.result {
                    SpfResult::Pass => Ok(true),
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Ok(false),
                    SpfResult::TempError => Err(inner),
                    SpfResult::PermError => Err(inner),
                    SpfResult::None => Err(Outcome::of(
                        SpfResult::PermError,
                        format!("{domain}: include:{target} has no SPF record"),
                    )),
                }
            }
        }
    }

    /// The target of a term: its domain-spec expanded, or `domain`.
    async fn target(&mut self, spec: Option<&MacroString>, domain: &str) -> Option<Name> {
        let Some(spec) = spec else {
            return target_name(domain);
        };
        let validated = if spec.uses_p() {
            self.validated_name(domain).await
        } else {
            None
        };
        target_name(&spec.expand(&self.values(domain), validated.as_deref()))
    }

    /// One more term that queries DNS; past the limit, permerror.
    fn count_dns_term(&mut self) -> Result<(), Outcome> {
        self.dns_terms += 1;
        if self.dns_terms > MAX_DNS_TERMS {
            return Err(Outcome::of(
                SpfResult::PermError,
                format!("more than {MAX_DNS_TERMS} DNS-querying terms"),
            ));
        }
        Ok(())
    }

    /// A lookup found nothing: no match, and past the limit, permerror.
    fn void(&mut self, name: &Name) -> Matched {
        self.voids += 1;
        if self.voids > MAX_VOID_LOOKUPS {
            return Err(Outcome::of(
                SpfResult::PermError,
                format!(
                    "more than {MAX_VOID_LOOKUPS} lookups found nothing (the last: {})",
                    name_text(name)
                ),
            ));
        }
        Ok(false)
    }

    /// Whether `name` has the client's address (§5.5); DNS errors skip it.
    async fn validates(&self, name: &Name) -> bool {
        match self.dns.addresses(name, self.ip.is_ipv6()).await {
            Answer::Found(addrs) => addrs.contains(&self.ip),
            _ => false,
        }
    }

    /// `%{p}` (§7.3): among the first 10 PTR names that validate, `domain`
    /// itself, else one below it, else the first; None: "unknown".
    async fn validated_name(&self, domain: &str) -> Option<String> {
        let Answer::Found(names) = self.dns.ptr(self.ip).await else {
            return None;
        };
        let mut validated = Vec::new();
        for name in names.into_iter().take(MAX_NAMES) {
            if self.validates(&name).await {
                validated.push(name);
            }
        }
        let best = target_name(domain).and_then(|d| {
            let exact = validated
                .iter()
                .find(|n| is_at_or_below(n, &d) && n.num_labels() == d.num_labels());
            exact.or_else(|| validated.iter().find(|n| is_at_or_below(n, &d)))
        });
        best.or(validated.first()).map(name_text)
    }

    /// The explanation for a `fail` decided by `domain`'s record (§6.2).
    async fn explain(&self, domain: &str, spec: &MacroString) -> Option<String> {
        let validated = if spec.uses_p() {
            self.validated_name(domain).await
        } else {
            None
        };
        let name = target_name(&spec.expand(&self.values(domain), validated.as_deref()))?;
        let Answer::Found(texts) = self.dns.txt(&name).await else {
            return None;
        };
        let [text] = texts.as_slice() else {
            return None;
        };
        let text = std::str::from_utf8(text).ok().filter(|t| t.is_ascii())?;
        let exp = MacroString::parse(text, Place::Explanation).ok()?;
        let validated = if exp.uses_p() {
            self.validated_name(domain).await
        } else {
            None
        };
        Some(exp.expand(&self.values(domain), validated.as_deref()))
    }
}

fn dns_failed(name: &Name, error: &str) -> Outcome {
    Outcome::of(
        SpfResult::TempError,
        format!("no DNS answer for {}: {error}", name_text(name)),
    )
}

/// Whether `ip` is in `addr`/`len`, the same family only (§5.6: an IPv4
/// client is in no ip6 network).
fn in_network(ip: IpAddr, addr: IpAddr, len: u8) -> bool {
    match (ip, addr) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// `in_network` with the prefix length of the address's family.
fn in_cidr(ip: IpAddr, addr: IpAddr, cidr: Cidr) -> bool {
    let len = if addr.is_ipv4() { cidr.v4 } else { cidr.v6 };
    in_network(ip, addr, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_network(ip("1.2.3.4"), ip("1.1.1.1"), 0));
        assert!(in_network(ip("1.2.3.4"), ip("1.2.3.5"), 24));
        assert!(!in_network(ip("1.2.3.4"), ip("1.2.3.5"), 32));
        assert!(!in_network(ip("1.2.3.4"), ip("::1.1.1.1"), 0));
        assert!(in_network(
            ip("cafe:babe:8000::"),
            ip("cafe:babe:8000::"),
            33
        ));
        assert!(!in_network(ip("cafe:babe::"), ip("cafe:babe:8000::"), 33));
        assert!(in_network(ip("1234::1"), ip("::1"), 0));
    }

    #[test]
    fn checkable_domains() {
        assert!(is_checkable_domain("example.com"));
        assert!(is_checkable_domain("example.com."));
        assert!(!is_checkable_domain("a2345678"));
        assert!(!is_checkable_domain("a...example.com"));
        assert!(!is_checkable_domain("[1.2.3.5]"));
        assert!(!is_checkable_domain(&format!(
            "{}.example.com",
            "a".repeat(64)
        )));
    }
}
