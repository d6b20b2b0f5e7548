//! The redelivery check: before the retry of an attempt that died midway
//! appends its message, it looks for the whole copy that attempt may have
//! left ([`crate::mailbox::Already`]), so a mailbox never gets the same
//! delivery twice — and never takes a torn copy for a whole one.

use std::fs::File;
use std::io::{self, Write};

use super::{Append, write_entry};

/// Whether the first `len` bytes of the mbox `file` hold a whole copy of
/// the entry `a` would write, left by an interrupted attempt: a message
/// whose header block [`crate::mailbox::is_copy`] recognises as
/// `a.already`, and whose body is the one `a` would write, to the last
/// byte (a power cut can leave a torn copy whose header survived; that
/// one is not it).
pub(super) fn holds_copy(file: &File, len: u64, a: &Append<'_>) -> io::Result<bool> {
    let Some(copy) = &a.already else {
        return Ok(false);
    };
    if len == 0 {
        return Ok(false);
    }
    // SAFETY: a read-only map of a file we hold the write lock on; no one
    // following the locking rules changes it meanwhile.
    let map = unsafe { memmap2::MmapOptions::new().len(len as usize).map(file)? };
    let needle = format!("id {}", copy.id);
    for hit in memchr::memmem::find_iter(&map, needle.as_bytes()) {
        // The message around the hit: from its From_ line to its header's end.
        let start = memchr::memmem::rfind(&map[..hit], b"\n\nFrom ").map_or(0, |p| p + 2);
        let head_end =
            memchr::memmem::find(&map[start..], b"\n\n").map_or(map.len(), |p| start + p + 1);
        if hit < head_end
            && crate::mailbox::is_copy(&map[start..head_end], copy)
            && same_body(&map[(head_end + 1).min(map.len())..], a)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `found` (an mbox from a copy's body on) starts with the body of
/// the entry `a` would write, followed by the file's end or the next entry.
fn same_body(found: &[u8], a: &Append<'_>) -> io::Result<bool> {
    let mut check = BodyCheck {
        expect: found,
        pos: 0,
        in_body: false,
        after_lf: false,
        same: true,
    };
    write_entry(&mut check, a)?;
    let rest = found.get(check.pos..).unwrap_or_default();
    Ok(check.same
        && check.in_body
        && (rest.is_empty() || rest.starts_with(b"From ") || rest.starts_with(b"\n")))
}

/// A writer that compares what follows the first empty line it is given
/// (a rendered entry's body) with `expect`, and keeps nothing.
struct BodyCheck<'a> {
    expect: &'a [u8],
    pos: usize,
    in_body: bool,
    after_lf: bool,
    same: bool,
}

impl Write for BodyCheck<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut body = buf;
        if !self.in_body {
            let mut after_lf = self.after_lf;
            let end = buf.iter().position(|&c| {
                let blank = c == b'\n' && after_lf;
                after_lf = c == b'\n';
                blank
            });
            self.after_lf = after_lf;
            match end {
                Some(i) => {
                    self.in_body = true;
                    body = &buf[i + 1..];
                }
                None => return Ok(buf.len()),
            }
        }
        let end = self.pos + body.len();
        self.same = self.same && self.expect.get(self.pos..end) == Some(body);
        self.pos = end;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn a_retry_finds_its_whole_copy_but_not_a_torn_one() {
        let d = tmp("retry");
        let p = d.join("bob");
        let body = "From the start\nline two\n";
        append_job(&p, "J1", body, false);
        let once = std::fs::read(&p).unwrap();
        // The interrupted attempt's copy is whole: the retry writes nothing.
        assert_eq!(append_job(&p, "J1", body, true), 0);
        assert_eq!(std::fs::read(&p).unwrap(), once);
        // Another job with the same body is no copy of this one.
        assert!(append_job(&p, "J2", body, true) > 0);
        // A power cut kept J3's header but not all of its body (and not the
        // note that would have cut it off): the retry delivers it whole.
        let q = d.join("carol");
        append_job(&q, "J3", body, false);
        let whole = std::fs::read(&q).unwrap();
        std::fs::write(&q, &whole[..whole.len() - 6]).unwrap();
        assert!(append_job(&q, "J3", body, true) > 0);
        let text = std::fs::read_to_string(&q).unwrap();
        assert!(text.ends_with(std::str::from_utf8(&whole[whole.len() - 40..]).unwrap()));
        assert_eq!(text.matches(">From the start").count(), 2, "{text}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
