//! The sending counters: how much each sender handed in over the last
//! hour and the last day, in one file shared by every submission, with no
//! daemon.
//!
//! ## The file, `/var/spool/mailroom/limits/counters`
//!
//! Fixed size, little-endian, `root:mqueue` mode 0660 in a directory of
//! the same owner and mode 2770: the set-group-id `sendmail` and the SMTP
//! server's unprivileged process (group `mqueue`) update it; nobody else
//! can read or write it.
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0 | 8 | magic `MRLIMIT1` |
//! | 8 | 4 | number of records ([`RECORDS`]) |
//! | 12 | 4 | record size ([`RECORD`]) |
//! | 64 | `RECORD` × records | an open-addressing table of records, probed linearly from the key's FNV-1a hash |
//!
//! A record ([`Record`]):
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0 | 64 | the key (`user:www-data`, `login:info@shop.example`, `domain:shop.example`, `connect:192.0.2.7`), NUL-padded; all NUL = a free record |
//! | 64 | 8 | the five-minute slot (seconds / 300) of the newest minute bucket |
//! | 72 | 96 | 12 five-minute buckets (messages u32, recipients u32), newest first |
//! | 168 | 8 | the hour (seconds / 3600) of the newest hour bucket |
//! | 176 | 192 | 24 hour buckets (messages u32, recipients u32), newest first |
//! | 368 | 8 | when the last alert about this key was sent (seconds) |
//! | 376 | 4 | CRC-32 of bytes 0..376 |
//!
//! ## Windows
//!
//! Bucketed: "the last hour" is the sum of the twelve five-minute buckets
//! (so it lags the true sliding hour by at most five minutes), "the last
//! day" the sum of the 24 hour buckets.  Buckets that have passed are
//! zeroed as the record is next touched.
//!
//! ## Locking and crashes
//!
//! Every update holds an exclusive `flock` of the file for the few
//! microseconds of read–decide–write, so the check and the count are one
//! step: concurrent submitters never get past a limit together.  A
//! process killed while it holds the lock releases it with its death: no
//! one is blocked.  A record is written with one `pwrite` inside one page,
//! which a kill cannot tear; a record torn anyway (a power cut) fails its
//! checksum and starts from zero, with a log line — at worst one sender
//! gets a fresh allowance once, never a blocked queue.  A file with a bad
//! header or size (or none) is made anew, with a log line.  The counters
//! are not `fsync`ed: they measure a rate, they hold no mail.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::log;

/// Records in the file: a small host has far fewer active senders a day.
pub const RECORDS: usize = 4096;
/// Bytes per record (a power of two, so no record crosses a page).
pub const RECORD: usize = 512;
const HEADER: usize = 64;
const MAGIC: &[u8; 8] = b"MRLIMIT1";
const KEY: usize = 64;
const MINUTE_BUCKETS: usize = 12;
const HOUR_BUCKETS: usize = 24;
const BUCKET_SECS: i64 = 300;
const CHECKED: usize = 376;
/// The key of a record that replaced a damaged one (no sender's key
/// starts with `~`).
const DAMAGED: &str = "~damaged";

/// Messages and recipients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    pub messages: u64,
    pub recipients: u64,
}

/// One sender's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    slot: i64,
    minutes: [(u32, u32); MINUTE_BUCKETS],
    hour: i64,
    hours: [(u32, u32); HOUR_BUCKETS],
    /// When the last alert about this key went out.
    pub last_alert: i64,
}

impl Record {
    fn new(key: &str) -> Record {
        Record {
            key: key.to_string(),
            slot: 0,
            minutes: [(0, 0); MINUTE_BUCKETS],
            hour: 0,
            hours: [(0, 0); HOUR_BUCKETS],
            last_alert: 0,
        }
    }

    /// Move the windows to `now`: buckets that have passed are dropped.
    fn advance(&mut self, now: i64) {
        let slot = now.div_euclid(BUCKET_SECS);
        let shift = (slot - self.slot).clamp(0, MINUTE_BUCKETS as i64) as usize;
        if shift > 0 {
            self.minutes.rotate_right(shift);
            self.minutes[..shift].fill((0, 0));
        }
        if slot > self.slot {
            self.slot = slot;
        }
        let hour = now.div_euclid(3600);
        let shift = (hour - self.hour).clamp(0, HOUR_BUCKETS as i64) as usize;
        if shift > 0 {
            self.hours.rotate_right(shift);
            self.hours[..shift].fill((0, 0));
        }
        if hour > self.hour {
            self.hour = hour;
        }
    }

