//! The SMTP client the queue runner delivers with.
//!
//! Unlike lettre's transport (which gives up on the first refused
//! recipient), a transaction here reports **each recipient's** reply, so
//! that one message to several people at one host can be delivered to
//! some, deferred for others and bounced for the rest.
//!
//! * RFC 5321 timeouts on every read (greeting and MAIL/RCPT 5 minutes,
//!   DATA 2, data blocks 3, the final dot 10) and on connecting.
//! * EHLO (HELO when refused), PIPELINING (MAIL and all RCPTs in one
//!   write), SIZE, 8BITMIME (8-bit bodies are converted to
//!   quoted-printable for servers without it), DSN parameters when offered.
//! * STARTTLS via rustls; AUTH PLAIN or LOGIN, as the server offers them.
//! * A session is reused for several messages (RSET between them).
//! * LMTP (RFC 2033) with the same transaction code: LHLO instead of
//!   EHLO, over TCP or a UNIX socket, and after the final dot one reply
//!   per accepted recipient, each handed to the caller as it arrives
//!   ([`Session::send_lmtp`]), so that it can be recorded before the next
//!   is read.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{Reply, parse_reply_line};

/// Read timeouts, RFC 5321 §4.5.3.2.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub greeting: Duration,
    pub command: Duration,
    pub data_init: Duration,
    pub data_block: Duration,
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            greeting: Duration::from_secs(300),
            command: Duration::from_secs(300),
            data_init: Duration::from_secs(120),
            data_block: Duration::from_secs(180),
            data_end: Duration::from_secs(600),
        }
    }
}

impl Timeouts {
    /// Every timeout scaled down to at most `max` (tests).
    pub fn capped(max: Duration) -> Timeouts {
        let d = Timeouts::default();
        Timeouts {
            connect: d.connect.min(max),
            greeting: d.greeting.min(max),
            command: d.command.min(max),
            data_init: d.data_init.min(max),
            data_block: d.data_block.min(max),
            data_end: d.data_end.min(max),
        }
    }
}

/// What went wrong talking to a server.
#[derive(Debug)]
pub enum Error {
    /// Could not connect (refused, unreachable, timed out).
    Connect(io::Error),
    /// The connection broke or a read timed out mid-session.
    Io(io::Error),
    /// The server answered something else than expected (greeting, EHLO,
    /// MAIL, DATA...).
    Reply(Reply),
    /// The TLS handshake failed.
    Tls(String),
    /// Authentication was refused.
    Auth(Reply),
    /// Authentication is required but impossible (no mechanism we know, no
    /// TLS).
    AuthUnavailable(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect(e) => write!(f, "{}", crate::exit::io_reason(e)),
            Error::Io(e)
                if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock =>
            {
                f.write_str("timeout waiting for the server")
            }
            Error::Io(e) => write!(f, "{}", crate::exit::io_reason(e)),
            Error::Reply(r) => write!(f, "{r}"),
            Error::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            Error::Auth(r) => write!(f, "authentication failed: {r}"),
            Error::AuthUnavailable(why) => write!(f, "cannot authenticate: {why}"),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    /// LMTP over a UNIX socket (Dovecot's `$base_dir/lmtp`).
    Unix(UnixStream),
}

impl Stream {
    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.set_read_timeout(Some(t)),
            Stream::Tls(s) => s.sock.set_read_timeout(Some(t)),
            Stream::Unix(s) => s.set_read_timeout(Some(t)),
        }
    }

    fn set_write_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.set_write_timeout(Some(t)),
            Stream::Tls(s) => s.sock.set_write_timeout(Some(t)),
            Stream::Unix(s) => s.set_write_timeout(Some(t)),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// What the server said it supports in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    pub esmtp: bool,
    pub pipelining: bool,
    pub size: Option<u64>,
    pub eightbitmime: bool,
    pub starttls: bool,
    pub dsn: bool,
    pub auth: Vec<String>,
}

