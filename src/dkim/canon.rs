//! Relaxed/relaxed canonicalization (RFC 6376 §3.4.2, §3.4.4) and the
//! header hash input (§5.4.2): what signing ([`super::sign`]) and the
//! tests' verifier hash.  Messages are taken as the queue stores them (LF
//! line ends) or as the wire carries them (CRLF); both hash alike.

/// Header block (with its final LF) and body of an LF (or CRLF) message.
pub(super) fn split(msg: &[u8]) -> (&[u8], &[u8]) {
    let mut at = 0;
    for line in msg.split_inclusive(|&b| b == b'\n') {
        if line == b"\n" || line == b"\r\n" {
            return (&msg[..at], &msg[at + line.len()..]);
        }
        at += line.len();
    }
    (msg, &msg[msg.len()..])
}

/// The canonical fields named in `h=`, each name taking the next instance
/// from the bottom (RFC 6376 §5.4.2); names with no instance left add
/// nothing.
pub(super) fn header_hash_input(fields: &[crate::message::Field], names: &[&str]) -> Vec<u8> {
    let mut used = vec![false; fields.len()];
    let mut out = Vec::new();
    for n in names {
        if let Some(i) = (0..fields.len())
            .rev()
            .find(|&i| !used[i] && fields[i].is(n))
        {
            used[i] = true;
            out.extend_from_slice(&relaxed_header(&fields[i].raw));
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Relaxed header canonicalization (RFC 6376 §3.4.2) of one field, raw
/// with its line ends, giving `name:value` without the final CRLF.
pub fn relaxed_header(raw: &[u8]) -> Vec<u8> {
    let colon = raw.iter().position(|&b| b == b':').unwrap_or(raw.len());
    let name = &raw[..colon];
    let name_end = name.iter().rposition(|&b| !is_wsp(b)).map_or(0, |i| i + 1);
    let mut out: Vec<u8> = name[..name_end].to_ascii_lowercase();
    out.push(b':');
    // Unfold: line breaks go (each line loses the CR the wire would drop).
    let mut value = Vec::with_capacity(raw.len());
    for line in raw[(colon + 1).min(raw.len())..].split(|&b| b == b'\n') {
        value.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    }
    let mut v = Vec::with_capacity(value.len());
    let mut space = false;
    for &b in &value {
        if is_wsp(b) {
            space = true;
        } else {
            if space && !v.is_empty() {
                v.push(b' ');
            }
            space = false;
            v.push(b);
        }
    }
    out.extend_from_slice(&v);
    out
}

/// Relaxed body canonicalization (RFC 6376 §3.4.4) of a body with LF or
/// CRLF line ends, as the wire carries it.
pub fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut l = Vec::with_capacity(line.len());
        let mut space = false;
        for &b in line {
            if is_wsp(b) {
                space = true;
            } else {
                if space {
                    l.push(b' ');
                }
                space = false;
                l.push(b);
            }
        }
        lines.push(l);
        rest = next;
    }
    while lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    let mut out = Vec::with_capacity(body.len());
    for l in lines {
        out.extend_from_slice(&l);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6376_canonicalization_example() {
        // RFC 6376 §3.4.6.
        assert_eq!(relaxed_header(b"A: X\r\n"), b"a:X");
        assert_eq!(relaxed_header(b"B : Y\t\r\n\tZ  \r\n"), b"b:Y Z");
        assert_eq!(relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n"), b" C\r\nD E\r\n");
        // LF line ends (the queue's) canonicalize as the wire's CRLF would.
        assert_eq!(relaxed_body(b" C \nD \t E\n\n\n"), b" C\r\nD E\r\n");
        // A last line without a line end gets one; an empty body is empty.
        assert_eq!(relaxed_body(b"x"), b"x\r\n");
        assert_eq!(relaxed_body(b"\n\n"), b"");
    }
}
