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
//! Each request runs the real `panel-helper` (the built one, not set-uid:
//! the bench's private root), as the installed panel does: the session
//! check, then the read or change, with the login door, the change lock
//! and journal, and a domain of 1,000 virtual mailboxes made by
//! `mailroom import`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{Root, median_ms, sequential};

const RUNS: usize = 100;
const MAILBOXES: usize = 1_000;
const PRE: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The domain admin's password (`postmaster@bench.example`).
const PASSWORD: &str = "bench-secret-1";

/// The user the panel's programs run as here: nobody when the bench runs
/// as root (the front end refuses to serve as root, and a helper that is
/// not set-uid must own the private root it writes), else the caller.
const NOBODY: u32 = 65534;

fn as_bench_user(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    if nix::unistd::geteuid().is_root() {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    cmd
}

fn panel_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_panel"))
}

fn helper_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_panel-helper"))
}

/// The domain bench.example with its postmaster and 1,000 mailboxes, made
/// by `mailroom import` (one change, as an admin would).
fn domain(root: &Root) {
    let etc = root.dir.join("etc");
    std::fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\nvmail:x:5000:8:virtual mail:/var/mail/virtual:/usr/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("shadow"),
        "root:*:19000:0:99999:7:::\nvmail:*:19000:0:99999:7:::\n",
    )
    .unwrap();
    std::fs::write(etc.join("group"), "root:x:0:\nmail:x:8:\n").unwrap();
    let mut lines = format!("domain bench.example\npostmaster@bench.example {PASSWORD}\n");
    for i in 0..MAILBOXES {
        lines.push_str(&format!("user{i}@bench.example pw-{i}-secret\n"));
    }
    let file = root.dir.join("import.txt");
    std::fs::write(&file, lines).unwrap();
    if nix::unistd::geteuid().is_root() {
        let chown = Command::new("chown")
            .args(["-R", &format!("{NOBODY}:{NOBODY}")])
            .arg(&root.dir)
            .status();
        assert!(chown.is_ok_and(|s| s.success()), "chown the bench root");
    }
    let out = as_bench_user(&mut Command::new(env!("CARGO_BIN_EXE_mailroom")))
        .env("MAILROOM_ROOT", &root.dir)
        .args(["import", "--virtual"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mailroom import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One request to the helper, as the front end makes it.
fn ask(root: &Root, line: &str) -> mailroom::panel::protocol::Answer {
    let mut child = as_bench_user(&mut Command::new(helper_exe()))
        .env_clear()
        .env("MAILROOM_ROOT", &root.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(line.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    mailroom::panel::protocol::Answer::decode(&String::from_utf8_lossy(&out.stdout))
        .expect("an answer from panel-helper")
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

/// The three requests, with a session of the domain's admin (`{i}` in a
/// form: a number new for each request, so each adds a new mailbox).
fn cases(session: &str, csrf: &str) -> Vec<Case> {
    vec![
        Case {
            name: "login",
            method: "POST",
            path: "/login",
            cookie: format!("__Host-mailroom-pre={PRE}"),
            form: format!("csrf={PRE}&name=postmaster%40bench.example&password={PASSWORD}"),
            status: "303",
        },
        Case {
            name: "mailbox list (1,000)",
            method: "GET",
            path: "/d/bench.example",
            cookie: format!("__Host-mailroom={session}"),
            form: String::new(),
            status: "200",
        },
        Case {
            name: "add mailbox",
            method: "POST",
            path: "/do/mailbox.add",
            cookie: format!("__Host-mailroom={session}"),
            form: format!(
                "csrf={csrf}&seen=none&address=new{{i}}%40bench.example&password=new-pw-secret&quota="
            ),
            status: "303",
        },
    ]
}

/// `form` with `{i}` made a number no request used before.
fn numbered(form: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    form.replace("{i}", &NEXT.fetch_add(1, Ordering::Relaxed).to_string())
}

fn cgi_command(root: &Root, c: &Case, form: &str) -> Command {
    let mut cmd = Command::new(panel_exe());
    as_bench_user(&mut cmd);
    cmd.env_clear()
        .env("MAILROOM_ROOT", &root.dir)
        .env("MAILROOM_PANEL_HELPER", helper_exe())
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
            .env("CONTENT_LENGTH", form.len().to_string());
    }
    cmd
}

/// One CGI run of `c`: its output checked.
fn cgi_once(root: &Root, c: &Case) {
    let form = numbered(&c.form);
    let out = cgi_command(root, c, &form)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            ch.stdin.take().unwrap().write_all(form.as_bytes())?;
            ch.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("Status: {}", c.status)),
        "{}: {text}",
        c.name
    );
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
    let form = numbered(&c.form);
    let mut r = format!(
        "{} {} HTTP/1.1\r\nHost: bench.example\r\nCookie: {}\r\n",
        c.method, c.path, c.cookie
    );
    if c.method == "POST" {
        r.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            form.len()
        ));
    }
    r.push_str("\r\n");
    r.push_str(&form);
    r.into_bytes()
}

