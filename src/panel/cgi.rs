//! The panel as a CGI program (RFC 3875), under Apache's mod_cgi or
//! mod_cgid (`ScriptAlias /mail /usr/libexec/mailroom/panel`) or nginx
//! with fcgiwrap: the request from the environment and standard input,
//! the response as CGI header lines and the body on standard output.
//!
//! The base of every link is `SCRIPT_NAME` (`/mail`) and the route is
//! `PATH_INFO` (`/d/shop.example`), as the server decoded it.  Apache
//! sets both from its `ScriptAlias`; nginx must be told (checked with
//! Debian's nginx and fcgiwrap):
//!
//! ```text
//! location /mail {
//!     fastcgi_split_path_info ^(/mail)(/.*)?$;
//!     include fastcgi_params;
//!     fastcgi_param SCRIPT_FILENAME /usr/libexec/mailroom/panel;
//!     fastcgi_param PATH_INFO $fastcgi_path_info;
//!     fastcgi_pass unix:/run/fcgiwrap.socket;
//! }
//! ```  A body is
//! read only for a POST, only when `CONTENT_TYPE` says it is a form, and
//! never more than `CONTENT_LENGTH` bytes (§4.2), which must be at most
//! [`MAX_BODY`]: anything else is answered before reading.

use std::io::{Read, Write};

use super::http::{MAX_BODY, Method, Request, Response, reason};

/// The request the server describes with `env` (a lookup of the CGI
/// meta-variables) and `stdin`; or the response that refuses it.
pub fn request(
    env: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
) -> Result<Request, Response> {
    let method = Method::parse(&env("REQUEST_METHOD").unwrap_or_default());
    let mut headers = Vec::new();
    for (var, name) in [
        ("HTTP_COOKIE", "cookie"),
        ("HTTP_HOST", "host"),
        ("HTTP_ORIGIN", "origin"),
        ("HTTP_SEC_FETCH_SITE", "sec-fetch-site"),
        ("CONTENT_TYPE", "content-type"),
    ] {
        if let Some(v) = env(var).filter(|v| !v.is_empty()) {
            headers.push((name.to_string(), v));
        }
    }
    let mut req = Request {
        method,
        base: env("SCRIPT_NAME")
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string(),
        route: env("PATH_INFO")
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        query: env("QUERY_STRING").unwrap_or_default(),
        headers,
        body: Vec::new(),
        remote: env("REMOTE_ADDR")
            .filter(|a| a.parse::<std::net::IpAddr>().is_ok())
            .unwrap_or_else(|| "unknown".to_string()),
    };
    if method != Method::Post {
        return Ok(req);
    }
    let length = match env("CONTENT_LENGTH").filter(|l| !l.is_empty()) {
        None => return Err(Response::text(411, "A form needs its length.")),
        Some(l) => match l.parse::<u64>() {
            Ok(n) if l.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(Response::text(
                    400,
                    "The length of the form is not a number.",
                ));
            }
        },
    };
    if length > MAX_BODY as u64 {
        return Err(Response::text(413, "The form is too large."));
    }
    if length > 0 && !req.has_form_body() {
        return Err(Response::text(415, "Only forms are accepted here."));
    }
    let mut body = vec![0u8; length as usize];
    if stdin.read_exact(&mut body).is_err() {
        return Err(Response::text(400, "The form ended early."));
    }
    req.body = body;
    Ok(req)
}

