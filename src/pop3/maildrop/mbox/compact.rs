//! `QUIT`'s compaction: the deleted messages leave the mbox, in place.
//!
//! The caller holds the shared write lock and has checked every
//! message's `From ` line at its offset (so a mailbox another program
//! rewrote during the session is left alone).  The plan (the kept
//! messages from the first deleted one on, then whatever was appended
//! during the session) is carried out by
//! [`crate::mailbox::mbox::compaction`]: one forward move, resumable by
//! whoever takes the mailbox next should this process be killed, and one
//! `fdatasync` before `+OK`.  The file is never replaced by another
//! (other programs hold it open).

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use super::super::{Committed, READ_BUF};
use super::scan::Msg;
use crate::mailbox::lock;
use crate::mailbox::mbox::compaction::{self, Plan};

/// What a compaction left.
pub(super) struct Compacted {
    /// The messages kept, at their new offsets.
    pub kept: Vec<Msg>,
    /// Where the last kept message's region ends (mail that arrived
    /// during the session follows, not yet indexed).
    pub indexed_end: u64,
    pub committed: Committed,
}

/// Remove `doomed` (indices into `msgs`, the messages found in the first
/// `snapshot` bytes of the mbox `file` at `path`, now `size` bytes) under
/// the write lock `held`.
pub(super) fn remove(
    file: &File,
    path: &Path,
    held: &lock::Held,
    msgs: &[Msg],
    doomed: &[usize],
    snapshot: u64,
    size: u64,
) -> io::Result<Compacted> {
    let mut is_doomed = vec![false; msgs.len()];
    for &i in doomed {
        is_doomed[i] = true;
    }
    let first = doomed.iter().copied().min().unwrap_or(0);
    // What stays from `start` on: the kept messages, then whatever
    // arrived during the session; adjacent ranges as one.
    let start = msgs[first].from;
    let mut segments: Vec<(u64, u64)> = Vec::new();
    let mut keep = |from: u64, to: u64| match segments.last_mut() {
        _ if from == to => {}
        Some(last) if last.1 == from => last.1 = to,
        _ => segments.push((from, to)),
    };
    let mut kept = Vec::with_capacity(msgs.len() - doomed.len());
    kept.extend_from_slice(&msgs[..first]);
    let mut committed = Committed::default();
    let mut w = start;
    for (i, &doomed_here) in is_doomed.iter().enumerate().skip(first) {
        let m = msgs[i];
        let seg_end = msgs.get(i + 1).map_or(snapshot, |n| n.from);
        if doomed_here {
            committed.deleted += 1;
            committed.deleted_bytes += m.size;
            continue;
        }
        let shift = m.from - w;
        keep(m.from, seg_end);
        w += seg_end - m.from;
        kept.push(Msg {
            from: m.from - shift,
            start: m.start - shift,
            end: m.end - shift,
            ..m
        });
    }
    let indexed_end = w;
    keep(snapshot, size);
    let meta = file.metadata()?;
    let plan = Plan {
        dev: meta.dev(),
        ino: meta.ino(),
        size,
        start,
        segments,
    };
    if held.has_dotlock() {
        compaction::compact(file, path, held, &plan)?;
    } else {
        // No dotlock, so no side file either (the spool is not ours to
        // write): the segments are copied down in place, and a kill
        // midway leaves a damaged tail.
        let mut buf = vec![0u8; READ_BUF];
        let mut w = start;
        for &(from, to) in &plan.segments {
            copy_down(file, from, to, w, &mut buf)?;
            w += to - from;
        }
        file.set_len(w)?;
        file.sync_data()?;
    }
    Ok(Compacted {
        kept,
        indexed_end,
        committed,
    })
}

