//! Where a connection goes, as the configuration writes it: a next hop
//! `[host]:port` (mailertable, `smarthost`: [`crate::route`]) and an LMTP
//! server (`mailbox_transport`, mailertable `lmtp:`).  Parsing only, no
//! lookups, so that the configuration can check these values as it
//! loads them.

use std::fmt;
use std::path::PathBuf;

/// A host to connect to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hop {
    pub host: String,
    pub port: u16,
    /// `[host]`: connect to this name's addresses, no MX lookup.
    pub literal: bool,
}

impl Hop {
    /// Parse `host`, `[host]`, `host:port`, `[host]:port`.
    pub fn parse(s: &str, default_port: u16) -> Option<Hop> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        if let Some(rest) = s.strip_prefix('[') {
            let end = rest.find(']')?;
            let host = rest[..end].to_string();
            let port = match rest[end + 1..].strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None => default_port,
            };
            return Some(Hop {
                host,
                port,
                literal: true,
            });
        }
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => Some(Hop {
                host: h.to_string(),
                port: p.parse().ok()?,
                literal: false,
            }),
            _ => Some(Hop {
                host: s.to_string(),
                port: default_port,
                literal: false,
            }),
        }
    }
}

/// The default LMTP port (RFC 2033 §5 forbids 25).
const PORT: u16 = 24;

/// An LMTP server (`mailbox_transport`, mailertable `lmtp:`), to which
/// local mailbox copies are handed ([`crate::deliver`]'s `lmtp.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LmtpServer {
    Unix(PathBuf),
    Tcp { host: String, port: u16 },
}

impl LmtpServer {
    /// Parse what follows `lmtp:`: `unix:/path`, `[host]:port`,
    /// `host:port`, `[host]` or `host`.
    pub fn parse(arg: &str) -> Result<LmtpServer, String> {
        let arg = arg.trim();
        if let Some(path) = arg.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(format!(
                    "lmtp:unix:{path}: the socket must be an absolute path"
                ));
            }
            return Ok(LmtpServer::Unix(PathBuf::from(path)));
        }
        let hop = Hop::parse(arg, PORT).ok_or_else(|| {
            format!("lmtp:{arg}: expected lmtp:unix:/path, lmtp:[host]:port or lmtp:host:port")
        })?;
        let host = hop.host.trim_start_matches("IPv6:").to_string();
        if host.is_empty() || host.contains(['/', ' ']) {
            return Err(format!("lmtp:{arg}: {host:?} is not a host"));
        }
        if hop.port == 25 {
            return Err(format!(
                "lmtp:{arg}: LMTP must not use port 25 (RFC 2033 §5); Dovecot's is 24"
            ));
        }
        Ok(LmtpServer::Tcp {
            host,
            port: hop.port,
        })
    }

    /// A `mailbox_transport` value: `local` (None) or `lmtp:...`.
    pub fn parse_setting(value: &str) -> Result<Option<LmtpServer>, String> {
        let v = value.trim();
        if v.eq_ignore_ascii_case("local") || v.is_empty() {
            return Ok(None);
        }
        match v.split_once(':') {
            Some((m, arg)) if m.eq_ignore_ascii_case("lmtp") => LmtpServer::parse(arg).map(Some),
            _ => Err("expected local, lmtp:unix:/path or lmtp:[host]:port".to_string()),
        }
    }
}

impl fmt::Display for LmtpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LmtpServer::Unix(p) => write!(f, "lmtp:unix:{}", p.display()),
            LmtpServer::Tcp { host, port } => write!(f, "lmtp:[{host}]:{port}"),
        }
    }
}
