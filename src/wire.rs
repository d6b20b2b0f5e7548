//! A client connection as the line-based servers (pop3d, the SMTP server)
//! see it: bytes in on one descriptor and
//! out on another (both the socket under inetd), optionally inside TLS;
//! command lines read with a bounded buffer and a deadline, replies
//! buffered and written with a deadline.
//!
//! Nothing a client sends can make this allocate more than the fixed line
//! buffer: an over-long line is reported as such and skipped to its end.

use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Instant;

/// Longest command line accepted, CRLF included (RFC 2449 asks for 255;
/// SASL responses need more, as in Dovecot).
pub const MAX_LINE: usize = 2048;

/// Why no line (or no write) happened.
#[derive(Debug)]
pub enum WireError {
    /// The client closed the connection.
    Eof,
    /// The deadline passed.
    Timeout,
    Io(io::Error),
    Tls(String),
}

/// One line from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The line without its CRLF (or bare LF).
    Text(Vec<u8>),
    /// Longer than [`MAX_LINE`]; skipped up to its end.
    TooLong,
}

/// A raw descriptor as `Read`/`Write`, for rustls.  Non-blocking: a read
/// or write that would wait returns `WouldBlock`.
struct Fd(RawFd);

impl Read for Fd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::read(self.0, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

impl Write for Fd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for buf.len() bytes.  MSG_NOSIGNAL is not
        // available for non-sockets: SIGPIPE is ignored process-wide.
        let n = unsafe { libc::write(self.0, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Wait until `fd` is readable (`write` false) or writable, or the
/// deadline passes.
fn wait(fd: RawFd, write: bool, deadline: Instant) -> Result<(), WireError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(WireError::Timeout);
        }
        let mut p = libc::pollfd {
            fd,
            events: if write { libc::POLLOUT } else { libc::POLLIN },
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r > 0 {
            return Ok(());
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(WireError::Io(e));
            }
        }
    }
}

/// Make a descriptor non-blocking (the wire waits with poll).
/// Make `fd` non-blocking; returns its flags before.
pub fn set_nonblocking(fd: RawFd) -> i32 {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we were given.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        fl
    }
}

/// The connection.
pub struct Wire {
    rfd: RawFd,
    wfd: RawFd,
    tls: Option<rustls::ServerConnection>,
    /// Plaintext received and not yet consumed.
    inbuf: Vec<u8>,
    /// Plaintext replies not yet sent.
    out: Vec<u8>,
    /// The descriptors' flags before, put back when done: a pipe or
    /// terminal shared with the caller must not stay non-blocking.
    restore: [(RawFd, i32); 2],
    /// The last line read ended with CRLF (not a bare LF).
    last_crlf: bool,
}

impl Drop for Wire {
    fn drop(&mut self) {
        for (fd, fl) in self.restore {
            if fl >= 0 && fl & libc::O_NONBLOCK == 0 {
                // SAFETY: F_SETFL on a descriptor we were given.
                unsafe { libc::fcntl(fd, libc::F_SETFL, fl) };
            }
        }
    }
}

impl Wire {
    /// A connection reading `rfd` and writing `wfd` (made non-blocking).
    pub fn new(rfd: RawFd, wfd: RawFd) -> Wire {
        let restore = [(rfd, set_nonblocking(rfd)), (wfd, set_nonblocking(wfd))];
        Wire {
            restore,
            last_crlf: true,
            rfd,
            wfd,
            tls: None,
            inbuf: Vec::with_capacity(MAX_LINE),
            out: Vec::with_capacity(16 * 1024),
        }
    }

