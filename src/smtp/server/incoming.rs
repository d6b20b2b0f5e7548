//! DATA as the client sends it (RFC 5321 §4.1.1.4, §4.5.2), turned into the
//! message as the queue stores it: CRLF → LF, leading dots un-doubled, ended
//! by the `.` line.
//!
//! Over the network the line end must be CRLF: a bare LF or a bare CR in
//! DATA is refused with `421` and the connection closed, as current
//! sendmail 8 and Postfix do against SMTP smuggling (a `\n.\r\n` or
//! `\r.\r` that one server takes for the end of the message and another
//! does not).  From a local program (`sendmail -bs` on a pipe) a bare LF
//! is a line end and a bare CR is data, as `sendmail -t` reads them.  The
//! end of the message is spelled as the client spelled `DATA`: after
//! `DATA<CR><LF>` only the standard `<CR><LF>.<CR><LF>` ends it (Postfix's
//! "normalize" rule: a framework that passes LF-only text through
//! unstuffed must not have its message cut at a lone `.` line); after a
//! bare-LF `DATA` (a script speaking LF throughout) `<LF>.<LF>` ends it too.

use std::io::{self, BufRead, Read};
use std::time::{Duration, Instant};

use crate::wire::{Wire, WireError};

/// Longest piece of a line handed on before its end is seen.
const CHUNK: usize = 64 * 1024;

/// Why DATA did not end with its `.` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    BareLf,
    BareCr,
    /// The client closed the connection.
    Closed,
    Timeout,
    Io,
}

/// A reader of one DATA block.
pub struct DataReader<'a> {
    wire: &'a mut Wire,
    idle: Duration,
    strict: bool,
    out: Vec<u8>,
    pos: usize,
    at_line_start: bool,
    /// The line before ended with CRLF (or there was none).
    after_crlf: bool,
    /// A lone `.` ended by a bare LF ends the message (the client ended
    /// `DATA` with a bare LF).
    lf_dot_ends: bool,
    /// The `.` line was read.
    pub done: bool,
    pub fault: Option<Fault>,
}

