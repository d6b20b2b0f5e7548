//! Queue ids in sendmail 8's form.
//!
//! `YMDhmsSSPPPPPP`: six characters of the UTC submission time in base 60
//! (year % 60 counted from 1900, month 0–11, day, hour, minute, second),
//! two characters of a per-process sequence number (0–3599, starting at a
//! random offset), then the process id with at least six digits.  Example:
//! `6AL5Krcl005170` = 2026, November, 21st, 05:20:53, sequence `cl`,
//! pid 5170.  The alphabet is `0-9 A-Z a-x`.
//!
//! Uniqueness does not rest on the clock: a new id is reserved by creating
//! its `tf` file with `O_EXCL` and checking that no `qf`/`df` of that id
//! exists (see [`super::spool`]); on a clash the next sequence number is
//! tried.

use std::fmt;

const ALPHABET: &[u8; 60] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwx";

/// A validated queue id (the part of a queue file name after its two-letter
/// type prefix).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(String);

impl QueueId {
    /// The id for time `t` (seconds since the epoch), sequence number `seq`
    /// (taken modulo 3600) and process id `pid`.
    pub fn new(t: i64, seq: u32, pid: u32) -> QueueId {
        let tm = crate::date::utc(t);
        let seq = seq % 3600;
        let chars = [
            ((tm.year - 1900).rem_euclid(60)) as usize,
            tm.month as usize,
            tm.day as usize,
            tm.hour as usize,
            tm.min as usize,
            tm.sec as usize % 60,
            (seq / 60) as usize,
            (seq % 60) as usize,
        ];
        let mut s: String = chars.iter().map(|&i| ALPHABET[i] as char).collect();
        s.push_str(&format!("{pid:06}"));
        QueueId(s)
    }

    /// Accept an id read from a file name or typed by an admin.  Only ASCII
    /// letters and digits are allowed, so an id can never form a path.
    pub fn parse(s: &str) -> Option<QueueId> {
        if s.len() < 2 || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        Some(QueueId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hands out ids for one process: the sequence number starts at a random
/// offset, like sendmail's, so that two processes with a recycled pid in the
/// same second are unlikely to meet.
pub struct IdGenerator {
    seq: u32,
    pid: u32,
}

impl IdGenerator {
    pub fn new() -> IdGenerator {
        IdGenerator {
            seq: random_u32() % 3600,
            pid: std::process::id(),
        }
    }

    /// The next id for time `t`.
    pub fn next(&mut self, t: i64) -> QueueId {
        let id = QueueId::new(t, self.seq, self.pid);
        self.seq = (self.seq + 1) % 3600;
        id
    }
}

impl Default for IdGenerator {
    fn default() -> Self {
        IdGenerator::new()
    }
}

/// A few random bytes from the kernel (getrandom), falling back to the
/// clock's nanoseconds.
pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: b is a valid 4-byte buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 4, libc::GRND_NONBLOCK) };
    if n == 4 {
        u32::from_ne_bytes(b)
    } else {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_sendmails_example() {
        // 2026-11-21 05:20:53 UTC, sequence "cl", pid 5170.
        let seq = 38 * 60 + 47; // 'c' = 38, 'l' = 47
        assert_eq!(
            QueueId::new(1795238453, seq, 5170).as_str(),
            "6AL5Krcl005170"
        );
    }

    #[test]
    fn parse_refuses_paths() {
        assert!(QueueId::parse("6AL5Krcl005170").is_some());
        assert!(QueueId::parse("../etc").is_none());
        assert!(QueueId::parse("a/b").is_none());
        assert!(QueueId::parse("").is_none());
    }

    #[test]
    fn generator_advances() {
        let mut g = IdGenerator::new();
        let a = g.next(1795238453);
        let b = g.next(1795238453);
        assert_ne!(a, b);
    }
}
