//! `make bench` panel: ms per page request of the web panel's front end
//! (login, the mailbox list of a domain with 1,000 mailboxes, adding a
//! mailbox), the way each way in runs it:
//!
//! * CGI: the built `panel` started once per request with a web server's
//!   environment and the form on standard input, as Apache's mod_cgi or
//!   fcgiwrap start it;
//! * the own port: `panel --inetd` on a loopback socket in TLS as inetd
//!   starts it per connection; the connection (handshake and first
//!   request) and then each request on it kept alive.
//!
//! The helper is a stand-in until the real one is measured here: a shell
//! script answering each request from a file (the real helper's cost is
//! its own; "helper alone" is the stand-in's start-up, in every figure
//! once per helper run).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{Root, median_ms, sequential};

const RUNS: usize = 200;
const MAILBOXES: usize = 1_000;
const SESSION: &str = "answer=session&session=S1&csrf=C1&login=postmaster%40bench.example&role=domain-admin&domain=bench.example&expires=0\n";
const PRE: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn panel_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_panel"))
}

/// The stand-in helper and its answers in `root`.
fn fake_helper(root: &Root) -> PathBuf {
    let dir = root.dir.join("answers");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("whoami"), SESSION).unwrap();
    std::fs::write(dir.join("login"), SESSION).unwrap();
    std::fs::write(
        dir.join("mailbox.add"),
        "answer=done&note=added+mailbox+new%40bench.example\n",
    )
    .unwrap();
    let mut show = String::from("answer=data\n");
    for i in 0..MAILBOXES {
        show.push_str(&format!(
            "kind=mailbox&address=user{i}%40bench.example&used={}&quota=104857600&stamp=s{i}\n",
            i * 4096
        ));
    }
    std::fs::write(dir.join("domain.show"), show).unwrap();
    let helper = root.dir.join("panel-helper");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nIFS= read -r line\nop=${{line%%&*}}; op=${{op#op=}}\nexec cat {}/$op\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    helper
}

/// A page request: method, path, cookie, form.
struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    cookie: String,
    form: String,
    status: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "login",
            method: "POST",
            path: "/login",
            cookie: format!("__Host-mailroom-pre={PRE}"),
            form: format!("csrf={PRE}&name=postmaster%40bench.example&password=secret"),
            status: "303",
        },
        Case {
            name: "mailbox list (1,000)",
            method: "GET",
            path: "/d/bench.example",
            cookie: "__Host-mailroom=S1".into(),
            form: String::new(),
            status: "200",
        },
        Case {
            name: "add mailbox",
            method: "POST",
            path: "/do/mailbox.add",
            cookie: "__Host-mailroom=S1".into(),
            form: "csrf=C1&address=new%40bench.example&password=secret&quota=".into(),
            status: "303",
        },
    ]
}

fn cgi_command(root: &Root, helper: &Path, c: &Case) -> Command {
    let mut cmd = Command::new(panel_exe());
    cmd.env_clear()
        .env("MAILROOM_ROOT", &root.dir)
        .env("MAILROOM_PANEL_HELPER", helper)
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", c.method)
        .env("SCRIPT_NAME", "/mail")
        .env("PATH_INFO", c.path)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("HTTP_HOST", "bench.example")
        .env("HTTPS", "on")
        .env("HTTP_COOKIE", &c.cookie);
    if c.method == "POST" {
        cmd.env("CONTENT_TYPE", "application/x-www-form-urlencoded")
            .env("CONTENT_LENGTH", c.form.len().to_string());
    }
    cmd
}

