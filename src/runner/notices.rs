//! What the runner tells senders: failure notices (bounces), delay
//! warnings and return receipts (RFC 3464, [`crate::dsn`]), each queued
//! through the queue's door as mailroom's own message.
//!
//! Who hears what: a recipient's NOTIFY decides (without NOTIFY: failures
//! and delays).  A notice about a message from the null sender (a bounce
//! that failed) goes to the postmaster (`double_bounce`) once, never about
//! a delay, and is dropped when that too failed.  Notices to one address,
//! and in all, are limited per hour ([`DsnRate`]).

use std::collections::HashMap;

use super::attempt::Failed;
use super::{Runner, render};
use crate::address;
use crate::date;
use crate::dsn;
use crate::log;
use crate::queue::{Envelope, QueueId, Recipient, enqueue};

impl Runner {
    /// Send a failure or delay notification for `entries`; returns the id
    /// of the notification queued, if any.
    pub(super) fn bounce(
        &self,
        id: &QueueId,
        env: &Envelope,
        body: &[u8],
        kind: dsn::Kind,
        entries: &[Failed],
    ) -> Vec<QueueId> {
        let host = &self.cfg.hostname;
        let sender = render::sender_address(&env.sender);
        let null_sender = sender.is_empty();
        // Only those who asked (NOTIFY) hear about failures and delays.
        let wanted: Vec<&Failed> = entries
            .iter()
            .filter(|f| wants_notice(kind, &f.rcpt))
            .collect();
        if wanted.is_empty() {
            return Vec::new();
        }
        let to = if null_sender {
            match double_bounce_to(kind, &wanted, &self.settings.double_bounce) {
                Some(postmaster) => postmaster,
                None => {
                    log::notice(
                        Some(id.as_str()),
                        "double bounce: notification to the postmaster undeliverable; dropped",
                    );
                    return Vec::new();
                }
            }
        } else {
            address::qualify(&sender, host)
        };
        if !self.dsn_allowed(&to) {
            log::warning(
                Some(id.as_str()),
                &format!("DSN to {to} suppressed: rate limit reached"),
            );
            return Vec::new();
        }
        let dsn_entries: Vec<dsn::Entry> = wanted
            .iter()
            .map(|f| dsn::Entry {
                recipient: f
                    .rcpt
                    .final_rcpt
                    .as_deref()
                    .and_then(|r| r.split_once(';').map(|(_, a)| a.trim().to_string()))
                    .unwrap_or_else(|| {
                        address::qualify(&render::sender_address(&f.rcpt.addr), host)
                    }),
                actual: f.actual.clone(),
                original: f.rcpt.orcpt.clone(),
                status: f.status.clone(),
                diagnostic: f.text.clone(),
                remote_reply: f.remote_reply,
                remote_mta: f.remote_mta.clone(),
                last_attempt: date::now(),
            })
            .collect();
        let received_from = env
            .macro_value("_")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| "localhost".to_string());
        let original = render::render(env, body, render::For::Local, host);
        let report = dsn::Report {
            kind,
            qid: id.as_str(),
            host,
            to: &to,
            arrival: env.created,
            received_from: &received_from,
            envid: env.envid.as_deref(),
            headers_only: env.has_flag('n'),
            to_postmaster: null_sender,
            entries: &dsn_entries,
        };
        let reason = wanted.first().map(|f| f.text.clone()).unwrap_or_default();
        match dsn::build(&report, &mut &original[..]) {
            Ok(msg) => match enqueue::notification(&self.cfg, &to, &msg, "MAILER-DAEMON@localhost")
            {
                Ok(bid) => {
                    let what = match kind {
                        dsn::Kind::Failure => reason,
                        dsn::Kind::Delay { warn_after, .. } => format!(
                            "Warning: could not send message for past {}",
                            words(warn_after)
                        ),
                        dsn::Kind::Success => "Return receipt".to_string(),
                    };
                    log::info(Some(id.as_str()), &format!("{bid}: DSN: {what}"));
                    self.say(&format!("{id}: bounce {bid} to {to}"));
                    vec![bid]
                }
                Err(f) => {
                    log::err(Some(id.as_str()), &format!("cannot queue the DSN: {f}"));
                    Vec::new()
                }
            },
            Err(e) => {
                log::err(Some(id.as_str()), &format!("cannot build the DSN: {e}"));
                Vec::new()
            }
        }
    }

    /// NOTIFY=SUCCESS: a "delivered" notification.
    pub(super) fn success_notice(
        &self,
        id: &QueueId,
        env: &Envelope,
        body: &[u8],
        done: &[Failed],
    ) -> Vec<QueueId> {
        let sender = render::sender_address(&env.sender);
        if sender.is_empty() || done.is_empty() {
            return Vec::new();
        }
        let host = &self.cfg.hostname;
        let to = address::qualify(&sender, host);
        let entries: Vec<dsn::Entry> = done
            .iter()
            .map(|f| dsn::Entry {
                recipient: address::qualify(&render::sender_address(&f.rcpt.addr), host),
                actual: f.actual.clone(),
                original: f.rcpt.orcpt.clone(),
                status: "2.0.0".to_string(),
                diagnostic: f.text.clone(),
                remote_reply: f.remote_reply,
                remote_mta: f.remote_mta.clone(),
                last_attempt: date::now(),
            })
            .collect();
        let original = render::render(env, body, render::For::Local, host);
        let report = dsn::Report {
            kind: dsn::Kind::Success,
            qid: id.as_str(),
            host,
            to: &to,
            arrival: env.created,
            received_from: "localhost",
            envid: env.envid.as_deref(),
            headers_only: true,
            to_postmaster: false,
            entries: &entries,
        };
        match dsn::build(&report, &mut &original[..]) {
            Ok(msg) => enqueue::notification(&self.cfg, &to, &msg, "MAILER-DAEMON@localhost")
                .map(|b| vec![b])
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// May one more notice go to `to` this hour?  Counts it if so.
    pub(super) fn dsn_allowed(&self, to: &str) -> bool {
        DsnRate::in_queue(&self.cfg.queue_dir).allow(
            to,
            date::now() / 3600,
            self.settings.dsn_per_sender,
            self.settings.dsn_total,
        )
    }
}

/// Does `rcpt` want a notice of this kind?
fn wants_notice(kind: dsn::Kind, rcpt: &Recipient) -> bool {
    match kind {
        dsn::Kind::Failure => !rcpt.has_flag('N') || rcpt.has_flag('F'),
        dsn::Kind::Delay { .. } => !rcpt.has_flag('N') || rcpt.has_flag('D'),
        dsn::Kind::Success => rcpt.has_flag('S'),
    }
}

/// Where a notice about a message from the null sender goes: the
/// postmaster, unless it is about a delay or every failed recipient is the
/// postmaster or MAILER-DAEMON itself (then nobody: it is dropped).
fn double_bounce_to(kind: dsn::Kind, wanted: &[&Failed], postmaster: &str) -> Option<String> {
    let to_ourselves = wanted.iter().all(|f| {
        let a = render::sender_address(&f.rcpt.addr);
        let local = address::split_addr(&a).0.to_ascii_lowercase();
        local == postmaster.to_ascii_lowercase() || local == "mailer-daemon"
    });
    if to_ourselves || matches!(kind, dsn::Kind::Delay { .. }) {
        None
    } else {
        Some(postmaster.to_string())
    }
}

/// The per-hour count of notices, `QUEUE/.dsn-rate`: one line
/// `HOUR ADDRESS COUNT` per address notified in the current hour (lines of
/// other hours are dropped on the next write), under an exclusive `flock`
/// of the file while it is read and rewritten.  A file that cannot be
/// opened limits nothing: a notice is never lost for want of a counter.
pub struct DsnRate {
    path: std::path::PathBuf,
}

impl DsnRate {
    /// The counter file of the queue in `dir`.
    pub fn in_queue(dir: &std::path::Path) -> DsnRate {
        DsnRate {
            path: dir.join(".dsn-rate"),
        }
    }

    /// Count a notice to `to` in `hour` unless `to` had `per_address`
    /// already or all had `total`; false when over a limit.
    pub fn allow(&self, to: &str, hour: i64, per_address: u32, total: u32) -> bool {
        use std::os::unix::io::AsRawFd;
        let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
        else {
            return true;
        };
        // SAFETY: plain flock on a valid descriptor; released on close.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let mut counts: HashMap<String, u32> = HashMap::new();
        for l in text.lines() {
            let mut it = l.split_whitespace();
            let (Some(h), Some(a), Some(c)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            if h.parse::<i64>().ok() == Some(hour) {
                counts.insert(a.to_string(), c.parse().unwrap_or(0));
            }
        }
        let all: u32 = counts.values().sum();
        let mine = counts.get(to).copied().unwrap_or(0);
        if mine >= per_address || all >= total {
            return false;
        }
        counts.insert(to.to_string(), mine + 1);
        let mut out = String::new();
        for (a, c) in &counts {
            out.push_str(&format!("{hour} {a} {c}\n"));
        }
        let _ = std::fs::write(&self.path, out);
        true
    }
}

/// "5 days", "4 hours", "90 minutes": a duration as notices say it.
pub fn words(secs: i64) -> String {
    if secs % 86400 == 0 {
        let d = secs / 86400;
        format!("{d} day{}", if d == 1 { "" } else { "s" })
    } else if secs % 3600 == 0 {
        let h = secs / 3600;
        format!("{h} hour{}", if h == 1 { "" } else { "s" })
    } else {
        format!("{} minutes", secs / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rcpt(flags: &str, addr: &str) -> Recipient {
        Recipient {
            flags: flags.into(),
            addr: addr.into(),
            ..Default::default()
        }
    }

    fn failed(addr: &str) -> Failed {
        Failed {
            rcpt: rcpt("PFD", addr),
            actual: None,
            status: "5.1.1".into(),
            text: "User unknown".into(),
            remote_reply: false,
            remote_mta: None,
        }
    }

    #[test]
    fn notify_decides_who_hears_what() {
        let delay = dsn::Kind::Delay {
            warn_after: 1,
            retry_until: 2,
        };
        // No NOTIFY: failures and delays, no receipts.
        let plain = rcpt("PFD", "a@x");
        assert!(wants_notice(dsn::Kind::Failure, &plain));
        assert!(wants_notice(delay, &plain));
        assert!(!wants_notice(dsn::Kind::Success, &plain));
        // NOTIFY=NEVER: nothing.
        let never = rcpt("PN", "a@x");
        assert!(!wants_notice(dsn::Kind::Failure, &never));
        assert!(!wants_notice(delay, &never));
        // NOTIFY=SUCCESS only.
        let success = rcpt("PNS", "a@x");
        assert!(wants_notice(dsn::Kind::Success, &success));
        assert!(!wants_notice(dsn::Kind::Failure, &success));
    }

    #[test]
    fn a_failed_bounce_goes_to_the_postmaster_once() {
        let remote = failed("<someone@remote.test>");
        assert_eq!(
            double_bounce_to(dsn::Kind::Failure, &[&remote], "postmaster").as_deref(),
            Some("postmaster")
        );
        // Never about a delay; never to the postmaster about itself.
        let delay = dsn::Kind::Delay {
            warn_after: 1,
            retry_until: 2,
        };
        assert_eq!(double_bounce_to(delay, &[&remote], "postmaster"), None);
        let pm = failed("<Postmaster@mx.example>");
        let md = failed("MAILER-DAEMON");
        assert_eq!(
            double_bounce_to(dsn::Kind::Failure, &[&pm, &md], "postmaster"),
            None
        );
    }

    #[test]
    fn notices_are_limited_per_address_and_in_all_per_hour() {
        let dir = std::env::temp_dir().join(format!("mailroom-dsnrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let rate = DsnRate::in_queue(&dir);
        assert!(rate.allow("a@x", 100, 2, 3));
        assert!(rate.allow("a@x", 100, 2, 3));
        assert!(
            !rate.allow("a@x", 100, 2, 3),
            "a third to one address in an hour"
        );
        assert!(rate.allow("b@x", 100, 2, 3));
        assert!(!rate.allow("c@x", 100, 2, 3), "a fourth in all");
        // A new hour starts afresh.
        assert!(rate.allow("a@x", 101, 2, 3));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn durations_in_words() {
        assert_eq!(words(5 * 86400), "5 days");
        assert_eq!(words(86400), "1 day");
        assert_eq!(words(4 * 3600), "4 hours");
        assert_eq!(words(90 * 60), "90 minutes");
    }
}
