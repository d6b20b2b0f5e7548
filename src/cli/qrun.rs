//! `qrun`, the queue runner's front end: its argv (the `-q` flags of
//! sendmail), its privileges, its configuration; then one pass of
//! [`crate::runner`], or one every interval.
//!
//! Installed set-uid root and executable only by group `mqueue` (the
//! set-group-id `sendmail` and root).  Started that way by someone else it
//! ignores its caller's environment, `MAILROOM_ROOT` and `-C`, and becomes
//! fully root; each local delivery then runs as its mailbox owner.

use crate::config::{Config, Paths};
use crate::log;
use crate::runner::{self, Runner, Selection};

/// Run `qrun` with `args` (including `argv[0]`); returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let mut periodic = false;
    let mut express = false;
    let rest: Vec<String> = args
        .iter()
        .skip(1)
        .filter(|a| match a.as_str() {
            "--periodic" => {
                periodic = true;
                false
            }
            // Started by sendmail or the SMTP server for new mail
            // (crate::runner::express).
            "--express" => {
                express = true;
                false
            }
            _ => true,
        })
        .cloned()
        .collect();
    let inv = match super::sendmail_args::parse("qrun", &rest) {
        Ok(i) => i,
        Err(f) => {
            eprintln!("qrun: {f}");
            return f.code.code();
        }
    };
    // Started set-uid by someone else: only the system's configuration, a
    // clean environment, and fully root from here on.
    let elevated = crate::privs::is_elevated();
    crate::privs::ensure_std_fds();
    if elevated {
        crate::privs::clean_environment();
        crate::privs::become_fully_root();
    }
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0o027) };
    let paths = Paths::from_env(!elevated);
    let cfg_file = if elevated {
        None
    } else {
        inv.config_file.clone()
    };
    let load = || Config::load(paths.clone(), cfg_file.as_deref());
    let cfg = match load() {
        Ok(c) => c,
        Err(f) => {
            eprintln!("qrun: {f}");
            return f.code.code();
        }
    };
    log::init("sendmail", &cfg.log, &cfg.hostname);
    runner::limit_memory(&cfg);
    if express {
        drop(cfg);
        // Tests (never a set-uid run) stretch the run's last instant.
        let pause = std::env::var("MAILROOM_TEST_EXPRESS_PAUSE_MS")
            .ok()
            .filter(|_| !elevated)
            .and_then(|v| v.parse().ok())
            .map(std::time::Duration::from_millis);
        return match runner::express::serve(load, inv.verbose, pause) {
            Ok(()) => 0,
            Err(f) => {
                log::err(None, &format!("express queue run: {f}"));
                f.code.code()
            }
        };
    }
    let spec = inv.queue_run.clone().unwrap_or_default();
    let sel = Selection {
        ids: spec.ids.clone(),
        recipients: spec.recipients.clone(),
        senders: spec.senders.clone(),
        // A scheduled run respects retry times; one asked for by hand
        // (sendmail -q, -qI...) tries everything now.
        force: !periodic && spec.interval.is_none(),
    };
    let verbose = spec.foreground || inv.verbose;
    loop {
        let runner = match Runner::new(&cfg, verbose) {
            Ok(r) => r,
            Err(f) => {
                eprintln!("qrun: {f}");
                return f.code.code();
            }
        };
        let stats = runner.run_pass(&sel);
        if verbose {
            println!(
                "queue run: {} attempted, {} finished, {} deferred, {} bounce notices, {} locked, {} not yet due, {} set aside",
                stats.attempted,
                stats.finished,
                stats.deferred,
                stats.bounces,
                stats.locked,
                stats.not_due,
                stats.set_aside
            );
        }
        match spec.interval {
            Some(secs) => std::thread::sleep(std::time::Duration::from_secs(secs)),
            None => return 0,
        }
    }
}
