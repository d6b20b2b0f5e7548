//! The SMTP server (`sendmail -bs`) against a private root: on a pipe, as
//! PHP frameworks run it, and on a loopback TCP socket, as inetd runs it.
//! Hostile input, the relay battery at the policy level, AUTH and the
//! submission port.  (Real clients under a real inetd, non-loopback
//! clients and the differential dialogues against sendmail 8 are in
//! compat/test_smtp_*.py.)

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::process::{Child, Stdio};
use std::time::Duration;

use mailroom::config::{Config, Paths};
use mailroom::smtp::server::policy::Policy;

/// "secret", hashed by the system's crypt (SHA-512, salt "saltsalt").
const SECRET_HASH: &str = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";

fn owner_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if me == 0 { 4242 } else { me }
}

/// A root with domain example.com, user bob (password "secret"), an
/// alias, virtusertable errors and a quota'd full mailbox.
fn smtp_root(name: &str, extra_conf: &str) -> Root {
    let r = Root::new(name);
    let u = owner_uid();
    r.write(
        "etc/passwd",
        &format!(
            "root:x:0:0:root:/root:/bin/sh\nbob:x:{u}:{u}:Bob:/home/bob:/bin/sh\nfull:x:{u}:{u}:Full:/home/full:/bin/sh\n"
        ),
    );
    r.write(
        "etc/shadow",
        &format!("root:*:19000:0:99999:7:::\nbob:{SECRET_HASH}:19000:0:99999:7:::\n"),
    );
    r.write(
        "etc/mail/mailroom.conf",
        &format!(
            "hostname = test.example\nlog = /var/log/mail.log\nmin_free_space = 0\ndelivery_mode = queue\npop3_first_uid = 100\nsmtp_auth_fail_delay = 0\nsmtp_greet_pause = 0\n{extra_conf}"
        ),
    );
    r.write("etc/mail/local-host-names", "example.com\n");
    r.write("etc/mail/aliases", "sales: bob, frank@remote.test\n");
    r.write(
        "etc/mail/virtusertable",
        "abuse@example.com error:5.7.1:550 Abuse desk closed\nroot@example.com error:nouser No such user here\n",
    );
    r.write("etc/mail/quotas", "full 100\n");
    r.write("var/mail/full", &"x".repeat(200));
    r
}

