//! The autoresponder on a private root: `mailroom autoreply set`, then
//! messages delivered by `qrun -q`; replies land in local senders'
//! mailboxes.

mod common;
use common::*;

fn root(name: &str) -> Root {
    let r = Root::with_users(name, &["bob", "eve", "alice"]);
    r.write(
        "etc/mail/mailroom.conf",
        "hostname = test.example\nlog = /var/log/mail.log\nmin_free_space = 0\ndelivery_mode = queue\nprobe_interfaces = no\n",
    );
    r.write("etc/mail/aliases", "postmaster: root\nsupport: alice\n");
    r
}

fn replies(r: &Root, user: &str) -> usize {
    r.mbox(user).matches("Auto-Submitted: auto-replied").count()
}

/// Send `head` + body from `sender` to support, deliver, check the
/// original is in alice's mailbox.
fn send(r: &Root, sender: &str, head: &str, tag: &str) {
    let msg = format!("{head}Subject: {tag}\nMessage-Id: <{tag}@x.example>\n\nhello\n");
    let o = r.sendmail(&["-i", "-f", sender, "support"], msg.as_bytes());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = r.qrun(&["-q"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        r.mbox("alice").contains(&format!("Subject: {tag}\n")),
        "{tag} not delivered"
    );
    assert!(r.queued_ids().is_empty(), "{:?}", r.queue_files());
}

#[test]
fn answers_once_per_interval_and_never_robots() {
    let r = root("autoreply");
    r.write("reply.txt", "We got your message. Merci.\n");
    let body = r.path("reply.txt").display().to_string();
    let o = r.mailroom(&[
        "autoreply",
        "set",
        "support@test.example",
        "--subject",
        "We got your message",
        "--body-file",
        &body,
        "--interval",
        "7d",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let file = r.read_strict("etc/mail/autoreply/support@test.example");
    assert!(file.starts_with("Subject: We got your message\n"), "{file}");
    // Not a mailbox: refused.
    let o = r.mailroom(&[
        "autoreply",
        "set",
        "nobody@elsewhere.example",
        "--subject",
        "x",
        "--body-file",
        &body,
    ]);
    assert_ne!(code(&o), 0);
    let o = r.mailroom(&["autoreply", "list", "--json"]);
    assert!(
        stdout(&o).contains("\"address\":\"support@test.example\""),
        "{}",
        stdout(&o)
    );

    let to = "To: Support <support@test.example>\n";
    send(&r, "bob@test.example", to, "first");
    assert_eq!(replies(&r, "bob"), 1, "{}", r.mbox("bob"));
    let m = r.mbox("bob");
    assert!(m.contains("In-Reply-To: <first@x.example>"), "{m}");
    assert!(m.contains("Subject: We got your message"), "{m}");
    assert!(m.contains("Return-Path: <>"), "{m}");
    assert!(m.contains("From: <support@test.example>"), "{m}");
    assert!(m.contains("We got your message. Merci."), "{m}");

    send(&r, "bob@test.example", to, "second");
    assert_eq!(replies(&r, "bob"), 1, "a second reply within the interval");

    send(
        &r,
        "eve@test.example",
        &format!("{to}List-Id: <news.x.example>\n"),
        "list",
    );
    send(
        &r,
        "eve@test.example",
        &format!("{to}Precedence: bulk\n"),
        "bulk",
    );
    send(
        &r,
        "eve@test.example",
        &format!("{to}Auto-Submitted: auto-generated\n"),
        "auto",
    );
    send(&r, "<>", to, "bounce");
    send(&r, "MAILER-DAEMON@test.example", to, "daemon");
    send(&r, "eve@test.example", "To: someone@else.example\n", "bcc");
    assert_eq!(replies(&r, "eve"), 0, "{}", r.mbox("eve"));
    assert_eq!(replies(&r, "root"), 0, "{}", r.mbox("root"));
    // A normal message from eve is answered: the above were refused for
    // what they were, not for eve.
    send(&r, "eve@test.example", to, "normal");
    assert_eq!(replies(&r, "eve"), 1, "{}", r.mbox("eve"));
    assert_eq!(replies(&r, "alice"), 0);
    assert!(
        r.log().contains("autoreply from support@test.example"),
        "{}",
        r.log()
    );

    let o = r.mailroom(&["autoreply", "clear", "support@test.example"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!exists(&r.path("etc/mail/autoreply/support@test.example")));
    send(&r, "root@test.example", to, "after-clear");
    assert_eq!(replies(&r, "root"), 0);
}

#[test]
fn check_reports_broken_stale_and_ended_rules() {
    let r = root("autoreply-check");
    r.write(
        "etc/mail/autoreply/support@test.example",
        "Subject: Away\nInterval: 7d\n\nBack soon.\n",
    );
    r.write(
        "etc/mail/autoreply/alice@test.example",
        "Subject: Away\nInterval: a week\n\nBack soon.\n",
    );
    r.write(
        "etc/mail/autoreply/gone@test.example",
        "Subject: Away\n\nBack soon.\n",
    );
    r.write(
        "etc/mail/autoreply/bob@test.example",
        "Subject: Away\nFrom-Date: 2001-01-01\nUntil-Date: 2001-01-31\n\nBack soon.\n",
    );
    let o = r.mailroom(&["check"]);
    let out = stdout(&o) + &stderr(&o);
    assert_eq!(code(&o), 78, "{out}");
    assert!(
        out.contains("autoreply/alice@test.example: error: ")
            && out.contains("\"a week\" is not an interval"),
        "{out}"
    );
    assert!(
        out.contains("gone@test.example no longer delivers to a local mailbox"),
        "{out}"
    );
    assert!(out.contains("ended on 2001-01-31"), "{out}");
    assert!(!out.contains("support@test.example"), "{out}");
    // Dates in the wrong order are refused when set, too.
    r.write("reply.txt", "x\n");
    let body = r.path("reply.txt").display().to_string();
    let o = r.mailroom(&[
        "autoreply",
        "set",
        "support@test.example",
        "--subject",
        "x",
        "--body-file",
        &body,
        "--from",
        "2026-08-01",
        "--until",
        "2026-07-01",
    ]);
    assert_eq!(code(&o), 64, "{}", stderr(&o));
    assert!(stderr(&o).contains("after"), "{}", stderr(&o));
}
