//! The checks themselves: SPF (RFC 7208) by our own evaluator
//! ([`super::spf`]), DKIM (RFC 6376/8301/8463) and DMARC (RFC 9989 with
//! its DNS tree walk) through Stalwart's `mail-auth`, and the blocklist
//! lookups, all on one resolver with one bounded budget.
//!
//! Every lookup waits at most `dns_timeout`, and each whole check (a
//! connect's lists, a `MAIL`'s SPF, a message's DKIM and DMARC) at most
//! `inbound_check_time`: past that, what is unanswered is a temporary
//! error.  Each connection is its own process (inetd), so a slow lookup
//! stalls only that client.  The resolver's cache lives as long as the
//! connection (a client sending 20 messages looks each key up once);
//! across connections, a local caching resolver does it (README).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::proto::rr::{Name, RData};
use mail_auth::dmarc::Policy;
use mail_auth::{
    AuthenticatedMessage, DkimResult, DmarcResult, MessageAuthenticator, SpfResult,
    dmarc::verify::DmarcParameters,
};

use super::dnsbl::{self, Answer, Score, Sites};
use super::spf;

/// What `MAIL FROM` was checked as (RFC 7208 §2.3–2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// `smtp.mailfrom=ADDR`.
    MailFrom(String),
    /// The null sender: the HELO name (`smtp.helo=NAME`).
    Helo(String),
}

/// The SPF result of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfCheck {
    /// `pass`, `fail`, `softfail`, `neutral`, `none`, `temperror`, `permerror`.
    pub result: &'static str,
    pub identity: Identity,
    /// The domain checked.
    pub domain: String,
    /// The domain's `exp=` text, for a refusal.
    pub explanation: Option<String>,
    /// Why, for `none`, `temperror` and `permerror` (the record's syntax
    /// error, the DNS failure...).
    pub reason: Option<String>,
    output: Option<mail_auth::SpfOutput>,
}

impl SpfCheck {
    pub fn passed(&self) -> bool {
        self.result == "pass"
    }

    /// No resolver, no answer: `temperror`.
    pub fn unanswered(helo: &str, sender: &str) -> SpfCheck {
        let (identity, domain) = match sender.rsplit_once('@') {
            Some((_, d)) => (
                Identity::MailFrom(sender.to_string()),
                d.to_ascii_lowercase(),
            ),
            None if !sender.is_empty() => (
                Identity::MailFrom(sender.to_string()),
                helo.to_ascii_lowercase(),
            ),
            None => (Identity::Helo(helo.to_string()), helo.to_ascii_lowercase()),
        };
        SpfCheck {
            result: "temperror",
            identity,
            domain,
            explanation: None,
            reason: None,
            output: None,
        }
    }
}

/// One DKIM signature's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimCheck {
    pub result: &'static str,
    /// `d=`, `s=`, `a=`, `i=`, and the first 8 characters of `b=`.
    pub domain: String,
    pub selector: String,
    pub algorithm: String,
    pub identity: String,
    pub b: String,
    pub reason: Option<String>,
}

/// The DMARC result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcCheck {
    pub result: &'static str,
    /// The RFC5322.From domain (empty: none to check).
    pub from_domain: String,
    /// The policy that applies (`p=`, `sp=` or `np=`; `t=y` lowers reject
    /// to quarantine), when a record was found.
    pub policy: Option<&'static str>,
    pub reason: Option<String>,
}

/// A message's DKIM and DMARC results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageCheck {
    pub dkim: Vec<DkimCheck>,
    pub dmarc: DmarcCheck,
    /// The From: domains (lower case).
    pub from_domains: Vec<String>,
    /// Not all answers came within `inbound_check_time`.
    pub timed_out: bool,
}