/// Send `input` to `sendmail -bs` on a pipe; the replies.
fn pipe_session(r: &Root, input: &[u8]) -> String {
    let out = r.sendmail(&["-bs"], input);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `sendmail -bs` on a loopback TCP connection.
struct Tcp {
    child: Child,
    reader: BufReader<TcpStream>,
    sock: TcpStream,
}

impl Tcp {
    /// Start a server; `conf` may name the listener's port (`{port}`).
    fn start(r: &Root, conf: &str) -> Tcp {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if !conf.is_empty() {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(r.path("etc/mail/mailroom.conf"))
                .unwrap();
            writeln!(f, "{}", conf.replace("{port}", &port.to_string())).unwrap();
        }
        let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (server, _) = l.accept().unwrap();
        let fd: OwnedFd = server.into();
        let fd2 = fd.try_clone().unwrap();
        let child = r
            .cmd("sendmail")
            .arg("-bs")
            .stdin(Stdio::from(fd))
            .stdout(Stdio::from(fd2))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let reader = BufReader::new(sock.try_clone().unwrap());
        Tcp {
            child,
            reader,
            sock,
        }
    }

    /// One reply (all its lines).
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut l = String::new();
            if self.reader.read_line(&mut l).unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&l);
            if l.len() < 4 || l.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        let _ = self.sock.write_all(bytes);
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    fn finish(mut self) -> i32 {
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
        let mut rest = Vec::new();
        let _ = self.reader.read_to_end(&mut rest);
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

#[test]
fn a_php_framework_on_a_pipe_queues_one_message_for_all_recipients() {
    let r = smtp_root("smtpd-pipe", "");
    let out = pipe_session(
        &r,
        b"EHLO web.example\r\nMAIL FROM:<site@example.com> BODY=8BITMIME SIZE=200\r\nRCPT TO:<bob@example.com>\r\nRCPT TO:<someone@gmail.example>\r\nRCPT TO:<nosuch@example.com>\r\nDATA\r\nSubject: hi\r\nBcc: hidden@example.org\r\n\r\n..leading dot\r\nna\xc3\xafve\r\n.\r\nQUIT\r\n",
    );
    assert!(out.starts_with("220 test.example ESMTP"), "{out}");
    assert!(out.contains("250-test.example Hello "), "{out}");
    assert!(!out.contains("AUTH"), "no AUTH for a local program: {out}");
    assert!(
        out.contains("250 2.1.5 <someone@gmail.example>... Recipient ok"),
        "{out}"
    );
    assert!(
        out.contains("550 5.1.1 <nosuch@example.com>... User unknown"),
        "{out}"
    );
    assert!(out.contains("Message accepted for delivery"), "{out}");
    assert!(
        out.ends_with("221 2.0.0 test.example closing connection\r\n"),
        "{out}"
    );
    let id = r.only_id();
    let qf = r.qf(&id);
    assert!(qf.contains("\nS<site@example.com>\n"), "{qf}");
    assert!(qf.contains("RPFD:<bob@example.com>"), "{qf}");
    assert!(qf.contains("RPFD:<someone@gmail.example>"), "{qf}");
    assert!(!qf.contains("nosuch"), "{qf}");
    assert!(!qf.contains("hidden@"), "Bcc removed: {qf}");
    assert!(qf.contains("Received: from web.example ("), "{qf}");
    assert!(qf.contains("with ESMTP id"), "{qf}");
    assert!(qf.contains("\nB8BITMIME\n"), "{qf}");
    assert_eq!(r.df(&id), "\u{2e}leading dot\nna\u{ef}ve\n".as_bytes());
}

/// Found by the smtp fuzz target: a client that pipelines past the final
/// dot and then stops sending (no QUIT) still hears its message accepted,
/// or it would send the message again.
#[test]
fn replies_still_due_are_sent_when_the_client_stops_sending() {
    let r = smtp_root("smtpd-eof", "");
    let out = pipe_session(
        &r,
        b"HELO web.example\r\nMAIL FROM:<site@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nNOOP\r\nunfinished",
    );
    assert!(out.contains(" Message accepted for delivery\r\n"), "{out}");
    assert!(out.ends_with("250 2.0.0 OK\r\n"), "{out}");
    r.only_id();
}

#[test]
fn lf_only_text_from_a_framework_is_not_cut_at_a_lone_dot() {
    // Symfony passes an 8-bit text part through as given: LF line ends,
    // and a lone "." line not dot-stuffed (it stuffs only after CRLF).
    let r = smtp_root("smtpd-lfdot", "");
    let out = pipe_session(
        &r,
        b"EHLO web\r\nMAIL FROM:<site@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nSubject: lf\r\n\r\nline one\n.\nline three\n\r\n.\r\nQUIT\r\n",
    );
    assert!(out.contains("Message accepted for delivery"), "{out}");
    assert!(
        out.ends_with("221 2.0.0 test.example closing connection\r\n"),
        "{out}"
    );
    assert_eq!(r.df(&r.only_id()), b"line one\n.\nline three\n\n");
}

#[test]
fn a_network_client_gets_sendmails_replies_and_durable_acceptance() {
    let r = smtp_root("smtpd-tcp", "");
    let mut t = Tcp::start(&r, "");
    assert!(t.reply().starts_with("220 test.example ESMTP mailroom"));
    let ehlo = t.cmd("EHLO client.example");
    for kw in [
        "ENHANCEDSTATUSCODES",
        "PIPELINING",
        "8BITMIME",
        "SIZE",
        "DSN",
        "AUTH PLAIN LOGIN",
    ] {
        assert!(ehlo.contains(kw), "{kw}: {ehlo}");
    }
    assert!(
        ehlo.contains("Hello [127.0.0.1], pleased to meet you"),
        "{ehlo}"
    );
    assert_eq!(
        t.cmd("VRFY bob"),
        "252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery (or try finger)\r\n"
    );
    assert!(t.cmd("EXPN sales").starts_with("502 5.7.0"));
    assert_eq!(t.cmd("NOOP"), "250 2.0.0 OK\r\n");
    assert_eq!(
        t.cmd("MAIL FROM:<a@remote.test>"),
        "250 2.1.0 <a@remote.test>... Sender ok\r\n"
    );
    assert_eq!(
        t.cmd("MAIL FROM:<b@remote.test>"),
        "503 5.5.0 Sender already specified\r\n"
    );
    assert_eq!(
        t.cmd("RCPT TO:<sales@example.com>"),
        "250 2.1.5 <sales@example.com>... Recipient ok\r\n"
    );
    assert_eq!(
        t.cmd("RCPT TO:<abuse@example.com>"),
        "550 5.7.1 <abuse@example.com>... Abuse desk closed\r\n"
    );
    assert_eq!(
        t.cmd("RCPT TO:<root@example.com>"),
        "553 5.3.0 <root@example.com>... No such user here\r\n"
    );
    assert_eq!(
        t.cmd("RCPT TO:<full@example.com>"),
        "452 4.2.2 <full@example.com>... Mailbox full\r\n"
    );
    assert_eq!(t.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    t.send(b"Subject: over tcp\r\n\r\nbody\r\n.\r\n");
    let done = t.reply();
    assert!(
        done.starts_with("250 2.0.0 ") && done.ends_with(" Message accepted for delivery\r\n"),
        "{done}"
    );
    // The 250 came after the queue entry was complete.
    let id = r.only_id();
    assert!(done.contains(&id), "{done}");
    let qf = r.qf(&id);
    assert!(
        qf.contains("Received: from client.example ([127.0.0.1])"),
        "{qf}"
    );
    assert_eq!(t.cmd("RSET"), "250 2.0.0 Reset state\r\n");
    assert_eq!(
        t.cmd("QUIT"),
        "221 2.0.0 test.example closing connection\r\n"
    );
    assert_eq!(t.finish(), 0);
}

#[test]
fn bare_lf_or_cr_in_data_closes_with_421_and_queues_nothing() {
    for (body, text) in [
        (&b"x\n.\r\n"[..], "Bare linefeed (LF) not allowed"),
        (
            &b"a\r.\rb\r\n.\r\n"[..],
            "Bare carriage return (CR) not allowed",
        ),
    ] {
        let r = smtp_root("smtpd-bare", "");
        let mut t = Tcp::start(&r, "");
        t.reply();
        t.cmd("EHLO c");
        t.cmd("MAIL FROM:<a@remote.test>");
        t.cmd("RCPT TO:<bob@example.com>");
        t.cmd("DATA");
        t.send(b"Subject: smuggle\r\n\r\n");
        t.send(body);
        t.send(b"QUIT\r\n");
        assert_eq!(t.reply(), format!("421 4.5.0 {text}\r\n"));
        assert_eq!(t.finish(), 0);
        assert!(r.queued_ids().is_empty(), "{:?}", r.queue_files());
        assert!(
            r.queue_files().is_empty(),
            "no leftovers: {:?}",
            r.queue_files()
        );
    }
}

#[test]
fn a_client_that_leaves_before_the_final_dot_queues_nothing() {
    let r = smtp_root("smtpd-leave", "");
    let mut t = Tcp::start(&r, "");
    t.reply();
    t.cmd("EHLO c");
    t.cmd("MAIL FROM:<a@remote.test>");
    t.cmd("RCPT TO:<bob@example.com>");
    t.cmd("DATA");
    t.send(b"Subject: cut\r\n\r\nhalf a message\r\n");
    assert_eq!(t.finish(), 0);
    assert!(r.queue_files().is_empty(), "{:?}", r.queue_files());
}

#[test]
fn an_early_talker_is_refused() {
    let r = smtp_root("smtpd-early", "smtp_greet_pause = 500ms");
    let mut t = Tcp::start(&r, "");
    t.send(b"EHLO spam\r\nMAIL FROM:<a@b.example>\r\nQUIT\r\n");
    assert!(t.reply().starts_with("220 "));
    assert_eq!(t.reply(), "554 5.5.0 SMTP protocol error\r\n");
    assert_eq!(t.reply(), "550 5.0.0 Command rejected\r\n");
    assert!(t.reply().starts_with("221 2.0.0"));
    t.finish();
}

#[test]
fn garbage_a_huge_line_and_nul_end_the_session_cleanly() {
    // 10,000 garbage lines: the error limit closes the session.
    let r = smtp_root("smtpd-garbage", "");
    let mut t = Tcp::start(&r, "");
    t.reply();
    let mut junk = Vec::new();
    for i in 0..10_000 {
        junk.extend_from_slice(format!("GARBAGE{i} \x7f!!\r\n").as_bytes());
    }
    t.send(&junk);
    let mut all = String::new();
    loop {
        let rep = t.reply();
        if rep.is_empty() {
            break;
        }
        all.push_str(&rep);
    }
    assert!(
        all.contains("421 4.7.0 test.example Too many errors"),
        "{all}"
    );
    assert_eq!(all.lines().filter(|l| l.starts_with("500")).count(), 20);
    assert_eq!(t.finish(), 0);

    // A 1 MB line, then a NUL, then a normal command.
    let mut t = Tcp::start(&r, "");
    t.reply();
    let mut big = vec![b'A'; 1 << 20];
    big.extend_from_slice(b"\r\n");
    t.send(&big);
    assert_eq!(t.reply(), "500 5.5.2 Line too long\r\n");
    t.send(b"NO\0OP\r\n");
    assert!(t.reply().starts_with("500 5.5.1"));
    assert_eq!(t.cmd("NOOP"), "250 2.0.0 OK\r\n");
    assert!(t.cmd("QUIT").starts_with("221"));
    assert_eq!(t.finish(), 0);
}

#[test]
fn limits_size_and_recipients() {
    let r = smtp_root(
        "smtpd-limits",
        "message_size_limit = 1000\nsmtp_max_recipients = 2",
    );
    let mut t = Tcp::start(&r, "");
    t.reply();
    assert!(t.cmd("EHLO c").contains("250-SIZE 1000"));
    assert_eq!(
        t.cmd("MAIL FROM:<a@remote.test> SIZE=5000"),
        "552 5.2.3 Message size exceeds fixed maximum message size (1000)\r\n"
    );
    t.cmd("MAIL FROM:<a@remote.test>");
    t.cmd("RCPT TO:<bob@example.com>");
    t.cmd("RCPT TO:<sales@example.com>");
    assert_eq!(
        t.cmd("RCPT TO:<bob+x@example.com>"),
        "452 4.5.3 Too many recipients\r\n"
    );
    t.cmd("DATA");
    t.send(format!("Subject: big\r\n\r\n{}\r\n.\r\n", "y".repeat(3000)).as_bytes());
    assert_eq!(
        t.reply(),
        "552 5.2.3 Message exceeds maximum fixed size (1000)\r\n"
    );
    assert!(r.queue_files().is_empty(), "{:?}", r.queue_files());
    // The session goes on.
    assert_eq!(t.cmd("NOOP"), "250 2.0.0 OK\r\n");
    t.cmd("QUIT");
    t.finish();
}

#[test]
fn the_submission_port_needs_auth_with_the_pop3_password() {
    let r = smtp_root("smtpd-587", "");
    let mut t = Tcp::start(&r, "smtp_submission_ports = {port}");
    t.reply();
    t.cmd("EHLO laptop");
    assert_eq!(
        t.cmd("MAIL FROM:<bob@example.com>"),
        "530 5.7.0 Authentication required\r\n"
    );
    // "\0bob\0wrong"
    assert_eq!(
        t.cmd("AUTH PLAIN AGJvYgB3cm9uZw=="),
        "535 5.7.8 Authentication failed\r\n"
    );
    // AUTH LOGIN: bob / secret
    assert_eq!(t.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(t.cmd("Ym9i"), "334 UGFzc3dvcmQ6\r\n");
    assert_eq!(t.cmd("c2VjcmV0"), "235 2.0.0 OK Authenticated\r\n");
    assert_eq!(
        t.cmd("MAIL FROM:<bob@example.com>"),
        "250 2.1.0 <bob@example.com>... Sender ok\r\n"
    );
    assert_eq!(
        t.cmd("RCPT TO:<friend@far.example>"),
        "250 2.1.5 <friend@far.example>... Recipient ok\r\n"
    );
    t.cmd("DATA");
    t.send(b"Subject: from the laptop\r\n\r\nhi\r\n.\r\n");
    assert!(t.reply().starts_with("250 2.0.0"));
    t.cmd("QUIT");
    t.finish();
    let qf = r.qf(&r.only_id());
    assert!(qf.contains("with ESMTPA id"), "{qf}");
    assert!(qf.contains("(authenticated as bob)"), "{qf}");
    assert!(
        r.log()
            .contains("relaying to <friend@far.example> allowed: authenticated as bob")
    );
}

#[test]
fn three_auth_failures_close_the_connection() {
    let r = smtp_root("smtpd-authfail", "");
    let mut t = Tcp::start(&r, "");
    t.reply();
    t.cmd("EHLO c");
    // "\0bob\0nope", then "\0nobody\0x": the same reply for both.
    assert_eq!(
        t.cmd("AUTH PLAIN AGJvYgBub3Bl"),
        "535 5.7.8 Authentication failed\r\n"
    );
    assert_eq!(
        t.cmd("AUTH PLAIN AG5vYm9keQB4"),
        "535 5.7.8 Authentication failed\r\n"
    );
    assert_eq!(
        t.cmd("AUTH PLAIN AGJvYgBub3Bl"),
        "535 5.7.8 Authentication failed\r\n"
    );
    assert!(
        t.reply()
            .starts_with("421 4.7.0 test.example Too many authentication failures")
    );
    assert_eq!(t.reply(), "", "closed");
    assert_eq!(t.finish(), 0);
}

/// The open-relay battery, at the policy level, for a client that may not
/// relay (non-loopback clients are exercised over the network in compat).
#[test]
fn the_relay_battery_relays_nothing() {
    let r = smtp_root("smtpd-relay", "");
    let cfg = Config::load(Paths::under(&r.dir), None).unwrap();
    let policy = Policy::load(&cfg, 0, false);
    let tricks = [
        "user@remote.test",
        "USER@REMOTE.TEST",
        "user@Remote.Test.",
        "user%remote.test@example.com",
        "user%remote.test@EXAMPLE.COM",
        "user%remote.test%example.com@example.com",
        "\"user@remote.test\"@example.com",
        "\"user%remote.test\"@example.com",
        "@example.com:user@remote.test",
        "@example.com,@other.test:user@remote.test",
        "user@remote.test@example.com",
        "remote.test!user",
        "remote.test!user@example.com",
        "REMOTE.TEST!USER@EXAMPLE.COM",
        "user@[192.0.2.99]",
        "user@[IPv6:2001:db8::1]",
        "user@[ipv6:2001:DB8::1]",
        "user%[192.0.2.99]@example.com",
        "user%[IPv6:2001:db8::1]@example.com",
        "sales%remote.test@example.com",
    ];
    for t in tricks {
        match policy.check_recipient(t, false, None) {
            Ok(a) => assert!(a.local, "{t} would be relayed"),
            Err(reply) => assert!(reply.is_permanent(), "{t}: {reply}"),
        }
    }
    // What may pass, passes.
    assert!(
        policy
            .check_recipient("bob@example.com", false, None)
            .is_ok()
    );
    assert!(
        policy
            .check_recipient("BOB@EXAMPLE.COM", false, None)
            .is_ok()
    );
    assert!(
        policy
            .check_recipient("bob%example.com@example.com", false, None)
            .is_ok()
    );
    assert!(
        policy
            .check_recipient("user@remote.test", true, None)
            .is_ok()
    );
    // Nothing that relays is accepted as local either.
    let e = policy
        .check_recipient("user@remote.test", false, None)
        .unwrap_err();
    assert_eq!(
        e.one_line(),
        "550 5.7.1 <user@remote.test>... Relaying denied"
    );
}
