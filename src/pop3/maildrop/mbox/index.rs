//! The `.NAME.pop3-index` file: what a scan of the mbox `NAME` found,
//! kept next to it so that opening a large mbox does not read all of it
//! again.  A cache: written without `fsync`, safe to delete, never
//! trusted beyond the checks below.  pop3d writes it as the mailbox's
//! user (mode 0600) through a temporary `.NAME.tmpPID` renamed over it,
//! after a scan at login and after `QUIT` compacted the mbox.
//!
//! ## Layout (integers little-endian)
//!
//! ```text
//! offset  size  header (56 bytes)
//!      0     8  magic "MRPOPIX2" (a change of layout changes the magic)
//!      8     8  st_dev of the mbox
//!     16     8  st_ino of the mbox
//!     24     8  SIZE: bytes of the mbox the records describe, [0, SIZE)
//!     32     8  FNV-1a 64 of the first min(SIZE, 4096) bytes of the mbox
//!     40     8  FNV-1a 64 of the last min(SIZE, 4096) bytes of [0, SIZE)
//!     48     8  COUNT: the number of records that follow
//!
//! offset  size  each record (48 bytes), in file order
//!      0     8  offset of the message's `From ` line
//!      8     8  offset of its first header line
//!     16     8  its end (exclusive; the separating empty line follows)
//!     24     8  its size as RETR sends it
//!     32     8  the UIDL hash (first 8 bytes of the MD5, see super::scan)
//!     40     4  FNV-1a 32 of its `From ` line (first 256 bytes, up to LF)
//!     44     1  1: Dovecot's folder-data pseudo-message (kept, not listed)
//!     45     3  zero
//! ```
//!
//! ## When it is believed
//!
//! Only while it still describes a prefix of the same file: the device
//! and inode match; SIZE is at most the mbox's size; COUNT is plausible
//! (at most SIZE/8 + 1) and that many whole records follow; both 4 KiB
//! checksums match the mbox now; when the mbox has grown, what follows
//! SIZE starts like an appended message (`From ` or an empty line); and
//! the records' offsets are in order within SIZE.  Then only mail
//! appended since is scanned, from the last indexed message on (which an
//! append may have extended).  Anything else (the mbox replaced, cut,
//! or rewritten by a reader) means a full scan and a new index.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::scan::Msg;

/// `/var/mail/.bob.pop3-index` for `/var/mail/bob`.
pub(super) fn index_path(mbox: &Path) -> PathBuf {
    let name = mbox.file_name().unwrap_or_default().to_string_lossy();
    mbox.with_file_name(format!(".{name}.pop3-index"))
}

const INDEX_MAGIC: &[u8; 8] = b"MRPOPIX2";
const INDEX_RECORD: usize = 48;

/// Checksums of the first and last 4 KiB of `[0, size)`.
fn ends_sums(file: &File, size: u64) -> io::Result<(u64, u64)> {
    let mut buf = vec![0u8; 4096];
    let n = (size as usize).min(buf.len());
    file.read_exact_at(&mut buf[..n], 0)?;
    let head = fnv64(&buf[..n]);
    file.read_exact_at(&mut buf[..n], size - n as u64)?;
    Ok((head, fnv64(&buf[..n])))
}

fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Write the index of `msgs`, which cover `[0, size)` of the mbox open as
/// `file` (`meta` its metadata), to `path`; a failure leaves no index.
pub(super) fn write_index(
    path: &Path,
    file: &File,
    meta: &std::fs::Metadata,
    msgs: &[Msg],
    size: u64,
) {
    let Ok((head, tail)) = ends_sums(file, size) else {
        return;
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = (|| -> io::Result<()> {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        let mut w = io::BufWriter::with_capacity(64 * 1024, f);
        w.write_all(INDEX_MAGIC)?;
        for v in [meta.dev(), meta.ino(), size, head, tail, msgs.len() as u64] {
            w.write_all(&v.to_le_bytes())?;
        }
        for m in msgs {
            let mut r = [0u8; INDEX_RECORD];
            for (k, v) in [m.from, m.start, m.end, m.size].iter().enumerate() {
                r[k * 8..k * 8 + 8].copy_from_slice(&v.to_le_bytes());
            }
            r[32..40].copy_from_slice(&m.uid);
            r[40..44].copy_from_slice(&m.sum.to_le_bytes());
            r[44] = m.hidden as u8;
            w.write_all(&r)?;
        }
        w.flush()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The index, when it still describes a prefix of the file: the messages
/// and the size they cover.
pub(super) fn read_index(
    path: &Path,
    file: &File,
    meta: &std::fs::Metadata,
) -> Option<(Vec<Msg>, u64)> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let mut head = [0u8; 56];
    f.read_exact(&mut head).ok()?;
    if &head[..8] != INDEX_MAGIC {
        return None;
    }
    let v = |i: usize| u64::from_le_bytes(head[8 + i * 8..16 + i * 8].try_into().unwrap_or([0; 8]));
    let (dev, ino, size, head_sum, tail_sum, count) = (v(0), v(1), v(2), v(3), v(4), v(5));
    if dev != meta.dev() || ino != meta.ino() || size > meta.len() || count > size / 8 + 1 {
        return None;
    }
    if size > 0 && ends_sums(file, size).ok()? != (head_sum, tail_sum) {
        return None;
    }
    if size < meta.len() {
        // Only appends are allowed: the new mail must start right there.
        let mut b = [0u8; 5];
        file.read_exact_at(&mut b, size).ok()?;
        let ok_start = &b == b"From " || b[0] == b'\n';
        if !ok_start {
            return None;
        }
    }
    let mut body = Vec::new();
    f.take(count * INDEX_RECORD as u64)
        .read_to_end(&mut body)
        .ok()?;
    if body.len() as u64 != count * INDEX_RECORD as u64 {
        return None;
    }
    let msgs: Vec<Msg> = body
        .chunks_exact(INDEX_RECORD)
        .map(|r| {
            let u = |i: usize| u64::from_le_bytes(r[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
            let mut uid = [0u8; 8];
            uid.copy_from_slice(&r[32..40]);
            Msg {
                from: u(0),
                start: u(1),
                end: u(2),
                size: u(3),
                uid,
                sum: u32::from_le_bytes(r[40..44].try_into().unwrap_or([0; 4])),
                hidden: r[44] != 0,
            }
        })
        .collect();
    // Offsets must make sense for this file.
    let sane = msgs.windows(2).all(|w| w[0].end <= w[1].from)
        && msgs
            .iter()
            .all(|m| m.from < m.start.max(m.from + 1) && m.start <= m.end && m.end <= size);
    sane.then_some((msgs, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &[u8] = b"From a@b  Sat Nov 21 05:00:00 2026\nSubject: one\n\nbody 1\n\nFrom c@d  Sat Nov 21 05:00:01 2026\nSubject: two\n\nbody 2\n\n";

    /// An mbox holding `text`, its index path, and the messages a scan
    /// finds in it.
    fn indexed(name: &str, text: &[u8]) -> (PathBuf, PathBuf, Vec<Msg>) {
        let d = std::env::temp_dir().join(format!("mr-pop-index-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let mbox = d.join("bob");
        std::fs::write(&mbox, text).unwrap();
        let msgs =
            super::super::scan::scan(&File::open(&mbox).unwrap(), 0, text.len() as u64).unwrap();
        (mbox.clone(), index_path(&mbox), msgs)
    }

    fn write(mbox: &Path, index: &Path, msgs: &[Msg], size: u64) {
        let f = File::open(mbox).unwrap();
        write_index(index, &f, &f.metadata().unwrap(), msgs, size);
    }

    fn read(mbox: &Path, index: &Path) -> Option<(Vec<Msg>, u64)> {
        let f = File::open(mbox).unwrap();
        read_index(index, &f, &f.metadata().unwrap())
    }

    #[test]
    fn the_index_reads_back_as_written_with_the_documented_layout() {
        let (mbox, index, msgs) = indexed("layout", TWO);
        assert_eq!(index.file_name().unwrap(), ".bob.pop3-index");
        assert_eq!(msgs.len(), 2);
        write(&mbox, &index, &msgs, TWO.len() as u64);
        assert_eq!(read(&mbox, &index), Some((msgs.clone(), TWO.len() as u64)));
        let bytes = std::fs::read(&index).unwrap();
        assert_eq!(bytes.len(), 56 + 2 * 48);
        assert_eq!(&bytes[..8], b"MRPOPIX2");
        let u = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let m = std::fs::metadata(&mbox).unwrap();
        assert_eq!(
            [u(8), u(16), u(24), u(48)],
            [m.dev(), m.ino(), TWO.len() as u64, 2]
        );
        // The whole file is under 4 KiB: both checksums cover all of it.
        assert_eq!(u(32), fnv64(TWO));
        assert_eq!(u(40), fnv64(TWO));
        let second = 56 + 48;
        assert_eq!(u(second), msgs[1].from);
        assert_eq!(&TWO[msgs[1].from as usize..][..7], b"From c@");
        assert_eq!(
            [u(second + 8), u(second + 16)],
            [msgs[1].start, msgs[1].end]
        );
        assert_eq!(u(second + 24), msgs[1].size);
        assert_eq!(&bytes[second + 32..second + 40], &msgs[1].uid);
        assert_eq!(
            u32::from_le_bytes(bytes[second + 40..second + 44].try_into().unwrap()),
            msgs[1].sum
        );
        assert_eq!(&bytes[second + 44..second + 48], &[0, 0, 0, 0]);
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(mbox.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn mail_appended_since_keeps_the_index_valid_for_the_prefix() {
        let (mbox, index, msgs) = indexed("append", TWO);
        write(&mbox, &index, &msgs, TWO.len() as u64);
        let mut f = OpenOptions::new().append(true).open(&mbox).unwrap();
        f.write_all(b"From e@f  Sat Nov 21 05:00:02 2026\n\nnew\n\n")
            .unwrap();
        assert_eq!(read(&mbox, &index), Some((msgs, TWO.len() as u64)));
    }

    #[test]
    fn any_other_change_to_the_mbox_invalidates_the_index() {
        type Change = dyn Fn(&Path);
        let cases: &[(&str, &Change)] = &[
            // Replaced by another file (another inode).
            ("replaced", &|p| {
                let copy = p.with_file_name("new");
                std::fs::write(&copy, TWO).unwrap();
                std::fs::rename(&copy, p).unwrap();
            }),
            // Cut shorter than what the index covers.
            ("cut", &|p| {
                std::fs::write(p, &TWO[..TWO.len() - 10]).unwrap();
            }),
            // Rewritten in place at the same size (a reader's Status:
            // field replacing bytes), at the start and at the end.
            ("head", &|p| {
                let f = OpenOptions::new().write(true).open(p).unwrap();
                f.write_all_at(b"X", 40).unwrap();
            }),
            ("tail", &|p| {
                let f = OpenOptions::new().write(true).open(p).unwrap();
                f.write_all_at(b"X", TWO.len() as u64 - 4).unwrap();
            }),
            // Grown by something that is not an appended message.
            ("grown", &|p| {
                let mut f = OpenOptions::new().append(true).open(p).unwrap();
                f.write_all(b"garbage\n").unwrap();
            }),
        ];
        for (name, change) in cases {
            let (mbox, index, msgs) = indexed(name, TWO);
            write(&mbox, &index, &msgs, TWO.len() as u64);
            assert!(read(&mbox, &index).is_some(), "{name}");
            change(&mbox);
            assert_eq!(read(&mbox, &index), None, "{name}");
        }
    }

    #[test]
    fn a_damaged_index_is_not_believed() {
        let (mbox, index, msgs) = indexed("damaged", TWO);
        write(&mbox, &index, &msgs, TWO.len() as u64);
        let good = std::fs::read(&index).unwrap();
        let damaged: [(&str, Vec<u8>); 4] = [
            ("magic", [b"MRPOPIX1", &good[8..]].concat()),
            ("short", good[..good.len() - 1].to_vec()),
            ("count", {
                let mut b = good.clone();
                b[48..56].copy_from_slice(&1000u64.to_le_bytes());
                b
            }),
            ("offsets", {
                // The second message's end beyond what the index covers.
                let mut b = good.clone();
                b[56 + 48 + 16..56 + 48 + 24].copy_from_slice(&9999u64.to_le_bytes());
                b
            }),
        ];
        for (name, bytes) in damaged {
            std::fs::write(&index, bytes).unwrap();
            assert_eq!(read(&mbox, &index), None, "{name}");
        }
        std::fs::remove_file(&index).unwrap();
        assert_eq!(read(&mbox, &index), None, "missing");
    }
}