/// The response as CGI output: `Status:` and the header lines, an empty
/// line, the body (none for HEAD).
pub fn write(resp: &Response, head: bool, out: &mut dyn Write) -> std::io::Result<()> {
    let mut text = format!("Status: {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in resp.all_headers(false) {
        // One line each, never a continuation (§6.3): a value cannot
        // carry a line break into the output.
        let v: String = v.chars().filter(|c| !c.is_control()).collect();
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    if !head {
        bytes.extend_from_slice(&resp.body);
    }
    out.write_all(&bytes)?;
    out.flush()
}

/// Serve the one request of this process.
pub fn run(helper: &mut dyn super::client::Helper) -> i32 {
    let env = |k: &str| std::env::var(k).ok();
    let mut stdin = std::io::stdin().lock();
    let (resp, head) = match request(&env, &mut stdin) {
        Ok(req) => (super::app::handle(helper, &req), req.method == Method::Head),
        Err(resp) => (resp, false),
    };
    match write(&resp, head, &mut std::io::stdout().lock()) {
        Ok(()) => 0,
        Err(_) => crate::exit::ExitCode::IoErr.code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)], body: &[u8]) -> Result<Request, Response> {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.get(k).cloned();
        let mut input = body;
        request(&lookup, &mut input)
    }

    const FORM: &str = "application/x-www-form-urlencoded";

    #[test]
    fn a_get_is_read_from_the_environment() {
        let r = parse(
            &[
                ("GATEWAY_INTERFACE", "CGI/1.1"),
                ("REQUEST_METHOD", "GET"),
                ("SCRIPT_NAME", "/mail"),
                ("PATH_INFO", "/d/shop.example/m/a@shop.example"),
                ("QUERY_STRING", "done=alias.set"),
                ("HTTP_COOKIE", "__Host-mailroom=tok"),
                ("HTTP_HOST", "shop.example"),
                ("HTTPS", "on"),
                ("REMOTE_ADDR", "192.0.2.7"),
            ],
            b"ignored",
        )
        .unwrap();
        assert_eq!(r.base, "/mail");
        assert_eq!(r.route, "d/shop.example/m/a@shop.example");
        assert_eq!(r.query, "done=alias.set");
        assert_eq!(r.cookie("__Host-mailroom").as_deref(), Some("tok"));
        assert_eq!(r.remote, "192.0.2.7");
        assert!(r.body.is_empty());
        let r = parse(&[("REQUEST_METHOD", "GET"), ("REMOTE_ADDR", "x;y")], b"").unwrap();
        assert_eq!(
            (r.route.as_str(), r.base.as_str(), r.remote.as_str()),
            ("", "", "unknown")
        );
    }

    #[test]
    fn a_post_reads_exactly_content_length_bytes() {
        let r = parse(
            &[
                ("REQUEST_METHOD", "POST"),
                ("CONTENT_LENGTH", "3"),
                ("CONTENT_TYPE", FORM),
            ],
            b"a=bEXTRA",
        )
        .unwrap();
        assert_eq!(r.body, b"a=b");
    }

    #[test]
    fn bad_lengths_and_types_are_refused_before_reading() {
        let status = |vars: &[(&str, &str)], body: &[u8]| parse(vars, body).unwrap_err().status;
        let post = ("REQUEST_METHOD", "POST");
        let form = ("CONTENT_TYPE", FORM);
        assert_eq!(status(&[post, form], b"a=b"), 411);
        assert_eq!(status(&[post, form, ("CONTENT_LENGTH", "")], b""), 411);
        assert_eq!(status(&[post, form, ("CONTENT_LENGTH", "x")], b""), 400);
        assert_eq!(status(&[post, form, ("CONTENT_LENGTH", "-1")], b""), 400);
        assert_eq!(status(&[post, form, ("CONTENT_LENGTH", "+3")], b"a=b"), 400);
        let huge = (MAX_BODY + 1).to_string();
        assert_eq!(status(&[post, form, ("CONTENT_LENGTH", &huge)], b""), 413);
        assert_eq!(
            status(
                &[post, form, ("CONTENT_LENGTH", "99999999999999999999999")],
                b""
            ),
            400
        );
        assert_eq!(status(&[post, form, ("CONTENT_LENGTH", "10")], b"a=b"), 400);
        let multipart = ("CONTENT_TYPE", "multipart/form-data; boundary=x");
        assert_eq!(
            status(&[post, multipart, ("CONTENT_LENGTH", "3")], b"a=b"),
            415
        );
        assert_eq!(status(&[post, ("CONTENT_LENGTH", "3")], b"a=b"), 415);
        // An empty form needs no type.
        assert!(parse(&[post, ("CONTENT_LENGTH", "0")], b"").is_ok());
    }

    #[test]
    fn the_output_is_status_headers_and_body() {
        let mut out = Vec::new();
        let resp = Response::redirect("/mail/home\r\nX-Evil: 1");
        write(&resp, false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("Status: 303 See Other\r\n"), "{text}");
        assert!(text.contains("Location: /mail/homeX-Evil: 1\r\n"), "{text}");
        assert!(!text.contains("\nX-Evil"));
        assert!(text.contains("Content-Security-Policy: default-src 'none'"));
        assert!(!text.contains("Strict-Transport-Security"));
        assert!(text.ends_with("\r\n\r\nSee Other\n"));
        let mut out = Vec::new();
        write(&Response::text(200, "body"), true, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().ends_with("\r\n\r\n"));
    }
}
