//! The AUTHORIZATION state (RFC 1939 §4, RFC 2449, RFC 2595, RFC 5034),
//! spoken by pop3d's unprivileged network process: greeting, `CAPA`,
//! `STLS`, `USER`/`PASS`, `APOP`, `AUTH PLAIN`/`AUTH LOGIN`, `QUIT`.
//! Credentials go to the authority as [`crate::privsep::protocol`]
//! requests; the client hears the same `-ERR [AUTH] Authentication
//! failed.` for every failure.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::command;
use super::settings::Settings;
use crate::b64;
use crate::log;
use crate::privsep::protocol::{Answer, Request};
use crate::wire::{Line, Wire, WireError};

/// What the network process works with.
pub struct Front<'a> {
    pub wire: Wire,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The APOP timestamp of the greeting, when APOP can succeed.
    pub apop: Option<String>,
    pub settings: &'a Settings,
    pub ctl: UnixStream,
}

/// How an exchange with the authority ended.
enum Verdict {
    /// Logged in: the session now belongs to the authority.
    In,
    /// Try again.
    Again,
    /// Close the connection.
    Close,
}

impl Front<'_> {
    fn reply(&mut self, line: &str) {
        self.wire.write(line.as_bytes());
        self.wire.write(b"\r\n");
    }

    /// Whether USER/PASS and SASL PLAIN/LOGIN are allowed right now.
    fn plaintext_ok(&self) -> bool {
        !self.settings.require_tls || self.wire.is_tls()
    }

    /// The capability lines (without `+OK` and `.`).
    pub fn capabilities(settings: &Settings, tls_available: bool, tls_active: bool) -> String {
        let mut c = String::from(
            "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\n",
        );
        if settings.login_delay > 0 {
            c.push_str(&format!("LOGIN-DELAY {}\r\n", settings.login_delay));
        }
        if !settings.require_tls || tls_active {
            c.push_str("USER\r\nSASL PLAIN LOGIN\r\n");
        }
        if tls_available && !tls_active {
            c.push_str("STLS\r\n");
        }
        c
    }

    /// Serve until logged in (the authority takes over) or the end.
    pub fn run(&mut self, implicit_tls: bool) {
        let start = Instant::now();
        let total = self.settings.login_timeout * 3;
        let deadline = |s: &Self| (Instant::now() + s.settings.login_timeout).min(start + total);
        if implicit_tls {
            let Some(cfg) = self.tls.clone() else {
                return;
            };
            if let Err(e) = self.wire.start_tls(cfg, deadline(self)) {
                log::info(None, &format!("TLS handshake failed: {e:?}"));
                return;
            }
        }
        let greeting = match &self.apop {
            Some(ts) => format!("+OK POP3 ready {ts}"),
            None => "+OK POP3 ready.".to_string(),
        };
        self.reply(&greeting);
        let mut user: Option<Vec<u8>> = None;
        let mut bad = 0u32;
        loop {
            if !self.wire.has_buffered_input() && self.wire.flush(deadline(self)).is_err() {
                return;
            }
            let line = match self.wire.read_line(deadline(self)) {
                Ok(Line::Text(t)) => t,
                Ok(Line::TooLong) => {
                    self.reply("-ERR Line too long.");
                    bad += 1;
                    if bad >= super::session::MAX_BAD_COMMANDS {
                        break;
                    }
                    continue;
                }
                Err(WireError::Timeout) => {
                    self.reply("-ERR Disconnected for inactivity.");
                    break;
                }
                Err(_) => return,
            };
            let cmd = match command::parse(&line) {
                Ok(c) => c,
                Err(e) => {
                    self.reply(e);
                    bad += 1;
                    if bad >= super::session::MAX_BAD_COMMANDS {
                        self.reply("-ERR Too many bad commands.");
                        break;
                    }
                    continue;
                }
            };
            let mut good = true;
            let verdict = match (cmd.keyword.as_str(), cmd.rest) {
                ("CAPA", "") => {
                    let caps =
                        Front::capabilities(self.settings, self.tls.is_some(), self.wire.is_tls());
                    self.reply("+OK Capability list follows");
                    self.wire.write(caps.as_bytes());
                    self.reply(".");
                    Verdict::Again
                }
                ("QUIT", "") => {
                    self.reply("+OK Bye.");
                    Verdict::Close
                }
                ("STLS", "") => match self.tls.clone() {
                    Some(cfg) if !self.wire.is_tls() => {
                        self.reply("+OK Begin TLS negotiation.");
                        if self.wire.flush(deadline(self)).is_err() {
                            return;
                        }
                        // Forget everything said in plaintext (RFC 2595 §4).
                        user = None;
                        if let Err(e) = self.wire.start_tls(cfg, deadline(self)) {
                            log::info(None, &format!("STLS handshake failed: {e:?}"));
                            return;
                        }
                        Verdict::Again
                    }
                    Some(_) => {
                        self.reply("-ERR TLS is already active.");
                        good = false;
                        Verdict::Again
                    }
                    None => {
                        self.reply("-ERR STLS is not available.");
                        good = false;
                        Verdict::Again
                    }
                },
                ("USER", name) if !name.is_empty() => {
                    if self.plaintext_ok() {
                        user = Some(name.as_bytes().to_vec());
                        self.reply("+OK");
                    } else {
                        self.refuse_plaintext();
                        good = false;
                    }
                    Verdict::Again
                }
                ("PASS", pw) => match user.take() {
                    Some(name) if self.plaintext_ok() => self.ask(Request::Password {
                        authzid: Vec::new(),
                        name,
                        password: pw.as_bytes().to_vec(),
                    }),
                    Some(_) => {
                        self.refuse_plaintext();
                        Verdict::Again
                    }
                    None => {
                        self.reply("-ERR No username given.");
                        good = false;
                        Verdict::Again
                    }
                },
                ("APOP", args) if self.apop.is_some() => match args.split_once(' ') {
                    Some((name, digest)) if !digest.contains(' ') => self.ask(Request::Apop {
                        name: name.as_bytes().to_vec(),
                        digest: digest.as_bytes().to_vec(),
                    }),
                    _ => {
                        self.reply("-ERR Usage: APOP name digest");
                        good = false;
                        Verdict::Again
                    }
                },
                ("AUTH", "") => {
                    self.reply("+OK\r\nPLAIN\r\nLOGIN\r\n.");
                    Verdict::Again
                }
                ("AUTH", args) => {
                    if self.plaintext_ok() {
                        self.sasl(args, deadline(self))
                    } else {
                        self.refuse_plaintext();
                        Verdict::Again
                    }
                }
                _ => {
                    self.reply("-ERR Unknown command.");
                    good = false;
                    Verdict::Again
                }
            };
            match verdict {
                Verdict::In => return self.hand_over(),
                Verdict::Close => break,
                Verdict::Again => {}
            }
            bad = if good { 0 } else { bad + 1 };
            if bad >= super::session::MAX_BAD_COMMANDS {
                self.reply("-ERR Too many bad commands.");
                break;
            }
        }
        let d = deadline(self);
        self.wire.close(d);
    }

    fn refuse_plaintext(&mut self) {
        self.reply("-ERR [AUTH] Plaintext authentication disallowed on non-secure connections.");
    }

    /// AUTH PLAIN or AUTH LOGIN, with or without an initial response.
    fn sasl(&mut self, args: &str, deadline: Instant) -> Verdict {
        let (mech, initial) = match args.split_once(' ') {
            Some((m, i)) => (m, Some(i)),
            None => (args, None),
        };
        let ask = |me: &mut Self, challenge: &str| -> Option<Vec<u8>> {
            me.reply(&format!("+ {challenge}"));
            if me.wire.flush(deadline).is_err() {
                return None;
            }
            match me.wire.read_line(deadline) {
                Ok(Line::Text(t)) if t == b"*" => {
                    me.reply("-ERR Authentication cancelled.");
                    None
                }
                Ok(Line::Text(t)) => match decode(&t) {
                    Some(v) => Some(v),
                    None => {
                        me.reply("-ERR Invalid base64 data.");
                        None
                    }
                },
                _ => {
                    me.reply("-ERR Authentication failed.");
                    None
                }
            }
        };
        match mech.to_ascii_uppercase().as_str() {
            "PLAIN" => {
                let data = match initial {
                    Some(i) => match decode(i.as_bytes()) {
                        Some(v) => v,
                        None => {
                            self.reply("-ERR Invalid base64 data.");
                            return Verdict::Again;
                        }
                    },
                    None => match ask(self, "") {
                        Some(v) => v,
                        None => return Verdict::Again,
                    },
                };
                let parts: Vec<&[u8]> = data.split(|&b| b == 0).collect();
                let [authzid, authcid, password] = parts[..] else {
                    self.reply("-ERR [AUTH] Authentication failed.");
                    return Verdict::Again;
                };
                self.ask(Request::Password {
                    authzid: authzid.to_vec(),
                    name: authcid.to_vec(),
                    password: password.to_vec(),
                })
            }
            "LOGIN" => {
                let name = match initial {
                    Some(i) => match decode(i.as_bytes()) {
                        Some(v) => v,
                        None => {
                            self.reply("-ERR Invalid base64 data.");
                            return Verdict::Again;
                        }
                    },
                    // base64("Username:")
                    None => match ask(self, "VXNlcm5hbWU6") {
                        Some(v) => v,
                        None => return Verdict::Again,
                    },
                };
                // base64("Password:")
                let Some(password) = ask(self, "UGFzc3dvcmQ6") else {
                    return Verdict::Again;
                };
                if name.contains(&0) || password.contains(&0) {
                    self.reply("-ERR [AUTH] Authentication failed.");
                    return Verdict::Again;
                }
                self.ask(Request::Password {
                    authzid: Vec::new(),
                    name,
                    password,
                })
            }
            _ => {
                self.reply("-ERR Unsupported authentication mechanism.");
                Verdict::Again
            }
        }
    }

    /// Ask the authority and tell the client what it said.
    fn ask(&mut self, request: Request) -> Verdict {
        // The reply may take a while (a failure is answered slowly).
        let wait = self.settings.auth_fail_delay * 64 + Duration::from_secs(120);
        let answer = request
            .send(&mut self.ctl)
            .and_then(|()| Answer::receive(&mut self.ctl, wait));
        let Ok(answer) = answer else {
            self.reply("-ERR [SYS/TEMP] Authentication is not available.");
            return Verdict::Close;
        };
        match answer {
            Some(Answer::LoggedIn(_)) => {
                self.reply("+OK Logged in.");
                Verdict::In
            }
            Some(Answer::Failed) => {
                self.reply("-ERR [AUTH] Authentication failed.");
                Verdict::Again
            }
            Some(Answer::InUse) => {
                self.reply("-ERR [IN-USE] Mailbox is locked by another POP3 session.");
                Verdict::Close
            }
            Some(Answer::LoginDelay) => {
                self.reply("-ERR [LOGIN-DELAY] Logged in too recently.");
                Verdict::Close
            }
            Some(Answer::Temporary(text)) => {
                self.reply(&format!("-ERR [SYS/TEMP] {text}"));
                Verdict::Close
            }
            Some(Answer::Permanent(text)) => {
                self.reply(&format!("-ERR [SYS/PERM] {text}"));
                Verdict::Close
            }
            Some(Answer::TooManyFailures) | None => {
                self.reply("-ERR [AUTH] Authentication failed.");
                Verdict::Close
            }
        }
    }

    /// Logged in: send `+OK`, then pass the session to the authority —
    /// directly (it serves the socket itself) or, under TLS, through this
    /// process, which keeps relaying.
    fn hand_over(&mut self) {
        let deadline = Instant::now() + self.settings.idle_timeout;
        if self.wire.flush(deadline).is_err() {
            return;
        }
        let handoff = Request::Handoff {
            relay: self.wire.is_tls(),
            early: self.wire.take_buffered(),
        };
        if handoff.send(&mut self.ctl).is_err() {
            return;
        }
        if self.wire.is_tls() {
            let fd = self.ctl.as_raw_fd();
            let _ = self.wire.relay(fd, self.settings.idle_timeout);
            self.wire.close(Instant::now() + Duration::from_secs(5));
        }
    }
}

/// Base64 as SASL sends it (`=` alone is the empty response).
fn decode(t: &[u8]) -> Option<Vec<u8>> {
    let s = std::str::from_utf8(t).ok()?.trim();
    if s == "=" {
        return Some(Vec::new());
    }
    b64::decode(s)
}
