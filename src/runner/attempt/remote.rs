//! The remote part of an attempt: recipients grouped by domain, the
//! message signed once (DKIM) and sent in one transaction per domain
//! through [`crate::runner::remote`], with the `mailer=esmtp` log lines
//! (recipients with the same outcome joined, as sendmail does).

use std::time::Instant;

use super::{Attempt, Failed, notify_param};
use crate::address;
use crate::date;
use crate::dns::Dns;
use crate::log;
use crate::queue::Recipient;
use crate::runner::{pacing, remote, render};
use crate::smtp::client;

thread_local! {
    /// One resolver per worker thread, made at its first remote delivery.
    static DNS: std::cell::RefCell<Option<Dns>> = const { std::cell::RefCell::new(None) };
}

impl Attempt<'_> {
    /// Remote recipients by domain, one transaction per domain.
    pub(super) fn deliver_remote(&mut self, remote: Vec<(String, Recipient)>) {
        let mut by_domain: Vec<(String, Vec<Recipient>)> = Vec::new();
        for (d, r) in remote {
            match by_domain.iter_mut().find(|(x, _)| *x == d) {
                Some((_, v)) => v.push(r),
                None => by_domain.push((d, vec![r])),
            }
        }
        // One message token per transaction (crate::runner::pacing), taken
        // before anything is rendered or signed: a paced domain costs
        // nothing more.
        by_domain.retain(|(domain, rs)| {
            let now = pacing::now();
            let Err(wait) = self.r.pacer.take(domain, pacing::Token::Message, now) else {
                return true;
            };
            let rate = self.r.pacer.rates(domain).messages;
            let text = format!(
                "Deferred: pacing {domain} ({}); next in {}s",
                rate.map_or(String::new(), |r| r.words("messages")),
                wait.as_secs().max(1)
            );
            for r in rs {
                self.pace(r.clone(), text.clone(), wait);
            }
            false
        });
        if by_domain.is_empty() {
            return;
        }
        // Over SMTP every address is fully qualified (RFC 5321 §4.1.2); a
        // script's bare `-f root` leaves as root@$hostname, as in sendmail.
        let sender = match render::sender_address(&self.env.sender) {
            s if s.is_empty() => s,
            s => address::qualify(&s, &self.r.cfg.hostname),
        };
        let message = render::render(self.env, self.body, render::For::Smtp, &self.r.cfg.hostname);
        // Signed once for every destination; a key that cannot be read
        // keeps the mail queued rather than sending it unsigned.
        let message = match self.r.dkim.sign(&message, &sender, date::now()) {
            Ok(Some(signed)) => signed,
            Ok(None) => message,
            Err(e) => {
                log::err(Some(self.id.as_str()), &e);
                for (_, rs) in &by_domain {
                    for r in rs {
                        self.defer(r.clone(), "4.7.0", format!("Deferred: {e}"));
                    }
                }
                return;
            }
        };
        let ret = if self.env.has_flag('d') {
            Some(if self.env.has_flag('n') {
                "HDRS"
            } else {
                "FULL"
            })
        } else {
            None
        };
        let host = self.r.cfg.hostname.clone();
        let my_names = |h: &str| {
            let h = h.trim_end_matches('.').to_ascii_lowercase();
            h == host || h == "localhost"
        };
        DNS.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                match Dns::system() {
                    Ok(d) => *slot = Some(d),
                    Err(e) => log::err(None, &e),
                }
            }
            let Some(dns) = slot.as_ref() else {
                for (_, rs) in &by_domain {
                    for r in rs {
                        self.defer(r.clone(), "4.4.3", "Deferred: no resolver".to_string());
                    }
                }
                return;
            };
            let ctx = remote::Context {
                router: &self.r.router,
                dns,
                pool: &self.r.pool,
                pacer: &self.r.pacer,
                helo: &self.r.settings.helo,
                my_names: &my_names,
                timeouts: self.r.settings.timeouts(),
                auth: self.r.auth.clone(),
                bind: self.r.sources.for_sender(&sender),
            };
            for (domain, rs) in &by_domain {
                let rcpts: Vec<client::Rcpt> = rs
                    .iter()
                    .map(|r| client::Rcpt {
                        address: render::sender_address(&r.addr),
                        notify: notify_param(r),
                        orcpt: r.orcpt.clone(),
                    })
                    .collect();
                let job = remote::Job {
                    domain,
                    sender: &sender,
                    rcpts: &rcpts,
                    message: &message,
                    ret,
                    envid: self.env.envid.as_deref(),
                };
                let start = Instant::now();
                let (verdicts, relay) = remote::deliver(&ctx, &job);
                self.log_remote(rs, &verdicts, &relay, start);
                for (r, v) in rs.iter().zip(verdicts) {
                    match v {
                        remote::Verdict::Sent { reply } => {
                            if r.has_flag('S') {
                                self.succeeded.push(Failed {
                                    rcpt: r.clone(),
                                    actual: None,
                                    status: "2.0.0".into(),
                                    text: format!("250 {reply}"),
                                    remote_reply: true,
                                    remote_mta: relay.host.clone(),
                                });
                            }
                        }
                        remote::Verdict::Deferred { status, text } => {
                            self.defer(r.clone(), &status, text)
                        }
                        remote::Verdict::Failed {
                            status,
                            text,
                            remote_reply,
                        } => self.failed.push(Failed {
                            rcpt: r.clone(),
                            actual: None,
                            status,
                            text,
                            remote_reply,
                            remote_mta: relay.host.clone(),
                        }),
                    }
                }
            }
        });
    }

    fn log_remote(
        &self,
        rs: &[Recipient],
        verdicts: &[remote::Verdict],
        relay: &remote::Relay,
        start: Instant,
    ) {
        // sendmail joins recipients with the same outcome in one line.
        let mut groups: Vec<(String, String, Vec<String>)> = Vec::new();
        for (r, v) in rs.iter().zip(verdicts) {
            let (dsn, stat) = match v {
                remote::Verdict::Sent { reply } => ("2.0.0".to_string(), format!("Sent ({reply})")),
                remote::Verdict::Deferred { status, text } => (status.clone(), text.clone()),
                remote::Verdict::Failed { status, text, .. } => (status.clone(), text.clone()),
            };
            match groups.iter_mut().find(|(d, s, _)| *d == dsn && *s == stat) {
                Some((_, _, v)) => v.push(r.addr.clone()),
                None => groups.push((dsn, stat, vec![r.addr.clone()])),
            }
        }
        for (dsn, stat, who) in groups {
            let relay_part = if relay.text.is_empty() {
                String::new()
            } else {
                format!(", relay={}", relay.text)
            };
            log::info(
                Some(self.id.as_str()),
                &format!(
                    "to={}, delay={}, xdelay={}, mailer=esmtp, pri={}{relay_part}, dsn={dsn}, stat={stat}",
                    who.join(","),
                    date::duration(date::now() - self.env.created),
                    date::duration(start.elapsed().as_secs() as i64),
                    self.env.priority
                ),
            );
            self.r.say(&format!("{}... {stat}", who.join(",")));
        }
        let _ = self.started;
    }
}
