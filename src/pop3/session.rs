//! The TRANSACTION and UPDATE states (RFC 1939 §5, §6), served by the
//! process that has become the mailbox's owner.
//!
//! Messages keep their numbers for the whole session; `DELE` only marks;
//! nothing changes on disk unless the client says `QUIT` — an idle
//! timeout, a dropped connection or a crash deletes nothing.

use std::time::{Duration, Instant};

use super::command::{self, message_number, one_arg};
use super::maildrop::Maildrop;
use crate::log;
use crate::wire::{Line, Wire, WireError};

/// Bad commands in a row that end a session.
pub const MAX_BAD_COMMANDS: u32 = 20;

/// What the session did, for the logout log line.
#[derive(Debug, Default)]
pub struct Counts {
    pub retrieved: usize,
    pub retrieved_bytes: u64,
    pub top: usize,
    pub deleted: usize,
    pub deleted_bytes: u64,
}

pub struct Session {
    drop: Maildrop,
    wire: Wire,
    idle: Duration,
    deleted: Vec<bool>,
    retrieved: Vec<bool>,
    /// Highest message number accessed (RFC 1460's LAST, which fetchmail
    /// still asks for).
    last: usize,
    capabilities: String,
    pub counts: Counts,
}

impl Session {
    pub fn new(drop: Maildrop, wire: Wire, idle: Duration, capabilities: String) -> Session {
        let n = drop.list().len();
        Session {
            drop,
            wire,
            idle,
            deleted: vec![false; n],
            retrieved: vec![false; n],
            last: 0,
            capabilities,
            counts: Counts::default(),
        }
    }

    fn reply(&mut self, line: &str) {
        self.wire.write(line.as_bytes());
        self.wire.write(b"\r\n");
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.idle
    }

