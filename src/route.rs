//! Where mail for a remote domain is sent, decided again at every attempt
//! (a fixed configuration unsticks the queue at once):
//!
//! 1. `/etc/mail/mailertable` (sendmail's syntax): the domain, then each
//!    parent as `.parent.example`, then `.` for everything; values
//!    `smtp:host`, `esmtp:[host]`, `relay:[host]:port`, `local:user` (deliver
//!    here), `error:CODE TEXT`.  Brackets mean "this host, no MX lookup".
//!    `lmtp:unix:/path` or `lmtp:[host]:port` is for this host's own
//!    domains: their mailboxes are handed to that LMTP server
//!    ([`crate::deliver`]'s `lmtp.rs`); for any other domain it is a
//!    configuration error that keeps the mail queued.
//! 2. The smarthost (`smarthost = [mail.isp.example]:587`), when set.
//! 3. The domain's MX records, lowest preference first, else its own
//!    address (the implicit MX); `[192.0.2.1]` literals go straight there.

use std::path::PathBuf;

use crate::config::Config;
pub use crate::hop::Hop;
use crate::resolve::Refusal;
use crate::resolve::virtuser::parse_error;
pub use crate::table::mailertable_lookup;
use crate::table::{Syntax, Table};

/// How to protect a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tls {
    /// STARTTLS when offered, without verification; plain if it fails.
    May,
    /// STARTTLS required (not verified).
    Encrypt,
    /// STARTTLS required, certificate verified against the system CAs.
    Verify,
    /// TLS from the first byte (port 465), verified.
    Implicit,
    /// Never TLS.
    Never,
}

impl Tls {
    pub fn parse(s: &str) -> Option<Tls> {
        match s.trim().to_ascii_lowercase().as_str() {
            "may" | "opportunistic" => Some(Tls::May),
            "encrypt" | "required" => Some(Tls::Encrypt),
            "verify" | "starttls" => Some(Tls::Verify),
            "smtps" | "implicit" | "tls" => Some(Tls::Implicit),
            "none" | "never" | "no" => Some(Tls::Never),
            _ => None,
        }
    }
}

/// Where one domain's mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Deliver here (mailertable `local:`), to this user (empty = the
    /// address's own local part).
    Local(String),
    /// Connect to these hosts in order.
    Hosts {
        hops: Vec<Hop>,
        tls: Tls,
        auth: bool,
        via: String,
    },
    /// Look up the domain's MX.
    Mx { domain: String, tls: Tls },
    /// Refuse.
    Error(Refusal),
}

/// Routing configuration.
#[derive(Debug)]
pub struct Router {
    mailertable: Table,
    smarthost: Option<Hop>,
    smarthost_tls: Tls,
    mx_tls: Tls,
}

impl Router {
    pub fn new(cfg: &Config, may_rebuild: bool) -> Router {
        let smarthost = cfg.get("smarthost").and_then(|s| Hop::parse(s, 25));
        let default_tls = match &smarthost {
            Some(h) if h.port == 465 => Tls::Implicit,
            _ => Tls::Verify,
        };
        Router {
            mailertable: Table::open(
                &cfg.paths.etc_mail("mailertable"),
                Syntax::Makemap,
                may_rebuild,
            ),
            smarthost_tls: cfg
                .get("smarthost_tls")
                .and_then(Tls::parse)
                .unwrap_or(default_tls),
            mx_tls: cfg.get("smtp_tls").and_then(Tls::parse).unwrap_or(Tls::May),
            smarthost,
        }
    }

    /// The mailertable file.
    pub fn mailertable_path(&self) -> PathBuf {
        self.mailertable.path().to_path_buf()
    }

    /// Route mail for `domain`.
    pub fn route(&self, domain: &str) -> Route {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        if let Some((key, value)) = self.mailertable_lookup(&d) {
            return self.mailertable_route(&d, &key, &value);
        }
        if let Some(h) = &self.smarthost {
            return Route::Hosts {
                hops: vec![h.clone()],
                tls: self.smarthost_tls,
                auth: true,
                via: "smarthost".to_string(),
            };
        }
        if d.starts_with('[')
            && let Some(h) = Hop::parse(&d, 25)
        {
            return Route::Hosts {
                hops: vec![h],
                tls: self.mx_tls,
                auth: false,
                via: "address literal".to_string(),
            };
        }
        Route::Mx {
            domain: d,
            tls: self.mx_tls,
        }
    }

    fn mailertable_lookup(&self, d: &str) -> Option<(String, String)> {
        mailertable_lookup(&self.mailertable, d)
    }

