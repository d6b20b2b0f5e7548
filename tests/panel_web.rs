//! The web panel's front end run as a web server runs it: the built
//! `panel` program as a CGI script (environment and standard input in,
//! CGI header lines and a page out), with a fake root helper (a shell
//! script that records each request line and answers from files).

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{Root, bin};

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
            ("Referrer-Policy", "no-referrer"),
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
        // Answers come from answers/OP; a request without session S1
        // (other than a login) is answered nosession, as the helper would.
        std::fs::write(
            &helper,
            format!(
                "#!/bin/sh\n\
                 IFS= read -r line\n\
                 printf '%s\\n' \"$line\" >> {dir}/requests\n\
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
        std::fs::read_to_string(self.root.path("requests"))
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
