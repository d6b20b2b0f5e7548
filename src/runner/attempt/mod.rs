//! One attempt at delivering one job's recipients: each is sorted local
//! or remote ([`Attempt::classify`]); local ones go to the delivery agent
//! ([`local`]), remote ones by SMTP one transaction per domain
//! ([`remote`]).  What an alias expanded to replaces it (children keep the
//! parent's NOTIFY and ORCPT, flag `A`), so a retry never delivers twice.

mod local;
mod remote;

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::time::Instant;

use super::{Runner, render};
use crate::address;
use crate::queue::{Envelope, QueueId, Recipient};
use crate::route::Route;

/// A recipient that stays queued.
pub(super) struct Kept {
    pub rcpt: Recipient,
    /// Its enhanced status code (`4.4.1`).
    pub status: String,
    /// Not tried: its domain's pace ([`crate::runner::pacing`]) said wait.
    pub paced: bool,
}

impl Kept {
    /// The recipient as a delay warning reports it.
    pub fn as_report(&self) -> Failed {
        Failed {
            rcpt: self.rcpt.clone(),
            actual: None,
            status: self.status.clone(),
            text: self.rcpt.status.clone().unwrap_or_default(),
            remote_reply: false,
            remote_mta: None,
        }
    }
}

/// A recipient reported on (failed, or for NOTIFY=SUCCESS delivered).
#[derive(Clone)]
pub(super) struct Failed {
    pub rcpt: Recipient,
    /// The final address it led to, when not itself (an alias member).
    pub actual: Option<String>,
    /// Enhanced status code.
    pub status: String,
    /// The diagnostic: the remote reply or our reason.
    pub text: String,
    /// `text` is the remote server's reply.
    pub remote_reply: bool,
    pub remote_mta: Option<String>,
}

/// Where a recipient is delivered.
enum Dest {
    Local,
    Remote(String),
}

/// The state of one attempt at one job.
pub(super) struct Attempt<'a> {
    r: &'a Runner,
    id: &'a QueueId,
    env: &'a Envelope,
    body: &'a [u8],
    started: i64,
    clock: Instant,
    kept: Vec<Kept>,
    failed: Vec<Failed>,
    succeeded: Vec<Failed>,
    /// Recipients (by address) that want delay notifications.
    delayed_notify: Vec<String>,
    /// Recipients to requeue under another envelope sender (and as the
    /// copy of a mailing list).
    splits: HashMap<(String, Option<String>), Vec<Recipient>>,
    last_status: Option<String>,
    /// Autoreplies and quota warnings queued after mailbox deliveries.
    replies: Vec<QueueId>,
    /// The last attempt died midway: mailboxes may hold its copies.
    pub interrupted: bool,
    /// The job's locked control file (see [`deliver::Request::job_lock`]).
    job_lock: RawFd,
    /// The longest a paced recipient must wait for its domain's token.
    paced_for: Option<std::time::Duration>,
}

/// What an attempt came to, for the job's finish.
pub(super) struct Outcomes {
    /// Recipients still pending.
    pub kept: Vec<Kept>,
    pub failed: Vec<Failed>,
    /// Delivered recipients that asked for a receipt.
    pub succeeded: Vec<Failed>,
    /// Recipients (by address) that want delay notifications.
    pub delayed_notify: Vec<String>,
    /// Recipients to requeue under another envelope sender (and list).
    pub splits: HashMap<(String, Option<String>), Vec<Recipient>>,
    pub last_status: Option<String>,
    /// Autoreplies queued.
    pub replies: Vec<QueueId>,
    /// Some recipients were paced: when their next token is due.
    pub paced_for: Option<std::time::Duration>,
}

