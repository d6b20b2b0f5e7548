//! `mailroom mailbox add|remove|list|passwd|quota`: mailboxes, the POP3
//! accounts of a hosting panel.
//!
//! ## What a mailbox is
//!
//! By default a **system user**, so that real sendmail 8 resolves every
//! address the same way from the files mailroom writes:
//!
//! * `mailbox add info@shop.example` creates the user `info-shop` (the
//!   local part, `-`, the domain's first label; lower case,
//!   `[a-z][a-z0-9_-]*`, at most 32 characters; a name already in use gets
//!   `-2`, `-3`, ...), uid the next free one above the highest in
//!   1000..59999, primary group `mail`, home `/nonexistent`, shell
//!   `/usr/sbin/nologin`, GECOS the address; its `/etc/shadow` line holds a
//!   SHA-512 crypt hash (`$6$`, 16 random salt characters from
//!   `/dev/urandom`, the system's `crypt(3)`); and the virtusertable line
//!   `info@shop.example  info-shop`.  `/etc/passwd`, `/etc/shadow` and the
//!   virtusertable change in one journaled [`Change`] (under `lckpwdf()`),
//!   so an interrupted command leaves all of them old or all new.  The
//!   empty mbox `/var/mail/info-shop` (owner the user, group `mail`, mode
//!   0660) is created after the commit.  The POP3 login is the address.
//! * `mailbox add NAME` (no `@`) creates the system user `NAME`: mail for
//!   `NAME@` every local domain.
//! * `mailbox add ADDRESS --virtual` makes a virtual account in
//!   `/etc/mail/passwd` instead (see [`crate::accounts`]): no system user,
//!   the mailbox `virtual_mailbox_base/DOMAIN/LOCAL` owned by
//!   `virtual_user`.  Only mailroom knows those: real sendmail 8 does not.
//!
//! Passwords are read from the terminal without echo (twice), or one line
//! from stdin with `--password-stdin`; never from the command line.

use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::names::{derive_name, with_suffix};
use crate::accounts::{Accounts, MailboxPath, parse_virtual};
use crate::change::Change;
use crate::config::{Config, parse_size};
use crate::exit::{ExitCode, Failure, io_reason};
use crate::table::{class, makemap};
use crate::users::UserDb;

/// The range mailbox uids are taken from.
pub const FIRST_UID: u32 = 1000;
pub const LAST_UID: u32 = 59999;
/// Home and shell of a mailbox user: no shell login, no home.
pub const HOME: &str = "/nonexistent";
pub const SHELL: &str = "/usr/sbin/nologin";
/// Longest user name.
pub const MAX_USER: usize = 32;

const ADD_HELP: &str = "\
Examples:
  mailroom mailbox add info@shop.example
      asks for the password twice; creates the system user info-shop,
      its /etc/shadow hash, the virtusertable line
      'info@shop.example info-shop' and the mbox /var/mail/info-shop
  echo 's3cret' | mailroom mailbox add intern@example.com --password-stdin --quota 200M
  mailroom mailbox add bob
      the system user bob: mail to bob@ every local domain
  mailroom mailbox add orders@virtual.example --virtual
      an account in /etc/mail/passwd (mailroom only; sendmail 8 does not
      know those)

The domain must be known first: mailroom domain add shop.example.
The POP3 login is the address (info@shop.example), or the name for a bare
NAME.";

const MAILBOX_HELP: &str = "\
Examples:
  mailroom mailbox add info@shop.example
  mailroom mailbox list
  mailroom mailbox passwd info@shop.example
  mailroom mailbox quota intern@example.com 200M
  mailroom mailbox remove info@shop.example --keep-mail

Files: /etc/passwd and /etc/shadow (system users), /etc/mail/virtusertable
(address -> user), /etc/mail/quotas (USER SIZE), /etc/mail/passwd (virtual
accounts), /var/mail/USER (the mailboxes).  Every change is one journaled
transaction: an interrupted command leaves the old files or the new ones.";

/// `mailroom mailbox ...`
#[derive(Subcommand, Debug)]
pub enum MailboxAction {
    /// Create a mailbox: a system user (or with --virtual an account in
    /// /etc/mail/passwd), its password and its empty mbox.
    #[command(after_help = ADD_HELP)]
    Add {
        /// local@domain (the domain must be known), or a bare user NAME.
        address: String,
        /// A virtual account in /etc/mail/passwd instead of a system user.
        #[arg(long = "virtual")]
        is_virtual: bool,
        /// Read the password from the first line of stdin (for scripts).
        #[arg(long)]
        password_stdin: bool,
        /// A size limit for the mailbox (200M, 1G; see 'mailbox quota').
        #[arg(long, value_name = "SIZE")]
        quota: Option<String>,
    },
    /// Remove a mailbox: its user (or virtual account), its address, its
    /// quota, its forward, and its mail unless --keep-mail.
    #[command(after_help = "\
Examples:
  mailroom mailbox remove info@shop.example
  mailroom mailbox remove info@shop.example --keep-mail

Other entries that still deliver to the mailbox (aliases, other addresses)
make the command refuse and name them; --force removes the mailbox anyway
and leaves them (mail for them then bounces).  Only users mailroom created
(home /nonexistent, a nologin shell) are removed: login accounts are
userdel's business.")]
    Remove {
        /// The mailbox's address or user name.
        address: String,
        /// Leave the mailbox file (/var/mail/USER) in place.
        #[arg(long)]
        keep_mail: bool,
        /// Remove it even while aliases or other addresses still point at it.
        #[arg(long)]
        force: bool,
    },
    /// List the mailboxes: address, user, quota, size, mailbox file.
    #[command(after_help = "\
Examples:
  mailroom mailbox list
  mailroom mailbox list shop.example
  mailroom mailbox list --json

Mailboxes are the virtusertable's addresses that lead to a system user,
the virtual accounts of /etc/mail/passwd, and the other users with uids in
1000..59999 (every user account is a mail account).")]
    List {
        /// Only this domain's mailboxes.
        domain: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Set a mailbox's password (POP3 and SMTP AUTH); takes effect at the
    /// next login.
    #[command(after_help = "\
Examples:
  mailroom mailbox passwd info@shop.example
  printf '%s\\n' \"$NEWPW\" | mailroom mailbox passwd info@shop.example --password-stdin

The hash is SHA-512 crypt; system users' goes into /etc/shadow, virtual
accounts' into /etc/mail/passwd.")]
    Passwd {
        /// The mailbox's address or user name.
        address: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set or remove a mailbox's size limit (/etc/mail/quotas).
    #[command(after_help = "\
Examples:
  mailroom mailbox quota intern@example.com 200M
  mailroom mailbox quota intern@example.com unlimited
  mailroom mailbox quota intern@example.com none

SIZE is bytes with K, M or G (powers of 1024).  'unlimited' (or 0) means no
limit at all; 'none' removes the mailbox's own setting, so that the default
(mailbox_size_limit in mailroom.conf) applies.  Mail that would take the
mailbox past its limit is refused.")]
    Quota {
        /// The mailbox's address or user name.
        address: String,
        /// 200M, 1G, unlimited, or none.
        size: String,
    },
}

/// The long help of `mailroom mailbox`.
pub fn mailbox_help() -> &'static str {
    MAILBOX_HELP
}

/// Run `mailroom mailbox ACTION`; returns the exit code.
pub fn run(cfg: &Config, action: MailboxAction) -> i32 {
    let r = match action {
        MailboxAction::Add {
            address,
            is_virtual,
            password_stdin,
            quota,
        } => add(cfg, &address, is_virtual, password_stdin, quota.as_deref()),
        MailboxAction::Remove {
            address,
            keep_mail,
            force,
        } => remove(cfg, &address, keep_mail, force),
        MailboxAction::List { domain, json } => list(cfg, domain.as_deref(), json),
        MailboxAction::Passwd {
            address,
            password_stdin,
        } => passwd(cfg, &address, password_stdin),
        MailboxAction::Quota { address, size } => quota(cfg, &address, &size),
    };
    match r {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("mailroom: {f}");
            f.code.code()
        }
    }
}

// ---------------------------------------------------------------------
// Names.

/// A mailbox name as given: `local@domain` or a bare user name, lower
/// case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub local: String,
    pub domain: Option<String>,
}

impl Name {
    /// `local@domain`, or the bare name.
    pub fn text(&self) -> String {
        match &self.domain {
            Some(d) => format!("{}@{d}", self.local),
            None => self.local.clone(),
        }
    }
}

/// Parse a mailbox address or bare user name.
pub fn parse_name(s: &str) -> Result<Name, Failure> {
    let t = s.trim().to_ascii_lowercase();
    if t.contains('@') {
        let a = super::names::parse_address(&t)?;
        if a.local.contains('+') {
            return Err(Failure::usage(format!(
                "{t}: a mailbox address cannot contain '+'"
            ))
            .hint("'+' starts a detail: mail for user+detail@domain reaches user@domain's mailbox by itself"));
        }
        return Ok(Name {
            local: a.local,
            domain: a.domain,
        });
    }
    if !valid_user(&t) {
        return Err(
            Failure::usage(format!("{t:?} is not a user name mailroom can create")).hint(format!(
                "a letter, then letters, digits, '_' or '-', at most {MAX_USER} characters; \
             or give an address: local@domain"
            )),
        );
    }
    Ok(Name {
        local: t,
        domain: None,
    })
}

