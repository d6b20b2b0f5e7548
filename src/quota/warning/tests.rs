//! The warnings against deliveries simulated in a private root: the
//! mailbox written directly (an mbox) or by the Maildir code, the checks
//! before and after each copy as `crate::deliver` makes them, the warnings
//! queued for real.

use std::path::PathBuf;

use super::*;
use crate::accounts::MailboxPath;
use crate::config::Paths;
use crate::users::User;

const QUOTA: u64 = 10_000;
const ADDRESS: &str = "bob@test.example";

struct Box_ {
    root: PathBuf,
    cfg: Config,
    account: Account,
    /// Queue ids handed to the simulated deliveries.
    next: u32,
}

fn setup(name: &str, maildir: bool, quota: u64) -> Box_ {
    let root = std::env::temp_dir().join(format!("mr-quota-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut cfg = Config::defaults(Paths::under(&root));
    cfg.hostname = "test.example".into();
    cfg.min_free_space = 0;
    std::fs::create_dir_all(&cfg.queue_dir).unwrap();
    std::fs::create_dir_all(root.join("var/mail")).unwrap();
    let mailbox = if maildir {
        MailboxPath::Maildir(root.join("home/bob/Maildir"))
    } else {
        MailboxPath::Mbox(root.join("var/mail/bob"))
    };
    let account = Account {
        login: "bob".into(),
        owner: User {
            name: "bob".into(),
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            gecos: String::new(),
            home: root.join("home/bob").display().to_string(),
            shell: "/bin/sh".into(),
        },
        mailbox,
        quota,
        is_virtual: false,
        secret: None,
        full_name: String::new(),
    };
    Box_ {
        root,
        cfg,
        account,
        next: 0,
    }
}

impl Box_ {
    fn id(&mut self) -> String {
        self.next += 1;
        format!("T{:05}", self.next)
    }

    fn size(&self) -> u64 {
        used(&self.account.mailbox).unwrap()
    }

    /// Write `n` bytes as the copy of `id` under `limit` (0: none);
    /// false when over it.
    fn write(&self, id: &str, n: u64, limit: u64) -> bool {
        match &self.account.mailbox {
            MailboxPath::Mbox(p) => {
                if limit > 0 && self.size() + n > limit {
                    return false;
                }
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .unwrap();
                f.write_all(&vec![b'x'; n as usize]).unwrap();
                true
            }
            MailboxPath::Maildir(d) => {
                let head = format!("Subject: {id}\n\n");
                let body = format!("{head}{}\n", "x".repeat(n as usize - head.len() - 1));
                let msg = crate::mailbox::Message::from_bytes(body.as_bytes()).unwrap();
                assert_eq!(msg.len(), n);
                let r = crate::mailbox::maildir::deliver(
                    d,
                    &crate::mailbox::maildir::Deliver {
                        prepend: b"",
                        message: &msg,
                        quota: limit,
                        host: "test.example",
                        already: None,
                    },
                );
                r.is_ok()
            }
        }
    }

    /// One delivery of `n` bytes as queue id `id`, as `crate::deliver`
    /// makes it: `Err(())` when refused over quota, else the warning it
    /// queued.
    fn deliver_as(&self, id: &str, n: u64, stop: Option<Stop>) -> Result<Option<QueueId>, ()> {
        let b = before(&self.cfg, &self.account, Some(id));
        let limit = b.as_ref().map_or(self.account.quota, |b| b.limit());
        if !self.write(id, n, limit) {
            return Err(());
        }
        Ok(b.and_then(|b| b.update(&self.cfg, &self.account, ADDRESS, Some(n), Some(id), stop)))
    }

    fn deliver(&mut self, n: u64) -> Result<Option<QueueId>, ()> {
        let id = self.id();
        self.deliver_as(&id, n, None)
    }

    /// Empty the mailbox down to `n` bytes (POP3 deletes it).
    fn shrink_to(&self, n: u64) {
        match &self.account.mailbox {
            MailboxPath::Mbox(p) => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_len(n)
                    .unwrap();
            }
            MailboxPath::Maildir(d) => {
                for sub in ["new", "cur"] {
                    for e in std::fs::read_dir(d.join(sub)).unwrap() {
                        std::fs::remove_file(e.unwrap().path()).unwrap();
                    }
                }
                crate::mailbox::maildir::recompute(d).unwrap();
                assert_eq!(n, 0, "a Maildir is emptied");
            }
        }
    }

    fn record(&self) -> State {
        state::read(
            &state::dir(&self.cfg),
            &state::name(self.account.mailbox.path()),
        )
    }

    /// The control file (with the header) and the body of a queued
    /// message.
    fn queued(&self, id: &QueueId) -> String {
        let q = crate::queue::Queue::new(&self.cfg.queue_dir);
        let qf = std::fs::read(q.path("qf", id)).unwrap();
        let qf = String::from_utf8_lossy(&qf);
        let df = std::fs::read_to_string(q.path("df", id)).unwrap();
        format!("{qf}\n{df}")
    }
}

impl Drop for Box_ {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Deliveries of `n` bytes until one is refused; the warnings queued.
fn fill(b: &mut Box_, n: u64) -> Vec<QueueId> {
    let mut warned = Vec::new();
    for _ in 0..1000 {
        match b.deliver(n) {
            Ok(w) => warned.extend(w),
            Err(()) => return warned,
        }
    }
    panic!("never full");
}

fn once_per_crossing(maildir: bool) {
    let mut b = setup(if maildir { "once-md" } else { "once" }, maildir, QUOTA);
    let warned = fill(&mut b, 150);
    assert_eq!(warned.len(), 2, "one at 80%, one at 95%");
    let first = b.queued(&warned[0]);
    let second = b.queued(&warned[1]);
    assert!(
        first.contains("Subject: Your mailbox is 81% full\n"),
        "{first}"
    );
    assert!(first.contains("\nS<>\n"), "null envelope sender: {first}");
    assert!(first.contains(":\\bob\n"), "to the mailbox itself: {first}");
    assert!(
        first.contains("passed 80% of its size;\nanother one is sent if it passes 95%."),
        "{first}"
    );
    assert!(
        second.contains("Subject: Your mailbox is 96% full\n"),
        "{second}"
    );
    assert!(second.contains("passed 95% of its size.\n"), "{second}");
    assert_eq!(b.record().level, 95);
    assert_eq!(b.record().pending.len(), 2);
}

#[test]
fn warns_once_at_each_threshold_however_many_deliveries_mbox() {
    once_per_crossing(false);
}

#[test]
fn warns_once_at_each_threshold_however_many_deliveries_maildir() {
    once_per_crossing(true);
}

#[test]
fn warns_again_after_the_mailbox_went_back_below() {
    for maildir in [false, true] {
        let mut b = setup(if maildir { "rearm-md" } else { "rearm" }, maildir, QUOTA);
        while b.size() < 8_500 {
            b.deliver(500).unwrap();
        }
        assert_eq!(b.record().level, 80);
        // Emptied by POP3; seen below by the next delivery, then filled
        // again: warned again.
        b.shrink_to(0);
        assert_eq!(b.deliver(500).unwrap(), None);
        assert_eq!(b.record().level, 0);
        let again: Vec<QueueId> = (0..16).filter_map(|_| b.deliver(500).unwrap()).collect();
        assert_eq!(again.len(), 1, "80% once more");
        // Emptied, and one delivery takes it straight past 80%: its
        // size before the copy shows the mailbox was below.
        b.shrink_to(0);
        let w = b.deliver(8_200).unwrap();
        assert!(w.is_some(), "the jump back past 80% warns");
        assert_eq!(b.deliver(100).unwrap(), None);
    }
}

#[test]
fn one_message_past_both_thresholds_sends_one_warning() {
    let mut b = setup("jump", false, QUOTA);
    let w = b.deliver(9_600).unwrap().expect("a warning");
    assert!(b.queued(&w).contains("is 96% full"));
    assert_eq!(b.record().level, 95);
}

#[test]
fn never_for_a_mailbox_without_a_quota_or_with_warnings_off() {
    let mut b = setup("noquota", false, 0);
    assert!(before(&b.cfg, &b.account, Some("T1")).is_none());
    for _ in 0..20 {
        assert_eq!(b.deliver(10_000).unwrap(), None);
    }
    let mut b = setup("off", false, QUOTA);
    b.cfg.quota_warn.clear();
    assert!(before(&b.cfg, &b.account, Some("T1")).is_none());
    assert!(!state::dir(&b.cfg).exists(), "no record either");
}

#[test]
fn the_warning_is_delivered_into_a_full_mailbox_and_holds_nothing_back() {
    for maildir in [false, true] {
        let mut b = setup(if maildir { "exempt-md" } else { "exempt" }, maildir, QUOTA);
        let w = fill(&mut b, 300);
        assert_eq!(w.len(), 2);
        let full = b.size();
        assert_eq!(full, 9_900);
        // The warnings reach the full mailbox, and change no level.
        for id in &w {
            assert_eq!(b.deliver_as(id.as_str(), 700, None), Ok(None));
        }
        assert!(b.size() > QUOTA);
        let rec = b.record();
        assert!(rec.pending.is_empty(), "{rec:?}");
        assert_eq!(rec.allowance, 1_400);
        assert_eq!(rec.level, 95);
        // The room left before the warnings is still there for mail (a
        // Maildir reserves one byte more per message).
        let room = QUOTA - full - u64::from(maildir);
        assert_eq!(b.deliver(room).unwrap(), None, "fits as it would have");
        assert_eq!(b.deliver(100), Err(()), "and no more");
        // A message that only claims to be a warning gets no exemption.
        assert_eq!(b.deliver_as("Tforged", 50, None), Err(()));
    }
}

#[test]
fn concurrent_copies_finishing_out_of_order_send_one_warning() {
    let mut b = setup("order", false, QUOTA);
    b.deliver(7_900).unwrap();
    // A takes the mailbox past 80%, B follows; B's check comes first.
    let a = before(&b.cfg, &b.account, Some("TA")).unwrap();
    let c = before(&b.cfg, &b.account, Some("TB")).unwrap();
    assert!(b.write("TA", 200, a.limit()));
    assert!(b.write("TB", 200, c.limit()));
    let first = c.after(&b.cfg, &b.account, ADDRESS, Some(200), Some("TB"));
    let second = a.after(&b.cfg, &b.account, ADDRESS, Some(200), Some("TA"));
    assert!(first.is_some());
    assert_eq!(
        second, None,
        "A's size before its copy predates B's warning"
    );
}

#[test]
fn a_kill_at_any_step_of_the_update_loses_no_warning() {
    let stops = [
        (Stop::Start, 1),
        (Stop::Queued, 2),
        (Stop::Record(Step::Written), 2),
        (Stop::Record(Step::Renamed), 1),
    ];
    for (i, (stop, want)) in stops.into_iter().enumerate() {
        let mut b = setup(&format!("kill{i}"), false, QUOTA);
        b.deliver(7_900).unwrap();
        // The crossing copy, stopped dead at `stop`...
        let id = b.id();
        let mut warned: Vec<QueueId> = b
            .deliver_as(&id, 200, Some(stop))
            .unwrap()
            .into_iter()
            .collect();
        // ... then the next deliveries, as if nothing happened.
        for _ in 0..5 {
            warned.extend(b.deliver(100).unwrap());
        }
        assert_eq!(warned.len(), want, "stopped at {stop:?}: {warned:?}");
        let q = crate::queue::Queue::new(&b.cfg.queue_dir);
        for w in &warned {
            assert!(q.path("df", w).exists(), "{w} queued");
        }
        assert_eq!(b.record().level, 80);
    }
}

#[test]
fn the_warning_says_how_full_and_what_to_do() {
    let b = setup("text", false, QUOTA);
    let m = String::from_utf8(build(
        &b.cfg,
        "info@shop.example",
        170 * 1024 * 1024,
        200 * 1024 * 1024,
        80,
        0,
    ))
    .unwrap();
    assert!(
        m.contains("From: Mail System <postmaster@test.example>\n"),
        "{m}"
    );
    assert!(m.contains("To: <info@shop.example>\n"), "{m}");
    assert!(m.contains("Auto-Submitted: auto-generated\n"), "{m}");
    assert!(m.contains("is 85% full: it holds 170M of its 200M."), "{m}");
    assert!(m.contains("held for up to 1 day"), "{m}");
    assert!(m.contains("delete messages"), "{m}");
    assert!(m.contains("ask your mail administrator"), "{m}");
}
