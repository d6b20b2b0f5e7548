//! The warning to a mailbox's owner when a delivery takes the mailbox past
//! a threshold of its quota, and how it stays one per crossing.
//!
//! ## Around each mailbox copy (`crate::deliver`, as root)
//!
//! 1. [`before`] (mailboxes with a quota, warnings on): read the mailbox's
//!    record ([`super::state`]), *then* its size.  A delivery that is one
//!    of the record's pending warnings is **exempt**: no quota for it.
//!    Any other gets the quota plus the record's allowance (the warnings'
//!    own bytes: [`Before::limit`]).
//! 2. The copy is written as usual.
//! 3. [`Before::after`], once the copy is safe: the size now, and, under
//!    the records' lock, the record again.  An exempt warning moves from
//!    pending to the allowance.  The level the owner knows of comes down
//!    to what the mailbox was seen at — now, or before this copy if the
//!    record was not rewritten in between (see `generation` in
//!    [`super::state`]).  If the mailbox is now at a higher level than
//!    that, one warning is queued (for the highest level reached: a
//!    message that jumps from 50% to 97% sends one warning, not two) and
//!    the record is rewritten.
//!
//! Sizes are counted without the allowance, so a warning never takes a
//! mailbox past a threshold itself, nor makes real mail bounce sooner.
//! The fast way out: a record at level 0 and a mailbox below every
//! threshold need no lock and no write.
//!
//! ## The one door
//!
//! A warning is a message made by mailroom, queued like a bounce through
//! [`crate::queue::enqueue::notification`]: null envelope sender (nothing
//! can bounce back to loop), to `\LOGIN` (the mailbox itself: no alias, no
//! `.forward` takes it elsewhere; the owner's filters still apply), and
//! delivered by the next queue run like any other message.
//!
//! ## A kill at any instant
//!
//! The warning is queued (durably: the queue's own guarantee) *before*
//! the record says it was sent.  Killed in between, the record still has
//! the old level, and the next delivery sends the warning again: a
//! duplicate at worst, never a lost warning — the owner who misses the
//! only warning finds out from bounces, which is what warnings are for.
//! (A delivery killed after writing its copy but before this step is
//! retried by the queue; the retry finds its copy, writes nothing, and
//! still comes here.)

use crate::accounts::Account;
use crate::config::Config;
use crate::queue::QueueId;
use crate::queue::enqueue;

use super::state::{self, State, Step};
use super::{human, level, percent, used};

/// What a delivery read before writing its copy.
#[derive(Debug, Clone)]
pub struct Before {
    /// The record's file name.
    name: String,
    /// The record as read.
    seen: State,
    /// The mailbox's size, read after the record (None: unreadable).
    size_before: Option<u64>,
    /// This delivery is one of the mailbox's pending warnings.
    exempt: bool,
    quota: u64,
}

/// Read before a mailbox copy of the message queued as `queue_id`: None
/// when the mailbox has no quota or warnings are off (`quota_warn = 0`).
pub fn before(cfg: &Config, account: &Account, queue_id: Option<&str>) -> Option<Before> {
    if account.quota == 0 || cfg.quota_warn.is_empty() {
        return None;
    }
    let name = state::name(account.mailbox.path());
    // The record first, then the size: see `generation` in the format.
    let seen = state::read(&state::dir(cfg), &name);
    let size_before = used(&account.mailbox).ok();
    let exempt = queue_id.is_some_and(|id| seen.pending.iter().any(|p| p == id));
    Some(Before {
        name,
        seen,
        size_before,
        exempt,
        quota: account.quota,
    })
}

/// Where the test stops [`Before::update`], as a kill there would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Before anything: the copy is written, nothing else.
    Start,
    /// The warning queued, the record not yet rewritten.
    Queued,
    /// In the record's rewrite.
    Record(Step),
}

impl Before {
    /// The limit this copy is held to: none for a pending warning, else
    /// the quota plus the warnings' allowance.
    pub fn limit(&self) -> u64 {
        if self.exempt {
            0
        } else {
            self.quota.saturating_add(self.seen.allowance)
        }
    }

    /// Whether this copy is one of the mailbox's pending warnings.
    pub fn exempt(&self) -> bool {
        self.exempt
    }

    /// After the copy of `queue_id` for `address` (the recipient: the
    /// address the owner knows the mailbox by) is safe: `counted` is its
    /// size when it went where the quota counts (None: an mbox folder, or
    /// nowhere).  Returns the warning queued, if any.
    pub fn after(
        &self,
        cfg: &Config,
        account: &Account,
        address: &str,
        counted: Option<u64>,
        queue_id: Option<&str>,
    ) -> Option<QueueId> {
        self.update(cfg, account, address, counted, queue_id, None)
    }