/// A user name mailroom creates: `[a-z][a-z0-9_-]*`, at most 32.
pub fn valid_user(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_USER
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

// ---------------------------------------------------------------------
// Passwords.

/// A password as typed (zeroed when dropped).
pub struct Secret(pub Vec<u8>);

impl Drop for Secret {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: a valid, aligned, exclusive pointer; volatile so the
            // clearing is not optimised away.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Check a password's form: not empty, no NUL, no line break.
pub fn check_password(pw: &[u8]) -> Result<(), String> {
    if pw.is_empty() {
        return Err("the password is empty".into());
    }
    if pw.iter().any(|&b| b == 0 || b == b'\n' || b == b'\r') {
        return Err("the password contains a NUL or a line break".into());
    }
    Ok(())
}

/// SHA-512 crypt of `pw` with 16 random salt characters.
pub fn hash_password(pw: &[u8]) -> Result<String, Failure> {
    const ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut raw = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .map_err(|e| Failure::io("cannot read", Path::new("/dev/urandom"), &e))?;
    // 256 is a multiple of 64: no bias.
    let salt: String = raw
        .iter()
        .map(|b| ALPHABET[(*b % 64) as usize] as char)
        .collect();
    let setting = format!("$6${salt}$");
    let out = crypt(pw, &setting).ok_or_else(|| {
        Failure::new(
            ExitCode::Unavailable,
            "cannot hash the password: the system's crypt(3) (libcrypt) is missing or refuses SHA-512",
        )
        .hint("install libcrypt1 (or libxcrypt)")
    })?;
    if !out.starts_with(&setting) || out.len() < setting.len() + 80 {
        return Err(Failure::new(
            ExitCode::Software,
            "cannot hash the password: crypt(3) returned something unexpected",
        ));
    }
    Ok(out)
}

/// The system's crypt(3) (the one pop3d checks with).
fn crypt(pw: &[u8], setting: &str) -> Option<String> {
    let key = std::ffi::CString::new(pw).ok()?;
    let setting = std::ffi::CString::new(setting).ok()?;
    let f = crate::pop3::login::system_crypt()?;
    // SAFETY: two valid C strings; crypt returns a static buffer or NULL
    // (this process is single-threaded here).
    let out = unsafe { f(key.as_ptr(), setting.as_ptr()) };
    if out.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated string from crypt.
    let s = unsafe { std::ffi::CStr::from_ptr(out) }
        .to_string_lossy()
        .into_owned();
    (!s.starts_with('*')).then_some(s)
}

/// The password: one line of stdin, or asked twice on the terminal.
pub fn read_password(who: &str, from_stdin: bool) -> Result<Secret, Failure> {
    let bad = |why: String| Failure::new(ExitCode::DataErr, why).hint("nothing was changed");
    if from_stdin {
        let mut line = Vec::new();
        io::stdin()
            .lock()
            .take(4096)
            .read_until(b'\n', &mut line)
            .map_err(|e| Failure::new(ExitCode::IoErr, format!("cannot read stdin: {e}")))?;
        let mut pw = Secret(line);
        while pw.0.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            pw.0.pop();
        }
        check_password(&pw.0).map_err(|w| bad(format!("{w} (on stdin)")))?;
        return Ok(pw);
    }
    let mut tty = Tty::open().map_err(|e| {
        Failure::new(
            ExitCode::Usage,
            format!("no terminal to ask for the password ({})", io_reason(&e)),
        )
        .hint("give it on stdin with --password-stdin")
    })?;
    let first = tty
        .ask(&format!("New password for {who}: "))
        .map_err(|e| Failure::new(ExitCode::IoErr, format!("cannot read the password: {e}")))?;
    check_password(&first.0).map_err(bad)?;
    let second = tty
        .ask("Retype the password: ")
        .map_err(|e| Failure::new(ExitCode::IoErr, format!("cannot read the password: {e}")))?;
    if first.0 != second.0 {
        return Err(bad("the two passwords differ".into()));
    }
    Ok(first)
}

/// The controlling terminal, for a prompt without echo.
struct Tty {
    file: fs::File,
}

/// The terminal's settings while echo is off, for the signal handler.
static SAVED_TERMIOS: std::sync::OnceLock<(i32, libc::termios)> = std::sync::OnceLock::new();

extern "C" fn restore_and_die(sig: libc::c_int) {
    if let Some((fd, t)) = SAVED_TERMIOS.get() {
        // SAFETY: tcsetattr, signal and raise are async-signal-safe.
        unsafe {
            libc::tcsetattr(*fd, libc::TCSANOW, t);
        }
    }
    // SAFETY: as above.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

impl Tty {
    fn open() -> io::Result<Tty> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
            .open("/dev/tty")?;
        Ok(Tty { file })
    }

    /// Print `prompt`, read a line with echo off.
    fn ask(&mut self, prompt: &str) -> io::Result<Secret> {
        use std::os::unix::io::AsRawFd;
        let fd = self.file.as_raw_fd();
        // SAFETY: an all-zero termios is a valid out-parameter.
        let mut old: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor and pointer.
        if unsafe { libc::tcgetattr(fd, &mut old) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let _ = SAVED_TERMIOS.set((fd, old));
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            // SAFETY: installing a handler that only calls async-signal-safe
            // functions.
            unsafe {
                libc::signal(sig, restore_and_die as *const () as libc::sighandler_t);
            }
        }
        let mut quiet = old;
        quiet.c_lflag &= !(libc::ECHO | libc::ECHOE | libc::ECHOK);
        quiet.c_lflag |= libc::ECHONL;
        self.file.write_all(prompt.as_bytes())?;
        self.file.flush()?;
        // SAFETY: valid descriptor and pointer.
        if unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut line = Secret(Vec::new());
        let mut byte = [0u8; 1];
        let r = loop {
            match self.file.read(&mut byte) {
                Ok(0) => break Ok(()),
                Ok(_) if byte[0] == b'\n' => break Ok(()),
                Ok(_) if line.0.len() < 4096 => line.0.push(byte[0]),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        // SAFETY: valid descriptor and pointer.
        unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &old) };
        r?;
        if line.0.last() == Some(&b'\r') {
            line.0.pop();
        }
        Ok(line)
    }
}

// ---------------------------------------------------------------------
// The password file lock.

unsafe extern "C" {
    fn lckpwdf() -> libc::c_int;
    fn ulckpwdf() -> libc::c_int;
}

/// `lckpwdf()` held (on the real system only: a private root has its
/// own files and no business with the host's lock).
pub struct PwLock(bool);

impl PwLock {
    pub fn take(cfg: &Config) -> Result<PwLock, Failure> {
        if !cfg.paths.is_system() {
            return Ok(PwLock(false));
        }
        // SAFETY: plain libc call; waits at most 15 seconds.
        if unsafe { lckpwdf() } != 0 {
            let e = io::Error::last_os_error();
            let code = if e.kind() == io::ErrorKind::PermissionDenied {
                ExitCode::NoPerm
            } else {
                ExitCode::TempFail
            };
            return Err(Failure::new(
                code,
                format!(
                    "cannot lock /etc/passwd and /etc/shadow (lckpwdf): {}",
                    io_reason(&e)
                ),
            )
            .hint(if code == ExitCode::NoPerm {
                "run mailroom as root"
            } else {
                "another program (useradd, passwd) is changing them; try again"
            }));
        }
        Ok(PwLock(true))
    }
}

impl Drop for PwLock {
    fn drop(&mut self) {
        if self.0 {
            // SAFETY: plain libc call.
            unsafe { ulckpwdf() };
        }
    }
}

// ---------------------------------------------------------------------
// The tables, as a change will leave them.

/// A file being edited.
#[derive(Debug)]
struct Text {
    path: PathBuf,
    text: String,
    lines: usize,
    dirty: bool,
    /// New lines holding a password hash, after `text`: the hash may come
    /// later (an import validates everything before hashing).
    secrets: Vec<SecretLine>,
}

/// `LOGIN:HASH REST`, the hash to come.
#[derive(Debug)]
struct SecretLine {
    login: String,
    hash: Option<String>,
    rest: String,
}

impl Text {
    fn new(path: PathBuf, text: String) -> Text {
        Text {
            path,
            lines: text.lines().count(),
            text,
            dirty: false,
            secrets: Vec::new(),
        }
    }

    /// Add a line with a hash (locked, `!`, until it is known); its number.
    fn push_secret(&mut self, login: &str, hash: Option<&str>, rest: String) -> usize {
        self.secrets.push(SecretLine {
            login: login.to_string(),
            hash: hash.map(str::to_string),
            rest,
        });
        self.dirty = true;
        self.lines + self.secrets.len()
    }

    /// The whole new content.
    fn render(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + self.secrets.len() * 140);
        out.push_str(&self.text);
        if !out.is_empty() && !out.ends_with('\n') && !self.secrets.is_empty() {
            out.push('\n');
        }
        for s in &self.secrets {
            out.push_str(&s.login);
            out.push(':');
            out.push_str(s.hash.as_deref().unwrap_or("!"));
            out.push_str(&s.rest);
            out.push('\n');
        }
        out
    }

    /// Append a line; its number.
    fn append(&mut self, line: &str) -> usize {
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
        self.text.push_str(line);
        self.text.push('\n');
        self.lines += 1;
        self.dirty = true;
        self.lines
    }

    fn replace(&mut self, text: String) {
        if text != self.text {
            self.lines = text.lines().count();
            self.text = text;
            self.dirty = true;
        }
    }
}

