//! One HTTP request and its response as the panel sees them, whichever
//! way they came (CGI or its own TLS port): the route below the panel's
//! base, the form, the cookies; and the headers every response carries.

use cookie::{Cookie, SameSite};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The largest request body read (a bulk import's text, as large as the
/// helper takes one request).
pub const MAX_BODY: usize = super::protocol::MAX_REQUEST;

/// The session cookie (the helper's token).  `__Host-`: only from a
/// secure origin, for this host alone, for every path.
pub const SESSION_COOKIE: &str = "__Host-mailroom";

/// The login form's cookie: a random token that the form carries too, so
/// that another site cannot post a login (login CSRF).  It is never a
/// session and never becomes one.
pub const PRE_COOKIE: &str = "__Host-mailroom-pre";

/// Every page's Content-Security-Policy: nothing but our own stylesheet
/// and images, forms only to us, never in a frame.  No script at all.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Other,
}

impl Method {
    pub fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            _ => Method::Other,
        }
    }

    /// GET and HEAD change nothing.
    pub fn is_safe(self) -> bool {
        matches!(self, Method::Get | Method::Head)
    }
}

/// A request, parsed and within limits.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Where the panel is (`SCRIPT_NAME`, `/mail`; empty on its own
    /// port): links are made with it.
    pub base: String,
    /// The path below the base, decoded, without its leading `/`.
    pub route: String,
    /// The query string, still encoded.
    pub query: String,
    /// Header fields the panel looks at, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body (a form), at most [`MAX_BODY`] bytes.
    pub body: Vec<u8>,
    /// The client's address, for the helper's audit lines.
    pub remote: String,
}

impl Request {
    /// A GET of `route` (tests, and building a request by hand).
    pub fn get(route: &str) -> Request {
        let (route, query) = route.split_once('?').unwrap_or((route, ""));
        Request {
            method: Method::Get,
            base: String::new(),
            route: route.trim_start_matches('/').to_string(),
            query: query.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            remote: "127.0.0.1".to_string(),
        }
    }

    /// A POST of a form to `route`.
    pub fn post(route: &str, form: &[(&str, &str)]) -> Request {
        let mut r = Request::get(route);
        r.method = Method::Post;
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form {
            s.append_pair(k, v);
        }
        r.body = s.finish().into_bytes();
        r.headers.push((
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
        r
    }

    /// Add a header (builder style).
    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of cookie `name`, from every Cookie header.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "cookie")
            .flat_map(|(_, v)| Cookie::split_parse(v.as_str()))
            .filter_map(Result::ok)
            .find(|c| c.name() == name)
            .map(|c| c.value().to_string())
            .filter(|v| is_token(v))
    }

    /// The query's fields.
    pub fn query_fields(&self) -> Vec<(String, String)> {
        decode_form(self.query.as_bytes())
    }

    /// The body's form fields.
    pub fn form(&self) -> Vec<(String, String)> {
        decode_form(&self.body)
    }

    /// Whether the body says it is a form (`application/x-www-form-urlencoded`,
    /// parameters such as a charset allowed).
    pub fn has_form_body(&self) -> bool {
        self.header("content-type").is_some_and(|t| {
            t.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        })
    }

    /// Whether a state-changing request may come from where it says it
    /// comes from: not another site (Fetch Metadata), and, when the
    /// browser names its origin, our own.
    pub fn same_origin(&self) -> bool {
        if self
            .header("sec-fetch-site")
            .is_some_and(|s| s.eq_ignore_ascii_case("cross-site"))
        {
            return false;
        }
        // The host name is compared, not the scheme or the port: behind
        // a proxy that ends TLS the server may not know the browser spoke
        // https, Debian's nginx passes the Host without its port, and the
        // session cookie is the host's on every port and scheme anyway.
        match self.header("origin") {
            None => true,
            Some(origin) => {
                let host = host_name(self.header("host").unwrap_or(""));
                let named = origin
                    .strip_prefix("https://")
                    .or_else(|| origin.strip_prefix("http://"))
                    .map(host_name);
                !host.is_empty() && named.is_some_and(|n| n.eq_ignore_ascii_case(host))
            }
        }
    }

    /// A link to `route` below the base (`route` already encoded).
    pub fn link(&self, route: &str) -> String {
        format!("{}/{route}", self.base)
    }
}

