//! A Maildir as a POP3 maildrop.
//!
//! * The session holds `flock(LOCK_EX)` on the Maildir directory: a second
//!   POP3 session gets `[IN-USE]`.  Delivery needs no lock.
//! * Messages are the files of `new/` and `cur/` (names starting with `.`
//!   are not messages), in delivery order: by the seconds at the start of
//!   the name, then by name.
//! * Sizes come from the `,W=` field delivery puts in the name (the size
//!   with CRLF line ends); a file without one is read once to count.
//! * The UIDL is the name's unique part, before any `,` or `:` — it does
//!   not change when a reader moves the file to `cur/` or sets flags
//!   (qmail-pop3d's and Dovecot's `%f` choice); a part longer than 70
//!   characters, or with characters RFC 1939 does not allow, is replaced
//!   by its MD5 in hex.
//! * At `QUIT`, deleted files are unlinked (one already gone is fine), the
//!   Maildir++ `maildirsize` is told, and messages retrieved from `new/`
//!   move to `cur/` with the seen flag (`:2,S`), as Dovecot does.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use md5::{Digest, Md5};

use super::{
    Committed, Encoder, Listed, OpenError, Pieces, READ_BUF, Region, Storage, Uidl, send_region,
};
use crate::wire::Wire;

struct Entry {
    /// `new` or `cur`.
    sub: &'static str,
    name: String,
    /// The unique part (what the UIDL comes from).
    unique: String,
    stamp: u64,
}

/// An open Maildir maildrop.
pub struct Maildir {
    dir: PathBuf,
    /// Held for the flock.
    _lock: Option<File>,
    entries: Vec<Entry>,
    listed: Vec<Listed>,
    /// The read buffer for sending messages.
    scratch: Vec<u8>,
}