/// A user of the passwd file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
    /// Its line in the passwd file (0: added by this change).
    pub line: usize,
}

impl SysUser {
    /// Created by mailroom (or like it): no home, no shell, a normal uid.
    pub fn is_mailbox_only(&self) -> bool {
        self.home == HOME && self.shell.ends_with("/nologin") && self.uid >= FIRST_UID
    }
}

/// A mailbox found by its address or name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A system user; `key` is the virtusertable key it was found by.
    System { user: SysUser, key: Option<String> },
    /// A virtual account of `/etc/mail/passwd`.
    Virtual { login: String, line: usize },
}

/// A planned mailbox (validated, names reserved, not yet written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub address: String,
    pub kind: PlanKind,
    pub quota: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanKind {
    System {
        user: String,
        uid: u32,
        gid: u32,
        vt_key: Option<String>,
    },
    Virtual {
        login: String,
        mailbox: PathBuf,
        owner: (u32, u32),
    },
}

impl Plan {
    /// The system user or virtual login.
    pub fn login(&self) -> &str {
        match &self.kind {
            PlanKind::System { user, .. } => user,
            PlanKind::Virtual { login, .. } => login,
        }
    }
}

/// Everything a mailbox change needs to know, loaded once (an import
/// adds thousands of mailboxes against the same indexes).
#[derive(Debug)]
pub struct Tables {
    passwd: Text,
    shadow: Text,
    vt: Text,
    quotas: Text,
    vpasswd: Text,
    aliases: Text,
    users: HashMap<String, SysUser>,
    used_uids: HashSet<u32>,
    max_uid: u32,
    /// Lower-case virtusertable key → (value, where).
    vt_keys: HashMap<String, (String, String)>,
    /// Virtual login → (line, where).
    vlogins: HashMap<String, (usize, String)>,
    /// Alias name → where.
    alias_names: HashMap<String, String>,
    local_domains: HashSet<String>,
    virtual_domains: HashSet<String>,
    /// Also ask NSS (the real system; a private root has only its files).
    system: bool,
    mail_gid: u32,
    virtual_owner: Option<(u32, u32)>,
    virtual_user: String,
    virtual_base: PathBuf,
    /// Where the entries added now come from, for messages ("users.txt:7").
    pub origin: Option<String>,
}

/// `PATH:LINE: TEXT`, the text cut short.
fn at(path: &Path, line: usize, text: &str) -> String {
    let mut t = text.trim().to_string();
    if t.chars().count() > 72 {
        t = t.chars().take(69).collect::<String>() + "...";
    }
    format!("{}:{line}: {t}", path.display())
}

impl Tables {
    /// The tables as `change` would leave them.
    pub fn load(cfg: &Config, change: &Change) -> Result<Tables, Failure> {
        Tables::load_with(cfg, &|p| change.text(p))
    }

    /// The tables on disk (for reading commands).
    pub fn load_disk(cfg: &Config) -> Result<Tables, Failure> {
        Tables::load_with(cfg, &|p| match fs::read(p) {
            Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(Failure::io("cannot read", p, &e).hint("run mailroom as root")),
        })
    }

    /// The tables on disk as far as they are readable (for `list` by a
    /// user who may not read `/etc/shadow`).
    pub fn load_readable(cfg: &Config) -> Tables {
        Tables::load_with(cfg, &|p| {
            Ok(fs::read(p)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default())
        })
        .expect("reading never fails")
    }

    fn load_with(
        cfg: &Config,
        read: &dyn Fn(&Path) -> Result<String, Failure>,
    ) -> Result<Tables, Failure> {
        let p = &cfg.paths;
        let text = |path: PathBuf| -> Result<Text, Failure> {
            let t = read(&path)?;
            Ok(Text::new(path, t))
        };
        let passwd = text(p.resolve("/etc/passwd"))?;
        let shadow = text(p.resolve("/etc/shadow"))?;
        let vt = text(p.etc_mail("virtusertable"))?;
        let quotas = text(p.etc_mail("quotas"))?;
        let vpasswd = text(p.etc_mail("passwd"))?;
        let aliases = text(p.etc_mail("aliases"))?;
        let lhn = read(&p.etc_mail("local-host-names"))?;
        let vdom = read(&p.etc_mail("virtuser-domains"))?;

        let mut users = HashMap::new();
        let mut used_uids = HashSet::new();
        for e in crate::users::parse_passwd(&passwd.text) {
            let u = e.user;
            used_uids.insert(u.uid);
            users.entry(u.name.clone()).or_insert(SysUser {
                name: u.name,
                uid: u.uid,
                gid: u.gid,
                gecos: u.gecos,
                home: u.home,
                shell: u.shell,
                line: e.line,
            });
        }
        let max_uid = used_uids
            .iter()
            .copied()
            .filter(|u| (FIRST_UID..=LAST_UID).contains(u))
            .max()
            .unwrap_or(FIRST_UID - 1);
        let mut vt_keys = HashMap::new();
        for (k, v, line) in makemap::entries(&vt.text)
            .into_iter()
            .map(|l| (l.written, l.value, l.line))
        {
            let w = at(&vt.path, line, &format!("{k} {v}"));
            vt_keys.entry(k.to_ascii_lowercase()).or_insert((v, w));
        }
        let mut vlogins = HashMap::new();
        for e in parse_virtual(&vpasswd.text) {
            let w = at(
                &vpasswd.path,
                e.line,
                &format!("virtual mailbox account {}", e.login),
            );
            vlogins.entry(e.login).or_insert((e.line, w));
        }
        let mut alias_names = HashMap::new();
        for e in crate::aliases::entries(&aliases.text) {
            let w = at(
                &aliases.path,
                e.line,
                &format!("{}: {}", e.name, e.shown_value()),
            );
            alias_names.entry(e.name).or_insert(w);
        }
        let mut local_domains: HashSet<String> =
            class::words(&lhn).into_iter().map(|(w, _)| w).collect();
        let host = cfg.hostname.to_ascii_lowercase();
        if let Some(short) = host.split('.').next() {
            local_domains.insert(short.to_string());
        }
        local_domains.insert(host);
        local_domains.insert("localhost".into());
        if let Ok(h) = nix::unistd::gethostname()
            && let Some(h) = h.to_str()
        {
            local_domains.insert(h.to_ascii_lowercase());
        }
        let virtual_domains = class::words(&vdom).into_iter().map(|(w, _)| w).collect();
        let mail_gid = mail_gid(cfg);
        let virtual_owner = users
            .get(&cfg.virtual_user)
            .map(|u| (u.uid, u.gid))
            .or_else(|| {
                UserDb::for_root(&cfg.paths)
                    .by_name(&cfg.virtual_user)
                    .map(|u| (u.uid, u.gid))
            });
        Ok(Tables {
            passwd,
            shadow,
            vt,
            quotas,
            vpasswd,
            aliases,
            users,
            used_uids,
            max_uid,
            vt_keys,
            vlogins,
            alias_names,
            local_domains,
            virtual_domains,
            system: cfg.paths.is_system(),
            mail_gid,
            virtual_owner,
            virtual_user: cfg.virtual_user.clone(),
            virtual_base: cfg.virtual_mailbox_base.clone(),
            origin: None,
        })
    }

    /// Put every changed file into `change`.
    pub fn store(&self, change: &mut Change) {
        for t in [
            &self.passwd,
            &self.shadow,
            &self.vt,
            &self.quotas,
            &self.vpasswd,
            &self.aliases,
        ] {
            if t.dirty {
                change.set(&t.path, t.render());
            }
        }
    }

    /// Put only `/etc/shadow` and `/etc/mail/passwd` into `change` (after
    /// [`Tables::set_hash`], when other edits were staged since
    /// [`Tables::store`]).
    pub fn store_secrets(&self, change: &mut Change) {
        for t in [&self.shadow, &self.vpasswd] {
            if t.dirty {
                change.set(&t.path, t.render());
            }
        }
    }

    /// Fill in the hash of a mailbox applied without one.
    pub fn set_hashes(&mut self, hashes: &HashMap<String, String>) {
        for t in [&mut self.shadow, &mut self.vpasswd] {
            for s in t.secrets.iter_mut() {
                if let Some(h) = hashes.get(&s.login) {
                    s.hash = Some(h.clone());
                }
            }
        }
    }

    /// The gid of group `mail`.
    pub fn mail_group(&self) -> u32 {
        self.mail_gid
    }

    /// Whether `/etc/passwd` or `/etc/shadow` would change.
    pub fn touches_system_users(&self) -> bool {
        self.passwd.dirty || self.shadow.dirty
    }

    /// Is `domain` local (class w) or virtual?
    pub fn is_known_domain(&self, domain: &str) -> bool {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        self.local_domains.contains(&d) || self.virtual_domains.contains(&d)
    }