    /// The last hour's and the last day's counts (after `Record::advance`).
    pub fn totals(&self) -> (Count, Count) {
        let sum = |b: &[(u32, u32)]| Count {
            messages: b.iter().map(|x| x.0 as u64).sum(),
            recipients: b.iter().map(|x| x.1 as u64).sum(),
        };
        (sum(&self.minutes), sum(&self.hours))
    }

    /// Count one message to `recipients` recipients in the newest buckets.
    fn add(&mut self, recipients: u32) {
        for b in [&mut self.minutes[0], &mut self.hours[0]] {
            b.0 = b.0.saturating_add(1);
            b.1 = b.1.saturating_add(recipients);
        }
    }

    /// Nothing counted in the last day: the record may be reused.
    fn is_idle(&self, now: i64) -> bool {
        let mut r = self.clone();
        r.advance(now);
        let (_, day) = r.totals();
        day.messages == 0 && r.last_alert + 3600 <= now
    }

    fn encode(&self) -> [u8; RECORD] {
        let mut b = [0u8; RECORD];
        let k = self.key.as_bytes();
        b[..k.len().min(KEY)].copy_from_slice(&k[..k.len().min(KEY)]);
        let mut at = KEY;
        let mut put = |v: &[u8]| {
            b[at..at + v.len()].copy_from_slice(v);
            at += v.len();
        };
        put(&self.slot.to_le_bytes());
        for (m, r) in self.minutes {
            put(&m.to_le_bytes());
            put(&r.to_le_bytes());
        }
        put(&self.hour.to_le_bytes());
        for (m, r) in self.hours {
            put(&m.to_le_bytes());
            put(&r.to_le_bytes());
        }
        put(&self.last_alert.to_le_bytes());
        let crc = crc32(&b[..CHECKED]);
        b[CHECKED..CHECKED + 4].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// `None` for a free record; `Err` for one that fails its checksum.
    fn decode(b: &[u8; RECORD]) -> Result<Option<Record>, ()> {
        if b.iter().all(|&x| x == 0) {
            return Ok(None);
        }
        let crc = u32::from_le_bytes(b[CHECKED..CHECKED + 4].try_into().unwrap_or_default());
        if crc != crc32(&b[..CHECKED]) {
            return Err(());
        }
        let key_len = b[..KEY].iter().position(|&x| x == 0).unwrap_or(KEY);
        let key = std::str::from_utf8(&b[..key_len])
            .map_err(|_| ())?
            .to_string();
        let mut at = KEY;
        let u32_at = |at: &mut usize| {
            let v = u32::from_le_bytes(b[*at..*at + 4].try_into().unwrap_or_default());
            *at += 4;
            v
        };
        let i64_at = |at: &mut usize| {
            let v = i64::from_le_bytes(b[*at..*at + 8].try_into().unwrap_or_default());
            *at += 8;
            v
        };
        let mut r = Record::new(&key);
        r.slot = i64_at(&mut at);
        for m in r.minutes.iter_mut() {
            *m = (u32_at(&mut at), u32_at(&mut at));
        }
        r.hour = i64_at(&mut at);
        for h in r.hours.iter_mut() {
            *h = (u32_at(&mut at), u32_at(&mut at));
        }
        r.last_alert = i64_at(&mut at);
        Ok(Some(r))
    }
}

/// CRC-32 (IEEE), bitwise: a few hundred bytes per update.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// FNV-1a, to pick a key's first record.
fn hash(key: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as usize
}

/// The counters file, locked for one update.
pub struct Counters {
    file: File,
    path: PathBuf,
}

impl Counters {
    /// Open (creating when missing) and lock the counters in `dir`.
    pub fn lock(dir: &Path) -> io::Result<Counters> {
        // `make install` makes it (root:mqueue 2770); a private root may not
        // have it yet.
        match std::fs::DirBuilder::new()
            .mode(0o2770)
            .recursive(true)
            .create(dir)
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let path = dir.join("counters");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o660)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        // SAFETY: plain flock on a valid descriptor; released on close
        // (or with the process, however it dies).
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let c = Counters { file, path };
        c.check_header()?;
        Ok(c)
    }

