//! Reading a message from a submitting program, as sendmail 8's `collect()`
//! does:
//!
//! * CRLF line ends are stored as LF (headers and body); a lone CR is kept.
//! * Without `-i`/`-oi`, a line consisting of a single `.` ends the message
//!   and a line beginning with `..` loses one dot (`..x` → `.x`); with `-i`
//!   nothing is special.
//! * A Unix `From ` line at the very start is taken off (its date may become
//!   the `Date:`).
//! * The header ends at the first empty line (which is consumed) or at the
//!   first line that is neither a field nor a continuation (which becomes
//!   the first body line).
//! * Everything else is kept byte for byte: 8-bit text, NULs, lines of any
//!   length, a missing final newline.
//!
//! The header is kept in memory (bounded by [`CollectOptions::max_header_bytes`]);
//! the body is streamed to a writer (the queue's data file), so a large
//! message never has to fit in memory.

use std::io::{self, BufRead, Write};

use super::header::{Header, field_name, is_continuation};

/// Longest piece handed on at once when a line has no newline in sight.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct CollectOptions {
    /// `-i`/`-oi`: a lone `.` is data, leading dots are kept.
    pub ignore_dots: bool,
    /// Largest accepted message in bytes (0 = unlimited).
    pub size_limit: u64,
    /// Largest accepted header block in bytes.
    pub max_header_bytes: usize,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            ignore_dots: false,
            size_limit: 0,
            max_header_bytes: 1024 * 1024,
        }
    }
}

/// What was read.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    pub header: Header,
    /// The Unix `From ` line (without LF), if the input started with one.
    pub from_line: Option<String>,
    /// Bytes read after line-end and dot processing, `From ` line and the
    /// header/body separator included: sendmail's `size=`.
    pub size: u64,
    /// Bytes written to the body writer.
    pub body_size: u64,
    /// Any byte ≥ 0x80 in the header or body.
    pub has_8bit: bool,
}

#[derive(Debug)]
pub enum CollectError {
    /// Reading the input failed.
    Read(io::Error),
    /// Writing the body failed (disk full, ...).
    Write(io::Error),
    /// The message is larger than the limit.
    TooBig(u64),
    /// The header block is larger than the limit.
    HeaderTooBig(usize),
}

/// Splits input into pieces that are whole lines, or `CHUNK`-sized parts of
/// a very long line.  A CR that might start a CRLF is never the last byte
/// of an unterminated piece.
struct Pieces<R> {
    input: R,
    piece: Vec<u8>,
}

impl<R: BufRead> Pieces<R> {
    /// The next piece in `self.piece`; false at end of input.
    fn next(&mut self) -> io::Result<bool> {
        self.piece.clear();
        loop {
            let buf = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Ok(!self.piece.is_empty());
            }
            let room = CHUNK.saturating_sub(self.piece.len()).max(1);
            let window = &buf[..buf.len().min(room)];
            if let Some(nl) = window.iter().position(|&b| b == b'\n') {
                self.piece.extend_from_slice(&window[..=nl]);
                self.input.consume(nl + 1);
                return Ok(true);
            }
            let mut take = window.len();
            let full = self.piece.len() + take >= CHUNK;
            if full && window[take - 1] == b'\r' && take > 1 {
                take -= 1; // keep a possible CRLF together
            }
            self.piece.extend_from_slice(&window[..take]);
            self.input.consume(take);
            if full {
                return Ok(true);
            }
        }
    }
}

enum Phase {
    Start,
    Header,
    Body,
}

