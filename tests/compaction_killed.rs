//! POP3's `QUIT` compaction (`src/mailbox/mbox/compaction.rs`) stopped
//! dead at every one of its changes to the files, in the middle of a
//! write too, and killed with `kill -9` at random instants; then whoever
//! comes next (pop3d at login, a delivery, a plain locker) must find the
//! mailbox exactly untouched or exactly compacted: nothing lost, nothing
//! duplicated, all the deleted messages gone or none.
//!
//! The stops come from the test-only switch in the compaction
//! (`kill_switch`, in builds with the `fuzzing` feature only), inside
//! forked children that exit on the spot: no destructor runs, the files
//! stay as a kill leaves them.  A program of its own, because a forked
//! child holds copies of whatever the other tests of its program had open
//! (their locked mailboxes) until it closes them.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use mailroom::mailbox::Message;
use mailroom::mailbox::lock;
use mailroom::mailbox::mbox::compaction::{self, Plan, kill_switch};
use mailroom::mailbox::mbox::recovery::recover;
use mailroom::mailbox::mbox::{Append, append};
use mailroom::pop3::maildrop::mbox::Mbox;

const FINISHED: &str = "finished the compaction a killed POP3 session left half-done";

fn me() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "mr-compaction-killed-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn plan_of(p: &Path, start: u64, segments: Vec<(u64, u64)>) -> Plan {
    let m = std::fs::metadata(p).unwrap();
    Plan {
        dev: m.dev(),
        ino: m.ino(),
        size: m.len(),
        start,
        segments,
    }
}

/// What `plan` leaves of `text`.
fn compacted(text: &[u8], plan: &Plan) -> Vec<u8> {
    let mut out = text[..plan.start as usize].to_vec();
    for &(f, t) in &plan.segments {
        out.extend_from_slice(&text[f as usize..t as usize]);
    }
    out
}