    fn mailertable_route(&self, domain: &str, key: &str, value: &str) -> Route {
        let via = format!("mailertable {key}");
        let (mailer, arg) = value.split_once(':').unwrap_or((value, ""));
        match mailer.to_ascii_lowercase().as_str() {
            "error" => {
                let e = parse_error(arg);
                Route::Error(Refusal {
                    code: e.code,
                    dsn: e.dsn,
                    text: e.text,
                    temporary: e.temporary,
                    exit: e.exit,
                })
            }
            "local" => Route::Local(arg.to_string()),
            "lmtp" => Route::Error(Refusal {
                code: 451,
                dsn: "4.3.5".to_string(),
                text: format!(
                    "{via}: lmtp: delivers this host's own mailboxes, and {domain} is not a domain of this host"
                ),
                temporary: true,
                exit: crate::exit::ExitCode::TempFail,
            }),
            _ => {
                let hop = match Hop::parse(arg, 25) {
                    Some(h) => h,
                    // "smtp:" alone: the domain itself
                    None => Hop {
                        host: domain.to_string(),
                        port: 25,
                        literal: false,
                    },
                };
                if hop.literal {
                    Route::Hosts {
                        hops: vec![hop],
                        tls: self.mx_tls,
                        auth: false,
                        via,
                    }
                } else {
                    // A plain host name in mailertable is looked up for MX
                    // records, as sendmail does.
                    Route::Mx {
                        domain: hop.host,
                        tls: self.mx_tls,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops() {
        assert_eq!(
            Hop::parse("[mail.isp.example]:587", 25),
            Some(Hop {
                host: "mail.isp.example".into(),
                port: 587,
                literal: true
            })
        );
        assert_eq!(Hop::parse("relay.example", 25).unwrap().port, 25);
        assert_eq!(Hop::parse("relay.example:2525", 25).unwrap().port, 2525);
        assert!(Hop::parse("[192.0.2.1]", 25).unwrap().literal);
    }

    #[test]
    fn mailertable_order() {
        let d = std::env::temp_dir().join(format!("mr-route-{}", std::process::id()));
        std::fs::create_dir_all(d.join("etc/mail")).unwrap();
        std::fs::write(
            d.join("etc/mail/mailertable"),
            "special.example smtp:[10.0.0.5]:2525\n.example.org relay:[gw.example.net]\nbad.example error:5.1.2:550 no mail here\nhere.example local:bob\n",
        )
        .unwrap();
        let cfg = Config::load(crate::config::Paths::under(&d), None).unwrap();
        let r = Router::new(&cfg, false);
        match r.route("special.example") {
            Route::Hosts { hops, .. } => assert_eq!(
                hops[0],
                Hop {
                    host: "10.0.0.5".into(),
                    port: 2525,
                    literal: true
                }
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(r.route("a.b.example.org"), Route::Hosts { .. }));
        assert!(
            matches!(r.route("example.org"), Route::Mx { .. }),
            "a leading dot matches subdomains only"
        );
        assert!(matches!(r.route("bad.example"), Route::Error(_)));
        assert_eq!(r.route("here.example"), Route::Local("bob".into()));
        assert!(matches!(r.route("other.example"), Route::Mx { .. }));
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// `/etc/mail/source-addresses` ("private SMTP routing"): the local
/// address the queue runner connects from, by the envelope sender's
/// domain — so that one hosted domain sends from its own IP address (its
/// SPF record and reverse DNS name it).  makemap syntax:
///
/// ```text
/// shop.example     198.51.100.7
/// .example.com     192.0.2.5        # example.com's subdomains
/// example.com      192.0.2.5
/// ```
///
/// The sender's domain is looked up, then each parent as `.parent`; no
/// entry (or the null sender of a bounce) connects from the system's
/// default address.  A destination of the other address family is
/// reached without binding.
#[derive(Debug)]
pub struct SourceAddresses {
    table: Table,
}

impl SourceAddresses {
    pub fn load(cfg: &Config, may_rebuild: bool) -> SourceAddresses {
        SourceAddresses {
            table: Table::open(
                &cfg.paths.etc_mail("source-addresses"),
                Syntax::Makemap,
                may_rebuild,
            ),
        }
    }

    /// The address to connect from for mail from `sender`.
    pub fn for_sender(&self, sender: &str) -> Option<std::net::IpAddr> {
        if self.table.is_empty() {
            return None;
        }
        let (_, domain) = crate::address::split_addr(sender);
        let domain = domain?.trim_end_matches('.').to_ascii_lowercase();
        let mut key = domain.clone();
        let mut rest = domain.as_str();
        loop {
            if let Some(hit) = self.table.get(&key) {
                return match hit.value.trim().parse() {
                    Ok(ip) => Some(ip),
                    Err(_) => {
                        crate::log::warning(
                            None,
                            &format!(
                                "{}:{}: {:?} is not an IP address; ignored",
                                self.table.path().display(),
                                hit.line,
                                hit.value
                            ),
                        );
                        None
                    }
                };
            }
            match rest.split_once('.') {
                Some((_, parent)) if !parent.is_empty() => {
                    key = format!(".{parent}");
                    rest = parent;
                }
                _ => return None,
            }
        }
    }
}