impl<'a> Attempt<'a> {
    pub fn new(
        r: &'a Runner,
        id: &'a QueueId,
        env: &'a Envelope,
        body: &'a [u8],
        now: i64,
        job_lock: RawFd,
    ) -> Attempt<'a> {
        Attempt {
            r,
            id,
            env,
            body,
            started: now,
            clock: Instant::now(),
            kept: Vec::new(),
            failed: Vec::new(),
            succeeded: Vec::new(),
            delayed_notify: Vec::new(),
            splits: HashMap::new(),
            last_status: None,
            replies: Vec::new(),
            interrupted: false,
            job_lock,
            paced_for: None,
        }
    }

    fn classify(&self, rcpt: &Recipient) -> Dest {
        let a = rcpt.addr.trim();
        let plain = a.trim_matches('"');
        if plain.starts_with('|') || plain.starts_with('/') || a.starts_with('\\') {
            return Dest::Local;
        }
        let addr = match address::parse_one(a) {
            Ok(m) => m.addr,
            Err(_) => return Dest::Local, // resolution reports the error
        };
        match address::split_addr(&addr) {
            (_, None) => Dest::Local,
            (_, Some(d))
                if self.r.resolver.domains.is_local(d) || self.r.resolver.domains.is_virtual(d) =>
            {
                Dest::Local
            }
            (_, Some(d)) => match self.r.router.route(d) {
                Route::Local(_) => Dest::Local,
                _ => Dest::Remote(d.trim_end_matches('.').to_ascii_lowercase()),
            },
        }
    }

    /// A child recipient replacing (part of) `parent`.
    fn child(&self, parent: &Recipient, addr: &str, ctl: Option<String>) -> Recipient {
        let mut flags: String = parent
            .flags
            .chars()
            .filter(|c| *c != 'P' && *c != 'A')
            .collect();
        flags.push('A');
        Recipient {
            flags,
            addr: addr.to_string(),
            status: None,
            ctl,
            orcpt: parent.orcpt.clone(),
            final_rcpt: parent.final_rcpt.clone().or_else(|| {
                Some(format!(
                    "RFC822; {}",
                    address::qualify(&render::sender_address(&parent.addr), &self.r.cfg.hostname)
                ))
            }),
        }
    }

    pub fn run(&mut self) {
        let mut local: Vec<Recipient> = Vec::new();
        let mut remote: Vec<(String, Recipient)> = Vec::new();
        for r in &self.env.recipients {
            if r.has_flag('D') || !r.has_flag('N') {
                self.delayed_notify.push(r.addr.clone());
            }
            match self.classify(r) {
                Dest::Local => local.push(r.clone()),
                Dest::Remote(d) => remote.push((d, r.clone())),
            }
        }
        if self.too_many_hops() {
            for r in local.into_iter().chain(remote.into_iter().map(|(_, r)| r)) {
                self.failed.push(Failed {
                    rcpt: r,
                    actual: None,
                    status: "5.4.6".into(),
                    text: format!("554 5.4.6 Too many hops (max {MAX_HOPS})"),
                    remote_reply: false,
                    remote_mta: None,
                });
            }
            return;
        }
        if !local.is_empty() {
            let forwards = self.deliver_local(&local);
            remote.extend(forwards);
        }
        if !remote.is_empty() {
            self.deliver_remote(remote);
        }
    }

    fn too_many_hops(&self) -> bool {
        self.env.headers.iter().filter(|h| h.is("Received")).count() > MAX_HOPS
    }

    /// The attempt's outcomes, for the job's finish.
    pub fn into_outcomes(self) -> Outcomes {
        Outcomes {
            kept: self.kept,
            failed: self.failed,
            succeeded: self.succeeded,
            delayed_notify: self.delayed_notify,
            splits: self.splits,
            last_status: self.last_status,
            replies: self.replies,
            paced_for: self.paced_for,
        }
    }

    fn defer(&mut self, mut r: Recipient, dsn: &str, text: String) {
        r.status = Some(text.clone());
        self.last_status = Some(text);
        self.kept.push(Kept {
            rcpt: r,
            status: dsn.to_string(),
            paced: false,
        });
    }

    /// Keep `r` untried: its domain's pace says wait `wait`.
    fn pace(&mut self, mut r: Recipient, text: String, wait: std::time::Duration) {
        r.status = Some(text.clone());
        self.last_status = Some(text);
        self.kept.push(Kept {
            rcpt: r,
            status: "4.4.5".to_string(),
            paced: true,
        });
        self.paced_for = Some(self.paced_for.map_or(wait, |w| w.max(wait)));
    }
}

/// The NOTIFY parameter a recipient asked for (only when it asked).
fn notify_param(r: &Recipient) -> Option<String> {
    if !r.has_flag('N') {
        return None;
    }
    let mut v = Vec::new();
    if r.has_flag('S') {
        v.push("SUCCESS");
    }
    if r.has_flag('F') {
        v.push("FAILURE");
    }
    if r.has_flag('D') {
        v.push("DELAY");
    }
    Some(if v.is_empty() {
        "NEVER".to_string()
    } else {
        v.join(",")
    })
}

