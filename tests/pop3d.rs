//! pop3d on a socket pair, the way inetd runs it, against a private root:
//! the protocol's replies, logins, what hostile input gets, and who the
//! process is after login.  (Real clients under a real inetd are in
//! compat/test_pop3_clients.py.)

mod common;
use common::*;

use std::io::{Read, Write};

/// The uid the test mailbox belongs to: ours, or (as root) a fake user
/// that pop3d must become.
/// "secret", hashed by the system's crypt (SHA-512, salt "saltsalt").
/// A root with user bob (password "secret") and an mbox of `mbox` bytes.
fn pop_root(name: &str, mbox: &[u8], extra_conf: &str) -> Root {
    let r = Root::new(name);
    let u = login_uid();
    r.write(
        "etc/passwd",
        &format!("root:x:0:0:root:/root:/bin/sh\nbob:x:{u}:{u}:Bob:/home/bob:/bin/sh\n"),
    );
    r.write("etc/shadow", &shadow_with_secret(&["bob"]));
    r.write(
        "etc/mail/mailroom.conf",
        &format!(
            "hostname = test.example\nlog = /var/log/mail.log\npop3_first_uid = 100\npop3_auth_fail_delay = 0\n{extra_conf}"
        ),
    );
    r.write("etc/mail/local-host-names", "example.com\n");
    r.write("etc/mail/virtusertable", "info@example.com bob\n");
    std::fs::write(r.path("var/mail/bob"), mbox).unwrap();
    std::os::unix::fs::chown(r.path("var/mail/bob"), Some(u), Some(u)).unwrap();
    r
}

const MBOX: &[u8] = b"From a@example.org  Sat Nov 21 05:00:00 2026\nReturn-Path: <a@example.org>\nReceived: by test.example id 1\nSubject: one\n\nhello\n>From the quoted line\n.a dot\n\nFrom c@example.org  Sat Nov 21 05:00:01 2026\nReceived: by test.example id 2\nSubject: two\n\nsecond\n\n";

