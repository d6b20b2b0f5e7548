//! Test harness: a private root directory with `/etc/mail`, the queue and
//! a log file, and builders that run the built binaries against it
//! (`MAILROOM_ROOT`), never touching the host's mail setup.
#![allow(dead_code)]

pub mod fake_dns;
pub mod fake_mx;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A throw-away root.
pub struct Root {
    pub dir: PathBuf,
}

/// The built binary `name` (cargo sets these for integration tests).
pub fn bin(name: &str) -> PathBuf {
    let var = format!("CARGO_BIN_EXE_{name}");
    std::env::var_os(&var)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{var} not set: run through cargo test"))
}

impl Root {
    /// A new root with a minimal configuration: host name
    /// `test.example`, log lines in `/var/log/mail.log`, no free-space floor.
    pub fn new(test: &str) -> Root {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("mailroom-test-{test}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for d in ["etc/mail", "var/spool/mqueue", "var/mail", "var/log"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        if is_root() {
            // The spool as Debian ships it (root:mail, 2775): pop3d keeps
            // group mail for its dotlocks, which its QUIT needs.
            let mail = nix::unistd::Group::from_name("mail").ok().flatten();
            if let Some(g) = mail {
                std::os::unix::fs::chown(dir.join("var/mail"), Some(0), Some(g.gid.as_raw()))
                    .unwrap();
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(dir.join("var/mail"), fs::Permissions::from_mode(0o2775))
                    .unwrap();
            }
        }
        let root = Root { dir };
        root.write(
            "etc/mail/mailroom.conf",
            "hostname = test.example\nlog = /var/log/mail.log\nmin_free_space = 0\ndelivery_mode = queue\n",
        );
        root
    }

    /// `rel` (a path as the system sees it, without the leading `/`)
    /// under this root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Write `text` to `rel`, making its directories.
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// The queue directory.
    pub fn queue(&self) -> PathBuf {
        self.path("var/spool/mqueue")
    }

    /// A command for binary `name` under this root.
    pub fn cmd(&self, name: &str) -> Command {
        let mut c = Command::new(bin(name));
        c.env("MAILROOM_ROOT", &self.dir);
        c
    }

    /// `sendmail ARGS < input`.
    pub fn sendmail(&self, args: &[&str], input: &[u8]) -> Output {
        run_with_input(self.cmd("sendmail").args(args), input)
    }

    /// Names of files in the queue, sorted.
    /// (Directories, such as the express run's `new/`, are not listed.)
    pub fn queue_files(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.queue())
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| !e.file_type().unwrap().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Ids of the queued messages.
    pub fn queued_ids(&self) -> Vec<String> {
        self.queue_files()
            .iter()
            .filter_map(|f| f.strip_prefix("qf").map(str::to_string))
            .collect()
    }

    /// The control file of message `id`.
    pub fn qf(&self, id: &str) -> String {
        String::from_utf8_lossy(&fs::read(self.queue().join(format!("qf{id}"))).unwrap())
            .into_owned()
    }

    /// The body file of message `id`.
    pub fn df(&self, id: &str) -> Vec<u8> {
        fs::read(self.queue().join(format!("df{id}"))).unwrap()
    }

    /// The only queued message's id.
    pub fn only_id(&self) -> String {
        let ids = self.queued_ids();
        assert_eq!(ids.len(), 1, "queue: {:?}", self.queue_files());
        ids[0].clone()
    }

    /// The mail log so far ("" before its first line).
    pub fn log(&self) -> String {
        self.read("var/log/mail.log")
    }

    /// A root whose `etc/passwd` has `root` and then `users`, each of them
    /// us ([`passwd_lines`] with our uid and gid), so that mailboxes and
    /// programs run as them need no privileges.  The configuration is
    /// [`Root::new`]'s; tests write their own over it.
    pub fn with_users(test: &str, users: &[&str]) -> Root {
        let r = Root::new(test);
        r.write(
            "etc/passwd",
            &format!("{ROOT_PASSWD_LINE}{}", passwd_lines(users, uid(), gid())),
        );
        r
    }

