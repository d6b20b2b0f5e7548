//! The panel on its own TLS port (8443), for a box without a web
//! server: `panel --inetd`, started as root by inetd or a systemd socket
//! (`Accept=yes`) for each connection, the socket on descriptors 0 and 1.
//!
//! As root it reads only the certificate and key (`tls_cert`, `tls_key`,
//! as pop3d); then it becomes `panel_user` for good, before a byte of the
//! client is read.  It speaks HTTP/1.1 inside TLS with keep-alive:
//! request heads are parsed by httparse, within [`Limits`] (head size,
//! header count, body size, time for a request, idle time between them);
//! what breaks them is answered 400, 408, 413, 431, 501 or 505 and the
//! connection closed.  Nothing is written to descriptor 2 (it may be the
//! socket): errors go to syslog.

use std::time::{Duration, Instant};

use super::client::Helper;
use super::http::{MAX_BODY, Method, Request, Response, reason};
use crate::wire::{Wire, WireError};

/// How much a client may send and how slowly.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Request line and header fields together.
    pub max_head: usize,
    /// Header fields in one request.
    pub max_headers: usize,
    /// From a request's first byte to its last.
    pub request_time: Duration,
    /// Between requests on a kept-alive connection.
    pub idle: Duration,
    /// Requests on one connection.
    pub max_requests: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_head: 16 * 1024,
            max_headers: 64,
            request_time: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            max_requests: 200,
        }
    }
}

/// A request head as httparse read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the connection stays open after this request.
    pub fn keep_alive(&self) -> bool {
        if self.minor == 0 {
            self.has_token("connection", "keep-alive")
        } else {
            !self.has_token("connection", "close")
        }
    }
}

/// A complete head at the start of `buf` and its length; `None` while
/// more is needed; the status that refuses it otherwise.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<(Head, usize)>, u16> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => {
            let head = Head {
                method: req.method.unwrap_or("").to_string(),
                target: req.path.unwrap_or("").to_string(),
                minor: req.version.unwrap_or(1),
                headers: req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
            };
            if n > limits.max_head {
                return Err(431);
            }
            Ok(Some((head, n)))
        }
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head => Err(431),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::Version) => Err(505),
        Err(httparse::Error::TooManyHeaders) => Err(431),
        Err(_) => Err(400),
    }
}

/// What the head says about the body: its length, or the refusal.
pub fn body_length(head: &Head) -> Result<usize, u16> {
    if head.header("transfer-encoding").is_some() {
        // Chunked forms are not sent by browsers; refusing them also
        // closes the door to request smuggling.
        return Err(501);
    }
    let mut length: Option<u64> = None;
    for (_, v) in head.headers.iter().filter(|(k, _)| k == "content-length") {
        let v = v.trim();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(400);
        }
        let n: u64 = v.parse().map_err(|_| 413u16)?;
        if length.is_some_and(|l| l != n) {
            return Err(400);
        }
        length = Some(n);
    }
    let n = length.unwrap_or(0);
    if n > MAX_BODY as u64 {
        return Err(413);
    }
    Ok(n as usize)
}

/// The route and query of an origin-form target (`/d/x?y=z`), the path
/// percent-decoded.
pub fn split_target(target: &str) -> Result<(String, String), u16> {
    if !target.starts_with('/') {
        return Err(400);
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| 400u16)?;
    if path.contains('\0') {
        return Err(400);
    }
    Ok((path.trim_start_matches('/').to_string(), query.to_string()))
}

/// The response as HTTP/1.1 bytes.
pub fn response_bytes(resp: &Response, head_only: bool, keep: bool, hsts: bool) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in resp.all_headers(hsts) {
        let v: String = v.chars().filter(|c| !c.is_control()).collect();
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    text.push_str(if keep {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut bytes = text.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&resp.body);
    }
    bytes
}

/// What one round of reading gave.
enum Next {
    Request(Request, bool),
    /// Refused with this status; the connection closes after it.
    Refuse(u16),
    /// The client went away or stayed silent: close without a word.
    Gone,
}

