//! Finishing or undoing what a writer killed holding an mbox's locks left
//! behind, as the note in its stale dotlock says
//! ([`crate::mailbox::lock::Note`]): a half-written append is cut off, a
//! half-done compaction (POP3's `QUIT`) is finished from its side file.
//! Whoever takes the write lock next does it: an appender
//! (`write.rs`) and pop3d ([`crate::pop3::maildrop::mbox`]) alike.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use crate::mailbox::lock::{self, Note};

/// The side file a compaction writes the kept tail of `mbox` to first
/// (`.NAME.compact` in the same directory).
pub fn compact_side_file(mbox: &Path) -> std::path::PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(mbox.file_name().unwrap_or_default());
    name.push(".compact");
    mbox.with_file_name(name)
}

/// Finish or undo what a killed writer of `file` left, as the [`Note`] in
/// its stale dotlock (replaced by `held`) tells.  Returns what was done.
/// The caller holds the write lock.
pub fn recover(file: &File, path: &Path, held: &lock::Held) -> io::Result<Option<String>> {
    let Some(note) = held.broken_note() else {
        return Ok(None);
    };
    let opened = file.metadata()?;
    if !note.is_about(&opened) {
        return Ok(None);
    }
    match note {
        Note::Append { start, .. } if start < opened.len() => {
            file.set_len(start)?;
            file.sync_data()?;
            Ok(Some(format!(
                "removed {} bytes a killed delivery left half-written",
                opened.len() - start
            )))
        }
        Note::Append { .. } => Ok(None),
        Note::Compact { start, len, .. } => {
            let side_path = compact_side_file(path);
            let side = match OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&side_path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            if side.metadata()?.len() != len {
                return Ok(None);
            }
            // Positioned writes need a descriptor without O_APPEND (an
            // appender's has it, and Linux then ignores the offset).
            let target = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)?;
            if !note.is_about(&target.metadata()?) {
                return Ok(None);
            }
            copy_range(&side, 0, &target, start, len)?;
            target.set_len(start + len)?;
            target.sync_all()?;
            std::fs::remove_file(&side_path)?;
            Ok(Some(
                "finished the compaction a killed POP3 session left half-done".to_string(),
            ))
        }
    }
}

/// Copy `len` bytes of `from` at `from_off` to `to` at `to_off`.
pub fn copy_range(from: &File, from_off: u64, to: &File, to_off: u64, len: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    while done < len {
        let n = ((len - done) as usize).min(buf.len());
        from.read_exact_at(&mut buf[..n], from_off + done)?;
        to.write_all_at(&buf[..n], to_off + done)?;
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use std::io::Write;

    #[test]
    fn a_killed_appenders_half_message_is_cut_off_by_the_next_one() {
        let d = tmp("torn");
        let p = d.join("bob");
        append_to(&p, b"Subject: one\n\nfirst\n", 0).unwrap();
        let whole = std::fs::read(&p).unwrap();
        // Killed mid-append: half a message after the first.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"From x@y  Sat Nov 21 05:00:00 2026\nSubject: torn\n\nhal")
            .unwrap();
        let (dev, ino) = dev_ino(&p);
        dead_writers_dotlock(
            &p,
            Note::Append {
                start: whole.len() as u64,
                dev,
                ino,
            },
        );
        append_to(&p, b"Subject: two\n\nsecond\n", 0).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains("torn"), "{text}");
        assert!(text.starts_with(std::str::from_utf8(&whole).unwrap()));
        assert_eq!(text.matches("\nFrom ").count() + 1, 2, "{text}");
        assert!(!lock::dotlock_path(&p).exists());
        // A note about another file (the mbox was replaced) is ignored.
        let before = std::fs::read(&p).unwrap();
        dead_writers_dotlock(
            &p,
            Note::Append {
                start: 0,
                dev,
                ino: ino + 1,
            },
        );
        append_to(&p, b"Subject: three\n\nthird\n", 0).unwrap();
        assert!(std::fs::read(&p).unwrap().starts_with(&before));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_killed_compaction_is_finished_by_whoever_comes_next() {
        let d = tmp("compact");
        let p = d.join("eve");
        let head = b"From a@b  Sat Nov 21 05:00:00 2026\nSubject: kept\n\nkept\n\n";
        let tail = b"From a@b  Sat Nov 21 05:00:01 2026\nSubject: also kept\n\nyes\n\n";
        // The compaction had copied part of its side file over the doomed
        // message when it was killed.
        let mut torn = head.to_vec();
        torn.extend_from_slice(&tail[..20]);
        torn.extend_from_slice(b"Subject: doomed\n\nbye\n\n");
        std::fs::write(&p, &torn).unwrap();
        std::fs::write(compact_side_file(&p), tail).unwrap();
        let (dev, ino) = dev_ino(&p);
        dead_writers_dotlock(
            &p,
            Note::Compact {
                start: head.len() as u64,
                len: tail.len() as u64,
                dev,
                ino,
            },
        );
        append_to(&p, b"Subject: new\n\nnew mail\n", 0).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let mut want = head.to_vec();
        want.extend_from_slice(tail);
        assert!(text.as_bytes().starts_with(&want), "{text}");
        assert!(!text.contains("doomed"), "{text}");
        assert!(text.ends_with("new mail\n\n"), "{text}");
        assert!(!compact_side_file(&p).exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
