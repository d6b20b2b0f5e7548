//! Maildir delivery (`~/Maildir/`), compatible with Courier's Maildir++ and
//! Dovecot.
//!
//! * The message is written to `tmp/NAME` (`O_EXCL`), `fsync`ed, renamed to
//!   `new/NAME,S=SIZE,W=VSIZE`, and `new/` is `fsync`ed: once it is in
//!   `new/` it is complete.  No locking is needed.
//! * NAME is `SECONDS.MmicrosecondsPpidQcountRrandom.HOST` (cr.yp.to's
//!   "modern" unique name); `S=` is the exact size on disk and `W=` the size
//!   with CRLF line ends (the POP3 size), both as Dovecot expects them.
//! * No `From ` line and no `>From` quoting: a Maildir file is the message.
//! * What a killed delivery left in `tmp/` is removed by the next delivery
//!   (its writer's pid is gone) or after 36 hours.
//! * Quota: the Maildir++ `maildirsize` file — a first line of limits
//!   (`NNNS`), then `BYTES COUNT` lines that add up — is read instead of
//!   scanning the directory; it is recomputed (one scan) only when missing
//!   or larger than 5120 bytes, and a delivery appends its own line.
//!   The count covers the folders too (Maildir++: one quota per Maildir).
//! * Folders (filters' `folder NAME`) are Maildir++ subdirectories
//!   `.NAME/` (`a/b` is `.a.b/`), each a Maildir with an empty
//!   `maildirfolder` file, as Courier and Dovecot's default `maildir++`
//!   layout have them.  Dovecot's IMAP shows them with
//!   `mail_location = maildir:~/Maildir`; pop3d never looks in them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Failure, Format, Message, write_message};

static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// What to deliver.
pub struct Deliver<'a> {
    pub prepend: &'a [u8],
    pub message: &'a Message,
    /// Limit in bytes for the whole Maildir, 0 = none.
    pub quota: u64,
    pub host: &'a str,
    /// Look for this copy first (among files delivered since `since`,
    /// seconds), and write nothing if it is there (the retry of an attempt
    /// that died midway).
    pub already: Option<(super::Already<'a>, i64)>,
}

/// Make sure `tmp/`, `new/`, `cur/` exist (mode 0700).
pub fn ensure(dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.mode(0o700).recursive(true);
    for sub in ["tmp", "new", "cur"] {
        b.create(dir.join(sub))?;
    }
    Ok(())
}

/// A new unique base name.
pub fn unique_name(host: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let q = DELIVERIES.fetch_add(1, Ordering::Relaxed);
    let host: String = host
        .chars()
        .map(|c| match c {
            '/' => "\\057".to_string(),
            ':' => "\\072".to_string(),
            c => c.to_string(),
        })
        .collect();
    format!(
        "{}.M{}P{}Q{}R{:08x}{:08x}.{host}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        q,
        crate::queue::id::random_u32(),
        crate::queue::id::random_u32()
    )
}

/// The directory of folder `name` (`a/b` for a subfolder) of the Maildir
/// `root`.  The caller has checked the name ([`super::folder`]).
pub fn folder_dir(root: &Path, name: &str) -> PathBuf {
    root.join(format!(".{}", name.replace('/', ".")))
}

/// Deliver into the Maildir `dir`; returns the new file's path.
pub fn deliver(dir: &Path, d: &Deliver<'_>) -> Result<PathBuf, Failure> {
    let what = dir.display().to_string();
    ensure(dir).map_err(|e| Failure::from_io(&format!("{what}: cannot create the Maildir"), &e))?;
    store(dir, dir, d)
}

/// Deliver into folder `name` of the Maildir `root`, creating it (and the
/// root) as needed; the root's quota counts.
pub fn deliver_folder(root: &Path, name: &str, d: &Deliver<'_>) -> Result<PathBuf, Failure> {
    let dir = folder_dir(root, name);
    let what = dir.display().to_string();
    (|| -> io::Result<()> {
        for sub in ["tmp", "new", "cur"] {
            super::ensure_dir(&root.join(sub), 0o700)?;
            super::ensure_dir(&dir.join(sub), 0o700)?;
        }
        let marker = dir.join("maildirfolder");
        if !marker.exists() {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&marker)?
                .sync_all()?;
            File::open(&dir)?.sync_all()?;
        }
        Ok(())
    })()
    .map_err(|e| Failure::from_io(&format!("{what}: cannot create the folder"), &e))?;
    store(&dir, root, d)
}