fn read_request(wire: &mut Wire, limits: &Limits, remote: &str) -> Next {
    let idle_until = Instant::now() + limits.idle;
    let mut started: Option<Instant> = None;
    let (head, used) = loop {
        if !wire.input().is_empty() && started.is_none() {
            started = Some(Instant::now());
        }
        match parse_head(wire.input(), limits) {
            Ok(Some(h)) => break h,
            Ok(None) => {}
            Err(status) => return Next::Refuse(status),
        }
        let deadline = started.map_or(idle_until, |s| s + limits.request_time);
        match wire.read_more(deadline) {
            Ok(()) => {}
            Err(WireError::Timeout) if started.is_some() => return Next::Refuse(408),
            Err(_) => return Next::Gone,
        }
    };
    wire.input().drain(..used);
    if head.minor == 1 && head.header("host").is_none() {
        return Next::Refuse(400);
    }
    let length = match body_length(&head) {
        Ok(n) => n,
        Err(status) => return Next::Refuse(status),
    };
    let (route, query) = match split_target(&head.target) {
        Ok(t) => t,
        Err(status) => return Next::Refuse(status),
    };
    if length > wire.input().len() && head.has_token("expect", "100-continue") {
        wire.write(b"HTTP/1.1 100 Continue\r\n\r\n");
        if wire.flush(Instant::now() + limits.request_time).is_err() {
            return Next::Gone;
        }
    }
    let deadline = started.unwrap_or_else(Instant::now) + limits.request_time;
    while wire.input().len() < length {
        match wire.read_more(deadline) {
            Ok(()) => {}
            Err(WireError::Timeout) => return Next::Refuse(408),
            Err(_) => return Next::Gone,
        }
    }
    let body: Vec<u8> = wire.input().drain(..length).collect();
    let keep = head.keep_alive();
    Next::Request(
        Request {
            method: Method::parse(&head.method),
            base: String::new(),
            route,
            query,
            headers: head.headers,
            body,
            remote: remote.to_string(),
        },
        keep,
    )
}

/// Serve requests on `wire` until the client closes, a limit is reached,
/// or a request is refused.
pub fn serve(wire: &mut Wire, helper: &mut dyn Helper, remote: &str, hsts: bool, limits: &Limits) {
    for n in 1..=limits.max_requests {
        let (resp, head_only, keep) = match read_request(wire, limits, remote) {
            Next::Request(req, keep) => {
                let head_only = req.method == Method::Head;
                (super::app::handle(helper, &req), head_only, keep)
            }
            Next::Refuse(status) => (Response::text(status, reason(status)), false, false),
            Next::Gone => break,
        };
        let keep = keep && n < limits.max_requests;
        // In pieces: TLS takes only so much plaintext at a time (rustls
        // buffers 64 KiB), and a page of a thousand mailboxes is more.
        let deadline = Instant::now() + limits.request_time;
        let sent = response_bytes(&resp, head_only, keep, hsts)
            .chunks(16 * 1024)
            .all(|piece| {
                wire.write(piece);
                wire.flush(deadline).is_ok()
            });
        if !sent || !keep {
            break;
        }
    }
    wire.close_lingering(Duration::from_secs(2));
}

/// `panel --inetd`: the certificate as root, then `user`, then TLS and
/// HTTP on descriptors 0 and 1.  Returns the exit code.
pub fn run(cert: &crate::tls::ServerCert, user: &str) -> i32 {
    use crate::exit::ExitCode;
    use crate::log;
    let remote = crate::wire::peer(0).map_or_else(|| "unknown".to_string(), |p| p.ip.to_string());
    let Some(tls) = cert.load() else {
        log::err(
            None,
            &format!(
                "panel --inetd needs {} and {}",
                cert.cert.display(),
                cert.key.display()
            ),
        );
        return ExitCode::Config.code();
    };
    if let Err(e) = become_panel_user(user) {
        log::err(None, &format!("cannot become panel_user {user}: {e}"));
        return ExitCode::Config.code();
    }
    no_delay(1);
    let mut wire = Wire::new(0, 1);
    if let Err(e) = wire.start_tls(tls, Instant::now() + Duration::from_secs(30)) {
        let why = match e {
            WireError::Eof => "the client closed the connection".to_string(),
            WireError::Timeout => "timed out".to_string(),
            WireError::Io(e) => e.to_string(),
            WireError::Tls(m) => m,
        };
        log::info(None, &format!("TLS handshake from {remote} failed: {why}"));
        return 0;
    }
    let mut helper = super::client::Program::locate(true);
    serve(&mut wire, &mut helper, &remote, true, &Limits::default());
    0
}

