//! Checking senders at the door: DNS blocklists at connect, SPF at `MAIL`,
//! DKIM and DMARC at the end of DATA, and the `Authentication-Results:`
//! field that records what was found (README: "Checking senders").
//!
//! Who is checked: network clients on the MX role (port 25) that neither
//! logged in nor may relay — mail from the internet.  A local program, a
//! loopback client, an address with `Connect:` OK or RELAY in
//! `/etc/mail/access`, a POP-before-SMTP address, and the submission
//! ports 587/465 are not (their users are this box's own; a customer on a
//! dynamic address is on Spamhaus's PBL by design, and Spamhaus forbids
//! ZEN on submission).
//!
//! Each connection is its own process, started by inetd: the checks run
//! in it, unprivileged, on one resolver built at the first check
//! ([`verify::Verifier`]), every lookup and every whole check bounded.
//!
//! ## Modules
//!
//! [`settings`] the keys; [`dnsbl`] block and allow lists; [`spf`] the
//! SPF evaluator; [`verify`] the checks on one resolver (SPF, and DKIM and
//! DMARC through mail-auth); [`policy`] what the results lead to;
//! [`results`] the header field, written and read back.

pub mod dnsbl;
pub mod policy;
pub mod results;
pub mod settings;
pub mod spf;
pub mod verify;

use std::cell::OnceCell;
use std::net::IpAddr;

use crate::config::Config;
use crate::exit::Failure;
use crate::log;
use crate::smtp::Reply;
pub use policy::Judgement;
pub use settings::Settings;
pub use verify::{MessageCheck, SpfCheck, Verifier};

/// This host's authserv-id (`authserv_id`, else the host name): the
/// fields delivery trusts, and the ones removed when they arrive.
pub fn authserv_id(cfg: &Config) -> String {
    cfg.get("authserv_id")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| cfg.hostname.clone())
}

/// The checks of one SMTP connection.
pub struct Gate {
    pub settings: Settings,
    host: String,
    verifier: OnceCell<Result<Verifier, String>>,
}

impl Gate {
    /// The checks as configured; None when `inbound_checks = no`.
    pub fn load(cfg: &Config) -> Result<Option<Gate>, Failure> {
        let settings = Settings::from_config(cfg)?;
        Ok(settings.enabled.then(|| Gate {
            settings,
            host: cfg.hostname.clone(),
            verifier: OnceCell::new(),
        }))
    }

    /// With a resolver of the caller's (tests).
    pub fn with_verifier(settings: Settings, host: &str, verifier: Verifier) -> Gate {
        let cell = OnceCell::new();
        let _ = cell.set(Ok(verifier));
        Gate {
            settings,
            host: host.to_string(),
            verifier: cell,
        }
    }

    fn verifier(&self) -> Result<&Verifier, &str> {
        self.verifier
            .get_or_init(|| {
                let s = &self.settings;
                if s.resolvers.is_empty() {
                    Verifier::system(&self.host, s.dns_timeout, s.check_time)
                } else {
                    Verifier::with_name_servers(
                        &s.resolvers,
                        &self.host,
                        s.dns_timeout,
                        s.check_time,
                    )
                }
                .inspect_err(|e| log::err(None, &format!("sender checks: {e}")))
            })
            .as_ref()
            .map_err(String::as_str)
    }

    /// The blocklists at connect: the `554 5.7.1` greeting for a listed
    /// client, or None.  `shown`: the client as logs name it.
    pub fn at_connect(&self, ip: IpAddr, shown: &str) -> Option<Reply> {
        let s = &self.settings;
        if s.blocklists.is_empty() {
            return None;
        }
        let v = self.verifier().ok()?;
        let score = v.lists(ip, &s.blocklists, &s.allowlists);
        for (zone, why) in &score.failed {
            log::info(
                None,
                &format!("dnsbl: {zone} gave no answer for {shown}: {why}"),
            );
        }
        for (zone, codes) in &score.refused {
            let codes: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
            log::warning(
                None,
                &format!(
                    "dnsbl: {zone} answered {} for {shown}: an error code, not a listing (is the resolver a public one?)",
                    codes.join(",")
                ),
            );
        }
        if score.total < s.dnsbl_threshold {
            return None;
        }
        let worst = score.worst()?;
        let text = v
            .list_text(ip, &worst.zone)
            .unwrap_or_else(|| format!("listed by {}", worst.zone));
        let zones: Vec<&str> = score.hits.iter().map(|h| h.zone.as_str()).collect();
        log::notice(
            None,
            &format!(
                "rejecting connection from {shown}: listed by {} (weight {} of {}): {text}",
                zones.join(", "),
                score.total,
                s.dnsbl_threshold
            ),
        );
        Some(Reply::new(
            554,
            format!(
                "5.7.1 Service unavailable; client {shown} blocked using {}; {text}",
                worst.zone
            ),
        ))
    }

    /// SPF at `MAIL`: the result to keep, or the reply that refuses.
    pub fn at_mail(&self, ip: IpAddr, helo: &str, sender: &str) -> Result<SpfCheck, Reply> {
        let spf = match self.verifier() {
            Ok(v) => v.spf(ip, helo, sender),
            Err(_) => verify::SpfCheck::unanswered(helo, sender),
        };
        let addr = crate::access::client_addr(&ip);
        let relay = format!("[{addr}]");
        // A domain with an SPF answer exists; otherwise ask, as sendmail 8
        // does for every sender (553 5.1.8: bounces to it could not go).
        // After a temperror DNS has had its time: SPF's 451 says it.
        let exists = match (sender.rsplit_once('@'), spf.result) {
            (Some((_, d)), "none" | "permerror") => match self.verifier() {
                Ok(v) => v.domain_exists(d),
                Err(_) => None,
            },
            _ => Some(true),
        };
        let refusal = match exists {
            Some(false) => Some(Reply::new(
                553,
                format!("5.1.8 <{sender}>... Domain of sender address {sender} does not exist"),
            )),
            None if self.settings.dns_failure_defers => Some(Reply::new(
                451,
                format!("4.1.8 Domain of sender address {sender} does not resolve"),
            )),
            _ => policy::at_mail(&self.settings, &spf, &addr),
        };
        match refusal {
            Some(r) => {
                log::notice(
                    None,
                    &format!(
                        "ruleset=check_mail, arg1=<{sender}>, relay={relay}, reject={}",
                        r.one_line()
                    ),
                );
                Err(r)
            }
            None => Ok(spf),
        }
    }

    /// DKIM and DMARC of the whole message as received (CRLF line ends).
    pub fn at_data(
        &self,
        raw: &[u8],
        spf: &SpfCheck,
        own_domain: &dyn Fn(&str) -> bool,
    ) -> Judgement {
        let check = match self.verifier() {
            Ok(v) => v.message(raw, spf),
            Err(_) => MessageCheck::unanswered(),
        };
        policy::at_data(&self.settings, spf, &check, own_domain)
    }
}
