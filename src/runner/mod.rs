//! The queue runner (`qrun`, `sendmail -q`): takes jobs from the queue,
//! delivers them — local recipients through [`crate::deliver`], remote ones
//! by SMTP ([`remote`]) — and rewrites, bounces or removes each job.
//!
//! ## One attempt at one job
//!
//! 1. Lock the control file (non-blocking; a locked job is someone
//!    else's), skip it if its retry time has not come (unless forced).
//! 2. The runner's journal records that an attempt is under way; a job
//!    whose attempts died three times is set aside as `QfID` and reported
//!    instead of retried ([`crashguard`]).
//! 3. Local recipients (unqualified, or in a local or virtual domain, and
//!    `|program`/`/file` targets carried over with their controlling user)
//!    go to the local delivery agent.  Aliases that expand are replaced in
//!    the control file by the targets still pending (`\user`, `"|prog"` with
//!    its `C` record, remote addresses), as sendmail does, so nobody gets a
//!    second copy when the rest is retried.
//! 4. Remote recipients are grouped by domain, routed again (mailertable,
//!    smarthost, MX) and sent in one transaction per domain.
//! 5. Delivered recipients go; refused ones are bounced in one DSN; the
//!    rest stay with their status (`mailq` shows it).  After `queue_warn`
//!    a delay warning goes out once (flag `w`); after `queue_return` what
//!    is left is bounced.  The job is rewritten (`tf` → `qf`) or removed.
//!
//! Nothing here bounces because DNS or the network is down: only a 5xx, an
//! NXDOMAIN, a table's `error:` or expiry does.
//!
//! ## Logs (sendmail's format)
//!
//! For example (every line with its meaning: [`crate::log::catalog`]):
//!
//! ```text
//! QID: to=<a@x>,<b@x>, delay=00:00:05, xdelay=00:00:01, mailer=esmtp, pri=120000, relay=mx.x. [192.0.2.1], dsn=2.0.0, stat=Sent (ok 123)
//! QID: to=bob, delay=00:00:00, xdelay=00:00:00, mailer=local, pri=30000, dsn=2.0.0, stat=Sent
//! QID: NEWQID: DSN: User unknown
//! QID: done
//! ```

mod attempt;
pub mod crashguard;
pub mod express;
mod job;
mod notices;
mod ops;
pub mod pacing;
pub mod remote;
pub mod render;
pub mod settings;
pub mod start;

/// A duration as the notices word it (`1 day`, `4 hours`).
pub(crate) use notices::words;

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::sync::Mutex;

use crate::config::Config;
use crate::exit::Failure;
use crate::log;
use crate::queue::{Envelope, Queue, QueueId};
use crate::resolve::Resolver;
use crate::route::Router;
pub use settings::Settings;

/// Which jobs a run takes.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `-qI`, `-qR`, `-qS`: (negated, substring).
    pub ids: Vec<(bool, String)>,
    pub recipients: Vec<(bool, String)>,
    pub senders: Vec<(bool, String)>,
    /// Ignore retry times (an admin's `sendmail -q`, `-qI`).
    pub force: bool,
}

impl Selection {
    fn matches_id(&self, id: &QueueId) -> bool {
        self.ids
            .iter()
            .all(|(neg, s)| id.as_str().contains(s.as_str()) != *neg)
    }

    fn matches(&self, env: &Envelope) -> bool {
        let rcpt_ok = self.recipients.iter().all(|(neg, s)| {
            let s = s.to_ascii_lowercase();
            env.recipients
                .iter()
                .any(|r| r.addr.to_ascii_lowercase().contains(&s))
                != *neg
        });
        let sender_ok = self.senders.iter().all(|(neg, s)| {
            env.sender
                .to_ascii_lowercase()
                .contains(&s.to_ascii_lowercase())
                != *neg
        });
        rcpt_ok && sender_ok
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub attempted: usize,
    pub finished: usize,
    pub deferred: usize,
    pub bounces: usize,
    pub locked: usize,
    pub not_due: usize,
    pub set_aside: usize,
    /// Jobs left untried this time because their destination's pace said
    /// wait ([`pacing`]).
    pub paced: usize,
}

/// One pass's shared state: what to take, the work list its workers share
/// (jobs created meanwhile join it, marked as ours), and the crash journal.
struct Pass<'a> {
    sel: &'a Selection,
    work: Mutex<VecDeque<Work>>,
    stats: Mutex<Stats>,
    journal: Option<crashguard::Journal>,
    /// Jobs with crashes counted, when the directory was listed (None: ask
    /// the file system).
    crashed: Option<HashSet<QueueId>>,
    /// Paced jobs come back later in this pass (a full pass; the run
    /// `sendmail` starts for one message leaves them to the next pass).
    comes_back: bool,
    /// An express run's supply of new jobs ([`express`]).
    arrivals: Option<Arrivals<'a>>,
}

