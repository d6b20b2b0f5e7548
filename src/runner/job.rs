//! One attempt at one job, from taking it to recording what came of it:
//!
//! 1. [`Runner::claim`]: is it due (from the `qf`'s first bytes, without the
//!    lock, then again from the whole envelope), lock it, read it, and ask
//!    the crash guard ([`super::crashguard`]) whether its attempts keep
//!    dying (then it is set aside instead).
//! 2. The attempt ([`super::attempt`]): local and remote deliveries.
//! 3. [`Runner::finish`]: envelopes split off queued, what waited longer
//!    than `queue_return` failed, failures bounced, receipts sent; the job
//!    removed when nothing is left, else a delay warning (once, after
//!    `queue_warn`) and the control file rewritten with the recipients
//!    still pending and the next retry time.

use super::attempt::{Attempt, Failed, Kept, Outcomes};
use super::notices::words;
use super::{Pass, Runner, crashguard};
use crate::date;
use crate::dsn;
use crate::log;
use crate::queue::spool::ReadError;
use crate::queue::{Envelope, Job, QueueId, RETRY_FACTOR, Recipient, enqueue};

/// A job this pass may work on: locked, read, and due.
struct Claimed {
    job: Job,
    env: Envelope,
    /// Attempts at it that died, and whether the last one did.
    crashes: u32,
    interrupted: bool,
}