impl MessageCheck {
    /// No resolver, no answer: `temperror`.
    pub fn unanswered() -> MessageCheck {
        MessageCheck {
            dkim: Vec::new(),
            dmarc: DmarcCheck {
                result: "temperror",
                from_domain: String::new(),
                policy: None,
                reason: Some("no resolver".to_string()),
            },
            from_domains: Vec::new(),
            timed_out: true,
        }
    }
}

/// One resolver and its small runtime, for one connection.
pub struct Verifier {
    rt: tokio::runtime::Runtime,
    auth: MessageAuthenticator,
    budget: Duration,
    /// The host name given to SPF's `%{r}`.
    host: String,
}

impl Verifier {
    /// The system's resolvers (`/etc/resolv.conf`).
    pub fn system(host: &str, dns_timeout: Duration, budget: Duration) -> Result<Verifier, String> {
        let (config, opts) = hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| format!("cannot read the resolver configuration: {e}"))?;
        Verifier::new(config, opts, host, dns_timeout, budget)
    }

    /// Given name servers (tests, and a box that names its resolver).
    pub fn with_name_servers(
        servers: &[SocketAddr],
        host: &str,
        dns_timeout: Duration,
        budget: Duration,
    ) -> Result<Verifier, String> {
        let mut config = ResolverConfig::from_parts(None, vec![], vec![]);
        for s in servers {
            let mut udp = ConnectionConfig::udp();
            udp.port = s.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = s.port();
            let mut ns = NameServerConfig::udp(s.ip());
            ns.connections = vec![udp, tcp];
            config.add_name_server(ns);
        }
        Verifier::new(config, ResolverOpts::default(), host, dns_timeout, budget)
    }

    fn new(
        config: ResolverConfig,
        mut opts: ResolverOpts,
        host: &str,
        dns_timeout: Duration,
        budget: Duration,
    ) -> Result<Verifier, String> {
        opts.timeout = dns_timeout;
        opts.attempts = 1;
        opts.edns0 = true;
        // Answers are not "hosts": a blocklist name must reach DNS.
        opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the resolver: {e}"))?;
        let auth = rt
            .block_on(async { MessageAuthenticator::new(config, opts) })
            .map_err(|e| format!("cannot start the resolver: {e}"))?;
        Ok(Verifier {
            rt,
            auth,
            budget,
            host: host.to_string(),
        })
    }

    /// Run `f` within the budget; None: it ran out.
    fn bounded<T>(&self, f: impl Future<Output = T>) -> Option<T> {
        self.rt
            .block_on(async { tokio::time::timeout(self.budget, f).await.ok() })
    }

    /// Look the client up in every list at once and add up the weights.
    pub fn lists(&self, ip: IpAddr, blocklists: &Sites, allowlists: &Sites) -> Score {
        let sites: Vec<&dnsbl::Site> = blocklists.0.iter().chain(&allowlists.0).collect();
        let resolver = self.auth.resolver();
        let lookups = sites.iter().map(|site| async move {
            let name = dnsbl::query_name(&ip, &site.zone);
            let Ok(name) = Name::from_ascii(&name) else {
                return Answer::Failed("bad name".to_string());
            };
            match resolver.ipv4_lookup(name).await {
                Ok(l) => {
                    let codes: Vec<_> = l
                        .answers()
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::A(a) => Some(a.0),
                            _ => None,
                        })
                        .collect();
                    if codes.is_empty() {
                        Answer::NotListed
                    } else {
                        Answer::Listed(codes)
                    }
                }
                Err(e) if e.is_no_records_found() || e.is_nx_domain() => Answer::NotListed,
                Err(e) => Answer::Failed(e.to_string()),
            }
        });
        let answers = self.bounded(futures_join_all(lookups)).unwrap_or_else(|| {
            sites
                .iter()
                .map(|_| Answer::Failed("no answer in time".to_string()))
                .collect()
        });
        dnsbl::score(sites.iter().copied().zip(answers))
    }

    /// The TXT text a list gives for `ip` (its reason), if any.
    pub fn list_text(&self, ip: IpAddr, zone: &str) -> Option<String> {
        let name = Name::from_ascii(dnsbl::query_name(&ip, zone)).ok()?;
        let resolver = self.auth.resolver();
        let lookup = self.bounded(resolver.txt_lookup(name))?.ok()?;
        let text = crate::dns::txt_texts(&lookup).into_iter().next()?;
        let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
        (!text.trim().is_empty()).then(|| text.trim().to_string())
    }

    /// Does `domain` exist in DNS?  Some(false) only for NXDOMAIN (a
    /// name with no MX is still a name); None: no answer.
    pub fn domain_exists(&self, domain: &str) -> Option<bool> {
        let name = Name::from_ascii(format!("{}.", domain.trim_end_matches('.'))).ok()?;
        let resolver = self.auth.resolver();
        match self.bounded(resolver.mx_lookup(name))? {
            Ok(_) => Some(true),
            Err(e) if e.is_nx_domain() => Some(false),
            Err(e) if e.is_no_records_found() => Some(true),
            Err(_) => None,
        }
    }

    /// SPF for `MAIL FROM:<sender>` from `ip` after `HELO helo` (the HELO
    /// identity when the sender is null), by mailroom's own evaluator
    /// ([`super::spf`]) on this connection's resolver, within the budget.
    pub fn spf(&self, ip: IpAddr, helo: &str, sender: &str) -> SpfCheck {
        let identity = if sender.is_empty() {
            Identity::Helo(helo.to_string())
        } else {
            Identity::MailFrom(sender.to_string())
        };
        let request = spf::Request {
            ip,
            helo,
            sender,
            receiver: &self.host,
        };
        let Some(eval) = self.bounded(spf::check(self.auth.resolver(), &request)) else {
            let mut check = SpfCheck::unanswered(helo, sender);
            check.reason = Some("no DNS answer in time".to_string());
            return check;
        };
        // DMARC (mail-auth) takes the SPF result in its own type.
        let mut output = mail_auth::SpfOutput::new(eval.domain.clone())
            .with_result(mail_auth_result(eval.result));
        if let Some(e) = &eval.explanation {
            output = output.with_explanation(e.clone());
        }
        SpfCheck {
            result: eval.result.as_str(),
            identity,
            domain: eval.domain,
            explanation: eval.explanation,
            reason: eval.reason,
            output: Some(output),
        }
    }

    /// DKIM (every signature) and DMARC for a whole message as received
    /// (CRLF line ends), with the transaction's SPF result.
    pub fn message(&self, raw: &[u8], spf: &SpfCheck) -> MessageCheck {
        let Some(msg) = AuthenticatedMessage::parse(raw) else {
            return MessageCheck {
                dkim: Vec::new(),
                dmarc: DmarcCheck {
                    result: "permerror",
                    from_domain: String::new(),
                    policy: None,
                    reason: Some("the message could not be parsed".to_string()),
                },
                from_domains: Vec::new(),
                timed_out: false,
            };
        };
        let from_domains: Vec<String> = msg
            .froms()
            .iter()
            .filter_map(|f| f.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()))
            .collect();
        let spf_out = spf.output.clone().unwrap_or_else(|| {
            mail_auth::SpfOutput::new(spf.domain.clone()).with_result(SpfResult::TempError)
        });
        let work = async {
            let dkim = self.auth.verify_dkim(&msg).await;
            let dmarc = self
                .auth
                .verify_dmarc(DmarcParameters::new(&msg, &dkim, &spf.domain, &spf_out))
                .await;
            let dkim_checks: Vec<DkimCheck> = dkim.iter().map(dkim_check).collect();
            (dkim_checks, dmarc)
        };
        match self.bounded(work) {
            Some((dkim, dmarc)) => {
                let result = dmarc_word(&dmarc.result());
                let reason = match dmarc.result() {
                    DmarcResult::Fail(e)
                    | DmarcResult::TempError(e)
                    | DmarcResult::PermError(e) => Some(e.to_string()),
                    _ => None,
                };
                MessageCheck {
                    dkim,
                    dmarc: DmarcCheck {
                        result,
                        from_domain: dmarc.domain().to_ascii_lowercase(),
                        policy: dmarc.dmarc_record().map(|_| policy_word(dmarc.policy())),
                        reason,
                    },
                    from_domains,
                    timed_out: false,
                }
            }
            None => MessageCheck {
                dkim: Vec::new(),
                dmarc: DmarcCheck {
                    result: "temperror",
                    from_domain: from_domains.first().cloned().unwrap_or_default(),
                    policy: None,
                    reason: Some("no DNS answer in time".to_string()),
                },
                from_domains,
                timed_out: true,
            },
        }
    }
}