impl Pass<'_> {
    /// Take `id` again once `wait` has passed.
    fn later(&self, id: &QueueId, wait: std::time::Duration) {
        if !self.comes_back {
            return;
        }
        if let Ok(mut w) = self.work.lock() {
            w.push_back(Work {
                id: id.clone(),
                ours: false,
                not_before: Some(std::time::Instant::now() + wait),
            });
        }
    }

    /// The next job whose time has come; `Err(wait)` when every job left
    /// must wait; `Ok(None)` when none is left.
    fn next(&self) -> Result<Option<Work>, std::time::Duration> {
        let Ok(mut w) = self.work.lock() else {
            return Ok(None);
        };
        let now = std::time::Instant::now();
        match w.iter().position(|j| j.not_before.is_none_or(|t| t <= now)) {
            Some(i) => Ok(w.remove(i)),
            None => match w.iter().filter_map(|j| j.not_before).min() {
                Some(t) => Err(t.saturating_duration_since(now)),
                None => Ok(None),
            },
        }
    }
}

/// A job on a pass's work list.
struct Work {
    id: QueueId,
    /// Created by this pass (a bounce, a receipt, a split envelope).
    ours: bool,
    /// Paced: not before this.
    not_before: Option<std::time::Instant>,
}

/// Where an express run's workers find more work once the list is empty:
/// the jobs announced in `new/` meanwhile.  One idle worker at a time
/// looks (and waits for the directory to change); the others wait for
/// its news.
struct Arrivals<'a> {
    inbox: &'a express::Inbox,
    /// End once nothing has arrived for this long.
    linger: std::time::Duration,
    /// Take nothing more after this: the run starts afresh (the
    /// configuration and tables read again).
    until: std::time::Instant,
    /// Whether the configuration and tables are still as the run read
    /// them ([`express::Stamp`]); if not, it starts afresh.
    still_fresh: &'a (dyn Fn() -> bool + Sync),
    last: Mutex<std::time::Instant>,
    done: std::sync::atomic::AtomicBool,
    looking: Mutex<()>,
    news: std::sync::Condvar,
}

impl Arrivals<'_> {
    /// Wait for work; false when the pass is over.
    fn wait_for_work(&self, work: &Mutex<VecDeque<Work>>) -> bool {
        use std::sync::atomic::Ordering;
        use std::time::{Duration, Instant};
        loop {
            if self.done.load(Ordering::SeqCst) {
                return false;
            }
            let Ok(_looking) = self.looking.try_lock() else {
                let Ok(w) = work.lock() else { return false };
                let Ok((w, _)) = self.news.wait_timeout(w, Duration::from_millis(50)) else {
                    return false;
                };
                if !w.is_empty() {
                    return true;
                }
                continue;
            };
            let ids = if Instant::now() < self.until {
                self.inbox.take()
            } else {
                Vec::new()
            };
            // Looked at after taking: a change the admin finished before
            // a job was announced is seen before that job is delivered.
            let stale = !(self.still_fresh)();
            if (stale || Instant::now() >= self.until)
                && (!ids.is_empty() || self.inbox.has_markers())
            {
                // Left for the next pass, which reads the configuration
                // and tables again.
                self.inbox.put_back(&ids);
                self.done.store(true, Ordering::SeqCst);
                self.news.notify_all();
                return false;
            }
            let Ok(mut w) = work.lock() else { return false };
            if !ids.is_empty() {
                if let Ok(mut last) = self.last.lock() {
                    *last = Instant::now();
                }
                w.extend(ids.into_iter().map(|id| Work {
                    id,
                    ours: true,
                    not_before: None,
                }));
            }
            if !w.is_empty() {
                self.news.notify_all();
                return true;
            }
            drop(w);
            let idle = self.last.lock().map(|l| l.elapsed()).unwrap_or(self.linger);
            if idle >= self.linger || Instant::now() >= self.until {
                self.done.store(true, Ordering::SeqCst);
                self.news.notify_all();
                return false;
            }
            self.inbox
                .wait((self.linger - idle).min(Duration::from_millis(200)));
        }
    }
}

