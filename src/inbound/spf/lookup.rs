//! The DNS questions SPF asks, through the connection's hickory resolver,
//! each answer sorted as [`crate::dns::Answer`] sorts it: records, a name
//! that does not exist (NXDOMAIN), a name without records of the type
//! (NODATA), or a failure (timeout, SERVFAIL: a temperror where the RFC
//! says so).
//!
//! Target names come from macro expansion and may hold any byte; they
//! are made into DNS names label by label, as they are, never IDNA-
//! converted.  A name that cannot be one (an empty label, a label over
//! 63 bytes, over 253 bytes in all after §7.3's truncation) is reported
//! as not existing: nothing is asked, and the mechanism does not match
//! (§4.3, §4.8).

use std::net::IpAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::{Name, RData, RecordType};

pub use crate::dns::Answer;

/// The DNS name for an expanded target: a final "." dropped, labels
/// removed from the left until it is 253 bytes or less (§7.3); None when
/// it still is no valid name.
pub fn target_name(expanded: &str) -> Option<Name> {
    let mut text = expanded.strip_suffix('.').unwrap_or(expanded);
    while text.len() > 253 {
        text = text.split_once('.')?.1;
    }
    if text.is_empty() {
        return None;
    }
    let labels: Vec<&[u8]> = text.split('.').map(str::as_bytes).collect();
    if labels.iter().any(|l| l.is_empty() || l.len() > 63) {
        return None;
    }
    let mut name = Name::from_labels(labels).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// The name of `ip` under in-addr.arpa or ip6.arpa.
pub fn reverse_name(ip: IpAddr) -> Name {
    let text = crate::dns::reverse_name(ip);
    target_name(text.trim_end_matches('.')).expect("a reverse name is a valid name")
}

/// A name as text, without the root dot (its labels as they are).
pub fn name_text(name: &Name) -> String {
    name.iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether `name` is `domain` or below it, case-insensitively.
pub fn is_at_or_below(name: &Name, domain: &Name) -> bool {
    let n: Vec<&[u8]> = name.iter().collect();
    let d: Vec<&[u8]> = domain.iter().collect();
    n.len() >= d.len()
        && n[n.len() - d.len()..]
            .iter()
            .zip(&d)
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
}

/// The resolver, asked the questions SPF needs.
pub struct Dns<'r> {
    pub resolver: &'r TokioResolver,
}

impl Dns<'_> {
    async fn records(&self, name: &Name, rtype: RecordType) -> Answer<Vec<RData>> {
        match self.resolver.lookup(name.clone(), rtype).await {
            Ok(l) => {
                let found: Vec<RData> = l
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .map(|r| r.data.clone())
                    .collect();
                if found.is_empty() {
                    Answer::NoData
                } else {
                    Answer::Found(found)
                }
            }
            Err(e) => crate::dns::classify(e),
        }
    }

    /// Each TXT record, its strings joined (§3.3).  A record of no
    /// strings (illegal, RFC 1035 §3.3.14) is an empty text.
    pub async fn txt(&self, name: &Name) -> Answer<Vec<Vec<u8>>> {
        pick(self.records(name, RecordType::TXT).await, |rs| {
            rs.iter()
                .map(|r| match r {
                    RData::TXT(t) => t.txt_data.concat(),
                    _ => Vec::new(),
                })
                .collect()
        })
    }

    /// The addresses of `name` of the client's family: A for IPv4, AAAA
    /// for IPv6 (§5.3).
    pub async fn addresses(&self, name: &Name, ipv6: bool) -> Answer<Vec<IpAddr>> {
        let rtype = if ipv6 {
            RecordType::AAAA
        } else {
            RecordType::A
        };
        pick(self.records(name, rtype).await, |rs| {
            rs.iter()
                .filter_map(|r| match r {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })
                .collect()
        })
    }

    /// The mail exchangers of `name`, in the order served (a null MX,
    /// RFC 7505's ".", names no host and is left out).
    pub async fn mx(&self, name: &Name) -> Answer<Vec<Name>> {
        pick(self.records(name, RecordType::MX).await, |rs| {
            rs.iter()
                .filter_map(|r| match r {
                    RData::MX(mx) if !mx.exchange.is_root() => Some(mx.exchange.clone()),
                    _ => None,
                })
                .collect()
        })
    }

    /// The host names `ip` points to (PTR).
    pub async fn ptr(&self, ip: IpAddr) -> Answer<Vec<Name>> {
        pick(
            self.records(&reverse_name(ip), RecordType::PTR).await,
            |rs| {
                rs.iter()
                    .filter_map(|r| match r {
                        RData::PTR(p) => Some(p.0.clone()),
                        _ => None,
                    })
                    .collect()
            },
        )
    }
}

/// The records of an answer turned into what SPF uses; none left is NODATA.
fn pick<T, U>(answer: Answer<Vec<T>>, f: impl FnOnce(Vec<T>) -> Vec<U>) -> Answer<Vec<U>> {
    match answer {
        Answer::Found(v) => {
            let v = f(v);
            if v.is_empty() {
                Answer::NoData
            } else {
                Answer::Found(v)
            }
        }
        Answer::NoSuchDomain => Answer::NoSuchDomain,
        Answer::NoData => Answer::NoData,
        Answer::TempFail(e) => Answer::TempFail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names() {
        assert_eq!(
            name_text(&target_name("mail.example.com.").unwrap()),
            "mail.example.com"
        );
        assert!(target_name("mail.example...com").is_none());
        assert!(target_name(&format!("{}.example.com", "a".repeat(64))).is_none());
        let long = format!(
            "foobar.{}example.com",
            "somewhat.long.exp.example.com.".repeat(8)
        );
        let name = name_text(&target_name(&long).unwrap());
        assert!(name.starts_with("somewhat.") && name.len() <= 253, "{name}");
        assert_eq!(
            name_text(&target_name("macro%percent  space%20url-space.example.com").unwrap()),
            "macro%percent  space%20url-space.example.com"
        );
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            name_text(&reverse_name("192.0.2.4".parse().unwrap())),
            "4.2.0.192.in-addr.arpa"
        );
        assert_eq!(
            name_text(&reverse_name("2001:db8::1".parse().unwrap())),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn below() {
        let n = |s| target_name(s).unwrap();
        assert!(is_at_or_below(&n("mail.Example.com"), &n("example.COM")));
        assert!(is_at_or_below(&n("example.com"), &n("example.com")));
        assert!(!is_at_or_below(&n("badexample.com"), &n("example.com")));
    }
}
