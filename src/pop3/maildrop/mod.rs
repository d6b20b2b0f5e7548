//! The maildrop a POP3 session works on: an mbox ([`mbox`]) or a Maildir
//! ([`maildir`]), opened once at login, listed with sizes and UIDLs, sent
//! message by message, and changed only at a clean `QUIT`.
//!
//! ## What a client receives
//!
//! A stored message goes out with CRLF line ends (a stored CRLF stays one
//! CRLF), dot-stuffed, always ending with CRLF before the terminating
//! `.`.  From an mbox, the `From ` line and the separating empty line are
//! not part of the message; one `>` is removed from lines matching
//! `^>{1,64}From ` (our mboxes are mboxrd, so the client gets exactly the
//! message that was delivered); the headers that readers keep private
//! (`Status:`, `X-UID:`, `Content-Length:`, ... — mutt and Dovecot add
//! them) are left out, and Dovecot's folder-data pseudo-message is not
//! listed.  Sizes (`LIST`, `STAT`) are exactly the octets `RETR` sends,
//! before stuffing (RFC 1939 §11).

pub mod maildir;
pub mod mbox;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::mailbox::READER_PRIVATE_HEADERS;
use crate::wire::Wire;

/// Buffer for reading messages: large enough that nearly every line fits
/// whole, small enough for a few-MiB process.
pub const READ_BUF: usize = 256 * 1024;

/// Why a maildrop could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Another POP3 session has it (RFC 2449 `[IN-USE]`).
    InUse,
    /// Try again later (`[SYS/TEMP]`): a lock, an I/O error.
    Temp(String),
    /// Needs the admin (`[SYS/PERM]`): a symlink, a wrong owner.
    Perm(String),
}

/// One message as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Octets `RETR` sends, before stuffing.
    pub size: u64,
    pub uidl: Uidl,
}

/// A UIDL, kept small (a maildrop may list 100,000 messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uidl {
    /// 16 hex digits, and `-N` for the N-th copy (N > 1).
    Hash([u8; 8], u32),
    /// A Maildir file's unique name.
    Name(Box<str>),
}

impl std::fmt::Display for Uidl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Uidl::Hash(h, copy) => {
                for b in h {
                    write!(f, "{b:02x}")?;
                }
                if *copy > 1 {
                    write!(f, "-{copy}")?;
                }
                Ok(())
            }
            Uidl::Name(n) => f.write_str(n),
        }
    }
}

/// What a commit did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Committed {
    pub deleted: usize,
    pub deleted_bytes: u64,
}

/// An open maildrop.
pub enum Maildrop {
    Mbox(mbox::Mbox),
    Maildir(maildir::Maildir),
}

impl Maildrop {
    /// The messages, numbered from 1 in this order for the session.
    pub fn list(&self) -> &[Listed] {
        match self {
            Maildrop::Mbox(m) => m.list(),
            Maildrop::Maildir(m) => m.list(),
        }
    }

    /// Check that message `n` (0-based) can still be sent.
    pub fn prepare(&mut self, n: usize) -> io::Result<()> {
        match self {
            Maildrop::Mbox(m) => m.prepare(n),
            Maildrop::Maildir(m) => m.prepare(n),
        }
    }

    /// Send message `n` (0-based) to `wire`: the whole message, or its
    /// header and `body_lines` lines of its body (TOP).  The terminating
    /// `.` line is the caller's.
    pub fn send(
        &mut self,
        n: usize,
        body_lines: Option<u64>,
        wire: &mut Wire,
        deadline: &dyn Fn() -> std::time::Instant,
    ) -> io::Result<()> {
        match self {
            Maildrop::Mbox(m) => m.send(n, body_lines, wire, deadline),
            Maildrop::Maildir(m) => m.send(n, body_lines, wire, deadline),
        }
    }

    /// Remove the messages marked `deleted`; note `retrieved` ones as seen
    /// (Maildir).  Called only at a clean QUIT.
    pub fn commit(&mut self, deleted: &[bool], retrieved: &[bool]) -> Result<Committed, String> {
        match self {
            Maildrop::Mbox(m) => m.commit(deleted),
            Maildrop::Maildir(m) => m.commit(deleted, retrieved),
        }
    }
}

/// Lines of a file region, in pieces: a line that fits the buffer is one
/// piece; a longer one comes in several, only the first marked `first`
/// and only the last marked `last`.  A piece that does not end its line
/// never ends with CR, so a CRLF is always seen whole.
pub struct Pieces<'f> {
    file: &'f File,
    /// Next file offset to read.
    pos: u64,
    /// Where the region ends.
    end: u64,
    buf: Vec<u8>,
    lo: usize,
    hi: usize,
    /// File offset of `buf[0]`.
    base: u64,
    in_line: bool,
}

