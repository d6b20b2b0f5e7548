//! `mailroom`, the admin command: what a hosting control panel does for
//! mail, from the shell.  `src/bin/mailroom.rs` is a thin `main` over
//! [`main`].

pub mod alias;
pub mod autoreply;
pub mod check;
pub mod directory;
pub mod dkim;
pub mod domain;
pub mod explain;
pub mod filter;
pub mod generate;
pub mod import;
pub mod list;
pub mod mailbox;
pub mod names;
pub mod panel;
pub mod queue;
pub mod services;
pub mod summary;

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
    /// The mail queue: list it (age, attempts, next retry, last error),
    /// retry, hold, release or delete messages by id or by who sent them,
    /// and see who is sending how much.
    #[command(after_help = queue::QUEUE_HELP)]
    Queue {
        #[command(subcommand)]
        action: Option<queue::QueueAction>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The domains this host takes mail for: add, remove, list.
    Domain {
        #[command(subcommand)]
        action: domain::DomainAction,
    },
    /// Addresses that deliver elsewhere: add, remove, list.
    #[command(after_help = "\
Examples:
  mailroom alias add sales@shop.example bob carol@example.com
  mailroom alias remove sales@shop.example
  mailroom alias list --json")]
    Alias {
        #[command(subcommand)]
        action: alias::AliasAction,
    },
    /// Forward a mailbox's mail, with or without a copy kept.
    #[command(after_help = "\
Examples:
  mailroom forward set ceo@example.com ceo.phone@mobile.example --keep-copy
  mailroom forward clear ceo@example.com")]
    Forward {
        #[command(subcommand)]
        action: alias::ForwardAction,
    },
    /// Autoresponders (vacation replies) per address: set, clear, list.
    #[command(after_help = autoreply::AUTOREPLY_HELP)]
    Autoreply {
        #[command(subcommand)]
        action: autoreply::AutoreplyAction,
    },
    /// Filter rules for one mailbox (/etc/mail/filters/LOGIN): set, show, clear, list.
    #[command(after_help = filter::FILTER_HELP)]
    Filter {
        #[command(subcommand)]
        action: filter::FilterAction,
    },
    /// Simple mailing lists: create, add, remove, members, delete, show.
    #[command(after_help = list::LIST_HELP)]
    List {
        #[command(subcommand)]
        action: Option<list::ListAction>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// DKIM signing keys per sender domain: generate, show, list, remove.
    #[command(after_help = dkim::DKIM_HELP)]
    Dkim {
        #[command(subcommand)]
        action: dkim::DkimAction,
    },
    /// A domain's catch-all: where its unknown addresses go.
    #[command(after_help = "\
Examples:
  mailroom catchall set shop.example orders@shop.example
  mailroom catchall clear shop.example")]
    Catchall {
        #[command(subcommand)]
        action: alias::CatchallAction,
    },
    /// Mailboxes (POP3 accounts): add, remove, list, passwd, quota.
    #[command(after_help = mailbox::mailbox_help())]
    Mailbox {
        #[command(subcommand)]
        action: mailbox::MailboxAction,
    },
    /// Bulk import from a file (ADDRESS PASSWORD lines, plus domain, alias,
    /// forward, catchall and quota records): all or nothing.
    #[command(after_help = import::IMPORT_HELP)]
    Import(import::ImportArgs),
    /// Check every file of /etc/mail: errors with file and line, and
    /// warnings about risky settings (exit 78 on errors).  With --dns, what
    /// receivers see: MX, SPF, DKIM, DMARC, reverse DNS, blocklists and
    /// the TLS certificate.
    #[command(after_help = "\
Checks aliases, virtusertable, access, mailertable, local-host-names,
virtuser-domains, passwd, quotas and mailroom.conf.  Warns about
catch-alls, Connect: RELAY for whole networks, pipes in aliases, and
group- or world-writable files.

--dns checks each of this host's domains (or the DOMAINs named) the way
receivers do: its MX points here; its SPF record passes every address
mail from it leaves from (including /etc/mail/source-addresses); each
DKIM key's record holds that key; a DMARC record exists and parses.  And
the box: each sending address has reverse DNS that resolves back to it
and is the EHLO name, is on none of the dnsbl lists, and the TLS
certificate is trusted, names the host and MX names, and has 14 days
left.  Each finding says what to publish, as zone-file lines.  Exit 78
on errors, 75 when DNS did not answer, else 0.

Examples:
  mailroom check
  mailroom check --json
  mailroom check --dns
  mailroom check --dns shop.example --json")]
    Check {
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
        /// Check DNS, reverse DNS, blocklists and the certificate instead
        /// of the files.
        #[arg(long)]
        dns: bool,
        /// With --dns: check these domains (default: all of this host's).
        #[arg(requires = "dns", value_name = "DOMAIN")]
        domains: Vec<String>,
    },
    /// Turn the network services on or off: SMTP (25, 587, 465) and POP3
    /// (110, 995), as systemd socket units or inetd lines.
    #[command(after_help = services::SETUP_HELP)]
    Setup {
        #[command(subcommand)]
        action: services::SetupAction,
    },
    /// Write shell completions and manual pages into DIR (for the build).
    #[command(hide = true)]
    Generate { dir: std::path::PathBuf },
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
    if let Command::Generate { dir } = &cli.command {
        return match generate::generate(dir) {
            Ok(_) => 0,
            Err(e) => {
                eprintln!(
                    "mailroom: cannot write into {}: {}",
                    dir.display(),
                    crate::exit::io_reason(&e)
                );
                ExitCode::CantCreat.code()
            }
        };
    }
    let cfg = match Config::load(paths.clone(), cli.config.as_deref()) {
        Ok(c) => c,
        // check reports a broken configuration with the other files.
        Err(f) if matches!(cli.command, Command::Check { dns: false, .. }) => {
            let Command::Check { json, .. } = cli.command else {
                unreachable!()
            };
            let mut cfg = Config::defaults(paths);
            cfg.hostname = crate::config::default_hostname(&cfg.paths);
            return check::run(&cfg, Some(&f), json);
        }
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
        Command::Queue { action, json } => queue::run(&cfg, action, json),
        Command::Domain { action } => domain::run(&cfg, action),
        Command::Alias { action } => alias::run_alias(&cfg, action),
        Command::Forward { action } => alias::run_forward(&cfg, action),
        Command::Catchall { action } => alias::run_catchall(&cfg, action),
        Command::Autoreply { action } => autoreply::run(&cfg, action),
        Command::Filter { action } => filter::run(&cfg, action),
        Command::List { action, json } => list::run(&cfg, action, json),
        Command::Dkim { action } => dkim::run(&cfg, action),
        Command::Check {
            json,
            dns: true,
            domains,
        } => check::dns::run(&cfg, &domains, json),
        Command::Check { json, .. } => check::run(&cfg, None, json),
        Command::Mailbox { action } => mailbox::run(&cfg, action),
        Command::Import(args) => import::run(&cfg, args),
        Command::Setup { action } => services::run(&cfg, action),
        Command::Generate { .. } => unreachable!("handled before the configuration is read"),
    }
}

/// Run one change: take the lock, stage the edit, commit, print what was
/// done; the exit code.
pub(crate) fn apply(
    cfg: &Config,
    edit: impl FnOnce(&mut crate::change::Change) -> Result<Vec<String>, crate::exit::Failure>,
) -> i32 {
    use std::io::Write;
    let result = crate::change::Change::begin(cfg).and_then(|mut change| {
        let notes = edit(&mut change)?;
        change.commit()?;
        Ok(notes)
    });
    match result {
        Ok(notes) => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            for n in notes {
                let _ = writeln!(out, "{n}");
            }
            0
        }
        Err(f) => {
            eprintln!("mailroom: {f}");
            f.code.code()
        }
    }
}

/// Print `rows` as a table or as JSON on stdout; the exit code.
pub(crate) fn print_listing<R>(
    rows: &[R],
    json: bool,
    table: fn(&[R], &mut dyn std::io::Write) -> std::io::Result<()>,
    as_json: fn(&[R], &mut dyn std::io::Write) -> std::io::Result<()>,
) -> i32 {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let r = if json {
        as_json(rows, &mut out)
    } else {
        table(rows, &mut out)
    };
    if r.is_err() {
        ExitCode::IoErr.code()
    } else {
        0
    }
}
