use super::*;
use crate::panel::http::PRE_COOKIE;

/// A helper double: answers by operation, and keeps every request.
struct Fake {
    asked: Vec<Record>,
    answer: Box<dyn FnMut(&Record) -> Answer>,
}

impl Helper for Fake {
    fn ask(&mut self, request: &Record) -> Result<Answer, String> {
        self.asked.push(request.clone());
        Ok((self.answer)(request))
    }
}

fn session(role: Role) -> Answer {
    Answer::Session {
        session: "S1".into(),
        csrf: "C1".into(),
        login: "postmaster@shop.example".into(),
        role,
        domains: vec!["shop.example".into()],
        expires: 0,
    }
}

/// A helper with a session for `S1` (csrf `C1`) that answers reads with
/// `data` and changes with `change`.
fn fake(role: Role, data: Vec<Record>, change: Answer) -> Fake {
    Fake {
        asked: Vec::new(),
        answer: Box::new(move |r| {
            if r.str("op") != "login" && r.str("session") != "S1" {
                return Answer::NoSession;
            }
            match r.str("op") {
                "whoami" | "login" => session(role),
                "domains" | "domain.show" | "queue" | "me" => Answer::Data(data.clone()),
                _ => change.clone(),
            }
        }),
    }
}

fn ops(f: &Fake) -> Vec<&str> {
    f.asked.iter().map(|r| r.str("op")).collect()
}

fn logged_in(r: Request) -> Request {
    r.with_header("Cookie", "__Host-mailroom=S1")
        .with_header("Host", "panel.example")
}

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn done() -> Answer {
    Answer::Done { notes: vec![] }
}

#[test]
fn routes() {
    let mut f = fake(Role::Admin, vec![], done());
    let r = handle(&mut f, &Request::get("/"));
    assert_eq!(r.status, 200);
    assert!(body(&r).contains("<form id=\"login\""));
    let r = handle(&mut f, &Request::get("style.css"));
    assert_eq!(
        (r.status, header(&r, "Content-Type")),
        (200, Some("text/css; charset=utf-8"))
    );
    assert_eq!(handle(&mut f, &Request::get("nowhere")).status, 404);
    assert_eq!(handle(&mut f, &Request::get("d/a/b/c/d")).status, 404);
    let r = handle(&mut f, &Request::get("do/mailbox.add"));
    assert_eq!((r.status, header(&r, "Allow")), (405, Some("POST")));
    let r = handle(&mut f, &Request::post("home", &[]));
    assert_eq!((r.status, header(&r, "Allow")), (405, Some("GET, HEAD")));
    assert!(f.asked.is_empty(), "nothing was asked: {:?}", f.asked);
    // Logged in: home goes by role.
    for (role, to) in [
        (Role::Admin, "/domains"),
        (Role::DomainAdmin, "/d/shop.example"),
        (Role::User, "/me"),
    ] {
        let mut f = fake(role, vec![], done());
        let r = handle(&mut f, &logged_in(Request::get("home")));
        assert_eq!((r.status, header(&r, "Location")), (303, Some(to)));
        let r = handle(&mut f, &logged_in(Request::get("/")));
        assert_eq!(header(&r, "Location"), Some("/home"));
    }
    // Links keep the CGI base.
    let mut req = logged_in(Request::get("home"));
    req.base = "/mail".into();
    let r = handle(&mut fake(Role::User, vec![], done()), &req);
    assert_eq!(header(&r, "Location"), Some("/mail/me"));
}

#[test]
fn no_session_leads_to_the_login_page() {
    let mut f = fake(Role::Admin, vec![], done());
    for route in [
        "home",
        "domains",
        "d/shop.example",
        "me",
        "d/shop.example/queue",
    ] {
        let r = handle(&mut f, &Request::get(route));
        assert_eq!(
            (r.status, header(&r, "Location")),
            (303, Some("/")),
            "{route}"
        );
        let r = handle(
            &mut f,
            &Request::get(route).with_header("Cookie", "__Host-mailroom=OLD"),
        );
        assert_eq!(
            (r.status, header(&r, "Location")),
            (303, Some("/")),
            "{route}"
        );
        let c = header(&r, "Set-Cookie").unwrap();
        assert!(
            c.starts_with("__Host-mailroom=;") && c.contains("Max-Age=0"),
            "{c}"
        );
    }
}

