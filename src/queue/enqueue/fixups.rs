//! The header fix-ups and the envelope of a new job, by origin (the
//! table in [`super`]).

use super::{Origin, Program, Rcpt, Request, Sender, SmtpClient};
use crate::VERSION;
use crate::address;
use crate::date;
use crate::log;
use crate::message::Header;
use crate::queue::{Envelope, Notify, QHeader, QueueId, Recipient, Ret};

/// The generated header fields, and the message id to log.
pub(super) struct Fixed {
    pub generated: Vec<QHeader>,
    /// `msgid=` of the log line (none for mailroom's own messages).
    pub msgid: Option<String>,
}

/// The header fields the origin adds, in sendmail's order.
pub(super) fn fix_header(
    req: &Request<'_>,
    header: &Header,
    from_line: Option<&str>,
    qid: &QueueId,
    host: &str,
    now: i64,
) -> Fixed {
    let date_now = date::rfc5322(now);
    let mut generated = vec![QHeader::new("P", b"Return-Path: <\x81g>")];
    if let Some(ar) = &req.auth_results {
        generated.push(QHeader::new("", ar.as_bytes()));
    }
    let message_id = || format!("<{}.{qid}@{host}>", date::message_id_stamp(now));
    let msgid = match req.origin {
        Origin::Mailroom { .. } => {
            generated.push(QHeader::new(
                "",
                format!("Received: from localhost (localhost)\n\tby {host} (mailroom/{VERSION}) id {qid};\n\t{date_now}").as_bytes(),
            ));
            None
        }
        Origin::Smtp(c) => {
            let from_part = match &c.local_user {
                Some(user) => format!("from {} ({user}@localhost)", c.helo),
                None if c.helo.is_empty() => format!("from {} ({})", c.client, c.client),
                None => format!("from {} ({})", c.helo, c.client),
            };
            let mut received = format!("Received: {from_part}");
            if let Some(a) = &c.auth {
                received.push_str(&format!("\n\t(authenticated as {a})"));
            }
            received.push_str(&format!(
                "\n\tby {host} (mailroom/{VERSION}) with {} id {qid}",
                c.proto
            ));
            if let Some(t) = &c.tls {
                received.push_str(&format!("\n\t({t})"));
            }
            match req.recipients.as_slice() {
                [only] => received.push_str(&format!("\n\tfor <{}>; {date_now}", only.addr)),
                _ => received.push_str(&format!(";\n\t{date_now}")),
            }
            generated.push(QHeader::new("", received.as_bytes()));
            if !header.has("Date") {
                generated.push(QHeader::new("D", format!("Date: {date_now}").as_bytes()));
            }
            if !header.has("From") && !req.sender.addr.is_empty() {
                generated.push(QHeader::new(
                    "F",
                    format!("From: {}", req.sender.addr).as_bytes(),
                ));
            }
            Some(match header.get("Message-Id") {
                Some(f) => f.value(),
                None => {
                    let id = message_id();
                    generated.push(QHeader::new("M", format!("Message-Id: {id}").as_bytes()));
                    id
                }
            })
        }
        Origin::Program(p) => Some(program_fix_ups(
            p,
            &req.sender,
            header,
            from_line,
            &mut generated,
            qid,
            host,
            now,
        )),
    };
    Fixed { generated, msgid }
}

/// A program's fix-ups (see the table at the top); returns the message
/// id to log.
#[allow(clippy::too_many_arguments)]
fn program_fix_ups(
    p: &Program,
    sender: &Sender,
    header: &Header,
    from_line: Option<&str>,
    generated: &mut Vec<QHeader>,
    qid: &QueueId,
    host: &str,
    now: i64,
) -> String {
    let login = &p.login;
    let date_now = date::rfc5322(now);
    let resent = header.has_prefix("Resent-");
    // sendmail adds "for RCPT" when exactly one recipient was named on the
    // command line.
    let received = match &p.only_argv_recipient {
        Some(only) => format!(
            "Received: (from {login}@localhost)\n\tby {host} (mailroom/{VERSION}) id {qid}\n\tfor {only}; {date_now}"
        ),
        None => format!(
            "Received: (from {login}@localhost)\n\tby {host} (mailroom/{VERSION}) id {qid};\n\t{date_now}"
        ),
    };
    generated.push(QHeader::new("", received.as_bytes()));
    let msg_date = from_line
        .and_then(|l| {
            // "From sender DATE"
            let rest = l.strip_prefix("From ")?;
            let date_part = rest.split_once(' ').map(|(_, d)| d)?;
            date::parse_ctime(date_part)
        })
        .map(date::rfc5322)
        .unwrap_or_else(|| date_now.clone());
    if resent && !header.has("Resent-Date") {
        generated.push(QHeader::new(
            "D",
            format!("Resent-Date: {date_now}").as_bytes(),
        ));
    }
    if !header.has("Date") {
        generated.push(QHeader::new("D", format!("Date: {msg_date}").as_bytes()));
    }
    let full_name = &p.full_name;
    let from_addr = if sender.addr.is_empty() {
        "MAILER-DAEMON".to_string()
    } else {
        sender.addr.clone()
    };
    let from_value = || {
        if full_name.is_empty() {
            from_addr.clone()
        } else {
            format!("{} <{from_addr}>", address::quote_display_name(full_name))
        }
    };
    if resent && !header.has("Resent-From") {
        generated.push(QHeader::new(
            "F",
            format!("Resent-From: {}", from_value()).as_bytes(),
        ));
    }
    if !header.has("From") {
        generated.push(QHeader::new(
            "F",
            format!("From: {}", from_value()).as_bytes(),
        ));
    }
    if !full_name.is_empty() {
        generated.push(QHeader::new(
            "x",
            format!("Full-Name: {}", address::quote_display_name(full_name)).as_bytes(),
        ));
    }
    let message_id = format!("<{}.{qid}@{host}>", date::message_id_stamp(now));
    if resent && !header.has("Resent-Message-Id") {
        generated.push(QHeader::new(
            "M",
            format!("Resent-Message-Id: {message_id}").as_bytes(),
        ));
    }
    let msgid_logged = match header.get("Message-Id") {
        Some(f) => f.value(),
        None => {
            generated.push(QHeader::new(
                "M",
                format!("Message-Id: {message_id}").as_bytes(),
            ));
            message_id
        }
    };
    if let Some((_, flag)) = &p.set_sender
        && !p.trusted
        && !is_own_address(&sender.addr, login, host)
    {
        let text = format!(
            "{host}: {login} set sender to {} using -{flag}",
            sender.recorded
        );
        generated.push(QHeader::new(
            "",
            format!("X-Authentication-Warning: {text}").as_bytes(),
        ));
        log::notice(
            Some(qid.as_str()),
            &format!("Authentication-Warning: {text}"),
        );
    }
    msgid_logged
}

