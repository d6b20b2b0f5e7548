//! The message as it travels in SMTP's DATA: CRLF line ends, leading dots
//! doubled, ended by `CRLF.CRLF`; and the MIME conversion of 8-bit parts to
//! quoted-printable for a server that does not offer 8BITMIME (RFC 6152:
//! convert, do not refuse).

use std::io::{self, Write};

/// Write `msg` (LF or CRLF line ends) as DATA content, dot-stuffed, with a
/// final CRLF and the terminating `.` line.
pub fn write_data(w: &mut impl Write, msg: &[u8]) -> io::Result<()> {
    let mut start = 0;
    let mut at_line_start = true;
    let mut out = Vec::with_capacity(msg.len() + msg.len() / 40 + 8);
    while start < msg.len() {
        let end = msg[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(msg.len(), |i| start + i);
        let mut line = &msg[start..end];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        if at_line_start && line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        if end < msg.len() {
            out.extend_from_slice(b"\r\n");
            at_line_start = true;
        } else {
            // last line without newline
            out.extend_from_slice(b"\r\n");
        }
        start = end + 1;
        if out.len() > 1 << 20 {
            w.write_all(&out)?;
            out.clear();
        }
    }
    out.extend_from_slice(b".\r\n");
    w.write_all(&out)
}

/// Size of `msg` as SMTP counts it (CRLF line ends), for `SIZE=`.
pub fn wire_size(msg: &[u8]) -> u64 {
    let lfs = msg.iter().filter(|&&b| b == b'\n').count() as u64;
    let crlfs = msg.windows(2).filter(|w| w == b"\r\n").count() as u64;
    msg.len() as u64 + lfs - crlfs
}

/// Does the message contain any byte ≥ 0x80?
pub fn has_8bit(msg: &[u8]) -> bool {
    msg.iter().any(|&b| b >= 0x80)
}

/// Quoted-printable encoding of `body` (RFC 2045 §6.7), LF line ends.
pub fn quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() * 2);
    for raw in body.split_inclusive(|&b| b == b'\n') {
        let (line, nl) = match raw.strip_suffix(b"\n") {
            Some(l) => (l.strip_suffix(b"\r").unwrap_or(l), true),
            None => (raw, false),
        };
        let mut col = 0;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let enc: Vec<u8> = if b == b'='
                || b >= 0x80
                || (b < 0x20 && b != b'\t')
                || ((b == b' ' || b == b'\t') && last)
            {
                format!("={b:02X}").into_bytes()
            } else {
                vec![b]
            };
            if col + enc.len() > 75 {
                out.extend_from_slice(b"=\n");
                col = 0;
            }
            out.extend_from_slice(&enc);
            col += enc.len();
        }
        if nl {
            out.push(b'\n');
        }
    }
    out
}

/// Convert every 8-bit part of `msg` to quoted-printable, walking
/// multipart bodies; 7-bit parts are left as they are.
pub fn to_7bit(msg: &[u8]) -> Vec<u8> {
    convert(msg, true)
}

fn convert(msg: &[u8], top: bool) -> Vec<u8> {
    let (header, body) = split_header(msg);
    let h = crate::message::Header::parse(header);
    let ctype = h.get("Content-Type").map(|f| f.value()).unwrap_or_default();
    if let Some(boundary) = boundary_of(&ctype) {
        let mut out = header.to_vec();
        out.push(b'\n');
        out.extend_from_slice(&convert_multipart(body, &boundary));
        return out;
    }
    if !has_8bit(body) {
        return msg.to_vec();
    }
    let cte = h
        .get("Content-Transfer-Encoding")
        .map(|f| f.value().to_ascii_lowercase())
        .unwrap_or_default();
    if cte == "quoted-printable" || cte == "base64" {
        return msg.to_vec();
    }
    let mut out = Vec::with_capacity(msg.len() * 2);
    for f in &h.fields {
        if !f.is("Content-Transfer-Encoding") {
            out.extend_from_slice(&f.raw);
        }
    }
    // Outside MIME a transfer encoding means nothing: declare MIME, and a
    // charset that claims no more than is known.
    if top && !h.has("MIME-Version") {
        out.extend_from_slice(b"MIME-Version: 1.0\n");
    }
    if !h.has("Content-Type") {
        out.extend_from_slice(b"Content-Type: text/plain; charset=unknown-8bit\n");
    }
    out.extend_from_slice(b"Content-Transfer-Encoding: quoted-printable\n\n");
    out.extend_from_slice(&quoted_printable(body));
    out
}