impl Runner {
    /// One attempt at one job; returns jobs created meanwhile (bounces,
    /// split envelopes, autoreplies) to run next.
    pub(super) fn process(
        &self,
        id: &QueueId,
        ours: bool,
        pass: &Pass<'_>,
        slot: usize,
    ) -> Vec<QueueId> {
        let Some(Claimed {
            job,
            env,
            crashes,
            interrupted,
        }) = self.claim(id, ours, pass)
        else {
            return Vec::new();
        };
        // From here on, the runner dying counts against this job.
        if let Some(j) = &pass.journal {
            j.begin(slot, id);
        }
        let forget_crashes = || {
            if crashes > 0 || interrupted {
                crashguard::clear(&self.queue, id);
            }
        };
        self.bump(&pass.stats, |s| s.attempted += 1);
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
                    self.bump(&pass.stats, |s| s.set_aside += 1);
                }
                return Vec::new();
            }
        };
        let now = date::now();
        let mut attempt = Attempt::new(self, id, &env, &body, now, job.lock_fd());
        attempt.interrupted = interrupted;
        attempt.run();
        let outcomes = attempt.into_outcomes();
        let more = self.finish(id, job, env, &body, outcomes, now, pass);
        forget_crashes();
        more
    }

    /// Take the job if it is due and nobody else works on it.
    fn claim(&self, id: &QueueId, ours: bool, pass: &Pass<'_>) -> Option<Claimed> {
        let (sel, stats) = (pass.sel, &pass.stats);
        // Most jobs in a periodic pass are waiting for their retry time:
        // tell from the first bytes of the qf, without taking the lock.
        if !sel.force
            && let Some((attempts, last)) =
                crate::queue::spool::peek_schedule(&self.queue.path("qf", id))
            && !self.settings.due(attempts, last, date::now())
        {
            self.bump(stats, |s| s.not_due += 1);
            return None;
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
                return None;
            }
            Err(e) => {
                log::err(
                    Some(id.as_str()),
                    &format!("cannot lock: {}", crate::exit::io_reason(&e)),
                );
                return None;
            }
        };
        let env = match job.envelope() {
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
                return None;
            }
        };
        if !sel.matches(&env) {
            return None;
        }
        if !sel.force
            && !self
                .settings
                .due(env.attempts, env.last_attempt, date::now())
        {
            self.bump(stats, |s| s.not_due += 1);
            return None;
        }
        // A runner killed while on this job may have died after this pass
        // began (its delivery child then held the job's lock until now):
        // sweep its journal before deciding how to attempt the job.
        let swept = crashguard::sweep(&self.queue, std::iter::empty());
        let (crashes, interrupted) = match &pass.crashed {
            Some(known) if !known.contains(id) && !swept.contains(id) => (0, false),
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
            return None;
        }
        Some(Claimed {
            job,
            env,
            crashes,
            interrupted,
        })
    }

    /// Record what the attempt came to (see the module's step 3).
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        id: &QueueId,
        mut job: Job,
        mut env: Envelope,
        body: &[u8],
        outcomes: Outcomes,
        now: i64,
        pass: &Pass<'_>,
    ) -> Vec<QueueId> {
        let stats = &pass.stats;
        let Outcomes {
            kept,
            mut failed,
            delayed_notify,
            splits,
            succeeded,
            last_status,
            replies,
            paced_for,
        } = outcomes;
        let mut more = replies;
        let all_paced = !kept.is_empty() && kept.iter().all(|k| k.paced);
        let nothing_else = failed.is_empty() && succeeded.is_empty() && splits.is_empty();
        for ((sender, list), rcpts) in splits {
            match self.split(&env, body, &sender, list.as_deref(), rcpts) {
                Ok(nid) => more.push(nid),
                Err(e) => log::err(
                    Some(id.as_str()),
                    &format!("cannot split the envelope: {e}"),
                ),
            }
        }
        let age = now - env.created;
        let (kept, expired) = expire(kept, age, self.settings.queue_return);
        for f in &expired {
            log::info(
                Some(id.as_str()),
                &format!(
                    "to={}, delay={}, pri={}, dsn=4.4.7, stat=Timeout: could not deliver for {}",
                    f.rcpt.addr,
                    date::duration(age),
                    env.priority,
                    words(self.settings.queue_return)
                ),
            );
        }
        failed.extend(expired);
        if !failed.is_empty() {
            more.extend(self.bounce(id, &env, body, dsn::Kind::Failure, &failed));
            self.bump(stats, |s| s.bounces += 1);
        }
        if !succeeded.is_empty() {
            more.extend(self.success_notice(id, &env, body, &succeeded));
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
            self.bump(stats, |s| s.finished += 1);
            return more;
        }
        // Only paced recipients left, all of them still pending: the job is
        // as it was; this pass comes back to it when their token is due.
        let untouched = kept.len() == env.recipients.len();
        if all_paced && nothing_else && untouched {
            drop(job);
            self.bump(stats, |s| s.paced += 1);
            match paced_for {
                Some(wait) if pass.comes_back => pass.later(id, wait),
                _ => log::info(
                    Some(id.as_str()),
                    &format!(
                        "{}; left for the next queue run",
                        last_status.as_deref().unwrap_or("Deferred: pacing")
                    ),
                ),
            }
            return more;
        }
        // Still work to do: a delay warning (once), then the rewrite.
        if delay_warning_due(&env, age, self.settings.queue_warn) {
            let warn: Vec<Failed> = kept
                .iter()
                .filter(|k| delayed_notify.contains(&k.rcpt.addr))
                .map(Kept::as_report)
                .collect();
            if !warn.is_empty() {
                more.extend(self.bounce(
                    id,
                    &env,
                    body,
                    dsn::Kind::Delay {
                        warn_after: self.settings.queue_warn,
                        retry_until: env.created + self.settings.queue_return,
                    },
                    &warn,
                ));
            }
            env.set_flag('w', true);
        }
        reschedule(&mut env, kept, now, last_status, !all_paced);
        if all_paced && let Some(wait) = paced_for {
            pass.later(id, wait);
        }
        if let Err(e) = job.rewrite(&env) {
            log::err(
                Some(id.as_str()),
                &format!(
                    "cannot rewrite the control file: {}",
                    crate::exit::io_reason(&e)
                ),
            );
        }
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
        let mut e2 = env.clone();
        e2.sender = sender.to_string();
        e2.recipients = rcpts;
        e2.attempts = 0;
        e2.last_attempt = 0;
        e2.message = None;
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
        enqueue::copy(&self.cfg, e2, body, env.recipients.len())
    }
}

/// Past `queue_return`, every recipient still pending fails with 4.4.7
/// ("could not deliver for 5 days: LAST REASON"); returns those still
/// pending and those that failed.
fn expire(kept: Vec<Kept>, age: i64, queue_return: i64) -> (Vec<Kept>, Vec<Failed>) {
    if kept.is_empty() || age < queue_return {
        return (kept, Vec::new());
    }
    let failed = kept
        .into_iter()
        .map(|k| {
            let why = k
                .rcpt
                .status
                .clone()
                .unwrap_or_else(|| "Deferred".to_string());
            Failed {
                rcpt: k.rcpt,
                actual: None,
                status: "4.4.7".to_string(),
                text: format!(
                    "Message could not be delivered for {}: {why}",
                    words(queue_return)
                ),
                remote_reply: false,
                remote_mta: None,
            }
        })
        .collect();
    (Vec::new(), failed)
}

