//! DNS lookups for delivery: MX records and host addresses, through
//! hickory-resolver, which reads `/etc/resolv.conf` (and `/etc/hosts`) as
//! the C library does; and, for `mailroom check --dns`, TXT and PTR
//! records as the rest of the world sees them ([`Dns::public`]).
//!
//! Answers are sorted into what delivery must tell apart: a domain that
//! does not exist (NXDOMAIN — the only DNS answer that may bounce mail), a
//! name with no records of the type asked, and a temporary failure (no
//! answer, SERVFAIL, timeout — mail waits).

use std::net::IpAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;

/// The outcome of one lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    Found(T),
    /// NXDOMAIN: the name does not exist.
    NoSuchDomain,
    /// The name exists but has no record of this type.
    NoData,
    /// No usable answer now (timeout, SERVFAIL, network down).
    TempFail(String),
}

/// A resolver with its own small runtime; one per thread.
pub struct Dns {
    rt: tokio::runtime::Runtime,
    resolver: TokioResolver,
}

impl Dns {
    /// The system's resolver configuration.
    pub fn system() -> Result<Dns, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the resolver: {e}"))?;
        let resolver = rt
            .block_on(async { TokioResolver::builder_tokio().map(|b| b.build()) })
            .map_err(|e| format!("cannot read the resolver configuration: {e}"))?
            .map_err(|e| format!("cannot start the resolver: {e}"))?;
        Ok(Dns { rt, resolver })
    }

    /// The system's resolvers as another mail server sees them: no
    /// `/etc/hosts`, both address families, each lookup bounded by
    /// `timeout` (two tries).
    pub fn public(timeout: std::time::Duration) -> Result<Dns, String> {
        use hickory_resolver::config::{LookupIpStrategy, ResolveHosts};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the resolver: {e}"))?;
        let resolver = rt
            .block_on(async {
                TokioResolver::builder_tokio().map(|mut b| {
                    let o = b.options_mut();
                    o.timeout = timeout;
                    o.attempts = 2;
                    o.use_hosts_file = ResolveHosts::Never;
                    o.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
                    b.build()
                })
            })
            .map_err(|e| format!("cannot read the resolver configuration: {e}"))?
            .map_err(|e| format!("cannot start the resolver: {e}"))?;
        Ok(Dns { rt, resolver })
    }

    /// MX records of `domain`, lowest preference first.
    pub fn mx(&self, domain: &str) -> Answer<Vec<(u16, String)>> {
        let name = fqdn(domain);
        match self.rt.block_on(self.resolver.mx_lookup(name)) {
            Ok(l) => {
                let mut v: Vec<(u16, String)> = l
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((
                            mx.preference,
                            mx.exchange
                                .to_ascii()
                                .trim_end_matches('.')
                                .to_ascii_lowercase(),
                        )),
                        _ => None,
                    })
                    .collect();
                v.sort();
                if v.is_empty() {
                    Answer::NoData
                } else {
                    Answer::Found(v)
                }
            }
            Err(e) => classify(e),
        }
    }

    /// The addresses of `host` (IPv4 first, then IPv6).
    pub fn addresses(&self, host: &str) -> Answer<Vec<IpAddr>> {
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_start_matches("IPv6:")
            .parse::<IpAddr>()
        {
            return Answer::Found(vec![ip]);
        }
        let name = fqdn(host);
        match self.rt.block_on(self.resolver.lookup_ip(name)) {
            Ok(l) => {
                let mut v: Vec<IpAddr> = l.iter().collect();
                v.sort_by_key(|a| !a.is_ipv4());
                if v.is_empty() {
                    Answer::NoData
                } else {
                    Answer::Found(v)
                }
            }
            Err(e) => classify(e),
        }
    }
}

impl Dns {
    /// The TXT records at `name`, each record's strings joined.
    pub fn txt(&self, name: &str) -> Answer<Vec<String>> {
        match self.rt.block_on(self.resolver.txt_lookup(fqdn(name))) {
            Ok(l) => {
                let v = txt_texts(&l);
                if v.is_empty() {
                    Answer::NoData
                } else {
                    Answer::Found(v)
                }
            }
            Err(e) => classify(e),
        }
    }

    /// The names of `ip` (its PTR records, lower case, no final dot).
    pub fn ptr(&self, ip: IpAddr) -> Answer<Vec<String>> {
        match self
            .rt
            .block_on(self.resolver.reverse_lookup(reverse_name(ip)))
        {
            Ok(l) => {
                let v: Vec<String> = l
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::PTR(p) => {
                            Some(p.0.to_ascii().trim_end_matches('.').to_ascii_lowercase())
                        }
                        _ => None,
                    })
                    .collect();
                if v.is_empty() {
                    Answer::NoData
                } else {
                    Answer::Found(v)
                }
            }
            Err(e) => classify(e),
        }
    }
}

/// A TXT answer's records, each record's strings joined into one text.
pub fn txt_texts(lookup: &hickory_resolver::lookup::Lookup) -> Vec<String> {
    lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The PTR name of `ip`: `4.3.2.1.in-addr.arpa.`, or IPv6's 32 nibbles
/// under `ip6.arpa.` (RFC 3596 §2.5).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(73);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa.");
            s
        }
    }
}

fn fqdn(d: &str) -> String {
    let d = d.trim_end_matches('.');
    format!("{d}.")
}

/// Sort a failed lookup: NXDOMAIN, NODATA, or a temporary failure.
pub(crate) fn classify<T>(e: NetError) -> Answer<T> {
    match &e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => {
            if nr.response_code == ResponseCode::NXDomain {
                Answer::NoSuchDomain
            } else {
                Answer::NoData
            }
        }
        _ => Answer::TempFail(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_follow_rfc_1035_and_3596() {
        assert_eq!(
            reverse_name("198.51.100.7".parse().unwrap()),
            "7.100.51.198.in-addr.arpa."
        );
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
    }
}