/// Read a message from `input`, writing the body to `body`.
pub fn collect<R: BufRead, W: Write>(
    input: R,
    body: &mut W,
    opts: &CollectOptions,
) -> Result<Collected, CollectError> {
    let mut pieces = Pieces {
        input,
        piece: Vec::with_capacity(256),
    };
    let mut out = Collected::default();
    let mut phase = Phase::Start;
    let mut at_line_start = true;
    // A header line being assembled from several pieces.
    let mut line: Vec<u8> = Vec::new();
    let mut header_bytes = 0usize;

    loop {
        let more = pieces.next().map_err(CollectError::Read)?;
        if !more {
            break;
        }
        // Work on an owned piece so the reader can be asked about EOF.
        let mut cur = std::mem::take(&mut pieces.piece);
        let complete = cur.last() == Some(&b'\n');
        if complete && cur.ends_with(b"\r\n") {
            // CRLF -> LF
            cur.truncate(cur.len() - 2);
            cur.push(b'\n');
        }
        let mut piece: &[u8] = &cur;

        // Dot rules apply at the start of every line.
        if at_line_start && !opts.ignore_dots && piece.first() == Some(&b'.') {
            if piece == b".\n" || (piece == b"." && !complete) {
                // A lone dot: the end of the message.  (`.` without a
                // newline at end of input also ends it.)
                if piece == b".\n" || pieces_at_eof(&mut pieces)? {
                    break;
                }
            }
            if piece.starts_with(b"..") {
                piece = &piece[1..];
            }
        }
        at_line_start = complete;

        if piece.iter().any(|&b| b >= 0x80) {
            out.has_8bit = true;
        }
        out.size += piece.len() as u64;
        if opts.size_limit > 0 && out.size > opts.size_limit {
            return Err(CollectError::TooBig(opts.size_limit));
        }

        match phase {
            Phase::Body => {
                body.write_all(piece).map_err(CollectError::Write)?;
                out.body_size += piece.len() as u64;
            }
            Phase::Start | Phase::Header => {
                line.extend_from_slice(piece);
                if !complete && line.len() < opts.max_header_bytes {
                    pieces.piece = cur;
                    continue; // the rest of this line is still coming
                }
                header_bytes += line.len();
                if header_bytes > opts.max_header_bytes {
                    return Err(CollectError::HeaderTooBig(opts.max_header_bytes));
                }
                let bare = line.strip_suffix(b"\n").unwrap_or(&line);
                let first = matches!(phase, Phase::Start);
                phase = Phase::Header;
                if first && bare.starts_with(b"From ") {
                    out.from_line = Some(String::from_utf8_lossy(bare).into_owned());
                } else if bare.is_empty() {
                    phase = Phase::Body; // the separator is not part of the body
                } else if is_continuation(bare) && !out.header.fields.is_empty() {
                    out.header.continue_last(&line);
                } else if let Some(name) = field_name(bare) {
                    let mut raw = line.clone();
                    if raw.last() != Some(&b'\n') {
                        raw.push(b'\n');
                        out.size += 1;
                    }
                    out.header.fields.push(super::header::Field {
                        name: name.to_string(),
                        raw,
                    });
                } else {
                    // Not a header line: the body starts here.
                    body.write_all(&line).map_err(CollectError::Write)?;
                    out.body_size += line.len() as u64;
                    phase = Phase::Body;
                }
                line.clear();
            }
        }
        pieces.piece = cur;
    }
    // Input ended inside a header line without a newline.
    if !line.is_empty() {
        let bare = line.clone();
        if field_name(&bare).is_some() || (is_continuation(&bare) && !out.header.fields.is_empty())
        {
            line.push(b'\n');
            out.size += 1;
            if is_continuation(&bare) {
                out.header.continue_last(&line);
            } else {
                let name = field_name(&bare).unwrap_or("X").to_string();
                out.header
                    .fields
                    .push(super::header::Field { name, raw: line });
            }
        } else if bare.starts_with(b"From ")
            && out.header.fields.is_empty()
            && out.from_line.is_none()
        {
            out.from_line = Some(String::from_utf8_lossy(&bare).into_owned());
        } else {
            body.write_all(&line).map_err(CollectError::Write)?;
            out.body_size += line.len() as u64;
        }
    }
    body.flush().map_err(CollectError::Write)?;
    Ok(out)
}