/// Write the message into `dir`, counting it against `root`'s quota.
fn store(dir: &Path, root: &Path, d: &Deliver<'_>) -> Result<PathBuf, Failure> {
    let what = dir.display().to_string();
    let estimate = d.prepend.len() as u64 + d.message.len() + 1;
    if d.quota > 0 {
        let used = usage(root)
            .map_err(|e| Failure::from_io(&format!("{what}: cannot read maildirsize"), &e))?;
        if used + estimate > d.quota {
            return Err(Failure::over_quota(used, estimate, d.quota));
        }
    }
    if let Some((copy, since)) = &d.already
        && let Some(found) = find_copy(dir, copy, *since)
    {
        crate::log::notice(
            None,
            &format!(
                "{what}: already holds {} from an interrupted attempt",
                copy.id
            ),
        );
        return Ok(found);
    }
    clean_tmp(&dir.join("tmp"), d.host);
    let name = unique_name(d.host);
    let tmp = dir.join("tmp").join(&name);
    let result = (|| -> io::Result<PathBuf> {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        let mut w = BufWriter::with_capacity(64 * 1024, f);
        let (size, lfs) = write_message(
            &mut w,
            d.prepend,
            d.message,
            Format {
                quote_from: false,
                strip_private: false,
            },
        )?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        let final_name = format!("{name},S={size},W={}", size + lfs);
        let new = dir.join("new").join(&final_name);
        fs::rename(&tmp, &new)?;
        if let Err(e) = File::open(dir.join("new")).and_then(|n| n.sync_all()) {
            // Not known to be on disk, and the delivery is deferred: take
            // the file back, so that the retry's copy is the only one.
            let _ = fs::remove_file(&new);
            return Err(e);
        }
        if d.quota > 0 || root.join("maildirsize").exists() {
            let _ = add_usage(root, size as i64, 1);
        }
        Ok(new)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Failure::from_io(&format!("{what}: write failed"), &e)
    })
}

/// A file of `new/` or `cur/` delivered since `since` (by the time in its
/// name) that is the copy `a`.
fn find_copy(dir: &Path, a: &super::Already<'_>, since: i64) -> Option<PathBuf> {
    for sub in ["new", "cur"] {
        for e in fs::read_dir(dir.join(sub)).ok()?.flatten() {
            let name = e.file_name();
            let secs: i64 = name
                .to_string_lossy()
                .split('.')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if secs + 1 < since {
                continue;
            }
            let mut head = vec![0u8; 16 * 1024];
            let n = File::open(e.path())
                .and_then(|mut f| f.read(&mut head))
                .unwrap_or(0);
            head.truncate(n);
            let end = memchr::memmem::find(&head, b"\n\n").map_or(head.len(), |p| p + 1);
            let mut block = b"\n".to_vec();
            block.extend_from_slice(&head[..end]);
            if super::is_copy(&block, a) {
                return Some(e.path());
            }
        }
    }
    None
}

