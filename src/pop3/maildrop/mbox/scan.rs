//! Finding the messages of an mbox, their sizes as sent and their UIDLs,
//! in one pass over the file.
//!
//! A message starts at a `From ` line at the start of the file or after
//! an empty line, and ends before the empty line that precedes the next
//! one (or at the end of the file).  Its size is what `RETR` sends
//! ([`super::super::Encoder`] counts it, the same code that sends it).
//!
//! ## Where UIDLs come from
//!
//! A message's UIDL is the first 16 hex digits of MD5 over the `From `
//! line (sender and delivery time), the header fields no reader rewrites
//! ([`hashed_field`]: the first `Received:`, every `Delivered-To:`,
//! `Message-ID:`, `Date:`, `From:`, `To:`, `Subject:`, `X-Delivery-ID:`;
//! popa3d's choice, widened) and the size as sent.  `Status:`, `X-UID:`
//! and the other fields mutt and Dovecot add are never hashed, so UIDLs
//! survive them, survive the deletion of other messages, and need nothing
//! stored.  Identical copies get `-2`, `-3`, ... after the first, in file
//! order ([`list`]).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use md5::{Digest, Md5};

use super::super::{Encoder, Listed, Piece, Pieces, READ_BUF, Storage, Uidl};

/// Bytes of a `From ` line that its checksum covers.
const FROM_SUM_LEN: usize = 256;

/// One message of the file (listed or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Msg {
    /// Offset of the `From ` line.
    pub from: u64,
    /// Offset of the first header line.
    pub start: u64,
    /// End of the message (exclusive; the separating empty line follows).
    pub end: u64,
    /// Octets as sent.
    pub size: u64,
    pub uid: [u8; 8],
    /// Checksum of the `From ` line, to recognise the message later.
    pub sum: u32,
    /// Dovecot's folder-data pseudo-message: kept, never listed.
    pub hidden: bool,
}

/// reader's "copy to inbox", a script appending twice in one second) hash
/// alike: later ones get -2, -3, ... in file order, so UIDLs stay unique
/// (RFC 1939 §7).
pub(super) fn list(msgs: &[Msg], visible: &[u32]) -> Vec<Listed> {
    let mut by_uid: Vec<u32> = (0..visible.len() as u32).collect();
    by_uid.sort_by_key(|&k| (msgs[visible[k as usize] as usize].uid, k));
    let mut copy = vec![1u32; visible.len()];
    for w in 1..by_uid.len() {
        let (a, b) = (by_uid[w - 1] as usize, by_uid[w] as usize);
        if msgs[visible[a] as usize].uid == msgs[visible[b] as usize].uid {
            copy[b] = copy[a] + 1;
        }
    }
    visible
        .iter()
        .zip(copy)
        .map(|(&i, c)| Listed {
            size: msgs[i as usize].size,
            uidl: Uidl::Hash(msgs[i as usize].uid, c),
        })
        .collect()
}

fn fnv32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The checksum of a `From ` line from its first bytes.
fn from_sum(line: &[u8]) -> u32 {
    let line = &line[..line.len().min(FROM_SUM_LEN)];
    let line = match memchr::memchr(b'\n', line) {
        Some(i) => &line[..i],
        None => line,
    };
    fnv32(line)
}

/// The checksum of the `From ` line at `at`, read from the file.
pub(super) fn from_sum_at(file: &File, at: u64) -> io::Result<u32> {
    let mut buf = [0u8; FROM_SUM_LEN];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if !buf[..got].starts_with(b"From ") {
        return Ok(!0);
    }
    Ok(from_sum(&buf[..got]))
}

/// Header fields whose values make a message's UIDL.
fn hashed_field(name: &[u8], first_received: bool) -> bool {
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    (is("Received") && first_received)
        || is("Delivered-To")
        || is("Message-ID")
        || is("Date")
        || is("X-Delivery-ID")
        || is("From")
        || is("To")
        || is("Subject")
}

/// A message being scanned.
struct Building {
    from: u64,
    start: u64,
    in_from_line: bool,
    enc: Encoder,
    md5: Md5,
    sum: u32,
    in_header: bool,
    hashing: bool,
    seen_received: bool,
    hidden: bool,
}

