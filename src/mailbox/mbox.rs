//! mbox files (`/var/mail/USER`, and `/file` targets of aliases).
//!
//! ## The format written: mboxrd
//!
//! Each message is a `From SENDER  DATE` line (sender `MAILER-DAEMON` for
//! the null sender, date in `ctime(3)` form, two spaces as Postfix and
//! Dovecot write it), the message with LF line ends, and one empty line.
//! Every line matching `^>*From ` gets one more `>` (mboxrd), so a reader
//! can undo the quoting exactly — with mboxo's quoting a genuine `>From `
//! line could not be told from a quoted one.  Readers that never unquote
//! (mutt, Dovecot) show one extra `>` on such lines, as they do for every
//! other MDA.  Reader-private headers (`Status:`, `X-UID:`, `Content-Length:`,
//! `X-UIDL:`, ...) are removed so a sender cannot set flags or UIDLs.
//!
//! ## Appending safely
//!
//! 1. `open(O_APPEND|O_NOFOLLOW)`, created `0660` if missing (group `mail`
//!    from the setgid spool); refuse anything but a regular file with one
//!    link owned by the mailbox owner.
//! 2. Lock ([`super::lock`]); check the path still names the file opened.
//! 3. Note the size; if the file does not end with an empty line (a
//!    crashed writer, a foreign MUA), add the missing newlines first.
//! 4. Write, `fsync`.  On any failure, truncate back to the noted size, so
//!    the mailbox is exactly as it was.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use super::lock::{self, Kind, LockError};
use super::{Failure, Format, Message, write_message};

/// The mbox `From ` line for a sender at time `t`.
pub fn from_line(sender: &str, t: i64) -> String {
    let s = if sender.is_empty() || sender == "<>" {
        "MAILER-DAEMON"
    } else {
        sender
    };
    // No white space may break the line into more fields than readers expect.
    let s: String = s
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    format!("From {s}  {}\n", crate::date::ctime(t))
}

/// What to append.
pub struct Append<'a> {
    /// The `From ` line and header lines to put first (`Return-Path:`,
    /// `Delivered-To:`).
    pub from_line: &'a str,
    pub prepend: &'a [u8],
    pub message: &'a Message,
    /// Size limit for the whole mbox, 0 = none.
    pub quota: u64,
    pub lock_timeout: Duration,
    /// The uid the file must belong to (None: not checked).
    pub owner: Option<u32>,
    /// Mode for a new file.
    pub create_mode: u32,
}

/// Append one message; on failure the mbox is left exactly as it was.
pub fn append(path: &Path, a: &Append<'_>) -> Result<u64, Failure> {
    let what = path.display().to_string();
    let file = open_mailbox(path, a.owner, a.create_mode).map_err(|f| f.with_what(&what))?;
    let _held = match lock::lock(&file, path, Kind::Write, a.lock_timeout) {
        Ok(h) => h,
        Err(LockError::Busy) => {
            return Err(Failure::temp(
                "4.2.0",
                format!("{what}: mailbox is locked by another program; will retry"),
            ));
        }
        Err(LockError::Io(e)) => return Err(Failure::from_io(&format!("{what}: cannot lock"), &e)),
    };
    // The path must still name the file we opened and locked.
    let held = file.metadata().map_err(|e| Failure::from_io(&what, &e))?;
    match std::fs::symlink_metadata(path) {
        Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() && held.nlink() == 1 => {}
        _ => {
            return Err(Failure::temp(
                "4.2.0",
                format!("{what}: mailbox changed while it was being locked; will retry"),
            ));
        }
    }
    let orig = held.len();
    let estimate = a.from_line.len() as u64 + a.prepend.len() as u64 + a.message.len() + 2;
    if a.quota > 0 && orig + estimate > a.quota {
        return Err(Failure::over_quota(orig, estimate, a.quota));
    }
    let result = write_entry(&file, orig, a);
    match result {
        Ok(n) => Ok(n),
        Err(e) => {
            // Leave the mailbox exactly as it was.
            let _ = file.set_len(orig);
            let _ = file.sync_all();
            Err(Failure::from_io(&format!("{what}: write failed"), &e))
        }
    }
}

fn write_entry(file: &File, orig: u64, a: &Append<'_>) -> io::Result<u64> {
    let mut w = BufWriter::with_capacity(64 * 1024, file);
    let mut n = 0u64;
    if orig > 0 {
        // A new From_ line is only recognised after an empty line.
        let mut tail = [0u8; 2];
        let k = if orig >= 2 { 2 } else { 1 };
        file.read_exact_at(&mut tail[..k], orig - k as u64)?;
        let pad: &[u8] = if k == 2 && tail == *b"\n\n" {
            b""
        } else if tail[k - 1] == b'\n' {
            b"\n"
        } else {
            b"\n\n"
        };
        w.write_all(pad)?;
        n += pad.len() as u64;
    }
    w.write_all(a.from_line.as_bytes())?;
    n += a.from_line.len() as u64;
    let (m, _) = write_message(
        &mut w,
        a.prepend,
        a.message,
        Format {
            quote_from: true,
            strip_private: true,
        },
    )?;
    n += m;
    w.write_all(b"\n")?;
    n += 1;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    Ok(n)
}

