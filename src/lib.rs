//! # mailroom — a sendmail-compatible mail suite for a Linux VPS
//!
//! Small programs that cooperate only through files on disk, the way a
//! traditional VPS mail stack does.  No resident daemon is needed: inetd (or
//! systemd sockets) start the servers per connection, `sendmail` starts a
//! queue runner per message, and a timer retries.
//!
//! ```text
//!   PHP mail(), cron, mutt                     the internet (25), Outlook (587, 465)
//!        │ /usr/sbin/sendmail -t -i                      │ inetd: sendmail -bs
//!        ▼                                               ▼
//!   ┌──────────┐                               ┌─────────────────────────┐
//!   │ sendmail │  cli::sendmail                │ sendmail -bs            │ smtp::server
//!   │ (setgid  │                               │ root side ◀─privsep─▶   │ login (AUTH)
//!   │  mqueue) │                               │ dialogue as smtp_user   │
//!   └──────────┘                               └─────────────────────────┘
//!        │   both through the one door: queue::enqueue        │
//!        │   (limits counted, qf/df fsync'ed, then exit 0/250)│
//!        └──────────────▶ /var/spool/mqueue ◀─────────────────┘
//!        │ starts          (root:mqueue 2770, sendmail 8's qf/df format)
//!        ▼                       │ locks, reads, rewrites, removes
//!   ┌────────────────────────────────┐  SMTP (route, dns, smtp, dkim)
//!   │ qrun: runner (root)            │────────▶ remote MX / smarthost, paced per domain
//!   │  per mailbox: deliver, with    │
//!   │  the owner's file identity     │────────▶ /var/mail/USER (mbox) or ~/Maildir
//!   └────────────────────────────────┘           (resolve: virtusertable, aliases, users)
//!                                              ┌────────────────────────┐
//!   Outlook, Thunderbird, fetchmail ──inetd──▶ │ pop3d (root → user)    │ reads the same mailboxes
//!                                              │ pop3, privsep, login   │
//!                                              └────────────────────────┘
//!   mailroom (admin, root): admin → change (journaled edits) → the /etc/mail files,
//!   answering "where does this address go" with the same resolve as delivery.
//! ```
//!
//! ## Who writes what, as whom
//!
//! | program | runs as | reads | writes |
//! |---------|---------|-------|--------|
//! | `sendmail` (submission, `mailq`) | the caller, setgid `mqueue` | `/etc/mail/*`, stdin | `qf`/`df` (or a held `hf`) in `/var/spool/mqueue`; the outbound counters in `/var/spool/mailroom/limits` |
//! | `newaliases` | root | `/etc/mail/aliases` | its compiled index |
//! | `qrun` | root (setuid root, executable by group `mqueue` only) | the queue | the queue, SMTP connections, the autoresponder's memory and the per-destination pacing in `/var/spool/mailroom` |
//! | `deliver` (in `qrun`, or the `deliver` command) | root's thread with the mailbox owner's file identity ([`privs::FilesAs`]); programs in a child that becomes the owner | the queue's `df`, `~/.forward` and `~/.mailroom-filter` (as the user), `/etc/mail/filter` | mailboxes and their folders, as their owner |
//! | `sendmail -bs` (SMTP server) | a pipe: the caller, setgid `mqueue`; a socket: started as root by inetd, the dialogue as `smtp_user` + group `mqueue`, root only answers AUTH | `/etc/mail/*` and pop3d's POP-before-SMTP stamps (read before dropping root) | `qf`/`df` in `/var/spool/mqueue`; the outbound counters |
//! | `pop3d` | started as root by inetd, becomes the mailbox owner after login | mailboxes | mailboxes (deletions); as root, the POP-before-SMTP stamps in `/var/spool/mailroom` |
//! | `mailroom` (admin) | root | everything in `/etc/mail` | tables, mailbox accounts, the queue (hold, release, delete) |
//!
//! ## Invariants
//!
//! * A message is acknowledged (exit 0, `250`) only once its `qf` and `df`
//!   are `fsync`ed and the `qf` is renamed into place and the directory
//!   `fsync`ed ([`queue::spool`]).  After that it is delivered, retried, or
//!   bounced to its sender with the reason.
//! * The queue is sendmail 8's version-8 format ([`queue::qf`]): sendmail's
//!   own `mailq` reads ours and our runner delivers sendmail's.
//! * Nothing on the submission path uses DNS or the network.
//! * No program touches a user's files before becoming that user.
//!
//! ## Modules
//!
//! Foundations:
//! * [`exit`] — sysexits codes and the error type every front end returns.
//! * [`config`] — `/etc/mail/mailroom.conf` and the root prefix for paths;
//!   [`conf_keys`] — every key of it, gathered from the modules that own
//!   them.
//! * [`privs`] — set-id start-up hygiene and switching to a user.
//! * [`log`] — sendmail-format log lines.
//! * [`date`] — time stamps in mail's spellings.
//! * [`users`] — system accounts; [`accounts`] — mailbox accounts (system
//!   and virtual), quotas.
//! * [`address`] — address lists and addr-specs; [`message`] — raw headers
//!   and reading a submitted message.
//! * [`b64`], [`fasthash`] — small codecs and hashes.
//!
//! The queue and submission:
//! * [`queue`] — ids, control files, durable storage, `mailq`;
//!   [`queue::enqueue`] — the one door every new message goes through.
//! * [`limits`] — outbound limits counted at that door (hold, refuse,
//!   alert).
//! * [`cli`] — the programs' front ends: argv, privileges, paths, then the
//!   engines below (`sendmail` and its submission, `qrun`, `deliver`,
//!   `pop3d`, and `checkpassword`, the login check for Dovecot);
//!   `src/bin/*.rs` are a few lines each over them, and their manual pages
//!   are `man/*.8.txt` (checkpassword's is its module text and the README:
//!   Dovecot runs it, never a person).
//!
//! Where mail goes:
//! * [`table`] — the sendmail tables: text formats and their editors,
//!   compiled (mmapped) indexes, and where a reader takes them from (the
//!   disk, or a change being staged); [`aliases`] — the aliases file.
//! * [`resolve`] — virtusertable, aliases, users: sendmail 8's resolution,
//!   for delivery and for the admin commands alike.
//! * [`mailbox`] — mbox and Maildir, and their locks.
//! * [`deliver`] — the local delivery agent.
//! * [`filter`] — filter rules, the spam rule and spamc, run before a mailbox copy is stored.
//! * [`runner`] — the queue runner (with per-destination pacing);
//!   [`route`], [`dns`], [`smtp`], [`tls`] —
//!   routing and the SMTP client; [`dsn`] — bounces and warnings;
//!   [`srs`] — the sender of forwarded mail, and bounces back through it.
//! * [`autoreply`] — RFC 3834 vacation replies after mailbox delivery.
//! * [`quota`] — how full a mailbox is, and the warnings to its owner
//!   when a delivery takes it past a threshold of its quota.
//! * [`lists`] — simple mailing lists: members files, settings, who may post.
//! * [`dkim`] — DKIM signatures the runner adds to remote mail; the keys.
//! * [`inbound`] — checking senders at the SMTP door: DNS blocklists, SPF,
//!   DKIM, DMARC, and the `Authentication-Results:` field.
//!
//! Serving and administering:
//! * [`smtp::server`] — the SMTP server (`sendmail -bs`, ports 25 and
//!   587); [`access`] — `/etc/mail/access`, its connect/sender/recipient
//!   rules; [`wire`] — the line-based connection (TLS, deadlines) both
//!   servers speak over.
//! * [`pop3`] — the POP3 server.
//! * [`privsep`] — both servers' privilege separation: the unprivileged
//!   network process, the root authority, the requests between them.
//! * [`login`] — the one login check (names, passwords, APOP, the pause
//!   after failures) behind pop3d and SMTP AUTH.
//! * [`state`] — `/var/spool/mailroom`: the servers' and the autoresponder's
//!   small state files, with their inventory.
//! * [`change`] — a journaled change to the configuration files (all or
//!   nothing, even under `kill -9`), and finishing one a crash cut short.
//! * [`admin`] — the `mailroom` command.
//!
//! Testing: `fuzzing` — the fuzz targets' bodies, shared by `fuzz/` and
//! the regression test; compiled only with the `fuzzing` feature, which
//! `fuzz/` and `cargo test` turn on (never a release build).

/// Program version, shown in `Received:` headers and the SMTP greeting.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod access;
pub mod accounts;
pub mod address;
pub mod admin;
pub mod aliases;
pub mod autoreply;
pub mod b64;
pub mod change;
pub mod cli;
pub mod conf_keys;
pub mod config;
pub mod date;
pub mod deliver;
pub mod dkim;
pub mod dns;
pub mod dsn;
pub mod exit;
pub mod fasthash;
pub mod filter;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod hop;
pub mod inbound;
pub mod limits;
pub mod lists;
pub mod log;
pub mod login;
pub mod mailbox;
pub mod message;
pub mod panel;
pub mod pop3;
pub mod privs;
pub mod privsep;
pub mod queue;
pub mod quota;
pub mod resolve;
pub mod route;
pub mod runner;
pub mod smtp;
pub mod srs;
pub mod state;
pub mod table;
pub mod tls;
pub mod users;
pub mod wire;
