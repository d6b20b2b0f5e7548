//! Mailboxes, shared by `deliver` (which appends) and `pop3d` (which reads
//! and deletes): the locking protocol ([`lock`]), mbox files ([`mbox`]),
//! Maildirs ([`maildir`]) and the names of folders ([`folder`]).
//!
//! [`Message`] is one message to deliver, held in an anonymous memory file
//! (or a file it already was in) and read with positional reads, so any
//! number of deliveries — in child processes that have switched to
//! different users — can read it without sharing a file offset.

pub mod folder;
pub mod lock;
pub mod maildir;
pub mod mbox;

use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::FileExt;

/// Reader-private headers an MDA must remove, or a sender could forge a
/// message's flags or its POP3 UIDL in another reader (Dovecot's advice).
pub const READER_PRIVATE_HEADERS: &[&str] = &[
    "Status",
    "X-Status",
    "X-Keywords",
    "X-UID",
    "X-IMAP",
    "X-IMAPbase",
    "Content-Length",
    "X-UIDL",
];

/// One message, as a seekable file.
#[derive(Debug)]
pub struct Message {
    file: File,
    len: u64,
}

impl Message {
    /// Copy `input` into an anonymous memory file.
    pub fn from_reader(mut input: impl Read) -> io::Result<Message> {
        let fd = nix::sys::memfd::memfd_create(
            c"mailroom-message",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        let mut file = File::from(fd);
        let len = io::copy(&mut input, &mut file)?;
        Ok(Message { file, len })
    }

    /// Use an already seekable file (its current size is the message).
    pub fn from_file(file: File) -> io::Result<Message> {
        let len = file.metadata()?.len();
        Ok(Message { file, len })
    }

    /// From bytes (tests).
    pub fn from_bytes(b: &[u8]) -> io::Result<Message> {
        Message::from_reader(b)
    }

    /// The descriptor holding the message (kept open across a fork).
    pub fn as_raw_fd(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(&self.file)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A buffered reader from the start.
    pub fn reader(&self) -> io::BufReader<PosReader<'_>> {
        io::BufReader::with_capacity(
            64 * 1024,
            PosReader {
                file: &self.file,
                pos: 0,
                len: self.len,
            },
        )
    }

    /// The header block (up to, not including, the empty line).
    pub fn header_bytes(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut r = self.reader();
        let mut line = Vec::new();
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line)? == 0 || line == b"\n" || line == b"\r\n" {
                break;
            }
            out.extend_from_slice(&line);
            if out.len() > 4 << 20 {
                break;
            }
        }
        Ok(out)
    }
}

/// Positional reader over a [`Message`].
pub struct PosReader<'a> {
    file: &'a File,
    pos: u64,
    len: u64,
}

impl Read for PosReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len {
            return Ok(0);
        }
        let want = buf.len().min((self.len - self.pos) as usize);
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// How a message is written into a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// mboxrd `>From ` quoting.
    pub quote_from: bool,
    /// Drop [`READER_PRIVATE_HEADERS`].
    pub strip_private: bool,
}

/// Stream `msg` to `out`: `prepend` first (already formatted header lines),
/// then the message's header without `Return-Path:` (and without reader
/// headers when asked), then the body; lines quoted for mboxrd when asked;
/// a missing final newline added.  Returns the bytes written and the
/// number of LF characters among them.
pub fn write_message(
    out: &mut impl Write,
    prepend: &[u8],
    msg: &Message,
    fmt: Format,
) -> io::Result<(u64, u64)> {
    let mut written = 0u64;
    let mut lfs = 0u64;
    let mut emit = |out: &mut dyn Write, b: &[u8]| -> io::Result<()> {
        out.write_all(b)?;
        written += b.len() as u64;
        lfs += b.iter().filter(|&&c| c == b'\n').count() as u64;
        Ok(())
    };
    emit(out, prepend)?;
    let mut r = msg.reader();
    let mut line = Vec::with_capacity(256);
    let mut in_header = true;
    let mut skipping = false;
    let mut last_lf = true;
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if in_header {
            if line == b"\n" {
                in_header = false;
            } else if matches!(line[0], b' ' | b'\t') {
                if skipping {
                    continue;
                }
            } else {
                skipping = header_is(&line, "Return-Path")
                    || (fmt.strip_private
                        && READER_PRIVATE_HEADERS.iter().any(|h| header_is(&line, h)));
                if skipping {
                    continue;
                }
                if crate::message::header::field_name(line.strip_suffix(b"\n").unwrap_or(&line))
                    .is_none()
                {
                    // No header at all, or a non-header line: the body
                    // starts here, after the empty line that separates it
                    // from the lines we put first.
                    in_header = false;
                    emit(out, b"\n")?;
                }
            }
        }
        if fmt.quote_from && is_from_line(&line) {
            emit(out, b">")?;
        }
        emit(out, &line)?;
        last_lf = line.last() == Some(&b'\n');
    }
    if !last_lf {
        emit(out, b"\n")?;
    }
    Ok((written, lfs))
}

fn header_is(line: &[u8], name: &str) -> bool {
    line.len() > name.len()
        && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        && matches!(line[name.len()], b':' | b' ' | b'\t')
}

/// Create directory `path` and any missing parents with `mode`, `fsync`ing
/// the parent of each one created, so a message filed inside cannot be
/// lost with a directory that a crash forgot.
pub fn ensure_dir(path: &std::path::Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        ensure_dir(parent, mode)?;
    }
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(parent) = path.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// A copy to look for before delivering again: the retry of an attempt
/// that died midway must not duplicate what it already put in a mailbox.
/// A stored copy is recognised by our `Delivered-To:` line for the mailbox
/// and the id in the message's first `Received:` field (unique to one
/// submission on this host).
#[derive(Debug, Clone, Copy)]
pub struct Already<'a> {
    pub id: &'a str,
    pub delivered_to: &'a str,
}

