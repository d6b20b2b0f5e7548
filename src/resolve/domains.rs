//! The host's own domains (class `{w}`) and its virtual domains (class
//! `{VirtHost}`): step 1 of resolution.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::address;
use crate::config::Config;
use crate::table::{Source, class};

/// The host's own domains (class `{w}`) and its virtual domains (class
/// `{VirtHost}`).  Cheap to load: two small files and the host name; the
/// interface addresses are only probed when an address literal is asked
/// about.
#[derive(Debug)]
pub struct Domains {
    local: HashSet<String>,
    virtual_domains: HashSet<String>,
    /// Where each local name came from (for explain).
    sources: Vec<(String, PathBuf, usize)>,
    probe_interfaces: bool,
    literals: std::sync::OnceLock<HashSet<String>>,
}

impl Domains {
    pub fn load(cfg: &Config) -> Domains {
        Domains::load_from(cfg, &Source::Disk)
    }

    /// The domains as `source` has the class files.
    pub fn load_from(cfg: &Config, source: &Source) -> Domains {
        let lhn = cfg.paths.etc_mail("local-host-names");
        let mut local = HashSet::new();
        let mut sources = Vec::new();
        for (w, line) in class::words(&source.read_lossy(&lhn)) {
            local.insert(w.clone());
            sources.push((w, lhn.clone(), line));
        }
        let host = cfg.hostname.to_ascii_lowercase();
        local.insert(host.clone());
        if let Some(short) = host.split('.').next() {
            local.insert(short.to_string());
        }
        if let Ok(h) = nix::unistd::gethostname()
            && let Some(h) = h.to_str()
        {
            local.insert(h.to_ascii_lowercase());
        }
        local.insert("localhost".to_string());
        let virtual_domains =
            class::words(&source.read_lossy(&cfg.paths.etc_mail("virtuser-domains")))
                .into_iter()
                .map(|(w, _)| w)
                .collect();
        Domains {
            local,
            virtual_domains,
            sources,
            probe_interfaces: cfg.probe_interfaces,
            literals: std::sync::OnceLock::new(),
        }
    }

    /// Is `domain` one of this host's names (class `{w}`)?
    pub fn is_local(&self, domain: &str) -> bool {
        let d = normalize_domain(domain);
        if d.starts_with('[') {
            return self.probe_interfaces
                && self
                    .literals
                    .get_or_init(|| interface_literals().into_iter().collect())
                    .contains(&d);
        }
        self.local.contains(&d)
    }

    /// Is `domain` a virtual domain (class `{VirtHost}`)?
    pub fn is_virtual(&self, domain: &str) -> bool {
        self.virtual_domains.contains(&normalize_domain(domain))
    }

    /// Could mail for `addr` stay on this host (unqualified, or a local or
    /// virtual domain)?
    pub fn is_local_address(&self, addr: &str) -> bool {
        match address::split_addr(addr) {
            (_, None) => true,
            (_, Some(d)) => self.is_local(d) || self.is_virtual(d),
        }
    }

    /// Where the local domain `d` was declared (file and line), if in a file.
    pub fn source(&self, d: &str) -> Option<(PathBuf, usize)> {
        let d = normalize_domain(d);
        self.sources
            .iter()
            .find(|(w, _, _)| *w == d)
            .map(|(_, p, l)| (p.clone(), *l))
    }
}

/// The host's own interface addresses as address literals.
fn interface_literals() -> Vec<String> {
    let mut out = vec!["[127.0.0.1]".to_string(), "[ipv6:::1]".to_string()];
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(sa) = a.address else { continue };
            if let Some(v4) = sa.as_sockaddr_in() {
                out.push(format!("[{}]", v4.ip()));
            } else if let Some(v6) = sa.as_sockaddr_in6() {
                out.push(format!("[ipv6:{}]", v6.ip()).to_ascii_lowercase());
            }
        }
    }
    out
}

pub(super) fn normalize_domain(d: &str) -> String {
    d.trim_end_matches('.').to_ascii_lowercase()
}