impl Extensions {
    fn parse(r: &Reply) -> Extensions {
        let mut e = Extensions {
            esmtp: true,
            ..Default::default()
        };
        for l in r.lines.iter().skip(1) {
            let mut words = l.split_whitespace();
            let kw = words.next().unwrap_or("").to_ascii_uppercase();
            match kw.as_str() {
                "PIPELINING" => e.pipelining = true,
                "SIZE" => e.size = Some(words.next().and_then(|v| v.parse().ok()).unwrap_or(0)),
                "8BITMIME" => e.eightbitmime = true,
                "STARTTLS" => e.starttls = true,
                "DSN" => e.dsn = true,
                "AUTH" => e.auth.extend(words.map(|w| w.to_ascii_uppercase())),
                _ if kw.starts_with("AUTH=") => e
                    .auth
                    .extend(kw[5..].split_whitespace().map(str::to_string)),
                _ => {}
            }
        }
        e
    }
}

/// One open session with a server.
pub struct Session {
    stream: BufReader<Stream>,
    /// The server's name as we know it (MX name).
    pub server: String,
    pub ext: Extensions,
    pub tls: bool,
    pub authenticated: bool,
    /// The greeting (for logs).
    pub greeting: Reply,
    timeouts: Timeouts,
    helo: String,
    /// Messages sent in this session.
    pub messages: usize,
    /// An LMTP session: LHLO, and one reply per recipient after the data.
    lmtp: bool,
}

/// A recipient of one transaction.
#[derive(Debug, Clone)]
pub struct Rcpt {
    pub address: String,
    /// DSN NOTIFY (`SUCCESS,FAILURE`, `NEVER`), sent when the server
    /// offers DSN.
    pub notify: Option<String>,
    /// DSN ORCPT.
    pub orcpt: Option<String>,
}

/// One message to send.
pub struct Outgoing<'a> {
    /// MAIL FROM address ("" = `<>`).
    pub sender: &'a str,
    pub rcpts: &'a [Rcpt],
    /// The whole message (header and body), LF line ends.
    pub message: &'a [u8],
    /// DSN RET (`FULL`/`HDRS`) and ENVID.
    pub ret: Option<&'a str>,
    pub envid: Option<&'a str>,
}

/// What the server said in one transaction.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Reply to MAIL FROM.
    pub mail: Reply,
    /// One reply per recipient, in order.
    pub rcpts: Vec<Reply>,
    /// Reply to the end of data; `None` when no recipient was accepted (or
    /// MAIL failed), so no data was sent.
    pub data: Option<Reply>,
}

impl Outcome {
    /// The final reply for recipient `i`: its RCPT reply if that refused,
    /// else the data reply (or MAIL's, if MAIL refused).
    pub fn for_rcpt(&self, i: usize) -> &Reply {
        if !self.mail.is_positive() {
            return &self.mail;
        }
        let r = &self.rcpts[i];
        if !r.is_positive() {
            return r;
        }
        self.data.as_ref().unwrap_or(r)
    }
}

/// What an LMTP server said in one transaction: the final reply for
/// each recipient, in order — its MAIL or RCPT reply when refused there,
/// its own reply after the data when accepted, or `None` when the
/// connection broke before that reply came (`cut` says how).  The
/// server may or may not have delivered to those (RFC 2033 has no way to
/// tell).
#[derive(Debug)]
pub struct LmtpOutcome {
    pub replies: Vec<Option<Reply>>,
    pub cut: Option<Error>,
}

/// Where an LMTP server listens.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint<'a> {
    Tcp(SocketAddr),
    Unix(&'a Path),
}

/// How far a transaction got before the data's replies.
enum Transmitted {
    /// Stopped before or at DATA: nothing was delivered.
    Stopped(Outcome),
    /// The message and its final dot were sent.
    Data(Outcome),
}