    /// A system user: the passwd file's, or (on the real system) NSS's.
    fn user(&self, name: &str) -> Option<SysUser> {
        if let Some(u) = self.users.get(name) {
            return Some(u.clone());
        }
        if self.system {
            return crate::users::by_name(name).map(|u| SysUser {
                name: u.name,
                uid: u.uid,
                gid: u.gid,
                gecos: u.gecos,
                home: u.home,
                shell: u.shell,
                line: 0,
            });
        }
        None
    }

    fn user_where(&self, u: &SysUser) -> String {
        if u.line > 0 {
            at(
                &self.passwd.path,
                u.line,
                &format!("system user {} (uid {})", u.name, u.uid),
            )
        } else if self.users.contains_key(&u.name) {
            self.pending_where()
        } else {
            format!("the system user {} (uid {}, from NSS)", u.name, u.uid)
        }
    }

    fn pending_where(&self) -> String {
        self.origin
            .clone()
            .unwrap_or_else(|| "an entry added by this command".into())
    }

    /// What already owns `name`, if anything: `FILE:LINE: entry`.
    pub fn taken(&self, name: &Name) -> Option<String> {
        match &name.domain {
            Some(d) => {
                let key = name.text();
                if let Some((_, w)) = self.vt_keys.get(&key) {
                    return Some(w.clone());
                }
                if let Some((_, w)) = self.vlogins.get(&key) {
                    return Some(w.clone());
                }
                // In a local domain with no `@domain` entry (a catch-all,
                // or one refusing unknown addresses: either comes first),
                // local@domain reaches the user or alias `local` when the
                // virtusertable does not claim it.
                if self.local_domains.contains(d) && !self.vt_keys.contains_key(&format!("@{d}")) {
                    return self.bare_taken(&name.local);
                }
                None
            }
            None => self.bare_taken(&name.local),
        }
    }

    fn bare_taken(&self, name: &str) -> Option<String> {
        if let Some(w) = self.alias_names.get(name) {
            return Some(w.clone());
        }
        if let Some(u) = self.user(name) {
            return Some(self.user_where(&u));
        }
        self.vlogins.get(name).map(|(_, w)| w.clone())
    }

    /// A user name free for a new mailbox user.
    fn name_free(&self, n: &str) -> bool {
        !self.alias_names.contains_key(n) && self.user(n).is_none() && !self.vlogins.contains_key(n)
    }

    fn next_uid(&mut self) -> Result<u32, Failure> {
        let mut uid = self.max_uid + 1;
        while uid <= LAST_UID
            && (self.used_uids.contains(&uid) || self.system && crate::users::by_uid(uid).is_some())
        {
            uid += 1;
        }
        if uid > LAST_UID {
            return Err(Failure::new(
                ExitCode::CantCreat,
                format!("no free uid left in {FIRST_UID}..{LAST_UID}"),
            ));
        }
        self.max_uid = uid;
        self.used_uids.insert(uid);
        Ok(uid)
    }

    /// Validate a new mailbox and reserve its names (nothing is written
    /// until [`Tables::apply`]).
    pub fn plan(
        &mut self,
        address: &str,
        is_virtual: bool,
        quota: Option<&str>,
    ) -> Result<Plan, Failure> {
        let name = parse_name(address)?;
        let text = name.text();
        if let Some(d) = &name.domain
            && !self.is_known_domain(d)
        {
            return Err(Failure::new(
                ExitCode::NoUser,
                format!("{d} is not a domain of this host"),
            )
            .hint(format!(
                "add it first: 'mailroom domain add {d}' (or --virtual), see 'mailroom domain list'"
            )));
        }
        if let Some(owner) = self.taken(&name) {
            return Err(Failure::new(
                ExitCode::DataErr,
                format!("{text} is already taken: {owner}"),
            )
            .hint("pick another address, or remove that entry first (see 'mailroom alias list', 'mailroom mailbox list')"));
        }
        let quota = quota.map(parse_quota).transpose()?;
        let quota = match quota {
            Some(QuotaSetting::Limit(s)) => Some(s),
            Some(QuotaSetting::Default) | None => None,
        };
        let here = self.pending_where();
        let kind = if is_virtual {
            let Some(owner) = self.virtual_owner else {
                return Err(Failure::new(
                    ExitCode::Config,
                    format!(
                        "virtual mailboxes belong to the user {}, and there is no such user",
                        self.virtual_user
                    ),
                )
                .hint(format!(
                    "create it (useradd --system --gid mail --home-dir {} --shell {SHELL} {}) \
                     or set virtual_user in mailroom.conf",
                    self.virtual_base.display(),
                    self.virtual_user
                )));
            };
            let (dir, file) = match &name.domain {
                Some(d) => (d.clone(), name.local.clone()),
                None => ("local".to_string(), name.local.clone()),
            };
            self.vlogins.insert(text.clone(), (0, here));
            PlanKind::Virtual {
                login: text.clone(),
                mailbox: self.virtual_base.join(dir).join(file),
                owner,
            }
        } else {
            let user = match &name.domain {
                None => name.local.clone(),
                Some(d) => {
                    let base = derive_name(&format!("{}@{d}", name.local));
                    let mut n = 1;
                    let mut cand = base.clone();
                    while !self.name_free(&cand) {
                        n += 1;
                        cand = with_suffix(&base, n);
                    }
                    cand
                }
            };
            let uid = self.next_uid()?;
            self.users.insert(
                user.clone(),
                SysUser {
                    name: user.clone(),
                    uid,
                    gid: self.mail_gid,
                    gecos: text.clone(),
                    home: HOME.into(),
                    shell: SHELL.into(),
                    line: 0,
                },
            );
            let vt_key = name.domain.as_ref().map(|_| text.clone());
            if let Some(k) = &vt_key {
                self.vt_keys.insert(k.clone(), (user.clone(), here));
            }
            PlanKind::System {
                user,
                uid,
                gid: self.mail_gid,
                vt_key,
            }
        };
        Ok(Plan {
            address: text,
            kind,
            quota,
        })
    }

    /// Write a planned mailbox with its password hash.
    pub fn apply(&mut self, plan: &Plan, hash: Option<&str>) {
        match &plan.kind {
            PlanKind::System {
                user,
                uid,
                gid,
                vt_key,
            } => {
                let line = self.passwd.append(&format!(
                    "{user}:x:{uid}:{gid}:{}:{HOME}:{SHELL}",
                    plan.address
                ));
                if let Some(u) = self.users.get_mut(user) {
                    u.line = line;
                }
                self.shadow.push_secret(user, hash, shadow_rest());
                if let Some(k) = vt_key {
                    let l = self.vt.append(&format!("{k}\t{user}"));
                    let w = at(&self.vt.path, l, &format!("{k} {user}"));
                    self.vt_keys.insert(k.clone(), (user.clone(), w));
                }
            }
            PlanKind::Virtual { login, .. } => {
                let l = self.vpasswd.push_secret(login, hash, ":::".into());
                let w = at(
                    &self.vpasswd.path,
                    l,
                    &format!("virtual mailbox account {login}"),
                );
                self.vlogins.insert(login.clone(), (l, w));
            }
        }
        if let Some(q) = &plan.quota {
            let key = plan.login().to_string();
            if makemap::get(&self.quotas.text, &key).is_some() {
                let t = makemap::set_entry(&self.quotas.text, &key, q);
                self.quotas.replace(t);
            } else {
                self.quotas.append(&format!("{key}\t{q}"));
            }
        }
    }

    /// Set the quota of the mailbox `address`; the quotas table's key.
    pub fn set_quota(&mut self, address: &str, setting: &QuotaSetting) -> Result<String, Failure> {
        let key = match self.find(address)? {
            Found::Virtual { login, .. } => {
                // The passwd file's quota field wins over the quotas table:
                // clear it so the table decides.
                if let Some(n) = set_virtual_fields(&self.vpasswd.text, &login, &[(3, "")]) {
                    self.vpasswd.replace(n);
                }
                login
            }
            Found::System { user, .. } => user.name,
        };
        match setting {
            QuotaSetting::Default => {
                if let Some(n) = makemap::remove_entry(&self.quotas.text, &key) {
                    self.quotas.replace(n);
                }
            }
            QuotaSetting::Limit(v) => {
                let n = makemap::set_entry(&self.quotas.text, &key, v);
                self.quotas.replace(n);
            }
        }
        Ok(key)
    }