/// sendmail's MaxHopCount: more `Received:` headers than this is a loop.
pub const MAX_HOPS: usize = 25;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Paths};
    use crate::queue::QHeader;

    /// A runner over a private root whose local domains are `mx.example`
    /// (the host) and `shop.example`, and whose virtual domain is
    /// `virt.example`.
    fn runner(name: &str) -> (std::path::PathBuf, Runner) {
        let root =
            std::env::temp_dir().join(format!("mailroom-attempt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("etc/mail")).unwrap();
        std::fs::create_dir_all(root.join("var/spool/mqueue")).unwrap();
        std::fs::write(root.join("etc/mail/local-host-names"), "shop.example\n").unwrap();
        std::fs::write(root.join("etc/mail/virtuser-domains"), "virt.example\n").unwrap();
        let mut cfg = Config::defaults(Paths::under(&root));
        cfg.hostname = "mx.example".into();
        let r = Runner::new(&cfg, false).unwrap();
        (root, r)
    }

    fn rcpt(flags: &str, addr: &str) -> Recipient {
        Recipient {
            flags: flags.into(),
            addr: addr.into(),
            ..Default::default()
        }
    }

    #[test]
    fn recipients_are_sorted_local_or_remote_by_domain() {
        let (root, r) = runner("classify");
        let env = Envelope::default();
        let id = QueueId::parse("6AL5Krcl005170").unwrap();
        let a = Attempt::new(&r, &id, &env, b"", 0, -1);
        let dest = |addr: &str| match a.classify(&rcpt("P", addr)) {
            Dest::Local => "local".to_string(),
            Dest::Remote(d) => d,
        };
        for local in [
            "bob",
            "<bob@mx.example>",
            "bob@SHOP.example",
            "info@virt.example",
            "bob@localhost",
            "\"|/usr/bin/procmail\"",
            "/var/log/copy",
            "\\bob",
        ] {
            assert_eq!(dest(local), "local", "{local}");
        }
        assert_eq!(dest("<a@Remote.Test.>"), "remote.test");
        assert_eq!(dest("Frank Q <frank@far.example>"), "far.example");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn an_expanded_alias_member_inherits_notify_and_the_final_recipient() {
        let (root, r) = runner("child");
        let env = Envelope::default();
        let id = QueueId::parse("6AL5Krcl005170").unwrap();
        let a = Attempt::new(&r, &id, &env, b"", 0, -1);
        let parent = rcpt("PNS", "<sales@shop.example>");
        let c = a.child(&parent, "anna", Some(":sales".into()));
        assert_eq!(c.flags, "NSA", "no longer primary, marked as from an alias");
        assert_eq!(c.addr, "anna");
        assert_eq!(c.ctl.as_deref(), Some(":sales"));
        assert_eq!(c.final_rcpt.as_deref(), Some("RFC822; sales@shop.example"));
        // A child's child keeps the first final recipient, and one 'A'.
        let cc = a.child(&c, "anna@far.example", None);
        assert_eq!(cc.flags, "NSA");
        assert_eq!(cc.final_rcpt, c.final_rcpt);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_message_with_too_many_received_fields_is_a_loop() {
        let (root, r) = runner("hops");
        let id = QueueId::parse("6AL5Krcl005170").unwrap();
        let mut env = Envelope {
            headers: vec![QHeader::new("", b"Received: from x by y"); MAX_HOPS],
            ..Default::default()
        };
        assert!(!Attempt::new(&r, &id, &env, b"", 0, -1).too_many_hops());
        env.headers.push(QHeader::new("", b"Received: from x by y"));
        assert!(Attempt::new(&r, &id, &env, b"", 0, -1).too_many_hops());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn notify_is_passed_on_only_when_it_was_asked_for() {
        assert_eq!(notify_param(&rcpt("PFD", "a@x")), None);
        assert_eq!(notify_param(&rcpt("PN", "a@x")).as_deref(), Some("NEVER"));
        assert_eq!(
            notify_param(&rcpt("PNSF", "a@x")).as_deref(),
            Some("SUCCESS,FAILURE")
        );
        assert_eq!(notify_param(&rcpt("NDA", "a@x")).as_deref(), Some("DELAY"));
    }
}