impl Building {
    fn new(from: u64, first_piece: &[u8]) -> Building {
        let mut md5 = Md5::new();
        let line = first_piece.strip_suffix(b"\r").unwrap_or(first_piece);
        md5.update(line);
        md5.update(b"\n");
        Building {
            from,
            start: 0,
            in_from_line: true,
            enc: Encoder::new(Storage::Mbox, None),
            md5,
            sum: from_sum(first_piece),
            in_header: true,
            hashing: false,
            seen_received: false,
            hidden: false,
        }
    }

    fn line(&mut self, p: &Piece<'_>) {
        self.enc.piece(p, None);
        if !self.in_header {
            return;
        }
        if p.first {
            let b = p.bytes;
            if b.is_empty() || b == b"\r" {
                self.in_header = false;
                self.hashing = false;
                return;
            }
            if !matches!(b[0], b' ' | b'\t') {
                let name = match memchr::memchr(b':', &b[..b.len().min(64)]) {
                    Some(c) => &b[..c],
                    None => b,
                };
                let received = name.eq_ignore_ascii_case(b"Received");
                self.hashing = hashed_field(name, received && !self.seen_received);
                self.seen_received |= received;
                if name.eq_ignore_ascii_case(b"X-IMAP") {
                    self.hidden = true;
                }
            }
        }
        if self.hashing {
            self.md5.update(p.bytes);
            if p.last {
                self.md5.update(b"\n");
            }
        }
    }

    /// The message ends at `end`; `separator`: an empty line (already fed
    /// to the encoder) sits at `end` and is not part of it.
    fn finish(mut self, end: u64, separator: bool) -> Msg {
        let size = if separator {
            self.enc.size.saturating_sub(2)
        } else {
            self.enc.size
        };
        // The size as sent: readers' header fields do not change it.
        self.md5.update(size.to_le_bytes());
        let digest = self.md5.finalize();
        let mut uid = [0u8; 8];
        uid.copy_from_slice(&digest[..8]);
        let end = end.max(self.start);
        Msg {
            from: self.from,
            start: self.start,
            end,
            size,
            uid,
            sum: self.sum,
            hidden: self.hidden,
        }
    }
}

/// Find the messages in `[from, to)`; `from` is the start of the file or
/// of a `From ` line.
pub(super) fn scan(file: &File, from: u64, to: u64) -> io::Result<Vec<Msg>> {
    let mut out = Vec::new();
    let mut pieces = Pieces::new(file, from, to, vec![0u8; READ_BUF]);
    let mut cur: Option<Building> = None;
    // A `From ` line starts a message at the start and after an empty line.
    let mut after_blank = true;
    let mut blank_at = from;
    while let Some(p) = pieces.next_piece()? {
        if p.first && after_blank && p.bytes.starts_with(b"From ") {
            if let Some(b) = cur.take() {
                out.push(b.finish(blank_at, true));
            }
            let mut b = Building::new(p.offset, p.bytes);
            if p.last {
                b.start = p.offset + p.bytes.len() as u64 + 1;
                b.in_from_line = false;
            }
            cur = Some(b);
            after_blank = false;
            continue;
        }
        if let Some(b) = cur.as_mut() {
            if b.in_from_line {
                if p.last {
                    b.start = p.offset + p.bytes.len() as u64 + 1;
                    b.in_from_line = false;
                }
                continue;
            }
            b.line(&p);
        }
        if p.last {
            after_blank = p.first && p.bytes.is_empty();
            if after_blank {
                blank_at = p.offset;
            }
        }
        // In a body, after a non-empty line: take the lines up to the
        // next boundary in bulk.
        let bulk = p.last
            && !after_blank
            && cur
                .as_ref()
                .is_some_and(|b| !b.in_from_line && !b.in_header);
        if bulk {
            let n = pieces.skip_body()?;
            if let Some(b) = cur.as_mut() {
                b.enc.size += n;
            }
        }
    }
    if let Some(b) = cur.take() {
        out.push(if after_blank {
            b.finish(blank_at, true)
        } else {
            b.finish(to, false)
        });
    }
    Ok(out)
}