impl Session {
    /// Connect to `addr`, read the greeting and say EHLO (HELO if EHLO is
    /// refused).  `bind` chooses the local address.
    pub fn connect(
        addr: SocketAddr,
        server: &str,
        helo: &str,
        timeouts: Timeouts,
        bind: Option<IpAddr>,
    ) -> Result<Session, Error> {
        Session::open(addr, server, helo, timeouts, bind, None)
    }

    /// Like [`Session::connect`], but TLS from the first byte (port 465,
    /// RFC 8314).
    pub fn connect_tls(
        addr: SocketAddr,
        server: &str,
        helo: &str,
        timeouts: Timeouts,
        bind: Option<IpAddr>,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Session, Error> {
        Session::open(addr, server, helo, timeouts, bind, Some(config))
    }

    fn open(
        addr: SocketAddr,
        server: &str,
        helo: &str,
        timeouts: Timeouts,
        bind: Option<IpAddr>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Session, Error> {
        let tcp = match bind {
            None => TcpStream::connect_timeout(&addr, timeouts.connect).map_err(Error::Connect)?,
            Some(local) => connect_from(addr, local, timeouts.connect).map_err(Error::Connect)?,
        };
        let _ = tcp.set_nodelay(true);
        tcp.set_write_timeout(Some(timeouts.data_block))?;
        let encrypted = tls.is_some();
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(
                    server.trim_end_matches('.').to_string(),
                )
                .map_err(|e| Error::Tls(e.to_string()))?;
                let conn = rustls::ClientConnection::new(config, name)
                    .map_err(|e| Error::Tls(e.to_string()))?;
                let mut t = rustls::StreamOwned::new(conn, tcp);
                t.sock.set_read_timeout(Some(timeouts.greeting))?;
                while t.conn.is_handshaking() {
                    t.conn
                        .complete_io(&mut t.sock)
                        .map_err(|e| Error::Tls(e.to_string()))?;
                }
                Stream::Tls(Box::new(t))
            }
        };
        Session::start(stream, server, helo, timeouts, encrypted, false)
    }

    /// Connect to an LMTP server, read the greeting and say LHLO.
    pub fn connect_lmtp(
        to: Endpoint<'_>,
        server: &str,
        helo: &str,
        timeouts: Timeouts,
    ) -> Result<Session, Error> {
        let stream = match to {
            Endpoint::Unix(path) => {
                let s = UnixStream::connect(path).map_err(Error::Connect)?;
                s.set_write_timeout(Some(timeouts.data_block))?;
                Stream::Unix(s)
            }
            Endpoint::Tcp(addr) => {
                let tcp =
                    TcpStream::connect_timeout(&addr, timeouts.connect).map_err(Error::Connect)?;
                let _ = tcp.set_nodelay(true);
                tcp.set_write_timeout(Some(timeouts.data_block))?;
                Stream::Plain(tcp)
            }
        };
        Session::start(stream, server, helo, timeouts, false, true)
    }

    /// Read the greeting and say hello on a new connection.
    fn start(
        stream: Stream,
        server: &str,
        helo: &str,
        timeouts: Timeouts,
        encrypted: bool,
        lmtp: bool,
    ) -> Result<Session, Error> {
        let mut s = Session {
            stream: BufReader::with_capacity(16 * 1024, stream),
            server: server.to_string(),
            ext: Extensions::default(),
            tls: encrypted,
            authenticated: false,
            greeting: Reply::new(0, ""),
            timeouts,
            helo: helo.to_string(),
            messages: 0,
            lmtp,
        };
        let g = s.read_reply(timeouts.greeting)?;
        if g.code != 220 {
            let _ = s.command("QUIT", Duration::from_secs(5));
            return Err(Error::Reply(g));
        }
        s.greeting = g;
        s.hello()?;
        Ok(s)
    }