/// `host[:port]` without its port (`[::1]:8443` → `[::1]`).
fn host_name(s: &str) -> &str {
    if s.starts_with('[') {
        return s.find(']').map_or(s, |i| &s[..=i]);
    }
    match s.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => s,
    }
}

fn decode_form(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Whether `s` looks like a token the helper hands out: what a cookie
/// carries is passed on only if so.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What a path segment keeps as it is: unreserved characters and `@`
/// (addresses read naturally in the address bar).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@');

/// One path segment, percent-encoded.
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// A query string from fields.
pub fn query(fields: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        s.append_pair(k, v);
    }
    s.finish()
}

/// A response before the headers every response gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Headers of this response (Content-Type, Location, Set-Cookie...).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn html(status: u16, markup: maud::Markup) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
            body: markup.into_string().into_bytes(),
        }
    }

    /// A plain-text answer (for errors found before a page can be made).
    pub fn text(status: u16, text: &str) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: format!("{text}\n").into_bytes(),
        }
    }

    /// `303 See Other` to `location` (a path on this host).
    pub fn redirect(location: &str) -> Response {
        Response {
            status: 303,
            headers: vec![
                ("Location".into(), location.to_string()),
                ("Content-Type".into(), "text/plain; charset=utf-8".into()),
            ],
            body: b"See Other\n".to_vec(),
        }
    }

    pub fn css(text: &str) -> Response {
        Response {
            status: 200,
            headers: vec![("Content-Type".into(), "text/css; charset=utf-8".into())],
            body: text.as_bytes().to_vec(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Set the session cookie to `token`.
    pub fn set_session(self, token: &str) -> Response {
        self.with_header(
            "Set-Cookie",
            &secure_cookie(SESSION_COOKIE, token).to_string(),
        )
    }

    /// Remove cookie `name` in the browser.
    pub fn clear_cookie(self, name: &str) -> Response {
        let c = cookie::CookieBuilder::from(secure_cookie(name, ""))
            .removal()
            .build();
        self.with_header("Set-Cookie", &c.to_string())
    }

    /// The header lines to send: this response's, then the ones every
    /// response carries (`hsts` on the panel's own TLS port).
    pub fn all_headers(&self, hsts: bool) -> Vec<(String, String)> {
        let mut h = self.headers.clone();
        for (k, v) in [
            ("Content-Security-Policy", CSP),
            ("X-Frame-Options", "DENY"),
            ("X-Content-Type-Options", "nosniff"),
            // Not no-referrer: under it browsers send `Origin: null` with
            // a form's POST, which `same_origin` must refuse.
            ("Referrer-Policy", "same-origin"),
            ("Cache-Control", "no-store"),
            ("Vary", "Cookie, Sec-Fetch-Site, Origin"),
        ] {
            h.push((k.into(), v.into()));
        }
        if hsts {
            h.push((
                "Strict-Transport-Security".into(),
                "max-age=31536000".into(),
            ));
        }
        h
    }
}

/// `NAME=VALUE; Path=/; Secure; HttpOnly; SameSite=Strict`, no Domain, no
/// Max-Age: what the `__Host-` prefix asks, and a cookie that ends with
/// the browser (the helper expires the session itself).
fn secure_cookie(name: &str, value: &str) -> Cookie<'static> {
    Cookie::build((name.to_string(), value.to_string()))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
        .build()
}

/// The reason phrase of the status codes the panel sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Equal tokens, compared in constant time (a CSRF token must not leak
/// through how long a wrong guess takes to refuse).
pub fn tokens_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A fresh random token (the login form's): 32 bytes from the system's
/// generator, hex.
pub fn random_token() -> Option<String> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut b).ok()?;
    Some(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_carry_the_host_prefix_attributes() {
        let r = Response::text(200, "x").set_session("abc");
        let (_, c) = r.headers.iter().find(|(k, _)| k == "Set-Cookie").unwrap();
        assert!(c.starts_with("__Host-mailroom=abc"), "{c}");
        for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
            assert!(c.split("; ").any(|a| a == attr), "{attr} in {c}");
        }
        assert!(!c.contains("Domain") && !c.contains("Max-Age"), "{c}");
        let r = Response::text(200, "x").clear_cookie(PRE_COOKIE);
        let (_, c) = r.headers.iter().find(|(k, _)| k == "Set-Cookie").unwrap();
        assert!(c.starts_with("__Host-mailroom-pre=;"), "{c}");
        assert!(c.contains("Max-Age=0") && c.contains("Path=/") && c.contains("Secure"));
    }

    #[test]
    fn cookies_are_read_from_every_cookie_header_and_must_look_like_tokens() {
        let r = Request::get("/")
            .with_header("Cookie", "a=1; __Host-mailroom-pre=p1")
            .with_header("Cookie", "__Host-mailroom=s_1-2.3");
        assert_eq!(r.cookie(SESSION_COOKIE).as_deref(), Some("s_1-2.3"));
        assert_eq!(r.cookie(PRE_COOKIE).as_deref(), Some("p1"));
        let r = Request::get("/").with_header("Cookie", "__Host-mailroom=a<b");
        assert_eq!(r.cookie(SESSION_COOKIE), None);
        assert_eq!(Request::get("/").cookie(SESSION_COOKIE), None);
    }

    #[test]
    fn every_response_carries_the_security_headers() {
        let h = Response::redirect("/x").all_headers(false);
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("Content-Security-Policy"), Some(CSP));
        assert_eq!(get("X-Frame-Options"), Some("DENY"));
        assert_eq!(get("X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(get("Referrer-Policy"), Some("same-origin"));
        assert_eq!(get("Cache-Control"), Some("no-store"));
        assert_eq!(get("Strict-Transport-Security"), None);
        let h = Response::text(500, "x").all_headers(true);
        assert!(h.iter().any(|(k, _)| k == "Strict-Transport-Security"));
    }

    #[test]
    fn cross_site_and_foreign_origins_are_not_same_origin() {
        let r = Request::post("do/x", &[]).with_header("Host", "shop.example");
        assert!(r.same_origin());
        assert!(
            r.clone()
                .with_header("Origin", "https://shop.example")
                .same_origin()
        );
        assert!(
            r.clone()
                .with_header("Origin", "http://Shop.Example")
                .same_origin()
        );
        assert!(
            r.clone()
                .with_header("Origin", "https://shop.example:8443")
                .same_origin()
        );
        let v6 = Request::post("do/x", &[]).with_header("Host", "[::1]");
        assert!(
            v6.clone()
                .with_header("Origin", "http://[::1]:8080")
                .same_origin()
        );
        assert!(!v6.with_header("Origin", "http://[::2]:8080").same_origin());
        assert!(
            !r.clone()
                .with_header("Origin", "https://shop.example.evil.example")
                .same_origin()
        );
        assert!(
            !r.clone()
                .with_header("Origin", "https://evil.example")
                .same_origin()
        );
        assert!(!r.clone().with_header("Origin", "null").same_origin());
        assert!(
            !r.clone()
                .with_header("Sec-Fetch-Site", "cross-site")
                .same_origin()
        );
        assert!(
            r.clone()
                .with_header("Sec-Fetch-Site", "same-origin")
                .same_origin()
        );
    }

    #[test]
    fn segments_and_tokens() {
        assert_eq!(segment("a@shop.example"), "a@shop.example");
        assert_eq!(segment("a b/c?"), "a%20b%2Fc%3F");
        assert!(tokens_equal("abc", "abc"));
        assert!(!tokens_equal("abc", "abd"));
        assert!(!tokens_equal("abc", "ab"));
        assert!(!tokens_equal("", ""));
        let t = random_token().unwrap();
        assert_eq!(t.len(), 64);
        assert_ne!(t, random_token().unwrap());
    }

    #[test]
    fn form_bodies_are_recognised_by_their_media_type() {
        let r = Request::post("do/x", &[("a", "b")]);
        assert!(r.has_form_body());
        let r = r.with_header("content-type", "x");
        assert!(r.has_form_body(), "the first header counts");
        let mut r = Request::post("do/x", &[]);
        r.headers = vec![(
            "content-type".into(),
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8".into(),
        )];
        assert!(r.has_form_body());
        r.headers = vec![(
            "content-type".into(),
            "multipart/form-data; boundary=x".into(),
        )];
        assert!(!r.has_form_body());
    }
}
