//! `mailroom list` on a private root: the files it writes (sendmail's
//! aliases + `:include:` idiom), its refusals, and mail to a list
//! delivered by `qrun -q`: every member's copy from `owner-NAME` with
//! `List-Id:`/`List-Post:`, a failing member bounced to the owner only,
//! non-members refused.

mod common;
use common::*;

use std::fs;

fn site(name: &str) -> Root {
    let r = Root::with_users(name, &["alice", "bob", "boss", "eve"]);
    r.write(
        "etc/mail/mailroom.conf",
        "hostname = test.example\nlog = /var/log/mail.log\nmin_free_space = 0\ndelivery_mode = queue\nprobe_interfaces = no\n",
    );
    r.write("etc/mail/local-host-names", "test.example\n");
    r.write("etc/mail/virtuser-domains", "shop.example\n");
    r.write("etc/mail/aliases", "# by hand\npostmaster: root\n");
    r.write("etc/mail/virtusertable", "# by hand\n");
    r
}

#[test]
fn create_add_remove_delete() {
    let r = site("lists-cli");
    let out = r.mailroom_ok(&["list", "create", "team@shop.example", "--owner", "boss"]);
    assert!(out.contains("team@shop.example: list created"), "{out}");
    let aliases = r.read("etc/mail/aliases");
    assert!(
        aliases.starts_with("# by hand\npostmaster: root\n"),
        "{aliases}"
    );
    assert!(
        aliases.contains("team-shop: :include:/etc/mail/lists/team-shop\n"),
        "{aliases}"
    );
    assert!(
        aliases.contains("owner-team-shop: :include:/etc/mail/lists/team-shop.owner\n"),
        "{aliases}"
    );
    assert!(
        r.read("etc/mail/virtusertable")
            .contains("team@shop.example\tteam-shop"),
        "{}",
        r.read("etc/mail/virtusertable")
    );
    assert!(
        r.read("etc/mail/lists/team-shop.owner")
            .contains("\nboss\n")
    );
    assert_eq!(
        r.read("etc/mail/lists/team-shop.conf"),
        "# mailroom list settings (see 'mailroom list --help')\naddress = team@shop.example\nposting = members\n"
    );

    let out = r.mailroom_ok(&[
        "list",
        "add",
        "team@shop.example",
        "alice",
        "Carol@Example.ORG",
    ]);
    assert!(out.contains("alice: added"), "{out}");
    let out = r.mailroom_ok(&["list", "add", "team@shop.example", "ALICE"]);
    assert!(out.contains("already a member"), "{out}");
    assert_eq!(
        r.mailroom_ok(&["list", "members", "team@shop.example"]),
        "alice\nCarol@example.org\n"
    );
    assert_eq!(
        r.mailroom_ok(&["list", "members", "team-shop", "--json"]),
        "[\"alice\",\"Carol@example.org\"]\n"
    );
    // A local address nothing takes, a program, the list itself: refused.
    for bad in [
        "nosuch@test.example",
        "|/bin/cat",
        "team-shop",
        "owner-team-shop",
    ] {
        let o = r.mailroom(&["list", "add", "team@shop.example", bad]);
        assert_ne!(code(&o), 0, "{bad} accepted");
    }
    assert_eq!(
        r.mailroom_ok(&["list", "members", "team@shop.example"]),
        "alice\nCarol@example.org\n"
    );
    // Removing a non-member: 67, nothing changed.
    let o = r.mailroom(&["list", "remove", "team@shop.example", "bob", "alice"]);
    assert_eq!(code(&o), 67, "{}", stderr(&o));
    assert!(stderr(&o).contains("bob: not a member of team@shop.example"));
    r.mailroom_ok(&["list", "remove", "team@shop.example", "carol@example.org"]);
    assert_eq!(
        r.mailroom_ok(&["list", "members", "team@shop.example"]),
        "alice\n"
    );
    assert!(
        r.read("etc/mail/lists/team-shop")
            .starts_with("# Members of team@shop.example")
    );

    // Taken addresses and unknown lists.
    let o = r.mailroom(&["list", "create", "team@shop.example", "--owner", "boss"]);
    assert_eq!(code(&o), 65, "{}", stderr(&o));
    let o = r.mailroom(&["list", "create", "x@nowhere.example", "--owner", "boss"]);
    assert_eq!(code(&o), 67, "{}", stderr(&o));
    let o = r.mailroom(&["list", "add", "nolist", "alice"]);
    assert_eq!(code(&o), 67, "{}", stderr(&o));
    let o = r.mailroom(&["list", "create", "staff", "--owner", "nosuch"]);
    assert_eq!(code(&o), 67, "{}", stderr(&o));

    r.mailroom_ok(&[
        "list",
        "create",
        "staff",
        "--owner",
        "boss@elsewhere.example",
        "--anyone-may-post",
    ]);
    let show = r.mailroom_ok(&["list"]);
    assert!(show.contains("staff@test.example"), "{show}");
    assert!(show.contains("anyone"), "{show}");
    let json = r.mailroom_ok(&["list", "show", "--json"]);
    assert!(
        json.contains("{\"address\":\"team@shop.example\",\"name\":\"team-shop\",\"posting\":\"members\",\"members\":1,\"owners\":[\"boss\"]}"),
        "{json}"
    );
    let check = r.mailroom(&["check"]);
    assert_eq!(code(&check), 0, "{}{}", stdout(&check), stderr(&check));

    // check: a broken members file and a missing owner file are errors.
    fs::write(r.path("etc/mail/lists/staff"), "alice\nbad <address\n").unwrap();
    fs::remove_file(r.path("etc/mail/lists/staff.owner")).unwrap();
    let check = r.mailroom(&["check"]);
    assert_eq!(code(&check), 78, "{}", stdout(&check));
    let out = stdout(&check);
    assert!(
        out.contains("lists/staff:2: error: \"bad <address\" is not an address"),
        "{out}"
    );
    assert!(out.contains("lists/staff.owner: error: missing"), "{out}");

    // SMTP: a non-member is refused at RCPT, a member is not.
    r.mailroom_ok(&["list", "add", "team@shop.example", "bob"]);
    let talk = |from: &str| {
        let input = format!(
            "EHLO client.example\r\nMAIL FROM:<{from}>\r\nRCPT TO:<team@shop.example>\r\nQUIT\r\n"
        );
        stdout(&r.sendmail(&["-bs"], input.as_bytes()))
    };
    let out = talk("eve@elsewhere.example");
    assert!(
        out.contains("550 5.7.1 <team@shop.example>... only members may post to team@shop.example"),
        "{out}"
    );
    assert!(talk("").contains("550 5.7.1"), "a bounce to the list");
    let out = talk("Bob@test.example");
    assert!(out.contains("250 2.1.5"), "{out}");
    // Any alias made of an :include: is taken at RCPT (its file is read
    // at delivery, with the privileges to read it).
    fs::write(r.path("etc/mail/inc"), "bob\n").unwrap();
    let aliases = r.read("etc/mail/aliases");
    fs::write(
        r.path("etc/mail/aliases"),
        format!("{aliases}grp: :include:/etc/mail/inc\n"),
    )
    .unwrap();
    let input = "EHLO c.example\r\nMAIL FROM:<x@elsewhere.example>\r\nRCPT TO:<grp@test.example>\r\nQUIT\r\n";
    let out = stdout(&r.sendmail(&["-bs"], input.as_bytes()));
    assert!(out.contains("250 2.1.5"), "{out}");

    r.mailroom_ok(&["list", "delete", "team@shop.example"]);
    assert!(!r.path("etc/mail/lists/team-shop").exists());
    assert!(!r.read("etc/mail/aliases").contains("team-shop"));
    assert!(
        !r.read("etc/mail/virtusertable")
            .contains("team@shop.example")
    );
    assert_eq!(r.read("etc/mail/aliases").lines().next(), Some("# by hand"));
}

