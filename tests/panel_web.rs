//! The web panel's front end run as a web server runs it: the built
//! `panel` program as a CGI script (environment and standard input in,
//! CGI header lines and a page out), with a fake root helper (a shell
//! script that records each request line and answers from files).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Root, bin, install_certificate};

struct Panel {
    root: Root,
    helper: PathBuf,
}

/// What the panel printed.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "Set-Cookie")
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The security headers every response must carry.
    fn assert_secure(&self) {
        for (name, value) in [
            (
                "Content-Security-Policy",
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
            ("X-Frame-Options", "DENY"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "same-origin"),
            ("Cache-Control", "no-store"),
        ] {
            assert_eq!(self.header(name), Some(value), "{name} in {self:?}");
        }
    }
}

const SESSION: &str = "answer=session&session=S1&csrf=C1&login=postmaster%40shop.example&role=domain-admin&domain=shop.example&expires=0";

impl Panel {
    fn new(test: &str) -> Panel {
        let root = Root::new(test);
        let dir = root.dir.display().to_string();
        let helper = root.path("panel-helper");
        // Writable for the user `panel --inetd` becomes when run as root.
        std::fs::create_dir_all(root.path("log")).unwrap();
        std::fs::set_permissions(root.path("log"), std::fs::Permissions::from_mode(0o777)).unwrap();
        // Answers come from answers/OP; a request without session S1
        // (other than a login) is answered nosession, as the helper would.
        std::fs::write(
            &helper,
            format!(
                "#!/bin/sh\n\
                 IFS= read -r line\n\
                 printf '%s\\n' \"$line\" >> {dir}/log/requests\n\
                 id -u > {dir}/log/uid\n\
                 op=${{line%%&*}}; op=${{op#op=}}\n\
                 case \"$line\" in op=login\\&*|*\\&session=S1\\&*) ;; *) echo answer=nosession; exit 0;; esac\n\
                 cat {dir}/answers/$op 2>/dev/null || echo answer=missing\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let p = Panel { root, helper };
        p.answer("whoami", SESSION);
        p.answer("login", SESSION);
        p
    }

    fn answer(&self, op: &str, text: &str) {
        self.root
            .write(&format!("answers/{op}"), &format!("{text}\n"));
    }

    /// The ops asked so far, in order.
    fn asked(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|l| l.split('&').next().unwrap_or("")["op=".len()..].to_string())
            .collect()
    }

    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.root.path("log/requests"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Run the panel as CGI with `vars` on top of a GET's.
    fn cgi(&self, vars: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut cmd = Command::new(bin("panel"));
        cmd.env_clear()
            .env("MAILROOM_ROOT", &self.root.dir)
            .env("MAILROOM_PANEL_HELPER", &self.helper)
            .env("GATEWAY_INTERFACE", "CGI/1.1")
            .env("SERVER_PROTOCOL", "HTTP/1.1")
            .env("REQUEST_METHOD", "GET")
            .env("SCRIPT_NAME", "/mail")
            .env("REMOTE_ADDR", "192.0.2.7")
            .env("HTTP_HOST", "panel.example")
            .env("HTTPS", "on");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(body);
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("a CGI head");
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap();
        let status: u16 = status
            .strip_prefix("Status: ")
            .and_then(|s| s[..3].parse().ok())
            .unwrap_or_else(|| panic!("status line {status:?}"));
        let headers = lines
            .map(|l| {
                let (k, v) = l.split_once(": ").unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        Reply {
            status,
            headers,
            body: body.to_string(),
        }
    }

    fn get(&self, path: &str, cookie: &str) -> Reply {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        self.cgi(
            &[
                ("PATH_INFO", path),
                ("QUERY_STRING", query),
                ("HTTP_COOKIE", cookie),
            ],
            b"",
        )
    }

    fn post(&self, path: &str, cookie: &str, form: &str) -> Reply {
        let len = form.len().to_string();
        self.cgi(
            &[
                ("REQUEST_METHOD", "POST"),
                ("PATH_INFO", path),
                ("HTTP_COOKIE", cookie),
                ("CONTENT_TYPE", "application/x-www-form-urlencoded"),
                ("CONTENT_LENGTH", &len),
            ],
            form.as_bytes(),
        )
    }
}

#[test]
fn a_domain_admin_logs_in_and_adds_a_mailbox() {
    let p = Panel::new("panel-login");
    let r = p.get("", "");
    assert_eq!(r.status, 200);
    r.assert_secure();
    assert!(
        r.body
            .contains("<form id=\"login\" method=\"post\" action=\"/mail/login\"")
    );
    let pre = r.cookies()[0]
        .strip_prefix("__Host-mailroom-pre=")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    // The login: a new session from the helper, the pre cookie cleared.
    let r = p.post(
        "/login",
        &format!("__Host-mailroom-pre={pre}"),
        &format!("csrf={pre}&name=postmaster%40shop.example&password=pw"),
    );
    assert_eq!((r.status, r.header("Location")), (303, Some("/mail/home")));
    r.assert_secure();
    let cookies = r.cookies();
    assert!(
        cookies[0].starts_with("__Host-mailroom=S1; ") && cookies[0].contains("HttpOnly"),
        "{cookies:?}"
    );
    assert!(
        cookies[1].starts_with("__Host-mailroom-pre=;"),
        "{cookies:?}"
    );
    let login = &p.requests()[0];
    assert!(
        login.starts_with("op=login&from=192.0.2.7&name=postmaster%40shop.example&password=pw"),
        "{login}"
    );
    // Home is the domain; its page lists the mailboxes.
    let r = p.get("/home", "__Host-mailroom=S1");
    assert_eq!(r.header("Location"), Some("/mail/d/shop.example"));
    p.answer(
        "domain.show",
        "answer=data\nkind=mailbox&address=a%40shop.example&used=512&quota=1024&stamp=X1",
    );
    let r = p.get("/d/shop.example", "__Host-mailroom=S1");
    assert_eq!(r.status, 200);
    r.assert_secure();
    assert!(
        r.body
            .contains("<form id=\"mailbox-add\" method=\"post\" action=\"/mail/do/mailbox.add\">")
    );
    assert!(
        r.body
            .contains("href=\"/mail/d/shop.example/m/a@shop.example\"")
    );
    assert!(
        r.body
            .contains("<meter min=\"0\" max=\"1024\" value=\"512\"")
    );
    // The change.
    p.answer(
        "mailbox.add",
        "answer=done&note=added+mailbox+b%40shop.example",
    );
    let r = p.post(
        "/do/mailbox.add",
        "__Host-mailroom=S1",
        "csrf=C1&address=b%40shop.example&password=secret&quota=200M",
    );
    assert_eq!(
        (r.status, r.header("Location")),
        (303, Some("/mail/d/shop.example?done=mailbox.add"))
    );
    let add = p.requests().pop().unwrap();
    assert_eq!(
        add,
        "op=mailbox.add&session=S1&csrf=C1&from=192.0.2.7&address=b%40shop.example&password=secret&quota=200M"
    );
}

#[test]
fn a_change_without_the_sessions_token_asks_the_helper_for_nothing() {
    let p = Panel::new("panel-csrf");
    p.answer("mailbox.remove", "answer=done");
    let cookie = "__Host-mailroom=S1";
    for form in [
        "address=a%40shop.example",
        "csrf=C2&address=a%40shop.example",
    ] {
        let r = p.post("/do/mailbox.remove", cookie, form);
        assert_eq!(r.status, 403, "{form}");
        r.assert_secure();
    }
    let r = p.cgi(
        &[
            ("REQUEST_METHOD", "POST"),
            ("PATH_INFO", "/do/mailbox.remove"),
            ("HTTP_COOKIE", cookie),
            ("HTTP_SEC_FETCH_SITE", "cross-site"),
            ("CONTENT_TYPE", "application/x-www-form-urlencoded"),
            ("CONTENT_LENGTH", "7"),
        ],
        b"csrf=C1",
    );
    assert_eq!(r.status, 403);
    assert!(
        !p.asked().contains(&"mailbox.remove".to_string()),
        "{:?}",
        p.asked()
    );
    // A session the helper does not know: the login page.
    let r = p.post("/do/mailbox.remove", "__Host-mailroom=S2", "csrf=C1");
    assert_eq!((r.status, r.header("Location")), (303, Some("/mail/")));
    r.assert_secure();
    assert!(!p.asked().contains(&"mailbox.remove".to_string()));
}

#[test]
fn bad_cgi_requests_and_a_broken_helper_get_pages_with_the_headers() {
    let p = Panel::new("panel-cgi");
    let post = |vars: &[(&str, &str)], body: &[u8]| {
        let mut all = vec![("REQUEST_METHOD", "POST"), ("PATH_INFO", "/login")];
        all.extend_from_slice(vars);
        p.cgi(&all, body)
    };
    let form = ("CONTENT_TYPE", "application/x-www-form-urlencoded");
    let cases = [
        (post(&[form], b"a=b"), 411),
        (post(&[form, ("CONTENT_LENGTH", "abc")], b""), 400),
        (post(&[form, ("CONTENT_LENGTH", "99999999")], b""), 413),
        (post(&[form, ("CONTENT_LENGTH", "40")], b"a=b"), 400),
        (
            post(
                &[("CONTENT_TYPE", "text/plain"), ("CONTENT_LENGTH", "3")],
                b"a=b",
            ),
            415,
        ),
        (p.get("/nowhere", ""), 404),
        (
            p.cgi(&[("REQUEST_METHOD", "PUT"), ("PATH_INFO", "/do/x")], b""),
            405,
        ),
    ];
    for (r, want) in cases {
        assert_eq!(r.status, want, "{r:?}");
        r.assert_secure();
    }
    assert!(p.requests().is_empty());
    // A helper that prints garbage: a page that says so, not a crash.
    p.answer("whoami", "thread main panicked");
    let r = p.get("/home", "__Host-mailroom=S1");
    assert_eq!(r.status, 502);
    r.assert_secure();
    assert!(r.body.contains("cannot reach its service"));
    let r = p.get("/style.css", "");
    assert_eq!(
        (r.status, r.header("Content-Type")),
        (200, Some("text/css; charset=utf-8"))
    );
    r.assert_secure();
}

/// Read one HTTP response (head and Content-Length body) from `r`.
fn http_response(r: &mut impl Read, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let all: Vec<u8> = buf.drain(..end + 4 + len).collect();
                return Some(String::from_utf8_lossy(&all).into_owned());
            }
        }
        let mut chunk = [0u8; 16384];
        match r.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn the_own_tls_port_serves_kept_alive_requests_as_the_panel_user() {
    let p = Panel::new("panel-inetd");
    install_certificate(&p.root);
    p.root.write(
        "etc/mail/mailroom.conf",
        "hostname = test.example\nlog = /var/log/mail.log\npanel_user = nobody\n",
    );
    p.answer("whoami", SESSION);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let sock = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (server, _) = l.accept().unwrap();
    let fd: OwnedFd = server.into();
    let fd2 = fd.try_clone().unwrap();
    let mut child = Command::new(bin("panel"))
        .arg("--inetd")
        .env_clear()
        .env("MAILROOM_ROOT", &p.root.dir)
        .env("MAILROOM_PANEL_HELPER", &p.helper)
        .stdin(Stdio::from(fd))
        .stdout(Stdio::from(fd2))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("test.example").unwrap();
    let conn = rustls::ClientConnection::new(mailroom::tls::client_opportunistic(), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut buf = Vec::new();
    tls.write_all(
        b"GET /home HTTP/1.1\r\nHost: test.example\r\nCookie: __Host-mailroom=S1\r\n\r\n",
    )
    .unwrap();
    let r = http_response(&mut tls, &mut buf).expect("an answer");
    assert!(r.starts_with("HTTP/1.1 303 See Other\r\n"), "{r}");
    for h in [
        "Location: /d/shop.example",
        "Strict-Transport-Security: max-age=",
        "Content-Security-Policy: default-src 'none';",
        "X-Frame-Options: DENY",
        "Cache-Control: no-store",
        "Connection: keep-alive",
    ] {
        assert!(r.contains(h), "{h} in {r}");
    }
    // A page larger than TLS buffers at once: a thousand mailboxes.
    let mut show = String::from("answer=data");
    for i in 0..1000 {
        show.push_str(&format!(
            "\nkind=mailbox&address=user{i}%40shop.example&used=1&quota=2&stamp=s{i}"
        ));
    }
    p.answer("domain.show", &show);
    tls.write_all(
        b"GET /d/shop.example HTTP/1.1\r\nHost: test.example\r\nCookie: __Host-mailroom=S1\r\n\r\n",
    )
    .unwrap();
    let r = http_response(&mut tls, &mut buf).expect("the mailbox list");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{}", &r[..200]);
    assert!(r.len() > 100_000 && r.contains("user999@shop.example</a>"));
    tls.write_all(b"GET / HTTP/1.1\r\nHost: test.example\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = http_response(&mut tls, &mut buf).expect("a second answer");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(
        r.contains("<form id=\"login\" method=\"post\" action=\"/login\""),
        "{r}"
    );
    assert!(r.contains("Connection: close"));
    assert!(http_response(&mut tls, &mut buf).is_none(), "closed after");
    assert!(child.wait().unwrap().success());
    let whoami = &p.requests()[0];
    assert_eq!(whoami, "op=whoami&session=S1&from=127.0.0.1");
    if nix::unistd::geteuid().is_root() {
        // Root only read the key: the helper was started by panel_user.
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        assert_eq!(p.root.read("log/uid").trim(), nobody.uid.to_string());
    }
}