    fn hello(&mut self) -> Result<(), Error> {
        let verb = if self.lmtp { "LHLO" } else { "EHLO" };
        let r = self.command(&format!("{verb} {}", self.helo), self.timeouts.command)?;
        if r.code == 250 {
            self.ext = Extensions::parse(&r);
            return Ok(());
        }
        // LMTP has no HELO to fall back to (RFC 2033 §4.1).
        if r.code >= 500 && !self.lmtp {
            let r = self.command(&format!("HELO {}", self.helo), self.timeouts.command)?;
            if r.code == 250 {
                self.ext = Extensions::default();
                return Ok(());
            }
            return Err(Error::Reply(r));
        }
        Err(Error::Reply(r))
    }

    /// STARTTLS and a new EHLO.  On a handshake failure the session is
    /// unusable: the caller reconnects without TLS if that is allowed.
    pub fn starttls(&mut self, config: Arc<rustls::ClientConfig>, name: &str) -> Result<(), Error> {
        let r = self.command("STARTTLS", self.timeouts.command)?;
        if r.code != 220 {
            return Err(Error::Reply(r));
        }
        let server_name =
            rustls::pki_types::ServerName::try_from(name.trim_end_matches('.').to_string())
                .map_err(|e| Error::Tls(e.to_string()))?;
        let conn = rustls::ClientConnection::new(config, server_name)
            .map_err(|e| Error::Tls(e.to_string()))?;
        let Stream::Plain(plain) = self.stream.get_ref() else {
            return Err(Error::Tls("STARTTLS on this connection".to_string()));
        };
        let placeholder = Stream::Plain(plain.try_clone()?);
        let old = std::mem::replace(&mut self.stream, BufReader::new(placeholder));
        let Stream::Plain(tcp) = old.into_inner() else {
            return Err(Error::Tls("already encrypted".to_string()));
        };
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.sock.set_read_timeout(Some(self.timeouts.command))?;
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| Error::Tls(e.to_string()))?;
        }
        self.stream = BufReader::with_capacity(16 * 1024, Stream::Tls(Box::new(tls)));
        self.tls = true;
        self.hello()
    }

    /// AUTH with PLAIN (preferred) or LOGIN.
    pub fn auth(&mut self, user: &str, password: &str) -> Result<(), Error> {
        use crate::b64::encode;
        if self.ext.auth.iter().any(|m| m == "PLAIN") {
            let token = encode(format!("\0{user}\0{password}").as_bytes());
            let r = self.command(&format!("AUTH PLAIN {token}"), self.timeouts.command)?;
            if r.code == 235 {
                self.authenticated = true;
                return Ok(());
            }
            return Err(Error::Auth(r));
        }
        if self.ext.auth.iter().any(|m| m == "LOGIN") {
            let r = self.command("AUTH LOGIN", self.timeouts.command)?;
            if r.code != 334 {
                return Err(Error::Auth(r));
            }
            let r = self.command(&encode(user.as_bytes()), self.timeouts.command)?;
            if r.code != 334 {
                return Err(Error::Auth(r));
            }
            let r = self.command(&encode(password.as_bytes()), self.timeouts.command)?;
            if r.code == 235 {
                self.authenticated = true;
                return Ok(());
            }
            return Err(Error::Auth(r));
        }
        Err(Error::AuthUnavailable(format!(
            "{} offers no AUTH PLAIN or LOGIN{}",
            self.server,
            if self.tls {
                ""
            } else {
                " (perhaps only after STARTTLS)"
            }
        )))
    }

    /// Send one message; per-recipient replies.  A connection-level failure
    /// (I/O, timeout) is an `Err` and the session must be dropped.
    pub fn send(&mut self, m: &Outgoing<'_>) -> Result<Outcome, Error> {
        let mut out = match self.transmit(m)? {
            Transmitted::Stopped(out) => return Ok(out),
            Transmitted::Data(out) => out,
        };
        out.data = Some(self.read_reply(self.timeouts.data_end)?);
        self.messages += 1;
        Ok(out)
    }

    /// Send one message over LMTP: after the final dot, one reply per
    /// accepted recipient, in RCPT order (RFC 2033 §4.2).  `on_reply` is
    /// called with each recipient's index and reply as it is read, before
    /// the next is waited for.  An `Err` means nothing was delivered (the
    /// connection failed before the final dot); a connection lost after
    /// it is `cut` in the outcome, with the replies read until then.
    pub fn send_lmtp(
        &mut self,
        m: &Outgoing<'_>,
        on_reply: &mut dyn FnMut(usize, &Reply),
    ) -> Result<LmtpOutcome, Error> {
        let out = match self.transmit(m)? {
            Transmitted::Stopped(out) => {
                let replies = (0..m.rcpts.len())
                    .map(|i| Some(out.for_rcpt(i).clone()))
                    .collect();
                return Ok(LmtpOutcome { replies, cut: None });
            }
            Transmitted::Data(out) => out,
        };
        let mut replies: Vec<Option<Reply>> = out
            .rcpts
            .iter()
            .map(|r| (!r.is_positive()).then(|| r.clone()))
            .collect();
        for i in 0..replies.len() {
            if replies[i].is_some() {
                continue;
            }
            match self.read_reply(self.timeouts.data_end) {
                Ok(r) => {
                    on_reply(i, &r);
                    replies[i] = Some(r);
                }
                Err(e) => {
                    return Ok(LmtpOutcome {
                        replies,
                        cut: Some(e),
                    });
                }
            }
        }
        self.messages += 1;
        Ok(LmtpOutcome { replies, cut: None })
    }

    /// MAIL, RCPT, DATA and the message up to its final dot; stops early
    /// (and resets) when MAIL, every RCPT or DATA is refused.
    fn transmit(&mut self, m: &Outgoing<'_>) -> Result<Transmitted, Error> {
        let eight = super::data::has_8bit(m.message);
        let converted;
        let body: &[u8] = if eight && !self.ext.eightbitmime {
            converted = super::data::to_7bit(m.message);
            &converted
        } else {
            m.message
        };
        let mut mail = format!("MAIL FROM:<{}>", m.sender);
        if self.ext.size.is_some() {
            mail.push_str(&format!(" SIZE={}", super::data::wire_size(body)));
        }
        if eight && self.ext.eightbitmime {
            mail.push_str(" BODY=8BITMIME");
        }
        if self.ext.dsn {
            if let Some(r) = m.ret {
                mail.push_str(&format!(" RET={r}"));
            }
            if let Some(e) = m.envid {
                mail.push_str(&format!(" ENVID={}", xtext(e)));
            }
        }
        let rcpt_cmds: Vec<String> = m
            .rcpts
            .iter()
            .map(|r| {
                let mut c = format!("RCPT TO:<{}>", r.address);
                if self.ext.dsn {
                    if let Some(n) = &r.notify {
                        c.push_str(&format!(" NOTIFY={n}"));
                    }
                    if let Some(o) = &r.orcpt {
                        c.push_str(&format!(" ORCPT={}", xtext(o)));
                    }
                }
                c
            })
            .collect();
        let t = self.timeouts.command;
        let (mail_reply, rcpt_replies) = if self.ext.pipelining {
            let mut batch = String::new();
            batch.push_str(&mail);
            batch.push_str("\r\n");
            for c in &rcpt_cmds {
                batch.push_str(c);
                batch.push_str("\r\n");
            }
            self.stream.get_mut().write_all(batch.as_bytes())?;
            self.stream.get_mut().flush()?;
            let mr = self.read_reply(t)?;
            let mut rr = Vec::new();
            for _ in &rcpt_cmds {
                rr.push(self.read_reply(t)?);
            }
            (mr, rr)
        } else {
            let mr = self.command(&mail, t)?;
            let mut rr = Vec::new();
            if mr.is_positive() {
                for c in &rcpt_cmds {
                    rr.push(self.command(c, t)?);
                }
            }
            (mr, rr)
        };
        let mut out = Outcome {
            mail: mail_reply,
            rcpts: rcpt_replies,
            data: None,
        };
        if !out.mail.is_positive() {
            // Keep the per-recipient vector complete for the caller.
            out.rcpts.resize(m.rcpts.len(), out.mail.clone());
            let _ = self.command("RSET", t);
            return Ok(Transmitted::Stopped(out));
        }
        if !out.rcpts.iter().any(Reply::is_positive) {
            let _ = self.command("RSET", t);
            return Ok(Transmitted::Stopped(out));
        }
        let r = self.command("DATA", self.timeouts.data_init)?;
        if r.code != 354 {
            out.data = Some(r);
            let _ = self.command("RSET", t);
            return Ok(Transmitted::Stopped(out));
        }
        self.stream
            .get_ref()
            .set_write_timeout(self.timeouts.data_block)?;
        {
            let w = self.stream.get_mut();
            let mut bw = io::BufWriter::with_capacity(64 * 1024, w);
            super::data::write_data(&mut bw, body)?;
            bw.flush()?;
        }
        Ok(Transmitted::Data(out))
    }

    /// RSET, to reuse the session for another message; false if it failed.
    pub fn reset(&mut self) -> bool {
        matches!(self.command("RSET", self.timeouts.command), Ok(r) if r.code == 250)
    }

    /// QUIT (best effort).
    pub fn quit(mut self) {
        let _ = self.command("QUIT", Duration::from_secs(10));
    }

    fn command(&mut self, cmd: &str, timeout: Duration) -> Result<Reply, Error> {
        let w = self.stream.get_mut();
        w.write_all(cmd.as_bytes())?;
        w.write_all(b"\r\n")?;
        w.flush()?;
        self.read_reply(timeout)
    }

    fn read_reply(&mut self, timeout: Duration) -> Result<Reply, Error> {
        self.stream.get_ref().set_read_timeout(timeout)?;
        let mut lines = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            let n = read_line_limited(&mut self.stream, &mut line, 8192)?;
            if n == 0 {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed by the server",
                )));
            }
            let Some((code, last, text)) = parse_reply_line(&line) else {
                return Err(Error::Reply(Reply::new(
                    0,
                    format!("malformed reply: {}", line.trim_end()),
                )));
            };
            lines.push(text.to_string());
            if last {
                return Ok(Reply { code, lines });
            }
            if lines.len() > 100 {
                return Err(Error::Reply(Reply::new(0, "reply too long")));
            }
        }
    }
}