    /// The text of `rel`, or "" when it is missing (or not UTF-8): for
    /// files a test expects may not exist yet, like a mailbox.
    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    /// The text of `rel`, which must exist and be UTF-8 (else a panic
    /// naming it): for checks where a missing file is itself the failure.
    pub fn read_strict(&self, rel: &str) -> String {
        String::from_utf8(fs::read(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}")))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// Add `text` at the end of `rel` (made if missing).
    pub fn append(&self, rel: &str, text: &str) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.path(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        f.write_all(text.as_bytes()).unwrap();
    }

    /// The mbox of `user` in `var/mail` ("" when there is none yet).
    pub fn mbox(&self, user: &str) -> String {
        self.read(&format!("var/mail/{user}"))
    }

    /// `mailroom ARGS` with nothing on stdin.
    pub fn mailroom(&self, args: &[&str]) -> Output {
        self.mailroom_with_input(args, b"")
    }

    /// `mailroom ARGS < input`.
    pub fn mailroom_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        run_with_input(self.cmd("mailroom").args(args), input)
    }

    /// The output of `mailroom ARGS`, which must exit 0 (the failure shows
    /// the arguments, stdout and stderr).
    pub fn mailroom_ok(&self, args: &[&str]) -> String {
        let o = self.mailroom(args);
        assert_eq!(
            code(&o),
            0,
            "mailroom {args:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }

    /// `qrun ARGS` (`-q`: one run over the queue).
    pub fn qrun(&self, args: &[&str]) -> Output {
        self.cmd("qrun").args(args).output().expect("run qrun")
    }

    /// `deliver ARGS < input`.
    pub fn deliver(&self, args: &[&str], input: &[u8]) -> Output {
        run_with_input(self.cmd("deliver").args(args), input)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_TEST_ROOT").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Run `cmd` with `input` on stdin; collect output.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        let mut stdin = child.stdin.take().unwrap();
        // The program may exit before reading everything (usage errors).
        let _ = stdin.write_all(input);
    }
    child.wait_with_output().expect("wait")
}

/// The standard output of `o`, which must have exited 0 (the failure
/// shows stdout and stderr).
pub fn ok(o: &Output) -> String {
    assert_eq!(code(o), 0, "stdout: {}\nstderr: {}", stdout(o), stderr(o));
    stdout(o)
}

/// Exit code of an output (-1 when killed by a signal).
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Standard error of an output, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Standard output of an output, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Lines of the `H` records of a control file, continuation lines joined.
pub fn headers(qf: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in qf.lines() {
        if let Some(h) = l.strip_prefix('H') {
            out.push(h.to_string());
        } else if (l.starts_with('\t') || l.starts_with(' ')) && !out.is_empty() {
            let last = out.last_mut().unwrap();
            last.push('\n');
            last.push_str(l);
        }
    }
    out
}

/// The `R` records (recipients) of a control file, without flags.
pub fn recipients(qf: &str) -> Vec<String> {
    qf.lines()
        .filter_map(|l| l.strip_prefix('R'))
        .map(|r| {
            r.split_once(':')
                .map(|(_, a)| a.to_string())
                .unwrap_or_default()
        })
        .collect()
}

/// Our (real) uid.
pub fn uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// Our (real) gid.
pub fn gid() -> u32 {
    // SAFETY: getgid cannot fail.
    unsafe { libc::getgid() }
}

/// The uid of test users who log in (POP3, SMTP AUTH): ours, or 4242 when
/// we are root, since root never gets a login and a root test can give
/// files to any uid.
pub fn login_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    match unsafe { libc::geteuid() } {
        0 => 4242,
        me => me,
    }
}

/// The first line of every test root's `etc/passwd`.
pub const ROOT_PASSWD_LINE: &str = "root:x:0:0:root:/root:/bin/sh\n";

/// `etc/passwd` lines for `users`, each with `uid` and `gid`, its name as
/// GECOS, home `/home/NAME` and shell `/bin/sh`.
pub fn passwd_lines(users: &[&str], uid: u32, gid: u32) -> String {
    users
        .iter()
        .map(|n| format!("{n}:x:{uid}:{gid}:{n}:/home/{n}:/bin/sh\n"))
        .collect()
}

/// The crypt(3) hash (SHA-512) of "secret", the password
/// [`PopSession::login`] and the other login tests give.
pub const SECRET_HASH: &str = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";

/// An `etc/shadow` with `root` locked and `users` with the password
/// "secret" ([`SECRET_HASH`]).
pub fn shadow_with_secret(users: &[&str]) -> String {
    let mut s = String::from("root:*:19000:0:99999:7:::\n");
    for n in users {
        s.push_str(&format!("{n}:{SECRET_HASH}:19000:0:99999:7:::\n"));
    }
    s
}

/// Whether the tests run as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True when running under CI: the variable `CI` set to anything but
/// empty, `0`, `false` or `no` (CI systems set `CI=true`; `.ci/run` sets it
/// itself).
pub fn under_ci() -> bool {
    std::env::var("CI")
        .map(|v| !matches!(v.to_ascii_lowercase().as_str(), "" | "0" | "false" | "no"))
        .unwrap_or(false)
}

/// The running test cannot run here: `missing` (a program and its Debian
/// package, root, a tmpfs...) is not available.  Under CI, which installs
/// every prerequisite (`.ci/run`), that is a broken install step: this
/// panics naming it.  Elsewhere the test says SKIPPED on stderr, the skip
/// is listed for `make test`'s summary (the file `MAILROOM_SKIP_LOG`
/// names), and the caller returns.
pub fn skip(missing: &str) {
    let test = format!(
        "{}::{}",
        env!("CARGO_CRATE_NAME"),
        std::thread::current().name().unwrap_or("?")
    );
    assert!(
        !under_ci(),
        "{test}: prerequisite missing under CI: {missing} [.ci/run installs every one; \
         a skip would pass without testing]"
    );
    eprintln!("SKIPPED {test}: {missing}");
    if let Some(log) = std::env::var_os("MAILROOM_SKIP_LOG")
        && let Ok(mut f) = fs::OpenOptions::new().append(true).create(true).open(log)
    {
        // One write: lines of parallel tests stay whole.
        let _ = f.write_all(format!("cargo {test}: {missing}\n").as_bytes());
    }
}

/// Root, or [`skip`] (false) naming `why` root is needed.
pub fn need_root(why: &str) -> bool {
    if !is_root() {
        skip(&format!("root ({why})"));
    }
    is_root()
}

/// Whether `program` runs here (`program ARGS` exits 0), else [`skip`]
/// (false) naming it and its Debian `package`.
pub fn need_program(program: &str, args: &[&str], package: &str) -> bool {
    let ok = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip(&format!(
            "{program} (package {package}) is missing or does not work here"
        ));
    }
    ok
}

/// Run `script` with sh in a private mount namespace (`unshare --mount`,
/// in a user namespace mapped to root when not root), with
/// `MAILROOM_ROOT` set to `r`.  The script exits 99 when it cannot make
/// its mounts (a tmpfs over part of `r`, a read-only bind); then, or when
/// the namespace cannot be made at all, the test is skipped ([`skip`])
/// and None returned.  Otherwise the output, whatever the exit status.
pub fn in_mount_namespace(r: &Root, script: &str) -> Option<Output> {
    let started = r.path(".namespace-entered");
    let _ = fs::remove_file(&started);
    let script = format!("touch '{}' || exit 97; {script}", started.display());
    let mut cmd = Command::new("unshare");
    if is_root() {
        cmd.args(["--mount", "sh", "-c", &script]);
    } else {
        cmd.args(["--mount", "--map-root-user", "sh", "-c", &script]);
    }
    cmd.env("MAILROOM_ROOT", &r.dir);
    let o = match cmd.output() {
        Ok(o) => o,
        Err(e) => {
            skip(&format!("unshare (package util-linux): {e}"));
            return None;
        }
    };
    if !started.exists() || code(&o) == 99 {
        skip(&format!(
            "a private mount namespace with a tmpfs (unshare --mount{}; util-linux): {}",
            if is_root() { "" } else { " --map-root-user" },
            stderr(&o).trim()
        ));
        return None;
    }
    Some(o)
}

/// Whether anything (a dangling symlink too) is at `p`.
pub fn exists(p: &Path) -> bool {
    p.symlink_metadata().is_ok()
}

/// A small deterministic generator (kill delays, choices); seed it with
/// something printed so a failing run can be repeated.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next number (31 bits).
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `pop3d` under `root` with its standard input and output on one end of
/// a socket pair (as inetd would start it), in its own process group so a
/// kill takes its children too; returns the child and our end.
pub fn pop3d_on_socket_pair(root: &Root) -> (std::process::Child, std::os::unix::net::UnixStream) {
    use std::os::unix::process::CommandExt;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let child = Command::new(bin("pop3d"))
        .env_clear()
        .env("MAILROOM_ROOT", &root.dir)
        .process_group(0)
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(
            theirs.try_clone().unwrap(),
        )))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, ours)
}