/// How long a job this pass created may stay locked before the pass leaves
/// it to the next run.  Its lock can outlive its creator's close for a
/// moment: a child another worker forks at that instant holds a copy of
/// the descriptor until it closes or execs it.
const OWN_JOB_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// One queue run's shared state.
pub struct Runner {
    cfg: Config,
    pub settings: Settings,
    queue: Queue,
    resolver: Resolver,
    router: Router,
    sources: crate::route::SourceAddresses,
    pool: remote::Pool,
    pacer: pacing::Pacer,
    auth: Option<(String, String)>,
    dkim: crate::dkim::Keyring,
    verbose: bool,
}

impl Runner {
    pub fn new(cfg: &Config, verbose: bool) -> Result<Runner, Failure> {
        let settings = Settings::from_config(cfg)?;
        let may_rebuild = nix::unistd::geteuid().is_root() || !cfg.paths.is_system();
        Ok(Runner {
            queue: Queue::new(&cfg.queue_dir),
            resolver: Resolver::new(cfg, may_rebuild),
            router: Router::new(cfg, may_rebuild),
            sources: crate::route::SourceAddresses::load(cfg, may_rebuild),
            pool: remote::Pool::new(settings.max_per_destination),
            pacer: pacing::Pacer::new(cfg, may_rebuild)?,
            auth: read_auth(&settings.smarthost_auth),
            dkim: crate::dkim::Keyring::new(cfg),
            settings,
            cfg: cfg.clone(),
            verbose,
        })
    }

