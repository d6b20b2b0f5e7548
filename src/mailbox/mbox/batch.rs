//! Threads of one process delivering to the same mbox: the first to find
//! it free writes everything queued for it in one batch (one lock, one
//! dotlock, one `fsync`), and the others wait for their result.  Busy
//! mailboxes (a ticket system's catch-all) are then not limited to one
//! `fsync` per message.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use super::write::{Item, Target, write_batch};
use crate::mailbox::Failure;

/// This process's turn at the mailbox `path`, for a thread that writes to
/// it alone (or forks a child that does): other threads' batches wait
/// until it is dropped.
pub fn turn(path: &Path) -> Option<Exclusive> {
    (!crate::privs::in_forked_child()).then(|| exclusive(path))
}

struct Request {
    path: PathBuf,
    owner: Option<u32>,
    create_mode: u32,
    lock_timeout: Duration,
    entry: Mutex<Option<(Vec<u8>, u64)>>,
    result: OnceLock<Result<u64, Failure>>,
}

#[derive(Default)]
struct State {
    busy: bool,
    queue: Vec<Arc<Request>>,
}

#[derive(Default)]
struct Stripe {
    state: Mutex<State>,
    free: Condvar,
}

/// Stripes by path hash: two mailboxes may share one, which only
/// serialises them.
fn stripe(path: &Path) -> &'static Stripe {
    use std::hash::{Hash, Hasher};
    static STRIPES: OnceLock<Vec<Stripe>> = OnceLock::new();
    let all = STRIPES.get_or_init(|| (0..64).map(|_| Stripe::default()).collect());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    &all[(h.finish() % 64) as usize]
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Queue `entry` for `t` and return its result.
pub(super) fn submit(t: &Target<'_>, entry: Vec<u8>, quota: u64) -> Result<u64, Failure> {
    let s = stripe(t.path);
    let me = Arc::new(Request {
        path: t.path.to_path_buf(),
        owner: t.owner,
        create_mode: t.create_mode,
        lock_timeout: t.lock_timeout,
        entry: Mutex::new(Some((entry, quota))),
        result: OnceLock::new(),
    });
    let mut st = lock(&s.state);
    st.queue.push(me.clone());
    loop {
        if let Some(r) = me.result.get() {
            return r.clone();
        }
        if st.busy {
            st = s.free.wait(st).unwrap_or_else(|p| p.into_inner());
            continue;
        }
        // Lead: take everything queued for the same mailbox.
        st.busy = true;
        let same = |r: &Request| {
            r.path == me.path && r.owner == me.owner && r.create_mode == me.create_mode
        };
        let (mine, rest): (Vec<_>, Vec<_>) = st.queue.drain(..).partition(|r| same(r));
        st.queue = rest;
        drop(st);
        let items = mine
            .iter()
            .map(|r| {
                let (b, q) = r
                    .entry
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .unwrap_or_default();
                Item::Bytes(b, q)
            })
            .collect();
        let target = Target {
            path: &me.path,
            owner: me.owner,
            create_mode: me.create_mode,
            lock_timeout: mine
                .iter()
                .map(|r| r.lock_timeout)
                .max()
                .unwrap_or(me.lock_timeout),
        };
        for (r, res) in mine.iter().zip(write_batch(&target, items)) {
            let _ = r.result.set(res);
        }
        st = lock(&s.state);
        st.busy = false;
        s.free.notify_all();
    }
}

/// The mailbox's turn for a message written alone (too large to
/// batch); released on drop.
pub fn exclusive(path: &Path) -> Exclusive {
    let s = stripe(path);
    let mut st = lock(&s.state);
    while st.busy {
        st = s.free.wait(st).unwrap_or_else(|p| p.into_inner());
    }
    st.busy = true;
    Exclusive(s)
}

pub struct Exclusive(&'static Stripe);

impl Drop for Exclusive {
    fn drop(&mut self) {
        lock(&self.0.state).busy = false;
        self.0.free.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn threads_writing_one_mbox_in_batches_lose_and_repeat_nothing() {
        let d = tmp("batch");
        let p = d.join("hot");
        std::thread::scope(|s| {
            for t in 0..8 {
                let p = &p;
                s.spawn(move || {
                    for i in 0..50 {
                        let body = format!("Subject: t{t} m{i}\n\nFrom me, {t}/{i}\n");
                        append_to(p, body.as_bytes(), 0).unwrap();
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&p).unwrap();
        let entries: Vec<&str> = text.split("\n\nFrom a@b  ").collect();
        assert_eq!(entries.len(), 400);
        for t in 0..8 {
            for i in 0..50 {
                let want = format!("Subject: t{t} m{i}\n\n>From me, {t}/{i}\n");
                assert_eq!(text.matches(&want).count(), 1, "{want}");
            }
        }
        assert!(!d.join("hot.lock").exists());
    }

    #[test]
    fn a_batch_refuses_only_the_message_over_quota() {
        let d = tmp("batch-quota");
        let p = d.join("q");
        append_to(&p, b"Subject: first\n\nx\n", 0).unwrap();
        let before = std::fs::metadata(&p).unwrap().len();
        let t = Target {
            path: &p,
            owner: None,
            create_mode: 0o660,
            lock_timeout: Duration::from_secs(1),
        };
        let small = b"From a@b  Sat Nov 21 05:00:00 2026\nSubject: s\n\nx\n\n".to_vec();
        let big = [small.clone(), vec![b'y'; 4000], b"\n\n".to_vec()].concat();
        let r = write_batch(
            &t,
            vec![
                Item::Bytes(small.clone(), before + 1000),
                Item::Bytes(big, before + 1000),
                Item::Bytes(small.clone(), before + 1000),
            ],
        );
        assert!(r[0].is_ok() && r[2].is_ok(), "{r:?}");
        assert!(r[1].as_ref().is_err_and(|f| f.over_quota), "{r:?}");
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            before + 2 * small.len() as u64
        );
    }
}