/// Copy `[from, to)` down to `dest` (`dest <= from`), front to back.
fn copy_down(file: &File, from: u64, to: u64, dest: u64, buf: &mut [u8]) -> io::Result<()> {
    if dest == from {
        return Ok(());
    }
    let mut r = from;
    let mut w = dest;
    while r < to {
        let n = ((to - r) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], r)?;
        file.write_all_at(&buf[..n], w)?;
        r += n as u64;
        w += n as u64;
    }
    Ok(())
}

/// Signals that would stop a rewrite halfway are held until it is done.
pub(super) struct BlockSignals(libc::sigset_t);

impl BlockSignals {
    pub(super) fn new() -> BlockSignals {
        // SAFETY: plain signal-mask manipulation of this thread.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in [
                libc::SIGHUP,
                libc::SIGINT,
                libc::SIGTERM,
                libc::SIGALRM,
                libc::SIGPIPE,
            ] {
                libc::sigaddset(&mut set, s);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            BlockSignals(old)
        }
    }
}

impl Drop for BlockSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by new().
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

#[cfg(test)]
mod tests {
    use super::super::Mbox;
    use crate::mailbox::mbox::compaction::{self, kill_switch};
    use crate::mailbox::{Message, lock};
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    fn me() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    /// Message `i` of about `size` bytes, as an mbox entry.
    fn entry(i: usize, size: usize) -> Vec<u8> {
        let mut e = format!(
            "From s{i}@example.org  Sat Nov 21 05:00:{:02} 2026\nSubject: message {i}\n\n",
            i % 60
        )
        .into_bytes();
        let mut k = 0;
        while e.len() < size {
            e.extend_from_slice(format!("line {k} of message {i}, words to fill it\n").as_bytes());
            k += 1;
        }
        e.push(b'\n');
        e
    }

    /// A session's mailbox, and what it asks.
    struct Case {
        name: &'static str,
        sizes: Vec<usize>,
        doomed: Vec<usize>,
        /// Sizes of messages delivered during the session.
        appended: Vec<usize>,
    }

    impl Case {
        fn new(name: &'static str, doomed: &[usize], appended: &[usize]) -> Case {
            Case {
                name,
                sizes: vec![300, 2000, 1500, 3000, 800, 2500, 1200, 4000, 400, 1800],
                doomed: doomed.to_vec(),
                appended: appended.to_vec(),
            }
        }

        fn before(&self) -> Vec<u8> {
            self.sizes
                .iter()
                .enumerate()
                .flat_map(|(i, &s)| entry(i, s))
                .collect()
        }

        fn appended(&self) -> Vec<u8> {
            self.appended
                .iter()
                .enumerate()
                .flat_map(|(j, &s)| entry(100 + j, s))
                .collect()
        }

        /// The file with nothing removed, and with the doomed removed.
        fn outcomes(&self) -> (Vec<u8>, Vec<u8>) {
            let untouched = [self.before(), self.appended()].concat();
            let compacted: Vec<u8> = self
                .sizes
                .iter()
                .enumerate()
                .filter(|(i, _)| !self.doomed.contains(i))
                .flat_map(|(i, &s)| entry(i, s))
                .chain(self.appended())
                .collect();
            (untouched, compacted)
        }

        /// Messages listed in each outcome.
        fn counts(&self) -> (usize, usize) {
            let all = self.sizes.len() + self.appended.len();
            (all, all - self.doomed.len())
        }
    }

    fn mbox(name: &str, text: &[u8]) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mr-pop-kill-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("bob");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A POP3 session in a child: opens `p`, has the case's mail delivered
    /// meanwhile, deletes the doomed and QUITs; `before_quit` runs just
    /// before the compaction.  Returns the child's pid.  The child keeps
    /// the descriptors `keep` open.
    fn session(p: &Path, case: &Case, keep: &[i32], before_quit: impl FnOnce()) -> i32 {
        kill_switch::in_child(keep, || {
            let mut m = Mbox::open(p, me(), Duration::from_secs(2)).unwrap();
            let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
            f.write_all(&case.appended()).unwrap();
            drop(f);
            let deleted: Vec<bool> = (0..case.sizes.len())
                .map(|i| case.doomed.contains(&i))
                .collect();
            before_quit();
            m.commit(&deleted).map_or(1, |_| 0)
        })
    }

