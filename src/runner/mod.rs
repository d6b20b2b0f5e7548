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

pub mod crashguard;
pub mod remote;
pub mod render;
pub mod settings;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::os::fd::RawFd;
use std::sync::Mutex;
use std::time::Instant;

use crate::address;
use crate::config::Config;
use crate::date;
use crate::deliver::{self, Outcome};
use crate::dns::Dns;
use crate::dsn;
use crate::exit::{ExitCode, Failure};
use crate::log;
use crate::mailbox::Message;
use crate::queue::spool::ReadError;
use crate::queue::{Envelope, Queue, QueueId, RETRY_FACTOR, Recipient};
use crate::resolve::Resolver;
use crate::route::{Route, Router};
use crate::smtp::client;
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
}

/// A job on a pass's work list.
struct Work {
    id: QueueId,
    /// Created by this pass (a bounce, a receipt, a split envelope).
    ours: bool,
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
    auth: Option<(String, String)>,
    dkim: crate::dkim::Keyring,
    verbose: bool,
}

thread_local! {
    static DNS: std::cell::RefCell<Option<Dns>> = const { std::cell::RefCell::new(None) };
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
        let work = Mutex::new(
            ids.into_iter()
                .map(|id| Work { id, ours: false })
                .collect::<VecDeque<_>>(),
        );
        let workers = self
            .settings
            .workers
            .min(work.lock().map(|w| w.len()).unwrap_or(1))
            .max(1);
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
            crashed,
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
            let Some(Work { id, ours }) = pass.work.lock().ok().and_then(|mut w| w.pop_front())
            else {
                return;
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
                        w.extend(more.into_iter().map(|id| Work { id, ours: true }));
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

    /// One attempt at one job; returns jobs created meanwhile (bounces,
    /// split envelopes) to run next.
    fn process(&self, id: &QueueId, ours: bool, pass: &Pass<'_>, slot: usize) -> Vec<QueueId> {
        let (sel, stats) = (pass.sel, &pass.stats);
        // Most jobs in a periodic pass are waiting for their retry time:
        // tell from the first bytes of the qf, without taking the lock.
        if !sel.force
            && let Some((attempts, last)) =
                crate::queue::spool::peek_schedule(&self.queue.path("qf", id))
            && attempts > 0
            && date::now() < last + self.settings.backoff(attempts)
        {
            self.bump(stats, |s| s.not_due += 1);
            return Vec::new();
        }
        let locked = if ours {
            self.lock_own_job(id)
        } else {
            self.queue.lock(id)
        };
        let mut job = match locked {
            Ok(Some(j)) => j,
            Ok(None) => {
                self.bump(stats, |s| s.locked += 1);
                return Vec::new();
            }
            Err(e) => {
                log::err(
                    Some(id.as_str()),
                    &format!("cannot lock: {}", crate::exit::io_reason(&e)),
                );
                return Vec::new();
            }
        };
        let mut env = match job.envelope() {
            Ok(e) => e,
            Err(e) => {
                let why = e.to_string();
                if matches!(e, ReadError::Format(_)) {
                    match job.set_aside() {
                        Ok(p) => {
                            log::err(Some(id.as_str()), &format!("Losing {}: {why}", p.display()))
                        }
                        Err(e2) => log::err(Some(id.as_str()), &format!("cannot set aside: {e2}")),
                    }
                    self.bump(stats, |s| s.set_aside += 1);
                }
                return Vec::new();
            }
        };
        if !sel.matches(&env) {
            return Vec::new();
        }
        let now = date::now();
        if !sel.force
            && env.attempts > 0
            && now < env.last_attempt + self.settings.backoff(env.attempts)
        {
            self.bump(stats, |s| s.not_due += 1);
            return Vec::new();
        }
        // Crash guard.
        let (crashes, interrupted) = match &pass.crashed {
            Some(known) if !known.contains(id) => (0, false),
            _ => crashguard::state(&self.queue, id),
        };
        if crashes >= crashguard::MAX_CRASHES {
            crashguard::clear(&self.queue, id);
            match job.set_aside() {
                Ok(p) => log::err(
                    Some(id.as_str()),
                    &format!(
                        "Losing {}: delivery attempts died {crashes} times; set aside for the admin",
                        p.display()
                    ),
                ),
                Err(e) => log::err(Some(id.as_str()), &format!("cannot set aside: {e}")),
            }
            self.bump(stats, |s| s.set_aside += 1);
            return Vec::new();
        }
        // From here on, the runner dying counts against this job.
        if let Some(j) = &pass.journal {
            j.begin(slot, id);
        }
        let forget_crashes = || {
            if crashes > 0 || interrupted {
                crashguard::clear(&self.queue, id);
            }
        };
        self.bump(stats, |s| s.attempted += 1);
        self.say(&format!(
            "Running {id} ({} recipient{})",
            env.recipients.len(),
            if env.recipients.len() == 1 { "" } else { "s" }
        ));

        let body = match std::fs::read(job.data_path()) {
            Ok(b) => b,
            Err(e) => {
                forget_crashes();
                log::err(
                    Some(id.as_str()),
                    &format!("data file unreadable: {}", crate::exit::io_reason(&e)),
                );
                if e.kind() == std::io::ErrorKind::NotFound {
                    let _ = job.set_aside();
                    self.bump(stats, |s| s.set_aside += 1);
                }
                return Vec::new();
            }
        };
        let mut attempt = Attempt::new(self, id, &env, &body, now, job.lock_fd());
        attempt.interrupted = interrupted;
        attempt.run();
        let mut more = Vec::new();
        // Finish: new recipient list, bounces, warnings, rewrite or remove.
        let Attempt {
            kept,
            failed,
            delayed_notify,
            splits,
            succeeded,
            last_status,
            replies,
            ..
        } = attempt;
        more.extend(replies);
        for ((sender, list), rcpts) in splits {
            match self.split(&env, &body, &sender, list.as_deref(), rcpts) {
                Ok(nid) => more.push(nid),
                Err(e) => log::err(
                    Some(id.as_str()),
                    &format!("cannot split the envelope: {e}"),
                ),
            }
        }
        let mut failed = failed;
        let mut kept = kept;
        let age = now - env.created;
        if !kept.is_empty() && age >= self.settings.queue_return {
            for k in kept.drain(..) {
                let why = k
                    .rcpt
                    .status
                    .clone()
                    .unwrap_or_else(|| "Deferred".to_string());
                log::info(
                    Some(id.as_str()),
                    &format!(
                        "to={}, delay={}, pri={}, dsn=4.4.7, stat=Timeout: could not deliver for {}",
                        k.rcpt.addr,
                        date::duration(age),
                        env.priority,
                        words(self.settings.queue_return)
                    ),
                );
                failed.push(Failed {
                    rcpt: k.rcpt.clone(),
                    actual: None,
                    status: "4.4.7".to_string(),
                    text: format!(
                        "Message could not be delivered for {}: {why}",
                        words(self.settings.queue_return)
                    ),
                    remote_reply: false,
                    remote_mta: None,
                });
            }
        }
        if !failed.is_empty() {
            more.extend(self.bounce(id, &env, &body, dsn::Kind::Failure, &failed));
            self.bump(stats, |s| s.bounces += 1);
        }
        if !succeeded.is_empty() {
            more.extend(self.success_notice(id, &env, &body, &succeeded));
        }
        if kept.is_empty() {
            match job.finish() {
                Ok(()) => log::info(Some(id.as_str()), "done"),
                Err(e) => log::err(
                    Some(id.as_str()),
                    &format!(
                        "cannot remove the finished job: {}",
                        crate::exit::io_reason(&e)
                    ),
                ),
            }
            forget_crashes();
            self.bump(stats, |s| s.finished += 1);
            return more;
        }
        // Still work to do: a delay warning (once), then the rewrite.
        if !env.has_flag('w') && age >= self.settings.queue_warn && self.settings.queue_warn > 0 {
            let warn: Vec<Failed> = kept
                .iter()
                .filter(|k| delayed_notify.contains(&k.rcpt.addr))
                .map(|k| Failed {
                    rcpt: k.rcpt.clone(),
                    actual: None,
                    status: k.status.clone(),
                    text: k.rcpt.status.clone().unwrap_or_default(),
                    remote_reply: false,
                    remote_mta: None,
                })
                .collect();
            if !warn.is_empty() {
                more.extend(self.bounce(
                    id,
                    &env,
                    &body,
                    dsn::Kind::Delay {
                        warn_after: self.settings.queue_warn,
                        retry_until: env.created + self.settings.queue_return,
                    },
                    &warn,
                ));
            }
            env.set_flag('w', true);
        }
        env.recipients = kept.into_iter().map(|k| k.rcpt).collect();
        env.attempts += 1;
        env.last_attempt = now;
        env.priority += RETRY_FACTOR;
        env.message = last_status;
        if let Err(e) = job.rewrite(&env) {
            log::err(
                Some(id.as_str()),
                &format!(
                    "cannot rewrite the control file: {}",
                    crate::exit::io_reason(&e)
                ),
            );
        }
        forget_crashes();
        self.bump(stats, |s| s.deferred += 1);
        more
    }

    /// Queue a copy of the message for `rcpts` with another envelope sender
    /// (mail for a list goes out as its `owner-`); a list's copy carries
    /// its `List-Id:` and `List-Post:` instead of any it came with.
    fn split(
        &self,
        env: &Envelope,
        body: &[u8],
        sender: &str,
        list: Option<&str>,
        rcpts: Vec<Recipient>,
    ) -> Result<QueueId, String> {
        let mut ids = crate::queue::IdGenerator::new();
        let mut draft = self
            .queue
            .create(&mut ids, date::now())
            .map_err(|e| e.to_string())?;
        draft.data().write_all(body).map_err(|e| e.to_string())?;
        let mut e2 = env.clone();
        e2.sender = sender.to_string();
        e2.recipients = rcpts;
        e2.attempts = 0;
        e2.last_attempt = 0;
        e2.message = None;
        e2.df_inode = None;
        if let Some(name) = list {
            match crate::lists::List::load(&self.cfg, name) {
                Ok(Some(l)) => {
                    e2.headers
                        .retain(|h| !h.is("List-Id") && !h.is("List-Post"));
                    for f in l.settings.header_fields() {
                        e2.headers
                            .push(crate::queue::QHeader::new("", f.as_bytes()));
                    }
                }
                // Checked moments ago by delivery; gone now: a plain copy.
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        let nid = draft.commit(&mut e2).map_err(|e| e.to_string())?;
        log::info(
            Some(nid.as_str()),
            &format!("split from {}: sender {sender}", env.recipients.len()),
        );
        Ok(nid)
    }

    /// Send a failure or delay notification for `entries`; returns the id
    /// of the notification queued, if any.
    fn bounce(
        &self,
        id: &QueueId,
        env: &Envelope,
        body: &[u8],
        kind: dsn::Kind,
        entries: &[Failed],
    ) -> Vec<QueueId> {
        let host = &self.cfg.hostname;
        let sender = render::sender_address(&env.sender);
        let null_sender = sender.is_empty();
        // Only those who asked (NOTIFY) hear about failures and delays.
        let wanted: Vec<&Failed> = entries
            .iter()
            .filter(|f| match kind {
                dsn::Kind::Failure => !f.rcpt.has_flag('N') || f.rcpt.has_flag('F'),
                dsn::Kind::Delay { .. } => !f.rcpt.has_flag('N') || f.rcpt.has_flag('D'),
                dsn::Kind::Success => f.rcpt.has_flag('S'),
            })
            .collect();
        if wanted.is_empty() {
            return Vec::new();
        }
        let to = if null_sender {
            // A bounce that failed: tell the postmaster once, then drop.
            let postmaster = self.settings.double_bounce.clone();
            if wanted.iter().all(|f| {
                let a = render::sender_address(&f.rcpt.addr);
                let local = address::split_addr(&a).0.to_ascii_lowercase();
                local == postmaster.to_ascii_lowercase() || local == "mailer-daemon"
            }) || matches!(kind, dsn::Kind::Delay { .. })
            {
                log::notice(
                    Some(id.as_str()),
                    "double bounce: notification to the postmaster undeliverable; dropped",
                );
                return Vec::new();
            }
            postmaster
        } else {
            address::qualify(&sender, host)
        };
        if !self.dsn_allowed(&to) {
            log::warning(
                Some(id.as_str()),
                &format!("DSN to {to} suppressed: rate limit reached"),
            );
            return Vec::new();
        }
        let dsn_entries: Vec<dsn::Entry> = wanted
            .iter()
            .map(|f| dsn::Entry {
                recipient: f
                    .rcpt
                    .final_rcpt
                    .as_deref()
                    .and_then(|r| r.split_once(';').map(|(_, a)| a.trim().to_string()))
                    .unwrap_or_else(|| {
                        address::qualify(&render::sender_address(&f.rcpt.addr), host)
                    }),
                actual: f.actual.clone(),
                original: f.rcpt.orcpt.clone(),
                status: f.status.clone(),
                diagnostic: f.text.clone(),
                remote_reply: f.remote_reply,
                remote_mta: f.remote_mta.clone(),
                last_attempt: date::now(),
            })
            .collect();
        let received_from = env
            .macro_value("_")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| "localhost".to_string());
        let original = render::render(env, body, render::For::Local, host);
        let report = dsn::Report {
            kind,
            qid: id.as_str(),
            host,
            to: &to,
            arrival: env.created,
            received_from: &received_from,
            envid: env.envid.as_deref(),
            headers_only: env.has_flag('n'),
            to_postmaster: null_sender,
            entries: &dsn_entries,
        };
        let reason = wanted.first().map(|f| f.text.clone()).unwrap_or_default();
        match dsn::build(&report, &mut &original[..]) {
            Ok(msg) => match crate::submit::inject(
                &self.cfg,
                "<>",
                std::slice::from_ref(&to),
                &msg,
                "MAILER-DAEMON@localhost",
            ) {
                Ok(bid) => {
                    let what = match kind {
                        dsn::Kind::Failure => reason,
                        dsn::Kind::Delay { warn_after, .. } => format!(
                            "Warning: could not send message for past {}",
                            words(warn_after)
                        ),
                        dsn::Kind::Success => "Return receipt".to_string(),
                    };
                    log::info(Some(id.as_str()), &format!("{bid}: DSN: {what}"));
                    self.say(&format!("{id}: bounce {bid} to {to}"));
                    vec![bid]
                }
                Err(f) => {
                    log::err(Some(id.as_str()), &format!("cannot queue the DSN: {f}"));
                    Vec::new()
                }
            },
            Err(e) => {
                log::err(Some(id.as_str()), &format!("cannot build the DSN: {e}"));
                Vec::new()
            }
        }
    }

    /// Give up on a job at an admin's request: with `bounce`, its sender
    /// gets a failure notice for every pending recipient ("deleted by the
    /// administrator"); then the job is removed.  False when the job is
    /// being delivered right now.
    pub fn abandon(&self, id: &QueueId, bounce: bool, why: &str) -> Result<bool, String> {
        let Some(mut job) = self
            .queue
            .lock(id)
            .map_err(|e| crate::exit::io_reason(&e))?
        else {
            return Ok(false);
        };
        let env = job.envelope().map_err(|e| e.to_string())?;
        if bounce {
            let body = std::fs::read(job.data_path()).unwrap_or_default();
            let failed: Vec<Failed> = env
                .recipients
                .iter()
                .map(|r| Failed {
                    rcpt: r.clone(),
                    actual: None,
                    status: "5.0.0".into(),
                    text: why.to_string(),
                    remote_reply: false,
                    remote_mta: None,
                })
                .collect();
            for bid in self.bounce(id, &env, &body, dsn::Kind::Failure, &failed) {
                crate::cli::sendmail::start_delivery(&bid, crate::config::DeliveryMode::Background);
            }
        }
        job.finish().map_err(|e| crate::exit::io_reason(&e))?;
        log::notice(Some(id.as_str()), &format!("removed from the queue: {why}"));
        Ok(true)
    }

    /// Make a job due now (its retry time forgotten).  False when it is
    /// being delivered right now.
    pub fn make_due(&self, id: &QueueId) -> Result<bool, String> {
        let Some(mut job) = self
            .queue
            .lock(id)
            .map_err(|e| crate::exit::io_reason(&e))?
        else {
            return Ok(false);
        };
        let mut env = job.envelope().map_err(|e| e.to_string())?;
        env.last_attempt = 0;
        job.rewrite(&env).map_err(|e| crate::exit::io_reason(&e))?;
        Ok(true)
    }

    /// NOTIFY=SUCCESS: a "delivered" notification.
    fn success_notice(
        &self,
        id: &QueueId,
        env: &Envelope,
        body: &[u8],
        done: &[Failed],
    ) -> Vec<QueueId> {
        let sender = render::sender_address(&env.sender);
        if sender.is_empty() || done.is_empty() {
            return Vec::new();
        }
        let host = &self.cfg.hostname;
        let to = address::qualify(&sender, host);
        let entries: Vec<dsn::Entry> = done
            .iter()
            .map(|f| dsn::Entry {
                recipient: address::qualify(&render::sender_address(&f.rcpt.addr), host),
                actual: f.actual.clone(),
                original: f.rcpt.orcpt.clone(),
                status: "2.0.0".to_string(),
                diagnostic: f.text.clone(),
                remote_reply: f.remote_reply,
                remote_mta: f.remote_mta.clone(),
                last_attempt: date::now(),
            })
            .collect();
        let original = render::render(env, body, render::For::Local, host);
        let report = dsn::Report {
            kind: dsn::Kind::Success,
            qid: id.as_str(),
            host,
            to: &to,
            arrival: env.created,
            received_from: "localhost",
            envid: env.envid.as_deref(),
            headers_only: true,
            to_postmaster: false,
            entries: &entries,
        };
        match dsn::build(&report, &mut &original[..]) {
            Ok(msg) => crate::submit::inject(
                &self.cfg,
                "<>",
                std::slice::from_ref(&to),
                &msg,
                "MAILER-DAEMON@localhost",
            )
            .map(|b| vec![b])
            .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// Per-sender and global limits on notifications, per hour.  The counts
    /// live in `QUEUE/.dsn-rate` (lines `HOUR ADDRESS COUNT`).
    fn dsn_allowed(&self, to: &str) -> bool {
        use std::os::unix::io::AsRawFd;
        let path = self.cfg.queue_dir.join(".dsn-rate");
        let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
        else {
            return true;
        };
        // SAFETY: plain flock on a valid descriptor; released on close.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        let hour = date::now() / 3600;
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut counts: HashMap<String, u32> = HashMap::new();
        for l in text.lines() {
            let mut it = l.split_whitespace();
            let (Some(h), Some(a), Some(c)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            if h.parse::<i64>().ok() == Some(hour) {
                counts.insert(a.to_string(), c.parse().unwrap_or(0));
            }
        }
        let total: u32 = counts.values().sum();
        let mine = counts.get(to).copied().unwrap_or(0);
        if mine >= self.settings.dsn_per_sender || total >= self.settings.dsn_total {
            return false;
        }
        counts.insert(to.to_string(), mine + 1);
        let mut out = String::new();
        for (a, c) in &counts {
            out.push_str(&format!("{hour} {a} {c}\n"));
        }
        let _ = std::fs::write(&path, out);
        true
    }
}

/// "5 days", "4 hours".
fn words(secs: i64) -> String {
    if secs % 86400 == 0 {
        let d = secs / 86400;
        format!("{d} day{}", if d == 1 { "" } else { "s" })
    } else if secs % 3600 == 0 {
        let h = secs / 3600;
        format!("{h} hour{}", if h == 1 { "" } else { "s" })
    } else {
        format!("{} minutes", secs / 60)
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

/// A recipient that stays queued.
struct Kept {
    rcpt: Recipient,
    status: String,
}

/// A recipient reported on (failed, or for NOTIFY=SUCCESS delivered).
#[derive(Clone)]
struct Failed {
    rcpt: Recipient,
    actual: Option<String>,
    status: String,
    text: String,
    remote_reply: bool,
    remote_mta: Option<String>,
}

/// Where a recipient is delivered.
enum Dest {
    Local,
    Remote(String),
}

/// The state of one attempt at one job.
struct Attempt<'a> {
    r: &'a Runner,
    id: &'a QueueId,
    env: &'a Envelope,
    body: &'a [u8],
    started: i64,
    clock: Instant,
    kept: Vec<Kept>,
    failed: Vec<Failed>,
    succeeded: Vec<Failed>,
    /// Recipients (by address) that want delay notifications.
    delayed_notify: Vec<String>,
    /// Recipients to requeue under another envelope sender (and as the
    /// copy of a mailing list).
    splits: HashMap<(String, Option<String>), Vec<Recipient>>,
    last_status: Option<String>,
    /// Autoreplies queued after mailbox deliveries.
    replies: Vec<QueueId>,
    /// The last attempt died midway: mailboxes may hold its copies.
    interrupted: bool,
    /// The job's locked control file (see [`deliver::Request::job_lock`]).
    job_lock: RawFd,
}

impl<'a> Attempt<'a> {
    fn new(
        r: &'a Runner,
        id: &'a QueueId,
        env: &'a Envelope,
        body: &'a [u8],
        now: i64,
        job_lock: RawFd,
    ) -> Attempt<'a> {
        Attempt {
            r,
            id,
            env,
            body,
            started: now,
            clock: Instant::now(),
            kept: Vec::new(),
            failed: Vec::new(),
            succeeded: Vec::new(),
            delayed_notify: Vec::new(),
            splits: HashMap::new(),
            last_status: None,
            replies: Vec::new(),
            interrupted: false,
            job_lock,
        }
    }

    fn classify(&self, rcpt: &Recipient) -> Dest {
        let a = rcpt.addr.trim();
        let plain = a.trim_matches('"');
        if plain.starts_with('|') || plain.starts_with('/') || a.starts_with('\\') {
            return Dest::Local;
        }
        let addr = match address::parse_one(a) {
            Ok(m) => m.addr,
            Err(_) => return Dest::Local, // resolution reports the error
        };
        match address::split_addr(&addr) {
            (_, None) => Dest::Local,
            (_, Some(d))
                if self.r.resolver.domains.is_local(d) || self.r.resolver.domains.is_virtual(d) =>
            {
                Dest::Local
            }
            (_, Some(d)) => match self.r.router.route(d) {
                Route::Local(_) => Dest::Local,
                _ => Dest::Remote(d.trim_end_matches('.').to_ascii_lowercase()),
            },
        }
    }

    /// A child recipient replacing (part of) `parent`.
    fn child(&self, parent: &Recipient, addr: &str, ctl: Option<String>) -> Recipient {
        let mut flags: String = parent
            .flags
            .chars()
            .filter(|c| *c != 'P' && *c != 'A')
            .collect();
        flags.push('A');
        Recipient {
            flags,
            addr: addr.to_string(),
            status: None,
            ctl,
            orcpt: parent.orcpt.clone(),
            final_rcpt: parent.final_rcpt.clone().or_else(|| {
                Some(format!(
                    "RFC822; {}",
                    address::qualify(&render::sender_address(&parent.addr), &self.r.cfg.hostname)
                ))
            }),
        }
    }

    fn run(&mut self) {
        let mut local: Vec<Recipient> = Vec::new();
        let mut remote: Vec<(String, Recipient)> = Vec::new();
        for r in &self.env.recipients {
            if r.has_flag('D') || !r.has_flag('N') {
                self.delayed_notify.push(r.addr.clone());
            }
            match self.classify(r) {
                Dest::Local => local.push(r.clone()),
                Dest::Remote(d) => remote.push((d, r.clone())),
            }
        }
        if self.too_many_hops() {
            for r in local.into_iter().chain(remote.into_iter().map(|(_, r)| r)) {
                self.failed.push(Failed {
                    rcpt: r,
                    actual: None,
                    status: "5.4.6".into(),
                    text: format!("554 5.4.6 Too many hops (max {MAX_HOPS})"),
                    remote_reply: false,
                    remote_mta: None,
                });
            }
            return;
        }
        if !local.is_empty() {
            let forwards = self.deliver_local(&local);
            remote.extend(forwards);
        }
        if !remote.is_empty() {
            self.deliver_remote(remote);
        }
    }

    fn too_many_hops(&self) -> bool {
        self.env.headers.iter().filter(|h| h.is("Received")).count() > MAX_HOPS
    }

    /// Local recipients through the delivery agent; returns forwards.
    fn deliver_local(&mut self, local: &[Recipient]) -> Vec<(String, Recipient)> {
        let cfg = &self.r.cfg;
        let message = match Message::from_bytes(&render::render(
            self.env,
            self.body,
            render::For::Local,
            &cfg.hostname,
        )) {
            Ok(m) => m,
            Err(e) => {
                for r in local {
                    self.defer(
                        r.clone(),
                        "4.3.0",
                        format!(
                            "Deferred: cannot prepare the message: {}",
                            crate::exit::io_reason(&e)
                        ),
                    );
                }
                return Vec::new();
            }
        };
        let sender = render::sender_address(&self.env.sender);
        let rcpts: Vec<deliver::Rcpt> = local
            .iter()
            .map(|r| deliver::Rcpt {
                address: r.addr.clone(),
                ctl: r.ctl.as_deref().and_then(deliver::parse_ctl),
            })
            .collect();
        let req = deliver::Request {
            sender: if sender.is_empty() { "<>" } else { &sender },
            arrival: self.env.created,
            message: &message,
            queue_id: Some(self.id.as_str()),
            redelivery: self.interrupted,
            job_lock: Some(self.job_lock),
        };
        let reports = deliver::deliver(&self.r.resolver, &req, &rcpts);
        let mut forwards = Vec::new();
        for parent in local {
            let mine: Vec<&deliver::Report> = reports
                .iter()
                .filter(|rep| rep.recipient == parent.addr)
                .collect();
            let same = |rep: &deliver::Report| rep.printable == parent.addr;
            for rep in &mine {
                self.log_local(rep);
                let split_sender = rep
                    .sender
                    .as_ref()
                    .filter(|s| render::sender_address(s) != sender)
                    .cloned();
                match &rep.outcome {
                    Outcome::Delivered => {
                        if rep.what.starts_with("mailbox ") || rep.what.starts_with("maildir ") {
                            self.autoreply(&message, &req, parent, rep);
                        }
                        if parent.has_flag('S') {
                            self.succeeded.push(Failed {
                                rcpt: parent.clone(),
                                actual: Some(rep.printable.clone()),
                                status: "2.0.0".into(),
                                text: "delivered to mailbox".into(),
                                remote_reply: false,
                                remote_mta: None,
                            });
                        }
                    }
                    Outcome::Forward { address, .. } => {
                        let child = self.child(parent, address, None);
                        match split_sender {
                            Some(s) => self.splits.entry((s, None)).or_default().push(child),
                            None => {
                                let d = address::split_addr(address)
                                    .1
                                    .unwrap_or("")
                                    .trim_end_matches('.')
                                    .to_ascii_lowercase();
                                forwards.push((d, child));
                            }
                        }
                    }
                    Outcome::List { name } => {
                        let mut r = self.child(
                            parent,
                            &rep.again,
                            rep.ctl
                                .as_ref()
                                .map(|o| format!("{}:{}:{}", o.name, o.uid, o.gid)),
                        );
                        // The owner's bounce names the member, not the list.
                        r.final_rcpt = Some(format!(
                            "RFC822; {}",
                            address::qualify(
                                &render::sender_address(rep.printable.trim_start_matches('\\')),
                                &self.r.cfg.hostname
                            )
                        ));
                        let s = rep
                            .sender
                            .clone()
                            .unwrap_or_else(|| self.env.sender.clone());
                        self.splits
                            .entry((s, Some(name.clone())))
                            .or_default()
                            .push(r);
                    }
                    Outcome::Deferred(f) => {
                        let r = if same(rep) {
                            parent.clone()
                        } else {
                            self.child(
                                parent,
                                &rep.again,
                                rep.ctl
                                    .as_ref()
                                    .map(|o| format!("{}:{}:{}", o.name, o.uid, o.gid)),
                            )
                        };
                        match split_sender {
                            Some(s) => self.splits.entry((s, None)).or_default().push(r),
                            None => self.defer(r, &f.dsn, format!("Deferred: {}", f.text)),
                        }
                    }
                    Outcome::Failed(f) => self.failed.push(Failed {
                        rcpt: parent.clone(),
                        actual: if same(rep) {
                            None
                        } else {
                            Some(rep.printable.clone())
                        },
                        status: f.dsn.clone(),
                        text: f.text.clone(),
                        remote_reply: false,
                        remote_mta: None,
                    }),
                }
            }
        }
        forwards
    }

    /// After a mailbox delivery: answer the sender when the recipient
    /// (or the mailbox it led to) has an autoreply and RFC 3834 allows it.
    /// Failures are logged; the delivery stands.
    fn autoreply(
        &mut self,
        message: &Message,
        req: &deliver::Request<'_>,
        parent: &Recipient,
        rep: &deliver::Report,
    ) {
        let cfg = &self.r.cfg;
        let host = &cfg.hostname;
        let mut keys: Vec<String> = Vec::new();
        let envelope_rcpt = render::sender_address(&parent.addr);
        let mailbox = rep.again.trim_start_matches('\\');
        for a in [envelope_rcpt.as_str(), mailbox] {
            if let Some(k) = crate::autoreply::key(a, host)
                && !keys.contains(&k)
            {
                keys.push(k);
            }
        }
        let Some((key, rule)) = keys
            .iter()
            .find_map(|k| match crate::autoreply::load(cfg, k) {
                Ok(Some(r)) => Some((k.clone(), r)),
                Ok(None) => None,
                Err(e) => {
                    log::warning(Some(self.id.as_str()), &format!("autoreply: {e}"));
                    None
                }
            })
        else {
            return;
        };
        let id = self.id.as_str();
        let now = date::now();
        if !rule.active_on(&crate::autoreply::today(now)) {
            return;
        }
        let header = crate::message::Header::parse(&message.header_bytes().unwrap_or_default());
        if let Some(why) = crate::autoreply::refuse(req.sender, &header, &keys) {
            log::info(Some(id), &format!("autoreply from {key}: none ({why})"));
            return;
        }
        let to = address::qualify(&render::sender_address(req.sender), host);
        let mut queued = None;
        let due = crate::autoreply::once_per_interval(cfg, &key, &to, rule.interval, now, || {
            if !self.r.dsn_allowed(&to) {
                log::warning(
                    Some(id),
                    &format!("autoreply to {to} suppressed: rate limit reached"),
                );
                return false;
            }
            let msg = crate::autoreply::build_reply(&rule, &key, &to, &header, host, id, now);
            match crate::submit::inject(cfg, "<>", std::slice::from_ref(&to), &msg, "localhost") {
                Ok(bid) => {
                    log::info(Some(id), &format!("{bid}: autoreply from {key} to {to}"));
                    queued = Some(bid);
                    true
                }
                Err(f) => {
                    log::err(Some(id), &format!("cannot queue the autoreply: {f}"));
                    false
                }
            }
        });
        match due {
            Ok(true) => self.replies.extend(queued),
            Ok(false) => log::info(
                Some(id),
                &format!("autoreply from {key}: none ({to} answered within the interval)"),
            ),
            Err(e) => log::err(
                Some(id),
                &format!("autoreply from {key}: {}", crate::exit::io_reason(&e)),
            ),
        }
    }

    fn defer(&mut self, mut r: Recipient, dsn: &str, text: String) {
        r.status = Some(text.clone());
        self.last_status = Some(text);
        self.kept.push(Kept {
            rcpt: r,
            status: dsn.to_string(),
        });
    }

    fn log_local(&self, rep: &deliver::Report) {
        let (dsn, stat) = match &rep.outcome {
            Outcome::Delivered => ("2.0.0".to_string(), "Sent".to_string()),
            Outcome::Forward { address, .. } => {
                ("2.0.0".to_string(), format!("forwarded to {address}"))
            }
            Outcome::List { name } => ("2.0.0".to_string(), format!("to list {name}'s copy")),
            Outcome::Deferred(f) => (f.dsn.clone(), format!("Deferred: {}", f.text)),
            Outcome::Failed(f) => (f.dsn.clone(), f.text.clone()),
        };
        log::info(
            Some(self.id.as_str()),
            &format!(
                "to={}, delay={}, xdelay={}, mailer=local, pri={}, dsn={dsn}, stat={stat}",
                rep.printable,
                date::duration(date::now() - self.env.created),
                date::duration(self.clock.elapsed().as_secs() as i64),
                self.env.priority
            ),
        );
        self.r.say(&format!("{}... {stat}", rep.printable));
    }

    /// Remote recipients by domain, one transaction per domain.
    fn deliver_remote(&mut self, remote: Vec<(String, Recipient)>) {
        let mut by_domain: Vec<(String, Vec<Recipient>)> = Vec::new();
        for (d, r) in remote {
            match by_domain.iter_mut().find(|(x, _)| *x == d) {
                Some((_, v)) => v.push(r),
                None => by_domain.push((d, vec![r])),
            }
        }
        // Over SMTP every address is fully qualified (RFC 5321 §4.1.2); a
        // script's bare `-f root` leaves as root@$hostname, as in sendmail.
        let sender = match render::sender_address(&self.env.sender) {
            s if s.is_empty() => s,
            s => address::qualify(&s, &self.r.cfg.hostname),
        };
        let message = render::render(self.env, self.body, render::For::Smtp, &self.r.cfg.hostname);
        // Signed once for every destination; a key that cannot be read
        // keeps the mail queued rather than sending it unsigned.
        let message = match self.r.dkim.sign(&message, &sender, date::now()) {
            Ok(Some(signed)) => signed,
            Ok(None) => message,
            Err(e) => {
                log::err(Some(self.id.as_str()), &e);
                for (_, rs) in &by_domain {
                    for r in rs {
                        self.defer(r.clone(), "4.7.0", format!("Deferred: {e}"));
                    }
                }
                return;
            }
        };
        let ret = if self.env.has_flag('d') {
            Some(if self.env.has_flag('n') {
                "HDRS"
            } else {
                "FULL"
            })
        } else {
            None
        };
        let host = self.r.cfg.hostname.clone();
        let my_names = |h: &str| {
            let h = h.trim_end_matches('.').to_ascii_lowercase();
            h == host || h == "localhost"
        };
        DNS.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                match Dns::system() {
                    Ok(d) => *slot = Some(d),
                    Err(e) => log::err(None, &e),
                }
            }
            let Some(dns) = slot.as_ref() else {
                for (_, rs) in &by_domain {
                    for r in rs {
                        self.defer(r.clone(), "4.4.3", "Deferred: no resolver".to_string());
                    }
                }
                return;
            };
            let ctx = remote::Context {
                router: &self.r.router,
                dns,
                pool: &self.r.pool,
                helo: &self.r.settings.helo,
                my_names: &my_names,
                timeouts: self.r.settings.timeouts(),
                auth: self.r.auth.clone(),
                bind: self.r.sources.for_sender(&sender),
            };
            for (domain, rs) in &by_domain {
                let rcpts: Vec<client::Rcpt> = rs
                    .iter()
                    .map(|r| client::Rcpt {
                        address: render::sender_address(&r.addr),
                        notify: notify_param(r),
                        orcpt: r.orcpt.clone(),
                    })
                    .collect();
                let job = remote::Job {
                    domain,
                    sender: &sender,
                    rcpts: &rcpts,
                    message: &message,
                    ret,
                    envid: self.env.envid.as_deref(),
                };
                let start = Instant::now();
                let (verdicts, relay) = remote::deliver(&ctx, &job);
                self.log_remote(rs, &verdicts, &relay, start);
                for (r, v) in rs.iter().zip(verdicts) {
                    match v {
                        remote::Verdict::Sent { reply } => {
                            if r.has_flag('S') {
                                self.succeeded.push(Failed {
                                    rcpt: r.clone(),
                                    actual: None,
                                    status: "2.0.0".into(),
                                    text: format!("250 {reply}"),
                                    remote_reply: true,
                                    remote_mta: relay.host.clone(),
                                });
                            }
                        }
                        remote::Verdict::Deferred { status, text } => {
                            self.defer(r.clone(), &status, text)
                        }
                        remote::Verdict::Failed {
                            status,
                            text,
                            remote_reply,
                        } => self.failed.push(Failed {
                            rcpt: r.clone(),
                            actual: None,
                            status,
                            text,
                            remote_reply,
                            remote_mta: relay.host.clone(),
                        }),
                    }
                }
            }
        });
    }

    fn log_remote(
        &self,
        rs: &[Recipient],
        verdicts: &[remote::Verdict],
        relay: &remote::Relay,
        start: Instant,
    ) {
        // sendmail joins recipients with the same outcome in one line.
        let mut groups: Vec<(String, String, Vec<String>)> = Vec::new();
        for (r, v) in rs.iter().zip(verdicts) {
            let (dsn, stat) = match v {
                remote::Verdict::Sent { reply } => ("2.0.0".to_string(), format!("Sent ({reply})")),
                remote::Verdict::Deferred { status, text } => (status.clone(), text.clone()),
                remote::Verdict::Failed { status, text, .. } => (status.clone(), text.clone()),
            };
            match groups.iter_mut().find(|(d, s, _)| *d == dsn && *s == stat) {
                Some((_, _, v)) => v.push(r.addr.clone()),
                None => groups.push((dsn, stat, vec![r.addr.clone()])),
            }
        }
        for (dsn, stat, who) in groups {
            let relay_part = if relay.text.is_empty() {
                String::new()
            } else {
                format!(", relay={}", relay.text)
            };
            log::info(
                Some(self.id.as_str()),
                &format!(
                    "to={}, delay={}, xdelay={}, mailer=esmtp, pri={}{relay_part}, dsn={dsn}, stat={stat}",
                    who.join(","),
                    date::duration(date::now() - self.env.created),
                    date::duration(start.elapsed().as_secs() as i64),
                    self.env.priority
                ),
            );
            self.r.say(&format!("{}... {stat}", who.join(",")));
        }
        let _ = self.started;
    }
}

/// The NOTIFY parameter a recipient asked for (only when it asked).
fn notify_param(r: &Recipient) -> Option<String> {
    if !r.has_flag('N') {
        return None;
    }
    let mut v = Vec::new();
    if r.has_flag('S') {
        v.push("SUCCESS");
    }
    if r.has_flag('F') {
        v.push("FAILURE");
    }
    if r.has_flag('D') {
        v.push("DELAY");
    }
    Some(if v.is_empty() {
        "NEVER".to_string()
    } else {
        v.join(",")
    })
}

/// sendmail's MaxHopCount: more `Received:` headers than this is a loop.
pub const MAX_HOPS: usize = 25;

/// `qrun`'s main: parse the arguments, become fully root when started
/// set-uid, run once or every interval.
/// Limit the runner's data size (`runner_memory_limit`): a message that
/// makes it allocate without end then ends in an allocation failure
/// (SIGABRT, which the crash guard counts) rather than the OOM killer's
/// SIGKILL (which it cannot tell from an admin's `kill -9`).
fn limit_memory(cfg: &Config) {
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

pub fn main(args: Vec<String>) -> i32 {
    let mut periodic = false;
    let rest: Vec<String> = args
        .iter()
        .skip(1)
        .filter(|a| {
            if *a == "--periodic" {
                periodic = true;
                false
            } else {
                true
            }
        })
        .cloned()
        .collect();
    let inv = match crate::cli::sendmail_args::parse("qrun", &rest) {
        Ok(i) => i,
        Err(f) => {
            eprintln!("qrun: {f}");
            return f.code.code();
        }
    };
    // Started set-uid by someone else: only the system's configuration, a
    // clean environment, and fully root from here on.
    let elevated = crate::privs::is_elevated();
    crate::privs::ensure_std_fds();
    if elevated {
        crate::privs::clean_environment();
        let root_u = nix::unistd::Uid::from_raw(0);
        let root_g = nix::unistd::Gid::from_raw(0);
        if nix::unistd::geteuid().is_root() {
            let _ = nix::unistd::setresgid(root_g, root_g, root_g);
            let _ = nix::unistd::setresuid(root_u, root_u, root_u);
        }
    }
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0o027) };
    let paths = match std::env::var_os(crate::config::ROOT_ENV) {
        Some(r) if !r.is_empty() && !elevated => {
            crate::config::Paths::under(std::path::PathBuf::from(r))
        }
        _ => crate::config::Paths::system(),
    };
    let cfg_file = if elevated {
        None
    } else {
        inv.config_file.clone()
    };
    let cfg = match Config::load(paths, cfg_file.as_deref()) {
        Ok(c) => c,
        Err(f) => {
            eprintln!("qrun: {f}");
            return f.code.code();
        }
    };
    log::init("sendmail", &cfg.log, &cfg.hostname);
    limit_memory(&cfg);
    let spec = inv.queue_run.clone().unwrap_or_default();
    let sel = Selection {
        ids: spec.ids.clone(),
        recipients: spec.recipients.clone(),
        senders: spec.senders.clone(),
        // A scheduled run respects retry times; one asked for by hand
        // (sendmail -q, -qI...) tries everything now.
        force: !periodic && spec.interval.is_none(),
    };
    let verbose = spec.foreground || inv.verbose;
    loop {
        let runner = match Runner::new(&cfg, verbose) {
            Ok(r) => r,
            Err(f) => {
                eprintln!("qrun: {f}");
                return f.code.code();
            }
        };
        let stats = runner.run_pass(&sel);
        if verbose {
            println!(
                "queue run: {} attempted, {} finished, {} deferred, {} bounce notices, {} locked, {} not yet due, {} set aside",
                stats.attempted,
                stats.finished,
                stats.deferred,
                stats.bounces,
                stats.locked,
                stats.not_due,
                stats.set_aside
            );
        }
        match spec.interval {
            Some(secs) => std::thread::sleep(std::time::Duration::from_secs(secs)),
            None => return ExitCode::Ok.code(),
        }
    }
}
