//! Asking the root helper: run `panel-helper`, write the one request
//! line on its standard input, read the [`Answer`] from its standard
//! output ([`super::protocol`]).  The front end has no other way to the
//! helper's data, and nothing else it could run.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::protocol::{Answer, MAX_ANSWER, MAX_REQUEST, Record};

/// Where `make install` puts the helper.
pub const INSTALLED_HELPER: &str = "/usr/libexec/mailroom/panel-helper";

/// What the pages ask: one request, one answer.  The program in
/// production ([`Program`]); a double in tests.
pub trait Helper {
    /// The answer, or why there is none (the helper could not be run,
    /// took too long, or printed something that is not an answer).
    fn ask(&mut self, request: &Record) -> Result<Answer, String>;
}

/// The helper program, run once per request.
#[derive(Debug, Clone)]
pub struct Program {
    pub path: PathBuf,
    /// Where its standard error goes: inherited under CGI (the web
    /// server's error log); nowhere on the panel's own port, where
    /// descriptor 2 may be the client's socket.
    pub quiet: bool,
    /// The longest wait for its answer.  A login may be slowed on
    /// purpose by a few seconds after failures; this is far beyond.
    pub timeout: Duration,
}

impl Program {
    /// The helper beside this program (`PREFIX/libexec/mailroom`, where
    /// the panel itself is installed, or the build directory), else the
    /// installed path.  `MAILROOM_PANEL_HELPER` names another one, for
    /// tests, and only when this process is not set-id.
    pub fn locate(quiet: bool) -> Program {
        let from_env = (!crate::privs::is_elevated())
            .then(|| std::env::var_os("MAILROOM_PANEL_HELPER"))
            .flatten()
            .map(PathBuf::from);
        let beside = std::fs::read_link("/proc/self/exe")
            .ok()
            .and_then(|exe| Some(exe.parent()?.join("panel-helper")))
            .filter(|p| p.is_file());
        Program {
            path: from_env
                .or(beside)
                .unwrap_or_else(|| PathBuf::from(INSTALLED_HELPER)),
            quiet,
            timeout: Duration::from_secs(30),
        }
    }
}

impl Helper for Program {
    fn ask(&mut self, request: &Record) -> Result<Answer, String> {
        let mut line = request.encode();
        if line.len() > MAX_REQUEST {
            return Err("request too large".into());
        }
        line.push('\n');
        let mut cmd = Command::new(&self.path);
        // Only what a set-id program would keep anyway: the helper
        // cleans its environment, and the web server's (cookies included)
        // is none of its business.
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if self.quiet {
                Stdio::null()
            } else {
                Stdio::inherit()
            });
        if !crate::privs::is_elevated() {
            // A private root for tests and `make demo`, as every program
            // of the suite honours it when not set-id.
            if let Some(root) = std::env::var_os("MAILROOM_ROOT") {
                cmd.env("MAILROOM_ROOT", root);
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        let pid = child.id() as libc::pid_t;
        // A watchdog kills a helper that does not finish in time.  The
        // child is reaped only after the watchdog is done, so its pid
        // cannot have been reused when it is killed.
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let timeout = self.timeout;
        let watchdog = std::thread::spawn(move || {
            if finished.recv_timeout(timeout).is_err() {
                // SAFETY: kill on our own, not yet reaped child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                true
            } else {
                false
            }
        });
        let mut stdin = child.stdin.take().expect("piped");
        let wrote = stdin.write_all(line.as_bytes());
        drop(stdin);
        let mut out = Vec::new();
        let read = child
            .stdout
            .take()
            .expect("piped")
            .take(MAX_ANSWER as u64 + 1)
            .read_to_end(&mut out);
        let _ = done.send(());
        let killed = watchdog.join().unwrap_or(false);
        let status = child.wait();
        if killed {
            return Err(format!("{}: no answer in {timeout:?}", self.path.display()));
        }
        wrote.map_err(|e| format!("{}: writing the request: {e}", self.path.display()))?;
        read.map_err(|e| format!("{}: reading the answer: {e}", self.path.display()))?;
        if out.len() > MAX_ANSWER {
            return Err(format!("{}: answer too large", self.path.display()));
        }
        let text = String::from_utf8_lossy(&out);
        Answer::decode(&text).ok_or_else(|| {
            format!(
                "{}: not an answer (exit {})",
                self.path.display(),
                status.map(|s| s.to_string()).unwrap_or_default()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &std::path::Path, body: &str) -> Program {
        let path = dir.join("helper");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Program {
            path,
            quiet: true,
            timeout: Duration::from_secs(5),
        }
    }

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("panel-client-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_request_goes_in_as_one_line_and_the_answer_comes_back() {
        let d = tempdir("roundtrip");
        let mut p = script(
            &d,
            &format!(
                "cat > {}/req\necho 'answer=data'\necho 'kind=mailbox&address=a%40x'",
                d.display()
            ),
        );
        let req = Record::new().with("op", "domain.show").with("text", "a\nb");
        let a = p.ask(&req).unwrap();
        assert_eq!(
            a,
            Answer::Data(vec![
                Record::new().with("kind", "mailbox").with("address", "a@x")
            ])
        );
        let sent = std::fs::read_to_string(d.join("req")).unwrap();
        assert_eq!(sent, format!("{}\n", req.encode()));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn no_answer_garbage_and_a_hang_are_errors() {
        let d = tempdir("errors");
        assert!(script(&d, "exit 1").ask(&Record::new()).is_err());
        assert!(script(&d, "echo hello").ask(&Record::new()).is_err());
        let mut slow = script(&d, "exec sleep 30");
        slow.timeout = Duration::from_millis(200);
        let t = std::time::Instant::now();
        let e = slow.ask(&Record::new()).unwrap_err();
        assert!(e.contains("no answer"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
        let missing = Program {
            path: d.join("nothing"),
            quiet: true,
            timeout: Duration::from_secs(1),
        };
        assert!(missing.clone().ask(&Record::new()).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}