    /// The mailbox `address` (an address or a user/login name) names.
    pub fn find(&self, address: &str) -> Result<Found, Failure> {
        let a = address.trim().to_ascii_lowercase();
        let none = || {
            Failure::new(ExitCode::NoUser, format!("no mailbox {a}"))
                .hint("see mailroom mailbox list")
        };
        if let Some((line, _)) = self.vlogins.get(&a) {
            return Ok(Found::Virtual {
                login: a,
                line: *line,
            });
        }
        match a.rsplit_once('@') {
            Some((local, domain)) => {
                if let Some((value, w)) = self.vt_keys.get(&a) {
                    let v = value.trim();
                    // (An aliases entry of the same name is its forward.)
                    if valid_user(v)
                        && let Some(u) = self.user(v)
                    {
                        return Ok(Found::System {
                            user: u,
                            key: Some(a),
                        });
                    }
                    if let Some((line, _)) = self.vlogins.get(&v.to_ascii_lowercase()) {
                        return Ok(Found::Virtual {
                            login: v.to_ascii_lowercase(),
                            line: *line,
                        });
                    }
                    return Err(Failure::new(
                        ExitCode::NoUser,
                        format!("{a} is not a mailbox: {w}"),
                    )
                    .hint("it is an alias or a forward: see mailroom alias list"));
                }
                if self.local_domains.contains(domain.trim_end_matches('.')) {
                    return self.find_bare(local).ok_or_else(none);
                }
                Err(none())
            }
            None => self.find_bare(&a).ok_or_else(none),
        }
    }

    fn find_bare(&self, name: &str) -> Option<Found> {
        self.user(name)
            .map(|u| Found::System { user: u, key: None })
    }

    /// Entries other than the mailbox's own that deliver to `target`
    /// (a user name or virtual login): `FILE:LINE: entry` each.
    fn references(&self, target: &str, own_keys: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v, line) in makemap::entries(&self.vt.text)
            .into_iter()
            .map(|l| (l.written, l.value, l.line))
        {
            if own_keys.contains(&k.to_ascii_lowercase()) {
                continue;
            }
            if self.names_target(&v, target) {
                out.push(at(&self.vt.path, line, &format!("{k} {v}")));
            }
        }
        for e in crate::aliases::entries(&self.aliases.text) {
            if e.name == target {
                continue; // its own forward, removed with it
            }
            if crate::aliases::split_list(&e.value)
                .iter()
                .any(|t| self.names_target(t, target))
            {
                let text = format!("{}: {}", e.name, e.shown_value());
                out.push(at(&self.aliases.path, e.line, &text));
            }
        }
        out
    }

    /// Does the table value or alias target `t` deliver to `target`?
    fn names_target(&self, t: &str, target: &str) -> bool {
        let t = t
            .trim()
            .trim_start_matches('\\')
            .trim_matches('"')
            .to_ascii_lowercase();
        if t == target {
            return true;
        }
        match t.rsplit_once('@') {
            Some((l, d)) => {
                !target.contains('@')
                    && l == target
                    && self.local_domains.contains(d)
                    && !self.vt_keys.contains_key(&t)
            }
            None => false,
        }
    }
}

/// A new shadow line after the hash: last change today, no ageing.
fn shadow_rest() -> String {
    format!(":{}:0:99999:7:::", crate::date::now() / 86400)
}

fn shadow_line(user: &str, hash: &str) -> String {
    format!("{user}:{hash}{}", shadow_rest())
}

/// The gid of group `mail`: the root's `/etc/group`, else NSS, else 8.
fn mail_gid(cfg: &Config) -> u32 {
    if let Ok(t) = fs::read_to_string(cfg.paths.resolve("/etc/group")) {
        for l in t.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 3
                && f[0] == "mail"
                && let Ok(g) = f[2].parse()
            {
                return g;
            }
        }
    }
    crate::users::group_id("mail").unwrap_or(8)
}

/// Whether a line (without its newline) is `name`'s passwd/shadow-style line.
fn colon_line_of(name: &str) -> impl Fn(&str) -> bool + '_ {
    move |body| body.split(':').next() == Some(name) && body.contains(':')
}

/// Whether a line is virtual login `login`'s line in `/etc/mail/passwd`
/// (fields: 0 login, 1 secret, 2 mailbox, 3 quota, 4 full name; the last
/// may hold colons).  Logins compare without case; `#` lines are comments.
fn virtual_line_of(login: &str) -> impl Fn(&str) -> bool + '_ {
    move |body| {
        !body.trim_start().starts_with('#')
            && body.contains(':')
            && body
                .split(':')
                .next()
                .is_some_and(|f| f.trim().eq_ignore_ascii_case(login))
    }
}

/// Remove the passwd/shadow-style line of `name`; `None` when absent.
pub fn remove_colon_line(text: &str, name: &str) -> Option<String> {
    remove_lines_of(text, colon_line_of(name))
}

/// Set fields of `name`'s colon-separated line; `None` when absent.
fn set_colon_fields(text: &str, name: &str, set: &[(usize, &str)]) -> Option<String> {
    set_fields_of(text, colon_line_of(name), usize::MAX, set)
}

/// Set fields of virtual login `login`'s line; `None` when absent.
fn set_virtual_fields(text: &str, login: &str, set: &[(usize, &str)]) -> Option<String> {
    set_fields_of(text, virtual_line_of(login), 5, set)
}

/// Remove virtual login `login`'s line; `None` when absent.
fn remove_virtual_line(text: &str, login: &str) -> Option<String> {
    remove_lines_of(text, virtual_line_of(login))
}

/// Remove every line `is_it` picks (it sees a line without its newline),
/// keeping the others byte for byte; `None` when none is.
fn remove_lines_of(text: &str, is_it: impl Fn(&str) -> bool) -> Option<String> {
    let mut hit = false;
    let mut out = String::with_capacity(text.len());
    for l in text.split_inclusive('\n') {
        if is_it(l.strip_suffix('\n').unwrap_or(l)) {
            hit = true;
            continue;
        }
        out.push_str(l);
    }
    hit.then_some(out)
}

/// Set fields (split at most into `max_fields`) of the first line `is_it`
/// picks, keeping every other line byte for byte; `None` when none is.
fn set_fields_of(
    text: &str,
    is_it: impl Fn(&str) -> bool,
    max_fields: usize,
    set: &[(usize, &str)],
) -> Option<String> {
    let mut hit = false;
    let mut out = String::with_capacity(text.len() + 128);
    for l in text.split_inclusive('\n') {
        let (body, nl) = match l.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (l, ""),
        };
        if !hit && is_it(body) {
            hit = true;
            let mut f: Vec<&str> = body.splitn(max_fields, ':').collect();
            for &(i, v) in set {
                while f.len() <= i {
                    f.push("");
                }
                f[i] = v;
            }
            out.push_str(&f.join(":"));
            out.push_str(nl);
        } else {
            out.push_str(l);
        }
    }
    hit.then_some(out)
}

/// A quota as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaSetting {
    /// `none`: no setting of its own; the default applies.
    Default,
    /// A size (`0` = unlimited), as written into the table.
    Limit(String),
}

pub fn parse_quota(s: &str) -> Result<QuotaSetting, Failure> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "none" | "default" => return Ok(QuotaSetting::Default),
        "unlimited" | "0" => return Ok(QuotaSetting::Limit("0".into())),
        _ => {}
    }
    match parse_size(t) {
        Some(n) if n > 0 && !t.starts_with(['+', '-']) => {
            let mut v = t.to_string();
            if v.ends_with(['k', 'm', 'g']) {
                v = v.to_ascii_uppercase();
            }
            Ok(QuotaSetting::Limit(v))
        }
        _ => Err(Failure::usage(format!(
            "{t:?} is not a size: give bytes with K, M or G (200M, 1G), unlimited, or none"
        ))),
    }
}

/// Bytes for people: `512`, `1.5K`, `200M`, `2.0G`.
pub fn human(n: u64) -> String {
    const K: u64 = 1024;
    let (unit, div) = if n >= K * K * K {
        ("G", K * K * K)
    } else if n >= K * K {
        ("M", K * K)
    } else if n >= K {
        ("K", K)
    } else {
        return n.to_string();
    };
    if n.is_multiple_of(div) {
        format!("{}{unit}", n / div)
    } else {
        format!("{:.1}{unit}", n as f64 / div as f64)
    }
}

// ---------------------------------------------------------------------
// Mailbox files.

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Create the empty mbox `path` (owner `uid`, group `gid`, 0660), or take
/// over one that is already there.  True when created.
pub fn create_mbox(path: &Path, uid: u32, gid: u32) -> io::Result<bool> {
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o660)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    let (f, created) = match created {
        Ok(f) => (f, true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => (
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
                .open(path)?,
            false,
        ),
        Err(e) => return Err(e),
    };
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    // A hard link to another file would hand that file to the new owner.
    if !created && m.nlink() != 1 {
        return Err(io::Error::other(
            "it has other hard links; move it away and run the command again",
        ));
    }
    if is_root() {
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
    }
    if created || is_root() {
        f.set_permissions(fs::Permissions::from_mode(0o660))?;
    }
    Ok(created)
}

/// Create the mailbox of a committed plan; a line for the output.
pub fn create_mailbox(cfg: &Config, plan: &Plan, mail_gid: u32) -> Result<String, String> {
    let (path, uid, gid) = match &plan.kind {
        PlanKind::System { user, uid, .. } => (cfg.mail_spool.join(user), *uid, mail_gid),
        PlanKind::Virtual { mailbox, owner, .. } => {
            if let Some(dir) = mailbox.parent()
                && !dir.exists()
            {
                fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {}", dir.display(), io_reason(&e)))?;
                if is_root() {
                    let _ = std::os::unix::fs::chown(dir, Some(owner.0), Some(mail_gid));
                }
                let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o770));
            }
            (mailbox.clone(), owner.0, mail_gid)
        }
    };
    match create_mbox(&path, uid, gid) {
        Ok(true) => Ok(format!("{}", path.display())),
        Ok(false) => Ok(format!(
            "{} (already there: kept, {} bytes)",
            path.display(),
            fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        )),
        Err(e) => Err(format!(
            "cannot create the mailbox {}: {}",
            path.display(),
            io_reason(&e)
        )),
    }
}

