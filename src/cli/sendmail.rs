//! The `sendmail` command (also `mailq`, `newaliases`): mode dispatch.
//!
//! `src/bin/sendmail.rs` is a thin `main` over [`run`].  The privilege
//! transitions happen here, first thing: see [`crate::privs::secure_start`].

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::sendmail_args::{self, Invocation, Mode};
use super::submit;
use crate::config::{Config, Paths, ROOT_ENV};
use crate::exit::{ExitCode, Failure, io_reason};
use crate::queue::{Queue, mailq};
use crate::runner::start;
use crate::{aliases, log, privs};

/// Run `sendmail` with `argv` (including `argv[0]`); returns the exit code.
pub fn run(argv: Vec<String>) -> i32 {
    let argv0 = argv
        .first()
        .cloned()
        .unwrap_or_else(|| "sendmail".to_string());
    let program = Path::new(&argv0)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sendmail".to_string());
    match run_inner(&argv0, &argv[1.min(argv.len())..]) {
        Ok(code) => code.code(),
        Err(f) => {
            let _ = io::stdout().flush();
            eprintln!("{program}: {f}");
            f.code.code()
        }
    }
}

fn run_inner(argv0: &str, args: &[String]) -> Result<ExitCode, Failure> {
    let mut inv = sendmail_args::parse(argv0, args)?;
    let mut root_env = std::env::var_os(ROOT_ENV).filter(|v| !v.is_empty());

    // Before anything is read.  An ordinary user of the set-group-id
    // sendmail may not point it at another configuration, queue or root:
    // those are ignored, so the message still goes where the queue runner
    // looks (sendmail 8 gives its privilege up instead and queues into a
    // directory nothing ever runs).  Root may redirect anything.
    let ignored = if privs::is_elevated() && !nix::unistd::getuid().is_root() {
        ignore_redirections(&mut inv, &mut root_env)
    } else {
        Vec::new()
    };
    // What is left to redirect (root's overrides, newaliases -oA on the
    // caller's own file) gives the privilege up, as with sendmail's -C.
    let redirects = inv.config_file.is_some()
        || inv.queue_dir.is_some()
        || root_env.is_some()
        || (inv.alias_file.is_some() && inv.mode == Mode::InitAliases);
    let state = privs::secure_start(redirects)
        .map_err(|e| Failure::new(ExitCode::OsErr, format!("cannot drop privileges: {e}")))?;
    let paths = match root_env {
        Some(r) if !state.was_elevated || state.dropped => Paths::under(PathBuf::from(r)),
        _ => Paths::system(),
    };
    let mut cfg = Config::load(paths, inv.config_file.as_deref())?;
    if let Some(q) = &inv.queue_dir {
        cfg.queue_dir = q.clone();
    }
    log::init("sendmail", &cfg.log, &cfg.hostname);
    for what in &ignored {
        let text = format!("{what} ignored: only root may redirect the set-group-id sendmail");
        eprintln!("sendmail: warning: {text}");
        log::notice(
            None,
            &format!("uid {}: {text}", nix::unistd::getuid().as_raw()),
        );
    }

    match inv.mode {
        Mode::Deliver => deliver_mode(&cfg, &inv),
        Mode::PrintQueue => print_queue(&cfg, &inv),
        Mode::QueueCount => queue_count(&cfg),
        Mode::InitAliases => newaliases(&cfg, &inv),
        Mode::Smtp => {
            let caller = submit::Caller::current(&cfg);
            let delivery = inv.delivery_mode.unwrap_or(cfg.delivery_mode);
            crate::smtp::server::main(
                &cfg,
                caller.as_ref().map(|c| c.login.as_str()),
                delivery,
                inv.implicit_tls,
            )
        }
        Mode::Verify => verify(&cfg, &inv),
        Mode::RunQueue => run_queue(&inv, args),
        Mode::AddressTest => Err(unsupported(
            "-bt (address test mode)",
            "use 'mailroom explain ADDRESS'",
        )),
        Mode::Daemon => Err(unsupported(
            "-bd (daemon mode)",
            "mailroom runs no daemon: start 'sendmail -bs' from inetd or a systemd socket (see etc/)",
        )),
        Mode::HostStatus | Mode::PurgeHostStatus => Err(unsupported(
            "-bh/-bH (host status)",
            "mailroom keeps no host status; see 'mailq'",
        )),
        Mode::CheckConfig => Err(unsupported("-bC", "use 'mailroom check'")),
        Mode::Arpanet => Err(unsupported("-ba (ARPANET mode)", "use -bs")),
    }
}