fn pieces_at_eof<R: BufRead>(p: &mut Pieces<R>) -> Result<bool, CollectError> {
    loop {
        match p.input.fill_buf() {
            Ok(b) => return Ok(b.is_empty()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CollectError::Read(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], ignore_dots: bool) -> (Collected, Vec<u8>) {
        let mut body = Vec::new();
        let opts = CollectOptions {
            ignore_dots,
            ..Default::default()
        };
        let c = collect(input, &mut body, &opts).unwrap();
        (c, body)
    }

    #[test]
    fn headers_and_body_split_at_blank_line() {
        let (c, body) = run(b"To: eve, dave\nSubject: hi\n\nbody\n..x\n", false);
        assert_eq!(c.header.fields.len(), 2);
        assert_eq!(body, b"body\n.x\n");
        assert_eq!(c.size, 35); // as sendmail 8 logs it
    }

    #[test]
    fn lone_dot_ends_input_without_i() {
        let (_, body) = run(b"Subject: x\n\na\n.\nnot read\n", false);
        assert_eq!(body, b"a\n");
        let (_, body) = run(b"Subject: x\n\na\n.\nkept\n..y\n", true);
        assert_eq!(body, b"a\n.\nkept\n..y\n");
        let (_, body) = run(b"Subject: x\n\na\n.", false);
        assert_eq!(body, b"a\n");
        let (_, body) = run(b"Subject: x\n\n.x\n", false);
        assert_eq!(body, b".x\n");
    }

    #[test]
    fn crlf_becomes_lf_and_lone_cr_stays() {
        let (c, body) = run(
            b"To: a\r\nSubject: b\r\n\r\nline\r\nbare\rcr\r\n.\r\n",
            false,
        );
        assert_eq!(c.header.to_bytes(), b"To: a\nSubject: b\n".to_vec());
        assert_eq!(body, b"line\nbare\rcr\n");
    }

    #[test]
    fn non_header_line_starts_body() {
        let (c, body) = run(b"Subject: x\nnot a header\nTo: eve\n\nbody\n", false);
        assert_eq!(c.header.fields.len(), 1);
        assert_eq!(body, b"not a header\nTo: eve\n\nbody\n");
        assert_eq!(c.size, 38);
    }

    #[test]
    fn no_header_at_all() {
        let (c, body) = run(b"hi\n", false);
        assert!(c.header.fields.is_empty());
        assert_eq!(body, b"hi\n");
    }

    #[test]
    fn unix_from_line_is_removed_but_counted() {
        let input = b"From someone@x.y Thu Nov 20 10:00:00 2025\nSubject: fromline\n\nbody\n";
        let (c, body) = run(input, false);
        assert_eq!(
            c.from_line.as_deref(),
            Some("From someone@x.y Thu Nov 20 10:00:00 2025")
        );
        assert_eq!(body, b"body\n");
        assert_eq!(c.size, 66);
    }

    #[test]
    fn missing_final_newline_is_kept() {
        let (_, body) = run(b"Subject: 7\n\nhello", false);
        assert_eq!(body, b"hello");
    }

    #[test]
    fn long_lines_and_8bit_pass_untouched() {
        let mut input = b"Subject: x\n\n".to_vec();
        let long: Vec<u8> = (0..200_000).map(|i| b'a' + (i % 26) as u8).collect();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\r\n\xc3\xa9\x00\n");
        let (c, body) = run(&input, true);
        let mut want = long.clone();
        want.extend_from_slice(b"\n\xc3\xa9\x00\n");
        assert_eq!(body, want);
        assert!(c.has_8bit);
    }

    #[test]
    fn crlf_split_across_chunks() {
        let mut input = b"Subject: x\n\n".to_vec();
        let mut line = vec![b'x'; CHUNK - 1];
        line.extend_from_slice(b"\r\nnext\n");
        input.extend_from_slice(&line);
        let (_, body) = run(&input, true);
        let mut want = vec![b'x'; CHUNK - 1];
        want.extend_from_slice(b"\nnext\n");
        assert_eq!(body, want);
    }

    #[test]
    fn size_limit() {
        let mut body = Vec::new();
        let opts = CollectOptions {
            size_limit: 10,
            ..Default::default()
        };
        let e = collect(&b"Subject: xxxxxxxx\n\nbody\n"[..], &mut body, &opts).unwrap_err();
        assert!(matches!(e, CollectError::TooBig(10)));
    }
}