    fn update(
        &self,
        cfg: &Config,
        account: &Account,
        address: &str,
        counted: Option<u64>,
        queue_id: Option<&str>,
        stop: Option<Stop>,
    ) -> Option<QueueId> {
        if stop == Some(Stop::Start) {
            return None;
        }
        let thresholds = &cfg.quota_warn;
        let size_now = match used(&account.mailbox) {
            Ok(n) => n,
            Err(e) => {
                crate::log::warning(
                    queue_id,
                    &format!(
                        "quota warnings: {}: {}",
                        account.mailbox.path().display(),
                        crate::exit::io_reason(&e)
                    ),
                );
                return None;
            }
        };
        let unwarned =
            |s: &State, size: u64| level(size.saturating_sub(s.allowance), self.quota, thresholds);
        if !self.exempt && self.seen.level == 0 && unwarned(&self.seen, size_now) == 0 {
            return None;
        }
        let dir = state::dir(cfg);
        let fail = |e: std::io::Error| {
            crate::log::warning(
                queue_id,
                &format!(
                    "quota warnings: {}: {}",
                    dir.display(),
                    crate::exit::io_reason(&e)
                ),
            );
        };
        let _lock = match state::lock(&dir) {
            Ok(l) => l,
            Err(e) => {
                fail(e);
                return None;
            }
        };
        let mut st = state::read(&dir, &self.name);
        let rewritten = st.generation != self.seen.generation;
        let mut changed = false;
        if let Some(id) = queue_id.filter(|_| self.exempt)
            && let Some(i) = st.pending.iter().position(|p| p == id)
        {
            st.pending.remove(i);
            st.allowance = st.allowance.saturating_add(counted.unwrap_or(0));
            changed = true;
        }
        // Fresh under the lock: deliveries that finished meanwhile count.
        let size_now = used(&account.mailbox).unwrap_or(size_now);
        let now = unwarned(&st, size_now);
        let mut known = st.level.min(now);
        if !rewritten && let Some(b) = self.size_before {
            // As it was then: before this copy joined the allowance.
            known = known.min(unwarned(&self.seen, b));
        }
        let mut queued = None;
        // Not queued (logged): the level stays below, and the next
        // delivery tries again.
        if now > known
            && let Some(id) = self.queue(
                cfg,
                account,
                address,
                size_now.saturating_sub(st.allowance),
                now,
                queue_id,
            )
        {
            st.pending.push(id.to_string());
            queued = Some(id);
            known = now;
        }
        if stop == Some(Stop::Queued) {
            return queued;
        }
        if known != st.level {
            if known == 0 {
                // Back below every threshold: warnings kept from now on
                // are mail like any other.
                st.allowance = 0;
            }
            st.level = known;
            changed = true;
        }
        if changed {
            st.generation += 1;
            let step = match stop {
                Some(Stop::Record(s)) => Some(s),
                _ => None,
            };
            if let Err(e) = state::write(&dir, &self.name, &st, step) {
                fail(e);
            }
        }
        queued
    }

    /// Queue the warning to the owner of `address` that the mailbox holds
    /// `size` bytes, at level `lvl`.
    fn queue(
        &self,
        cfg: &Config,
        account: &Account,
        address: &str,
        size: u64,
        lvl: u8,
        queue_id: Option<&str>,
    ) -> Option<QueueId> {
        let msg = build(cfg, address, size, self.quota, lvl, crate::date::now());
        let to = format!("\\{}", account.login);
        match enqueue::notification(cfg, &to, &msg, "MAILER-DAEMON@localhost") {
            Ok(id) => {
                crate::log::info(
                    queue_id,
                    &format!(
                        "{id}: quota warning to {address}: {}% full ({} of {})",
                        percent(size, self.quota),
                        human(size),
                        human(self.quota)
                    ),
                );
                Some(id)
            }
            Err(f) => {
                crate::log::err(
                    queue_id,
                    &format!("cannot queue the quota warning to {address}: {f}"),
                );
                None
            }
        }
    }
}

/// The warning (LF line ends): `address`'s mailbox holds `size` bytes of
/// `quota`, past threshold `lvl`.
pub fn build(cfg: &Config, address: &str, size: u64, quota: u64, lvl: u8, now: i64) -> Vec<u8> {
    let host = &cfg.hostname;
    let pct = percent(size, quota);
    let mut m = String::new();
    m.push_str(&format!("Date: {}\n", crate::date::rfc5322(now)));
    m.push_str(&format!("From: Mail System <postmaster@{host}>\n"));
    m.push_str(&format!("To: <{address}>\n"));
    m.push_str(&format!("Subject: Your mailbox is {pct}% full\n"));
    m.push_str(&format!(
        "Message-Id: <{}.{:08x}.quota{lvl}@{host}>\n",
        crate::date::message_id_stamp(now),
        crate::queue::id::random_u32()
    ));
    m.push_str("Auto-Submitted: auto-generated\n");
    m.push_str("X-Auto-Response-Suppress: All\n");
    m.push_str("MIME-Version: 1.0\n");
    m.push_str("Content-Type: text/plain; charset=UTF-8\n");
    m.push_str("Content-Transfer-Encoding: 8bit\n\n");
    m.push_str(&format!(
        "Your mailbox {address} is {pct}% full: it holds {} of its {}.\n\n",
        human(size),
        human(quota)
    ));
    let wait = crate::runner::words(cfg.over_quota_defer as i64);
    m.push_str(&format!(
        "When it is full, new mail for you is held for up to {wait} and then\n\
         returned to its senders.\n\n"
    ));
    m.push_str(
        "To make room, delete messages you no longer need (and empty the\n\
         Trash or Deleted folder if your mail program keeps one on the\n\
         server), or ask your mail administrator for a larger mailbox.\n\n",
    );
    let next = cfg.quota_warn.iter().find(|&&t| t > lvl);
    m.push_str(&format!(
        "This message was sent because the mailbox passed {lvl}% of its size{}\n",
        match next {
            Some(t) => format!(";\nanother one is sent if it passes {t}%."),
            None => ".".to_string(),
        }
    ));
    m.push_str(&format!("\n-- \nThe mail system at {host}\n"));
    m.into_bytes()
}

#[cfg(test)]
mod tests;