    /// Serve until QUIT, EOF, timeout or too many bad commands; returns
    /// how it ended, for the log.
    pub fn run(&mut self) -> &'static str {
        let mut bad = 0u32;
        loop {
            // Pipelined commands are answered together.
            if !self.wire.has_buffered_input() && self.wire.flush(self.deadline()).is_err() {
                return "connection lost";
            }
            let line = match self.wire.read_line(self.deadline()) {
                Ok(l) => l,
                Err(WireError::Timeout) => return "autologout",
                Err(_) => return "connection lost",
            };
            let ok = match line {
                Line::TooLong => {
                    self.reply("-ERR Line too long.");
                    false
                }
                Line::Text(t) => match command::parse(&t) {
                    Err(e) => {
                        self.reply(e);
                        false
                    }
                    Ok(c) => {
                        let keyword = c.keyword.clone();
                        let rest = c.rest.to_string();
                        if keyword == "QUIT" {
                            self.quit();
                            let d = self.deadline();
                            self.wire.close(d);
                            return "quit";
                        }
                        match self.command(&keyword, &rest) {
                            Ok(good) => good,
                            Err(e) => {
                                log::warning(None, &format!("pop3 session ended: {e}"));
                                self.reply("-ERR [SYS/TEMP] The mailbox was changed by another program; please reconnect.");
                                let d = self.deadline();
                                self.wire.close(d);
                                return "mailbox error";
                            }
                        }
                    }
                },
            };
            bad = if ok { 0 } else { bad + 1 };
            if bad >= MAX_BAD_COMMANDS {
                self.reply("-ERR Too many bad commands.");
                let d = self.deadline();
                self.wire.close(d);
                return "too many bad commands";
            }
        }
    }

    /// One command; `Ok(false)` for a command that was refused,
    /// `Err` when the maildrop failed and the session must end.
    fn command(&mut self, keyword: &str, rest: &str) -> std::io::Result<bool> {
        let count = self.drop.list().len();
        macro_rules! number {
            ($arg:expr) => {
                match one_arg($arg).and_then(|a| message_number(a, count)) {
                    Ok(n) if self.deleted[n] => {
                        self.reply("-ERR Message is deleted.");
                        return Ok(false);
                    }
                    Ok(n) => n,
                    Err(e) => {
                        self.reply(&e);
                        return Ok(false);
                    }
                }
            };
        }
        match keyword {
            "STAT" if rest.is_empty() => {
                let (n, size) = self.totals();
                self.reply(&format!("+OK {n} {size}"));
            }
            "LIST" if rest.is_empty() => {
                let (n, _) = self.totals();
                self.reply(&format!("+OK {n} messages:"));
                for i in 0..count {
                    if !self.deleted[i] {
                        let s = self.drop.list()[i].size;
                        self.reply(&format!("{} {s}", i + 1));
                    }
                }
                self.reply(".");
            }
            "LIST" => {
                let n = number!(rest);
                let s = self.drop.list()[n].size;
                self.reply(&format!("+OK {} {s}", n + 1));
            }
            "UIDL" if rest.is_empty() => {
                self.reply("+OK");
                for i in 0..count {
                    if !self.deleted[i] {
                        let line = format!("{} {}", i + 1, self.drop.list()[i].uidl);
                        self.reply(&line);
                    }
                }
                self.reply(".");
            }
            "UIDL" => {
                let n = number!(rest);
                let line = format!("+OK {} {}", n + 1, self.drop.list()[n].uidl);
                self.reply(&line);
            }
            "RETR" => {
                let n = number!(rest);
                let size = self.drop.list()[n].size;
                self.drop.prepare(n)?;
                self.reply(&format!("+OK {size} octets"));
                let idle = self.idle;
                self.drop
                    .send(n, None, &mut self.wire, &|| Instant::now() + idle)?;
                self.reply(".");
                self.retrieved[n] = true;
                self.last = self.last.max(n + 1);
                self.counts.retrieved += 1;
                self.counts.retrieved_bytes += size;
            }
            "TOP" => {
                let (arg, lines) = match rest.split_once(' ') {
                    Some((a, l)) => (a, l),
                    None => {
                        self.reply("-ERR Usage: TOP message lines");
                        return Ok(false);
                    }
                };
                let n = number!(arg);
                // fetchmail asks for `TOP n 99999999`: clamp, do not refuse.
                let lines = match lines.bytes().all(|b| b.is_ascii_digit()) && !lines.is_empty() {
                    true => lines.parse::<u64>().unwrap_or(u64::MAX),
                    false => {
                        self.reply(&format!("-ERR Invalid size: {}", command::clip(lines)));
                        return Ok(false);
                    }
                };
                self.drop.prepare(n)?;
                self.reply("+OK");
                let idle = self.idle;
                self.drop
                    .send(n, Some(lines), &mut self.wire, &|| Instant::now() + idle)?;
                self.reply(".");
                self.last = self.last.max(n + 1);
                self.counts.top += 1;
            }
            "DELE" => {
                let n = number!(rest);
                self.deleted[n] = true;
                self.last = self.last.max(n + 1);
                self.reply("+OK Marked to be deleted.");
            }
            "NOOP" if rest.is_empty() => self.reply("+OK"),
            "LAST" if rest.is_empty() => {
                let last = self.last;
                self.reply(&format!("+OK {last}"));
            }
            "RSET" if rest.is_empty() => {
                self.deleted.iter_mut().for_each(|d| *d = false);
                self.last = 0;
                let (n, size) = self.totals();
                self.reply(&format!("+OK maildrop has {n} messages ({size} octets)"));
            }
            "CAPA" if rest.is_empty() => {
                let caps = self.capabilities.clone();
                self.reply("+OK Capability list follows");
                self.wire.write(caps.as_bytes());
                self.reply(".");
            }
            "STAT" | "NOOP" | "RSET" | "CAPA" | "LAST" => {
                self.reply("-ERR This command takes no arguments.");
                return Ok(false);
            }
            _ => {
                self.reply("-ERR Unknown command.");
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Messages not marked deleted, and their octets.
    fn totals(&self) -> (usize, u64) {
        self.drop
            .list()
            .iter()
            .zip(&self.deleted)
            .filter(|(_, d)| !**d)
            .fold((0, 0), |(n, s), (l, _)| (n + 1, s + l.size))
    }

    /// UPDATE: remove what was marked, then reply.
    fn quit(&mut self) {
        if !self.deleted.iter().any(|d| *d) && !self.retrieved.iter().any(|r| *r) {
            self.reply("+OK Logging out.");
            return;
        }
        match self.drop.commit(&self.deleted, &self.retrieved) {
            Ok(c) => {
                self.counts.deleted = c.deleted;
                self.counts.deleted_bytes = c.deleted_bytes;
                if c.deleted > 0 {
                    self.reply("+OK Logging out, messages deleted.");
                } else {
                    self.reply("+OK Logging out.");
                }
            }
            Err(e) => {
                log::warning(None, &format!("pop3 QUIT: {e}"));
                self.reply("-ERR [SYS/TEMP] Some deleted messages were not removed.");
            }
        }
    }

    /// Messages left in the maildrop, and their octets.
    pub fn left(&self) -> (usize, u64) {
        let (n, s) = self
            .drop
            .list()
            .iter()
            .fold((0, 0), |(n, s), l| (n + 1, s + l.size));
        (n - self.counts.deleted, s - self.counts.deleted_bytes)
    }
}
