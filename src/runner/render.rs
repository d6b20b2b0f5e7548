//! A queued message as it is handed on: the control file's headers, chosen
//! and edited for the mailer, then the data file.
//!
//! * Conditional headers (`H?P?`, `H?x?`, `H?${macro}?`) are sendmail's
//!   mailer-specific ones; both the local and the SMTP mailer get those for
//!   flags `D`, `F` and `M` (Date, From, Message-Id), neither gets
//!   `Return-Path:` (the local agent writes its own) or `Full-Name:`.
//! * `Bcc:` is removed when the job says so (flag `b`: sendmail 8 keeps it
//!   in the queue and removes it at delivery; mailroom never queues it).
//! * For SMTP, unqualified addresses in address headers (`From: root
//!   <root>`) are qualified with the host name, as sendmail's SMTP mailer
//!   does, so replies work.

use crate::address;
use crate::queue::Envelope;

/// Header fields whose addresses are qualified for SMTP.
const ADDRESS_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Sender",
    "Resent-From",
    "Resent-To",
    "Resent-Cc",
    "Resent-Sender",
    "Errors-To",
];

/// Which mailer the message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum For {
    Local,
    Smtp,
}

/// The whole message (header, empty line, body).
pub fn render(env: &Envelope, body: &[u8], mailer: For, host: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 2048);
    for h in &env.headers {
        if !h.cond.is_empty() && !h.cond.chars().any(|c| matches!(c, 'D' | 'F' | 'M')) {
            continue;
        }
        if h.cond.starts_with('$') {
            continue;
        }
        if env.has_flag('b') && (h.is("Bcc") || h.is("Resent-Bcc")) {
            continue;
        }
        let field: Vec<u8> =
            if h.field.contains(&crate::queue::qf::MACRO_ESCAPE) && !h.cond.is_empty() {
                // A macro reference survives only in conditional headers.
                expand_macros(&h.field, env)
            } else {
                h.field.clone()
            };
        if mailer == For::Smtp && ADDRESS_HEADERS.iter().any(|n| h.is(n)) {
            out.extend_from_slice(&qualify_header(&field, host));
        } else {
            out.extend_from_slice(&field);
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// `\x81g` (the sender) in a conditional header.
fn expand_macros(field: &[u8], env: &Envelope) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len() + 32);
    let mut i = 0;
    while i < field.len() {
        if field[i] == crate::queue::qf::MACRO_ESCAPE && i + 1 < field.len() {
            if field[i + 1] == b'g' {
                out.extend_from_slice(sender_address(&env.sender).as_bytes());
            }
            i += 2;
            continue;
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

/// The envelope sender as a bare address ("" for `<>`).
pub fn sender_address(sender: &str) -> String {
    match address::parse_one(sender) {
        Ok(m) => m.addr,
        Err(_) => sender.trim_matches(['<', '>']).to_string(),
    }
}

/// Rewrite a header field so that unqualified addresses carry `@host`;
/// fields without such addresses are returned unchanged, byte for byte.
pub fn qualify_header(field: &[u8], host: &str) -> Vec<u8> {
    let Some(colon) = field.iter().position(|&b| b == b':') else {
        return field.to_vec();
    };
    let Ok(value) = std::str::from_utf8(&field[colon + 1..]) else {
        return field.to_vec();
    };
    let unfolded: String = value.replace(['\n', '\r'], "");
    let Ok(list) = address::parse_list(&unfolded) else {
        return field.to_vec();
    };
    if !list
        .iter()
        .any(|m| !m.addr.is_empty() && address::split_addr(&m.addr).1.is_none())
    {
        return field.to_vec();
    }
    let parts: Vec<String> = list
        .iter()
        .map(|m| {
            if m.addr.is_empty() || address::split_addr(&m.addr).1.is_some() {
                return m.display.clone();
            }
            let q = format!("{}@{host}", m.addr);
            if let Some(open) = m.display.rfind('<') {
                // "Name <root>" -> "Name <root@host>"
                let close = m.display[open..]
                    .find('>')
                    .map_or(m.display.len(), |c| open + c);
                format!("{}<{q}>{}", &m.display[..open], &m.display[close + 1..])
            } else if m.display.trim() == m.addr {
                q
            } else {
                // "root (Cron Daemon)" -> "root@host (Cron Daemon)"
                m.display.replacen(&m.addr, &q, 1)
            }
        })
        .collect();
    let mut out = field[..colon + 1].to_vec();
    out.push(b' ');
    out.extend_from_slice(parts.join(", ").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::QHeader;

    #[test]
    fn headers_for_each_mailer() {
        let env = Envelope {
            sender: "root".into(),
            flags: "b".into(),
            headers: vec![
                QHeader::new("P", b"Return-Path: <\x81g>"),
                QHeader::new("", b"Received: (from root@localhost)\n\tby h id X"),
                QHeader::new("F", b"From: root <root>"),
                QHeader::new("x", b"Full-Name: root"),
                QHeader::new("", b"To: bob, alice@example.org (Alice)"),
                QHeader::new("", b"Bcc: secret@example.org"),
                QHeader::new("", b"Subject: hi"),
            ],
            ..Default::default()
        };
        let local = String::from_utf8(render(&env, b"body\n", For::Local, "h.example")).unwrap();
        assert_eq!(
            local,
            "Received: (from root@localhost)\n\tby h id X\nFrom: root <root>\nTo: bob, alice@example.org (Alice)\nSubject: hi\n\nbody\n"
        );
        let smtp = String::from_utf8(render(&env, b"body\n", For::Smtp, "h.example")).unwrap();
        assert!(smtp.contains("From: root <root@h.example>\n"), "{smtp}");
        assert!(
            smtp.contains("To: bob@h.example, alice@example.org (Alice)\n"),
            "{smtp}"
        );
    }

    #[test]
    fn qualified_fields_stay_byte_identical() {
        let f = b"To: \"Doe, J\" <j@x.org>,\n\tk@y.org";
        assert_eq!(qualify_header(f, "h"), f.to_vec());
        assert_eq!(
            qualify_header(b"From: root (Cron Daemon)", "h"),
            b"From: root@h (Cron Daemon)".to_vec()
        );
    }
}
