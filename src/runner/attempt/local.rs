//! The local part of an attempt: recipients through the delivery agent
//! ([`crate::deliver`]), with what each came to — delivered (then the
//! autoreply hook; a quota warning the copy queued runs next), forwarded
//! on, a list's copy split off, deferred, failed — and the `mailer=local`
//! log line.

use super::{Attempt, Failed};
use crate::address;
use crate::date;
use crate::deliver::{self, Outcome};
use crate::log;
use crate::mailbox::Message;
use crate::queue::{Recipient, enqueue};
use crate::runner::render;

impl Attempt<'_> {
    /// Local recipients through the delivery agent; returns forwards.
    pub(super) fn deliver_local(&mut self, local: &[Recipient]) -> Vec<(String, Recipient)> {
        let cfg = &self.r.cfg;
        let message = match Message::from_bytes(&render::render(
            self.env,
            self.body,
            render::For::Local,
            &cfg.hostname,
        )) {
            Ok(m) => m,
            Err(e) => {
                for r in local {
                    self.defer(
                        r.clone(),
                        "4.3.0",
                        format!(
                            "Deferred: cannot prepare the message: {}",
                            crate::exit::io_reason(&e)
                        ),
                    );
                }
                return Vec::new();
            }
        };
        let sender = render::sender_address(&self.env.sender);
        let rcpts: Vec<deliver::Rcpt> = local
            .iter()
            .map(|r| deliver::Rcpt {
                address: r.addr.clone(),
                ctl: r.ctl.as_deref().and_then(deliver::parse_ctl),
            })
            .collect();
        let journal = self.r.queue.path("lf", self.id);
        let req = deliver::Request {
            sender: if sender.is_empty() { "<>" } else { &sender },
            arrival: self.env.created,
            message: &message,
            queue_id: Some(self.id.as_str()),
            redelivery: self.interrupted,
            job_lock: Some(self.job_lock),
            lmtp_journal: Some(&journal),
        };
        let reports = deliver::deliver(&self.r.resolver, &req, &rcpts);
        let mut forwards = Vec::new();
        for parent in local {
            let mine: Vec<&deliver::Report> = reports
                .iter()
                .filter(|rep| rep.recipient == parent.addr)
                .collect();
            let same = |rep: &deliver::Report| rep.printable == parent.addr;
            for rep in &mine {
                self.log_local(rep);
                // A quota warning the copy queued is delivered next.
                self.replies.extend(rep.warning.clone());
                let split_sender = rep
                    .sender
                    .as_ref()
                    .filter(|s| render::sender_address(s) != sender)
                    .cloned();
                match &rep.outcome {
                    Outcome::Delivered => {
                        if rep.what.starts_with("mailbox ") || rep.what.starts_with("maildir ") {
                            self.autoreply(&message, &req, parent, rep);
                        }
                        if parent.has_flag('S') {
                            self.succeeded.push(Failed {
                                rcpt: parent.clone(),
                                actual: Some(rep.printable.clone()),
                                status: "2.0.0".into(),
                                text: "delivered to mailbox".into(),
                                remote_reply: false,
                                remote_mta: None,
                            });
                        }
                    }
                    Outcome::Forward { address, .. } => {
                        let child = self.child(parent, address, None);
                        match split_sender {
                            Some(s) => self.splits.entry((s, None)).or_default().push(child),
                            None => {
                                let d = address::split_addr(address)
                                    .1
                                    .unwrap_or("")
                                    .trim_end_matches('.')
                                    .to_ascii_lowercase();
                                forwards.push((d, child));
                            }
                        }
                    }
                    Outcome::List { name } => {
                        let mut r = self.child(
                            parent,
                            &rep.again,
                            rep.ctl
                                .as_ref()
                                .map(|o| format!("{}:{}:{}", o.name, o.uid, o.gid)),
                        );
                        // The owner's bounce names the member, not the list.
                        r.final_rcpt = Some(format!(
                            "RFC822; {}",
                            address::qualify(
                                &render::sender_address(rep.printable.trim_start_matches('\\')),
                                &self.r.cfg.hostname
                            )
                        ));
                        let s = rep
                            .sender
                            .clone()
                            .unwrap_or_else(|| self.env.sender.clone());
                        self.splits
                            .entry((s, Some(name.clone())))
                            .or_default()
                            .push(r);
                    }
                    Outcome::Deferred(f) => {
                        let r = if same(rep) {
                            parent.clone()
                        } else {
                            self.child(
                                parent,
                                &rep.again,
                                rep.ctl
                                    .as_ref()
                                    .map(|o| format!("{}:{}:{}", o.name, o.uid, o.gid)),
                            )
                        };
                        match split_sender {
                            Some(s) => self.splits.entry((s, None)).or_default().push(r),
                            None => self.defer(r, &f.dsn, format!("Deferred: {}", f.text)),
                        }
                    }
                    Outcome::Failed(f) => self.failed.push(Failed {
                        rcpt: parent.clone(),
                        actual: if same(rep) {
                            None
                        } else {
                            Some(rep.printable.clone())
                        },
                        status: f.dsn.clone(),
                        text: f.text.clone(),
                        remote_reply: false,
                        remote_mta: None,
                    }),
                }
            }
        }
        forwards
    }

    /// After a mailbox delivery: answer the sender when the recipient
    /// (or the mailbox it led to) has an autoreply and RFC 3834 allows it.
    /// Failures are logged; the delivery stands.
    fn autoreply(
        &mut self,
        message: &Message,
        req: &deliver::Request<'_>,
        parent: &Recipient,
        rep: &deliver::Report,
    ) {
        let cfg = &self.r.cfg;
        let host = &cfg.hostname;
        let mut keys: Vec<String> = Vec::new();
        let envelope_rcpt = render::sender_address(&parent.addr);
        let mailbox = rep.again.trim_start_matches('\\');
        for a in [envelope_rcpt.as_str(), mailbox] {
            if let Some(k) = crate::autoreply::key(a, host)
                && !keys.contains(&k)
            {
                keys.push(k);
            }
        }
        let Some((key, rule)) = keys
            .iter()
            .find_map(|k| match crate::autoreply::load(cfg, k) {
                Ok(Some(r)) => Some((k.clone(), r)),
                Ok(None) => None,
                Err(e) => {
                    log::warning(Some(self.id.as_str()), &format!("autoreply: {e}"));
                    None
                }
            })
        else {
            return;
        };
        let id = self.id.as_str();
        let now = date::now();
        if !rule.active_on(&crate::autoreply::today(now)) {
            return;
        }
        let header = crate::message::Header::parse(&message.header_bytes().unwrap_or_default());
        if let Some(why) = crate::autoreply::refuse(req.sender, &header, &keys) {
            log::info(Some(id), &format!("autoreply from {key}: none ({why})"));
            return;
        }
        let to = address::qualify(&render::sender_address(req.sender), host);
        let mut queued = None;
        let due = crate::autoreply::once_per_interval(cfg, &key, &to, rule.interval, now, || {
            if !self.r.dsn_allowed(&to) {
                log::warning(
                    Some(id),
                    &format!("autoreply to {to} suppressed: rate limit reached"),
                );
                return false;
            }
            let msg = crate::autoreply::build_reply(&rule, &key, &to, &header, host, id, now);
            match enqueue::notification(cfg, &to, &msg, "localhost") {
                Ok(bid) => {
                    log::info(Some(id), &format!("{bid}: autoreply from {key} to {to}"));
                    queued = Some(bid);
                    true
                }
                Err(f) => {
                    log::err(Some(id), &format!("cannot queue the autoreply: {f}"));
                    false
                }
            }
        });
        match due {
            Ok(true) => self.replies.extend(queued),
            Ok(false) => log::info(
                Some(id),
                &format!("autoreply from {key}: none ({to} answered within the interval)"),
            ),
            Err(e) => log::err(
                Some(id),
                &format!("autoreply from {key}: {}", crate::exit::io_reason(&e)),
            ),
        }
    }

    fn log_local(&self, rep: &deliver::Report) {
        let (dsn, stat) = match &rep.outcome {
            Outcome::Delivered => ("2.0.0".to_string(), "Sent".to_string()),
            Outcome::Forward { address, .. } => {
                ("2.0.0".to_string(), format!("forwarded to {address}"))
            }
            Outcome::List { name } => ("2.0.0".to_string(), format!("to list {name}'s copy")),
            Outcome::Deferred(f) => (f.dsn.clone(), format!("Deferred: {}", f.text)),
            Outcome::Failed(f) => (f.dsn.clone(), f.text.clone()),
        };
        log::info(
            Some(self.id.as_str()),
            &format!(
                "to={}, delay={}, xdelay={}, mailer=local, pri={}, dsn={dsn}, stat={stat}",
                rep.printable,
                date::duration(date::now() - self.env.created),
                date::duration(self.clock.elapsed().as_secs() as i64),
                self.env.priority
            ),
        );
        self.r.say(&format!("{}... {stat}", rep.printable));
    }
}
