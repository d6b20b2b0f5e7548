//! Finishing or undoing what a writer killed holding an mbox's locks left
//! behind, as the note in its stale dotlock says
//! ([`crate::mailbox::lock::Note`]): a half-written append is cut off, a
//! half-done compaction (POP3's `QUIT`) is finished from its side file
//! ([`super::compaction`]).  Whoever takes the write lock next does it:
//! an appender (`write.rs`) and pop3d ([`crate::pop3::maildrop::mbox`])
//! alike.  The finder copies the note into its own dotlock first and
//! takes it back once done, so that a finder killed in turn (or failing)
//! leaves the same work to the next one.

use std::fs::File;
use std::io;
use std::path::Path;

use super::compaction;
use crate::mailbox::lock::{self, Note};

/// Finish or undo what a killed writer of `file` left, as the [`Note`] in
/// its stale dotlock (replaced by `held`) tells.  Returns what was done.
/// The caller holds the write lock.
pub fn recover(file: &File, path: &Path, held: &lock::Held) -> io::Result<Option<String>> {
    if held.broken().is_none() {
        return Ok(None);
    }
    let note = held.broken_note();
    if !matches!(note, Some(Note::Compact { .. })) {
        // A compactor killed before its note left a side file nobody uses.
        let _ = std::fs::remove_file(compaction::side_file(path));
    }
    let Some(note) = note else {
        return Ok(None);
    };
    let opened = file.metadata()?;
    if !note.is_about(&opened) {
        return Ok(None);
    }
    let settled = held.note(note).and_then(|()| match note {
        Note::Append { start, .. } if start < opened.len() => {
            file.set_len(start)?;
            file.sync_data()?;
            Ok(Some(format!(
                "removed {} bytes a killed delivery left half-written",
                opened.len() - start
            )))
        }
        Note::Append { .. } => Ok(None),
        Note::Compact { .. } => compaction::finish(path, &opened),
    });
    match settled {
        Ok(done) => {
            held.clear_note()?;
            Ok(done)
        }
        Err(e) => {
            held.leave_for_recovery();
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use std::fs::OpenOptions;
    use std::io::{Read, Write};
    use std::time::Duration;

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

    /// Run the compaction `plan` of `p` in a child, stopped dead in its
    /// change number `at` (after part of it); returns whether it stopped.
    fn compaction_killed_at(p: &Path, plan: &compaction::Plan, at: u64) -> bool {
        use compaction::kill_switch;
        let pid = kill_switch::in_child(&[], || {
            let f = OpenOptions::new().read(true).write(true).open(p).unwrap();
            let held = lock::lock(&f, p, lock::Kind::Write, Duration::from_secs(2)).unwrap();
            kill_switch::CHUNK.store(16, std::sync::atomic::Ordering::Relaxed);
            kill_switch::arm(at, kill_switch::Part::Some(at * 7));
            let ok = compaction::compact(&f, p, &held, plan).is_ok();
            drop(held);
            if ok { 0 } else { 1 }
        });
        match kill_switch::wait(pid) {
            0 => false,
            kill_switch::KILLED => true,
            other => panic!("the compaction failed: {other}"),
        }
    }

    #[test]
    fn a_killed_compaction_is_finished_by_whoever_comes_next() {
        let _one = compaction::kill_switch::one_at_a_time();
        let d = tmp("compact");
        let p = d.join("eve");
        let head = b"From a@b  Sat Nov 21 05:00:00 2026\nSubject: kept\n\nkept\n\n";
        let doomed = b"From a@b  Sat Nov 21 05:00:01 2026\nSubject: doomed\n\nbye\n\n";
        let tail =
            b"From a@b  Sat Nov 21 05:00:02 2026\nSubject: also kept\n\nyes, a longer one\n\n";
        let text = [&head[..], doomed, tail].concat();
        let want = [&head[..], tail].concat();
        let plan_of = |p: &Path| {
            let (dev, ino) = dev_ino(p);
            compaction::Plan {
                dev,
                ino,
                size: text.len() as u64,
                start: head.len() as u64,
                segments: vec![((head.len() + doomed.len()) as u64, text.len() as u64)],
            }
        };
        // Stopped at each of its changes in turn, then at none; the next
        // appender finishes it first.  (The first change writes the plan,
        // the second the note: stopped there, nothing was removed.)
        let entry =
            b"From a@b  Sat Nov 21 05:00:00 2026\nReturn-Path: <a@b>\nSubject: new\n\nnew mail\n\n";
        for at in 1.. {
            std::fs::write(&p, &text).unwrap();
            let killed = compaction_killed_at(&p, &plan_of(&p), at);
            assert_eq!(lock::dotlock_path(&p).exists(), killed);
            append_to(&p, b"Subject: new\n\nnew mail\n", 0).unwrap();
            let kept = if at <= 2 { &text } else { &want };
            assert_eq!(
                String::from_utf8_lossy(&std::fs::read(&p).unwrap()),
                String::from_utf8_lossy(&[&kept[..], entry].concat()),
                "stopped at {at}"
            );
            assert!(!compaction::side_file(&p).exists(), "{at}");
            assert!(!lock::dotlock_path(&p).exists(), "{at}");
            if !killed {
                break;
            }
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_finder_killed_in_turn_leaves_the_work_to_the_next() {
        let _one = compaction::kill_switch::one_at_a_time();
        let d = tmp("compact2");
        let p = d.join("eve");
        let text: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let (dev, ino) = dev_ino(&{
            std::fs::write(&p, &text).unwrap();
            p.clone()
        });
        let plan = compaction::Plan {
            dev,
            ino,
            size: 3000,
            start: 100,
            segments: vec![(110, 1500), (1600, 3000)],
        };
        let mut want = text[..100].to_vec();
        want.extend_from_slice(&text[110..1500]);
        want.extend_from_slice(&text[1600..]);
        assert!(compaction_killed_at(&p, &plan, 20));
        // The first finder is stopped in turn, twice.
        for at in [7, 30] {
            let pid = compaction::kill_switch::in_child(&[], || {
                compaction::kill_switch::CHUNK.store(16, std::sync::atomic::Ordering::Relaxed);
                compaction::kill_switch::arm(at, compaction::kill_switch::Part::All);
                let _ = append_to(&p, b"Subject: never\n\nx\n", 0);
                0
            });
            assert_eq!(
                compaction::kill_switch::wait(pid),
                compaction::kill_switch::KILLED
            );
        }
        let mut f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        let held = lock::lock(&f, &p, lock::Kind::Write, Duration::from_secs(2)).unwrap();
        let done = recover(&f, &p, &held).unwrap();
        assert_eq!(
            done.as_deref(),
            Some("finished the compaction a killed POP3 session left half-done")
        );
        // Settled: the note is taken back.
        assert_eq!(
            std::fs::read_to_string(lock::dotlock_path(&p)).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(held);
        let mut now = Vec::new();
        f.read_to_end(&mut now).unwrap();
        assert_eq!(now, want);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_note_without_its_side_file_or_with_a_damaged_one() {
        let d = tmp("compact3");
        let p = d.join("eve");
        std::fs::write(&p, b"From a@b  Sat Nov 21 05:00:00 2026\n\nx\n\n").unwrap();
        let before = std::fs::read(&p).unwrap();
        let (dev, ino) = dev_ino(&p);
        // No side file: the compaction had finished.
        dead_writers_dotlock(&p, Note::Compact { dev, ino });
        append_to(&p, b"Subject: one\n\n1\n", 0).unwrap();
        let after_one = std::fs::read(&p).unwrap();
        assert!(after_one.starts_with(&before));
        // A side file without a whole plan: left alone, and removed.
        std::fs::write(compaction::side_file(&p), b"MRCOMPA1 torn").unwrap();
        dead_writers_dotlock(&p, Note::Compact { dev, ino });
        let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        let held = lock::lock(&f, &p, lock::Kind::Write, Duration::from_secs(2)).unwrap();
        let done = recover(&f, &p, &held).unwrap().unwrap();
        assert!(done.contains("holds no plan"), "{done}");
        drop(held);
        assert_eq!(std::fs::read(&p).unwrap(), after_one);
        assert!(!compaction::side_file(&p).exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