    /// One pass over the queue: every selected job whose time has come.
    pub fn run_pass(&self, sel: &Selection) -> Stats {
        // A delivery the runner cannot record (by removing or rewriting
        // the job) would be made again by the next run: on a read-only
        // queue, deliver nothing until it is writable again.
        let dir = self.queue.control_dir();
        if nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK) == Err(nix::errno::Errno::EROFS)
        {
            log::err(
                None,
                &format!(
                    "queue {} is on a read-only file system: no delivery attempted, none could be recorded",
                    dir.display()
                ),
            );
            return Stats::default();
        }
        let (mut ids, crashed) = match self.exact_job(sel) {
            // The run `sendmail` starts for the message it just queued:
            // no need to read a directory that may hold 100,000 jobs.
            Some(id) => (vec![id], None),
            None => match self.sweep_and_list() {
                Ok((ids, crashed)) => (ids, Some(crashed)),
                Err(e) => {
                    log::err(
                        None,
                        &format!(
                            "cannot read the queue {}: {}",
                            self.cfg.queue_dir.display(),
                            crate::exit::io_reason(&e)
                        ),
                    );
                    return Stats::default();
                }
            },
        };
        ids.retain(|id| sel.matches_id(id));
        // Oldest first (the id begins with the submission time).
        ids.sort();
        self.work_through(sel, ids, crashed, None)
    }

    /// An express run's pass ([`express`]): the jobs announced in `inbox`
    /// as they arrive, until none has for `linger`, `limit` has passed or
    /// `still_fresh` says the configuration or a table changed.
    pub fn run_express(
        &self,
        inbox: &express::Inbox,
        linger: std::time::Duration,
        limit: std::time::Duration,
        still_fresh: &(dyn Fn() -> bool + Sync),
    ) -> Stats {
        let now = std::time::Instant::now();
        let arrivals = Arrivals {
            inbox,
            linger,
            until: now + limit,
            still_fresh,
            last: Mutex::new(now),
            done: std::sync::atomic::AtomicBool::new(false),
            looking: Mutex::new(()),
            news: std::sync::Condvar::new(),
        };
        // What `sendmail` asks for with -qI: the job now, due or not.
        let sel = Selection {
            force: true,
            ..Selection::default()
        };
        // The workers take the first jobs as they take the rest: after
        // the check that the tables are still as read.
        self.work_through(&sel, Vec::new(), None, Some(arrivals))
    }

    /// Deliver `ids` (and what joins them) with the pass's workers.
    fn work_through(
        &self,
        sel: &Selection,
        ids: Vec<QueueId>,
        crashed: Option<HashSet<QueueId>>,
        arrivals: Option<Arrivals<'_>>,
    ) -> Stats {
        let express = arrivals.is_some();
        let work = Mutex::new(
            ids.into_iter()
                .map(|id| Work {
                    id,
                    ours: false,
                    not_before: None,
                })
                .collect::<VecDeque<_>>(),
        );
        let workers = if express {
            self.settings.workers
        } else {
            self.settings
                .workers
                .min(work.lock().map(|w| w.len()).unwrap_or(1))
                .max(1)
        };
        let journal = match crashguard::Journal::create(self.queue.control_dir()) {
            Ok(j) => {
                crashguard::arm(&j);
                Some(j)
            }
            Err(e) => {
                log::warning(
                    None,
                    &format!(
                        "no crash journal ({}): a message that kills the runner will be retried",
                        crate::exit::io_reason(&e)
                    ),
                );
                None
            }
        };
        let pass = Pass {
            sel,
            work,
            stats: Mutex::new(Stats::default()),
            journal,
            comes_back: crashed.is_some(),
            crashed,
            arrivals,
        };
        std::thread::scope(|s| {
            for slot in 0..workers {
                let pass = &pass;
                s.spawn(move || self.worker(pass, slot));
            }
        });
        self.pool.close_all();
        pass.stats.into_inner().unwrap_or_default()
    }

    /// Lock a job this pass created, waiting a little while it is held:
    /// see [`OWN_JOB_LOCK_WAIT`].  `Ok(None)` when it stays held or is gone.
    fn lock_own_job(&self, id: &QueueId) -> std::io::Result<Option<crate::queue::Job>> {
        let until = std::time::Instant::now() + OWN_JOB_LOCK_WAIT;
        loop {
            match self.queue.lock(id)? {
                Some(j) => return Ok(Some(j)),
                None if std::time::Instant::now() < until && self.queue.path("qf", id).exists() => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                None => return Ok(None),
            }
        }
    }

    /// `-qI` naming one whole queue id, and nothing else.
    fn exact_job(&self, sel: &Selection) -> Option<QueueId> {
        match (
            &sel.ids[..],
            sel.recipients.is_empty() && sel.senders.is_empty(),
        ) {
            ([(false, id)], true) => QueueId::parse(id),
            _ => None,
        }
    }

    /// Read the directory once: sweep what crashed writers left, and
    /// return the ids of the jobs and of those with crashes counted.
    fn sweep_and_list(&self) -> std::io::Result<(Vec<QueueId>, HashSet<QueueId>)> {
        let listing = self.queue.listing()?;
        let mut crashed: HashSet<QueueId> = crashguard::sweep(&self.queue, listing.names())
            .into_iter()
            .collect();
        for id in listing.ids_with("xf") {
            if ["qf", "hf", "Qf"].iter().any(|p| listing.has(p, &id)) {
                crashed.insert(id);
            } else {
                crashguard::clear(&self.queue, &id);
            }
        }
        match self.queue.remove_stale_in(
            &listing,
            crate::queue::spool::STALE_TEMP_AGE,
            crate::queue::spool::STALE_DATA_AGE,
        ) {
            Ok(removed) => {
                for r in removed {
                    log::notice(None, &format!("removed stale queue file {r}"));
                }
            }
            Err(e) => log::err(
                None,
                &format!("stale file sweep: {}", crate::exit::io_reason(&e)),
            ),
        }
        Ok((listing.ids_with("qf"), crashed))
    }

    fn worker(&self, pass: &Pass<'_>, slot: usize) {
        loop {
            let Work { id, ours, .. } = match pass.next() {
                Ok(Some(w)) => w,
                Ok(None) => match &pass.arrivals {
                    Some(a) if a.wait_for_work(&pass.work) => continue,
                    _ => return,
                },
                Err(wait) => {
                    // Only paced jobs left: wait for the first one's token.
                    std::thread::sleep(wait.min(std::time::Duration::from_secs(1)));
                    continue;
                }
            };
            let more = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.process(&id, ours, pass, slot)
            }));
            if let Some(j) = &pass.journal {
                j.end(slot);
            }
            match more {
                Ok(more) => {
                    if let Ok(mut w) = pass.work.lock() {
                        w.extend(more.into_iter().map(|id| Work {
                            id,
                            ours: true,
                            not_before: None,
                        }));
                    }
                }
                Err(_) => {
                    crashguard::count_crash(&self.queue, &id);
                    log::err(
                        Some(id.as_str()),
                        "the queue runner failed on this message; it will be retried",
                    )
                }
            }
        }
    }

    fn bump(&self, stats: &Mutex<Stats>, f: impl FnOnce(&mut Stats)) {
        if let Ok(mut s) = stats.lock() {
            f(&mut s);
        }
    }

    fn say(&self, text: &str) {
        if self.verbose {
            let _ = writeln!(std::io::stdout(), "{text}");
        }
    }
}

