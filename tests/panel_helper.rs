//! `panel-helper`, the web panel's root side, run as the front end runs
//! it (one request on stdin, one answer on stdout) against a private
//! root built with the `mailroom` command: every operation on domain A's
//! objects tried with domain B's admin and with a mailbox user (all
//! `missing`, nothing changed), CSRF, session rotation and expiry,
//! stale changes, changes seen by the CLI and delivery at once, and the
//! slowing of failed logins.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use mailroom::admin::panel::ops::CHANGES;
use mailroom::panel::protocol::{Answer, Record};

const CLIENT: &str = "192.0.2.7";

/// Virtual domains a.example and b.example, each with its postmaster (the
/// domain admin), info@ and other@ mailboxes; A has an alias, a forward,
/// a catch-all, an autoreply, a list and a filter.  `conf`: extra
/// mailroom.conf lines.
fn panel_root(name: &str, conf: &str) -> Root {
    let r = Root::new(name);
    r.write(
        "etc/mail/mailroom.conf",
        &format!(
            "hostname = test.example\nlog = /var/log/mail.log\nmin_free_space = 0\n\
             delivery_mode = queue\npop3_auth_fail_delay = 0\n{conf}"
        ),
    );
    r.write(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000:Bob:/home/bob:/bin/bash\n",
    );
    r.write(
        "etc/shadow",
        "root:*:19000:0:99999:7:::\nbob:*:19000:0:99999:7:::\n",
    );
    r.write("etc/group", "root:x:0:\nmail:x:8:\n");
    // Virtual domains: postmaster@ is no local alias there.
    r.write("etc/mail/virtuser-domains", "a.example\nb.example\n");
    r.write("etc/mail/aliases", "postmaster: root\n");
    for d in ["a", "b"] {
        for who in ["postmaster", "info", "other"] {
            ok(&r.mailroom_with_input(
                &[
                    "mailbox",
                    "add",
                    &format!("{who}@{d}.example"),
                    "--password-stdin",
                ],
                format!("{who}-{d}-pw\n").as_bytes(),
            ));
        }
    }
    r.mailroom_ok(&["alias", "add", "sales@a.example", "info@a.example"]);
    r.mailroom_ok(&[
        "forward",
        "set",
        "info@a.example",
        "far@away.example",
        "--keep-copy",
    ]);
    r.mailroom_ok(&["catchall", "set", "a.example", "info@a.example"]);
    r.write("tmp/reply.txt", "I am away.\n");
    let body = r.path("tmp/reply.txt");
    r.mailroom_ok(&[
        "autoreply",
        "set",
        "info@a.example",
        "--subject",
        "Away",
        "--body-file",
        body.to_str().unwrap(),
    ]);
    r.mailroom_ok(&[
        "list",
        "create",
        "team@a.example",
        "--owner",
        "postmaster@a.example",
    ]);
    r.mailroom_ok(&["list", "add", "team@a.example", "info@a.example"]);
    r.write(
        "tmp/rules",
        "if header subject contains \"x\" then folder X\n",
    );
    let rules = r.path("tmp/rules");
    r.mailroom_ok(&[
        "filter",
        "set",
        "info@a.example",
        "--file",
        rules.to_str().unwrap(),
    ]);
    r
}

/// Run the helper with `fields` as the request.
fn ask_raw(r: &Root, line: &[u8]) -> (Answer, String) {
    let o = run_with_input(&mut r.cmd("panel-helper"), line);
    assert_eq!(code(&o), 0, "stderr: {}", stderr(&o));
    let text = stdout(&o);
    let a = Answer::decode(&text).unwrap_or_else(|| panic!("not an answer: {text:?}"));
    (a, text)
}

fn ask(r: &Root, fields: &[(&str, &str)]) -> Answer {
    let mut rec = Record::new();
    for (k, v) in fields {
        rec.push(k, *v);
    }
    let mut line = rec.encode();
    line.push('\n');
    ask_raw(r, line.as_bytes()).0
}