impl Maildir {
    pub fn open(dir: &Path, owner: u32) -> Result<Maildir, OpenError> {
        let what = dir.display().to_string();
        let lock = match File::open(dir) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(OpenError::Temp(format!("{what}: {e}"))),
        };
        if let Some(f) = &lock {
            let m = f
                .metadata()
                .map_err(|e| OpenError::Temp(format!("{what}: {e}")))?;
            if !m.is_dir() || m.uid() != owner {
                return Err(OpenError::Perm(format!(
                    "{what} is not a directory of its user"
                )));
            }
            // SAFETY: flock on a valid descriptor, held until it closes.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                return Err(OpenError::InUse);
            }
        }
        let mut entries = Vec::new();
        for sub in ["new", "cur"] {
            let rd = match fs::read_dir(dir.join(sub)) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(OpenError::Temp(format!("{what}/{sub}: {e}"))),
            };
            for e in rd.flatten() {
                let Ok(name) = e.file_name().into_string() else {
                    continue;
                };
                if name.starts_with('.') {
                    continue;
                }
                let unique = name.split([',', ':']).next().unwrap_or(&name).to_string();
                let stamp = unique
                    .split('.')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u64::MAX);
                entries.push(Entry {
                    sub,
                    name,
                    unique,
                    stamp,
                });
            }
        }
        entries.sort_by(|a, b| (a.stamp, &a.unique).cmp(&(b.stamp, &b.unique)));
        let mut listed = Vec::with_capacity(entries.len());
        for e in &entries {
            let size = match virtual_size(&e.name) {
                Some(s) => s,
                None => count_size(&dir.join(e.sub).join(&e.name)).map_err(|err| {
                    OpenError::Temp(format!("{what}/{}/{}: {err}", e.sub, e.name))
                })?,
            };
            listed.push(Listed {
                size,
                uidl: uidl_of(&e.unique),
            });
        }
        Ok(Maildir {
            dir: dir.to_path_buf(),
            _lock: lock,
            entries,
            listed,
            scratch: Vec::new(),
        })
    }

    pub fn list(&self) -> &[Listed] {
        &self.listed
    }

    /// The file of entry `n`, wherever another reader may have moved it.
    fn path_of(&mut self, n: usize) -> io::Result<PathBuf> {
        let e = &self.entries[n];
        let p = self.dir.join(e.sub).join(&e.name);
        if p.exists() {
            return Ok(p);
        }
        for sub in ["cur", "new"] {
            for d in fs::read_dir(self.dir.join(sub))?.flatten() {
                let name = d.file_name().to_string_lossy().into_owned();
                if name.split([',', ':']).next() == Some(e.unique.as_str()) {
                    let e = &mut self.entries[n];
                    e.sub = sub;
                    e.name = name;
                    return Ok(d.path());
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the message was removed by another program",
        ))
    }

    pub fn prepare(&mut self, n: usize) -> io::Result<()> {
        self.path_of(n).map(|_| ())
    }

    pub fn send(
        &mut self,
        n: usize,
        body_lines: Option<u64>,
        wire: &mut Wire,
        deadline: &dyn Fn() -> Instant,
    ) -> io::Result<()> {
        let p = self.path_of(n)?;
        let f = File::open(&p)?;
        let len = f.metadata()?.len();
        send_region(
            Region {
                file: &f,
                from: 0,
                to: len,
                storage: Storage::Maildir,
            },
            body_lines,
            wire,
            deadline,
            &mut self.scratch,
        )
    }

    pub fn commit(&mut self, deleted: &[bool], retrieved: &[bool]) -> Result<Committed, String> {
        let mut c = Committed::default();
        let mut failed = 0;
        for n in 0..self.entries.len() {
            if deleted.get(n) == Some(&true) {
                match self.path_of(n) {
                    Ok(p) => {
                        let bytes = fs::symlink_metadata(&p).map(|m| m.len()).unwrap_or(0);
                        match fs::remove_file(&p) {
                            Ok(()) => {
                                c.deleted += 1;
                                c.deleted_bytes += self.listed[n].size;
                                if self.dir.join("maildirsize").exists() {
                                    let _ = crate::mailbox::maildir::add_usage(
                                        &self.dir,
                                        -(bytes as i64),
                                        -1,
                                    );
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                            Err(_) => failed += 1,
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(_) => failed += 1,
                }
            } else if retrieved.get(n) == Some(&true) && self.entries[n].sub == "new" {
                let e = &self.entries[n];
                let from = self.dir.join("new").join(&e.name);
                let to = self.dir.join("cur").join(format!("{}:2,S", e.name));
                let _ = fs::rename(from, to);
            }
        }
        if failed > 0 {
            return Err(format!("{failed} deleted messages could not be removed"));
        }
        Ok(c)
    }
}

/// The `,W=` size in a Maildir++ name.
fn virtual_size(name: &str) -> Option<u64> {
    let base = name.split(':').next()?;
    base.split(',')
        .find_map(|p| p.strip_prefix("W=")?.parse().ok())
}

/// The POP3 size of a file without `,W=`: read it once.
fn count_size(p: &Path) -> io::Result<u64> {
    let f = File::open(p)?;
    let len = f.metadata()?.len();
    let mut enc = Encoder::new(Storage::Maildir, None);
    let mut pieces = Pieces::new(&f, 0, len, vec![0u8; READ_BUF.min(len as usize + 1)]);
    while let Some(piece) = pieces.next_piece()? {
        enc.piece(&piece, None);
    }
    Ok(enc.size)
}

/// RFC 1939 §7: 1 to 70 characters from 0x21 to 0x7E.
fn uidl_of(unique: &str) -> Uidl {
    let ok = !unique.is_empty()
        && unique.len() <= 70
        && unique.bytes().all(|b| (0x21..=0x7e).contains(&b));
    Uidl::Name(if ok {
        unique.into()
    } else {
        crate::login::hex(&Md5::digest(unique.as_bytes())).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sizes_and_uidls() {
        assert_eq!(virtual_size("1.M2P3.host,S=10,W=12:2,S"), Some(12));
        assert_eq!(virtual_size("1.M2P3.host"), None);
        assert_eq!(
            uidl_of("1795249035.M898081P6622Q0R724aa6735c936fd3.host").to_string(),
            "1795249035.M898081P6622Q0R724aa6735c936fd3.host"
        );
        let long = "x".repeat(71);
        assert_eq!(uidl_of(&long).to_string().len(), 32);
    }

    #[test]
    fn listing_order_retrieval_and_commit() {
        let d = std::env::temp_dir().join(format!("mr-pop-md-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        for s in ["new", "cur", "tmp"] {
            fs::create_dir_all(d.join(s)).unwrap();
        }
        fs::write(d.join("new/200.A.h,S=9,W=11"), b"S: b\n\nbb\n").unwrap();
        fs::write(d.join("cur/100.B.h:2,S"), b"S: a\n\naa\n").unwrap();
        fs::write(d.join("new/.hidden"), b"x").unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let mut m = Maildir::open(&d, me).unwrap();
        let l = m.list().to_vec();
        assert_eq!(l.len(), 2);
        assert_eq!(
            (l[0].uidl.to_string(), l[0].size),
            ("100.B.h".to_string(), 12)
        );
        assert_eq!(
            (l[1].uidl.to_string(), l[1].size),
            ("200.A.h".to_string(), 11)
        );
        assert_eq!(Maildir::open(&d, me).err(), Some(OpenError::InUse));
        m.commit(&[true, false], &[false, true]).unwrap();
        drop(m);
        assert!(!d.join("cur/100.B.h:2,S").exists());
        assert!(d.join("cur/200.A.h,S=9,W=11:2,S").exists());
        let m = Maildir::open(&d, me).unwrap();
        assert_eq!(m.list()[0].uidl.to_string(), "200.A.h");
    }
}
