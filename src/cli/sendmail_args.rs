//! The `sendmail` command line: a getopt-compatible parser for the whole
//! flag set of sendmail 8 and Postfix's `sendmail`.
//!
//! Why not clap: sendmail's argv has optional values that must be attached
//! (`-q`, `-q30m`, but `-q user@x` is a flag and a recipient), options after
//! recipients (glibc getopt permutes), dozens of flags that must be accepted
//! and ignored, and option letters whose value is a cluster (`-odi`,
//! `-oem`).  Every peer parses it by hand.
//!
//! Rules, as glibc `getopt(3)` applies them to sendmail's option string:
//! * a value is the rest of the argument (`-fuser`) or the next argument
//!   (`-f user`); flags without values cluster (`-ti`);
//! * `-q` and `-Q` take a value only when it is attached;
//! * options may follow recipients; `--` ends options, so a recipient may
//!   begin with `-` after it;
//! * an unknown letter is `illegal option -- X` (exit 64).
//!
//! One mailroom extension: `--tls`, only with `-bs` — SMTP submission with
//! implicit TLS (RFC 8314, port 465), what inetd or a systemd socket runs
//! for the `submissions` port.  Anywhere else it is a usage error.
//!
//! The program name chooses the default mode: `mailq` = `-bp`,
//! `newaliases` = `-bi`, `hoststat` = `-bh`, `purgestat` = `-bH`,
//! `smtpd` = `-bd`, `runq` = `-q`.

use std::path::PathBuf;

use crate::config::{DeliveryMode, parse_duration};
use crate::exit::Failure;
use crate::queue::{Notify, Ret};

/// What the invocation asks for (`-b?`, or implied by the program name or
/// `-q`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `-bm`: read a message and queue it (the default).
    Deliver,
    /// `-bp`: print the queue.
    PrintQueue,
    /// `-bP`: print the number of queue entries.
    QueueCount,
    /// `-bi`, `-I`, `newaliases`: rebuild the aliases database.
    InitAliases,
    /// `-bs`: SMTP on standard input and output.
    Smtp,
    /// `-bv`: verify addresses.
    Verify,
    /// `-bt`: address test mode.
    AddressTest,
    /// `-bd`, `-bD`: run as a daemon.
    Daemon,
    /// `-bh`, `-bH`: host status.
    HostStatus,
    PurgeHostStatus,
    /// `-bC`: check the configuration.
    CheckConfig,
    /// `-ba`: ARPANET mode (obsolete).
    Arpanet,
    /// `-q...`: run the queue.
    RunQueue,
}

/// A queue run as asked for with `-q` (used by the queue runner).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueRunSpec {
    /// `-q30m`: keep running, a pass every so many seconds.
    pub interval: Option<u64>,
    /// `-qf`: in the foreground, verbosely.
    pub foreground: bool,
    /// `-qI`, `-qR`, `-qS` filters: (negated, substring).
    pub ids: Vec<(bool, String)>,
    pub recipients: Vec<(bool, String)>,
    pub senders: Vec<(bool, String)>,
    /// `-qQ`: quarantined (held) jobs; `-qL`: lost ones.
    pub quarantined: bool,
    pub lost: bool,
}

/// Everything the command line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub mode: Mode,
    /// The program name the mode was derived from.
    pub program: String,
    pub extract_recipients: bool,
    pub ignore_dots: bool,
    /// `-f`/`-r` and the letter used.
    pub sender: Option<(String, char)>,
    pub full_name: Option<String>,
    pub delivery_mode: Option<DeliveryMode>,
    /// `-oe?` letter (m, w, p, q, e).
    pub error_mode: Option<char>,
    pub config_file: Option<PathBuf>,
    /// `-oQ`/`-O QueueDirectory=`: treated like `-C` (privileges dropped).
    pub queue_dir: Option<PathBuf>,
    /// `-oA`/`-O AliasFile=`.
    pub alias_file: Option<PathBuf>,
    pub notify: Option<Notify>,
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    /// `-B`: true for 8BITMIME, false for 7BIT.
    pub body_8bit: Option<bool>,
    pub hop_count: Option<u32>,
    pub verbose: bool,
    pub no_alias: bool,
    pub queue_run: Option<QueueRunSpec>,
    /// `-p proto[:host]`.
    pub protocol: Option<String>,
    pub recipients: Vec<String>,
    /// Flags accepted and ignored, as written (for the log).
    pub ignored: Vec<String>,
    /// `--tls` (with `-bs`): implicit TLS from the first byte.
    pub implicit_tls: bool,
}