    /// Start with `bytes` already received (handed over by another
    /// process).
    pub fn with_input(mut self, bytes: &[u8]) -> Wire {
        self.inbuf.extend_from_slice(bytes);
        self
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// `version=TLSv1_3 cipher=...` for a `Received:` field, when in TLS.
    pub fn tls_summary(&self) -> Option<String> {
        let t = self.tls.as_ref()?;
        let version = t
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        let cipher = t
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite()))
            .unwrap_or_default();
        Some(format!("version={version} cipher={cipher}"))
    }

    /// Whether input is waiting in the buffer (the client pipelined).
    pub fn has_buffered_input(&self) -> bool {
        !self.inbuf.is_empty()
    }

    /// Input received and not consumed (for a hand-over).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.inbuf)
    }

    /// The descriptors (for a relay).
    pub fn fds(&self) -> (RawFd, RawFd) {
        (self.rfd, self.wfd)
    }

    /// Implicit TLS (port 995), or STLS once `+OK` is sent and flushed:
    /// anything the client sent before the handshake is thrown away
    /// (RFC 2595; the CVE-2011-0411 command injection).
    pub fn start_tls(
        &mut self,
        config: Arc<rustls::ServerConfig>,
        deadline: Instant,
    ) -> Result<(), WireError> {
        self.inbuf.clear();
        let conn =
            rustls::ServerConnection::new(config).map_err(|e| WireError::Tls(e.to_string()))?;
        self.tls = Some(conn);
        while self.tls.as_ref().is_some_and(|t| t.is_handshaking()) {
            self.pump(deadline)?;
        }
        // Leftover plaintext from the handshake flight is kept: it was
        // sent inside TLS.
        Ok(())
    }

    /// Move TLS records both ways once: write what rustls wants to send,
    /// then read and decrypt what arrives.
    fn pump(&mut self, deadline: Instant) -> Result<(), WireError> {
        self.send_tls(deadline)?;
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        if tls.wants_read() {
            wait(self.rfd, false, deadline)?;
            match tls.read_tls(&mut Fd(self.rfd)) {
                Ok(0) => return Err(WireError::Eof),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
                Err(e) => return Err(WireError::Io(e)),
            }
            if let Err(e) = tls.process_new_packets() {
                // Tell the client why before giving up.
                let _ = tls.write_tls(&mut Fd(self.wfd));
                return Err(WireError::Tls(e.to_string()));
            }
        }
        self.send_tls(deadline)
    }

    /// Write out every pending TLS record.
    fn send_tls(&mut self, deadline: Instant) -> Result<(), WireError> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        while tls.wants_write() {
            match tls.write_tls(&mut Fd(self.wfd)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait(self.wfd, true, deadline)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(WireError::Io(e)),
            }
        }
        Ok(())
    }

    /// Read more plaintext into the input buffer (at most `room` bytes).
    fn fill(&mut self, deadline: Instant, room: usize) -> Result<(), WireError> {
        let mut buf = [0u8; 16 * 1024];
        let want = room.clamp(1, buf.len());
        if self.tls.is_none() {
            wait(self.rfd, false, deadline)?;
            match Fd(self.rfd).read(&mut buf[..want]) {
                Ok(0) => Err(WireError::Eof),
                Ok(n) => {
                    self.inbuf.extend_from_slice(&buf[..n]);
                    Ok(())
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    Ok(())
                }
                Err(e) => Err(WireError::Io(e)),
            }
        } else {
            loop {
                let tls = self.tls.as_mut().expect("tls");
                match tls.reader().read(&mut buf[..want]) {
                    Ok(0) => return Err(WireError::Eof),
                    Ok(n) => {
                        self.inbuf.extend_from_slice(&buf[..n]);
                        return Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.pump(deadline)?,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Err(WireError::Eof);
                    }
                    Err(e) => return Err(WireError::Io(e)),
                }
            }
        }
    }

    /// The next command line.  CRLF and bare LF both end a line.
    pub fn read_line(&mut self, deadline: Instant) -> Result<Line, WireError> {
        let mut skipping = false;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.inbuf) {
                let mut line: Vec<u8> = self.inbuf.drain(..=i).collect();
                if skipping {
                    return Ok(Line::TooLong);
                }
                line.pop();
                self.last_crlf = line.last() == Some(&b'\r');
                if self.last_crlf {
                    line.pop();
                }
                return Ok(Line::Text(line));
            }
            if self.inbuf.len() >= MAX_LINE {
                // Too long: forget it and skip to its end.
                self.inbuf.clear();
                skipping = true;
            }
            let room = MAX_LINE - self.inbuf.len();
            self.fill(deadline, room)?;
        }
    }

    /// Whether the last line read ended with CRLF rather than a bare LF.
    pub fn last_line_crlf(&self) -> bool {
        self.last_crlf
    }

    /// Read at least one more byte into the input buffer (for DATA, whose
    /// lines are not bounded like command lines).
    pub fn read_more(&mut self, deadline: Instant) -> Result<(), WireError> {
        self.fill(deadline, 16 * 1024)
    }

    /// The received bytes not yet consumed (for DATA).
    pub fn input(&mut self) -> &mut Vec<u8> {
        &mut self.inbuf
    }

    /// Whether the client has sent anything within `wait`: an SMTP
    /// client that talks before the greeting.  (In TLS, only data counts,
    /// not the records that finish a handshake.)
    pub fn client_talks_within(&mut self, wait: std::time::Duration) -> bool {
        if !self.inbuf.is_empty() {
            return true;
        }
        if self.tls.is_some() {
            return self.fill(Instant::now() + wait, MAX_LINE).is_ok() && !self.inbuf.is_empty();
        }
        let mut pfd = libc::pollfd {
            fd: self.rfd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = wait.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        r > 0 && pfd.revents & libc::POLLIN != 0
    }

    /// Queue reply bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// The reply buffer itself, for writing large replies without a copy.
    pub fn out_buffer(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Bytes queued and not yet sent.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// Send everything queued.
    pub fn flush(&mut self, deadline: Instant) -> Result<(), WireError> {
        if self.out.is_empty() {
            return Ok(());
        }
        if let Some(tls) = self.tls.as_mut() {
            tls.writer().write_all(&self.out).map_err(WireError::Io)?;
            self.out.clear();
            return self.send_tls(deadline);
        }
        let mut done = 0;
        while done < self.out.len() {
            match Fd(self.wfd).write(&self.out[done..]) {
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait(self.wfd, true, deadline)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.out.clear();
                    return Err(WireError::Io(e));
                }
            }
        }
        self.out.clear();
        Ok(())
    }

    /// Close the TLS session politely (a close_notify), if there is one.
    pub fn close(&mut self, deadline: Instant) {
        let _ = self.flush(deadline);
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            let _ = self.send_tls(deadline);
        }
    }

    /// Close politely and then read (and drop) what the client still
    /// sends, for at most `linger`: closing a socket with unread input
    /// makes the kernel send a reset, which can destroy the last reply
    /// before the client reads it.
    pub fn close_lingering(&mut self, linger: std::time::Duration) {
        let end = Instant::now() + linger;
        self.close(end);
        // SAFETY: shutdown on our descriptor; fails harmlessly on a pipe.
        unsafe { libc::shutdown(self.wfd, libc::SHUT_WR) };
        let mut buf = [0u8; 16 * 1024];
        let mut total = 0usize;
        while total < (1 << 20) && wait(self.rfd, false, end).is_ok() {
            match Fd(self.rfd).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
    }

    /// Relay between this (TLS) connection and a plaintext peer on `fd`
    /// until either side closes: the network process carries a logged-in
    /// session to the process serving the mailbox.  `idle` bounds the
    /// wait for the client to take what is sent.
    pub fn relay(&mut self, fd: RawFd, idle: std::time::Duration) -> Result<(), WireError> {
        set_nonblocking(fd);
        let mut buf = vec![0u8; 64 * 1024];
        // Plaintext received from the client before the hand-over goes
        // first.
        let early = self.take_buffered();
        write_all_fd(fd, &early, Instant::now() + idle)?;
        loop {
            let deadline = Instant::now() + idle;
            self.flush(deadline)?;
            let mut fds = [
                libc::pollfd {
                    fd: self.rfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // The mailbox process enforces the idle timeout; wait here as
            // long as it takes (it closes its end when done).
            // SAFETY: two valid pollfds.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(WireError::Io(e));
            }
            if fds[1].revents != 0 {
                // From the mailbox process to the client.
                match Fd(fd).read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => self.write(&buf[..n]),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
                    Err(_) => return Ok(()),
                }
            }
            if fds[0].revents != 0 {
                // From the client to the mailbox process.
                match self.fill(deadline, buf.len()) {
                    Ok(()) => {
                        let got = self.take_buffered();
                        write_all_fd(fd, &got, deadline)?;
                    }
                    Err(WireError::Eof) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// The other end of a server's TCP connection, as inetd or a systemd
/// socket hands it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The client's address.  An IPv4 client on a dual-stack `[::]`
    /// socket (xinetd's default, inetutils-inetd's `tcp6`, openbsd-inetd's
    /// `tcp46`, systemd's `ListenStream=25`) arrives as `::ffff:192.0.2.7`
    /// and is its IPv4 address here, so that the relay check, the
    /// connection slots, POP-before-SMTP stamps, logs and `Received:`
    /// judge and name it as one client, whichever socket it came through.
    pub ip: IpAddr,
    /// Our port (25, 465, 587, 110, 995, ...).
    pub local_port: u16,
}

/// The peer of the Internet socket on `fd`; `None` when `fd` is not one
/// (a pipe, a terminal, a Unix socket).
pub fn peer(fd: RawFd) -> Option<Peer> {
    use nix::sys::socket::{SockaddrStorage, getpeername, getsockname};
    let remote = getpeername::<SockaddrStorage>(fd).ok()?;
    let ip = if let Some(a) = remote.as_sockaddr_in() {
        IpAddr::V4(a.ip())
    } else {
        IpAddr::V6(remote.as_sockaddr_in6()?.ip())
    };
    let local = getsockname::<SockaddrStorage>(fd).ok()?;
    let local_port = local
        .as_sockaddr_in()
        .map(|a| a.port())
        .or_else(|| local.as_sockaddr_in6().map(|a| a.port()))
        .unwrap_or(0);
    Some(Peer {
        ip: unmapped(ip),
        local_port,
    })
}

/// An IPv4-mapped IPv6 address (`::ffff:192.0.2.7`) as the IPv4 address
/// it is; any other address as it is.
pub fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Write all of `bytes` to a non-blocking descriptor before `deadline`.
pub fn write_all_fd(fd: RawFd, bytes: &[u8], deadline: Instant) -> Result<(), WireError> {
    let mut done = 0;
    while done < bytes.len() {
        match Fd(fd).write(&bytes[done..]) {
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait(fd, true, deadline)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WireError::Io(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    #[test]
    fn lines_crlf_bare_lf_and_too_long() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut w = Wire::new(a.as_raw_fd(), a.as_raw_fd());
        let soon = || Instant::now() + Duration::from_secs(2);
        b.write_all(b"USER bob\r\nPASS x\n").unwrap();
        assert_eq!(
            w.read_line(soon()).unwrap(),
            Line::Text(b"USER bob".to_vec())
        );
        assert_eq!(w.read_line(soon()).unwrap(), Line::Text(b"PASS x".to_vec()));
        let long = vec![b'a'; 10_000];
        b.write_all(&long).unwrap();
        b.write_all(b"\r\nNOOP\r\n").unwrap();
        assert_eq!(w.read_line(soon()).unwrap(), Line::TooLong);
        assert_eq!(w.read_line(soon()).unwrap(), Line::Text(b"NOOP".to_vec()));
        assert!(matches!(
            w.read_line(Instant::now() + Duration::from_millis(50)),
            Err(WireError::Timeout)
        ));
        drop(b);
        assert!(matches!(w.read_line(soon()), Err(WireError::Eof)));
    }

    #[test]
    fn an_ipv4_client_on_a_dual_stack_socket_is_its_ipv4_address() {
        use nix::sys::socket::{self as ns, sockopt};
        use std::net::{TcpListener, TcpStream};
        // A [::] socket without IPV6_V6ONLY, as xinetd and systemd listen.
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
        ns::listen(&fd, ns::Backlog::new(1).unwrap()).unwrap();
        let l = TcpListener::from(fd);
        let port = l.local_addr().unwrap().port();
        let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (s, raw) = l.accept().unwrap();
        assert_eq!(raw.ip().to_string(), "::ffff:127.0.0.1");
        let p = peer(s.as_raw_fd()).unwrap();
        assert_eq!(p.ip, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert!(p.ip.is_loopback());
        assert_eq!(p.local_port, port);
        drop(c);
        assert_eq!(
            unmapped("2001:db8::1".parse().unwrap()),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            unmapped("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        // Not mapped: the deprecated IPv4-compatible form stays IPv6.
        assert!(unmapped("::192.0.2.7".parse().unwrap()).is_ipv6());
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(peer(a.as_raw_fd()), None);
    }
}
