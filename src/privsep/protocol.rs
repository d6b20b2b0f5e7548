//! What the network process asks and the authority answers, in
//! [`super::frame`]s.  The network process asks only what its server
//! needs: pop3d logins (USER/PASS, AUTH PLAIN and LOGIN, APOP) and the
//! hand-off of the session after one; the SMTP server AUTH.
//!
//! | network → authority | fields | for |
//! |---|---|---|
//! | [`Request::Password`] | `PASS` authzid name password | pop3d USER/PASS, AUTH PLAIN and LOGIN; SMTP AUTH PLAIN and LOGIN (authzid empty but for PLAIN) |
//! | [`Request::Apop`] | `APOP` name digest | pop3d APOP, against the greeting's timestamp, which the authority made (never one the network process sends) |
//! | [`Request::Handoff`] | `HANDOFF` mode bytes | pop3d, after `OK`: `direct` (the authority serves descriptors 0 and 1 itself) or `relay` (through this channel, the network process keeping TLS), with the client's pipelined input |
//!
//! | authority → network | fields | pop3d says | SMTP says |
//! |---|---|---|---|
//! | [`Answer::LoggedIn`] | `OK` login | `+OK Logged in.` | `235` |
//! | [`Answer::Failed`] | `FAIL` | `-ERR [AUTH] Authentication failed.` | `535` |
//! | [`Answer::TooManyFailures`] | `BYE` | the same, then closes | `535`, `421`, closes |
//! | [`Answer::InUse`] | `INUSE` | `-ERR [IN-USE] ...`, closes | — |
//! | [`Answer::LoginDelay`] | `DELAY` | `-ERR [LOGIN-DELAY] ...`, closes | — |
//! | [`Answer::Temporary`], [`Answer::Permanent`] | `TEMP` text, `PERM` text | `-ERR [SYS/TEMP]` / `[SYS/PERM]` text, closes | — |
//!
//! A frame that is none of these is no request: the authority counts it
//! as a failed login.

use std::io;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::frame;
use crate::login::Attempt;

/// From the network process to the authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A name and a password (with SASL's authorization identity).
    Password {
        authzid: Vec<u8>,
        name: Vec<u8>,
        password: Vec<u8>,
    },
    /// A name and an APOP digest.
    Apop { name: Vec<u8>, digest: Vec<u8> },
    /// After [`Answer::LoggedIn`]: how the session goes on.
    Handoff {
        /// Through this channel (the network process keeps TLS), else
        /// on descriptors 0 and 1.
        relay: bool,
        /// What the client already sent after its login.
        early: Vec<u8>,
    },
}

impl Request {
    pub fn send(&self, s: &mut UnixStream) -> io::Result<()> {
        match self {
            Request::Password {
                authzid,
                name,
                password,
            } => frame::send(s, &[b"PASS", authzid, name, password]),
            Request::Apop { name, digest } => frame::send(s, &[b"APOP", name, digest]),
            Request::Handoff { relay, early } => {
                let mode: &[u8] = if *relay { b"relay" } else { b"direct" };
                frame::send(s, &[b"HANDOFF", mode, early])
            }
        }
    }

    /// The next request: `None` when the frame is none.
    pub fn receive(s: &mut UnixStream, timeout: Duration) -> io::Result<Option<Request>> {
        Ok(Request::parse(frame::receive(s, timeout)?))
    }

    fn parse(mut f: Vec<Vec<u8>>) -> Option<Request> {
        match (f.first().map(Vec::as_slice)?, f.len()) {
            (b"PASS", 4) => {
                let password = f.pop()?;
                let name = f.pop()?;
                let authzid = f.pop()?;
                Some(Request::Password {
                    authzid,
                    name,
                    password,
                })
            }
            (b"APOP", 3) => {
                let digest = f.pop()?;
                let name = f.pop()?;
                Some(Request::Apop { name, digest })
            }
            (b"HANDOFF", n) if n >= 3 => {
                // The input may hold NULs: the fields after the mode are
                // its pieces.
                let early = f[2..].join(&0u8);
                let relay = match f[1].as_slice() {
                    b"relay" => true,
                    b"direct" => false,
                    _ => return None,
                };
                Some(Request::Handoff { relay, early })
            }
            _ => None,
        }
    }