/// `panel --inetd` on a fresh loopback connection in TLS: the (ms to the
/// first response, ms per further request) for `c`.
fn inetd(root: &Root, c: &Case) -> (f64, f64) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let t = Instant::now();
    let sock = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (server, _) = l.accept().unwrap();
    let fd: OwnedFd = server.into();
    let fd2 = fd.try_clone().unwrap();
    let mut child = as_bench_user(&mut Command::new(panel_exe()))
        .arg("--inetd")
        .env_clear()
        .env("MAILROOM_ROOT", &root.dir)
        .env("MAILROOM_PANEL_HELPER", helper_exe())
        .stdin(Stdio::from(fd))
        .stdout(Stdio::from(fd2))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("bench.example").unwrap();
    let conn = rustls::ClientConnection::new(mailroom::tls::client_opportunistic(), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut buf = Vec::new();
    if let Err(e) = tls.write_all(&http_request(c)) {
        let log = std::fs::read_to_string(root.dir.join("var/log/mail.log")).unwrap_or_default();
        panic!("panel --inetd: {e}; its log:\n{log}");
    }
    let head = response(&mut tls, &mut buf);
    assert!(
        head.starts_with(&format!("HTTP/1.1 {}", c.status)),
        "{head}"
    );
    let first = t.elapsed().as_secs_f64() * 1000.0;
    let mut times = Vec::new();
    // Fewer than the requests one connection may carry.
    for _ in 0..RUNS / 2 {
        let req = http_request(c);
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
    // Installed, the own port's front end drops to panel_user and the
    // helper is set-uid root; here both run as the owner of the private
    // root (as_bench_user): the same work.
    std::fs::write(
        root.dir.join("etc/mail/mailroom.conf"),
        "hostname = bench.example\nlog = /var/log/mail.log\nmin_free_space = 0\n\
         pop3_auth_fail_delay = 0\n",
    )
    .unwrap();
    let tls = certificate(&root);
    let t = Instant::now();
    domain(&root);
    println!(
        "  bench.example: {MAILBOXES} virtual mailboxes by mailroom import ({:.1} s)",
        t.elapsed().as_secs_f64()
    );
    let (session, csrf) = match ask(
        &root,
        &format!("op=login&name=postmaster%40bench.example&password={PASSWORD}&from=127.0.0.1\n"),
    ) {
        mailroom::panel::protocol::Answer::Session { session, csrf, .. } => (session, csrf),
        other => panic!("login: {other:?}"),
    };
    let whoami = format!("op=whoami&session={session}&from=127.0.0.1\n");
    let (alone, _) = sequential(RUNS, whoami.as_bytes(), || {
        let mut c = Command::new(helper_exe());
        as_bench_user(&mut c)
            .env_clear()
            .env("MAILROOM_ROOT", &root.dir);
        c
    });
    println!(
        "  panel-helper alone: {alone:.2} ms a run (whoami); a page runs it once (login) \
         or twice (whoami, then the read or change)"
    );
    for c in cases(&session, &csrf) {
        cgi_once(&root, &c);
        let times: Vec<std::time::Duration> = (0..RUNS)
            .map(|_| {
                let form = numbered(&c.form);
                super::timed(&mut cgi_command(&root, &c, &form), form.as_bytes())
            })
            .collect();
        let cgi = median_ms(times);
        let own = if tls {
            let (first, kept) = inetd(&root, &c);
            format!("own port: {first:6.2} ms with the TLS connection, {kept:5.2} ms kept alive")
        } else {
            "own port: not measured (no openssl for a certificate)".to_string()
        };
        println!("  {:<22} CGI {cgi:6.2} ms;  {own}", c.name);
    }
    println!("  (medians of {RUNS}; the machine may be shared: figures are noisy)");
    println!();
}
