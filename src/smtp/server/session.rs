//! The SMTP dialogue (RFC 5321, with ESMTP: RFC 1870 SIZE, 6152 8BITMIME,
//! 2920 PIPELINING, 2034/3463 enhanced codes, 3461 DSN, 3207 STARTTLS,
//! 4954 AUTH), replies worded as sendmail 8's.  The sender checks'
//! part is in `checks`.

mod auth;
mod checks;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Authenticator;
use super::accept::{self, Rcpt, Refused, Transaction};
use super::command::{self, PathArg};
use super::incoming::{DataReader, Fault};
use super::policy::{Policy, RelayRight};
use super::settings::Settings;
use crate::config::{Config, DeliveryMode};
use crate::log;
use crate::queue::{Notify, Ret};
use crate::smtp::Reply;
use crate::wire::{Line, Wire, WireError};

/// Who is on the other end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Client {
    /// A local program on a pipe (the calling user's login).
    Program(String),
    /// A network client.
    Network {
        ip: IpAddr,
        /// A submission port: AUTH before MAIL.
        submission: bool,
    },
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Quit,
    Closed,
    Timeout,
    TooManyErrors,
    Broken,
}

/// One SMTP session.
pub struct Session<'a> {
    pub cfg: &'a Config,
    pub settings: &'a Settings,
    pub policy: &'a Policy,
    pub wire: Wire,
    pub client: Client,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub auth: Authenticator<'a>,
    /// The per-address connection slot ([`super::slots`]), given up as the
    /// session ends — before its last reply, so that a client that
    /// reconnects at once finds it free.
    pub slot: Option<std::fs::File>,
    /// What happens after a message is accepted (`-od?` for a local
    /// program; network clients never wait: background).
    pub delivery: DeliveryMode,
    /// TLS from the first byte (`--tls`, port 465): the handshake comes
    /// before the greeting, and STARTTLS is not offered.
    pub implicit_tls: bool,
    /// Said instead of the greeting, then the connection is closed (too
    /// many connections, an access `Connect:` rejection) — for an
    /// implicit-TLS client, which hears nothing outside TLS.
    pub refusal: Option<Reply>,
    /// The sender checks for mail from the internet (`checks`).
    pub gate: Option<crate::inbound::Gate>,
    /// Refused service at connect (a blocklist): only QUIT is answered.
    service_refused: bool,
    helo: Option<String>,
    esmtp: bool,
    authenticated: Option<String>,
    relay_right: Option<RelayRight>,
    relay_logged: bool,
    txn: Option<Transaction>,
    errors: u32,
    auth_failures: u32,
    /// Talked before the greeting: everything is refused.
    rejected: bool,
    rejected_replied: bool,
}

const HELP: &[&str] = &[
    "2.0.0 This is mailroom, a sendmail-compatible mail server",
    "2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY EXPN STARTTLS AUTH",
    "2.0.0 For local information send email to Postmaster at your site.",
    "2.0.0 End of HELP info",
];