/// Take the caller's redirections out of `inv` and the environment (`-C`,
/// `-oQ`/`-O QueueDirectory=`, `MAILROOM_ROOT`); what was ignored, for the
/// warning.
fn ignore_redirections(
    inv: &mut Invocation,
    root_env: &mut Option<std::ffi::OsString>,
) -> Vec<String> {
    let mut ignored = Vec::new();
    if let Some(c) = inv.config_file.take() {
        ignored.push(format!("-C {}", printable(&c)));
    }
    if let Some(q) = inv.queue_dir.take() {
        ignored.push(format!("queue directory {}", printable(&q)));
    }
    if root_env.take().is_some() {
        ignored.push(ROOT_ENV.to_string());
    }
    ignored
}

/// A caller's path for a one-line message: control characters shown
/// escaped, at most 100 characters.
fn printable(p: &Path) -> String {
    let s = sendmail_args::shown(p.display());
    if s.chars().count() > 100 {
        format!("{}...", s.chars().take(100).collect::<String>())
    } else {
        s
    }
}

fn unsupported(what: &str, hint: &str) -> Failure {
    Failure::new(ExitCode::Unavailable, format!("{what} is not supported")).hint(hint)
}

/// `-bm`: queue the message on stdin, then start its delivery.
fn deliver_mode(cfg: &Config, inv: &Invocation) -> Result<ExitCode, Failure> {
    let caller = submit::Caller::current(cfg);
    let stdin = io::stdin();
    let accepted = submit::submit(cfg, inv, caller.as_ref(), stdin.lock())?;
    let mode = inv.delivery_mode.unwrap_or(cfg.delivery_mode);
    // A held message (over an outbound limit) waits for the admin.
    let queued = accepted.id.iter().filter(|_| !accepted.held);
    for id in queued.chain(&accepted.bounces) {
        start::start_delivery(&cfg.queue_dir, id, mode);
    }
    // -oee: errors are reported but the exit is 0 (sendmail's "BerkNet").
    if inv.error_mode == Some('e') {
        return Ok(ExitCode::Ok);
    }
    Ok(accepted.exit_code())
}