    /// Make the file anew when its header or size is not ours.
    fn check_header(&self) -> io::Result<()> {
        let size = (HEADER + RECORDS * RECORD) as u64;
        let mut head = [0u8; 16];
        let len = self.file.metadata()?.len();
        let ok = len == size
            && self.file.read_exact_at(&mut head, 0).is_ok()
            && &head[..8] == MAGIC
            && u32::from_le_bytes(head[8..12].try_into().unwrap_or_default()) == RECORDS as u32
            && u32::from_le_bytes(head[12..16].try_into().unwrap_or_default()) == RECORD as u32;
        if ok {
            return Ok(());
        }
        if len != 0 {
            log::warning(
                None,
                &format!(
                    "{}: not a counters file of this version; counting starts anew",
                    self.path.display()
                ),
            );
        }
        self.file.set_len(0)?;
        self.file.set_len(size)?;
        let mut h = [0u8; HEADER];
        h[..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&(RECORDS as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(RECORD as u32).to_le_bytes());
        self.file.write_all_at(&h, 0)
    }

    fn read_at(&self, i: usize) -> io::Result<[u8; RECORD]> {
        let mut b = [0u8; RECORD];
        self.file
            .read_exact_at(&mut b, (HEADER + i * RECORD) as u64)?;
        Ok(b)
    }

    fn write_at(&self, i: usize, r: &Record) -> io::Result<()> {
        self.file
            .write_all_at(&r.encode(), (HEADER + i * RECORD) as u64)
    }

    /// The record of `key` (where it is, and it advanced to `now`), or a
    /// place for a new one: its own slot, else the first free or idle one
    /// on its probe path.  `None` when the table is full of active keys.
    fn find(&self, key: &str, now: i64) -> io::Result<Option<(usize, Record)>> {
        let start = hash(key) % RECORDS;
        let mut spare = None;
        for n in 0..RECORDS {
            let i = (start + n) % RECORDS;
            match Record::decode(&self.read_at(i)?) {
                Ok(Some(mut r)) if r.key == key => {
                    r.advance(now);
                    return Ok(Some((i, r)));
                }
                Ok(Some(r)) => {
                    if spare.is_none() && r.is_idle(now) {
                        spare = Some(i);
                    }
                }
                Ok(None) => {
                    // The end of the probe path: the key is not here.
                    let i = spare.unwrap_or(i);
                    let mut r = Record::new(key);
                    r.advance(now);
                    return Ok(Some((i, r)));
                }
                Err(()) => {
                    log::warning(
                        None,
                        &format!(
                            "{}: record {i} damaged (a crash or power cut while it was written); it starts anew",
                            self.path.display()
                        ),
                    );
                    // It may have been anyone's: an idle placeholder takes
                    // its place (not a free record, which would end the
                    // probe path of the keys stored beyond it).
                    self.write_at(i, &Record::new(DAMAGED))?;
                    if spare.is_none() {
                        spare = Some(i);
                    }
                }
            }
        }
        Ok(spare.map(|i| {
            let mut r = Record::new(key);
            r.advance(now);
            (i, r)
        }))
    }

    /// The counts of `key` now (nothing counted).
    pub fn peek(&self, key: &str, now: i64) -> io::Result<Record> {
        Ok(self
            .find(key, now)?
            .map(|(_, r)| r)
            .unwrap_or_else(|| Record::new(key)))
    }

    /// Count one message to `recipients` recipients against `key`;
    /// returns its record after counting.
    pub fn count(&self, key: &str, recipients: u32, now: i64) -> io::Result<Record> {
        let Some((i, mut r)) = self.find(key, now)? else {
            // Every record belongs to a sender active today: count
            // nothing rather than evict one.
            return Ok(Record::new(key));
        };
        r.add(recipients);
        self.write_at(i, &r)?;
        Ok(r)
    }

    /// Record that an alert about `key` went out at `now`.
    pub fn alerted(&self, key: &str, now: i64) -> io::Result<()> {
        if let Some((i, mut r)) = self.find(key, now)? {
            r.last_alert = now;
            self.write_at(i, &r)?;
        }
        Ok(())
    }

    /// Every active record (for `mailroom queue summary`).
    pub fn all(&self, now: i64) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        for i in 0..RECORDS {
            if let Ok(Some(mut r)) = Record::decode(&self.read_at(i)?)
                && r.key != DAMAGED
            {
                r.advance(now);
                out.push(r);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mr-counters-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_record_round_trips_and_a_torn_one_is_detected() {
        let mut r = Record::new("user:www-data");
        r.advance(1_000_000);
        r.add(3);
        r.last_alert = 77;
        let b = r.encode();
        assert_eq!(Record::decode(&b), Ok(Some(r.clone())));
        let mut torn = b;
        torn[80] ^= 1;
        assert_eq!(Record::decode(&torn), Err(()));
        assert_eq!(Record::decode(&[0u8; RECORD]), Ok(None));
    }

    #[test]
    fn the_hour_and_the_day_move_with_time() {
        let t0: i64 = 1_800_000_000; // a whole hour
        let mut r = Record::new("k");
        r.advance(t0);
        r.add(2);
        r.advance(t0 + 1800);
        r.add(5);
        let (h, d) = r.totals();
        assert_eq!(
            (h.messages, h.recipients, d.messages, d.recipients),
            (2, 7, 2, 7)
        );
        // 55 minutes later the first message has left the hour, not the day.
        r.advance(t0 + 3600 + 300);
        let (h, d) = r.totals();
        assert_eq!((h.messages, d.messages), (1, 2));
        // A day later nothing is left.
        r.advance(t0 + 86400 + 3600 + 300);
        assert_eq!(r.totals(), (Count::default(), Count::default()));
        assert!(r.is_idle(t0 + 86400 + 7200));
    }

    #[test]
    fn counts_persist_and_a_damaged_file_is_made_anew() {
        let d = dir("file");
        let now = 1_800_000_000;
        {
            let c = Counters::lock(&d).unwrap();
            c.count("user:a", 1, now).unwrap();
            let r = c.count("user:a", 4, now).unwrap();
            assert_eq!(r.totals().0.messages, 2);
            c.count("user:b", 1, now).unwrap();
        }
        let c = Counters::lock(&d).unwrap();
        assert_eq!(c.peek("user:a", now).unwrap().totals().0.recipients, 5);
        assert_eq!(c.all(now).unwrap().len(), 2);
        drop(c);
        std::fs::write(d.join("counters"), b"garbage").unwrap();
        let c = Counters::lock(&d).unwrap();
        assert_eq!(c.peek("user:a", now).unwrap().totals().0.messages, 0);
        assert_eq!(
            std::fs::metadata(d.join("counters")).unwrap().len(),
            (HEADER + RECORDS * RECORD) as u64
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_writer_killed_while_it_holds_the_lock_blocks_no_one() {
        let d = dir("killed");
        let now = 1_800_000_000;
        Counters::lock(&d).unwrap().count("user:a", 1, now).unwrap();
        // A child takes the lock, tears user:a's record half-way, and dies
        // without unlocking.
        // SAFETY: the child only calls async-signal-safe functions and _exits.
        match unsafe { libc::fork() } {
            0 => {
                let c = Counters::lock(&d).unwrap();
                let i = hash("user:a") % RECORDS;
                let _ = c
                    .file
                    .write_all_at(&[0xff; 40], (HEADER + i * RECORD + 70) as u64);
                unsafe { libc::_exit(0) };
            }
            pid => {
                let mut st = 0;
                unsafe { libc::waitpid(pid, &mut st, 0) };
            }
        }
        let t = std::time::Instant::now();
        let c = Counters::lock(&d).unwrap();
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        // The torn record starts anew; the others keep their counts.
        assert_eq!(c.peek("user:a", now).unwrap().totals().0.messages, 0);
        assert_eq!(c.count("user:a", 1, now).unwrap().totals().0.messages, 1);
        drop(c);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn keys_that_collide_probe_on_and_idle_records_are_reused() {
        let d = dir("probe");
        let c = Counters::lock(&d).unwrap();
        let now = 1_800_000_000;
        for i in 0..200 {
            c.count(&format!("client:192.0.2.{i}"), 1, now).unwrap();
        }
        for i in 0..200 {
            let r = c.peek(&format!("client:192.0.2.{i}"), now).unwrap();
            assert_eq!(r.totals().1.messages, 1, "{i}");
        }
        // Two days later every record is idle: a new key may take one.
        let later = now + 2 * 86400;
        c.count("user:new", 1, later).unwrap();
        assert_eq!(c.peek("user:new", later).unwrap().totals().0.messages, 1);
        drop(c);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