/// A delay warning goes out once (flag `w`), when the message has waited
/// `queue_warn` (0: never).
fn delay_warning_due(env: &Envelope, age: i64, queue_warn: i64) -> bool {
    queue_warn > 0 && !env.has_flag('w') && age >= queue_warn
}

/// The envelope after an attempt that left `kept` pending: one more
/// attempt, at `now`, a lower priority (sendmail's RetryFactor), and the
/// last status for `mailq`.  When every recipient left was only paced
/// (`counts` false) it was no attempt: the job stays due.
fn reschedule(
    env: &mut Envelope,
    kept: Vec<Kept>,
    now: i64,
    last_status: Option<String>,
    counts: bool,
) {
    env.recipients = kept.into_iter().map(|k| k.rcpt).collect();
    // A queued job is not held (a released one may still carry a reason).
    env.quarantine = None;
    if counts {
        env.attempts += 1;
        env.last_attempt = now;
        env.priority += RETRY_FACTOR;
    }
    env.message = last_status;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(addr: &str, status: Option<&str>) -> Kept {
        Kept {
            rcpt: Recipient {
                flags: "PFD".into(),
                addr: addr.into(),
                status: status.map(str::to_string),
                ..Default::default()
            },
            status: "4.4.1".into(),
            paced: false,
        }
    }

    #[test]
    fn what_waited_past_queue_return_fails_with_its_last_reason() {
        let five_days = 5 * 86400;
        let (k, f) = expire(
            vec![kept("a@x", Some("Deferred: Connection refused"))],
            five_days - 1,
            five_days,
        );
        assert_eq!((k.len(), f.len()), (1, 0));
        let (k, f) = expire(
            vec![
                kept("a@x", Some("Deferred: Connection refused")),
                kept("b@x", None),
            ],
            five_days,
            five_days,
        );
        assert!(k.is_empty());
        assert_eq!(f[0].status, "4.4.7");
        assert_eq!(
            f[0].text,
            "Message could not be delivered for 5 days: Deferred: Connection refused"
        );
        assert_eq!(
            f[1].text,
            "Message could not be delivered for 5 days: Deferred"
        );
    }

    #[test]
    fn a_delay_warning_goes_out_once_and_never_when_off() {
        let mut env = Envelope::default();
        assert!(!delay_warning_due(&env, 3599, 3600));
        assert!(delay_warning_due(&env, 3600, 3600));
        assert!(!delay_warning_due(&env, 3600, 0));
        env.set_flag('w', true);
        assert!(!delay_warning_due(&env, 99_999, 3600));
    }

    #[test]
    fn a_deferred_job_is_rescheduled_with_what_is_left() {
        let mut env = Envelope {
            priority: 1000,
            ..Default::default()
        };
        env.recipients = vec![Recipient::default(); 3];
        reschedule(
            &mut env,
            vec![kept("b@x", Some("Deferred: x"))],
            777,
            Some("Deferred: x".into()),
            true,
        );
        assert_eq!(env.recipients.len(), 1);
        assert_eq!(env.recipients[0].addr, "b@x");
        assert_eq!((env.attempts, env.last_attempt), (1, 777));
        assert_eq!(env.priority, 1000 + RETRY_FACTOR);
        assert_eq!(env.message.as_deref(), Some("Deferred: x"));
        // Only paced: no attempt, the job stays due.
        let mut paced = Envelope {
            recipients: vec![Recipient::default()],
            ..Default::default()
        };
        reschedule(
            &mut paced,
            vec![kept("c@x", None)],
            888,
            Some("Deferred: pacing".into()),
            false,
        );
        assert_eq!(
            (paced.attempts, paced.last_attempt, paced.priority),
            (0, 0, 0)
        );
        assert_eq!(paced.message.as_deref(), Some("Deferred: pacing"));
    }
}