/// A POP3 client on a pop3d started by [`pop3d_on_socket_pair`].  The
/// plain methods panic on an I/O error (a test's expectations); the
/// `try_` ones give `None` instead, for sessions that may be killed.
pub struct PopSession {
    pub child: std::process::Child,
    pub sock: std::os::unix::net::UnixStream,
    pub reader: std::io::BufReader<std::os::unix::net::UnixStream>,
}

impl PopSession {
    /// A session whose greeting is still to be read.
    pub fn start(root: &Root) -> PopSession {
        let (child, sock) = pop3d_on_socket_pair(root);
        sock.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let reader = std::io::BufReader::new(sock.try_clone().unwrap());
        PopSession {
            child,
            sock,
            reader,
        }
    }

    /// A session past its `+OK` greeting.
    pub fn greeted(root: &Root) -> PopSession {
        let mut p = PopSession::start(root);
        let greeting = p.line();
        assert!(greeting.starts_with("+OK"), "{greeting}");
        p
    }

    /// The next line ("" at the end of the session).
    pub fn line(&mut self) -> String {
        use std::io::BufRead;
        let mut l = String::new();
        self.reader.read_line(&mut l).unwrap();
        l
    }

    /// Send a command, return the first reply line.
    pub fn cmd(&mut self, c: impl AsRef<[u8]>) -> String {
        self.send(c.as_ref()).unwrap();
        self.line()
    }