    /// The login attempt this request makes, if it is one; `apop` is the
    /// timestamp the authority put in the greeting (APOP needs one).
    pub fn attempt(&self, apop: Option<&str>) -> Option<Attempt> {
        match self {
            Request::Password {
                authzid,
                name,
                password,
            } => Some(Attempt::sasl(authzid, name, password)),
            Request::Apop { name, digest } => apop.map(|ts| Attempt::apop(name, ts, digest)),
            Request::Handoff { .. } => None,
        }
    }
}

/// From the authority to the network process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Logged in, as this login.
    LoggedIn(String),
    /// Failed; the client may try again.
    Failed,
    /// Failed, and too many times: close.
    TooManyFailures,
    /// pop3d: the mailbox is locked by another session.
    InUse,
    /// pop3d: logged in too recently (`pop3_login_delay`).
    LoginDelay,
    /// Something failed that may work later (the text is for the client).
    Temporary(String),
    /// Something failed for good (the text is for the client).
    Permanent(String),
}

impl Answer {
    pub fn send(&self, s: &mut UnixStream) -> io::Result<()> {
        match self {
            Answer::LoggedIn(login) => frame::send(s, &[b"OK", login.as_bytes()]),
            Answer::Failed => frame::send(s, &[b"FAIL"]),
            Answer::TooManyFailures => frame::send(s, &[b"BYE"]),
            Answer::InUse => frame::send(s, &[b"INUSE"]),
            Answer::LoginDelay => frame::send(s, &[b"DELAY"]),
            Answer::Temporary(text) => frame::send(s, &[b"TEMP", text.as_bytes()]),
            Answer::Permanent(text) => frame::send(s, &[b"PERM", text.as_bytes()]),
        }
    }

    /// The next answer: `None` when the frame is none.
    pub fn receive(s: &mut UnixStream, timeout: Duration) -> io::Result<Option<Answer>> {
        Ok(Answer::parse(frame::receive(s, timeout)?))
    }

    fn parse(f: Vec<Vec<u8>>) -> Option<Answer> {
        let text = |i: usize| {
            f.get(i)
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .unwrap_or_default()
        };
        Some(match f.first().map(Vec::as_slice)? {
            b"OK" if f.len() <= 2 => Answer::LoggedIn(text(1)),
            b"FAIL" => Answer::Failed,
            b"BYE" => Answer::TooManyFailures,
            b"INUSE" => Answer::InUse,
            b"DELAY" => Answer::LoginDelay,
            b"TEMP" => Answer::Temporary(text(1)),
            b"PERM" => Answer::Permanent(text(1)),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_round_trip() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let wait = Duration::from_secs(1);
        for r in [
            Request::Password {
                authzid: b"".to_vec(),
                name: b"bob".to_vec(),
                password: b"pass word".to_vec(),
            },
            Request::Apop {
                name: b"info@example.com".to_vec(),
                digest: b"c4c9334bac560ecc979e58001b3e22fb".to_vec(),
            },
            Request::Handoff {
                relay: true,
                early: b"STAT\r\nRETR 1\0\0\r\n".to_vec(),
            },
        ] {
            r.send(&mut a).unwrap();
            assert_eq!(Request::receive(&mut b, wait).unwrap(), Some(r));
        }
        for x in [
            Answer::LoggedIn("bob".into()),
            Answer::Failed,
            Answer::TooManyFailures,
            Answer::InUse,
            Answer::LoginDelay,
            Answer::Temporary("Internal error.".into()),
            Answer::Permanent("Logins as root are not allowed.".into()),
        ] {
            x.send(&mut b).unwrap();
            assert_eq!(Answer::receive(&mut a, wait).unwrap(), Some(x));
        }
    }

    #[test]
    fn a_frame_that_is_no_request_is_none() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let wait = Duration::from_secs(1);
        for fields in [
            &[&b"PASS"[..], b"bob", b"pw"][..],
            &[b"PASS", b"", b"bob", b"pw", b"extra"],
            &[b"HANDOFF", b"sideways", b""],
            &[b"SHELL", b"/bin/sh"],
            &[b""],
        ] {
            frame::send(&mut a, fields).unwrap();
            assert_eq!(Request::receive(&mut b, wait).unwrap(), None, "{fields:?}");
        }
        // APOP is a login only where the greeting offered a timestamp.
        let apop = Request::Apop {
            name: b"bob".to_vec(),
            digest: b"0123".to_vec(),
        };
        assert_eq!(apop.attempt(None), None);
        assert_eq!(
            apop.attempt(Some("<1.2@host>")),
            Some(Attempt::apop(b"bob", "<1.2@host>", b"0123"))
        );
    }
}
