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
/// A root with domain example.com, user bob (password "secret"), an
/// alias, virtusertable errors and a quota'd full mailbox.
fn smtp_root(name: &str, extra_conf: &str) -> Root {
    let r = Root::new(name);
    let u = login_uid();
    r.write(
        "etc/passwd",
        &format!(
            "root:x:0:0:root:/root:/bin/sh\nbob:x:{u}:{u}:Bob:/home/bob:/bin/sh\nfull:x:{u}:{u}:Full:/home/full:/bin/sh\n"
        ),
    );
    r.write("etc/shadow", &shadow_with_secret(&["bob"]));
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
        Tcp::start_on(r, conf, TcpListener::bind("127.0.0.1:0").unwrap(), &[])
    }

    /// Start `sendmail -bs ARGS` on a connection to `l` from 127.0.0.1.
    fn start_on(r: &Root, conf: &str, l: TcpListener, args: &[&str]) -> Tcp {
        let port = l.local_addr().unwrap().port();
        if !conf.is_empty() {
            r.append(
                "etc/mail/mailroom.conf",
                &format!("{}\n", conf.replace("{port}", &port.to_string())),
            );
        }
        let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (server, _) = l.accept().unwrap();
        let fd: OwnedFd = server.into();
        let fd2 = fd.try_clone().unwrap();
        let child = r
            .cmd("sendmail")
            .arg("-bs")
            .args(args)
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

/// A `[::]` socket that also takes IPv4 clients (IPV6_V6ONLY off), as
/// xinetd, inetutils-inetd's `tcp6` and systemd's `ListenStream=` listen:
/// an IPv4 client arrives as `::ffff:127.0.0.1`.
fn dual_stack_listener() -> TcpListener {
    use nix::sys::socket::{self as ns, sockopt};
    use std::os::fd::AsRawFd;
    let fd = ns::socket(
        ns::AddressFamily::Inet6,
        ns::SockType::Stream,
        ns::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    ns::setsockopt(&fd, sockopt::Ipv6V6Only, &false).unwrap();
    let any = ns::SockaddrIn6::from(std::net::SocketAddrV6::new(
        std::net::Ipv6Addr::UNSPECIFIED,
        0,
        0,
        0,
    ));
    ns::bind(fd.as_raw_fd(), &any).unwrap();
    ns::listen(&fd, ns::Backlog::new(4).unwrap()).unwrap();
    TcpListener::from(fd)
}

#[test]
fn an_ipv4_client_on_a_dual_stack_socket_is_judged_and_named_as_ipv4() {
    let r = smtp_root("smtpd-mapped", "smtp_max_connections_per_ip = 1");
    std::fs::create_dir_all(r.path("var/spool/mailroom")).unwrap();
    let mut t = Tcp::start_on(&r, "", dual_stack_listener(), &[]);
    t.reply();
    let ehlo = t.cmd("EHLO laptop");
    // ::ffff:127.0.0.1 is the loopback client 127.0.0.1: named so, and
    // trusted so (AUTH offered without TLS, relaying allowed).
    assert!(
        ehlo.starts_with("250-test.example Hello [127.0.0.1], pleased to meet you\r\n"),
        "{ehlo}"
    );
    assert!(ehlo.contains("250-AUTH PLAIN LOGIN\r\n"), "{ehlo}");
    // Its one connection slot is the one an IPv4 socket would take.
    let mut second = Tcp::start(&r, "");
    assert!(
        second
            .reply()
            .starts_with("421 4.7.0 test.example Too many connections from [127.0.0.1]"),
    );
    second.finish();
    t.cmd("MAIL FROM:<bob@example.com>");
    assert_eq!(
        t.cmd("RCPT TO:<friend@far.example>"),
        "250 2.1.5 <friend@far.example>... Recipient ok\r\n"
    );
    t.cmd("DATA");
    t.send(b"Subject: mapped\r\n\r\nhi\r\n.\r\n");
    assert!(t.reply().starts_with("250 2.0.0"));
    t.cmd("QUIT");
    t.finish();
    let qf = r.qf(&r.only_id());
    assert!(qf.contains("Received: from laptop ([127.0.0.1])"), "{qf}");
    let log = r.log();
    assert!(
        log.contains(
            "relay=[127.0.0.1]: relaying to <friend@far.example> allowed: loopback client"
        ),
        "{log}"
    );
    assert!(!log.contains("ffff"), "{log}");
}

/// An SMTP client in TLS from the first byte (port 465).
struct TlsClient {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl TlsClient {
    fn connect(sock: TcpStream) -> TlsClient {
        let name = rustls::pki_types::ServerName::try_from("test.example").unwrap();
        let conn =
            rustls::ClientConnection::new(mailroom::tls::client_opportunistic(), name).unwrap();
        TlsClient {
            tls: rustls::StreamOwned::new(conn, sock),
            buf: Vec::new(),
        }
    }

    fn reply(&mut self) -> String {
        let mut out = String::new();
        loop {
            while !self.buf.contains(&b'\n') {
                let mut chunk = [0u8; 4096];
                match self.tls.read(&mut chunk) {
                    Ok(0) | Err(_) => return out,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
            let i = self.buf.iter().position(|&b| b == b'\n').unwrap() + 1;
            let line: Vec<u8> = self.buf.drain(..i).collect();
            let line = String::from_utf8_lossy(&line).into_owned();
            out.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return out;
            }
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        self.tls
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }
}

/// `sendmail -bs --tls` on a loopback connection: the server and the
/// client's socket.
fn start_implicit_tls(r: &Root) -> (Child, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let sock = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (server, _) = l.accept().unwrap();
    let fd: OwnedFd = server.into();
    let fd2 = fd.try_clone().unwrap();
    let child = r
        .cmd("sendmail")
        .args(["-bs", "--tls"])
        .stdin(Stdio::from(fd))
        .stdout(Stdio::from(fd2))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    (child, sock)
}

#[test]
fn implicit_tls_is_submission_inside_tls_from_the_first_byte() {
    let r = smtp_root("smtpd-465", "");
    install_certificate(&r);
    let (mut child, sock) = start_implicit_tls(&r);
    let mut c = TlsClient::connect(sock);
    assert!(
        c.reply().starts_with("220 test.example ESMTP mailroom "),
        "greeting inside TLS"
    );
    let ehlo = c.cmd("EHLO laptop");
    assert!(ehlo.contains("250-AUTH PLAIN LOGIN\r\n"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "already in TLS: {ehlo}");
    // Submission: even a loopback client logs in first (RFC 8314 §3.3).
    assert_eq!(
        c.cmd("MAIL FROM:<bob@example.com>"),
        "530 5.7.0 Authentication required\r\n"
    );
    assert_eq!(c.cmd("STARTTLS"), "503 5.5.0 TLS already active\r\n");
    // "\0bob\0secret"
    assert_eq!(
        c.cmd("AUTH PLAIN AGJvYgBzZWNyZXQ="),
        "235 2.0.0 OK Authenticated\r\n"
    );
    c.cmd("MAIL FROM:<bob@example.com>");
    assert_eq!(
        c.cmd("RCPT TO:<friend@far.example>"),
        "250 2.1.5 <friend@far.example>... Recipient ok\r\n"
    );
    assert_eq!(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.tls
        .write_all(b"Subject: over 465\r\n\r\nhi\r\n.\r\n")
        .unwrap();
    assert!(c.reply().starts_with("250 2.0.0 "));
    assert_eq!(
        c.cmd("QUIT"),
        "221 2.0.0 test.example closing connection\r\n"
    );
    drop(c);
    assert!(child.wait().unwrap().success());
    let qf = r.qf(&r.only_id());
    assert!(qf.contains("with ESMTPSA id"), "{qf}");
    assert!(qf.contains("(authenticated as bob)"), "{qf}");
}

#[test]
fn implicit_tls_never_answers_in_plain_text() {
    // A plain-text client waits for a greeting that never comes; what it
    // sends ends the handshake, and the connection, unanswered.
    let r = smtp_root("smtpd-465-plain", "");
    install_certificate(&r);
    let (mut child, mut sock) = start_implicit_tls(&r);
    sock.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    assert!(
        sock.read(&mut buf).is_err(),
        "nothing may be said before the client's TLS hello"
    );
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    sock.write_all(b"EHLO plain.example\r\n").unwrap();
    while let Ok(n) = sock.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(!text.contains("220") && !text.contains("ESMTP"), "{text:?}");
    // At most a TLS alert record (content type 21).
    assert!(got.is_empty() || got[0] == 21, "{got:?}");
    child.wait().unwrap();
    assert!(
        r.log().contains("TLS handshake with [127.0.0.1] failed"),
        "{}",
        r.log()
    );

    // Without a certificate: closed at once, unanswered, and logged.
    let r = smtp_root("smtpd-465-nocert", "");
    let (mut child, mut sock) = start_implicit_tls(&r);
    let mut rest = Vec::new();
    sock.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"", "nothing in plain text");
    assert_eq!(child.wait().unwrap().code(), Some(78));
    let needs = format!(
        "needs {} and {}: connection from [127.0.0.1] closed",
        r.path("etc/mail/tls/mail.crt").display(),
        r.path("etc/mail/tls/mail.key").display()
    );
    assert!(
        r.log().contains("implicit TLS (port ") && r.log().contains(&needs),
        "{}",
        r.log()
    );
}

#[test]
fn implicit_tls_refusals_are_said_inside_tls() {
    let r = smtp_root("smtpd-465-reject", "");
    install_certificate(&r);
    r.write("etc/mail/access", "Connect:127.0.0.1 REJECT\n");
    let (mut child, sock) = start_implicit_tls(&r);
    let mut c = TlsClient::connect(sock);
    assert_eq!(c.reply(), "550 5.7.1 Access denied\r\n");
    assert_eq!(c.reply(), "", "closed");
    drop(c);
    child.wait().unwrap();
}

#[test]
fn tls_is_only_for_a_network_connection_and_only_with_bs() {
    let r = smtp_root("smtpd-tls-args", "");
    let out = r.sendmail(&["-bs", "--tls"], b"QUIT\r\n");
    assert_eq!(code(&out), 64);
    assert_eq!(
        stderr(&out),
        "sendmail: -bs --tls: standard input is not a TCP connection; --tls is for port 465: inetd or a systemd socket starts 'sendmail -bs --tls' for each connection\n"
    );
    assert_eq!(stdout(&out), "", "nothing served on a pipe");
    let out = r.sendmail(&["-t", "--tls"], b"To: bob\n\nhi\n");
    assert_eq!(code(&out), 64);
    assert_eq!(
        stderr(&out),
        "sendmail: --tls is only for -bs (SMTP submission with implicit TLS); port 465 runs 'sendmail -bs --tls' from inetd or a systemd socket\n"
    );
    assert!(r.queue_files().is_empty());
}