fn split_header(msg: &[u8]) -> (&[u8], &[u8]) {
    if msg.starts_with(b"\n") {
        return (&msg[..0], &msg[1..]);
    }
    match msg.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&msg[..i + 1], &msg[i + 2..]),
        None => (msg, &msg[msg.len()..]),
    }
}

fn boundary_of(ctype: &str) -> Option<String> {
    if !ctype.to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    let lower = ctype.to_ascii_lowercase();
    let at = lower.find("boundary=")?;
    let rest = &ctype[at + "boundary=".len()..];
    let b = if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next()?
    } else {
        rest.split([';', ' ', '\t']).next()?
    };
    if b.is_empty() {
        None
    } else {
        Some(b.to_string())
    }
}

fn convert_multipart(body: &[u8], boundary: &str) -> Vec<u8> {
    let delim = format!("--{boundary}");
    let mut out = Vec::with_capacity(body.len() * 2);
    let mut part: Vec<u8> = Vec::new();
    let mut in_part = false;
    for line in body.split_inclusive(|&b| b == b'\n') {
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if bare.starts_with(delim.as_bytes()) {
            if in_part {
                // the CRLF before the delimiter belongs to the delimiter
                let mut p = std::mem::take(&mut part);
                let had_nl = p.ends_with(b"\n");
                if had_nl {
                    p.pop();
                }
                out.extend_from_slice(&convert(&p, false));
                if had_nl && !out.ends_with(b"\n") {
                    out.push(b'\n');
                }
            }
            out.extend_from_slice(line);
            in_part = !bare[delim.len()..].starts_with(b"--");
            continue;
        }
        if in_part {
            part.extend_from_slice(line);
        } else {
            out.extend_from_slice(line);
        }
    }
    if in_part {
        out.extend_from_slice(&convert(&part, false));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_and_crlf() {
        let mut v = Vec::new();
        write_data(&mut v, b"Subject: x\n\n.hidden\nline\r\nlast").unwrap();
        assert_eq!(v, b"Subject: x\r\n\r\n..hidden\r\nline\r\nlast\r\n.\r\n");
        assert_eq!(wire_size(b"a\nb\r\n"), 6);
    }

    #[test]
    fn quoted_printable_encoding() {
        assert_eq!(
            quoted_printable("café = ok \n".as_bytes()),
            b"caf=C3=A9 =3D ok=20\n"
        );
        let long = vec![b'a'; 100];
        let q = quoted_printable(&long);
        assert!(q.split(|&b| b == b'\n').all(|l| l.len() <= 76));
    }

    #[test]
    fn converts_only_8bit_parts() {
        let msg = "Subject: s\nContent-Type: multipart/mixed; boundary=\"XX\"\n\npre\n--XX\nContent-Type: text/plain\nContent-Transfer-Encoding: 8bit\n\nhéllo\n--XX\nContent-Type: text/plain\n\nascii\n--XX--\n".as_bytes();
        let out = String::from_utf8(to_7bit(msg)).unwrap();
        assert!(
            out.contains("Content-Transfer-Encoding: quoted-printable\n\nh=C3=A9llo\n--XX\n"),
            "{out}"
        );
        assert!(out.contains("ascii\n--XX--"));
        assert!(!has_8bit(out.as_bytes()));
        let single = "Subject: s\n\nnaïve\n".as_bytes();
        let out = String::from_utf8(to_7bit(single)).unwrap();
        assert_eq!(
            out,
            "Subject: s\nMIME-Version: 1.0\nContent-Type: text/plain; charset=unknown-8bit\nContent-Transfer-Encoding: quoted-printable\n\nna=C3=AFve\n"
        );
    }
}