impl Invocation {
    fn new(program: &str, mode: Mode) -> Invocation {
        Invocation {
            mode,
            program: program.to_string(),
            extract_recipients: false,
            ignore_dots: false,
            sender: None,
            full_name: None,
            delivery_mode: None,
            error_mode: None,
            config_file: None,
            queue_dir: None,
            alias_file: None,
            notify: None,
            ret: None,
            envid: None,
            body_8bit: None,
            hop_count: None,
            verbose: false,
            no_alias: false,
            queue_run: None,
            protocol: None,
            recipients: Vec::new(),
            ignored: Vec::new(),
            implicit_tls: false,
        }
    }
}

/// Flags that never take a value.
const NO_VALUE: &str = "cGIimnsTtUvx";
/// Flags whose value is attached or the next argument.
const VALUE: &str = "ABbCDdeFfhLMNOoprRVX";
/// Flags whose value, if any, must be attached.
const ATTACHED_ONLY: &str = "qQ";

/// An argument as shown in an error: control characters escaped, so a
/// hostile argument cannot make the one-line error several lines (or
/// forge lines in a log that collects stderr).
pub(crate) fn shown(v: impl std::fmt::Display) -> String {
    v.to_string()
        .chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            esc
        })
        .collect()
}

/// The mode a program name implies.
pub fn mode_for_program(argv0: &str) -> Mode {
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    match base {
        "mailq" => Mode::PrintQueue,
        "newaliases" => Mode::InitAliases,
        "hoststat" => Mode::HostStatus,
        "purgestat" => Mode::PurgeHostStatus,
        "smtpd" => Mode::Daemon,
        "runq" => Mode::RunQueue,
        _ => Mode::Deliver,
    }
}

/// Parse `args` (without `argv[0]`) for a program called `argv0`.
pub fn parse(argv0: &str, args: &[String]) -> Result<Invocation, Failure> {
    let program = argv0.rsplit('/').next().unwrap_or(argv0).to_string();
    let mut inv = Invocation::new(&program, mode_for_program(argv0));
    if inv.mode == Mode::RunQueue {
        inv.queue_run = Some(QueueRunSpec::default());
    }
    let mut i = 0;
    let mut only_operands = false;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if only_operands || !arg.starts_with('-') || arg == "-" {
            inv.recipients.push(arg.clone());
            continue;
        }
        if arg == "--" {
            only_operands = true;
            continue;
        }
        if arg == "--tls" {
            inv.implicit_tls = true;
            continue;
        }
        let chars: Vec<char> = arg.chars().collect();
        let mut j = 1;
        while j < chars.len() {
            let c = chars[j];
            j += 1;
            if NO_VALUE.contains(c) {
                apply_flag(&mut inv, c)?;
            } else if ATTACHED_ONLY.contains(c) {
                let value: String = chars[j..].iter().collect();
                j = chars.len();
                apply_value(&mut inv, c, &value)?;
            } else if VALUE.contains(c) {
                let value = if j < chars.len() {
                    let v: String = chars[j..].iter().collect();
                    j = chars.len();
                    v
                } else if c == 'C' && (i >= args.len() || args[i].starts_with('-')) {
                    // sendmail: -C without a file means the default file
                    String::new()
                } else if i < args.len() {
                    i += 1;
                    args[i - 1].clone()
                } else {
                    return Err(Failure::usage(format!(
                        "option requires an argument -- {}",
                        shown(c)
                    ))
                    .hint("see sendmail(8) for its flags"));
                };
                apply_value(&mut inv, c, &value)?;
            } else {
                return Err(Failure::usage(format!("illegal option -- {}", shown(c)))
                    .hint("see sendmail(8) for its flags"));
            }
        }
    }
    if inv.implicit_tls && inv.mode != Mode::Smtp {
        return Err(
            Failure::usage("--tls is only for -bs (SMTP submission with implicit TLS)")
                .hint("port 465 runs 'sendmail -bs --tls' from inetd or a systemd socket"),
        );
    }
    Ok(inv)
}

fn apply_flag(inv: &mut Invocation, c: char) -> Result<(), Failure> {
    match c {
        't' => inv.extract_recipients = true,
        'i' => inv.ignore_dots = true,
        'v' => inv.verbose = true,
        'n' => inv.no_alias = true,
        'I' => inv.mode = Mode::InitAliases,
        // -c (HoldExpensive), -G (gateway), -m (MeToo), -s (SaveFromLine),
        // -T (old timeout), -U (SMTPUTF8 submission), -x (Postfix): accepted
        // and ignored.
        _ => inv.ignored.push(format!("-{c}")),
    }
    Ok(())
}