/// Does `addr` name the caller themselves (`dave`, `dave@HOST`,
/// `dave@localhost`)?
fn is_own_address(addr: &str, login: &str, host: &str) -> bool {
    match address::split_addr(addr) {
        (l, None) => l == login,
        (l, Some(d)) => {
            l == login && (d.eq_ignore_ascii_case(host) || d.eq_ignore_ascii_case("localhost"))
        }
    }
}

/// The envelope of a new job (headers are added by the caller).
pub(super) fn envelope(
    req: &Request<'_>,
    size: u64,
    has_8bit: bool,
    class: i64,
    now: i64,
    host: &str,
) -> Envelope {
    let mut env = Envelope {
        created: now,
        priority: crate::queue::initial_priority(size, class, req.recipients.len()),
        sender: req.sender.recorded.clone(),
        envid: req.envid.clone(),
        ..Default::default()
    };
    env.set_flag('8', has_8bit);
    let rflags = |r: &Rcpt| match req.origin {
        // mailroom's own messages: failures and delays, never success.
        Origin::Mailroom { .. } => "PFD".to_string(),
        _ => format!("P{}", Notify::rcpt_flags(r.notify)),
    };
    match req.origin {
        Origin::Program(p) => {
            env.body_type = match req.body_8bit {
                Some(true) if has_8bit => Some("8BITMIME".to_string()),
                Some(_) => Some("7BIT".to_string()),
                None => None,
            };
            env.set_flag('b', p.extract);
            env.set_flag('d', req.ret.is_some());
            env.set_flag('n', req.ret == Some(Ret::Headers));
            env.set_flag('s', true);
            env.macros.push((
                "_".to_string(),
                format!("{}@localhost", p.login).into_bytes(),
            ));
            env.macros
                .push(("daemon_flags".to_string(), b"c u".to_vec()));
            if p.trusted && !req.sender.addr.is_empty() {
                env.auth = Some(address::qualify(&req.sender.addr, host));
            }
        }
        Origin::Smtp(c) => {
            env.body_type = match req.body_8bit {
                Some(true) => Some("8BITMIME".to_string()),
                Some(false) => Some("7BIT".to_string()),
                None => None,
            };
            env.set_flag('d', req.ret.is_some());
            env.set_flag('n', req.ret == Some(Ret::Headers));
            if req.sender.addr.is_empty() {
                env.set_flag('r', true);
            }
            env.macros
                .push(("_".to_string(), smtp_relay(c).into_bytes()));
            env.macros
                .push(("r".to_string(), c.proto.clone().into_bytes()));
            env.macros
                .push(("s".to_string(), c.helo.clone().into_bytes()));
            if let Some(a) = &c.auth {
                env.auth = Some(format!("<{a}>"));
            }
        }
        Origin::Mailroom { relay } => {
            env.set_flag('s', true);
            if req.sender.addr.is_empty() {
                env.set_flag('r', true);
            }
            env.macros
                .push(("_".to_string(), relay.as_bytes().to_vec()));
        }
    }
    env.recipients = req
        .recipients
        .iter()
        .map(|r| Recipient {
            flags: rflags(r),
            addr: r.recorded.clone(),
            orcpt: r.orcpt.clone(),
            final_rcpt: Some(format!("RFC822; {}", address::qualify(&r.addr, host))),
            ..Default::default()
        })
        .collect();
    env
}

/// `relay=` of an SMTP client: `USER@localhost`, or `HELO [IP]`.
pub(super) fn smtp_relay(c: &SmtpClient) -> String {
    match &c.local_user {
        Some(u) => format!("{u}@localhost"),
        None => format!("{} {}", c.helo, c.client),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_address() {
        assert!(is_own_address("dave", "dave", "h.example"));
        assert!(is_own_address("dave@h.example", "dave", "h.example"));
        assert!(!is_own_address("forged@remote.test", "dave", "h.example"));
    }
}
