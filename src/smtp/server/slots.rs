//! The per-address connection limit, for a server that inetd starts once
//! per connection and that therefore cannot count its siblings in memory.
//!
//! One file, `/var/spool/mailroom/smtp-connections` (root's, empty), and
//! byte-range locks on it (`F_OFD_SETLK`, which belong to the open file and
//! vanish with the last process holding it — a killed server frees its
//! slot at once).  An address owns `limit` one-byte slots at an offset
//! derived from a hash of the address; a connection takes the first free
//! one.  No free slot: the address already has `limit` connections (or
//! shares its hash with one that has — rare, and only ever stricter).
//! Nothing is ever written to the file, so it never grows.
//!
//! inetd's own limits work as well (openbsd-inetd: `nowait.N` per minute;
//! xinetd: `per_source`; systemd: `MaxConnectionsPerSource=`); see README.

use std::fs::{File, OpenOptions};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use crate::config::Config;

/// Highest limit (keeps offsets apart).
const MAX_LIMIT: u64 = 10_000;

/// The outcome of asking for a slot.
pub enum Slot {
    /// Held while this file stays open (in this process or a child).
    Held(File),
    /// The address has `limit` connections already.
    Full,
    /// No guard here (no limit, or the file cannot be opened).
    Unguarded,
}

impl Slot {
    /// The open file holding the slot, if one is held.
    pub fn into_file(self) -> Option<File> {
        match self {
            Slot::Held(f) => Some(f),
            _ => None,
        }
    }
}

/// Take a connection slot for `ip`.
pub fn acquire(cfg: &Config, ip: &IpAddr, limit: u32) -> Slot {
    if limit == 0 {
        return Slot::Unguarded;
    }
    let path = crate::state::dir(cfg).join(crate::state::SMTP_CONNECTIONS);
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(f) => f,
        Err(_) => return Slot::Unguarded,
    };
    let limit = (limit as u64).min(MAX_LIMIT);
    // The same hash in every process (SipHash with fixed keys).
    let mut h = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(ip, &mut h);
    let base = (std::hash::Hasher::finish(&h) % 65_536) * (MAX_LIMIT + 1);
    for n in 0..limit {
        if lock_byte(file.as_raw_fd(), base + n) {
            return Slot::Held(file);
        }
    }
    Slot::Full
}

/// Try to lock one byte; false when another holds it.
fn lock_byte(fd: i32, offset: u64) -> bool {
    // SAFETY: an all-zero flock is valid; l_pid must be 0 for OFD locks.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = offset as libc::off_t;
    fl.l_len = 1;
    loop {
        // SAFETY: valid descriptor and struct.
        if unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) } == 0 {
            return true;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_limit_slots() {
        let root = std::env::temp_dir().join(format!("mr-slots-{}", std::process::id()));
        std::fs::create_dir_all(root.join("var/spool/mailroom")).unwrap();
        let cfg = Config::defaults(crate::config::Paths::under(&root));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let a = acquire(&cfg, &ip, 2);
        let b = acquire(&cfg, &ip, 2);
        assert!(matches!(a, Slot::Held(_)) && matches!(b, Slot::Held(_)));
        assert!(matches!(acquire(&cfg, &ip, 2), Slot::Full));
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(matches!(acquire(&cfg, &other, 2), Slot::Held(_)));
        drop(a);
        assert!(matches!(acquire(&cfg, &ip, 2), Slot::Held(_)));
        let _ = std::fs::remove_dir_all(root);
    }
}