impl<'a> DataReader<'a> {
    /// `strict`: CRLF only (network clients).  `idle`: the longest wait
    /// for more data (RFC 5321's 3 minutes per block, at least).
    pub fn new(wire: &'a mut Wire, strict: bool, idle: Duration) -> DataReader<'a> {
        let lf_dot_ends = !strict && !wire.last_line_crlf();
        DataReader {
            lf_dot_ends,
            wire,
            idle,
            strict,
            out: Vec::with_capacity(CHUNK + 2),
            pos: 0,
            at_line_start: true,
            after_crlf: true,
            done: false,
            fault: None,
        }
    }

    /// Read and throw away the rest of the block (after a size overrun or
    /// a write error, before the reply).
    pub fn drain(&mut self) {
        while !self.done && self.fault.is_none() {
            self.pos = self.out.len();
            if self.produce().is_err() {
                break;
            }
        }
    }

    fn fail(&mut self, f: Fault) -> io::Error {
        self.fault = Some(f);
        io::Error::other(format!("DATA: {f:?}"))
    }

    /// Turn the next line (or piece of a long line) into `self.out`.
    fn produce(&mut self) -> io::Result<()> {
        self.out.clear();
        self.pos = 0;
        loop {
            let buf = self.wire.input();
            if let Some(nl) = memchr::memchr(b'\n', buf) {
                let mut end = nl;
                let crlf = end > 0 && buf[end - 1] == b'\r';
                if crlf {
                    end -= 1;
                }
                if self.strict && !crlf {
                    return Err(self.fail(Fault::BareLf));
                }
                let line = &buf[..end];
                if self.strict && memchr::memchr(b'\r', line).is_some() {
                    return Err(self.fail(Fault::BareCr));
                }
                let mut line = line;
                if self.at_line_start && line.first() == Some(&b'.') {
                    if line.len() == 1 && ((crlf && self.after_crlf) || self.lf_dot_ends) {
                        buf.drain(..=nl);
                        self.done = true;
                        return Ok(());
                    }
                    if line.len() > 1 {
                        line = &line[1..];
                    }
                }
                self.out.extend_from_slice(line);
                self.out.push(b'\n');
                buf.drain(..=nl);
                self.at_line_start = true;
                self.after_crlf = crlf;
                return Ok(());
            }
            if buf.len() >= CHUNK {
                // A long line: hand on what is here, keeping a CR that may
                // start the CRLF.
                let mut take = buf.len();
                if buf[take - 1] == b'\r' {
                    take -= 1;
                }
                let mut piece = &buf[..take];
                if self.strict && memchr::memchr(b'\r', piece).is_some() {
                    return Err(self.fail(Fault::BareCr));
                }
                if self.at_line_start && piece.first() == Some(&b'.') {
                    piece = &piece[1..];
                }
                self.out.extend_from_slice(piece);
                buf.drain(..take);
                self.at_line_start = false;
                self.after_crlf = false;
                return Ok(());
            }
            match self.wire.read_more(Instant::now() + self.idle) {
                Ok(()) => {}
                Err(WireError::Eof) => return Err(self.fail(Fault::Closed)),
                Err(WireError::Timeout) => return Err(self.fail(Fault::Timeout)),
                Err(_) => return Err(self.fail(Fault::Io)),
            }
        }
    }
}

impl Read for DataReader<'_> {
    fn read(&mut self, into: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(into.len());
        into[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for DataReader<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.out.len() && !self.done {
            if let Some(f) = self.fault {
                return Err(io::Error::other(format!("DATA: {f:?}")));
            }
            self.produce()?;
        }
        Ok(&self.out[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.out.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn read_data(input: &[u8], strict: bool) -> (Vec<u8>, Option<Fault>, Vec<u8>) {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(input).unwrap();
        drop(b);
        let mut w = Wire::new(a.as_raw_fd(), a.as_raw_fd());
        let mut out = Vec::new();
        let fault = {
            let mut r = DataReader::new(&mut w, strict, Duration::from_secs(2));
            let _ = r.read_to_end(&mut out);
            r.fault
        };
        let rest = w.take_buffered();
        (out, fault, rest)
    }

    #[test]
    fn unstuffs_and_ends_at_the_dot_line() {
        let (m, f, rest) = read_data(b"Subject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n", true);
        assert_eq!(m, b"Subject: x\n\n.dot\n");
        assert_eq!(f, None);
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn bare_lf_and_cr_are_refused_from_the_network() {
        assert_eq!(read_data(b"a\nb\r\n.\r\n", true).1, Some(Fault::BareLf));
        assert_eq!(read_data(b"a\r.\rb\r\n.\r\n", true).1, Some(Fault::BareCr));
        assert_eq!(read_data(b"a\r\n.\n", true).1, Some(Fault::BareLf));
        assert_eq!(read_data(b"a\r\n", true).1, Some(Fault::Closed));
    }

    #[test]
    fn local_programs_may_use_bare_lf_but_only_crlf_dot_crlf_ends() {
        let (m, f, _) = read_data(b"a\nb\rc\n.\nd\n.\r\ne\r\n.\r\n", false);
        assert_eq!(m, b"a\nb\rc\n.\nd\n.\ne\n");
        assert_eq!(f, None);
    }

    #[test]
    fn a_script_speaking_lf_throughout_ends_with_lf_dot_lf() {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"DATA\nSubject: x\n\nbody\n.\nQUIT\n").unwrap();
        let mut w = Wire::new(a.as_raw_fd(), a.as_raw_fd());
        let soon = Instant::now() + Duration::from_secs(2);
        assert_eq!(
            w.read_line(soon).unwrap(),
            crate::wire::Line::Text(b"DATA".to_vec())
        );
        let mut out = Vec::new();
        let mut r = DataReader::new(&mut w, false, Duration::from_secs(2));
        r.read_to_end(&mut out).unwrap();
        assert!(r.done);
        assert_eq!(out, b"Subject: x\n\nbody\n");
    }

    #[test]
    fn long_lines_pass_whole() {
        let mut input = vec![b'.'];
        input.extend(std::iter::repeat_n(b'x', 200_000));
        input.extend_from_slice(b"\r\n.\r\n");
        let (m, f, _) = read_data(&input, true);
        assert_eq!(f, None);
        assert_eq!(m.len(), 200_001);
        assert!(m.iter().take(200_000).all(|&b| b == b'x'));
    }
}