/// Send small writes at once (TCP_NODELAY): otherwise a response
/// waits behind the session tickets TLS 1.3 sends after the handshake
/// until the client's delayed acknowledgement, 40 ms later.  Harmless on
/// a descriptor that is not a TCP socket.
fn no_delay(fd: i32) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a pointer to a c_int and its size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// Become `user` for good (when root; otherwise stay as we are).
fn become_panel_user(user: &str) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let u = crate::users::by_name(user).ok_or_else(|| "no such user".to_string())?;
    crate::privs::become_user(&u.name, u.uid, u.gid, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::protocol::{Answer, Record};
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    struct Fake;
    impl Helper for Fake {
        fn ask(&mut self, _r: &Record) -> Result<Answer, String> {
            Ok(Answer::NoSession)
        }
    }

    fn limits() -> Limits {
        Limits {
            request_time: Duration::from_millis(500),
            idle: Duration::from_millis(500),
            ..Limits::default()
        }
    }

    /// Serve one connection over a socket pair; returns what the client got.
    fn exchange(input: &[u8], limits: Limits) -> String {
        let (mut client, server) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            let mut wire = Wire::new(server.as_raw_fd(), server.as_raw_fd());
            serve(&mut wire, &mut Fake, "192.0.2.7", true, &limits);
            drop(wire);
            drop(server);
        });
        client.write_all(input).unwrap();
        let mut out = Vec::new();
        let _ = client.read_to_end(&mut out);
        drop(client);
        t.join().unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    fn statuses(out: &str) -> Vec<&str> {
        out.match_indices("HTTP/1.1 ")
            .map(|(i, _)| &out[i + 9..i + 12])
            .collect()
    }

    #[test]
    fn requests_are_kept_alive_until_close() {
        let out = exchange(
            b"GET /style.css HTTP/1.1\r\nHost: a\r\n\r\nHEAD /style.css HTTP/1.1\r\nHost: a\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            limits(),
        );
        assert_eq!(statuses(&out), ["200", "200", "404"], "{out}");
        assert!(out.contains("Strict-Transport-Security: max-age="));
        assert!(out.contains("Connection: keep-alive"));
        assert!(out.ends_with("</html>"), "{out}");
    }

    #[test]
    fn broken_requests_get_their_status_and_a_closed_connection() {
        let cases: &[(&[u8], &str)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", "400"),
            (b"GARBAGE\x01 / HTTP/1.1\r\nHost: a\r\n\r\n", "400"),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505"),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "505"),
            (b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "400"),
            (b"GET /%ff HTTP/1.1\r\nHost: a\r\n\r\n", "400"),
            (b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n", "413"),
            (b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "400"),
            (b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", "400"),
            (b"POST /login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "501"),
            // A body that never comes, a head that never ends.
            (b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab", "408"),
            (b"GET / HTTP/1.1\r\nHost: a\r\n", "408"),
        ];
        for (input, want) in cases {
            let out = exchange(input, limits());
            assert_eq!(
                statuses(&out),
                [*want],
                "{:?}: {out}",
                String::from_utf8_lossy(input)
            );
            assert!(out.contains("Connection: close"), "{out}");
            assert!(out.contains("X-Frame-Options: DENY"), "{out}");
        }
    }

    #[test]
    fn heads_over_the_limits_are_refused() {
        let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 20 * 1024));
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(statuses(&exchange(&big, limits())), ["431"]);
        let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..100 {
            many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(statuses(&exchange(&many, limits())), ["431"]);
    }

    #[test]
    fn a_silent_client_is_closed_without_a_word() {
        assert_eq!(exchange(b"", limits()), "");
    }

    #[test]
    fn expect_continue_is_answered_and_the_body_read() {
        let out = exchange(
            b"POST /login HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
            limits(),
        );
        // The body was all there: no interim answer; the form type is wrong.
        assert_eq!(statuses(&out), ["415"], "{out}");
    }

    #[test]
    fn garbage_heads_never_panic() {
        // Mutations of a valid request, and random bytes, through every
        // step that reads what a client sent.
        let valid =
            b"POST /d/a%40b?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nCookie: a=b\r\n\r\nabc";
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..20_000 {
            let mut input = if round % 2 == 0 {
                valid.to_vec()
            } else {
                (0..next() % 200).map(|_| next() as u8).collect()
            };
            for _ in 0..(next() % 4) {
                if input.is_empty() {
                    break;
                }
                let at = (next() as usize) % input.len();
                input[at] = next() as u8;
            }
            let cut = (next() as usize) % (input.len() + 1);
            if let Ok(Some((head, _))) = parse_head(&input[..cut], &Limits::default()) {
                let _ = body_length(&head);
                let _ = split_target(&head.target);
                let _ = head.keep_alive();
            }
        }
    }

    #[test]
    fn targets_are_split_and_decoded() {
        assert_eq!(
            split_target("/d/a%40b.example?x=%41").unwrap(),
            ("d/a@b.example".to_string(), "x=%41".to_string())
        );
        assert_eq!(split_target("*"), Err(400));
        assert_eq!(split_target("/%00"), Err(400));
        let head = |v: &str| Head {
            method: "POST".into(),
            target: "/".into(),
            minor: 1,
            headers: vec![("content-length".into(), v.into())],
        };
        assert_eq!(body_length(&head("12")), Ok(12));
        assert_eq!(body_length(&head("1 2")), Err(400));
        assert_eq!(body_length(&head("184467440737095516150")), Err(413));
    }
}