/// Remove a mailbox file or Maildir, if it lies where mailboxes live.
fn remove_mailbox(cfg: &Config, mailbox: &MailboxPath) -> Option<String> {
    let (path, dir) = match mailbox {
        MailboxPath::Mbox(p) => (p, false),
        MailboxPath::Maildir(p) => (p, true),
    };
    if !(path.starts_with(&cfg.mail_spool) || path.starts_with(&cfg.virtual_mailbox_base)) {
        return Some(format!(
            "left {} (not under {} or {})",
            path.display(),
            cfg.mail_spool.display(),
            cfg.virtual_mailbox_base.display()
        ));
    }
    let r = if dir {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match r {
        Ok(()) => {
            let lock = PathBuf::from(format!("{}.lock", path.display()));
            let _ = fs::remove_file(lock);
            Some(format!("removed {}", path.display()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => Some(format!(
            "cannot remove {}: {}",
            path.display(),
            io_reason(&e)
        )),
    }
}

fn mailbox_size(mailbox: &MailboxPath) -> u64 {
    match mailbox {
        MailboxPath::Mbox(p) => fs::metadata(p).map(|m| m.len()).unwrap_or(0),
        MailboxPath::Maildir(p) => ["cur", "new"]
            .iter()
            .filter_map(|d| fs::read_dir(p.join(d)).ok())
            .flat_map(|rd| rd.flatten())
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum(),
    }
}

// ---------------------------------------------------------------------
// The commands.

fn add(
    cfg: &Config,
    address: &str,
    is_virtual: bool,
    password_stdin: bool,
    quota: Option<&str>,
) -> Result<(), Failure> {
    // Check before asking for a password (and without holding the lock
    // while someone types).
    Tables::load_disk(cfg)?.plan(address, is_virtual, quota)?;
    let pw = read_password(address.trim(), password_stdin)?;
    let hash = hash_password(&pw.0)?;
    drop(pw);

    let mut change = Change::begin(cfg)?;
    let pwlock = if is_virtual {
        None
    } else {
        Some(PwLock::take(cfg)?)
    };
    let mut t = Tables::load(cfg, &change)?;
    let plan = t.plan(address, is_virtual, quota)?;
    t.apply(&plan, Some(&hash));
    t.store(&mut change);
    change.commit()?;
    drop(pwlock);
    let mailbox = create_mailbox(cfg, &plan, t.mail_gid);
    match &plan.kind {
        PlanKind::System { user, uid, .. } => {
            crate::log::info(
                None,
                &format!(
                    "mailroom: mailbox {} added: user {user}, uid {uid}",
                    plan.address
                ),
            );
            println!(
                "{}: mailbox added: system user {user} (uid {uid}, group mail)",
                plan.address
            );
        }
        PlanKind::Virtual { .. } => {
            crate::log::info(
                None,
                &format!("mailroom: virtual mailbox {} added", plan.address),
            );
            println!(
                "{}: mailbox added: virtual account in {}",
                plan.address,
                cfg.paths.etc_mail("passwd").display()
            );
        }
    }
    if let Some(q) = &plan.quota {
        println!("  quota: {q}");
    }
    match mailbox {
        Ok(m) => {
            println!("  mailbox: {m}");
            println!("  POP3 login: {}", plan.address);
            Ok(())
        }
        Err(e) => Err(Failure::new(ExitCode::CantCreat, e)
            .hint("the account exists; delivery creates the mailbox with the first message")),
    }
}

fn remove(cfg: &Config, address: &str, keep_mail: bool, force: bool) -> Result<(), Failure> {
    let mut change = Change::begin(cfg)?;
    let pwlock = PwLock::take(cfg)?;
    let mut t = Tables::load(cfg, &change)?;
    let found = t.find(address)?;
    let accounts = Accounts::load(cfg, UserDb::for_root(&cfg.paths));
    let (target, own_keys, mailbox, what) = match &found {
        Found::Virtual { login, .. } => {
            let mb = accounts.virtual_account(login).map(|a| a.mailbox);
            let mut keys = Vec::new();
            if login.contains('@') {
                keys.push(login.clone());
            }
            (login.clone(), keys, mb, format!("virtual account {login}"))
        }
        Found::System { user, key } => {
            if !user.is_mailbox_only() {
                return Err(Failure::new(
                    ExitCode::NoPerm,
                    format!(
                        "{} is a login account (uid {}, home {}, shell {}), not a mailbox mailroom created",
                        user.name, user.uid, user.home, user.shell
                    ),
                )
                .hint("remove it with userdel; mailroom only removes users with home /nonexistent and a nologin shell"));
            }
            if user.line == 0 {
                return Err(Failure::new(
                    ExitCode::NoPerm,
                    format!(
                        "{} is not in {} (it comes from NSS)",
                        user.name,
                        t.passwd.path.display()
                    ),
                ));
            }
            let mut keys: Vec<String> = key.iter().cloned().collect();
            let own = user.gecos.trim().to_ascii_lowercase();
            if t.vt_keys
                .get(&own)
                .is_some_and(|(v, _)| v.trim() == user.name)
                && !keys.contains(&own)
            {
                keys.push(own);
            }
            let mb = accounts.system(&user.name).map(|a| a.mailbox);
            (
                user.name.clone(),
                keys,
                mb,
                format!("system user {}", user.name),
            )
        }
    };
    let refs = t.references(&target, &own_keys);
    if !refs.is_empty() && !force {
        return Err(Failure::new(
            ExitCode::DataErr,
            format!(
                "{} still receives mail through: {}",
                address.trim(),
                refs.join("; ")
            ),
        )
        .hint(
            "remove those first (mailroom alias remove ...), or use --force to leave them bouncing",
        ));
    }
    for k in &own_keys {
        if let Some(n) = makemap::remove_entry(&t.vt.text, k) {
            t.vt.replace(n);
        }
    }
    if let Some(n) = makemap::remove_entry(&t.quotas.text, &target) {
        t.quotas.replace(n);
    }
    match &found {
        Found::Virtual { login, .. } => {
            if let Some(n) = remove_virtual_line(&t.vpasswd.text, login) {
                t.vpasswd.replace(n);
            }
        }
        Found::System { user, .. } => {
            if let Some(n) = remove_colon_line(&t.passwd.text, &user.name) {
                t.passwd.replace(n);
            }
            if let Some(n) = remove_colon_line(&t.shadow.text, &user.name) {
                t.shadow.replace(n);
            }
            // Its forward (`user: target, \user`) goes with it.
            if let Some(n) = crate::aliases::remove_entry(&t.aliases.text, &user.name) {
                t.aliases.replace(n);
            }
        }
    }
    t.store(&mut change);
    change.commit()?;
    drop(pwlock);
    crate::log::info(
        None,
        &format!("mailroom: mailbox {} removed ({what})", address.trim()),
    );
    println!("{}: mailbox removed ({what})", address.trim());
    for k in &own_keys {
        println!("  address {k}: removed from the virtusertable");
    }
    for r in &refs {
        println!("  warning: still delivers to {target}, which is gone: {r}");
    }
    match (&mailbox, keep_mail) {
        (Some(MailboxPath::Mbox(p) | MailboxPath::Maildir(p)), true) => {
            println!("  mail kept in {}", p.display())
        }
        (Some(mb), false) => {
            if let Some(line) = remove_mailbox(cfg, mb) {
                println!("  {line}");
            }
        }
        (None, _) => {}
    }
    Ok(())
}

fn passwd(cfg: &Config, address: &str, password_stdin: bool) -> Result<(), Failure> {
    Tables::load_disk(cfg)?.find(address)?;
    let pw = read_password(address.trim(), password_stdin)?;
    let hash = hash_password(&pw.0)?;
    drop(pw);
    let mut change = Change::begin(cfg)?;
    let pwlock = PwLock::take(cfg)?;
    let mut t = Tables::load(cfg, &change)?;
    let what = match t.find(address)? {
        Found::Virtual { login, .. } => {
            let n = set_virtual_fields(&t.vpasswd.text, &login, &[(1, &hash)])
                .ok_or_else(|| Failure::new(ExitCode::NoUser, format!("no mailbox {login}")))?;
            t.vpasswd.replace(n);
            format!("virtual account {login}")
        }
        Found::System { user, .. } => {
            if user.line == 0 {
                return Err(Failure::new(
                    ExitCode::NoPerm,
                    format!(
                        "{} is not in {} (it comes from NSS: LDAP, sssd...)",
                        user.name,
                        t.passwd.path.display()
                    ),
                )
                .hint("change its password where the account lives"));
            }
            let days = (crate::date::now() / 86400).to_string();
            match set_colon_fields(&t.shadow.text, &user.name, &[(1, &hash), (2, &days)]) {
                Some(n) => t.shadow.replace(n),
                None => {
                    t.shadow.append(&shadow_line(&user.name, &hash));
                }
            }
            // The hash lives in /etc/shadow: the passwd field says so.
            if user.line > 0
                && let Some(n) = set_colon_fields(&t.passwd.text, &user.name, &[(1, "x")])
            {
                t.passwd.replace(n);
            }
            format!("system user {}", user.name)
        }
    };
    t.store(&mut change);
    change.commit()?;
    drop(pwlock);
    crate::log::info(
        None,
        &format!("mailroom: password of {} changed ({what})", address.trim()),
    );
    println!(
        "{}: password changed ({what}); it applies from the next login",
        address.trim()
    );
    Ok(())
}

fn quota(cfg: &Config, address: &str, size: &str) -> Result<(), Failure> {
    let setting = parse_quota(size)?;
    let mut change = Change::begin(cfg)?;
    let mut t = Tables::load(cfg, &change)?;
    let key = t.set_quota(address, &setting)?;
    t.store(&mut change);
    change.commit()?;
    let a = address.trim();
    match setting {
        QuotaSetting::Default => {
            let d = if cfg.mailbox_size_limit == 0 {
                "unlimited".to_string()
            } else {
                human(cfg.mailbox_size_limit)
            };
            println!("{a}: own quota removed; the default applies (mailbox_size_limit: {d})");
        }
        QuotaSetting::Limit(v) if v == "0" => println!("{a}: quota unlimited"),
        QuotaSetting::Limit(v) => println!("{a}: quota {v}"),
    }
    crate::log::info(
        None,
        &format!("mailroom: quota of {a} set to {size} ({key})"),
    );
    Ok(())
}

/// One row of `mailbox list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub address: String,
    /// System user or virtual login.
    pub user: String,
    pub is_virtual: bool,
    /// Bytes (0 = unlimited).
    pub quota: u64,
    /// Where the quota comes from: `quotas`, `passwd`, `default`.
    pub quota_source: &'static str,
    pub mailbox: String,
    pub size: u64,
}

/// The mailboxes (see the `list` help).
pub fn rows(cfg: &Config, domain: Option<&str>) -> Result<Vec<Row>, Failure> {
    let t = Tables::load_readable(cfg);
    let accounts = Accounts::load(cfg, UserDb::for_root(&cfg.paths));
    let quota_of = |login: &str, field: &str| -> (u64, &'static str) {
        if let Some(q) = parse_size(field).filter(|_| !field.trim().is_empty()) {
            return (q, "passwd");
        }
        match makemap::get(&t.quotas.text, login).and_then(|(v, _)| parse_size(&v)) {
            Some(q) => (q, "quotas"),
            None => (cfg.mailbox_size_limit, "default"),
        }
    };
    let place = |mb: &MailboxPath| match mb {
        MailboxPath::Mbox(p) => p.display().to_string(),
        MailboxPath::Maildir(p) => format!("{}/", p.display()),
    };
    let mut out = Vec::new();
    let mut seen_users = HashSet::new();
    for (k, v, _) in makemap::entries(&t.vt.text)
        .into_iter()
        .map(|l| (l.written, l.value, l.line))
    {
        let key = k.to_ascii_lowercase();
        let v = v.trim();
        if key.starts_with('@') || !valid_user(v) {
            continue;
        }
        let Some(a) = accounts.system(v) else {
            continue;
        };
        seen_users.insert(v.to_string());
        let (quota, quota_source) = quota_of(v, "");
        out.push(Row {
            address: key,
            user: v.to_string(),
            is_virtual: false,
            quota,
            quota_source,
            size: mailbox_size(&a.mailbox),
            mailbox: place(&a.mailbox),
        });
    }
    for e in parse_virtual(&t.vpasswd.text) {
        let Some(a) = accounts.virtual_account(&e.login) else {
            continue;
        };
        let (quota, quota_source) = quota_of(&e.login, &e.quota);
        out.push(Row {
            address: e.login.clone(),
            user: e.login.clone(),
            is_virtual: true,
            quota,
            quota_source,
            size: mailbox_size(&a.mailbox),
            mailbox: place(&a.mailbox),
        });
    }
    let mut users: Vec<&SysUser> = t
        .users
        .values()
        .filter(|u| {
            (FIRST_UID..=LAST_UID).contains(&u.uid)
                && !seen_users.contains(&u.name)
                && u.name != cfg.virtual_user
        })
        .collect();
    users.sort_by_key(|u| u.line);
    for u in users {
        let Some(a) = accounts.system(&u.name) else {
            continue;
        };
        let (quota, quota_source) = quota_of(&u.name, "");
        out.push(Row {
            address: u.name.clone(),
            user: u.name.clone(),
            is_virtual: false,
            quota,
            quota_source,
            size: mailbox_size(&a.mailbox),
            mailbox: place(&a.mailbox),
        });
    }
    if let Some(d) = domain {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        out.retain(|r| r.address.rsplit_once('@').is_some_and(|(_, rd)| rd == d));
    }
    let sort_key = |r: &Row| -> (String, String) {
        match r.address.rsplit_once('@') {
            Some((l, d)) => (d.to_string(), l.to_string()),
            None => (String::new(), r.address.clone()),
        }
    };
    out.sort_by_key(sort_key);
    Ok(out)
}

fn list(cfg: &Config, domain: Option<&str>, json: bool) -> Result<(), Failure> {
    crate::change::recover_if_idle(cfg);
    let rows = rows(cfg, domain)?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let r = if json {
        print_json(&rows, &mut out)
    } else {
        print_table(&rows, &mut out)
    };
    r.map_err(|e| Failure::new(ExitCode::IoErr, format!("cannot write: {e}")))
}

fn quota_text(r: &Row) -> String {
    let q = if r.quota == 0 {
        "unlimited".to_string()
    } else {
        human(r.quota)
    };
    if r.quota_source == "default" {
        format!("{q} (default)")
    } else {
        q
    }
}

pub fn print_table(rows: &[Row], out: &mut dyn Write) -> io::Result<()> {
    if rows.is_empty() {
        return writeln!(out, "no mailboxes (add one: mailroom mailbox add ADDRESS)");
    }
    let w_addr = rows
        .iter()
        .map(|r| r.address.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let w_user = rows
        .iter()
        .map(|r| r.user.len() + if r.is_virtual { 10 } else { 0 })
        .max()
        .unwrap_or(0)
        .max(4);
    let w_quota = rows
        .iter()
        .map(|r| quota_text(r).len())
        .max()
        .unwrap_or(0)
        .max(5);
    writeln!(
        out,
        "{:w_addr$}  {:w_user$}  {:w_quota$}  {:>7}  MAILBOX",
        "ADDRESS", "USER", "QUOTA", "SIZE"
    )?;
    for r in rows {
        let user = if r.is_virtual {
            format!("{} (virtual)", r.user)
        } else {
            r.user.clone()
        };
        writeln!(
            out,
            "{:w_addr$}  {:w_user$}  {:w_quota$}  {:>7}  {}",
            r.address,
            user,
            quota_text(r),
            human(r.size),
            r.mailbox
        )?;
    }
    writeln!(
        out,
        "{} mailbox{}",
        rows.len(),
        if rows.len() == 1 { "" } else { "es" }
    )
}

pub fn print_json(rows: &[Row], out: &mut dyn Write) -> io::Result<()> {
    use super::queue::json_str;
    writeln!(out, "[")?;
    for (i, r) in rows.iter().enumerate() {
        writeln!(
            out,
            "  {{\"address\": {}, \"user\": {}, \"virtual\": {}, \"quota\": {}, \"quota_source\": {}, \"mailbox\": {}, \"size\": {}}}{}",
            json_str(&r.address),
            json_str(&r.user),
            r.is_virtual,
            r.quota,
            json_str(r.quota_source),
            json_str(&r.mailbox),
            r.size,
            if i + 1 < rows.len() { "," } else { "" }
        )?;
    }
    writeln!(out, "]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Paths;

    fn root(name: &str) -> (PathBuf, Config) {
        let dir = std::env::temp_dir().join(format!(
            "mailroom-mailbox-unit-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        for d in ["etc/mail", "var/mail"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000:Bob:/home/bob:/bin/bash\n\
             info-shop:x:1001:8:x:/nonexistent:/usr/sbin/nologin\n",
        )
        .unwrap();
        fs::write(dir.join("etc/group"), "mail:x:8:\n").unwrap();
        fs::write(
            dir.join("etc/mail/local-host-names"),
            "example.com\nshop.example\n",
        )
        .unwrap();
        fs::write(dir.join("etc/mail/virtuser-domains"), "virt.example\n").unwrap();
        fs::write(
            dir.join("etc/mail/virtusertable"),
            "# header\nsales@example.com\tbob\n",
        )
        .unwrap();
        fs::write(
            dir.join("etc/mail/aliases"),
            "postmaster: root\nbilling: bob\n",
        )
        .unwrap();
        let mut cfg = Config::defaults(Paths::under(&dir));
        cfg.hostname = "test.example".into();
        (dir, cfg)
    }

    #[test]
    fn names() {
        // The names alias.rs derives (one rule for both).
        assert_eq!(derive_name("info@shop.example"), "info-shop");
        assert_eq!(derive_name("john.doe@example.com"), "john-doe-example");
        assert_eq!(derive_name("1st@x.org"), "m1st-x");
        let long = derive_name(&format!("{}@example.com", "a".repeat(60)));
        assert_eq!(long.len(), MAX_USER);
        assert!(valid_user(&long));
        assert!(valid_user(&with_suffix(&long, 12)));
        assert!(with_suffix(&long, 12).ends_with("-12"));

        assert_eq!(
            parse_name("Info@Shop.Example.").unwrap(),
            Name {
                local: "info".into(),
                domain: Some("shop.example".into())
            }
        );
        assert_eq!(parse_name("bob").unwrap().text(), "bob");
        for bad in [
            "a+b@x.com",
            "@x.com",
            "a@",
            "a b@x.com",
            ".a@x.com",
            "a..b@x.com",
            "a@x..com",
            "1bob",
            "bo:b",
            "a@-x.com",
            "a:b@x.com",
        ] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
        assert!(!valid_user(&"a".repeat(33)));
    }

    #[test]
    fn plans_take_free_names_and_uids() {
        let (dir, cfg) = root("plan");
        let mut t = Tables::load_disk(&cfg).unwrap();
        assert_eq!(t.mail_gid, 8);
        // info-shop exists already: the next one is -2.
        let p = t.plan("info@shop.example", false, Some("200m")).unwrap();
        assert_eq!(
            p.kind,
            PlanKind::System {
                user: "info-shop-2".into(),
                uid: 1002,
                gid: 8,
                vt_key: Some("info@shop.example".into())
            }
        );
        assert_eq!(p.quota.as_deref(), Some("200M"));
        t.apply(&p, Some("$6$salt$hash"));
        // The same address again, in the same change: taken.
        let e = t.plan("info@shop.example", false, None).unwrap_err();
        assert_eq!(e.code, ExitCode::DataErr);
        assert!(e.message.contains("virtusertable:3"), "{}", e.message);
        // Taken by the virtusertable, an alias, a user in a local domain.
        let e = t.plan("sales@example.com", false, None).unwrap_err();
        assert!(
            e.message
                .ends_with("virtusertable:2: sales@example.com bob"),
            "{}",
            e.message
        );
        let e = t.plan("billing@example.com", false, None).unwrap_err();
        assert!(
            e.message.contains("aliases:2: billing: bob"),
            "{}",
            e.message
        );
        let e = t.plan("bob@shop.example", false, None).unwrap_err();
        assert!(
            e.message.contains("passwd:2: system user bob (uid 1000)"),
            "{}",
            e.message
        );
        let e = t.plan("bob", false, None).unwrap_err();
        assert!(e.message.contains("is already taken"), "{}", e.message);
        // ...but not in a virtual domain, where users are not reached.
        assert!(t.plan("bob@virt.example", false, None).is_ok());
        // Unknown domain.
        let e = t.plan("x@nowhere.example", false, None).unwrap_err();
        assert_eq!(e.code, ExitCode::NoUser);
        // Bare names.
        let p = t.plan("carol", false, None).unwrap();
        assert!(
            matches!(p.kind, PlanKind::System { ref user, uid: 1004, vt_key: None, .. } if user == "carol")
        );
        t.apply(&p, None);
        let mut change_text = String::new();
        change_text.push_str(&t.passwd.text);
        assert!(change_text.ends_with(
            "info-shop-2:x:1002:8:info@shop.example:/nonexistent:/usr/sbin/nologin\n\
             carol:x:1004:8:carol:/nonexistent:/usr/sbin/nologin\n"
        ));
        assert!(t.shadow.render().starts_with("info-shop-2:$6$salt$hash:"));
        assert!(t.shadow.render().contains("\ncarol:!:"));
        t.set_hashes(&HashMap::from([(
            "carol".to_string(),
            "$6$c$d".to_string(),
        )]));
        assert!(t.shadow.render().contains("\ncarol:$6$c$d:"));
        assert!(t.vt.text.ends_with("info@shop.example\tinfo-shop-2\n"));
        assert_eq!(t.quotas.text, "info-shop-2\t200M\n");
        // Virtual accounts need their owner.
        let e = t.plan("v@virt.example", true, None).unwrap_err();
        assert_eq!(e.code, ExitCode::Config);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn find_and_references() {
        let (dir, cfg) = root("find");
        fs::write(
            dir.join("etc/mail/virtusertable"),
            "info@shop.example\tinfo-shop\nsales@shop.example info-shop\nfwd@example.com a@b.example\n",
        )
        .unwrap();
        fs::write(
            dir.join("etc/mail/aliases"),
            "team: bob, \\info-shop\ninfo-shop: x@y.example, \\info-shop\n",
        )
        .unwrap();
        let t = Tables::load_disk(&cfg).unwrap();
        let Found::System { user, key } = t.find("INFO@shop.example").unwrap() else {
            panic!()
        };
        assert_eq!(user.name, "info-shop");
        assert_eq!(key.as_deref(), Some("info@shop.example"));
        assert!(user.is_mailbox_only());
        let refs = t.references("info-shop", &["info@shop.example".into()]);
        assert_eq!(refs.len(), 2, "{refs:?}");
        assert!(refs[0].contains("virtusertable:2"));
        assert!(refs[1].contains("aliases:1: team"));
        let e = t.find("fwd@example.com").unwrap_err();
        assert_eq!(e.code, ExitCode::NoUser);
        assert!(e.message.contains("not a mailbox"));
        assert!(matches!(
            t.find("bob@example.com").unwrap(),
            Found::System { .. }
        ));
        assert_eq!(
            t.find("nobody@example.com").unwrap_err().code,
            ExitCode::NoUser
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn line_edits() {
        let t = "root:x:0:0::/root:/bin/sh\nbob:old:1:2:3:4:5:6:\nbobby:x\n";
        assert_eq!(
            remove_colon_line(t, "bob").unwrap(),
            "root:x:0:0::/root:/bin/sh\nbobby:x\n"
        );
        assert!(remove_colon_line(t, "bo").is_none());
        assert_eq!(
            set_colon_fields(t, "bob", &[(1, "$6$new"), (2, "99")]).unwrap(),
            "root:x:0:0::/root:/bin/sh\nbob:$6$new:99:2:3:4:5:6:\nbobby:x\n"
        );
        assert_eq!(
            set_colon_fields(t, "bobby", &[(2, "7")]).unwrap(),
            "root:x:0:0::/root:/bin/sh\nbob:old:1:2:3:4:5:6:\nbobby:x:7".to_string() + "\n"
        );
        let v = "# c\nInfo@X.com:{PLAIN}a:/m:1M:Full: Name\n";
        assert_eq!(
            set_virtual_fields(v, "info@x.com", &[(1, "$6$h"), (3, "")]).unwrap(),
            "# c\nInfo@X.com:$6$h:/m::Full: Name\n"
        );
        assert_eq!(remove_virtual_line(v, "info@x.com").unwrap(), "# c\n");
    }

    #[test]
    fn quotas() {
        assert_eq!(parse_quota("none").unwrap(), QuotaSetting::Default);
        assert_eq!(
            parse_quota("unlimited").unwrap(),
            QuotaSetting::Limit("0".into())
        );
        assert_eq!(
            parse_quota("200m").unwrap(),
            QuotaSetting::Limit("200M".into())
        );
        assert_eq!(
            parse_quota("1048576").unwrap(),
            QuotaSetting::Limit("1048576".into())
        );
        for bad in ["", "-1", "12X", "M", "+5"] {
            assert!(parse_quota(bad).is_err(), "{bad}");
        }
        assert_eq!(human(512), "512");
        assert_eq!(human(200 * 1024 * 1024), "200M");
        assert_eq!(human(1536), "1.5K");
    }

    #[test]
    fn hashes_verify_with_the_pop3_check() {
        let h = hash_password(b"s3cret pass").unwrap();
        assert!(h.starts_with("$6$"));
        assert_eq!(h.split('$').nth(2).unwrap().len(), 16);
        assert!(crate::pop3::login::crypt_matches(b"s3cret pass", &h));
        assert!(!crate::pop3::login::crypt_matches(b"s3cret", &h));
        assert_ne!(hash_password(b"s3cret pass").unwrap(), h, "salt is random");
        assert!(check_password(b"").is_err());
        assert!(check_password(b"a\nb").is_err());
    }

    #[test]
    fn mbox_creation() {
        let dir = std::env::temp_dir().join(format!("mailroom-mbox-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("u");
        let me = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        assert!(create_mbox(&p, me, gid).unwrap());
        let m = fs::metadata(&p).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o660);
        assert_eq!(m.len(), 0);
        fs::write(&p, "From x\n").unwrap();
        assert!(!create_mbox(&p, me, gid).unwrap());
        assert_eq!(fs::read(&p).unwrap(), b"From x\n");
        std::os::unix::fs::symlink("/etc/passwd", dir.join("l")).unwrap();
        assert!(create_mbox(&dir.join("l"), me, gid).is_err());
        fs::write(dir.join("target"), "x").unwrap();
        fs::hard_link(dir.join("target"), dir.join("h")).unwrap();
        assert!(create_mbox(&dir.join("h"), me, gid).is_err());
        fs::remove_dir_all(dir).unwrap();
    }
}