/// The smarthost login (`USER PASSWORD`, one line), if the file exists.
fn read_auth(path: &std::path::Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))?;
    let (user, pass) = line.trim().split_once(char::is_whitespace)?;
    Some((user.to_string(), pass.trim().to_string()))
}

/// Limit the runner's data size (`runner_memory_limit`): a message that
/// makes it allocate without end then ends in an allocation failure
/// (SIGABRT, which the crash guard counts) rather than the OOM killer's
/// SIGKILL (which it cannot tell from an admin's `kill -9`).
pub fn limit_memory(cfg: &Config) {
    let limit = match Settings::from_config(cfg) {
        Ok(s) if s.memory_limit > 0 => s.memory_limit,
        _ => return,
    };
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct; only ever lowered.
    if unsafe { libc::getrlimit(libc::RLIMIT_DATA, &mut rl) } != 0 || rl.rlim_cur <= limit {
        return;
    }
    // The soft limit only: programs the runner starts for aliases inherit
    // it, and may raise it again.
    rl.rlim_cur = limit;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_DATA, &rl) } != 0 {
        let e = std::io::Error::last_os_error();
        log::warning(None, &format!("cannot limit the runner's memory: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_matches_ids_recipients_and_senders_as_sendmail_q_does() {
        let id = QueueId::parse("6AL5Krcl005170").unwrap();
        let env = Envelope {
            sender: "<Alice@Shop.example>".into(),
            recipients: vec![crate::queue::Recipient {
                addr: "<bob@far.example>".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let all = Selection::default();
        assert!(all.matches_id(&id) && all.matches(&env));
        let by = |ids: &[(bool, &str)], rcpts: &[(bool, &str)], senders: &[(bool, &str)]| {
            let v = |l: &[(bool, &str)]| l.iter().map(|(n, s)| (*n, s.to_string())).collect();
            Selection {
                ids: v(ids),
                recipients: v(rcpts),
                senders: v(senders),
                force: true,
            }
        };
        // -qI: a substring of the id; -q!I: not it.
        assert!(by(&[(false, "Krcl")], &[], &[]).matches_id(&id));
        assert!(!by(&[(true, "Krcl")], &[], &[]).matches_id(&id));
        // -qR and -qS: substrings, case-insensitive.
        assert!(by(&[], &[(false, "FAR.example")], &[]).matches(&env));
        assert!(!by(&[], &[(false, "near.example")], &[]).matches(&env));
        assert!(by(&[], &[], &[(false, "alice@shop")]).matches(&env));
        assert!(!by(&[], &[], &[(true, "alice@shop")]).matches(&env));
    }
}