impl<'a> Session<'a> {
    pub fn new(
        cfg: &'a Config,
        settings: &'a Settings,
        policy: &'a Policy,
        wire: Wire,
        client: Client,
        tls: Option<Arc<rustls::ServerConfig>>,
        auth: Authenticator<'a>,
    ) -> Session<'a> {
        let relay_right = match &client {
            Client::Program(_) => Some(RelayRight::LocalProgram),
            Client::Network { ip, .. } => policy.relay_right(ip),
        };
        Session {
            cfg,
            settings,
            policy,
            wire,
            client,
            tls,
            auth,
            slot: None,
            delivery: match cfg.delivery_mode {
                DeliveryMode::QueueOnly => DeliveryMode::QueueOnly,
                _ => DeliveryMode::Background,
            },
            implicit_tls: false,
            refusal: None,
            gate: None,
            service_refused: false,
            helo: None,
            esmtp: false,
            authenticated: None,
            relay_right,
            relay_logged: false,
            txn: None,
            errors: 0,
            auth_failures: 0,
            rejected: false,
            rejected_replied: false,
        }
    }

    fn host(&self) -> &str {
        &self.cfg.hostname
    }

    fn is_network(&self) -> bool {
        matches!(self.client, Client::Network { .. })
    }

    /// `[192.0.2.7]`, `[IPv6:2001:db8:0:0:0:0:0:1]` or `USER@localhost`,
    /// as sendmail names clients (logs, `Hello`, `Received:`).
    fn relay_name(&self) -> String {
        match &self.client {
            Client::Program(u) => format!("{u}@localhost"),
            Client::Network { ip, .. } => format!("[{}]", crate::access::client_addr(ip)),
        }
    }

    fn reply(&mut self, code: u16, text: &str) {
        self.wire.write(format!("{code} {text}\r\n").as_bytes());
    }

    fn reply_multi(&mut self, code: u16, lines: &[String]) {
        for (i, l) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            self.wire.write(format!("{code}{sep}{l}\r\n").as_bytes());
        }
    }

    fn send(&mut self, r: &Reply) {
        let lines = r.lines.clone();
        self.reply_multi(r.code, &lines);
    }

    /// A reply that counts as the client's error.
    fn error(&mut self, code: u16, text: &str) {
        self.errors += 1;
        self.reply(code, text);
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.settings.timeout
    }

    /// AUTH may be offered: over TLS, from loopback, never to a local
    /// program (it is trusted already).
    fn auth_offered(&self) -> bool {
        match &self.client {
            Client::Program(_) => false,
            Client::Network { ip, .. } => self.wire.is_tls() || ip.is_loopback(),
        }
    }

    fn tls_offered(&self) -> bool {
        self.is_network() && self.tls.is_some() && !self.wire.is_tls()
    }

    fn may_relay(&self) -> bool {
        self.authenticated.is_some() || self.relay_right.is_some()
    }

    fn protocol(&self) -> String {
        let mut p = String::from(if self.esmtp { "ESMTP" } else { "SMTP" });
        if self.esmtp {
            if self.wire.is_tls() {
                p.push('S');
            }
            if self.authenticated.is_some() {
                p.push('A');
            }
        }
        p
    }

    /// The whole session: greeting, commands, until QUIT or the end.
    pub fn run(&mut self) -> End {
        if self.implicit_tls {
            let Some(cfg) = self.tls.clone() else {
                return End::Broken;
            };
            // A minute is plenty for a handshake; a client that waits for
            // a greeting in plain text hears nothing and is dropped.
            let deadline = Instant::now() + self.settings.timeout.min(Duration::from_secs(60));
            if let Err(e) = self.wire.start_tls(cfg, deadline) {
                log::info(
                    None,
                    &format!(
                        "TLS handshake with {} failed: {}",
                        self.relay_name(),
                        describe(&e)
                    ),
                );
                return End::Broken;
            }
        }
        if let Some(r) = self.refusal.take() {
            self.send(&r);
            self.close();
            return End::Closed;
        }
        if self.is_network()
            && !self.settings.greet_pause.is_zero()
            && self.wire.client_talks_within(self.settings.greet_pause)
        {
            log::notice(
                None,
                &format!(
                    "rejecting commands from {} due to pre-greeting traffic after {} seconds",
                    self.relay_name(),
                    self.settings.greet_pause.as_secs_f32()
                ),
            );
            self.rejected = true;
        }
        // A listed client hears 554 in place of the greeting (RFC 5321 §3.1).
        if self.rejected || !self.refused_at_connect() {
            let greeting = format!(
                "{} ESMTP mailroom {}; {}",
                self.host(),
                crate::VERSION,
                crate::date::rfc5322(crate::date::now())
            );
            self.reply(220, &greeting);
        }
        loop {
            if !self.wire.has_buffered_input() && self.wire.flush(self.deadline()).is_err() {
                return End::Closed;
            }
            if self.errors >= self.settings.max_errors {
                let host = self.host().to_string();
                self.reply(421, &format!("4.7.0 {host} Too many errors"));
                log::notice(
                    None,
                    &format!("{}: too many errors, closing", self.relay_name()),
                );
                self.close();
                return End::TooManyErrors;
            }
            let line = match self.wire.read_line(self.deadline()) {
                Ok(Line::Text(t)) => t,
                Ok(Line::TooLong) => {
                    self.error(500, "5.5.2 Line too long");
                    continue;
                }
                Err(WireError::Timeout) => {
                    let host = self.host().to_string();
                    self.reply(421, &format!("4.4.2 {host} Timeout waiting for input"));
                    log::info(
                        None,
                        &format!("timeout waiting for input from {}", self.relay_name()),
                    );
                    self.close();
                    return End::Timeout;
                }
                Err(_) => {
                    // The client stopped sending, perhaps only half-closed:
                    // it may still read the replies to what it pipelined,
                    // a message's 250 among them (unheard, the message
                    // would be sent again).
                    self.close();
                    return End::Closed;
                }
            };
            match self.command(&line) {
                None => {}
                Some(end) => {
                    self.close();
                    return end;
                }
            }
        }
    }

    fn close(&mut self) {
        self.slot = None;
        if self.is_network() {
            self.wire.close_lingering(Duration::from_secs(2));
        } else {
            self.wire.close(Instant::now() + Duration::from_secs(10));
        }
    }

    /// Answer one command line; `Some` ends the session.
    fn command(&mut self, line: &[u8]) -> Option<End> {
        let Some(cmd) = command::split(line) else {
            self.error(500, "5.5.1 Command unrecognized: invalid characters");
            return None;
        };
        let verb = cmd.verb.clone();
        let arg = cmd.arg.to_string();
        if self.rejected && verb != "QUIT" {
            if !self.rejected_replied {
                self.rejected_replied = true;
                self.error(554, "5.5.0 SMTP protocol error");
            } else {
                self.error(550, "5.0.0 Command rejected");
            }
            return None;
        }
        if self.service_refused && verb != "QUIT" {
            self.error(503, "5.5.1 No service: this client was refused at connect");
            return None;
        }
        match verb.as_str() {
            "EHLO" | "HELO" => self.hello(&verb, &arg),
            "MAIL" => self.mail(&arg),
            "RCPT" => self.rcpt(&arg),
            "DATA" => return self.data(&arg),
            "RSET" => {
                self.txn = None;
                self.reply(250, "2.0.0 Reset state");
            }
            "NOOP" => self.reply(250, "2.0.0 OK"),
            "QUIT" => {
                let host = self.host().to_string();
                self.reply(221, &format!("2.0.0 {host} closing connection"));
                return Some(End::Quit);
            }
            "HELP" => {
                let lines: Vec<String> = HELP.iter().map(|s| s.to_string()).collect();
                self.reply_multi(214, &lines);
            }
            // Never reveal which users exist (RFC 5321 §3.5.3).
            "VRFY" => self.reply(
                252,
                "2.5.2 Cannot VRFY user; try RCPT to attempt delivery (or try finger)",
            ),
            "EXPN" => self.error(502, "5.7.0 Sorry, we do not allow this operation"),
            "STARTTLS" => return self.starttls(&arg),
            "AUTH" => return self.auth_command(&arg),
            "" => self.error(500, "5.5.1 Command unrecognized: \"\""),
            _ => {
                let shown: String = String::from_utf8_lossy(line).chars().take(40).collect();
                self.error(500, &format!("5.5.1 Command unrecognized: \"{shown}\""));
            }
        }
        None
    }

    fn hello(&mut self, verb: &str, arg: &str) {
        let name = arg.split_whitespace().next().unwrap_or("");
        if name.is_empty() {
            self.error(501, &format!("5.0.0 {verb} requires domain address"));
            return;
        }
        if name.len() > 255 {
            self.error(501, "5.0.0 Invalid domain name");
            return;
        }
        self.txn = None;
        self.helo = Some(name.to_string());
        self.esmtp = verb == "EHLO";
        let who = self.relay_name();
        let host = self.host().to_string();
        let greeting = format!("{host} Hello {who}, pleased to meet you");
        if !self.esmtp {
            self.reply(250, &greeting);
            return;
        }
        let mut lines = vec![
            greeting,
            "ENHANCEDSTATUSCODES".to_string(),
            "PIPELINING".to_string(),
            "8BITMIME".to_string(),
        ];
        if self.cfg.message_size_limit > 0 {
            lines.push(format!("SIZE {}", self.cfg.message_size_limit));
        } else {
            lines.push("SIZE".to_string());
        }
        lines.push("DSN".to_string());
        if self.tls_offered() {
            lines.push("STARTTLS".to_string());
        }
        if self.auth_offered() && self.authenticated.is_none() {
            lines.push("AUTH PLAIN LOGIN".to_string());
        }
        lines.push("HELP".to_string());
        self.reply_multi(250, &lines);
    }

    fn mail(&mut self, arg: &str) {
        if self.helo.is_none() && self.is_network() {
            self.error(503, "5.0.0 Polite people say HELO first");
            return;
        }
        if self.txn.is_some() {
            self.error(503, "5.5.0 Sender already specified");
            return;
        }
        if let Client::Network {
            submission: true, ..
        } = self.client
            && self.authenticated.is_none()
        {
            self.error(530, "5.7.0 Authentication required");
            return;
        }
        let p: PathArg = match command::path_arg(arg, "FROM") {
            Ok(p) => p,
            Err((code, text)) => {
                self.error(code, &text);
                return;
            }
        };
        let mut txn = Transaction {
            sender: p.path.clone(),
            ..Default::default()
        };
        for (k, v) in &p.params {
            let v = v.as_deref();
            let ok = match (k.as_str(), v) {
                ("SIZE", Some(n)) => match n.parse::<u64>() {
                    Ok(n) => {
                        if self.cfg.message_size_limit > 0 && n > self.cfg.message_size_limit {
                            let limit = self.cfg.message_size_limit;
                            self.error(
                                552,
                                &format!(
                                    "5.2.3 Message size exceeds fixed maximum message size ({limit})"
                                ),
                            );
                            return;
                        }
                        txn.size = Some(n);
                        true
                    }
                    Err(_) => false,
                },
                ("BODY", Some(b)) if b.eq_ignore_ascii_case("8BITMIME") => {
                    txn.body_8bit = Some(true);
                    true
                }
                ("BODY", Some(b)) if b.eq_ignore_ascii_case("7BIT") => {
                    txn.body_8bit = Some(false);
                    true
                }
                ("RET", Some(r)) if r.eq_ignore_ascii_case("FULL") => {
                    txn.ret = Some(Ret::Full);
                    true
                }
                ("RET", Some(r)) if r.eq_ignore_ascii_case("HDRS") => {
                    txn.ret = Some(Ret::Headers);
                    true
                }
                ("ENVID", Some(e)) => match command::xtext_decode(e) {
                    Some(e) if e.len() <= 100 => {
                        txn.envid = Some(e);
                        true
                    }
                    _ => false,
                },
                // RFC 4954 §5: accepted and not trusted.
                ("AUTH", Some(_)) => true,
                ("BODY", Some(b)) => {
                    self.error(501, &format!("5.5.4 Unknown BODY type {b}"));
                    return;
                }
                _ => {
                    self.error(555, &format!("5.5.4 {k} parameter unrecognized"));
                    return;
                }
            };
            if !ok {
                self.error(501, &format!("5.5.4 Invalid {k} parameter"));
                return;
            }
        }
        match self.policy.check_sender(&p.path) {
            Ok(discard) => txn.discard = discard,
            Err(r) => {
                log::notice(
                    None,
                    &format!(
                        "ruleset=check_mail, arg1=<{}>, relay={}, reject={}",
                        p.path,
                        self.relay_name(),
                        r.one_line()
                    ),
                );
                self.errors += 1;
                self.send(&r);
                return;
            }
        }
        let Some(spf) = self.check_sender_spf(&p.path) else {
            return;
        };
        txn.spf = spf;
        self.reply(250, &format!("2.1.0 {}... Sender ok", p.shown));
        self.txn = Some(txn);
    }

    fn rcpt(&mut self, arg: &str) {
        let Some(count) = self.txn.as_ref().map(|t| t.rcpts.len()) else {
            self.error(503, "5.0.0 Need MAIL before RCPT");
            return;
        };
        let p = match command::path_arg(arg, "TO") {
            Ok(p) => p,
            Err((code, text)) => {
                self.error(code, &text);
                return;
            }
        };
        let mut notify = None;
        let mut orcpt = None;
        for (k, v) in &p.params {
            match (k.as_str(), v.as_deref()) {
                ("NOTIFY", Some(n)) => match Notify::parse(n) {
                    Some(n) => notify = Some(n),
                    None => {
                        self.error(501, &format!("5.5.4 Bad argument \"{n}\"  to NOTIFY"));
                        return;
                    }
                },
                ("ORCPT", Some(o)) => match o.split_once(';') {
                    Some((t, a)) if !t.is_empty() => match command::xtext_decode(a) {
                        Some(a) => orcpt = Some(format!("{t};{a}")),
                        None => {
                            self.error(501, "5.5.4 Invalid ORCPT parameter");
                            return;
                        }
                    },
                    _ => {
                        self.error(501, "5.5.4 Invalid ORCPT parameter");
                        return;
                    }
                },
                _ => {
                    self.error(555, &format!("5.5.4 {k} parameter unrecognized"));
                    return;
                }
            }
        }
        if count >= self.settings.max_recipients {
            self.reply(452, "4.5.3 Too many recipients");
            return;
        }
        let size = self.txn.as_ref().and_then(|t| t.size);
        let sender = self.txn.as_ref().map_or("", |t| t.sender.as_str());
        let verdict = self
            .policy
            .check_recipient(&p.path, self.may_relay(), size)
            .and_then(|ok| self.policy.check_posting(&ok, sender, &p.path).map(|()| ok));
        match verdict {
            Ok(ok) => {
                if !ok.local && !self.relay_logged {
                    self.relay_logged = true;
                    let why = match (&self.authenticated, &self.relay_right) {
                        (Some(u), _) => RelayRight::Authenticated(u.clone()).to_string(),
                        (None, Some(r)) => r.to_string(),
                        (None, None) => "access To: RELAY".to_string(),
                    };
                    log::info(
                        None,
                        &format!(
                            "relay={}: relaying to <{}> allowed: {why}",
                            self.relay_name(),
                            p.path
                        ),
                    );
                }
                let txn = self.txn.as_mut().expect("transaction");
                txn.discard |= ok.discard;
                txn.rcpts.push(Rcpt {
                    path: p.path.clone(),
                    notify,
                    orcpt,
                    local: ok.local,
                });
                self.reply(250, &format!("2.1.5 {}... Recipient ok", p.shown));
            }
            Err(r) => {
                log::notice(
                    None,
                    &format!(
                        "ruleset=check_rcpt, arg1=<{}>, relay={}, reject={}",
                        p.path,
                        self.relay_name(),
                        r.one_line()
                    ),
                );
                if r.is_permanent() {
                    self.errors += 1;
                }
                self.send(&r);
            }
        }
    }

    fn data(&mut self, arg: &str) -> Option<End> {
        if !arg.is_empty() {
            self.error(501, "5.5.4 Syntax error in parameters");
            return None;
        }
        let Some(txn) = self.txn.take() else {
            self.error(503, "5.0.0 Need MAIL command");
            return None;
        };
        if txn.rcpts.is_empty() {
            self.error(503, "5.0.0 Need RCPT (recipient)");
            return None;
        }
        self.reply(354, "End data with <CR><LF>.<CR><LF>");
        if self.wire.flush(self.deadline()).is_err() {
            return Some(End::Closed);
        }
        let origin = crate::queue::enqueue::SmtpClient {
            helo: self.helo.clone().unwrap_or_default(),
            client: self.relay_name(),
            proto: self.protocol(),
            tls: self.wire.tls_summary(),
            auth: self.authenticated.clone(),
            local_user: match &self.client {
                Client::Program(u) => Some(u.clone()),
                Client::Network { .. } => None,
            },
        };
        let strict = self.is_network();
        let cfg = self.cfg;
        let checked = self.checks_apply();
        let result = {
            let judge = match (&self.gate, &txn.spf) {
                (Some(gate), Some(spf)) if checked => Some(checks::judge(gate, self.policy, spf)),
                _ => None,
            };
            let mut reader = DataReader::new(&mut self.wire, strict, self.settings.timeout);
            accept::queue_message(
                cfg,
                &origin,
                &txn,
                &mut reader,
                judge
                    .as_ref()
                    .map(|j| j as &dyn Fn(&[u8]) -> crate::inbound::Judgement),
            )
        };
        match result {
            Ok(accept::Accepted {
                id: Some(id),
                held,
                notices,
            }) => {
                self.reply(250, &format!("2.0.0 {id} Message accepted for delivery"));
                if self.delivery == DeliveryMode::Interactive {
                    // Delivered before the client hears anything more.
                    let _ = self.wire.flush(self.deadline());
                }
                // A held message (over an outbound limit) waits for the admin.
                let job = Some(id).filter(|_| !held);
                for id in job.iter().chain(&notices) {
                    super::start_delivery(cfg, self.delivery, id);
                }
            }
            Ok(_) => self.reply(250, "2.0.0 Message accepted for delivery"),
            Err(Refused::OverLimit(r, alert)) => {
                self.send(&r);
                if let Some(id) = alert {
                    super::start_delivery(cfg, DeliveryMode::Background, &id);
                }
            }
            Err(Refused::Reply(r)) => {
                log::notice(
                    None,
                    &format!(
                        "from=<{}>, relay={}: message refused: {}",
                        txn.sender,
                        self.relay_name(),
                        r.one_line()
                    ),
                );
                self.send(&r);
            }
            Err(Refused::Broken(f)) => {
                let host = self.host().to_string();
                let (text, end) = match f {
                    Fault::BareLf => (
                        "4.5.0 Bare linefeed (LF) not allowed".to_string(),
                        End::Broken,
                    ),
                    Fault::BareCr => (
                        "4.5.0 Bare carriage return (CR) not allowed".to_string(),
                        End::Broken,
                    ),
                    Fault::Timeout => (
                        format!("4.4.2 {host} Timeout waiting for input"),
                        End::Timeout,
                    ),
                    Fault::Closed | Fault::Io => {
                        log::info(
                            None,
                            &format!(
                                "collect: premature EOM: unexpected close from {}",
                                self.relay_name()
                            ),
                        );
                        return Some(End::Closed);
                    }
                };
                log::notice(
                    None,
                    &format!("relay={}: {text}; nothing queued", self.relay_name()),
                );
                self.reply(421, &text);
                return Some(end);
            }
        }
        None
    }

    fn starttls(&mut self, arg: &str) -> Option<End> {
        if !arg.is_empty() {
            self.error(501, "5.5.4 Syntax error (no parameters allowed)");
            return None;
        }
        if self.wire.is_tls() {
            self.error(503, "5.5.0 TLS already active");
            return None;
        }
        let Some(cfg) = self.tls.clone().filter(|_| self.is_network()) else {
            self.error(454, "4.3.3 TLS not available after start");
            return None;
        };
        self.reply(220, "2.0.0 Ready to start TLS");
        if self.wire.flush(self.deadline()).is_err() {
            return Some(End::Closed);
        }
        if let Err(e) = self.wire.start_tls(cfg, self.deadline()) {
            log::info(
                None,
                &format!(
                    "STARTTLS from {}: handshake failed: {e:?}",
                    self.relay_name()
                ),
            );
            return Some(End::Closed);
        }
        // RFC 3207 §4.2: forget everything learned before.
        self.helo = None;
        self.esmtp = false;
        self.txn = None;
        self.authenticated = None;
        None
    }
}

/// A failed TLS handshake, for the log.
fn describe(e: &WireError) -> String {
    match e {
        WireError::Eof => "the client closed the connection".to_string(),
        WireError::Timeout => "no TLS handshake in time".to_string(),
        WireError::Io(e) => e.to_string(),
        WireError::Tls(t) => t.clone(),
    }
}