fn login_form(pre: &str, field: &str) -> Request {
    Request::post(
        "login",
        &[
            ("csrf", field),
            ("name", "postmaster@shop.example"),
            ("password", "pw"),
        ],
    )
    .with_header("Cookie", &format!("{PRE_COOKIE}={pre}"))
    .with_header("Host", "panel.example")
}

#[test]
fn login_uses_a_pre_session_token_and_a_fresh_session() {
    let mut f = fake(Role::DomainAdmin, vec![], done());
    let r = handle(&mut f, &Request::get("/"));
    let set = header(&r, "Set-Cookie").unwrap().to_string();
    assert!(set.starts_with("__Host-mailroom-pre="), "{set}");
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(set.split("; ").any(|a| a == attr), "{attr}: {set}");
    }
    let pre = set["__Host-mailroom-pre=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(body(&r).contains(&format!("name=\"csrf\" value=\"{pre}\"")));
    // The same browser keeps its token.
    let again = handle(
        &mut f,
        &Request::get("/").with_header("Cookie", &format!("{PRE_COOKIE}={pre}")),
    );
    assert_eq!(header(&again, "Set-Cookie"), None);
    // Without the token, or with another one: refused before the helper.
    for (cookie, field) in [(pre.as_str(), ""), ("", pre.as_str()), (pre.as_str(), "x")] {
        let r = handle(&mut f, &login_form(cookie, field));
        assert_eq!(r.status, 403);
        // The form comes again with a token that works: the browser's,
        // or a new one in a new cookie.
        let b = body(&r);
        let token = match header(&r, "Set-Cookie") {
            Some(c) => c["__Host-mailroom-pre=".len()..]
                .split(';')
                .next()
                .unwrap()
                .to_string(),
            None => cookie.to_string(),
        };
        assert_eq!(token.len(), 64);
        assert!(
            b.contains(&format!("name=\"csrf\" value=\"{token}\"")),
            "{b}"
        );
    }
    assert!(f.asked.is_empty(), "{:?}", f.asked);
    let r = handle(&mut f, &login_form(&pre, &pre));
    assert_eq!((r.status, header(&r, "Location")), (303, Some("/home")));
    let cookies: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k == "Set-Cookie")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(cookies[0].starts_with("__Host-mailroom=S1;"), "{cookies:?}");
    assert!(
        cookies[1].starts_with("__Host-mailroom-pre=;"),
        "{cookies:?}"
    );
    assert_eq!(ops(&f), ["login"]);
    let req = &f.asked[0];
    assert_eq!(
        req.get("session"),
        None,
        "the pre-login cookie is never sent as a session"
    );
    assert_eq!(req.str("name"), "postmaster@shop.example");
    assert_eq!(req.str("from"), "127.0.0.1");
}