/// Remove from `tmp/` what killed deliveries left: files named by this
/// host whose writer (`P<pid>` in the name) no longer exists, and any file
/// untouched for 36 hours (qmail's rule).  `tmp/` is normally empty, so
/// this costs one short directory read per delivery.
fn clean_tmp(tmp: &Path, host: &str) {
    let Ok(rd) = fs::read_dir(tmp) else {
        return;
    };
    let now = std::time::SystemTime::now();
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let dead_writer = name.ends_with(&format!(".{host}"))
            && name
                .split_once('P')
                .and_then(|(_, rest)| {
                    rest.split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse::<i32>()
                        .ok()
                })
                .filter(|pid| *pid > 0)
                // SAFETY: signal 0 only checks for existence.
                .is_some_and(|pid| unsafe {
                    libc::kill(pid, 0) != 0
                        && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
                });
        let abandoned = e
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age.as_secs() > 36 * 3600);
        if dead_writer || abandoned {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Bytes used according to `maildirsize`, recomputing it when missing or
/// grown too large.
pub fn usage(dir: &Path) -> io::Result<u64> {
    match fs::read_to_string(dir.join("maildirsize")) {
        Ok(text) if text.len() < 5120 => Ok(sum_lines(&text)),
        _ => recompute(dir),
    }
}

/// [`usage`] without writing anything: for those who only look (the quota
/// warnings, run by root, must not leave a `maildirsize` of root's in a
/// user's Maildir; `mailroom mailbox list`).
pub fn measured_usage(dir: &Path) -> io::Result<u64> {
    match fs::read_to_string(dir.join("maildirsize")) {
        Ok(text) if text.len() < 5120 => Ok(sum_lines(&text)),
        _ => Ok(scan(dir).0),
    }
}

/// The total of a `maildirsize`'s `BYTES COUNT` lines.
fn sum_lines(text: &str) -> u64 {
    let mut total: i64 = 0;
    for l in text.lines().skip(1) {
        let mut it = l.split_whitespace();
        total += it.next().and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    }
    total.max(0) as u64
}

/// Bytes and messages in `new/` and `cur/` of the Maildir and its folders
/// (sizes from `,S=` when present).
fn scan(dir: &Path) -> (u64, u64) {
    let mut bytes = 0u64;
    let mut count = 0u64;
    let mut subs = vec![dir.join("new"), dir.join("cur")];
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.')
                && name.len() > 1
                && name != ".."
                && e.file_type().map(|t| t.is_dir()).unwrap_or(false)
            {
                subs.push(e.path().join("new"));
                subs.push(e.path().join("cur"));
            }
        }
    }
    for sub in subs {
        let Ok(rd) = fs::read_dir(&sub) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let size = name
                .split(',')
                .find_map(|p| p.strip_prefix("S="))
                .and_then(|s| s.split(':').next())
                .and_then(|s| s.parse::<u64>().ok())
                .or_else(|| e.metadata().ok().map(|m| m.len()))
                .unwrap_or(0);
            bytes += size;
            count += 1;
        }
    }
    (bytes, count)
}

/// Scan the Maildir once ([`scan`]) and write a fresh `maildirsize`
/// (temporary file + rename).
pub fn recompute(dir: &Path) -> io::Result<u64> {
    let (bytes, count) = scan(dir);
    let p = dir.join("maildirsize");
    let header = fs::read_to_string(&p)
        .ok()
        .and_then(|t| t.lines().next().map(str::to_string))
        .unwrap_or_default();
    let tmp = dir
        .join("tmp")
        .join(format!("maildirsize.{}", std::process::id()));
    {
        let mut f = File::create(&tmp)?;
        writeln!(f, "{header}")?;
        writeln!(f, "{bytes} {count}")?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &p)?;
    Ok(bytes)
}

/// Append a `BYTES COUNT` line to `maildirsize`.
pub fn add_usage(dir: &Path, bytes: i64, count: i64) -> io::Result<()> {
    let p = dir.join("maildirsize");
    if !p.exists() {
        recompute(dir)?;
        return Ok(());
    }
    let mut f = OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&p)?;
    f.write_all(format!("{bytes} {count}\n").as_bytes())
}

/// Read a whole file (used by tests and pop3d).
pub fn read_file(p: &Path) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    File::open(p)?.read_to_end(&mut v)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_with_exact_sizes_and_counts_quota() {
        let d = std::env::temp_dir().join(format!("mr-maildir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let msg = Message::from_bytes(b"Subject: s\n\nFrom me\nbody\n").unwrap();
        let del = Deliver {
            prepend: b"Return-Path: <a@b>\n",
            message: &msg,
            quota: 0,
            host: "h.example",
            already: None,
        };
        let p = deliver(&d, &del).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let content = read_file(&p).unwrap();
        assert_eq!(
            content,
            b"Return-Path: <a@b>\nSubject: s\n\nFrom me\nbody\n"
        );
        assert!(
            name.contains(&format!(",S={},W={}", content.len(), content.len() + 5)),
            "{name}"
        );
        assert!(fs::read_dir(d.join("tmp")).unwrap().next().is_none());

        // A quota counts what is there without rescanning per delivery.
        let used = recompute(&d).unwrap();
        assert_eq!(used, content.len() as u64);
        let del = Deliver {
            quota: used + 10,
            ..del
        };
        let e = deliver(&d, &del).unwrap_err();
        assert!(e.over_quota, "{e:?}");
        fs::remove_dir_all(&d).unwrap();
    }
}