/// Run the compaction `plan` of `p` under the locks in a child moving
/// `chunk` bytes at a time, stopped in its change number `at` after
/// `part` of it; returns whether it stopped (else it finished).
fn compaction_stopped(
    p: &Path,
    plan: &Plan,
    chunk: usize,
    at: u64,
    part: kill_switch::Part,
) -> bool {
    let pid = kill_switch::in_child(&[], || {
        let f = OpenOptions::new().read(true).write(true).open(p).unwrap();
        let held = lock::lock(&f, p, lock::Kind::Write, Duration::from_secs(2)).unwrap();
        kill_switch::CHUNK.store(chunk, Ordering::Relaxed);
        kill_switch::arm(at, part);
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

/// Take the locks as any of our writers does, settling what a dead
/// holder left; returns what was done.
fn lock_and_recover(p: &Path) -> Option<String> {
    let f = OpenOptions::new().read(true).write(true).open(p).unwrap();
    let held = lock::lock(&f, p, lock::Kind::Write, Duration::from_secs(2)).unwrap();
    recover(&f, p, &held).unwrap()
}

/// A plan stopped in each of its changes, after none, some or all of
/// it; the next locker (moving chunks of another size) finishes it.
#[test]
fn a_plan_stopped_anywhere_is_finished_to_the_same_end() {
    let _one = kill_switch::one_at_a_time();
    let d = dir("plan");
    let p = d.join("mbox");
    let text: Vec<u8> = (0..6_000u32).map(|i| (i * 13 % 253) as u8).collect();
    std::fs::write(&p, &text).unwrap();
    // A gap smaller than a chunk (journaled), then larger ones.
    let plan = plan_of(&p, 200, vec![(260, 3000), (3100, 3200), (5000, 6000)]);
    let want = compacted(&text, &plan);
    let mut stops = 0;
    for at in 1.. {
        let mut finished = false;
        for part in [
            kill_switch::Part::Nothing,
            kill_switch::Part::Some(1),
            kill_switch::Part::Some(at * 37),
            kill_switch::Part::All,
        ] {
            std::fs::write(&p, &text).unwrap();
            let stopped = compaction_stopped(&p, &plan, 256, at, part);
            finished |= !stopped;
            stops += stopped as u32;
            kill_switch::CHUNK.store(700, Ordering::Relaxed);
            let done = lock_and_recover(&p);
            let what = format!("stopped in change {at} ({part:?}): {done:?}");
            // The first change writes the plan, the second the note.
            let in_force = at > 2 || matches!((at, part), (2, kill_switch::Part::All));
            let now = std::fs::read(&p).unwrap();
            if !stopped {
                assert_eq!(now, want, "{what}");
                assert_eq!(done, None);
            } else if in_force {
                assert_eq!(now, want, "{what}");
                // After the side file's removal nothing is left to do.
                assert!(
                    done.as_deref() == Some(FINISHED) || done.is_none(),
                    "{what}"
                );
            } else {
                assert_eq!(now, text, "{what}");
            }
            assert!(!compaction::side_file(&p).exists(), "{what}");
            assert!(!lock::dotlock_path(&p).exists(), "{what}");
        }
        if finished {
            break;
        }
    }
    assert!(stops > 200, "{stops}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// The next appender finishes a stopped compaction before it appends.
#[test]
fn a_stopped_compaction_is_finished_by_the_next_delivery() {
    let _one = kill_switch::one_at_a_time();
    let d = dir("delivery");
    let p = d.join("eve");
    let head = b"From a@b  Sat Nov 21 05:00:00 2026\nSubject: kept\n\nkept\n\n";
    let doomed = b"From a@b  Sat Nov 21 05:00:01 2026\nSubject: doomed\n\nbye\n\n";
    let tail = b"From a@b  Sat Nov 21 05:00:02 2026\nSubject: also kept\n\nyes, a longer one\n\n";
    let text = [&head[..], doomed, tail].concat();
    let want = [&head[..], tail].concat();
    let entry = b"From x@y  Sat Nov 21 06:00:00 2026\nSubject: new\n\nnew mail\n\n";
    for at in 1.. {
        std::fs::write(&p, &text).unwrap();
        let plan = plan_of(
            &p,
            head.len() as u64,
            vec![((head.len() + doomed.len()) as u64, text.len() as u64)],
        );
        let stopped = compaction_stopped(&p, &plan, 16, at, kill_switch::Part::Some(at * 7));
        assert_eq!(lock::dotlock_path(&p).exists(), stopped);
        deliver(&p, b"Subject: new\n\nnew mail\n");
        let kept = if at <= 2 { &text } else { &want };
        assert_eq!(
            String::from_utf8_lossy(&std::fs::read(&p).unwrap()),
            String::from_utf8_lossy(&[&kept[..], entry].concat()),
            "stopped at {at}"
        );
        assert!(!compaction::side_file(&p).exists(), "{at}");
        assert!(!lock::dotlock_path(&p).exists(), "{at}");
        if !stopped {
            break;
        }
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_finder_stopped_in_turn_leaves_the_work_to_the_next() {
    let _one = kill_switch::one_at_a_time();
    let d = dir("finder");
    let p = d.join("eve");
    let text: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(&p, &text).unwrap();
    let plan = plan_of(&p, 100, vec![(110, 1500), (1600, 3000)]);
    let want = compacted(&text, &plan);
    assert!(compaction_stopped(
        &p,
        &plan,
        16,
        20,
        kill_switch::Part::Some(5)
    ));
    // Two finders are stopped in turn: a delivery, then pop3d at login.
    let pid = kill_switch::in_child(&[], || {
        kill_switch::CHUNK.store(16, Ordering::Relaxed);
        kill_switch::arm(7, kill_switch::Part::All);
        deliver(&p, b"Subject: never\n\nx\n");
        0
    });
    assert_eq!(kill_switch::wait(pid), kill_switch::KILLED);
    let pid = kill_switch::in_child(&[], || {
        kill_switch::CHUNK.store(16, Ordering::Relaxed);
        kill_switch::arm(30, kill_switch::Part::Some(3));
        let _ = Mbox::open(&p, me(), Duration::from_secs(2));
        0
    });
    assert_eq!(kill_switch::wait(pid), kill_switch::KILLED);
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let held = lock::lock(&f, &p, lock::Kind::Write, Duration::from_secs(2)).unwrap();
    assert_eq!(recover(&f, &p, &held).unwrap().as_deref(), Some(FINISHED));
    // Settled: the note is taken back.
    assert_eq!(
        std::fs::read_to_string(lock::dotlock_path(&p)).unwrap(),
        format!("{}\n", std::process::id())
    );
    drop(held);
    assert_eq!(std::fs::read(&p).unwrap(), want);
    std::fs::remove_dir_all(&d).unwrap();
}

fn deliver(p: &Path, body: &[u8]) {
    let msg = Message::from_bytes(body).unwrap();
    append(
        p,
        &Append {
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

/// A POP3 session's mailbox, and what it asks.
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

/// A POP3 session in a child: opens `p`, has the case's mail delivered
/// meanwhile, deletes the doomed and QUITs; `before_quit` runs just
/// before the compaction.  Returns the child's pid.  The child keeps the
/// descriptors `keep` open.
fn session(p: &Path, case: &Case, keep: &[i32], before_quit: impl FnOnce()) -> i32 {
    kill_switch::in_child(keep, || {
        let mut m = Mbox::open(p, me(), Duration::from_secs(2)).unwrap();
        let mut f = OpenOptions::new().append(true).open(p).unwrap();
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
/// pop3d at login or a delivery; the file must then be exactly one of
/// the two outcomes.  Returns whether it is the compacted one.
fn settled(p: &Path, case: &Case, by_delivery: bool, what: &str) -> bool {
    let (untouched, compacted) = case.outcomes();
    let (all, kept) = case.counts();
    let mut now = if by_delivery {
        deliver(p, b"Subject: after\n\nafter the kill\n");
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

/// QUIT's compaction stopped dead in each of its changes in turn, in the
/// middle of its write too, as a kill leaves it; then pop3d or a delivery
/// comes.
#[test]
fn a_quit_stopped_anywhere_loses_nothing_and_removes_all_or_nothing() {
    let _one = kill_switch::one_at_a_time();
    let mut runs = 0;
    for (k, case) in cases().iter().enumerate() {
        let d = dir(case.name);
        let p = d.join("bob");
        let index = d.join(".bob.pop3-index");
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
                let _ = std::fs::remove_file(&index);
                let pid = session(&p, case, &[], || {
                    kill_switch::CHUNK.store(512, Ordering::Relaxed);
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
        std::fs::remove_dir_all(&d).unwrap();
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
    let d = dir(case.name);
    let p = d.join("bob");
    let run = |kill_after: Option<Duration>| -> Duration {
        std::fs::write(&p, case.before()).unwrap();
        let mut fds = [0; 2];
        // SAFETY: fds is a valid array of two.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let pid = session(&p, &case, &[fds[1]], || {
            kill_switch::CHUNK.store(4096, Ordering::Relaxed);
            // SAFETY: fds[1] is the pipe's write end.
            unsafe { libc::write(fds[1], b"!".as_ptr().cast(), 1) };
        });
        // SAFETY: closing our copy of the write end.
        unsafe { libc::close(fds[1]) };
        let mut b = [0u8];
        // SAFETY: fds[0] is the pipe's read end; the child writes once
        // just before its QUIT.
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
        let after = whole.mul_f64((mailroom::queue::id::random_u32() % 1000) as f64 / 800.0);
        run(Some(after));
        let what = format!("killed {after:?} into a QUIT of {whole:?}");
        outcomes[settled(&p, &case, n.is_multiple_of(2), &what) as usize] += 1;
    }
    std::fs::remove_dir_all(&d).unwrap();
    eprintln!("QUIT of {whole:?} killed 60 times: {outcomes:?} (untouched, compacted)");
}
