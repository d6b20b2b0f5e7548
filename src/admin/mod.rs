//! `mailroom`, the admin command: what a hosting control panel does for
//! mail, from the shell.  `src/bin/mailroom.rs` is a thin `main` over
//! [`main`].

pub mod explain;

use clap::{Parser, Subcommand};

use crate::config::{Config, Paths, ROOT_ENV};
use crate::exit::ExitCode;

/// Manage mailroom: see where mail goes, check the configuration, look
/// after the queue.
#[derive(Parser, Debug)]
#[command(name = "mailroom", version, about, long_about = None)]
pub struct Cli {
    /// Read this configuration file instead of /etc/mail/mailroom.conf.
    #[arg(short = 'C', long, global = true, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show where mail for an address goes, step by step, with the file
    /// and line that decided each step (like sendmail -bv, but telling why).
    Explain {
        /// The addresses to explain.
        #[arg(required = true)]
        address: Vec<String>,
    },
}

/// Run the admin command; returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::Usage.code()
            } else {
                0
            };
        }
    };
    let paths = match std::env::var_os(ROOT_ENV) {
        Some(r) if !r.is_empty() => Paths::under(std::path::PathBuf::from(r)),
        _ => Paths::system(),
    };
    let cfg = match Config::load(paths, cli.config.as_deref()) {
        Ok(c) => c,
        Err(f) => {
            eprintln!("mailroom: {f}");
            return f.code.code();
        }
    };
    crate::log::init("mailroom", &cfg.log, &cfg.hostname);
    match cli.command {
        Command::Explain { address } => {
            let resolver = crate::resolve::Resolver::new(&cfg, nix::unistd::geteuid().is_root());
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let mut ok = true;
            for a in &address {
                match explain::explain(&resolver, a, &mut out) {
                    Ok(good) => ok &= good,
                    Err(_) => return ExitCode::IoErr.code(),
                }
            }
            if ok { 0 } else { ExitCode::NoUser.code() }
        }
    }
}