/// A logged-in session: (token, csrf).
fn login(r: &Root, name: &str, password: &str) -> (String, String) {
    match ask(
        r,
        &[
            ("op", "login"),
            ("from", CLIENT),
            ("name", name),
            ("password", password),
        ],
    ) {
        Answer::Session { session, csrf, .. } => (session, csrf),
        other => panic!("login {name}: {other:?}"),
    }
}

/// `op` as the session `s`, with its CSRF token, and `fields`.
fn change(r: &Root, s: &(String, String), op: &str, fields: &[(&str, &str)]) -> Answer {
    let mut all = vec![
        ("op", op),
        ("session", s.0.as_str()),
        ("csrf", s.1.as_str()),
        ("from", CLIENT),
    ];
    all.extend_from_slice(fields);
    ask(r, &all)
}

fn read(r: &Root, s: &(String, String), op: &str, fields: &[(&str, &str)]) -> Answer {
    let mut all = vec![("op", op), ("session", s.0.as_str()), ("from", CLIENT)];
    all.extend_from_slice(fields);
    ask(r, &all)
}

/// Every file under `dirs` of the root, with its bytes.
fn snapshot(r: &Root, dirs: &[&str]) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, p: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(rd) = fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap().display().to_string();
                out.insert(rel, fs::read(&path).unwrap_or_default());
            }
        }
    }
    let mut out = BTreeMap::new();
    for d in dirs {
        walk(&r.dir, &r.path(d), &mut out);
    }
    out
}

/// Every file a change could touch: the tables, the accounts, the mail
/// and the queue.
const WATCHED: &[&str] = &["etc", "var/mail", "var/spool/mqueue"];

/// Every operation of the protocol on domain A's objects.
fn a_requests() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    vec![
        ("domain.add", vec![("domain", "c.example")]),
        ("domain.remove", vec![("domain", "a.example")]),
        (
            "mailbox.add",
            vec![("address", "new@a.example"), ("password", "pw")],
        ),
        ("mailbox.remove", vec![("address", "info@a.example")]),
        (
            "mailbox.password",
            vec![("address", "info@a.example"), ("password", "pw2")],
        ),
        (
            "mailbox.quota",
            vec![("address", "info@a.example"), ("quota", "1M")],
        ),
        (
            "import",
            vec![("domain", "a.example"), ("text", "new2@a.example secret\n")],
        ),
        (
            "alias.set",
            vec![("address", "sales@a.example"), ("target", "x@b.example")],
        ),
        ("alias.remove", vec![("address", "sales@a.example")]),
        (
            "forward.set",
            vec![("address", "info@a.example"), ("target", "x@b.example")],
        ),
        ("forward.clear", vec![("address", "info@a.example")]),
        (
            "catchall.set",
            vec![("domain", "a.example"), ("target", "x@b.example")],
        ),
        ("catchall.clear", vec![("domain", "a.example")]),
        (
            "autoreply.set",
            vec![
                ("address", "info@a.example"),
                ("subject", "s"),
                ("text", "t"),
            ],
        ),
        ("autoreply.clear", vec![("address", "info@a.example")]),
        (
            "list.create",
            vec![("address", "team2@a.example"), ("member", "x@b.example")],
        ),
        ("list.delete", vec![("address", "team@a.example")]),
        (
            "list.add",
            vec![("address", "team@a.example"), ("member", "x@b.example")],
        ),
        (
            "list.drop",
            vec![("address", "team@a.example"), ("member", "info@a.example")],
        ),
        (
            "filter.set",
            vec![
                ("address", "info@a.example"),
                ("rules", "if always then keep\n"),
            ],
        ),
        ("filter.clear", vec![("address", "info@a.example")]),
    ]
}

