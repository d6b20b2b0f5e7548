//! mailroom's own settings (`/etc/mail/mailroom.conf`) and where every file
//! lives.
//!
//! The suite runs with no configuration file at all: every key has a
//! default, documented with it in `etc/mailroom.conf`.  The format is
//! `key = value` lines; `#` starts a comment line; blank lines are ignored;
//! keys are case-insensitive.  A known key with a bad value is an error
//! naming the file and line (exit 78); an unknown key is reported by
//! `mailroom check` and otherwise ignored, so that a newer config file does
//! not stop an older binary from accepting mail.
//!
//! The standard sendmail files stay where admins keep them:
//! `/etc/mail/aliases`, `virtusertable`, `local-host-names`, `mailertable`,
//! `access`, `trusted-users`.
//!
//! ## The root prefix
//!
//! Every absolute path the suite uses is resolved through [`Paths`], which
//! prefixes it with a root directory: `/` in production, a temporary
//! directory in tests and `make demo` (environment variable
//! `MAILROOM_ROOT`).  A set-id program never honours `MAILROOM_ROOT` or
//! `-C` while privileged: `sendmail` ignores them from an ordinary user and
//! gives the privilege up for root's (see [`crate::privs`]).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::exit::{ExitCode, Failure, io_reason};

/// The default configuration file, relative to the root.
pub const CONFIG_FILE: &str = "/etc/mail/mailroom.conf";

/// Environment variable naming a root directory that prefixes every path.
pub const ROOT_ENV: &str = "MAILROOM_ROOT";

/// Resolves the suite's absolute paths under a root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    /// Paths under `/`: the production layout.
    pub fn system() -> Paths {
        Paths {
            root: PathBuf::from("/"),
        }
    }

    pub fn under(root: impl Into<PathBuf>) -> Paths {
        Paths { root: root.into() }
    }

    /// Under the root named by `MAILROOM_ROOT` when it is set and
    /// `honour` is true, else the system's.  A set-id program started by
    /// someone else passes false: its caller must not move its files.
    pub fn from_env(honour: bool) -> Paths {
        match std::env::var_os(ROOT_ENV) {
            Some(r) if honour && !r.is_empty() => Paths::under(PathBuf::from(r)),
            _ => Paths::system(),
        }
    }

    /// The root prefix (`/` in production).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when running against the real system layout.
    pub fn is_system(&self) -> bool {
        self.root == Path::new("/")
    }

    /// `abs` (an absolute path such as `/etc/mail/aliases`) under the root.
    pub fn resolve(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        if self.is_system() {
            return abs.to_path_buf();
        }
        let rel = abs.strip_prefix("/").unwrap_or(abs);
        self.root.join(rel)
    }

    /// A file in `/etc/mail`.
    pub fn etc_mail(&self, name: &str) -> PathBuf {
        self.resolve(Path::new("/etc/mail").join(name))
    }
}

/// How `sendmail` hands a queued message on (`-od?`, `delivery_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMode {
    /// Return once queued; start the queue runner detached for the message.
    Background,
    /// Run the queue runner for the message and wait for it.
    Interactive,
    /// Only queue; a later queue run delivers.
    QueueOnly,
}

impl DeliveryMode {
    /// Parse sendmail's one-letter (`b`, `i`, `q`, `d`) or long forms.
    pub fn parse(s: &str) -> Option<DeliveryMode> {
        match s.to_ascii_lowercase().as_str() {
            "b" | "background" | "" => Some(DeliveryMode::Background),
            "i" | "interactive" => Some(DeliveryMode::Interactive),
            // "d" (deferred) means "queue only, no DNS now" in sendmail:
            // the same here, since submission never uses DNS anyway.
            "q" | "queue" | "queueonly" | "d" | "deferred" => Some(DeliveryMode::QueueOnly),
            _ => None,
        }
    }
}

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// syslog(3), facility mail: the default.
    Syslog,
    /// Append syslog-shaped lines to a file (tests, `make demo`).
    File(PathBuf),
}

/// One `key = value` line as read, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    pub line: usize,
}