/// Await every future, in order (the lists are looked up side by side).
async fn futures_join_all<F: Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futs.map(Box::pin).collect();
    let mut out = Vec::with_capacity(handles.len());
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().flatten());
    out
}

/// Our SPF result as mail-auth's, for its DMARC evaluation.
fn mail_auth_result(r: spf::SpfResult) -> SpfResult {
    match r {
        spf::SpfResult::Pass => SpfResult::Pass,
        spf::SpfResult::Fail => SpfResult::Fail,
        spf::SpfResult::SoftFail => SpfResult::SoftFail,
        spf::SpfResult::Neutral => SpfResult::Neutral,
        spf::SpfResult::None => SpfResult::None,
        spf::SpfResult::TempError => SpfResult::TempError,
        spf::SpfResult::PermError => SpfResult::PermError,
    }
}

fn dmarc_word(r: &DmarcResult) -> &'static str {
    match r {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

fn policy_word(p: Policy) -> &'static str {
    match p {
        Policy::Reject => "reject",
        Policy::Quarantine => "quarantine",
        Policy::None | Policy::Unspecified => "none",
    }
}

fn dkim_check(out: &mail_auth::DkimOutput<'_>) -> DkimCheck {
    let (result, reason) = match out.result() {
        DkimResult::Pass => ("pass", None),
        // mail-auth says "neutral" for a body that does not match its hash
        // and for an expired signature; RFC 6376 §6.1.1 and §6.1.3 make
        // both PERMFAIL, which RFC 8601 §2.7.1 reports as "fail" (as
        // dkimpy and OpenDKIM do).
        DkimResult::Neutral(
            e @ mail_auth::Error::Dkim(
                mail_auth::dkim::DkimError::FailedBodyHashMatch
                | mail_auth::dkim::DkimError::SignatureExpired,
            ),
        ) => ("fail", Some(e.to_string())),
        DkimResult::Neutral(e) => ("neutral", Some(e.to_string())),
        DkimResult::Fail(e) => ("fail", Some(e.to_string())),
        DkimResult::PermError(e) => ("permerror", Some(e.to_string())),
        DkimResult::TempError(e) => ("temperror", Some(e.to_string())),
        DkimResult::None => ("none", None),
    };
    match out.signature() {
        Some(s) => DkimCheck {
            result,
            domain: s.d.to_ascii_lowercase(),
            selector: s.s.clone(),
            algorithm: algorithm_word(&s.a).to_string(),
            identity: s.i.clone(),
            b: crate::b64::encode(&s.b).chars().take(8).collect(),
            reason,
        },
        None => DkimCheck {
            result,
            domain: String::new(),
            selector: String::new(),
            algorithm: String::new(),
            identity: String::new(),
            b: String::new(),
            reason,
        },
    }
}

fn algorithm_word(a: &mail_auth::common::crypto::Algorithm) -> &'static str {
    match a {
        mail_auth::common::crypto::Algorithm::RsaSha256 => "rsa-sha256",
        mail_auth::common::crypto::Algorithm::RsaSha1 => "rsa-sha1",
        mail_auth::common::crypto::Algorithm::Ed25519Sha256 => "ed25519-sha256",
    }
}