#[test]
fn every_login_failure_looks_the_same() {
    let mut pages = Vec::new();
    for answer in [
        Answer::Refused,
        Answer::Failed {
            message: "no such user".into(),
        },
        Answer::Missing,
    ] {
        let mut f = Fake {
            asked: vec![],
            answer: Box::new(move |_| answer.clone()),
        };
        let pre = "a".repeat(64);
        let r = handle(&mut f, &login_form(&pre, &pre));
        assert_eq!(r.status, 403);
        assert!(body(&r).contains(REFUSED));
        assert!(header(&r, "Set-Cookie").is_none());
        pages.push(r.body);
    }
    assert!(pages.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn changes_need_the_sessions_csrf_token_and_the_same_site() {
    let form = |csrf: &str| {
        logged_in(Request::post(
            "do/mailbox.add",
            &[
                ("csrf", csrf),
                ("address", "a@shop.example"),
                ("password", "x"),
            ],
        ))
    };
    let mut f = fake(Role::DomainAdmin, vec![], done());
    // No token: nothing is asked at all.
    assert_eq!(handle(&mut f, &form("")).status, 403);
    assert!(f.asked.is_empty());
    // Another session's token: only who the session is.
    assert_eq!(handle(&mut f, &form("C2")).status, 403);
    assert_eq!(ops(&f), ["whoami"]);
    // From another site, or another origin: nothing is asked.
    f.asked.clear();
    let r = handle(
        &mut f,
        &form("C1").with_header("Sec-Fetch-Site", "cross-site"),
    );
    assert_eq!(r.status, 403);
    let r = handle(
        &mut f,
        &form("C1").with_header("Origin", "https://evil.example"),
    );
    assert_eq!(r.status, 403);
    assert!(f.asked.is_empty());
    // Not a form.
    let mut wrong = form("C1");
    wrong.headers.retain(|(k, _)| k != "content-type");
    assert_eq!(handle(&mut f, &wrong).status, 415);
    // The right one: the change is asked, with the token.
    let r = handle(
        &mut f,
        &form("C1")
            .with_header("Origin", "https://panel.example")
            .with_header("Sec-Fetch-Site", "same-origin"),
    );
    assert_eq!(
        (r.status, header(&r, "Location")),
        (303, Some("/d/shop.example?done=mailbox.add"))
    );
    assert_eq!(ops(&f), ["whoami", "mailbox.add"]);
    let req = &f.asked[1];
    assert_eq!(
        (req.str("session"), req.str("csrf"), req.str("address")),
        ("S1", "C1", "a@shop.example")
    );
    // A GET never changes anything: do/ is POST only.
    f.asked.clear();
    assert_eq!(
        handle(&mut f, &logged_in(Request::get("do/mailbox.add?csrf=C1"))).status,
        405
    );
    assert!(f.asked.is_empty());
    // An unknown operation is not passed on.
    let r = handle(
        &mut f,
        &logged_in(Request::post("do/whoami", &[("csrf", "C1")])),
    );
    assert_eq!(r.status, 404);
    assert!(f.asked.is_empty());
}

#[test]
fn repeated_fields_are_split_and_seen_is_passed_on() {
    let mut f = fake(Role::DomainAdmin, vec![], done());
    let r = handle(
        &mut f,
        &logged_in(Request::post(
            "do/forward.set",
            &[
                ("csrf", "C1"),
                ("seen", "ST"),
                ("address", "a@shop.example"),
                ("target", "b@x.example, c@y.example\r\nd@z.example"),
                ("keep", "yes"),
                ("session", "FORGED"),
            ],
        )),
    );
    assert_eq!(
        header(&r, "Location"),
        Some("/d/shop.example/m/a@shop.example?done=forward.set")
    );
    let req = &f.asked[1];
    assert_eq!(
        req.all("target").collect::<Vec<_>>(),
        ["b@x.example", "c@y.example", "d@z.example"]
    );
    assert_eq!((req.str("seen"), req.str("keep")), ("ST", "yes"));
    assert_eq!(req.all("session").collect::<Vec<_>>(), ["S1"]);
    // Optional fields go only when given; the autoreply's `from` date
    // comes after the client's address.
    handle(
        &mut f,
        &logged_in(Request::post(
            "do/list.create",
            &[
                ("csrf", "C1"),
                ("address", "l@shop.example"),
                ("owner", ""),
                ("posting", "anyone"),
            ],
        )),
    );
    let req = f.asked.last().unwrap();
    assert_eq!(
        (req.get("owner"), req.get("posting")),
        (None, Some("anyone"))
    );
    handle(
        &mut f,
        &logged_in(Request::post(
            "do/autoreply.set",
            &[
                ("csrf", "C1"),
                ("address", "a@shop.example"),
                ("from", "2026-12-24"),
                ("until", ""),
            ],
        )),
    );
    let req = f.asked.last().unwrap();
    assert_eq!(
        req.all("from").collect::<Vec<_>>(),
        ["127.0.0.1", "2026-12-24"]
    );
    assert_eq!((req.get("until"), req.get("interval")), (Some(""), None));
}

#[test]
fn answers_become_pages() {
    let mailbox = Record::new()
        .with("kind", "mailbox")
        .with("address", "a@shop.example")
        .with("used", "10")
        .with("quota", "100")
        .with("stamp", "NEW");
    let post = || {
        logged_in(Request::post(
            "do/mailbox.quota",
            &[
                ("csrf", "C1"),
                ("seen", "OLD"),
                ("address", "a@shop.example"),
                ("quota", "typed-<b>"),
            ],
        ))
    };
    let stale = Answer::Stale {
        message: "a@shop.example changed: quota is now 1G".into(),
    };
    let mut f = fake(Role::DomainAdmin, vec![mailbox.clone()], stale);
    let r = handle(&mut f, &post());
    assert_eq!(r.status, 409);
    let b = body(&r);
    assert!(b.contains("quota is now 1G"), "{b}");
    assert!(
        b.contains("value=\"typed-&lt;b&gt;\""),
        "what was typed is kept: {b}"
    );
    assert!(
        b.contains("name=\"seen\" value=\"NEW\""),
        "the new stamp: {b}"
    );
    let failed = Answer::Failed {
        message: "\"x\" is not a size".into(),
    };
    let mut f = fake(Role::DomainAdmin, vec![mailbox.clone()], failed);
    let r = handle(&mut f, &post());
    assert_eq!(r.status, 422);
    assert!(body(&r).contains("&quot;x&quot; is not a size"));
    let mut f = fake(Role::DomainAdmin, vec![mailbox], Answer::NoSession);
    let r = handle(&mut f, &post());
    assert_eq!((r.status, header(&r, "Location")), (303, Some("/")));
    // `missing`: one page, the same bytes whatever was named.
    let mut f = fake(Role::DomainAdmin, vec![], Answer::Missing);
    let a = handle(&mut f, &post());
    let b = handle(
        &mut f,
        &logged_in(Request::get("d/shop.example/m/zz@shop.example")),
    );
    let c = handle(
        &mut f,
        &logged_in(Request::get("d/other.example/m/a@shop.example")),
    );
    let mut g = Fake {
        asked: vec![],
        answer: Box::new(|r| match r.str("op") {
            "whoami" => session(Role::DomainAdmin),
            _ => Answer::Missing,
        }),
    };
    let d = handle(&mut g, &logged_in(Request::get("d/other.example")));
    let e = handle(&mut g, &logged_in(Request::get("d/other.example/queue")));
    let f2 = handle(
        &mut g,
        &logged_in(Request::get(
            "confirm/mailbox.remove?address=a@other.example",
        )),
    );
    let g2 = handle(&mut g, &logged_in(Request::get("d/other.example/import")));
    for r in [&b, &c, &d, &e, &f2, &g2] {
        assert_eq!((r.status, &r.body), (404, &a.body));
    }
    // The password change hands over a new session.
    let mut f = fake(Role::User, vec![], session(Role::User));
    let r = handle(
        &mut f,
        &logged_in(Request::post(
            "do/password.change",
            &[("csrf", "C1"), ("old", "a"), ("new", "b")],
        )),
    );
    assert_eq!(header(&r, "Location"), Some("/me?done=password.change"));
    assert!(
        header(&r, "Set-Cookie")
            .unwrap()
            .starts_with("__Host-mailroom=S1;")
    );
    // The note after a change is a fixed text, never the query's.
    let mut f = fake(Role::User, vec![], done());
    let r = handle(&mut f, &logged_in(Request::get("me?done=forward.set")));
    assert!(body(&r).contains("The forward was saved."));
    let r = handle(&mut f, &logged_in(Request::get("me?done=<b>zq9")));
    assert!(!body(&r).contains("zq9") && !body(&r).contains("role=\"status\""));
}

#[test]
fn logout_ends_the_session() {
    let mut f = fake(Role::User, vec![], done());
    let r = handle(
        &mut f,
        &logged_in(Request::post("logout", &[("csrf", "C1")])),
    );
    assert_eq!((r.status, header(&r, "Location")), (303, Some("/")));
    assert!(header(&r, "Set-Cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(ops(&f), ["whoami", "logout"]);
    f.asked.clear();
    let r = handle(
        &mut f,
        &logged_in(Request::post("logout", &[("csrf", "bad")])),
    );
    assert_eq!(r.status, 403);
    assert_eq!(ops(&f), ["whoami"]);
}

/// Hostile text in every field of every record.
const XSS: &str = "\"'><img src=x onerror=alert(1)>";
const XSS_TEXT: &str = "</textarea></title><script>alert(1)</script>\"'&";

fn hostile_data() -> Vec<Record> {
    let addr = format!("{XSS}@shop.example");
    let r = |kind: &str| Record::new().with("kind", kind);
    vec![
        r("domain").with("domain", XSS).with("mailboxes", XSS),
        r("domain")
            .with("domain", "shop.example")
            .with("mailboxes", "1"),
        r("mailbox")
            .with("address", addr.clone())
            .with("used", XSS)
            .with("quota", "100")
            .with("stamp", XSS),
        r("alias")
            .with("address", addr.clone())
            .with("target", XSS_TEXT)
            .with("target", XSS)
            .with("stamp", XSS),
        r("forward")
            .with("address", addr.clone())
            .with("target", XSS_TEXT)
            .with("keep", XSS)
            .with("stamp", XSS),
        r("catchall")
            .with("domain", XSS)
            .with("target", XSS_TEXT)
            .with("stamp", XSS),
        r("autoreply")
            .with("address", addr.clone())
            .with("subject", XSS_TEXT)
            .with("text", XSS_TEXT)
            .with("from", XSS)
            .with("until", XSS)
            .with("stamp", XSS),
        r("list")
            .with("address", addr.clone())
            .with("member", XSS_TEXT)
            .with("stamp", XSS),
        r("filter")
            .with("address", addr.clone())
            .with("rules", XSS_TEXT)
            .with("stamp", XSS),
        r("queued")
            .with("id", XSS)
            .with("from", XSS_TEXT)
            .with("to", XSS)
            .with("age", XSS)
            .with("size", XSS)
            .with("attempts", XSS)
            .with("error", XSS_TEXT),
        r("me")
            .with("login", XSS)
            .with("address", addr)
            .with("used", "5")
            .with("quota", XSS)
            .with("spam_folder", XSS_TEXT)
            .with("spam_folder_at", XSS)
            .with("spam_discard_over", XSS_TEXT),
    ]
}

fn assert_inert(what: &str, r: &Response) {
    let b = body(r);
    for bad in [
        "<img",
        "<script",
        "</textarea></title>",
        "\"'>",
        "onerror=alert(1)>",
    ] {
        assert!(!b.contains(bad), "{what}: {bad:?} in {b}");
    }
}

#[test]
fn every_page_shows_hostile_values_inert() {
    let addr = format!("{XSS}@shop.example");
    let enc = |s: &str| crate::panel::http::query(&[("x", s)])[2..].to_string();
    let hostile_session = Answer::Session {
        session: "S1".into(),
        csrf: XSS.into(),
        login: XSS.into(),
        role: Role::DomainAdmin,
        domains: vec![XSS.into(), "shop.example".into()],
        expires: 0,
    };
    let failed = Answer::Failed {
        message: XSS_TEXT.into(),
    };
    let routes = [
        "domains".to_string(),
        "d/shop.example".into(),
        format!("d/shop.example?alias={}&list={}", enc(&addr), enc(&addr)),
        format!("d/shop.example/m/{addr}"),
        "d/shop.example/queue".into(),
        "d/shop.example/import".into(),
        "me".into(),
        format!("d/{XSS}/queue"),
    ];
    let removals = CHANGES.iter().filter(|c| c.2).map(|c| c.0);
    let confirms: Vec<String> = removals
        .map(|op| {
            let key = if op.starts_with("domain") || op.starts_with("catchall") {
                ("domain", XSS.to_string())
            } else {
                ("address", addr.clone())
            };
            format!(
                "confirm/{op}?{}",
                crate::panel::http::query(&[(key.0, &key.1), ("member", XSS_TEXT)])
            )
        })
        .collect();
    for role in [Role::Admin, Role::DomainAdmin, Role::User] {
        let data = hostile_data();
        let s = hostile_session.clone();
        let s = match s {
            Answer::Session {
                session,
                csrf,
                login,
                domains,
                expires,
                ..
            } => Answer::Session {
                session,
                csrf,
                login,
                role,
                domains,
                expires,
            },
            other => other,
        };
        let failed = failed.clone();
        let mut f = Fake {
            asked: vec![],
            answer: Box::new(move |r| match r.str("op") {
                "whoami" => s.clone(),
                "domains" | "domain.show" | "queue" | "me" => Answer::Data(data.clone()),
                _ => failed.clone(),
            }),
        };
        for route in routes.iter().chain(&confirms) {
            let r = handle(&mut f, &logged_in(Request::get(route)));
            assert!(matches!(r.status, 200 | 404), "{route}: {}", r.status);
            assert_inert(route, &r);
        }
        // Every form refused with a hostile message and hostile values.
        for (op, fields, _, _) in CHANGES {
            let mut form: Vec<(&str, &str)> = vec![("csrf", XSS)];
            for name in *fields {
                let name = name.trim_end_matches('*');
                form.push((name, if name == "address" { &addr } else { XSS_TEXT }));
            }
            let r = handle(
                &mut f,
                &logged_in(Request::post(&format!("do/{op}"), &form)),
            );
            assert!(matches!(r.status, 422 | 404), "{op}: {}", r.status);
            assert_inert(op, &r);
            // Where the page has the form (the helper refuses the others
            // as `missing`), the message is at it.
            let id = format!("<form id=\"{}\"", layout::form_id(op));
            if r.status == 422 && body(&r).contains(&id) {
                let b = body(&r);
                let at = b.find(&id).unwrap();
                assert!(
                    b[at..].contains("<p class=\"error\" role=\"alert\">&lt;/textarea&gt;"),
                    "{op} shows the message: {b}"
                );
            }
        }
    }
    let mut f = fake(Role::Admin, vec![], done());
    let r = handle(
        &mut f,
        &login_form(&"a".repeat(64), "b").with_header("Cookie", "x=1"),
    );
    assert_inert("login", &r);
}

#[test]
fn every_page_has_its_forms_with_their_ids_fields_and_tokens() {
    let data = {
        let r = |kind: &str| Record::new().with("kind", kind);
        vec![
            r("domain")
                .with("domain", "shop.example")
                .with("mailboxes", "1"),
            r("mailbox")
                .with("address", "a@shop.example")
                .with("used", "10")
                .with("quota", "100")
                .with("stamp", "MST"),
            r("alias")
                .with("address", "s@shop.example")
                .with("target", "a@shop.example")
                .with("stamp", "AST"),
            r("list")
                .with("address", "l@shop.example")
                .with("member", "m@x.example")
                .with("stamp", "LST"),
            r("forward")
                .with("address", "a@shop.example")
                .with("target", "b@x.example")
                .with("keep", "yes")
                .with("stamp", "FST"),
            r("me")
                .with("login", "a@shop.example")
                .with("address", "a@shop.example")
                .with("used", "1")
                .with("quota", "0")
                .with("spam_folder", "Spam")
                .with("spam_folder_at", "5")
                .with("spam_discard_over", ""),
        ]
    };
    let mut f = fake(Role::Admin, data, done());
    let cases: &[(&str, &[&str])] = &[
        ("domains", &["domain-add", "logout"]),
        (
            "d/shop.example?alias=s@shop.example&list=l@shop.example",
            &[
                "mailbox-add",
                "alias-set",
                "catchall-set",
                "list-create",
                "list-add",
            ],
        ),
        (
            "d/shop.example/m/a@shop.example",
            &[
                "mailbox-password",
                "mailbox-quota",
                "forward-set",
                "autoreply-set",
                "filter-set",
            ],
        ),
        ("d/shop.example/import", &["import"]),
        (
            "me",
            &[
                "password-change",
                "forward-set",
                "autoreply-set",
                "filter-set",
            ],
        ),
        (
            "confirm/mailbox.remove?address=a@shop.example",
            &["mailbox-remove"],
        ),
        (
            "confirm/list.drop?address=l@shop.example&member=m@x.example",
            &["list-drop"],
        ),
    ];
    for (route, forms) in cases {
        let r = handle(&mut f, &logged_in(Request::get(route)));
        let b = body(&r);
        assert_eq!(r.status, 200, "{route}: {b}");
        for id in *forms {
            assert!(b.contains(&format!("<form id=\"{id}\"")), "{route}: {id}");
        }
        assert_eq!(
            b.matches("name=\"csrf\" value=\"C1\"").count(),
            b.matches("<form").count(),
            "{route}: every form carries the token"
        );
        assert!(b.contains("name=\"viewport\""));
        assert!(!b.contains("style=") && !b.contains("<script"), "{route}");
    }
    let b = body(&handle(
        &mut f,
        &logged_in(Request::get("d/shop.example?alias=s@shop.example")),
    ));
    assert!(b.contains("name=\"seen\" value=\"AST\""), "{b}");
    let b = body(&handle(
        &mut f,
        &logged_in(Request::get("d/shop.example/m/a@shop.example")),
    ));
    assert!(b.contains("name=\"seen\" value=\"MST\"") && b.contains("name=\"seen\" value=\"FST\""));
    assert!(b.contains("<meter"), "a usage bar");
    // No autoreply yet: its form says so, so that one made meanwhile is
    // not overwritten.
    let at = b.find("<form id=\"autoreply-set\"").unwrap();
    assert!(b[at..].contains("name=\"seen\" value=\"none\""), "{b}");
    // No rules for this mailbox among the domain's records: it has none,
    // and the form says so (rules made meanwhile are not overwritten).
    let at = b.find("<form id=\"filter-set\"").unwrap();
    let form = &b[at..at + b[at..].find("</form>").unwrap()];
    assert!(form.contains("name=\"seen\" value=\"none\""), "{form}");
    let b = body(&handle(&mut f, &logged_in(Request::get("me"))));
    // The box's spam rule, which runs before the user's rules.
    assert!(
        b.contains("scores 5 or more goes to your folder <strong>Spam</strong>")
            && !b.contains("discarded"),
        "{b}"
    );
    let at = b.find("<form id=\"filter-set\"").unwrap();
    assert!(b[at..].contains("name=\"seen\" value=\"none\""), "{b}");
    let b = body(&handle(
        &mut f,
        &logged_in(Request::get(
            "confirm/mailbox.remove?address=a@shop.example",
        )),
    ));
    assert!(
        b.contains("name=\"seen\" value=\"MST\"")
            && b.contains("Remove the mailbox a@shop.example")
    );
    let b = body(&handle(&mut f, &logged_in(Request::get("me"))));
    assert!(b.contains("name=\"page\" value=\"me\""));
    // Labels name their fields.
    for id in [
        "mailbox-add-address",
        "mailbox-add-password",
        "mailbox-add-quota",
    ] {
        let b = body(&handle(&mut f, &logged_in(Request::get("d/shop.example"))));
        assert!(b.contains(&format!("<label for=\"{id}\"")) && b.contains(&format!("id=\"{id}\"")));
    }
}

#[test]
fn any_route_query_and_form_gets_an_answer_without_a_panic() {
    let parts = [
        "",
        "d",
        "m",
        "do",
        "confirm",
        "me",
        "home",
        "queue",
        "import",
        "login",
        "logout",
        "a@b",
        "@",
        "..",
        "%",
        "mailbox.remove",
        "list.drop",
        "style.css",
        "\u{0}",
        "é",
    ];
    let mut f = fake(Role::Admin, hostile_data(), done());
    let mut n = 0usize;
    for a in parts {
        for b in parts {
            for c in ["", "x", "m"] {
                n += 1;
                let route = format!("{a}/{b}/{c}");
                let query = format!("address={b}&domain={a}&member={c}&done={b}&alias={a}");
                for method in [Method::Get, Method::Head, Method::Post, Method::Other] {
                    let mut req = logged_in(Request::post(
                        &route,
                        &[("csrf", "C1"), ("address", b), ("domain", a), ("target", c)],
                    ));
                    req.method = method;
                    req.query = query.clone();
                    let r = handle(&mut f, &req);
                    assert!((200..600).contains(&r.status), "{route}: {}", r.status);
                }
            }
        }
    }
    assert!(n > 1000);
}