/// The settings mailroom's programs share.
#[derive(Debug, Clone)]
pub struct Config {
    pub paths: Paths,
    /// The file the settings were read from, if it existed.
    pub source: Option<PathBuf>,
    /// Every key as written (lower-cased), for `mailroom check` and for
    /// modules that own their own keys.
    pub settings: BTreeMap<String, Setting>,
    /// The canonical host name (sendmail's `$j`).
    pub hostname: String,
    pub queue_dir: PathBuf,
    /// The system mailbox directory (`/var/mail`).
    pub mail_spool: PathBuf,
    /// Largest message accepted, in bytes; 0 = no limit.
    pub message_size_limit: u64,
    /// Free space that must remain on the queue file system after a
    /// message is accepted.
    pub min_free_space: u64,
    /// Users (besides root, daemon, uucp and `/etc/mail/trusted-users`)
    /// who may set the envelope sender without a warning header.
    pub trusted_users: Vec<String>,
    pub delivery_mode: DeliveryMode,
    pub log: LogTarget,
    /// Who runs programs and writes files named in `/etc/mail/aliases`.
    pub default_user: String,
    /// The default mailbox format for system users (a user opts into
    /// Maildir by having `~/Maildir/`).
    pub mailbox_format: MailboxFormat,
    /// Default mailbox size limit in bytes; 0 = none.
    pub mailbox_size_limit: u64,
    /// How long (seconds from submission) an over-quota mailbox is a
    /// temporary failure before it becomes a permanent one.
    pub over_quota_defer: u64,
    /// Fullness thresholds (percent of the quota, ascending) at which a
    /// mailbox's owner is warned ([`crate::quota`]); empty = never.
    pub quota_warn: Vec<u8>,
    /// How long delivery waits for a mailbox lock (seconds).
    pub mailbox_lock_timeout: u64,
    /// Longest a delivery program may run (seconds).
    pub program_timeout: u64,
    /// Honour `~/.forward`.
    pub forward_files: bool,
    /// Allow `|program` and `/file` targets in aliases, includes and
    /// `.forward` files.
    pub allow_programs: bool,
    pub allow_files: bool,
    /// The system user owning every virtual mailbox (`/etc/mail/passwd`).
    pub virtual_user: String,
    /// Where virtual mailboxes live by default (`BASE/DOMAIN/LOCAL`).
    pub virtual_mailbox_base: PathBuf,
    /// Count the host's interface addresses (`[192.0.2.1]`) as local.
    pub probe_interfaces: bool,
    /// The built-in spam rule ([`crate::filter::spam_rules`]): a score at
    /// or above this goes to `spam_folder` (None: off) ...
    pub spam_folder_score: Option<f64>,
    /// ... and one above this is discarded (None: off).
    pub spam_discard_score: Option<f64>,
    pub spam_folder: String,
    /// Pass mail through this `spamc` before filtering (None: don't).
    pub spamc: Option<PathBuf>,
    /// Longest `spamc` may take before the message goes on unscanned.
    pub spamc_timeout: u64,
    /// Hand mailbox copies to this LMTP server instead of writing them
    /// (None: write them; [`crate::deliver`]'s `lmtp.rs`).
    pub mailbox_transport: Option<crate::hop::LmtpServer>,
}

/// Mailbox formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxFormat {
    Mbox,
    Maildir,
}