/// Read one line of at most `max` bytes (longer lines are cut).
fn read_line_limited(r: &mut impl BufRead, out: &mut String, max: usize) -> io::Result<usize> {
    let mut buf = Vec::new();
    let n = r.take(max as u64).read_until(b'\n', &mut buf)?;
    out.push_str(&String::from_utf8_lossy(&buf));
    Ok(n)
}

/// Connect from a chosen local address.
fn connect_from(addr: SocketAddr, local: IpAddr, timeout: Duration) -> io::Result<TcpStream> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, socket,
    };
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd =
        socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).map_err(io::Error::from)?;
    let local_sa: SockaddrStorage = SocketAddr::new(local, 0).into();
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &local_sa).map_err(io::Error::from)?;
    let stream = TcpStream::from(fd);
    stream.set_write_timeout(Some(timeout))?;
    let remote: SockaddrStorage = addr.into();
    connect(std::os::fd::AsRawFd::as_raw_fd(&stream), &remote).map_err(io::Error::from)?;
    Ok(stream)
}

/// RFC 3461 xtext encoding for ENVID and ORCPT.
pub fn xtext(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if (33..=126).contains(&b) && b != b'+' && b != b'=' {
                (b as char).to_string()
            } else {
                format!("+{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn xtext_escapes() {
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
    }

    /// A scripted server: answers each command by the first matching rule.
    fn fake_server(
        script: Vec<(&'static str, &'static str)>,
    ) -> (SocketAddr, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            let mut seen = Vec::new();
            w.write_all(b"220 fake ESMTP\r\n").unwrap();
            let mut in_data = false;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end().to_string();
                if in_data {
                    if l == "." {
                        in_data = false;
                        w.write_all(b"250 2.0.0 queued as X\r\n").unwrap();
                    }
                    seen.push(format!("D:{l}"));
                    continue;
                }
                seen.push(l.clone());
                let reply = script
                    .iter()
                    .find(|(p, _)| l.to_ascii_uppercase().starts_with(p))
                    .map(|(_, r)| *r)
                    .unwrap_or("250 OK");
                if l.eq_ignore_ascii_case("DATA") && reply.starts_with("354") {
                    in_data = true;
                }
                w.write_all(reply.replace("\\n", "\r\n").as_bytes())
                    .unwrap();
                w.write_all(b"\r\n").unwrap();
                if l.eq_ignore_ascii_case("QUIT") {
                    break;
                }
            }
            seen
        });
        (addr, h)
    }

    #[test]
    fn per_recipient_outcomes_with_pipelining() {
        let (addr, h) = fake_server(vec![
            (
                "EHLO",
                "250-fake\\n250-PIPELINING\\n250-SIZE 1000000\\n250 8BITMIME",
            ),
            ("RCPT TO:<GOOD", "250 2.1.5 ok"),
            ("RCPT TO:<LATER", "451 4.2.0 try later"),
            ("RCPT TO:<BAD", "550 5.1.1 no such user"),
            ("DATA", "354 go ahead"),
        ]);
        let mut s = Session::connect(
            addr,
            "fake",
            "me.example",
            Timeouts::capped(Duration::from_secs(5)),
            None,
        )
        .unwrap();
        assert!(s.ext.pipelining && s.ext.eightbitmime);
        let rcpts: Vec<Rcpt> = ["good@x", "later@x", "bad@x"]
            .iter()
            .map(|a| Rcpt {
                address: a.to_string(),
                notify: None,
                orcpt: None,
            })
            .collect();
        let out = s
            .send(&Outgoing {
                sender: "a@b",
                rcpts: &rcpts,
                message: b"Subject: t\n\n.dot\nbody\n",
                ret: None,
                envid: None,
            })
            .unwrap();
        assert_eq!(out.for_rcpt(0).code, 250);
        assert_eq!(out.for_rcpt(1).code, 451);
        assert_eq!(out.for_rcpt(2).code, 550);
        s.quit();
        let seen = h.join().unwrap();
        assert!(
            seen.iter().any(|l| l.starts_with("MAIL FROM:<a@b> SIZE=")),
            "{seen:?}"
        );
        assert!(seen.contains(&"D:..dot".to_string()), "{seen:?}");
    }

    #[test]
    fn eight_bit_is_converted_for_old_servers_and_helo_fallback() {
        let (addr, h) = fake_server(vec![("EHLO", "502 no"), ("DATA", "354 go")]);
        let mut s = Session::connect(
            addr,
            "fake",
            "me.example",
            Timeouts::capped(Duration::from_secs(5)),
            None,
        )
        .unwrap();
        assert!(!s.ext.esmtp);
        let rcpts = vec![Rcpt {
            address: "x@y".into(),
            notify: None,
            orcpt: None,
        }];
        let out = s
            .send(&Outgoing {
                sender: "",
                rcpts: &rcpts,
                message: "Subject: t\n\ncafé\n".as_bytes(),
                ret: None,
                envid: None,
            })
            .unwrap();
        assert_eq!(out.data.unwrap().code, 250);
        s.quit();
        let seen = h.join().unwrap();
        assert!(seen.iter().any(|l| l == "HELO me.example"), "{seen:?}");
        assert!(seen.iter().any(|l| l == "MAIL FROM:<>"), "{seen:?}");
        assert!(seen.iter().any(|l| l == "D:caf=C3=A9"), "{seen:?}");
    }
}
