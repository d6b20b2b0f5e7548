//! DNS lookups for delivery: MX records and host addresses, through
//! hickory-resolver, which reads `/etc/resolv.conf` (and `/etc/hosts`) as
//! the C library does.
//!
//! Answers are sorted into what delivery must tell apart: a domain that
//! does not exist (NXDOMAIN — the only DNS answer that may bounce mail), a
//! name with no records of the type asked, and a temporary failure (no
//! answer, SERVFAIL, timeout — mail waits).

use std::net::IpAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;

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

    /// MX records of `domain`, lowest preference first.
    pub fn mx(&self, domain: &str) -> Answer<Vec<(u16, String)>> {
        let name = fqdn(domain);
        match self.rt.block_on(self.resolver.mx_lookup(name)) {
            Ok(l) => {
                let mut v: Vec<(u16, String)> = l
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        hickory_resolver::proto::rr::RData::MX(mx) => Some((
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