fn apply_value(inv: &mut Invocation, c: char, v: &str) -> Result<(), Failure> {
    match c {
        'b' => {
            inv.mode = match v {
                "m" => Mode::Deliver,
                "p" => Mode::PrintQueue,
                "P" => Mode::QueueCount,
                "i" => Mode::InitAliases,
                "s" => Mode::Smtp,
                "v" => Mode::Verify,
                "t" => Mode::AddressTest,
                "d" | "D" => Mode::Daemon,
                "h" => Mode::HostStatus,
                "H" => Mode::PurgeHostStatus,
                "C" => Mode::CheckConfig,
                "a" => Mode::Arpanet,
                _ => {
                    return Err(
                        Failure::usage(format!("Invalid operation mode {}", shown(v)))
                            .hint("use -bm, -bp, -bi, -bs, -bv or -bt"),
                    );
                }
            }
        }
        'f' | 'r' => {
            if inv.sender.is_some() {
                return Err(Failure::usage("More than one \"from\" person")
                    .hint("give -f (or -r) only once"));
            }
            inv.sender = Some((v.to_string(), c));
        }
        'F' => inv.full_name = Some(v.to_string()),
        'C' => {
            if !v.is_empty() {
                inv.config_file = Some(PathBuf::from(v));
            }
        }
        'N' => {
            inv.notify = Some(Notify::parse(v).ok_or_else(|| {
                Failure::usage(format!("Invalid -N argument: {}", shown(v)))
                    .hint("use never, or a list of success, failure, delay")
            })?)
        }
        'R' => {
            inv.ret = Some(match v.to_ascii_lowercase().as_str() {
                "full" => Ret::Full,
                "hdrs" => Ret::Headers,
                _ => {
                    return Err(Failure::usage(format!("Invalid -R value: {}", shown(v)))
                        .hint("use -R full or -R hdrs"));
                }
            })
        }
        'V' => {
            if v.is_empty() || v.len() > 100 || !v.bytes().all(|b| (0x21..0x7f).contains(&b)) {
                return Err(
                    Failure::usage(format!("Invalid syntax in -V argument: {v:?}"))
                        .hint("give a printable envelope id without spaces"),
                );
            }
            inv.envid = Some(v.to_string());
        }
        'B' => {
            inv.body_8bit = Some(match v.to_ascii_uppercase().as_str() {
                "7BIT" => false,
                "8BITMIME" => true,
                _ => {
                    return Err(Failure::usage(format!("Illegal body type {}", shown(v)))
                        .hint("use -B 7BIT or -B 8BITMIME"));
                }
            })
        }
        'h' => {
            inv.hop_count = Some(v.trim().parse().map_err(|_| {
                Failure::usage(format!("Bad hop count ({})", shown(v))).hint("give -h a number")
            })?)
        }
        'o' => apply_short_option(inv, v)?,
        'O' => apply_long_option(inv, v)?,
        'q' => apply_queue_run(inv, v)?,
        'p' => inv.protocol = Some(v.to_string()),
        // -A (submit.cf choice), -D/-d (debugging), -e (old error mode), -L
        // (syslog tag), -M (macro), -Q (quarantine), -X (traffic log file:
        // never written, it could be a path the caller chooses): accepted
        // and ignored.
        _ => inv.ignored.push(format!("-{c}{v}")),
    }
    Ok(())
}

/// `-o<letter><value>`: sendmail's one-letter options.
fn apply_short_option(inv: &mut Invocation, v: &str) -> Result<(), Failure> {
    let mut chars = v.chars();
    let Some(letter) = chars.next() else {
        return Ok(());
    };
    let value = chars.as_str();
    match letter {
        'i' => inv.ignore_dots = parse_bool(value).unwrap_or(true),
        'd' => {
            inv.delivery_mode = Some(DeliveryMode::parse(value).ok_or_else(|| {
                Failure::usage(format!("Unknown delivery mode {}", shown(value)))
                    .hint("use -odb, -odi or -odq")
            })?)
        }
        'e' => inv.error_mode = value.chars().next().or(Some('p')),
        'A' => inv.alias_file = Some(PathBuf::from(value)),
        'Q' => inv.queue_dir = Some(PathBuf::from(value)),
        _ => inv.ignored.push(format!("-o{v}")),
    }
    Ok(())
}

