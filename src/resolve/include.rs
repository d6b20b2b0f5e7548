//! The lists read from files — `:include:` files and `~/.forward` — and
//! the destinations only they and the aliases may name: programs and
//! files.  Each runs as its controlling user (see the module text of
//! [`super`]).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::accounts::Account;
use crate::aliases::split_list;
use crate::exit::ExitCode;

use super::outcome::{Owner, Refusal, Target};
use super::walk::{Origin, Run};

/// Largest `.forward` or `:include:` file read.
const MAX_LIST_FILE: usize = 1 << 20;

impl Run<'_> {
    pub(super) fn program(&mut self, printable: &str, command: &str, origin: &Origin) {
        let allowed = self.r.cfg.allow_programs;
        self.special(
            printable,
            "programs",
            "run the program",
            allowed,
            origin,
            |owner| Target::Program {
                command: command.to_string(),
                owner,
            },
        );
    }

    pub(super) fn file(&mut self, printable: &str, path: &str, origin: &Origin) {
        let allowed = self.r.cfg.allow_files;
        self.special(
            printable,
            "files",
            "write the file",
            allowed,
            origin,
            |owner| Target::File {
                path: path.to_string(),
                owner,
            },
        );
    }

    /// A program or a file (`kind`, as sendmail 8's refusals name them):
    /// only from the aliases, a `.forward` or an `:include:` (never named
    /// directly), only from a safe source and when `allowed`, and run as
    /// the entry's controlling user.
    fn special(
        &mut self,
        printable: &str,
        kind: &str,
        as_whom: &str,
        allowed: bool,
        origin: &Origin,
        target: impl FnOnce(Owner) -> Target,
    ) {
        if !origin.special {
            return self.refuse(
                printable,
                Refusal::new(
                    550,
                    "5.7.1",
                    format!("Cannot mail directly to {kind}"),
                    ExitCode::Usage,
                ),
                origin,
            );
        }
        if origin.unsafe_source || !allowed {
            return self.refuse(
                printable,
                Refusal::new(
                    550,
                    "5.7.1",
                    format!("Address {printable} is unsafe for mailing to {kind}"),
                    ExitCode::Unavailable,
                ),
                origin,
            );
        }
        match origin.owner.clone() {
            Some(owner) => self.push(printable, target(owner), &None, origin),
            None => self.refuse(
                printable,
                Refusal::new(
                    451,
                    "4.3.0",
                    format!("no user to {as_whom} as (default_user)"),
                    ExitCode::TempFail,
                ),
                origin,
            ),
        }
    }

    pub(super) fn include(
        &mut self,
        printable: &str,
        path: &str,
        origin: &Origin,
        chain: &mut Vec<String>,
        sender: &Option<String>,
        depth: usize,
    ) {
        if !origin.special {
            return self.refuse(
                printable,
                Refusal::new(
                    550,
                    "5.7.1",
                    "Cannot mail directly to :include:s",
                    ExitCode::Usage,
                ),
                origin,
            );
        }
        self.step(format!("{printable}... including file {path}"), None, true);
        if self.r.check_only {
            self.res.includes_unread = true;
            return;
        }
        let p = self.r.cfg.paths.resolve(path);
        let (uid, gid) = match &origin.read_as {
            Some(o) => (o.uid, o.gid),
            None => (0, 0),
        };
        let (bytes, meta) = match crate::privs::read_file_as(&p, uid, gid, MAX_LIST_FILE) {
            Ok(x) => x,
            Err(e) => {
                let why = crate::exit::io_reason(&e);
                let temporary = matches!(
                    e.raw_os_error(),
                    Some(libc::EIO) | Some(libc::ENFILE) | Some(libc::EMFILE)
                );
                let mut r = Refusal::new(
                    550,
                    "5.1.1",
                    format!("Cannot open {path}: {why}"),
                    ExitCode::Usage,
                );
                if temporary {
                    r = Refusal::new(
                        451,
                        "4.3.0",
                        format!("Cannot open {path}: {why}"),
                        ExitCode::TempFail,
                    );
                }
                return self.refuse(printable, r, origin);
            }
        };
        // Programs and files named in the include run as its owner; a
        // root-owned include is treated like the aliases file itself.
        let owner = if meta.uid() == 0 {
            origin.owner.clone()
        } else {
            self.r.accounts.users().by_uid(meta.uid()).map(|u| Owner {
                name: u.name,
                uid: u.uid,
                gid: u.gid,
                home: u.home,
            })
        };
        let child = Origin {
            special: true,
            unsafe_source: origin.unsafe_source || !safe_file(&p, &meta),
            owner,
            via: origin.via.clone(),
            read_as: origin.read_as.clone(),
            list: origin.list.clone(),
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            self.step(
                format!("{path}: line {}: sending to {l}", i + 1),
                Some((p.clone(), i + 1)),
                true,
            );
            for e in split_list(l) {
                self.element(&e, &child, chain, sender, depth + 1);
            }
        }
    }

    /// The entries of a user's `~/.forward`, read as the user; `None` when
    /// there is none or it must be ignored (not the user's, group- or
    /// world-writable).
    pub(super) fn read_forward(&mut self, account: &Account) -> Option<Vec<String>> {
        let home = self.r.cfg.paths.resolve(&account.owner.home);
        let path = home.join(".forward");
        let (bytes, meta) =
            crate::privs::read_file_as(&path, account.owner.uid, account.owner.gid, MAX_LIST_FILE)
                .ok()?;
        let me = nix::unistd::geteuid().as_raw();
        let owner_ok =
            meta.uid() == account.owner.uid || meta.uid() == 0 || (me != 0 && meta.uid() == me);
        if !owner_ok || meta.mode() & 0o022 != 0 {
            self.step(
                format!(
                    "{}: ignored (not owned by {} or group/world writable)",
                    path.display(),
                    account.login
                ),
                None,
                false,
            );
            crate::log::warning(
                None,
                &format!("forward: {}: unsafe, ignored", path.display()),
            );
            return None;
        }
        let text = String::from_utf8_lossy(&bytes);
        let list: Vec<String> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(split_list)
            .collect();
        if list.is_empty() { None } else { Some(list) }
    }
}

/// Is a list file safe: not group- or world-writable, in directories that
/// are not group- or world-writable (unless sticky)?
fn safe_file(path: &Path, meta: &std::fs::Metadata) -> bool {
    if meta.mode() & 0o022 != 0 {
        return false;
    }
    let mut dir = path.parent();
    while let Some(d) = dir {
        match std::fs::metadata(d) {
            Ok(m) if m.mode() & 0o022 != 0 && m.mode() & 0o1000 == 0 => return false,
            Ok(_) => {}
            Err(_) => return false,
        }
        dir = d.parent();
    }
    true
}