/// The keys read here, with their defaults and meanings (one part of
/// [`crate::conf_keys`], which gathers every module's keys).
pub const KNOWN_KEYS: &[(&str, &str, &str)] = &[
    (
        "hostname",
        "(from /etc/mailname, else gethostname())",
        "canonical host name used in Received:, Message-Id: and bounces",
    ),
    (
        "queue_directory",
        "/var/spool/mqueue",
        "the mail queue (sendmail 8's qf/df format)",
    ),
    (
        "mail_spool_directory",
        "/var/mail",
        "where system users' mboxes live",
    ),
    (
        "message_size_limit",
        "50M",
        "largest message accepted, bytes (K/M/G suffixes); 0 = unlimited",
    ),
    (
        "min_free_space",
        "10M",
        "refuse new mail (temporary failure) when the queue file system would drop below this",
    ),
    (
        "trusted_users",
        "(none)",
        "users besides root, daemon, uucp and /etc/mail/trusted-users who may use -f freely",
    ),
    (
        "delivery_mode",
        "background",
        "background | interactive | queue: what sendmail does after queueing",
    ),
    (
        "log",
        "syslog",
        "syslog, or a file path to append log lines to",
    ),
    (
        "default_user",
        "nobody",
        "who runs programs and writes files named in /etc/mail/aliases",
    ),
    (
        "mailbox_format",
        "mbox",
        "mbox (/var/mail/USER) or maildir (~/Maildir/)",
    ),
    (
        "mailbox_size_limit",
        "0",
        "default mailbox quota (K/M/G); 0 = none",
    ),
    (
        "over_quota_defer",
        "1d",
        "how long mail to a full mailbox is deferred (4.2.2) before it bounces (5.2.2)",
    ),
    (
        "quota_warn",
        "80,95",
        "percentages of a mailbox's quota at which its owner is warned, once per crossing; 0 = never",
    ),
    (
        "mailbox_lock_timeout",
        "5m",
        "how long a delivery waits for a locked mailbox",
    ),
    (
        "program_timeout",
        "10m",
        "longest a |program delivery may run",
    ),
    ("forward_files", "yes", "honour ~/.forward files"),
    (
        "allow_programs",
        "yes",
        "allow |program targets in aliases, :include: and .forward",
    ),
    ("allow_files", "yes", "allow /file targets likewise"),
    (
        "virtual_user",
        "vmail",
        "the system user owning every virtual mailbox (/etc/mail/passwd)",
    ),
    (
        "virtual_mailbox_base",
        "/var/mail/virtual",
        "where virtual mailboxes go by default",
    ),
    (
        "probe_interfaces",
        "yes",
        "treat the host's own interface addresses ([192.0.2.1]) as local",
    ),
    (
        "spam_folder_score",
        "5",
        "mail with a spam score at least this goes to spam_folder; off = never",
    ),
    (
        "spam_discard_score",
        "10",
        "mail with a spam score over this is discarded (and logged); off = never",
    ),
    (
        "spam_folder",
        "Spam",
        "the folder the spam rule files mail into",
    ),
    (
        "spamc",
        "(off)",
        "pass each mailbox delivery through this spamc (e.g. /usr/bin/spamc) before filtering",
    ),
    (
        "spamc_timeout",
        "30s",
        "longest spamc may take; then the message is delivered unscanned",
    ),
    (
        "mailbox_transport",
        "local",
        "local (write mbox/Maildir files), or hand every mailbox copy to an LMTP server: lmtp:unix:/run/dovecot/lmtp or lmtp:[host]:24 (per domain: mailertable)",
    ),
];

impl Config {
    /// Settings with every default, under `paths`, without reading a file.
    pub fn defaults(paths: Paths) -> Config {
        Config {
            queue_dir: paths.resolve("/var/spool/mqueue"),
            mail_spool: paths.resolve("/var/mail"),
            hostname: String::new(),
            message_size_limit: 50 * 1024 * 1024,
            min_free_space: 10 * 1024 * 1024,
            trusted_users: Vec::new(),
            delivery_mode: DeliveryMode::Background,
            log: LogTarget::Syslog,
            default_user: "nobody".to_string(),
            mailbox_format: MailboxFormat::Mbox,
            mailbox_size_limit: 0,
            over_quota_defer: 86400,
            quota_warn: vec![80, 95],
            mailbox_lock_timeout: 300,
            program_timeout: 600,
            forward_files: true,
            allow_programs: true,
            allow_files: true,
            virtual_user: "vmail".to_string(),
            virtual_mailbox_base: paths.resolve("/var/mail/virtual"),
            probe_interfaces: true,
            spam_folder_score: Some(5.0),
            spam_discard_score: Some(10.0),
            spam_folder: "Spam".to_string(),
            spamc: None,
            spamc_timeout: 30,
            mailbox_transport: None,
            settings: BTreeMap::new(),
            source: None,
            paths,
        }
    }