/// One piece (see [`Pieces`]).
pub struct Piece<'b> {
    /// File offset of the first byte.
    pub offset: u64,
    /// The bytes, without the line's LF.
    pub bytes: &'b [u8],
    /// Starts a line.
    pub first: bool,
    /// Ends a line (at its LF, or at the end of the region).
    pub last: bool,
    /// The line had an LF (false only for a last line without one).
    pub lf: bool,
}

impl<'f> Pieces<'f> {
    pub fn new(file: &'f File, from: u64, to: u64, buf: Vec<u8>) -> Pieces<'f> {
        Pieces {
            file,
            pos: from,
            end: to,
            buf,
            lo: 0,
            hi: 0,
            base: from,
            in_line: false,
        }
    }

    pub fn next_piece(&mut self) -> io::Result<Option<Piece<'_>>> {
        // (start, len, first, last, lf, consumed)
        let found: (usize, usize, bool, bool, bool, usize) = loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.lo..self.hi]) {
                break (self.lo, i, !self.in_line, true, true, i + 1);
            }
            if self.pos >= self.end {
                if self.lo < self.hi {
                    break (
                        self.lo,
                        self.hi - self.lo,
                        !self.in_line,
                        true,
                        false,
                        self.hi - self.lo,
                    );
                }
                return Ok(None);
            }
            if self.lo > 0 {
                self.buf.copy_within(self.lo..self.hi, 0);
                self.base += self.lo as u64;
                self.hi -= self.lo;
                self.lo = 0;
            }
            if self.hi == self.buf.len() {
                // A line longer than the buffer: hand out what we have,
                // keeping a final CR back for the next piece.
                let keep = usize::from(self.buf[self.hi - 1] == b'\r');
                let n = self.hi - keep;
                break (0, n, !self.in_line, false, false, n);
            }
            let want = ((self.end - self.pos) as usize).min(self.buf.len() - self.hi);
            let n = read_at(self.file, &mut self.buf[self.hi..self.hi + want], self.pos)?;
            if n == 0 {
                self.end = self.pos; // the file is shorter than expected
            }
            self.pos += n as u64;
            self.hi += n;
        };
        let (start, len, first, last, lf, consumed) = found;
        self.lo = start + consumed;
        self.in_line = !last;
        Ok(Some(Piece {
            offset: self.base + start as u64,
            bytes: &self.buf[start..start + len],
            first,
            last,
            lf,
        }))
    }

    /// The buffer back, for reuse.
    pub fn into_buf(self) -> Vec<u8> {
        self.buf
    }

    /// Read more of the region into the buffer, keeping `buf[lo..hi]`.
    /// False when the region is exhausted.
    fn refill(&mut self) -> io::Result<bool> {
        if self.pos >= self.end {
            return Ok(false);
        }
        if self.lo > 0 {
            self.buf.copy_within(self.lo..self.hi, 0);
            self.base += self.lo as u64;
            self.hi -= self.lo;
            self.lo = 0;
        }
        if self.hi == self.buf.len() {
            return Ok(false);
        }
        let want = ((self.end - self.pos) as usize).min(self.buf.len() - self.hi);
        let n = read_at(self.file, &mut self.buf[self.hi..self.hi + want], self.pos)?;
        if n == 0 {
            self.end = self.pos;
        }
        self.pos += n as u64;
        self.hi += n;
        Ok(n > 0)
    }

    /// Consume whole body lines in bulk, up to the next empty line that is
    /// followed by a `From ` line, leaving the last line of the region to
    /// [`Pieces::next_piece`]; the octets those lines make on the wire, as
    /// an mbox-format [`Encoder`] would count them.  Call only at the start
    /// of a line that follows a non-empty one.  Scanning a large mbox this
    /// way runs at memory speed.
    pub fn skip_body(&mut self) -> io::Result<u64> {
        // More than the `From ` pattern and the quoting look-ahead.
        const HOLD: usize = 80;
        let boundary = memchr::memmem::Finder::new(b"\n\nFrom ");
        let mut size = 0u64;
        loop {
            if self.in_line || self.lo >= self.hi || self.buf[self.lo] == b'\n' {
                return Ok(size);
            }
            let at_end = self.pos >= self.end;
            let window = &self.buf[self.lo..self.hi];
            if let Some(i) = boundary.find(window) {
                // Up to and including the LF that ends the last line.
                size += wire_size(window, i + 1);
                self.lo += i + 1;
                return Ok(size);
            }
            // No boundary here: take whole lines, holding back the last
            // line (at the end) or enough bytes to look ahead.
            let limit = if at_end {
                window.len() - 1
            } else {
                window.len().saturating_sub(HOLD)
            };
            if let Some(j) = memchr::memrchr(b'\n', &window[..limit]) {
                size += wire_size(window, j + 1);
                self.lo += j + 1;
            }
            if at_end || !self.refill()? {
                return Ok(size);
            }
        }
    }
}