    /// The lines of a multi-line reply up to ".".
    pub fn body(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        loop {
            let l = self.line();
            if l == ".\r\n" || l.is_empty() {
                return v;
            }
            v.push(l);
        }
    }

    /// The next line; `None` at the end of the session or on an error.
    pub fn try_line(&mut self) -> Option<String> {
        use std::io::BufRead;
        let mut l = String::new();
        match self.reader.read_line(&mut l) {
            Ok(n) if n > 0 => Some(l),
            _ => None,
        }
    }

    /// Send a command, return the first reply line; `None` if the
    /// session has ended.
    pub fn try_cmd(&mut self, c: impl AsRef<[u8]>) -> Option<String> {
        self.send(c.as_ref()).ok()?;
        self.try_line()
    }

    /// A multi-line reply; `None` if the session ends before its ".".
    pub fn try_body(&mut self) -> Option<Vec<String>> {
        let mut v = Vec::new();
        loop {
            let l = self.try_line()?;
            if l == ".\r\n" {
                return Some(v);
            }
            v.push(l);
        }
    }

    /// USER and PASS with the password the test roots give every user.
    pub fn login(&mut self, name: &str) {
        assert_eq!(self.cmd(format!("USER {name}")), "+OK\r\n");
        assert_eq!(self.cmd("PASS secret"), "+OK Logged in.\r\n");
    }

    /// Hang up (if the session has not ended) and wait for pop3d.
    pub fn finish(mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        let _ = self.child.wait();
    }

    fn send(&mut self, c: &[u8]) -> std::io::Result<()> {
        let mut line = c.to_vec();
        line.extend_from_slice(b"\r\n");
        self.sock.write_all(&line)
    }
}

/// A self-signed certificate in the root's `/etc/mail/tls` (made with
/// openssl, which CI installs).
pub fn install_certificate(r: &Root) {
    let dir = r.path("etc/mail/tls");
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=test.example", "-keyout"])
        .arg(dir.join("mail.key"))
        .arg("-out")
        .arg(dir.join("mail.crt"))
        .output()
        .expect("openssl (needed to make a test certificate)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