#[test]
fn every_operation_on_another_domain_is_missing_and_changes_nothing() {
    let r = panel_root("panel-enumerate", "");
    let requests = a_requests();
    // The enumeration is the protocol's whole list of changes.
    let named: Vec<&str> = requests.iter().map(|(op, _)| *op).collect();
    assert_eq!(named, CHANGES, "every change is tried");
    let b_admin = login(&r, "postmaster@b.example", "postmaster-b-pw");
    let a_user = login(&r, "other@a.example", "other-a-pw");
    // An alias of B's own naming A's list is no way into the list.
    assert!(matches!(
        change(
            &r,
            &b_admin,
            "alias.set",
            &[("address", "steal@b.example"), ("target", "team-a")]
        ),
        Answer::Done { .. }
    ));
    let before = snapshot(&r, WATCHED);
    for (op, fields) in [
        ("list.add", vec![("member", "x@b.example")]),
        ("list.drop", vec![("member", "info@a.example")]),
        ("list.delete", vec![]),
    ] {
        let mut f = vec![("address", "steal@b.example")];
        f.extend(fields);
        assert_eq!(
            change(&r, &b_admin, op, &f),
            Answer::Missing,
            "{op} through an alias"
        );
    }
    for (who, s) in [("B's admin", &b_admin), ("A's user", &a_user)] {
        for (op, fields) in &requests {
            assert_eq!(change(&r, s, op, fields), Answer::Missing, "{who}: {op}");
        }
        for op in ["domain.show", "queue"] {
            assert_eq!(
                read(&r, s, op, &[("domain", "a.example")]),
                Answer::Missing,
                "{who}: {op}"
            );
        }
        // A's objects are not in their listings.
        match read(&r, s, "domains", &[]) {
            Answer::Data(recs) => assert!(
                recs.iter().all(|d| d.str("domain") != "a.example"),
                "{who}: {recs:?}"
            ),
            other => panic!("{other:?}"),
        }
        // Exactly what a name that does not exist gets.
        assert_eq!(
            change(&r, s, "forward.clear", &[("address", "nobody@a.example")]),
            Answer::Missing
        );
    }
    assert_eq!(snapshot(&r, WATCHED), before, "nothing changed");
    // Their own domain works (the test can fail).
    match read(&r, &b_admin, "domain.show", &[("domain", "b.example")]) {
        Answer::Data(recs) => assert!(recs.iter().any(|m| m.str("address") == "info@b.example")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        change(
            &r,
            &b_admin,
            "forward.set",
            &[("address", "info@b.example"), ("target", "x@a.example")]
        ),
        Answer::Done { .. }
    ));
    // An unknown operation is refused, with or without a session.
    assert!(matches!(
        change(&r, &b_admin, "shell", &[]),
        Answer::Failed { .. }
    ));
    assert!(matches!(
        ask(&r, &[("op", "domain.list.all")]),
        Answer::Failed { .. }
    ));
    // Audit lines say who, from where, what; never a password.
    let log = r.log();
    assert!(
        log.contains("change by postmaster-b from 192.0.2.7: mailbox.remove info@a.example: refused (missing)"),
        "{log}"
    );
    assert!(
        log.contains("login: postmaster-b from 192.0.2.7 (panel)"),
        "{log}"
    );
    assert!(
        !log.contains("postmaster-b-pw") && !log.contains("pw2"),
        "{log}"
    );
}

#[test]
fn a_change_needs_the_sessions_own_csrf_token() {
    let r = panel_root("panel-csrf", "");
    let admin = login(&r, "postmaster@b.example", "postmaster-b-pw");
    let user = login(&r, "info@b.example", "info-b-pw");
    let fields = [("address", "info@b.example"), ("target", "x@a.example")];
    let before = snapshot(&r, WATCHED);
    fn base<'a>(
        session: &'a str,
        csrf: Option<&'a str>,
        fields: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, &'a str)> {
        let mut f = vec![
            ("op", "forward.set"),
            ("session", session),
            ("from", CLIENT),
        ];
        if let Some(c) = csrf {
            f.push(("csrf", c));
        }
        f.extend_from_slice(fields);
        f
    }
    assert_eq!(
        ask(&r, &base(&admin.0, None, &fields)),
        Answer::NoSession,
        "no token"
    );
    assert_eq!(
        ask(&r, &base(&admin.0, Some(""), &fields)),
        Answer::NoSession,
        "empty token"
    );
    let wrong = "0".repeat(64);
    assert_eq!(
        ask(&r, &base(&admin.0, Some(&wrong), &fields)),
        Answer::NoSession,
        "wrong token"
    );
    assert_eq!(
        ask(&r, &base(&admin.0, Some(&user.1), &fields)),
        Answer::NoSession,
        "another session's"
    );
    assert_eq!(snapshot(&r, WATCHED), before, "nothing changed");
    assert!(matches!(
        ask(&r, &base(&admin.0, Some(&admin.1), &fields)),
        Answer::Done { .. }
    ));
    assert_ne!(snapshot(&r, WATCHED), before);
    // A password the admin sets ends the mailbox's sessions.
    let whoami = |t: &str| ask(&r, &[("op", "whoami"), ("session", t), ("from", CLIENT)]);
    assert!(matches!(whoami(&user.0), Answer::Session { .. }));
    assert!(matches!(
        change(
            &r,
            &admin,
            "mailbox.password",
            &[("address", "info@b.example"), ("password", "new")]
        ),
        Answer::Done { .. }
    ));
    assert_eq!(whoami(&user.0), Answer::NoSession);
    assert!(matches!(whoami(&admin.0), Answer::Session { .. }));
}