    /// After a session died (or not): the next comer settles the mailbox,
    /// pop3d at login or a delivery; the file must then be exactly one
    /// of the two outcomes.  Returns whether it is the compacted one.
    fn settled(p: &Path, case: &Case, by_delivery: bool, what: &str) -> bool {
        let (untouched, compacted) = case.outcomes();
        let (all, kept) = case.counts();
        let mut now = if by_delivery {
            let msg = Message::from_bytes(b"Subject: after\n\nafter the kill\n").unwrap();
            crate::mailbox::mbox::append(
                p,
                &crate::mailbox::mbox::Append {
                    from_line: "From x@y  Sat Nov 21 06:00:00 2026\n",
                    prepend: b"",
                    message: &msg,
                    quota: 0,
                    lock_timeout: Duration::from_secs(2),
                    owner: None,
                    in_process_turn: false,
                    create_mode: 0o600,
                    already: None,
                },
            )
            .unwrap();
            let now = std::fs::read(p).unwrap();
            let after = b"From x@y  Sat Nov 21 06:00:00 2026\nSubject: after\n\nafter the kill\n\n";
            assert!(now.ends_with(after), "{what}: the delivery");
            now[..now.len() - after.len()].to_vec()
        } else {
            let m = Mbox::open(p, me(), Duration::from_secs(2)).unwrap();
            let listed = m.list().len();
            drop(m);
            let now = std::fs::read(p).unwrap();
            assert_eq!(
                listed,
                if now == compacted { kept } else { all },
                "{what}: listed"
            );
            now
        };
        let is_compacted = now == compacted;
        if !is_compacted && now != untouched {
            now.truncate(now.len().min(4000));
            panic!(
                "{what}: neither outcome:\n{}",
                String::from_utf8_lossy(&now)
            );
        }
        assert!(!compaction::side_file(p).exists(), "{what}: side file");
        assert!(!lock::dotlock_path(p).exists(), "{what}: dotlock");
        is_compacted
    }