/// A spool where the user may not create dotlocks (not group mail, or
/// group mail without write): mail can be read, but QUIT moves nothing,
/// since a kill in the middle of the move could not be finished by
/// anyone (no note, no side file); the client hears it and the log says
/// what to fix.  (Only root can make pop3d someone who lacks the right.)
#[test]
fn quit_deletes_nothing_where_no_dotlock_can_be_made() {
    if !is_root() {
        return;
    }
    let r = pop_root("pop-no-dotlock", MBOX, "");
    std::os::unix::fs::chown(r.path("var/mail"), Some(0), Some(0)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(r.path("var/mail"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut p = PopSession::greeted(&r);
    p.login("bob");
    assert_eq!(p.cmd(b"STAT"), "+OK 2 171\r\n");
    assert_eq!(p.cmd(b"DELE 1"), "+OK Marked to be deleted.\r\n");
    assert_eq!(
        p.cmd(b"QUIT"),
        "-ERR [SYS/TEMP] Some deleted messages were not removed.\r\n"
    );
    p.finish();
    assert_eq!(r.read_strict("var/mail/bob").as_bytes(), MBOX);
    assert!(
        r.log().contains("mode 2775"),
        "the log says what to fix: {}",
        r.log()
    );
}

#[test]
fn a_session_lists_retrieves_and_deletes() {
    let r = pop_root("pop-basic", MBOX, "");
    let mut p = PopSession::greeted(&r);
    p.login("bob");
    assert_eq!(p.cmd(b"STAT"), "+OK 2 171\r\n");
    assert_eq!(p.cmd(b"LIST"), "+OK 2 messages:\r\n");
    assert_eq!(p.body(), ["1 115\r\n", "2 56\r\n"]);
    assert_eq!(p.cmd(b"RETR 1"), "+OK 115 octets\r\n");
    assert_eq!(
        p.body().concat(),
        "Return-Path: <a@example.org>\r\nReceived: by test.example id 1\r\nSubject: one\r\n\r\nhello\r\nFrom the quoted line\r\n..a dot\r\n"
    );
    assert_eq!(p.cmd(b"UIDL"), "+OK\r\n");
    let uidls = p.body();
    assert_eq!(uidls.len(), 2);
    assert_eq!(p.cmd(b"DELE 1"), "+OK Marked to be deleted.\r\n");
    assert_eq!(p.cmd(b"DELE 1"), "-ERR Message is deleted.\r\n");
    assert_eq!(p.cmd(b"RETR 1"), "-ERR Message is deleted.\r\n");
    assert_eq!(p.cmd(b"STAT"), "+OK 1 56\r\n");
    assert_eq!(p.cmd(b"QUIT"), "+OK Logging out, messages deleted.\r\n");
    p.finish();
    let left = r.read_strict("var/mail/bob");
    assert!(left.starts_with("From c@example.org"), "{left}");
    // The UIDL of the message left is unchanged in the next session.
    let mut p = PopSession::greeted(&r);
    p.login("bob");
    assert_eq!(p.cmd(b"UIDL 1"), format!("+OK 1 {}", &uidls[1][2..]));
    p.cmd(b"QUIT");
    p.finish();
    let log = r.log();
    assert!(log.contains("login: bob from unknown"), "{log}");
    assert!(
        log.contains("logout: bob retr=1/115 top=0 del=1/115 left=1/56 (quit)"),
        "{log}"
    );
}

#[test]
fn wrong_password_and_unknown_user_get_the_same_reply() {
    let r = pop_root("pop-auth", MBOX, "pop3_max_auth_failures = 10\n");
    let mut p = PopSession::greeted(&r);
    assert_eq!(p.cmd(b"USER bob"), "+OK\r\n");
    let wrong = p.cmd(b"PASS guess");
    assert_eq!(p.cmd(b"USER nosuchuser"), "+OK\r\n");
    let unknown = p.cmd(b"PASS guess");
    assert_eq!(wrong, "-ERR [AUTH] Authentication failed.\r\n");
    assert_eq!(wrong, unknown);
    assert_eq!(p.cmd(b"PASS secret"), "-ERR No username given.\r\n");
    // The address forms all reach bob's mailbox.
    for name in [
        "info@example.com",
        "bob@example.com",
        "bob/example.com",
        "bob%example.com",
    ] {
        let mut q = PopSession::greeted(&r);
        q.login(name);
        assert_eq!(q.cmd(b"STAT"), "+OK 2 171\r\n", "{name}");
        q.cmd(b"QUIT");
        q.finish();
    }
    p.cmd(b"QUIT");
    p.finish();
    let log = r.log();
    assert!(log.contains("login failed: bob from"), "{log}");
    assert!(log.contains("login failed: unknown user from"), "{log}");
    assert!(
        !log.contains("nosuchuser") && !log.contains("guess"),
        "{log}"
    );
}

#[test]
fn three_failures_close_the_connection() {
    let r = pop_root("pop-fail3", MBOX, "");
    let mut p = PopSession::greeted(&r);
    for _ in 0..3 {
        p.cmd(b"USER bob");
        assert_eq!(
            p.cmd(b"PASS wrong"),
            "-ERR [AUTH] Authentication failed.\r\n"
        );
    }
    let mut rest = String::new();
    p.reader.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
    p.finish();
}

#[test]
fn hostile_input_gets_clean_errors() {
    let r = pop_root("pop-hostile", MBOX, "");
    let mut p = PopSession::greeted(&r);
    let long = vec![b'A'; 10_000];
    assert_eq!(p.cmd(&long), "-ERR Line too long.\r\n");
    assert_eq!(
        p.cmd(b"USER b\0b"),
        "-ERR Invalid characters in command.\r\n"
    );
    assert_eq!(
        p.cmd(b"CAPA\xff"),
        "-ERR Invalid characters in command.\r\n"
    );
    // Still serving.
    p.login("bob");
    assert_eq!(p.cmd(b"LIST 0"), "-ERR There's no message 0.\r\n");
    assert_eq!(
        p.cmd(b"LIST 4294967297"),
        "-ERR There's no message 4294967297.\r\n"
    );
    assert_eq!(p.cmd(b"LIST 1 2"), "-ERR Noise after message number: 1\r\n");
    assert_eq!(p.cmd(b"TOP 1 -1"), "-ERR Invalid size: -1\r\n");
    assert_eq!(p.cmd(&long), "-ERR Line too long.\r\n");
    // Random binary input: errors, then the session ends after 20 bad
    // commands in a row, without touching the mailbox.
    let mut junk = Vec::new();
    let mut x: u32 = 12345;
    for _ in 0..4000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        junk.push((x >> 16) as u8);
    }
    junk.extend_from_slice(b"\r\n");
    for _ in 0..30 {
        if p.sock.write_all(&junk).is_err() {
            break;
        }
    }
    let mut rest = Vec::new();
    let _ = p.reader.read_to_end(&mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.lines().all(|l| l.starts_with("-ERR")), "{rest}");
    assert!(rest.ends_with("-ERR Too many bad commands.\r\n"), "{rest}");
    p.finish();
    assert_eq!(std::fs::read(r.path("var/mail/bob")).unwrap(), MBOX);
}

#[test]
fn an_interrupted_session_deletes_nothing_and_a_second_one_is_refused() {
    let r = pop_root("pop-interrupt", MBOX, "");
    let mut p = PopSession::greeted(&r);
    p.login("bob");
    assert_eq!(p.cmd(b"DELE 1"), "+OK Marked to be deleted.\r\n");
    let mut q = PopSession::greeted(&r);
    assert_eq!(q.cmd(b"USER bob"), "+OK\r\n");
    assert_eq!(
        q.cmd(b"PASS secret"),
        "-ERR [IN-USE] Mailbox is locked by another POP3 session.\r\n"
    );
    q.finish();
    // The client vanishes without QUIT.
    p.finish();
    assert_eq!(std::fs::read(r.path("var/mail/bob")).unwrap(), MBOX);
    // And the mailbox is free again.
    let mut p = PopSession::greeted(&r);
    p.login("bob");
    p.cmd(b"QUIT");
    p.finish();
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let r = pop_root("pop-pipeline", MBOX, "");
    let mut p = PopSession::greeted(&r);
    p.sock
        .write_all(b"CAPA\r\nUSER bob\r\nPASS secret\r\nSTAT\r\nRETR 2\r\nNOOP\r\nQUIT\r\n")
        .unwrap();
    let mut all = String::new();
    p.reader.read_to_string(&mut all).unwrap();
    assert!(all.starts_with("+OK Capability list follows\r\n"), "{all}");
    assert!(all.contains("\r\nPIPELINING\r\n"));
    assert!(
        all.ends_with("+OK\r\n+OK Logged in.\r\n+OK 2 171\r\n+OK 56 octets\r\nReceived: by test.example id 2\r\nSubject: two\r\n\r\nsecond\r\n.\r\n+OK\r\n+OK Logging out.\r\n"),
        "{all}"
    );
    p.finish();
}

#[test]
fn sasl_plain_and_login() {
    let r = pop_root("pop-sasl", MBOX, "");
    let b64 = |s: &[u8]| mailroom::b64::encode(s);
    let mut p = PopSession::greeted(&r);
    assert_eq!(p.cmd(b"AUTH"), "+OK\r\n");
    assert_eq!(p.body(), ["PLAIN\r\n", "LOGIN\r\n"]);
    // mutt's form: authzid = authcid.
    let ir = format!("AUTH PLAIN {}", b64(b"bob\0bob\0secret"));
    assert_eq!(p.cmd(ir.as_bytes()), "+OK Logged in.\r\n");
    p.cmd(b"QUIT");
    p.finish();
    let mut p = PopSession::greeted(&r);
    assert_eq!(p.cmd(b"AUTH PLAIN"), "+ \r\n");
    assert_eq!(p.cmd(b"*"), "-ERR Authentication cancelled.\r\n");
    // Somebody else's authorization identity: refused.
    let other = format!("AUTH PLAIN {}", b64(b"root\0bob\0secret"));
    assert_eq!(
        p.cmd(other.as_bytes()),
        "-ERR [AUTH] Authentication failed.\r\n"
    );
    assert_eq!(p.cmd(b"AUTH LOGIN"), "+ VXNlcm5hbWU6\r\n");
    assert_eq!(p.cmd(b64(b"bob").as_bytes()), "+ UGFzc3dvcmQ6\r\n");
    assert_eq!(p.cmd(b64(b"secret").as_bytes()), "+OK Logged in.\r\n");
    p.cmd(b"QUIT");
    p.finish();
}

#[test]
fn apop_only_when_a_plain_secret_exists() {
    let r = pop_root("pop-apop", MBOX, "");
    // No plain secrets: no timestamp, APOP unknown.
    let mut p = PopSession::greeted(&r);
    assert_eq!(p.cmd(b"APOP bob 0123"), "-ERR Unknown command.\r\n");
    p.finish();
    // A virtual account with a plain secret, owned by bob (the owner of
    // every virtual mailbox here).
    r.write(
        "etc/mail/mailroom.conf",
        &format!(
            "{}virtual_user = bob\n",
            r.read_strict("etc/mail/mailroom.conf")
        ),
    );
    r.write(
        "etc/mail/passwd",
        "desk@example.com:{PLAIN}tanstaaf:/var/mail/bob::Desk\n",
    );
    let mut p = PopSession::start(&r);
    let greeting = p.line();
    let ts = &greeting[greeting.find('<').unwrap()..greeting.find('>').unwrap() + 1];
    let digest = format!("{:032x}", md5_of(format!("{ts}tanstaaf").as_bytes()));
    p.sock
        .write_all(format!("APOP desk@example.com {digest}\r\nSTAT\r\nQUIT\r\n").as_bytes())
        .unwrap();
    let mut rest = String::new();
    p.reader.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "+OK Logged in.\r\n+OK 2 171\r\n+OK Logging out.\r\n");
    p.finish();
}

fn md5_of(b: &[u8]) -> u128 {
    use md5::{Digest, Md5};
    u128::from_be_bytes(Md5::digest(b).into())
}

#[test]
fn after_login_the_session_runs_as_the_mailbox_owner() {
    if !need_root("pop3d only changes users when started as root") {
        return;
    }
    let r = pop_root("pop-uid", MBOX, "");
    let mut p = PopSession::greeted(&r);
    p.login("bob");
    // The process we started is the one that serves the session.
    let pid = p.child.id();
    let uid_of = |pid: u32| -> Option<u32> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let l = s.lines().find(|l| l.starts_with("Uid:"))?;
        l.split_whitespace().nth(2)?.parse().ok()
    };
    assert_eq!(uid_of(pid), Some(login_uid()), "the session process");
    p.cmd(b"QUIT");
    p.finish();
}