/// `-q...`: hand over to the queue runner — in the foreground for `-qf`,
/// detached otherwise (sendmail's behaviour: `sendmail -q` returns at once).
fn run_queue(inv: &Invocation, args: &[String]) -> Result<ExitCode, Failure> {
    let qrun = start::qrun_program().ok_or_else(|| {
        Failure::new(
            ExitCode::Unavailable,
            "the queue runner (qrun) is not installed",
        )
        .hint("run 'make install'")
    })?;
    // Only the queue-run options go on; the runner reads its own
    // configuration.
    let pass: Vec<&String> = args
        .iter()
        .filter(|a| a.starts_with("-q") || *a == "-v")
        .collect();
    let mut cmd = Command::new(&qrun);
    cmd.args(&pass);
    let foreground = inv.queue_run.as_ref().is_some_and(|q| q.foreground);
    if foreground {
        use std::os::unix::process::CommandExt;
        let e = cmd.exec();
        return Err(Failure::new(
            ExitCode::OsErr,
            format!("cannot run {}: {}", qrun.display(), io_reason(&e)),
        ));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // The runner outlives this command.
    start::detach(&mut cmd);
    cmd.spawn().map_err(|e| {
        Failure::new(
            ExitCode::OsErr,
            format!("cannot start {}: {}", qrun.display(), io_reason(&e)),
        )
    })?;
    Ok(ExitCode::Ok)
}

/// `-bv`: how each address resolves, in sendmail's words.
fn verify(cfg: &Config, inv: &Invocation) -> Result<ExitCode, Failure> {
    if inv.recipients.is_empty() {
        return Err(Failure::usage("Recipient names must be specified")
            .hint("name the addresses to verify"));
    }
    let root = nix::unistd::geteuid().is_root();
    let resolver = crate::resolve::Resolver::new(cfg, root);
    let mut exit = ExitCode::Ok;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for arg in &inv.recipients {
        let list = match crate::address::parse_list(arg) {
            Ok(l) if !l.is_empty() => l.into_iter().map(|m| m.display).collect(),
            Ok(_) => vec![arg.clone()],
            Err(e) => {
                let _ = writeln!(out, "{arg}... {e}");
                exit = ExitCode::Usage;
                continue;
            }
        };
        for a in list {
            let (lines, code) = resolver.resolve(&a).verify_lines(inv.verbose);
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
            if code != ExitCode::Ok {
                exit = code;
            }
        }
    }
    Ok(exit)
}

/// `-bp` / `mailq`.
fn print_queue(cfg: &Config, inv: &Invocation) -> Result<ExitCode, Failure> {
    let queue = Queue::new(&cfg.queue_dir);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let part = match &inv.queue_run {
        Some(q) if q.quarantined => mailq::Part::Held,
        _ => mailq::Part::Queue,
    };
    mailq::print(&queue, part, inv.verbose, &mut out)
        .and_then(|_| out.flush())
        .map_err(|e| {
            Failure::new(
                if e.kind() == io::ErrorKind::PermissionDenied {
                    ExitCode::NoPerm
                } else {
                    ExitCode::OsFile
                },
                format!(
                    "cannot read the queue {}: {}",
                    cfg.queue_dir.display(),
                    io_reason(&e)
                ),
            )
            .hint("run mailq as root, or check that sendmail is installed set-group-id mqueue")
        })?;
    Ok(ExitCode::Ok)
}

/// `-bP`: the number of jobs.
fn queue_count(cfg: &Config) -> Result<ExitCode, Failure> {
    let queue = Queue::new(&cfg.queue_dir);
    let n = queue
        .ids()
        .map_err(|e| Failure::io("cannot read the queue", &cfg.queue_dir, &e))?
        .len();
    if n == 0 {
        println!("{} is empty", cfg.queue_dir.display());
    } else {
        println!("{}: entries={n}", cfg.queue_dir.display());
    }
    println!("\t\tTotal requests: {n}");
    Ok(ExitCode::Ok)
}

/// `-bi` / `newaliases`: check the aliases file and compile its index,
/// reporting as sendmail does.
fn newaliases(cfg: &Config, inv: &Invocation) -> Result<ExitCode, Failure> {
    let path = match &inv.alias_file {
        Some(p) => p.clone(),
        None => cfg.paths.etc_mail("aliases"),
    };
    if let Err(e) = std::fs::metadata(&path) {
        return Err(Failure::new(
            if e.kind() == io::ErrorKind::NotFound {
                ExitCode::NoInput
            } else {
                ExitCode::for_io(&e)
            },
            format!(
                "cannot open aliases file {}: {}",
                path.display(),
                io_reason(&e)
            ),
        )
        .hint("create it (an example is in etc/aliases), then run newaliases again"));
    }
    let shown = path.display().to_string();
    let built = crate::table::build(&path, crate::table::Syntax::Aliases);
    let (problems, (n, longest, total), write_error) = match built {
        Ok(b) => (b.problems, (b.entries, b.longest, b.total), None),
        Err(e) => {
            // Report on the text anyway, then say why no index was written.
            let text = std::fs::read(&path).unwrap_or_default();
            let p = aliases::parse(&text);
            let summary = p.summary();
            let problems: Vec<crate::table::Problem> = p
                .problems
                .into_iter()
                .map(crate::table::Problem::from)
                .collect();
            (problems, summary, Some(e))
        }
    };
    for p in &problems {
        println!("{shown}: line {}: {}", p.line, p.text);
    }
    let summary = format!("{shown}: {n} aliases, longest {longest} bytes, {total} bytes total");
    println!("{summary}");
    if let Some(e) = write_error {
        let index = crate::table::index_path(&path);
        return Err(Failure::new(
            ExitCode::CantCreat,
            format!("cannot write {}: {}", index.display(), io_reason(&e)),
        )
        .hint("run newaliases as root"));
    }
    let who = crate::users::by_uid(nix::unistd::getuid().as_raw())
        .map(|u| u.name)
        .unwrap_or_else(|| "unknown".to_string());
    log::info(None, &format!("alias database {shown} rebuilt by {who}"));
    log::info(None, &summary);
    Ok(if problems.iter().any(|p| !p.warning) {
        ExitCode::Software
    } else {
        ExitCode::Ok
    })
}