    fn cases() -> Vec<Case> {
        vec![
            // The first message (smaller than a chunk: every chunk is
            // journaled).
            Case::new("first", &[0], &[]),
            // A middle one larger than a chunk: chunks go straight.
            Case::new("middle", &[3], &[]),
            Case::new("scattered", &[1, 4, 6, 8], &[]),
            Case::new("last", &[9], &[]),
            Case::new("last-appended", &[9], &[700, 2600]),
            Case::new("all", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], &[]),
            Case::new("all-appended", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], &[900]),
            Case::new("first-appended", &[0], &[1200, 350]),
            Case::new("small-gaps-appended", &[0, 4, 8], &[500]),
            Case::new("big-gaps", &[1, 3, 5, 7], &[3000]),
        ]
    }

    /// QUIT's compaction stopped dead in each of its changes in turn, in
    /// the middle of its write too, as a kill leaves it; then pop3d or a
    /// delivery comes: nothing lost, nothing duplicated, all the deleted
    /// messages gone or none.
    #[test]
    fn a_quit_stopped_anywhere_loses_nothing_and_removes_all_or_nothing() {
        let _one = kill_switch::one_at_a_time();
        let mut runs = 0;
        for (k, case) in cases().iter().enumerate() {
            let p = mbox(case.name, &case.before());
            let mut switched_at = None;
            for at in 1u64.. {
                let parts = [
                    kill_switch::Part::Some(at * 7919 + k as u64),
                    if at.is_multiple_of(2) {
                        kill_switch::Part::Nothing
                    } else {
                        kill_switch::Part::All
                    },
                ];
                let mut finished = false;
                for (j, part) in parts.into_iter().enumerate() {
                    std::fs::write(&p, case.before()).unwrap();
                    let _ = std::fs::remove_file(super::super::index::index_path(&p));
                    let pid = session(&p, case, &[], || {
                        kill_switch::CHUNK.store(512, std::sync::atomic::Ordering::Relaxed);
                        kill_switch::arm(at, part);
                    });
                    let code = kill_switch::wait(pid);
                    assert!(code == 0 || code == kill_switch::KILLED, "{code}");
                    finished |= code == 0;
                    let left = std::fs::read(&p).unwrap();
                    let what = format!(
                        "{}: stopped in change {at} ({part:?}); left {} bytes ({}), dotlock {:?}, side file {:?}",
                        case.name,
                        left.len(),
                        if left == case.outcomes().0 {
                            "untouched"
                        } else {
                            "changed"
                        },
                        std::fs::read_to_string(lock::dotlock_path(&p)).ok(),
                        std::fs::metadata(compaction::side_file(&p))
                            .map(|m| m.len())
                            .ok(),
                    );
                    let compacted = settled(&p, case, (at as usize + j).is_multiple_of(2), &what);
                    // Once the plan is in force, every later stop finishes it.
                    match switched_at {
                        None if compacted => switched_at = Some(at),
                        Some(s) => assert!(compacted, "{what}: switched at {s}"),
                        None => {}
                    }
                    runs += 1;
                }
                if finished {
                    break;
                }
            }
            // The plan is written, then noted: in force from the third.
            assert!(switched_at.is_some_and(|s| s <= 3), "{}", case.name);
            std::fs::remove_dir_all(p.parent().unwrap()).unwrap();
        }
        eprintln!("{runs} stopped QUITs settled");
        assert!(runs >= 1000, "{runs} runs");
    }

    /// The same with real `kill -9`s at random instants of the QUIT.
    #[test]
    fn a_quit_killed_at_random_loses_nothing_and_removes_all_or_nothing() {
        let _one = kill_switch::one_at_a_time();
        let mut case = Case::new("random", &[0, 7, 30, 31, 90, 250], &[4000, 700]);
        case.sizes = (0..400).map(|i| 600 + (i * 977) % 9000).collect();
        let p = mbox(case.name, &case.before());
        let ready = || {
            let mut fds = [0; 2];
            // SAFETY: fds is a valid array of two.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            fds
        };
        let run = |kill_after: Option<Duration>| -> Duration {
            std::fs::write(&p, case.before()).unwrap();
            let fds = ready();
            let pid = session(&p, &case, &[fds[1]], || {
                kill_switch::CHUNK.store(4096, std::sync::atomic::Ordering::Relaxed);
                // SAFETY: fds[1] is the pipe's write end.
                unsafe { libc::write(fds[1], b"!".as_ptr().cast(), 1) };
            });
            // SAFETY: closing our copy of the write end.
            unsafe { libc::close(fds[1]) };
            let mut b = [0u8];
            // SAFETY: fds[0] is the pipe's read end.
            unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
            let t = std::time::Instant::now();
            if let Some(d) = kill_after {
                std::thread::sleep(d);
                // SAFETY: killing our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let code = kill_switch::wait(pid);
            let took = t.elapsed();
            // SAFETY: closing the read end.
            unsafe { libc::close(fds[0]) };
            assert!(code == 0 || code == -libc::SIGKILL, "{code}");
            took
        };
        let whole = run(None);
        assert!(settled(&p, &case, false, "not killed"));
        let mut outcomes = [0, 0];
        for n in 0..60u32 {
            let after = whole.mul_f64((crate::queue::id::random_u32() % 1000) as f64 / 800.0);
            run(Some(after));
            let what = format!("killed {after:?} into a QUIT of {whole:?}");
            outcomes[settled(&p, &case, n.is_multiple_of(2), &what) as usize] += 1;
        }
        std::fs::remove_dir_all(p.parent().unwrap()).unwrap();
        eprintln!("QUIT of {whole:?} killed 60 times: {outcomes:?} (untouched, compacted)");
    }
}
