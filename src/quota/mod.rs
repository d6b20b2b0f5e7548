//! Mailbox quotas: how full a mailbox is, by the measure delivery
//! enforces, and the warnings its owner gets on the way to full.
//!
//! * **The measure** ([`used`]): an mbox's file size (the inbox only:
//!   an mbox's folders live under the owner's home and its file-system
//!   quota), a Maildir's `maildirsize` total (folders included,
//!   Maildir++'s one quota per Maildir) — what [`crate::mailbox`] checks
//!   a delivery against.
//! * **The thresholds**: `quota_warn` in `mailroom.conf` (parsed by
//!   [`crate::config`]), percentages of
//!   the quota (default `80,95`; `0` or empty: never warn).  A mailbox is
//!   at *level* `t` when it holds at least `t`% of its quota ([`level`]).
//! * **The warnings** ([`warning`]): when a delivery finds its mailbox at
//!   a higher level than the one its owner was last warned about, the
//!   owner gets one message from `postmaster`; a mailbox seen back below
//!   a level is warned again when it next reaches it.  What was warned is
//!   remembered per mailbox in [`state`].  Never for a mailbox without a
//!   quota.

pub mod state;
pub mod warning;

use std::io;

use crate::accounts::MailboxPath;

/// Bytes a mailbox holds, as its quota counts them; a mailbox not yet
/// created holds nothing.  Writes nothing (root may be the one asking).
pub fn used(mailbox: &MailboxPath) -> io::Result<u64> {
    let r = match mailbox {
        MailboxPath::Mbox(p) => std::fs::symlink_metadata(p).map(|m| m.len()),
        MailboxPath::Maildir(d) if !d.exists() => Ok(0),
        MailboxPath::Maildir(d) => crate::mailbox::maildir::measured_usage(d),
    };
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        r => r,
    }
}

/// The highest threshold `used` bytes reach of `limit` (0: none, or no
/// limit).
pub fn level(used: u64, limit: u64, thresholds: &[u8]) -> u8 {
    if limit == 0 {
        return 0;
    }
    thresholds
        .iter()
        .copied()
        .filter(|&t| used as u128 * 100 >= t as u128 * limit as u128)
        .max()
        .unwrap_or(0)
}

/// `used` as a whole percentage of `limit`, rounded down (so 99.9% full
/// never reads 100%).
pub fn percent(used: u64, limit: u64) -> u64 {
    if limit == 0 {
        return 0;
    }
    (used as u128 * 100 / limit as u128) as u64
}

/// Usage against a quota for people: `12.3M / 200M (6%)`, or `12.3M`
/// when there is no quota.
pub fn usage_text(used: u64, limit: u64) -> String {
    if limit == 0 {
        return human(used);
    }
    format!(
        "{} / {} ({}%)",
        human(used),
        human(limit),
        percent(used, limit)
    )
}

/// Bytes for people: `512`, `1.5K`, `200M`, `2.0G`.
pub fn human(n: u64) -> String {
    const K: u64 = 1024;
    let (unit, div) = if n >= K * K * K {
        ("G", K * K * K)
    } else if n >= K * K {
        ("M", K * K)
    } else if n >= K {
        ("K", K)
    } else {
        return n.to_string();
    };
    if n.is_multiple_of(div) {
        format!("{}{unit}", n / div)
    } else {
        format!("{:.1}{unit}", n as f64 / div as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_reached_at_the_threshold_exactly() {
        let t = [80, 95];
        assert_eq!(level(799, 1000, &t), 0);
        assert_eq!(level(800, 1000, &t), 80);
        assert_eq!(level(949, 1000, &t), 80);
        assert_eq!(level(950, 1000, &t), 95);
        assert_eq!(level(5000, 1000, &t), 95);
        assert_eq!(level(5000, 0, &t), 0, "no quota, no level");
        assert_eq!(level(u64::MAX, u64::MAX, &t), 95, "no overflow");
        assert_eq!(level(900, 1000, &[]), 0);
    }

    #[test]
    fn usage_reads_for_people() {
        assert_eq!(
            usage_text(12_900_000, 200 * 1024 * 1024),
            "12.3M / 200M (6%)"
        );
        assert_eq!(usage_text(999, 1000), "999 / 1000 (99%)");
        assert_eq!(usage_text(1536, 0), "1.5K");
        assert_eq!(human(512), "512");
        assert_eq!(human(200 * 1024 * 1024), "200M");
        assert_eq!(human(1536), "1.5K");
    }
}