fn post(r: &Root, sender: &str, from: &str, tag: &str) {
    let msg = format!(
        "From: {from}\nTo: team@shop.example\nSubject: {tag}\nList-Id: <other.example>\n\nhello\n"
    );
    let o = r.sendmail(&["-i", "-f", sender, "team@shop.example"], msg.as_bytes());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = r.qrun(&["-q"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn members_get_the_owners_copy_and_bounces_go_to_the_owner() {
    let r = site("lists-deliver");
    r.mailroom_ok(&["list", "create", "team@shop.example", "--owner", "boss"]);
    r.mailroom_ok(&[
        "list",
        "add",
        "team@shop.example",
        "alice",
        "bob",
        "far@remote.example",
    ]);
    // A member the admin typed by hand that does not exist: its failure
    // must reach the owner, not the poster.
    let members = r.path("etc/mail/lists/team-shop");
    let mut text = r.read("etc/mail/lists/team-shop");
    text.push_str("ghost\n");
    fs::write(&members, text).unwrap();

    post(
        &r,
        "alice@test.example",
        "Alice <alice@test.example>",
        "one",
    );
    for who in ["alice", "bob"] {
        let m = r.mbox(who);
        assert!(m.contains("Subject: one\n"), "{who}: {m}");
        assert!(
            m.contains("Return-Path: <owner-team-shop@test.example>"),
            "{who}: {m}"
        );
        assert!(m.contains("List-Id: <team.shop.example>\n"), "{who}: {m}");
        assert!(
            m.contains("List-Post: <mailto:team@shop.example>\n"),
            "{who}: {m}"
        );
        assert!(!m.contains("other.example"), "{who}: old List-Id kept: {m}");
    }
    // The remote member's copy went out from the owner with the list's
    // headers: its bounce (no DNS here) is the owner's and quotes them.
    let b = r.mbox("boss");
    assert!(b.contains("far@remote.example"), "{b}");
    assert!(b.contains("List-Id: <team.shop.example>"), "{b}");
    assert!(
        r.queued_ids().is_empty(),
        "{:?}\n{}",
        r.queue_files(),
        r.log()
    );
    // ghost's bounce: to boss only.
    let b = r.mbox("boss");
    assert!(b.contains("ghost"), "{b}");
    assert!(b.contains("User unknown"), "{b}");
    assert!(
        !r.mbox("alice").contains("MAILER-DAEMON"),
        "the poster got a bounce"
    );

    // A non-member: refused, the poster is told, no member gets it.
    post(&r, "eve@test.example", "eve@test.example", "two");
    let e = r.mbox("eve");
    assert!(
        e.contains("only members may post to team@shop.example"),
        "{e}"
    );
    assert!(!r.mbox("bob").contains("Subject: two"));
    // ... unless From: is a member (mail a web application sends for
    // its user).
    post(&r, "eve@test.example", "Bob <BOB@test.example>", "three");
    assert!(r.mbox("alice").contains("Subject: three"));
    // Bounces to the list itself never reach the members.
    post(&r, "<>", "MAILER-DAEMON@test.example", "four");
    assert!(!r.mbox("bob").contains("Subject: four"));
}