/// Open (or create) a mailbox for appending, refusing symlinks, hard links,
/// non-regular files and files of the wrong owner.
pub fn open_mailbox(path: &Path, owner: Option<u32>, create_mode: u32) -> Result<File, Failure> {
    let open = |create: bool| {
        let mut o = OpenOptions::new();
        o.read(true)
            .append(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK);
        if create {
            o.create_new(true).mode(create_mode);
        }
        o.open(path)
    };
    let file = match open(false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => match open(true) {
            Ok(f) => {
                // The mode asked for, whatever the umask.
                use std::os::unix::fs::PermissionsExt;
                let _ = f.set_permissions(std::fs::Permissions::from_mode(create_mode));
                f
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                open(false).map_err(|e| Failure::from_io("", &e))?
            }
            Err(e) => return Err(Failure::from_io("cannot create the mailbox", &e)),
        },
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Failure::perm(
                "5.2.0",
                "the mailbox is a symbolic link; refusing to deliver",
            ));
        }
        Err(e) => return Err(Failure::from_io("cannot open the mailbox", &e)),
    };
    let m = file.metadata().map_err(|e| Failure::from_io("", &e))?;
    if !m.is_file() {
        return Err(Failure::perm(
            "5.2.0",
            "the mailbox is not a regular file; refusing to deliver",
        ));
    }
    if m.nlink() != 1 {
        return Err(Failure::perm(
            "5.2.0",
            "the mailbox has more than one hard link; refusing to deliver",
        ));
    }
    if let Some(uid) = owner
        && m.uid() != uid
    {
        return Err(Failure::perm(
            "5.2.0",
            format!(
                "the mailbox belongs to uid {}, not to its user (uid {uid}); refusing to deliver",
                m.uid()
            ),
        ));
    }
    Ok(file)
}

impl Failure {
    fn with_what(mut self, what: &str) -> Failure {
        if !self.text.starts_with(what) {
            self.text = format!("{what}: {}", self.text);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("mr-mbox-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn append_to(path: &Path, body: &[u8], quota: u64) -> Result<u64, Failure> {
        let msg = Message::from_bytes(body).unwrap();
        append(
            path,
            &Append {
                from_line: "From a@b  Sat Nov 21 05:00:00 2026\n",
                prepend: b"Return-Path: <a@b>\n",
                message: &msg,
                quota,
                lock_timeout: Duration::from_secs(1),
                owner: None,
                create_mode: 0o660,
            },
        )
    }

    #[test]
    fn appends_mboxrd_with_separators() {
        let d = tmp("append");
        let p = d.join("bob");
        append_to(&p, b"Subject: one\n\nFrom the start\n", 0).unwrap();
        append_to(&p, b"Subject: two\n\nno newline", 0).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "From a@b  Sat Nov 21 05:00:00 2026\nReturn-Path: <a@b>\nSubject: one\n\n>From the start\n\n\
             From a@b  Sat Nov 21 05:00:00 2026\nReturn-Path: <a@b>\nSubject: two\n\nno newline\n\n"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn repairs_a_missing_separator() {
        let d = tmp("repair");
        let p = d.join("bob");
        std::fs::write(&p, "From x  Sat Nov 21 05:00:00 2026\n\nhalf a line").unwrap();
        append_to(&p, b"Subject: s\n\nb\n", 0).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("half a line\n\nFrom a@b"), "{text}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn quota_refuses_and_leaves_the_file_alone() {
        let d = tmp("quota");
        let p = d.join("bob");
        append_to(&p, b"Subject: s\n\nbody\n", 200).unwrap();
        let before = std::fs::read(&p).unwrap();
        let e = append_to(&p, &[b'x'; 300], 200).unwrap_err();
        assert!(e.over_quota);
        assert_eq!(std::fs::read(&p).unwrap(), before);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn symlinks_and_hard_links_are_refused() {
        let d = tmp("links");
        std::fs::write(d.join("victim"), "").unwrap();
        std::os::unix::fs::symlink(d.join("victim"), d.join("sym")).unwrap();
        std::fs::hard_link(d.join("victim"), d.join("hard")).unwrap();
        assert!(
            append_to(&d.join("sym"), b"x\n", 0)
                .unwrap_err()
                .text
                .contains("symbolic link")
        );
        assert!(
            append_to(&d.join("hard"), b"x\n", 0)
                .unwrap_err()
                .text
                .contains("hard link")
        );
        assert_eq!(std::fs::read(d.join("victim")).unwrap(), b"");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