/// The id in the first `Received:` field of a header block (`... id ID`).
pub fn first_received_id(header: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(header);
    let mut field = String::new();
    let mut inside = false;
    for line in text.lines() {
        if inside {
            if line.starts_with([' ', '\t']) {
                field.push(' ');
                field.push_str(line.trim());
                continue;
            }
            break;
        }
        if line.len() > 9 && line[..9].eq_ignore_ascii_case("received:") {
            inside = true;
            field.push_str(&line[9..]);
        }
    }
    let mut words = field.split_whitespace();
    while let Some(w) = words.next() {
        if w.eq_ignore_ascii_case("id") {
            let id = words.next()?.trim_end_matches(';');
            return (!id.is_empty()).then(|| id.to_string());
        }
    }
    None
}

/// Whether the stored header block `header` is a copy `a` describes.
pub fn is_copy(header: &[u8], a: &Already<'_>) -> bool {
    let delivered = format!("\nDelivered-To: {}\n", a.delivered_to);
    memchr::memmem::find(header, delivered.as_bytes()).is_some()
        && first_received_id(header).as_deref() == Some(a.id)
}

/// `^>*From ` (the lines mboxrd quotes).
pub fn is_from_line(line: &[u8]) -> bool {
    let rest = line
        .iter()
        .position(|&b| b != b'>')
        .map_or(&line[line.len()..], |i| &line[i..]);
    rest.starts_with(b"From ")
}

/// A delivery failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub temporary: bool,
    /// Enhanced status code.
    pub dsn: String,
    pub text: String,
    /// The mailbox is over its quota (the caller decides between 4.2.2
    /// and 5.2.2 by the message's age).
    pub over_quota: bool,
}

impl Failure {
    pub fn temp(dsn: &str, text: impl Into<String>) -> Failure {
        Failure {
            temporary: true,
            dsn: dsn.to_string(),
            text: text.into(),
            over_quota: false,
        }
    }

    pub fn perm(dsn: &str, text: impl Into<String>) -> Failure {
        Failure {
            temporary: false,
            dsn: dsn.to_string(),
            text: text.into(),
            over_quota: false,
        }
    }

    /// Over quota: `size` more bytes would exceed `limit`.
    pub fn over_quota(current: u64, size: u64, limit: u64) -> Failure {
        Failure {
            temporary: false,
            dsn: "5.2.2".to_string(),
            text: format!(
                "Mailbox full: quota exceeded ({current} bytes used, message {size} bytes, limit {limit} bytes)"
            ),
            over_quota: true,
        }
    }

    /// Map an I/O error while writing a mailbox (Postfix's mapping): disk
    /// full, I/O errors and lock trouble defer; a quota error from the file
    /// system bounces as "mailbox full".
    pub fn from_io(what: &str, e: &io::Error) -> Failure {
        let why = crate::exit::io_reason(e);
        match e.raw_os_error() {
            Some(libc::EDQUOT) | Some(libc::EFBIG) => {
                Failure::perm("5.2.2", format!("{what}: mailbox full ({why})"))
            }
            Some(libc::ENOSPC) => Failure::temp("4.3.0", format!("{what}: {why}")),
            Some(libc::EACCES) | Some(libc::EPERM) => {
                Failure::temp("4.2.0", format!("{what}: {why}"))
            }
            _ => Failure::temp("4.3.0", format!("{what}: {why}")),
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_stored_copy_is_recognised_by_its_mailbox_and_trace_id() {
        let head = b"From a@b  Sat Nov 21 05:00:00 2026\nReturn-Path: <a@b>\nDelivered-To: bob@x.example\nReceived: (from a@localhost)\n\tby x.example (mailroom/0.1.0) id 6ALCnwwv013170\n\tfor bob; Sat, 21 Nov 2026\nReceived: by other id 999\nSubject: s\n";
        assert_eq!(first_received_id(head).as_deref(), Some("6ALCnwwv013170"));
        let mine = Already {
            id: "6ALCnwwv013170",
            delivered_to: "bob@x.example",
        };
        assert!(is_copy(head, &mine));
        assert!(!is_copy(head, &Already { id: "999", ..mine }));
        assert!(!is_copy(
            head,
            &Already {
                delivered_to: "eve@x.example",
                ..mine
            }
        ));
        assert_eq!(first_received_id(b"Subject: none\n"), None);
    }

    use super::*;

    #[test]
    fn from_lines() {
        assert!(is_from_line(b"From x"));
        assert!(is_from_line(b">>From x"));
        assert!(!is_from_line(b" From x"));
        assert!(!is_from_line(b"From:x"));
    }

    #[test]
    fn writes_with_quoting_and_stripping() {
        let msg = Message::from_bytes(
            b"Return-Path: <forged@x>\nStatus: RO\nX-UIDL: forged\nSubject: s\n  cont\n\nFrom here\n>From there\nlast",
        )
        .unwrap();
        let mut out = Vec::new();
        let (n, lfs) = write_message(
            &mut out,
            b"Return-Path: <a@b>\n",
            &msg,
            Format {
                quote_from: true,
                strip_private: true,
            },
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "Return-Path: <a@b>\nSubject: s\n  cont\n\n>From here\n>>From there\nlast\n"
        );
        assert_eq!(n, out.len() as u64);
        assert_eq!(lfs, 7);
    }
}