    /// Read the configuration: `file` if given (`-C`), else the default
    /// file under the root.  A missing default file is not an error.
    pub fn load(paths: Paths, file: Option<&Path>) -> Result<Config, Failure> {
        let explicit = file.is_some();
        let path = match file {
            Some(f) => f.to_path_buf(),
            None => paths.resolve(CONFIG_FILE),
        };
        let mut cfg = Config::defaults(paths);
        match fs::read(&path) {
            Ok(bytes) => {
                cfg.settings = parse_settings(&path, &bytes)?;
                cfg.source = Some(path.clone());
                cfg.apply(&path)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && !explicit => {}
            Err(e) => {
                return Err(Failure::new(
                    if e.kind() == io::ErrorKind::NotFound {
                        ExitCode::NoInput
                    } else {
                        ExitCode::Config
                    },
                    format!(
                        "cannot read configuration {}: {}",
                        path.display(),
                        io_reason(&e)
                    ),
                ));
            }
        }
        if cfg.hostname.is_empty() {
            cfg.hostname = default_hostname(&cfg.paths);
        }
        Ok(cfg)
    }

    /// The value of `key`, if set in the file.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(|s| s.value.as_str())
    }

    fn apply(&mut self, path: &Path) -> Result<(), Failure> {
        let bad = |key: &str, s: &Setting, why: &str| {
            Failure::new(
                ExitCode::Config,
                format!(
                    "{}:{}: bad value for {key}: {:?}: {why}",
                    path.display(),
                    s.line,
                    s.value
                ),
            )
            .hint(format!(
                "fix the line (see {CONFIG_FILE} in the documentation)"
            ))
        };
        for (key, s) in &self.settings.clone() {
            match key.as_str() {
                "hostname" => {
                    if !valid_hostname(&s.value) {
                        return Err(bad(key, s, "not a host name"));
                    }
                    self.hostname = s.value.to_ascii_lowercase();
                }
                "queue_directory" => {
                    self.queue_dir = self.absolute(key, s, path)?;
                }
                "mail_spool_directory" => {
                    self.mail_spool = self.absolute(key, s, path)?;
                }
                "message_size_limit" => {
                    self.message_size_limit =
                        parse_size(&s.value).ok_or_else(|| bad(key, s, "not a size"))?;
                }
                "min_free_space" => {
                    self.min_free_space =
                        parse_size(&s.value).ok_or_else(|| bad(key, s, "not a size"))?;
                }
                "trusted_users" => {
                    self.trusted_users = split_list(&s.value);
                }
                "delivery_mode" => {
                    self.delivery_mode = DeliveryMode::parse(&s.value)
                        .ok_or_else(|| bad(key, s, "expected background, interactive or queue"))?;
                }
                "default_user" => self.default_user = s.value.clone(),
                "virtual_user" => self.virtual_user = s.value.clone(),
                "virtual_mailbox_base" => {
                    self.virtual_mailbox_base = self.absolute(key, s, path)?;
                }
                "mailbox_format" => {
                    self.mailbox_format = match s.value.to_ascii_lowercase().as_str() {
                        "mbox" => MailboxFormat::Mbox,
                        "maildir" => MailboxFormat::Maildir,
                        _ => return Err(bad(key, s, "expected mbox or maildir")),
                    }
                }
                "mailbox_size_limit" => {
                    self.mailbox_size_limit =
                        parse_size(&s.value).ok_or_else(|| bad(key, s, "not a size"))?;
                }
                "quota_warn" => {
                    self.quota_warn =
                        parse_thresholds(&s.value).map_err(|why| bad(key, s, &why))?;
                }
                "over_quota_defer"
                | "mailbox_lock_timeout"
                | "program_timeout"
                | "spamc_timeout" => {
                    let v = parse_duration(&s.value, 1)
                        .ok_or_else(|| bad(key, s, "not a duration (e.g. 30s, 5m, 1d)"))?;
                    match key.as_str() {
                        "over_quota_defer" => self.over_quota_defer = v,
                        "mailbox_lock_timeout" => self.mailbox_lock_timeout = v,
                        "spamc_timeout" => self.spamc_timeout = v.max(1),
                        _ => self.program_timeout = v,
                    }
                }
                "spam_folder_score" | "spam_discard_score" => {
                    let v = if s.value.eq_ignore_ascii_case("off") {
                        None
                    } else {
                        Some(
                            s.value
                                .parse::<f64>()
                                .ok()
                                .filter(|v| v.is_finite())
                                .ok_or_else(|| bad(key, s, "expected a number or off"))?,
                        )
                    };
                    if key == "spam_folder_score" {
                        self.spam_folder_score = v;
                    } else {
                        self.spam_discard_score = v;
                    }
                }
                "spam_folder" => {
                    crate::mailbox::folder::check_name(&s.value).map_err(|e| bad(key, s, &e))?;
                    self.spam_folder = s.value.clone();
                }
                "spamc" => {
                    self.spamc = if s.value.eq_ignore_ascii_case("off") || s.value.is_empty() {
                        None
                    } else {
                        // A program to run, not a file of the tree: not
                        // resolved under a test root.
                        let p = PathBuf::from(&s.value);
                        if !p.is_absolute() {
                            return Err(bad(key, s, "expected an absolute path or off"));
                        }
                        Some(p)
                    };
                }
                "mailbox_transport" => {
                    self.mailbox_transport = crate::hop::LmtpServer::parse_setting(&s.value)
                        .map_err(|e| bad(key, s, &e))?;
                }
                "forward_files" | "allow_programs" | "allow_files" | "probe_interfaces" => {
                    let v =
                        parse_bool(&s.value).ok_or_else(|| bad(key, s, "expected yes or no"))?;
                    match key.as_str() {
                        "forward_files" => self.forward_files = v,
                        "allow_programs" => self.allow_programs = v,
                        "allow_files" => self.allow_files = v,
                        _ => self.probe_interfaces = v,
                    }
                }
                "log" => {
                    self.log = if s.value.eq_ignore_ascii_case("syslog") {
                        LogTarget::Syslog
                    } else if s.value.starts_with('/') {
                        LogTarget::File(self.paths.resolve(&s.value))
                    } else {
                        return Err(bad(key, s, "expected syslog or an absolute file path"));
                    };
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn absolute(&self, key: &str, s: &Setting, path: &Path) -> Result<PathBuf, Failure> {
        if !s.value.starts_with('/') {
            return Err(Failure::new(
                ExitCode::Config,
                format!(
                    "{}:{}: bad value for {key}: {:?}: not an absolute path",
                    path.display(),
                    s.line,
                    s.value
                ),
            ));
        }
        Ok(self.paths.resolve(&s.value))
    }

    /// A whole-number setting, or `default` when unset.
    pub fn number(&self, key: &str, default: u64) -> Result<u64, Failure> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| self.bad_value(key, "not a number")),
        }
    }

    /// The error for a setting whose value is wrong: file, line, key, why.
    pub fn bad_value(&self, key: &str, why: &str) -> Failure {
        let (file, line) = match self.settings.get(key) {
            Some(s) => (
                self.source
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                s.line,
            ),
            None => (String::new(), 0),
        };
        Failure::new(
            ExitCode::Config,
            format!("{file}:{line}: bad value for {key}: {why}"),
        )
        .hint("fix the line in mailroom.conf")
    }
}

/// Parse `key = value` lines.  Later duplicates win, as in most Unix
/// configuration files.
pub fn parse_settings(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, Setting>, Failure> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(Failure::new(
                ExitCode::Config,
                format!(
                    "{}:{}: expected \"key = value\", found {:?}",
                    path.display(),
                    i + 1,
                    line
                ),
            )
            .hint("fix or remove the line"));
        };
        let key = k.trim().to_ascii_lowercase();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Failure::new(
                ExitCode::Config,
                format!("{}:{}: bad key {:?}", path.display(), i + 1, k.trim()),
            ));
        }
        out.insert(
            key,
            Setting {
                value: v.trim().to_string(),
                line: i + 1,
            },
        );
    }
    Ok(out)
}

