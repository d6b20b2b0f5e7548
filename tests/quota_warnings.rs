//! Quota warnings on a private root, through the real programs: mail
//! queued by `sendmail`, delivered by `qrun -q`, into an mbox, a Maildir
//! and a virtual mailbox with quotas, and one without; the warnings land
//! in the mailboxes themselves.  Then `mailroom mailbox list` and
//! `mailroom check` on the full mailboxes.

mod common;
use common::*;

use std::fs;

const WARNING: &str = "Subject: Your mailbox is ";

fn root(name: &str) -> Root {
    let r = Root::with_users(name, &["bob", "carol", "alice", "vmail"]);
    r.write(
        "etc/mail/mailroom.conf",
        "hostname = test.example\nlog = /var/log/mail.log\nmin_free_space = 0\ndelivery_mode = queue\nprobe_interfaces = no\n",
    );
    r.write("etc/mail/virtuser-domains", "virt.example\n");
    r.write("etc/mail/passwd", "orders@virt.example:*::20000:Orders\n");
    r.write("etc/mail/quotas", "bob\t20000\ncarol\t20000\n");
    // Listed by `mailroom mailbox list` whatever the test's uid.
    r.write(
        "etc/mail/virtusertable",
        "bob@test.example\tbob\ncarol@test.example\tcarol\nalice@test.example\talice\n",
    );
    fs::create_dir_all(r.path("home/carol/Maildir")).unwrap();
    r
}

/// Send a message with a body of `size` bytes to `to` and run the queue.
fn send(r: &Root, to: &str, tag: &str, size: usize) {
    let line = format!("{}\n", "x".repeat(99));
    let body = line.repeat(size / 100);
    let msg = format!("Subject: {tag}\n\n{body}");
    let o = r.sendmail(&["-i", "-f", "alice@test.example", to], msg.as_bytes());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = r.qrun(&["-q"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

/// The texts of the messages in a Maildir's `new/`.
fn maildir(r: &Root, rel: &str) -> String {
    let mut all = String::new();
    for e in fs::read_dir(r.path(rel)).unwrap() {
        all.push_str(&fs::read_to_string(e.unwrap().path()).unwrap());
    }
    all
}

#[test]
fn each_threshold_warns_once_in_every_kind_of_mailbox_and_never_without_a_quota() {
    let r = root("quota-once");
    for i in 0..30 {
        for to in ["bob", "carol", "orders@virt.example", "alice"] {
            send(&r, to, &format!("m{i}"), 1000);
        }
    }
    let bob = r.mbox("bob");
    let carol = maildir(&r, "home/carol/Maildir/new");
    let orders = r.read("var/mail/virtual/virt.example/orders");
    for (who, text) in [("bob", &bob), ("carol", &carol), ("orders", &orders)] {
        assert_eq!(text.matches(WARNING).count(), 2, "{who}: {text}");
        assert_eq!(text.matches("passed 80% of its size").count(), 1, "{who}");
        assert_eq!(text.matches("passed 95% of its size").count(), 1, "{who}");
        assert!(text.contains("Return-Path: <>\n"), "{who}");
        assert!(
            text.contains("From: Mail System <postmaster@test.example>\n"),
            "{who}"
        );
        assert!(text.contains("ask your mail administrator"), "{who}");
    }
    assert!(orders.contains("Your mailbox orders@virt.example is "));
    // In the order of the crossings (an mbox keeps the order of delivery).
    for text in [&bob, &orders] {
        let first = text.find("passed 80% of its size").unwrap();
        assert!(first < text.find("passed 95% of its size").unwrap());
    }
    // Mail kept arriving: the full mailboxes defer it (4.2.2).
    assert!(r.log().contains("dsn=4.2.2"), "{}", r.log());
    let alice = r.mbox("alice");
    assert_eq!(alice.matches("Subject: m").count(), 30);
    assert!(!alice.contains(WARNING), "no quota, no warning");
    assert!(r.log().contains(": quota warning to bob@test.example: "));

    // mailbox list: usage against the quota; check: nearly full.
    let list = r.mailroom_ok(&["mailbox", "list"]);
    let line = list
        .lines()
        .find(|l| l.starts_with("bob@test.example "))
        .expect(&list);
    // Past 100% when the warnings took it there.
    assert!(line.contains(" / 19.5K ("), "{list}");
    let line = list
        .lines()
        .find(|l| l.starts_with("alice@test.example "))
        .expect(&list);
    assert!(!line.contains(" / "), "{list}");
    let json = r.mailroom_ok(&["mailbox", "list", "--json"]);
    assert!(json.contains("\"quota\": 20000"), "{json}");
    assert!(
        json.contains("\"percent\": 1") || json.contains("\"percent\": 9"),
        "{json}"
    );
    let o = r.mailroom(&["check"]);
    let out = stdout(&o);
    for who in [
        "bob@test.example",
        "carol@test.example",
        "orders@virt.example",
    ] {
        assert!(
            out.contains(&format!("warning: {who}: nearly full, "))
                || out.contains(&format!("warning: {who}: over its quota, ")),
            "{out}"
        );
    }
    assert!(!out.contains("alice@test.example:"), "{out}");
}

#[test]
fn a_warning_reaches_a_full_mailbox_holds_no_mail_back_and_rearms() {
    let r = root("quota-full");
    // One message takes bob from nothing to about 97%: one warning, which
    // itself would not fit under the quota.
    send(&r, "bob", "big", 19_000);
    let bob = r.mbox("bob");
    assert_eq!(bob.matches(WARNING).count(), 1, "{bob}");
    assert!(bob.contains("passed 95% of its size."), "{bob}");
    let size = fs::metadata(r.path("var/mail/bob")).unwrap().len();
    assert!(size > 20_000, "the warning took it past the quota: {size}");
    // The room the big message left is still there for mail: at the SMTP
    // door (RCPT with SIZE=) as at delivery.
    let o = r.sendmail(
        &["-bs"],
        b"EHLO c.example\r\nMAIL FROM:<a@remote.test> SIZE=100\r\nRCPT TO:<bob@test.example>\r\nQUIT\r\n",
    );
    let dialogue = stdout(&o);
    assert!(
        dialogue.contains("250 2.1.5 <bob@test.example>... Recipient ok"),
        "{dialogue}"
    );
    send(&r, "bob", "small", 100);
    assert!(r.mbox("bob").contains("Subject: small\n"), "{}", r.log());
    assert!(r.queued_ids().is_empty(), "{:?}", r.queue_files());
    // Emptied (POP3 deletes), then filled again: warned again, once.
    fs::write(r.path("var/mail/bob"), "").unwrap();
    send(&r, "bob", "after", 100);
    assert!(!r.mbox("bob").contains(WARNING));
    // 13 messages of 1.3K: past 80%, not 95%.
    for i in 0..13 {
        send(&r, "bob", &format!("again{i}"), 1000);
    }
    let bob = r.mbox("bob");
    assert_eq!(bob.matches(WARNING).count(), 1, "{}", r.log());
    assert!(bob.contains("passed 80% of its size;"), "{bob}");
}