#[test]
fn sessions_are_new_at_login_rotate_with_the_password_and_end() {
    let r = panel_root("panel-sessions", "");
    let whoami = |t: &str| ask(&r, &[("op", "whoami"), ("session", t), ("from", CLIENT)]);
    // A token planted before the login is not the session after it.
    let planted = "ab".repeat(32);
    let s = match ask(
        &r,
        &[
            ("op", "login"),
            ("session", &planted),
            ("from", CLIENT),
            ("name", "info@a.example"),
            ("password", "info-a-pw"),
        ],
    ) {
        Answer::Session { session, csrf, .. } => (session, csrf),
        other => panic!("{other:?}"),
    };
    assert_ne!(s.0, planted);
    assert_eq!(whoami(&planted), Answer::NoSession);
    // Each login is a new token.
    let again = login(&r, "info@a.example", "info-a-pw");
    assert_ne!(again.0, s.0);
    match whoami(&s.0) {
        Answer::Session { session, login, .. } => {
            assert_eq!(session, s.0);
            assert_eq!(login, "info-a");
        }
        other => panic!("{other:?}"),
    }
    // password.change: a wrong old password changes nothing.
    assert!(matches!(
        change(
            &r,
            &s,
            "password.change",
            &[("old", "guess"), ("new", "n3w")]
        ),
        Answer::Failed { .. }
    ));
    let n = match change(
        &r,
        &s,
        "password.change",
        &[("old", "info-a-pw"), ("new", "n3w")],
    ) {
        Answer::Session { session, csrf, .. } => (session, csrf),
        other => panic!("{other:?}"),
    };
    assert_ne!(n.0, s.0);
    assert_eq!(whoami(&s.0), Answer::NoSession, "the old token died");
    assert_eq!(whoami(&again.0), Answer::NoSession, "so did the other one");
    assert!(matches!(whoami(&n.0), Answer::Session { .. }));
    assert_eq!(
        ask(
            &r,
            &[
                ("op", "login"),
                ("name", "info@a.example"),
                ("password", "info-a-pw")
            ]
        ),
        Answer::Refused
    );
    let fresh = login(&r, "info@a.example", "n3w");
    // Logout ends it.
    assert!(matches!(
        change(&r, &fresh, "logout", &[]),
        Answer::Done { .. }
    ));
    assert_eq!(whoami(&fresh.0), Answer::NoSession);
    // Expiry: a second idle is too long.
    let conf = r.read("etc/mail/mailroom.conf");
    r.write(
        "etc/mail/mailroom.conf",
        &format!("{conf}panel_session_idle = 1s\n"),
    );
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(whoami(&n.0), Answer::NoSession, "expired");
    // The session files hold no token.
    for e in fs::read_dir(r.path("var/spool/mailroom/panel")).unwrap() {
        let e = e.unwrap();
        let text = fs::read_to_string(e.path()).unwrap_or_default();
        assert!(!text.contains(&n.0) && !e.file_name().to_string_lossy().contains(&n.0));
    }
    // Bad requests get answers, never a crash.
    for junk in [
        &b"\xff\xfe\n"[..],
        b"",
        b"op=whoami&session=../../etc/shadow\n",
        b"&&&==\n",
    ] {
        let (a, _) = ask_raw(&r, junk);
        assert!(
            matches!(a, Answer::Failed { .. } | Answer::NoSession),
            "{junk:?}: {a:?}"
        );
    }
    let huge = format!(
        "op=login&name=x&password={}\n",
        "a".repeat(mailroom::panel::protocol::MAX_REQUEST)
    );
    assert!(matches!(
        ask_raw(&r, huge.as_bytes()).0,
        Answer::Failed { .. }
    ));
}