/// A size with an optional K, M or G suffix (powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1024),
        'm' | 'M' => (&s[..s.len() - 1], 1024 * 1024),
        'g' | 'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// A duration such as `30m`, `4h`, `5d`, `1h30m` or plain seconds; units
/// s, m, h, d, w as in sendmail's `-q30m` and `Timeout.*` options.
pub fn parse_duration(s: &str, default_unit: u64) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 7 * 86400,
            _ => return None,
        };
        let n: u64 = num.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        num.clear();
    }
    if !num.is_empty() {
        let n: u64 = num.parse().ok()?;
        total = total.checked_add(n.checked_mul(default_unit)?)?;
    }
    Some(total)
}

/// yes/no, true/false, on/off, 1/0.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Some(true),
        "no" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Split a list written with commas and/or white space.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Letters, digits, `-`, `.` and `_`, not empty, no leading dot.
pub fn valid_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// The host name when the configuration names none: `/etc/mailname` (the
/// Debian convention), else `gethostname()`.  Never DNS: submission must
/// not wait for a resolver.
pub fn default_hostname(paths: &Paths) -> String {
    if let Ok(s) = fs::read_to_string(paths.resolve("/etc/mailname")) {
        let name = s.lines().next().unwrap_or("").trim().to_ascii_lowercase();
        if valid_hostname(&name) {
            return name;
        }
    }
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.to_ascii_lowercase())
        .filter(|h| valid_hostname(h))
        .unwrap_or_else(|| "localhost".to_string())
}