/// A self-signed certificate for the own port (openssl); false without it.
fn certificate(root: &Root) -> bool {
    let dir = root.dir.join("etc/mail/tls");
    std::fs::create_dir_all(&dir).unwrap();
    Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=bench.example", "-keyout"])
        .arg(dir.join("mail.key"))
        .arg("-out")
        .arg(dir.join("mail.crt"))
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One response (head and Content-Length body) from `r`.
fn response(r: &mut impl Read, buf: &mut Vec<u8>) -> String {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                buf.drain(..end + 4 + len);
                return head;
            }
        }
        let mut chunk = [0u8; 65536];
        match r.read(&mut chunk) {
            Ok(0) | Err(_) => panic!("panel --inetd closed the connection"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn http_request(c: &Case) -> Vec<u8> {
    let mut r = format!(
        "{} {} HTTP/1.1\r\nHost: bench.example\r\nCookie: {}\r\n",
        c.method, c.path, c.cookie
    );
    if c.method == "POST" {
        r.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            c.form.len()
        ));
    }
    r.push_str("\r\n");
    r.push_str(&c.form);
    r.into_bytes()
}

/// `panel --inetd` on a fresh loopback connection in TLS: the (ms to the
/// first response, ms per further request) for `c`.
fn inetd(root: &Root, helper: &Path, c: &Case) -> (f64, f64) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let t = Instant::now();
    let sock = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (server, _) = l.accept().unwrap();
    let fd: OwnedFd = server.into();
    let fd2 = fd.try_clone().unwrap();
    let mut child = Command::new(panel_exe())
        .arg("--inetd")
        .env_clear()
        .env("MAILROOM_ROOT", &root.dir)
        .env("MAILROOM_PANEL_HELPER", helper)
        .stdin(Stdio::from(fd))
        .stdout(Stdio::from(fd2))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("bench.example").unwrap();
    let conn = rustls::ClientConnection::new(mailroom::tls::client_opportunistic(), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut buf = Vec::new();
    let req = http_request(c);
    tls.write_all(&req).unwrap();
    let head = response(&mut tls, &mut buf);
    assert!(
        head.starts_with(&format!("HTTP/1.1 {}", c.status)),
        "{head}"
    );
    let first = t.elapsed().as_secs_f64() * 1000.0;
    let mut times = Vec::new();
    // Fewer than the requests one connection may carry.
    for _ in 0..RUNS / 2 {
        let t = Instant::now();
        tls.write_all(&req).unwrap();
        let head = response(&mut tls, &mut buf);
        assert!(
            head.starts_with(&format!("HTTP/1.1 {}", c.status)),
            "{head}"
        );
        times.push(t.elapsed());
    }
    drop(tls);
    let _ = child.wait();
    (first, median_ms(times))
}

pub fn bench() {
    println!("== web panel: ms per page request (issue 22) ==");
    let root = Root::new("panel");
    std::fs::write(
        root.dir.join("etc/mail/mailroom.conf"),
        "hostname = bench.example\nlog = /var/log/mail.log\npanel_user = nobody\n",
    )
    .unwrap();
    let helper = fake_helper(&root);
    let (alone, _) = sequential(RUNS, b"op=whoami&session=S1\n", || {
        let mut c = Command::new(&helper);
        c.env_clear();
        c
    });
    println!(
        "  helper: a stand-in shell script answering from files, {alone:.2} ms a run alone \
         (runs per request: login 1, the others 2: whoami, then the read or change)"
    );
    let tls = certificate(&root);
    for c in cases() {
        // Once with its output checked, then timed.
        let out = cgi_command(&root, &helper, &c)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut ch| {
                ch.stdin.take().unwrap().write_all(c.form.as_bytes())?;
                ch.wait_with_output()
            })
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with(&format!("Status: {}", c.status)),
            "{}: {text}",
            c.name
        );
        let (cgi, _) = sequential(RUNS, c.form.as_bytes(), || cgi_command(&root, &helper, &c));
        let own = if tls {
            let (first, kept) = inetd(&root, &helper, &c);
            format!("own port: {first:6.2} ms with the TLS connection, {kept:5.2} ms kept alive")
        } else {
            "own port: not measured (no openssl for a certificate)".to_string()
        };
        println!("  {:<22} CGI {cgi:6.2} ms;  {own}", c.name);
    }
    println!("  (medians of {RUNS}; the machine may be shared: figures are noisy)");
    println!();
}