/// The wire octets of `window[..n]`, whole lines each ending with LF,
/// `window[n..]` available for look-ahead: each LF becomes CRLF (a stored
/// CRLF stays one), and a line `>{1,64}From ` loses a `>`.
fn wire_size(window: &[u8], n: usize) -> u64 {
    let region = &window[..n];
    let lfs = memchr::memchr_iter(b'\n', region).count() as u64;
    let crlfs = memchr::memmem::find_iter(region, b"\r\n").count() as u64;
    let mut quoted = u64::from(region[0] == b'>' && is_quoted_from(window));
    for q in memchr::memmem::find_iter(region, b"\n>") {
        if q + 1 < n && is_quoted_from(&window[q + 1..]) {
            quoted += 1;
        }
    }
    n as u64 + lfs - crlfs - quoted
}

fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, at) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Whether a line (its first bytes) is `>{1,64}From ` (mboxrd quoting to
/// undo).
pub fn is_quoted_from(line: &[u8]) -> bool {
    let q = line.iter().take(65).take_while(|&&b| b == b'>').count();
    (1..=64).contains(&q) && line[q..].starts_with(b"From ")
}

/// Whether a header line starts a field that readers keep private.
pub fn is_private_field(line: &[u8]) -> bool {
    let Some(colon) = memchr::memchr(b':', &line[..line.len().min(64)]) else {
        return false;
    };
    let name = &line[..colon];
    READER_PRIVATE_HEADERS
        .iter()
        .any(|h| h.as_bytes().eq_ignore_ascii_case(name))
}

/// How the maildrop stores a message, which decides how its lines become
/// POP3 lines.  (Not [`crate::mailbox::Format`], which says how a message
/// is written into a mailbox.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// In an mbox: undo mboxrd `>From ` quoting and hide reader-private
    /// headers.
    Mbox,
    /// One file per message: sent as stored.
    Maildir,
}

/// Turns stored lines into what the client receives, and counts them.
/// Used both to size a message when the maildrop is opened and to send
/// it, so the two always agree.
pub struct Encoder {
    storage: Storage,
    in_header: bool,
    /// The current header field is private (skip its continuation lines).
    hiding: bool,
    /// Within a line: whether it is being skipped.
    skip_line: bool,
    /// Body lines still to send (TOP), `None` for all.
    body_left: Option<u64>,
    /// TOP's limit was reached: nothing more.
    done: bool,
    /// Octets produced (before stuffing).
    pub size: u64,
}

impl Encoder {
    pub fn new(storage: Storage, body_lines: Option<u64>) -> Encoder {
        Encoder {
            storage,
            in_header: true,
            hiding: false,
            skip_line: false,
            body_left: body_lines,
            done: false,
            size: 0,
        }
    }