/// Parse `quota_warn`: percentages `1..=100` separated by commas or
/// spaces; `0` or nothing turns the warnings off.  Sorted, each once.
pub fn parse_thresholds(v: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for w in v.split([',', ' ', '\t']).filter(|w| !w.is_empty()) {
        let w = w.strip_suffix('%').unwrap_or(w);
        match w.parse::<u8>() {
            Ok(0) => {}
            Ok(n) if n <= 100 => out.push(n),
            _ => return Err("expected percentages from 1 to 100 (80,95), or 0 for none".into()),
        }
    }
    if v.split([',', ' ', '\t']).any(|w| w == "0") && !out.is_empty() {
        return Err("0 turns the warnings off: give it alone".into());
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_sorted_once_and_zero_turns_them_off() {
        assert_eq!(parse_thresholds("80,95").unwrap(), [80, 95]);
        assert_eq!(parse_thresholds("95, 80 80%").unwrap(), [80, 95]);
        assert_eq!(parse_thresholds("100").unwrap(), [100]);
        assert!(parse_thresholds("0").unwrap().is_empty());
        assert!(parse_thresholds("").unwrap().is_empty());
        for bad in ["101", "-5", "eighty", "80;95", "0,80"] {
            assert!(parse_thresholds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("10M"), Some(10 * 1024 * 1024));
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_duration("30m", 60), Some(1800));
        assert_eq!(parse_duration("1h30m", 60), Some(5400));
        assert_eq!(parse_duration("15", 60), Some(900));
        assert_eq!(parse_duration("5d", 1), Some(5 * 86400));
        assert_eq!(parse_duration("3x", 1), None);
    }

    #[test]
    fn settings_parse_with_lines() {
        let s = parse_settings(
            Path::new("f"),
            b"# c\n\nHostName = mx.example.com\nlog=syslog\n",
        )
        .unwrap();
        assert_eq!(s["hostname"].value, "mx.example.com");
        assert_eq!(s["hostname"].line, 3);
        let e = parse_settings(Path::new("f"), b"oops\n").unwrap_err();
        assert!(e.message.contains("f:1:"), "{}", e.message);
    }

    #[test]
    fn bad_value_names_file_and_line() {
        let dir = std::env::temp_dir().join(format!("mr-cfg-{}", std::process::id()));
        fs::create_dir_all(dir.join("etc/mail")).unwrap();
        fs::write(
            dir.join("etc/mail/mailroom.conf"),
            "\nmessage_size_limit = lots\n",
        )
        .unwrap();
        let e = Config::load(Paths::under(&dir), None).unwrap_err();
        assert_eq!(e.code, ExitCode::Config);
        assert!(e.message.contains("mailroom.conf:2:"), "{}", e.message);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn paths_resolve_under_root() {
        let p = Paths::under("/tmp/r");
        assert_eq!(
            p.resolve("/var/spool/mqueue"),
            PathBuf::from("/tmp/r/var/spool/mqueue")
        );
        assert_eq!(
            Paths::system().resolve("/etc/mail/aliases"),
            PathBuf::from("/etc/mail/aliases")
        );
    }
}