#[test]
fn a_stale_change_is_refused_and_the_clis_value_stays() {
    let r = panel_root("panel-stale", "");
    let admin = login(&r, "postmaster@a.example", "postmaster-a-pw");
    let stamp = |recs: &[Record]| {
        recs.iter()
            .find(|x| x.str("kind") == "forward" && x.str("address") == "info@a.example")
            .map(|x| x.str("stamp").to_string())
            .expect("info's forward shown")
    };
    let shown = match read(&r, &admin, "domain.show", &[("domain", "a.example")]) {
        Answer::Data(recs) => stamp(&recs),
        other => panic!("{other:?}"),
    };
    // The CLI changes the forward while the page is open.
    r.mailroom_ok(&["forward", "set", "info@a.example", "cli@far.example"]);
    let form = [
        ("address", "info@a.example"),
        ("target", "page@far.example"),
        ("keep", "yes"),
        ("seen", shown.as_str()),
    ];
    match change(&r, &admin, "forward.set", &form) {
        Answer::Stale { message } => assert!(message.contains("cli@far.example"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(
        r.read("etc/mail/aliases")
            .contains("info-a: cli@far.example\n")
    );
    assert!(!r.read("etc/mail/aliases").contains("page@far.example"));
    // Shown again, the page's change goes through.
    let now = match read(&r, &admin, "domain.show", &[("domain", "a.example")]) {
        Answer::Data(recs) => stamp(&recs),
        other => panic!("{other:?}"),
    };
    assert_ne!(now, shown);
    let form = [
        ("address", "info@a.example"),
        ("target", "page@far.example"),
        ("keep", "yes"),
        ("seen", now.as_str()),
    ];
    assert!(matches!(
        change(&r, &admin, "forward.set", &form),
        Answer::Done { .. }
    ));
}

#[test]
fn a_panel_change_is_the_clis_and_delivery_sees_it_at_once() {
    let r = panel_root("panel-same", "");
    let admin = login(&r, "postmaster@a.example", "postmaster-a-pw");
    let notes = match change(
        &r,
        &admin,
        "forward.set",
        &[
            ("address", "info@a.example"),
            ("target", "panel@far.example"),
            ("keep", "yes"),
        ],
    ) {
        Answer::Done { notes } => notes,
        other => panic!("{other:?}"),
    };
    // The command's own words.
    assert!(
        notes
            .iter()
            .any(|n| n.contains("forwarded to panel@far.example, keeping a copy")),
        "{notes:?}"
    );
    let list = r.mailroom_ok(&["alias", "list"]);
    assert!(list.contains("panel@far.example"), "{list}");
    let explain = r.mailroom_ok(&["explain", "info@a.example"]);
    assert!(explain.contains("panel@far.example"), "{explain}");
    // A mailbox added in the panel is listed and takes POP3 logins.
    assert!(matches!(
        change(
            &r,
            &admin,
            "mailbox.add",
            &[
                ("address", "new@a.example"),
                ("password", "npw"),
                ("quota", "10M")
            ]
        ),
        Answer::Done { .. }
    ));
    assert!(
        r.mailroom_ok(&["mailbox", "list", "a.example"])
            .contains("new@a.example")
    );
    let cfg = mailroom::config::Config::load(mailroom::config::Paths::under(r.dir.clone()), None)
        .unwrap();
    let settings = mailroom::login::Settings::from_config(&cfg).unwrap();
    assert!(
        mailroom::login::check(
            &cfg,
            &settings,
            &mailroom::login::Attempt::password(b"new@a.example", b"npw")
        )
        .is_ok()
    );
    // The CLI's failures are the panel's, word for word.
    let cli = stderr(&r.mailroom(&["forward", "clear", "new@a.example"]));
    match change(&r, &admin, "forward.clear", &[("address", "new@a.example")]) {
        Answer::Failed { message } => assert_eq!(format!("mailroom: {message}\n"), cli),
        other => panic!("{other:?}"),
    }
    // The CLI's change is in the panel's next read.
    r.mailroom_ok(&["alias", "add", "shop@a.example", "info@a.example"]);
    match read(&r, &admin, "domain.show", &[("domain", "a.example")]) {
        Answer::Data(recs) => assert!(
            recs.iter()
                .any(|x| x.str("kind") == "alias" && x.str("address") == "shop@a.example")
        ),
        other => panic!("{other:?}"),
    }
    // The domain's queue: its own messages only, with their last error.
    ok(&r.sendmail(
        &["-f", "info@a.example", "x@far.example"],
        b"Subject: a\n\nfrom A\n",
    ));
    ok(&r.sendmail(
        &["-f", "info@b.example", "y@far.example"],
        b"Subject: b\n\nfrom B\n",
    ));
    match read(&r, &admin, "queue", &[("domain", "a.example")]) {
        Answer::Data(recs) => {
            assert_eq!(recs.len(), 1, "{recs:?}");
            assert_eq!(recs[0].str("from"), "info@a.example");
            assert_eq!(recs[0].all("to").collect::<Vec<_>>(), ["x@far.example"]);
            assert!(recs[0].get("error").is_some() && recs[0].get("age").is_some());
        }
        other => panic!("{other:?}"),
    }
    // A user sees their own mailbox.
    let user = login(&r, "new@a.example", "npw");
    match read(&r, &user, "me", &[]) {
        Answer::Data(recs) => {
            assert_eq!(recs[0].str("kind"), "me");
            assert_eq!(recs[0].str("quota"), (10 << 20).to_string());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn failed_logins_slow_down_alike_for_known_and_unknown_names() {
    let r = panel_root("panel-slow", "pop3_auth_fail_delay = 1s\n");
    let timed = |name: &str, pw: &str| {
        let t = Instant::now();
        let a = ask(
            &r,
            &[
                ("op", "login"),
                ("from", CLIENT),
                ("name", name),
                ("password", pw),
            ],
        );
        (a, t.elapsed())
    };
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..3 {
        let (a, d) = timed("info@a.example", "guess");
        assert_eq!(a, Answer::Refused);
        known.push(d);
        let (a, d) = timed("nobody@b.example", "guess");
        assert_eq!(a, Answer::Refused);
        unknown.push(d);
    }
    // 1 s, 2 s, 4 s (POP3's pause, doubling): each longer than the last
    // by its pause.
    for v in [&known, &unknown] {
        assert!(v[0] >= Duration::from_millis(1000), "{v:?}");
        assert!(v[1] >= v[0] + Duration::from_millis(800), "{v:?}");
        assert!(v[2] >= v[1] + Duration::from_millis(1600), "{v:?}");
    }
    for i in 0..3 {
        let diff = known[i].abs_diff(unknown[i]);
        assert!(diff < Duration::from_millis(400), "{known:?} {unknown:?}");
    }
    // A success ends the count.
    assert!(matches!(
        timed("info@a.example", "info-a-pw").0,
        Answer::Session { .. }
    ));
    let (_, d) = timed("info@a.example", "guess");
    assert!(d < Duration::from_millis(1800), "{d:?}");
    let log = r.log();
    assert!(
        log.contains("login failed: info-a from 192.0.2.7 (panel)"),
        "{log}"
    );
    assert!(
        log.contains("login failed: unknown user from 192.0.2.7 (panel)"),
        "{log}"
    );
    assert!(!log.contains("nobody@b.example"), "{log}");
}

/// Installed set-uid root and run by another user, in a private mount
/// namespace whose /etc/mail, /etc/passwd, /etc/shadow and /var/spool
/// are the test's: a user not in panel_callers is refused before
/// anything is read; one in it is served from the system paths, not
/// from a MAILROOM_ROOT it sets, with the state directory root's alone.
#[test]
fn the_set_uid_program_serves_only_its_callers_and_ignores_mailroom_root() {
    if !need_root("a set-uid root program run by another user")
        || !need_program("setpriv", &["--version"], "util-linux")
    {
        return;
    }
    let sys = Root::new("panel-suid-sys");
    sys.write(
        "etc/mail/mailroom.conf",
        "hostname = test.example\nlog = /var/spool/mail.log\npanel_callers = nobody\n\
         pop3_auth_fail_delay = 0\n",
    );
    sys.write(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n",
    );
    sys.write("etc/shadow", "root:*:19000:0:99999:7:::\n");
    // What MAILROOM_ROOT would say: nobody may not call.
    let decoy = Root::new("panel-suid-decoy");
    let script = format!(
        "S='{sys}'; B='{bin}'
         mount --bind \"$S/etc/mail\" /etc/mail || exit 99
         mount --bind \"$S/etc/passwd\" /etc/passwd || exit 99
         mount --bind \"$S/etc/shadow\" /etc/shadow || exit 99
         mount -t tmpfs tmpfs /var/spool || exit 99
         cp \"$B\" /var/spool/panel-helper && chmod 4755 /var/spool/panel-helper || exit 99
         ask() {{ printf '%s\\n' \"$2\" | MAILROOM_ROOT='{decoy}' setpriv --reuid=$1 --regid=$1 --clear-groups /var/spool/panel-helper; echo \"exit=$?\"; }}
         ask 65534 'op=login&from=192.0.2.7&name=nobody-here&password=guess'
         ask 33 'op=whoami&session=x'
         echo \"panel=$(stat -c %a /var/spool/mailroom/panel) $(ls /var/spool/mailroom/panel | grep -c '^f-')\"
         cat /var/spool/mail.log",
        sys = sys.dir.display(),
        bin = bin("panel-helper").display(),
        decoy = decoy.dir.display(),
    );
    let Some(o) = in_mount_namespace(&decoy, &script) else {
        return;
    };
    let out = stdout(&o);
    assert!(
        out.contains("answer=refused\nexit=0\n"),
        "{out}\n{}",
        stderr(&o)
    );
    assert!(
        out.contains("\nexit=2\n"),
        "www-data is no caller here: {out}"
    );
    assert!(out.contains("panel=700 1"), "{out}");
    assert!(
        out.contains("uid 33 may not run panel-helper (panel_callers)"),
        "{out}"
    );
    assert!(
        out.contains("login failed: unknown user from 192.0.2.7 (panel)"),
        "{out}"
    );
    assert!(
        !decoy.path("var/spool/mailroom").exists(),
        "MAILROOM_ROOT was ignored"
    );
}

/// The other side of the enumeration: each change goes through for the
/// session that may make it (so `missing` above is no blanket refusal).
#[test]
fn every_operation_works_for_whoever_may_make_it() {
    let r = panel_root("panel-allowed", "");
    ok(&r.mailroom_with_input(
        &["mailbox", "add", "boss@b.example", "--password-stdin"],
        b"boss-pw\n",
    ));
    r.write("etc/mail/panel-admins", "# box admins\nboss@b.example\n");
    let boss = login(&r, "boss@b.example", "boss-pw");
    let a_admin = login(&r, "postmaster@a.example", "postmaster-a-pw");
    let steps: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("domain.add", vec![("domain", "c.example")]),
        ("domain.remove", vec![("domain", "c.example")]),
        (
            "mailbox.add",
            vec![("address", "new@a.example"), ("password", "pw")],
        ),
        (
            "mailbox.password",
            vec![("address", "info@a.example"), ("password", "pw2")],
        ),
        (
            "mailbox.quota",
            vec![("address", "info@a.example"), ("quota", "1M")],
        ),
        (
            "import",
            vec![
                ("domain", "a.example"),
                (
                    "text",
                    "new2@a.example secret\nalias imp@a.example info@a.example\n",
                ),
            ],
        ),
        (
            "alias.set",
            vec![("address", "sales@a.example"), ("target", "new@a.example")],
        ),
        ("alias.remove", vec![("address", "sales@a.example")]),
        (
            "forward.set",
            vec![
                ("address", "info@a.example"),
                ("target", "x@far.example"),
                ("keep", "yes"),
            ],
        ),
        ("forward.clear", vec![("address", "info@a.example")]),
        (
            "catchall.set",
            vec![("domain", "a.example"), ("target", "new@a.example")],
        ),
        ("catchall.clear", vec![("domain", "a.example")]),
        (
            "autoreply.set",
            vec![
                ("address", "info@a.example"),
                ("subject", "Away"),
                ("text", "Back soon.\r\n"),
                ("from", "2026-01-01"),
                ("until", "2026-12-31"),
            ],
        ),
        ("autoreply.clear", vec![("address", "info@a.example")]),
        (
            "list.create",
            vec![("address", "team2@a.example"), ("member", "info@a.example")],
        ),
        (
            "list.add",
            vec![
                ("address", "team@a.example"),
                ("member", "x@far.example y@far.example"),
            ],
        ),
        (
            "list.drop",
            vec![("address", "team@a.example"), ("member", "x@far.example")],
        ),
        ("list.delete", vec![("address", "team2@a.example")]),
        (
            "filter.set",
            vec![
                ("address", "info@a.example"),
                ("rules", "if always then keep\n"),
            ],
        ),
        ("filter.clear", vec![("address", "info@a.example")]),
        ("mailbox.remove", vec![("address", "new@a.example")]),
    ];
    let mut tried: Vec<&str> = steps.iter().map(|(op, _)| *op).collect();
    tried.sort();
    tried.dedup();
    let mut all = CHANGES.to_vec();
    all.sort();
    assert_eq!(tried, all, "every change is tried");
    for (op, fields) in &steps {
        let s = if op.starts_with("domain.") {
            &boss
        } else {
            &a_admin
        };
        match change(&r, s, op, fields) {
            Answer::Done { notes } => assert!(!notes.is_empty(), "{op}"),
            other => panic!("{op}: {other:?}"),
        }
    }
    // A mailbox user, on their own mailbox.
    let user = login(&r, "other@a.example", "other-a-pw");
    let own = [("address", "other@a.example")];
    for (op, extra) in [
        (
            "forward.set",
            vec![("target", "x@far.example"), ("keep", "yes")],
        ),
        ("forward.clear", vec![]),
        (
            "autoreply.set",
            vec![("subject", "Away"), ("text", "Later.")],
        ),
        ("autoreply.clear", vec![]),
        ("filter.set", vec![("rules", "if always then keep\n")]),
        ("filter.clear", vec![]),
    ] {
        let mut f = own.to_vec();
        f.extend(extra);
        assert!(
            matches!(change(&r, &user, op, &f), Answer::Done { .. }),
            "user: {op}"
        );
    }
    // The user's rules are on the domain admin's page too, with the stamp
    // the user's own page shows (either page's form guards the other's).
    let rules = [
        ("address", "other@a.example"),
        ("rules", "if always then keep\n# sale\n"),
    ];
    assert!(matches!(
        change(&r, &user, "filter.set", &rules),
        Answer::Done { .. }
    ));
    let filter_in = |a: Answer| match a {
        Answer::Data(recs) => recs
            .into_iter()
            .find(|x| x.str("kind") == "filter" && x.str("address") == "other@a.example")
            .expect("a filter record"),
        other => panic!("{other:?}"),
    };
    let shown = filter_in(read(
        &r,
        &a_admin,
        "domain.show",
        &[("domain", "a.example")],
    ));
    let own_page = filter_in(read(&r, &user, "me", &[]));
    assert!(shown.str("rules").contains("sale"));
    assert_eq!(shown.str("stamp"), own_page.str("stamp"));
    // What the steps left, as the files say.
    assert!(r.read("etc/mail/virtusertable").contains("imp@a.example"));
    assert!(r.read("etc/mail/lists/team-a").contains("y@far.example"));
    assert!(!r.read("etc/mail/lists/team-a").contains("x@far.example"));
    assert!(!r.path("etc/mail/autoreply/info@a.example").exists());
    assert!(!r.read("etc/passwd").contains("new-a:"));
    assert!(r.read("etc/mail/quotas").contains("info-a"));
}
