//! SMTP AUTH in the dialogue (RFC 4954: PLAIN and LOGIN), checked by the
//! login door through the [`crate::smtp::server::Authenticator`]; only
//! over TLS or from loopback.

use super::{End, Session};
use crate::b64;
use crate::log;
use crate::smtp::server::Verdict;
use crate::wire::Line;

impl Session<'_> {
    pub(super) fn auth_command(&mut self, arg: &str) -> Option<End> {
        if self.authenticated.is_some() {
            self.error(503, "5.5.0 Already Authenticated");
            return None;
        }
        if self.txn.is_some() {
            self.error(503, "5.5.0 AUTH not permitted during a mail transaction");
            return None;
        }
        if !self.auth_offered() {
            if self.is_network() {
                self.error(
                    538,
                    "5.7.11 Encryption required for requested authentication mechanism",
                );
            } else {
                self.error(503, "5.3.3 AUTH not available");
            }
            return None;
        }
        let mut words = arg.split_whitespace();
        let mech = words.next().unwrap_or("").to_ascii_uppercase();
        let initial = words.next().map(str::to_string);
        let creds: Option<(Vec<u8>, Vec<u8>, Vec<u8>)> = match mech.as_str() {
            "PLAIN" => {
                let resp = match initial {
                    Some(r) => Some(r),
                    None => self.challenge("")?,
                };
                let resp = resp?;
                match b64::decode(&resp) {
                    Some(raw) => {
                        let parts: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
                        match parts.as_slice() {
                            [z, c, p] => Some((z.to_vec(), c.to_vec(), p.to_vec())),
                            _ => None,
                        }
                    }
                    None => None,
                }
            }
            "LOGIN" => {
                let user = match initial {
                    Some(r) => Some(r),
                    None => self.challenge("VXNlcm5hbWU6")?,
                };
                let user = user?;
                let pass = self.challenge("UGFzc3dvcmQ6")??;
                match (b64::decode(&user), b64::decode(&pass)) {
                    (Some(u), Some(p)) => Some((Vec::new(), u, p)),
                    _ => None,
                }
            }
            "" => {
                self.error(501, "5.5.2 AUTH mechanism must be specified");
                return None;
            }
            _ => {
                self.error(504, &format!("5.3.3 AUTH mechanism {mech} not available"));
                return None;
            }
        };
        let verdict = match creds {
            None => Verdict::Fail,
            Some((z, c, p)) => self.auth.check(&z, &c, &p),
        };
        match verdict {
            Verdict::Ok(login) => {
                log::info(
                    None,
                    &format!(
                        "AUTH=server, relay={}, authid={login}, mech={mech}, bits=0",
                        self.relay_name()
                    ),
                );
                self.authenticated = Some(login);
                self.reply(235, "2.0.0 OK Authenticated");
                None
            }
            Verdict::Fail | Verdict::Bye => {
                self.auth_failures += 1;
                log::notice(
                    None,
                    &format!(
                        "AUTH failure ({mech}): authentication failure, relay={}",
                        self.relay_name()
                    ),
                );
                self.error(535, "5.7.8 Authentication failed");
                if verdict == Verdict::Bye || self.auth_failures >= self.settings.max_auth_failures
                {
                    let host = self.host().to_string();
                    self.reply(
                        421,
                        &format!("4.7.0 {host} Too many authentication failures"),
                    );
                    return Some(End::TooManyErrors);
                }
                None
            }
        }
    }

    /// Send a `334` challenge and read the answer: `Some(None)` when the
    /// client cancelled (`*`, answered here); `None` ends the session.
    fn challenge(&mut self, text: &str) -> Option<Option<String>> {
        self.reply(334, text);
        if self.wire.flush(self.deadline()).is_err() {
            return None;
        }
        let line = match self.wire.read_line(self.deadline()) {
            Ok(Line::Text(t)) => t,
            Ok(Line::TooLong) => {
                self.error(500, "5.5.2 Line too long");
                return Some(None);
            }
            Err(_) => return None,
        };
        if line == b"*" {
            self.error(501, "5.0.0 AUTH aborted");
            return Some(None);
        }
        Some(Some(String::from_utf8_lossy(&line).trim().to_string()))
    }
}