/// `-O Name=value`: sendmail's long options.
fn apply_long_option(inv: &mut Invocation, v: &str) -> Result<(), Failure> {
    let (name, value) = v.split_once('=').unwrap_or((v, ""));
    match name.trim().to_ascii_lowercase().as_str() {
        "deliverymode" => apply_short_option(inv, &format!("d{}", value.trim()))?,
        "errormode" => apply_short_option(inv, &format!("e{}", value.trim()))?,
        "ignoredots" => inv.ignore_dots = parse_bool(value).unwrap_or(true),
        "aliasfile" => inv.alias_file = Some(PathBuf::from(value.trim())),
        "queuedirectory" => inv.queue_dir = Some(PathBuf::from(value.trim())),
        _ => inv.ignored.push(format!("-O{v}")),
    }
    Ok(())
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "t" | "true" | "y" | "yes" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// `-q`, `-q30m`, `-qf`, `-qI<id>`, `-q!R<site>`, `-qS<sender>`, `-qQ`, `-qL`.
fn apply_queue_run(inv: &mut Invocation, v: &str) -> Result<(), Failure> {
    // As sendmail 8: -q makes a plain run a queue run, but with -bp
    // (`mailq -qQ`) it only chooses which queue to list.
    if inv.mode == Mode::Deliver {
        inv.mode = Mode::RunQueue;
    }
    let spec = inv.queue_run.get_or_insert_with(QueueRunSpec::default);
    let (negated, rest) = match v.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, v),
    };
    let mut chars = rest.chars();
    match chars.next() {
        None => {}
        Some('f') => spec.foreground = true,
        Some('I') => spec.ids.push((negated, chars.as_str().to_string())),
        Some('R') => spec.recipients.push((negated, chars.as_str().to_string())),
        Some('S') => spec.senders.push((negated, chars.as_str().to_string())),
        Some('Q') => spec.quarantined = true,
        Some('L') => spec.lost = true,
        Some('G') | Some('p') => {}
        Some(c) if c.is_ascii_digit() => {
            let secs = parse_duration(rest, 60).ok_or_else(|| {
                Failure::usage(format!("Invalid queue interval {}", shown(rest)))
                    .hint("write it like -q30m or -q1h")
            })?;
            if secs > 0 {
                spec.interval = Some(secs);
            }
        }
        Some(_) => {
            return Err(
                Failure::usage(format!("Invalid queue run option -q{}", shown(v)))
                    .hint("use -q, -q30m, -qf, -qI<id>, -qR<domain> or -qS<sender>"),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Invocation {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse("/usr/sbin/sendmail", &v).unwrap()
    }

    fn err(args: &[&str]) -> Failure {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse("sendmail", &v).unwrap_err()
    }

    #[test]
    fn php_and_cron_invocations() {
        let i = p(&["-t", "-i"]);
        assert!(i.extract_recipients && i.ignore_dots);
        assert_eq!(i.mode, Mode::Deliver);

        let i = p(&[
            "-FCronDaemon",
            "-i",
            "-odi",
            "-oem",
            "-oi",
            "-t",
            "-f",
            "root",
        ]);
        assert_eq!(i.full_name.as_deref(), Some("CronDaemon"));
        assert_eq!(i.delivery_mode, Some(DeliveryMode::Interactive));
        assert_eq!(i.error_mode, Some('m'));
        assert_eq!(i.sender, Some(("root".into(), 'f')));
        assert!(i.recipients.is_empty());

        let i = p(&[
            "-i",
            "-FCronDaemon",
            "-B8BITMIME",
            "-oem",
            "admin@example.com",
        ]);
        assert_eq!(i.body_8bit, Some(true));
        assert_eq!(i.recipients, ["admin@example.com"]);
    }

    #[test]
    fn clusters_attached_values_and_permutation() {
        let i = p(&["-ti", "a@b", "-fme@x", "c@d", "-oi"]);
        assert!(i.extract_recipients && i.ignore_dots);
        assert_eq!(i.sender, Some(("me@x".into(), 'f')));
        assert_eq!(i.recipients, ["a@b", "c@d"]);
    }

    #[test]
    fn double_dash_ends_options() {
        let i = p(&["-oi", "--", "-odd@example.com", "-t"]);
        assert_eq!(i.recipients, ["-odd@example.com", "-t"]);
        assert!(!i.extract_recipients);
    }

    #[test]
    fn accepted_and_ignored_flags_do_not_swallow_recipients() {
        let i = p(&[
            "-oem",
            "-odi",
            "-B8BITMIME",
            "-N",
            "never",
            "-R",
            "hdrs",
            "-V",
            "id",
            "-L",
            "tag",
            "-h",
            "10",
            "-n",
            "-U",
            "-G",
            "-Ac",
            "-X",
            "/tmp/log",
            "-x",
            "bob",
        ]);
        assert_eq!(i.recipients, ["bob"]);
        assert!(i.notify.unwrap().never);
        assert_eq!(i.ret, Some(Ret::Headers));
        assert_eq!(i.hop_count, Some(10));
    }

    #[test]
    fn queue_run_values_must_be_attached() {
        let i = p(&["-q", "user@x"]);
        assert_eq!(i.mode, Mode::RunQueue);
        assert_eq!(i.recipients, ["user@x"]);
        let i = p(&["-q30m"]);
        assert_eq!(i.queue_run.unwrap().interval, Some(1800));
        let i = p(&["-qIabc", "-q!Rexample.com", "-qf"]);
        let q = i.queue_run.unwrap();
        assert_eq!(q.ids, [(false, "abc".to_string())]);
        assert_eq!(q.recipients, [(true, "example.com".to_string())]);
        assert!(q.foreground);
    }

    #[test]
    fn program_names() {
        assert_eq!(parse("/usr/bin/mailq", &[]).unwrap().mode, Mode::PrintQueue);
        let held = parse("/usr/bin/mailq", &["-qQ".to_string()]).unwrap();
        assert_eq!(held.mode, Mode::PrintQueue);
        assert!(held.queue_run.is_some_and(|q| q.quarantined));
        let held = parse("sendmail", &["-bp".to_string(), "-qQ".to_string()]).unwrap();
        assert_eq!(held.mode, Mode::PrintQueue);
        assert_eq!(parse("newaliases", &[]).unwrap().mode, Mode::InitAliases);
        assert_eq!(parse("/usr/lib/sendmail", &[]).unwrap().mode, Mode::Deliver);
    }

    #[test]
    fn errors_are_usage_with_sendmails_words() {
        let e = err(&["-Z"]);
        assert_eq!(e.code.code(), 64);
        assert!(e.message.starts_with("illegal option -- Z"));
        assert!(
            err(&["-f"])
                .message
                .starts_with("option requires an argument -- f")
        );
        assert!(
            err(&["-N", "sometimes"])
                .message
                .starts_with("Invalid -N argument")
        );
        assert!(err(&["-R", "most"]).message.starts_with("Invalid -R value"));
        assert!(
            err(&["-B", "bogus"])
                .message
                .starts_with("Illegal body type bogus")
        );
        assert!(
            err(&["-bz"])
                .message
                .starts_with("Invalid operation mode z")
        );
        assert!(err(&["-h", "x"]).message.starts_with("Bad hop count"));
    }

    /// Found by the argv fuzz target: a newline in a bad value made the
    /// one-line error two lines.
    #[test]
    fn errors_stay_one_line() {
        assert_eq!(
            err(&["-B8BIT\nforged: line"]).message,
            "Illegal body type 8BIT\\nforged: line"
        );
        assert_eq!(err(&["-\r"]).message, "illegal option -- \\r");
        assert_eq!(err(&["-q\n"]).message, "Invalid queue run option -q\\n");
    }

    #[test]
    fn tls_goes_with_bs_only() {
        assert!(p(&["-bs", "--tls"]).implicit_tls);
        assert!(p(&["--tls", "-bs"]).implicit_tls);
        assert!(!p(&["-bs"]).implicit_tls);
        for args in [
            &["--tls"][..],
            &["-t", "--tls"],
            &["-bp", "--tls"],
            &["-q", "--tls"],
        ] {
            let e = err(args);
            assert_eq!(e.code, crate::exit::ExitCode::Usage, "{args:?}");
            assert_eq!(
                e.to_string(),
                "--tls is only for -bs (SMTP submission with implicit TLS); port 465 runs 'sendmail -bs --tls' from inetd or a systemd socket"
            );
        }
        // After "--" it is a recipient; other long options stay illegal.
        assert_eq!(p(&["-t", "--", "--tls"]).recipients, ["--tls"]);
        assert_eq!(err(&["-bs", "--tlsx"]).message, "illegal option -- -");
    }

    #[test]
    fn notify_flags() {
        assert_eq!(Notify::rcpt_flags(None), "FD");
        assert_eq!(Notify::rcpt_flags(Notify::parse("success,failure")), "NSF");
        assert_eq!(Notify::rcpt_flags(Notify::parse("never")), "N");
        assert!(Notify::parse("never,success").is_none());
    }
}