    /// Feed one piece; what goes out is appended to `out` (when given).
    pub fn piece(&mut self, p: &Piece<'_>, mut out: Option<&mut Vec<u8>>) {
        if self.done {
            return;
        }
        let mut bytes = p.bytes;
        if p.first {
            self.skip_line = false;
            if self.in_header {
                if bytes.is_empty() || bytes == b"\r" {
                    self.in_header = false;
                    self.hiding = false;
                } else if matches!(bytes[0], b' ' | b'\t') {
                    self.skip_line = self.hiding;
                } else {
                    self.hiding = self.storage == Storage::Mbox && is_private_field(bytes);
                    self.skip_line = self.hiding;
                }
            } else if let Some(left) = self.body_left.as_mut() {
                if *left == 0 {
                    self.done = true;
                    return;
                }
                *left -= 1;
            }
            if self.skip_line {
                return;
            }
            if self.storage == Storage::Mbox
                && bytes.first() == Some(&b'>')
                && is_quoted_from(bytes)
            {
                bytes = &bytes[1..];
            }
            if bytes.first() == Some(&b'.')
                && let Some(o) = out.as_deref_mut()
            {
                o.push(b'.');
            }
        } else if self.skip_line {
            return;
        }
        // A CR ending a line is the CRLF's (or, at the end of a file
        // without a final LF, the start of one): counting it would make
        // the size change once mail is appended after it.
        if p.last && bytes.last() == Some(&b'\r') {
            bytes = &bytes[..bytes.len() - 1];
        }
        self.size += bytes.len() as u64;
        if let Some(o) = out.as_deref_mut() {
            o.extend_from_slice(bytes);
        }
        if p.last {
            self.size += 2;
            if let Some(o) = out {
                o.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// Send a file region through an encoder to the wire, flushing as the
/// output grows.
/// Bytes `from..to` of a file, stored as `storage` says.
pub struct Region<'a> {
    pub file: &'a File,
    pub from: u64,
    pub to: u64,
    pub storage: Storage,
}

pub fn send_region(
    Region {
        file,
        from,
        to,
        storage,
    }: Region<'_>,
    body_lines: Option<u64>,
    wire: &mut Wire,
    deadline: &dyn Fn() -> std::time::Instant,
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    // One read buffer for the whole session, not one per message.
    let want = READ_BUF.min((to - from) as usize + 1);
    if scratch.len() < want {
        scratch.resize(want, 0);
    }
    let mut enc = Encoder::new(storage, body_lines);
    let mut pieces = Pieces::new(file, from, to, std::mem::take(scratch));
    let result = (|| {
        while let Some(p) = pieces.next_piece()? {
            enc.piece(&p, Some(wire.out_buffer()));
            if wire.pending() >= 64 * 1024 {
                wire.flush(deadline()).map_err(wire_io)?;
            }
        }
        Ok(())
    })();
    *scratch = pieces.into_buf();
    result
}

/// A wire error as an I/O error (the session ends either way).
pub fn wire_io(e: crate::wire::WireError) -> io::Error {
    match e {
        crate::wire::WireError::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(text: &[u8], storage: Storage, top: Option<u64>, bufsize: usize) -> (Vec<u8>, u64) {
        let dir = std::env::temp_dir().join(format!("mr-enc-{}-{bufsize}", std::process::id()));
        std::fs::write(&dir, text).unwrap();
        let f = File::open(&dir).unwrap();
        let mut enc = Encoder::new(storage, top);
        let mut pieces = Pieces::new(&f, 0, text.len() as u64, vec![0; bufsize]);
        let mut out = Vec::new();
        while let Some(p) = pieces.next_piece().unwrap() {
            enc.piece(&p, Some(&mut out));
        }
        let _ = std::fs::remove_file(&dir);
        (out, enc.size)
    }

    #[test]
    fn crlf_stuffing_unquoting_and_private_headers() {
        let msg = b"Subject: hi\nStatus: RO\nX-UID: 5\n  continued\nContent-Length: 3\nTo: a\n\n.dot\n>From me\n>>From you\nFrom x\r\nend";
        for bufsize in [4096, 64] {
            let (out, size) = encode(msg, Storage::Mbox, None, bufsize);
            assert_eq!(
                String::from_utf8_lossy(&out),
                "Subject: hi\r\nTo: a\r\n\r\n..dot\r\nFrom me\r\n>From you\r\nFrom x\r\nend\r\n",
                "buffer {bufsize}"
            );
            // Size counts what is sent before stuffing.
            assert_eq!(size, out.len() as u64 - 1, "buffer {bufsize}");
        }
        // Lines longer than the buffer come in pieces: same bytes out.
        let plain = b"Subject: a long subject line\n\n.dot dot dot\nFrom me to you\r\nlast";
        let (whole, size) = encode(plain, Storage::Mbox, None, 4096);
        for bufsize in [7, 3, 2] {
            assert_eq!(
                encode(plain, Storage::Mbox, None, bufsize),
                (whole.clone(), size)
            );
        }
        let (out, _) = encode(msg, Storage::Maildir, None, 4096);
        assert!(out.starts_with(b"Subject: hi\r\nStatus: RO\r\nX-UID: 5\r\n  continued\r\n"));
        assert!(String::from_utf8_lossy(&out).contains("\r\n>From me\r\n"));
    }

    #[test]
    fn top_sends_the_header_and_n_body_lines() {
        let msg = b"A: 1\nB: 2\n\nl1\nl2\nl3\n";
        let (out, _) = encode(msg, Storage::Mbox, Some(2), 4096);
        assert_eq!(out, b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n");
        let (out, _) = encode(msg, Storage::Mbox, Some(0), 4096);
        assert_eq!(out, b"A: 1\r\nB: 2\r\n\r\n");
        let (out, _) = encode(msg, Storage::Mbox, Some(99), 4096);
        assert_eq!(out, b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n");
    }

    #[test]
    fn quoted_from_rule() {
        assert!(is_quoted_from(b">From x"));
        assert!(is_quoted_from(b">>>From x"));
        assert!(!is_quoted_from(b"From x"));
        assert!(!is_quoted_from(b">From"));
        assert!(!is_quoted_from(b"> From x"));
        let mut many = vec![b'>'; 65];
        many.extend_from_slice(b"From ");
        assert!(!is_quoted_from(&many));
    }
}
