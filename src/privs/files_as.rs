//! Touching files as another user from one thread of a root process,
//! without a child process.
//!
//! The queue runner delivers each message to a mailbox as the mailbox's
//! owner.  It used to fork a child that became the owner for every
//! delivery: the child's start was most of a delivery's cost.  Linux keeps
//! credentials per thread, and the file-system identity (`setfsuid`,
//! `setfsgid`, the supplementary groups) is what every permission check
//! on a path or a new file uses.  So the delivering thread takes the
//! owner's file-system identity for the write and gives it back after;
//! the other threads stay root throughout.
//!
//! What makes it as strict as the child:
//! * the raw system calls, which change only the calling thread (glibc's
//!   `setgroups` would change every thread of the process);
//! * no effective capabilities while the owner's identity is on (setting a
//!   non-zero fsuid already drops the file capabilities; emptying the
//!   effective set also drops `CAP_SYS_RESOURCE`, so a disk quota or the
//!   file system's reserved blocks hold as they do for the user);
//! * checked after the switch (the kernel reports the fsuid and fsgid in
//!   force), and on the way back: a thread that cannot become root again
//!   ends the process rather than deliver the next message as someone
//!   else.
//!
//! A thread or process started from the thread while the identity is on
//! would begin with it: the work done this way starts neither.  Only file
//! work runs this way.  A program (an alias's `|command`,
//! spamc) is still started in a child that becomes the user fully: a
//! program `exec`ed from a thread with only the file identity switched
//! would run as root.

use std::io;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capget() -> io::Result<[CapData; 2]> {
    let mut hdr = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: the kernel fills the header and two data words it is given.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(data)
}

fn capset(data: &[CapData; 2]) -> io::Result<()> {
    let mut hdr = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    // SAFETY: as capget; the kernel only reads `data`.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// This thread's supplementary groups.
fn groups() -> io::Result<Vec<libc::gid_t>> {
    // SAFETY: a size query, then a fill of a buffer of that size.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut v = vec![0; n as usize];
    let n = unsafe { libc::getgroups(n, v.as_mut_ptr()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    v.truncate(n as usize);
    Ok(v)
}

/// Set this thread's supplementary groups (the system call, not glibc's
/// process-wide wrapper).
fn set_groups(list: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: the kernel reads `list.len()` group ids.
    let r = unsafe { libc::syscall(libc::SYS_setgroups, list.len(), list.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set this thread's fsuid and fsgid; the kernel's answer to a second
/// call tells whether they took.
fn set_fs_ids(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: setfsgid/setfsuid take an id and return the previous one.
    unsafe {
        libc::syscall(libc::SYS_setfsgid, gid);
        libc::syscall(libc::SYS_setfsuid, uid);
        let now_gid = libc::syscall(libc::SYS_setfsgid, u32::MAX) as u32;
        let now_uid = libc::syscall(libc::SYS_setfsuid, u32::MAX) as u32;
        if now_uid != uid || now_gid != gid {
            return Err(io::Error::other(format!(
                "the file-system identity stayed {now_uid}:{now_gid}"
            )));
        }
    }
    Ok(())
}

/// This thread, for file work, as a user; root again when dropped.
pub struct FilesAs {
    caps: [CapData; 2],
    groups: Vec<libc::gid_t>,
}

impl FilesAs {
    /// Take `uid`, `gid` and `groups` (the full list) for this thread's
    /// file work.  Nothing is changed when this fails part way: the parts
    /// done are undone (or the process ends, see the module's note).
    pub fn become_user(uid: u32, gid: u32, groups_list: &[u32]) -> io::Result<FilesAs> {
        if uid == 0 {
            return Err(io::Error::other("not for root"));
        }
        let saved = FilesAs {
            caps: capget()?,
            groups: groups()?,
        };
        let switched = (|| {
            set_groups(groups_list)?;
            set_fs_ids(uid, gid)?;
            let mut none = saved.caps;
            for d in &mut none {
                d.effective = 0;
            }
            capset(&none)
        })();
        match switched {
            Ok(()) => Ok(saved),
            // Dropping `saved` puts back what was changed.
            Err(e) => Err(e),
        }
    }
}

impl Drop for FilesAs {
    fn drop(&mut self) {
        let back = capset(&self.caps)
            .and_then(|()| set_fs_ids(0, 0))
            .and_then(|()| set_groups(&self.groups));
        if let Err(e) = back {
            // Never deliver the next message with someone else's identity.
            crate::log::err(
                None,
                &format!("cannot return to root's file identity ({e}): stopping"),
            );
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};

    #[test]
    fn a_thread_touches_files_as_the_user_while_the_others_stay_root() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: needs root");
            return;
        }
        let d = std::env::temp_dir().join(format!("mr-files-as-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("open")).unwrap();
        std::fs::set_permissions(d.join("open"), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let secret = d.join("root-only");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&secret)
            .unwrap();
        let (uid, gid) = (65534u32, 65534u32);
        // A thread started before the switch (one started after it would
        // begin with the switched identity, as a child process would).
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let s = secret.clone();
        let other = std::thread::spawn(move || {
            wait.recv().unwrap();
            std::fs::File::open(&s).map(|_| ())
        });
        let before = groups().unwrap();
        let caps_before = capget().unwrap()[0].effective;
        let guard = FilesAs::become_user(uid, gid, &[gid]).unwrap();
        // As the user: root's file is closed to us, a new file is ours.
        let e = std::fs::File::open(&secret).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES));
        let mine = d.join("open/new");
        std::fs::write(&mine, b"x").unwrap();
        let m = std::fs::metadata(&mine).unwrap();
        assert_eq!((m.uid(), m.gid()), (uid, gid));
        assert_eq!(groups().unwrap(), vec![gid]);
        assert_eq!(
            capget().unwrap()[0].effective,
            0,
            "no capability while switched"
        );
        // Another thread meanwhile is root.
        go.send(()).unwrap();
        other.join().unwrap().expect("the other thread stays root");
        drop(guard);
        std::fs::File::open(&secret).unwrap();
        assert_eq!(groups().unwrap(), before);
        assert_eq!(
            capget().unwrap()[0].effective,
            caps_before,
            "the capabilities back"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
