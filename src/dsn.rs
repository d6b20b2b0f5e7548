//! Delivery status notifications (bounces and delay warnings): RFC 3464
//! `multipart/report` messages in sendmail 8's layout, from
//! `MAILER-DAEMON` with the null envelope sender.
//!
//! ```text
//! From: Mail Delivery Subsystem <MAILER-DAEMON@HOST>
//! To: SENDER
//! Subject: Returned mail: see transcript for details
//! Auto-Submitted: auto-generated (failure)
//! Content-Type: multipart/report; report-type=delivery-status; boundary="QID.TIME/HOST"
//!
//! part 1: text/plain — which addresses failed and the transcript
//!         (the remote server's reply or the local reason)
//! part 2: message/delivery-status — Reporting-MTA, Arrival-Date, and per
//!         recipient Final-Recipient, Action, Status, Remote-MTA,
//!         Diagnostic-Code, Last-Attempt-Date (Will-Retry-Until for a delay)
//! part 3: message/rfc822 — the original message (text/rfc822-headers with
//!         RET=HDRS)
//! ```
//!
//! Rules kept by the callers: never a DSN for a message whose sender is
//! `<>`; one DSN per message covering all its failed recipients.

use std::io::BufRead;

/// One recipient reported on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The recipient as the sender addressed it (`Final-Recipient` uses the
    /// qualified form).
    pub recipient: String,
    /// What it expanded to, when different (`X-Actual-Recipient`).
    pub actual: Option<String>,
    /// DSN ORCPT, when the sender gave one.
    pub original: Option<String>,
    /// Enhanced status code.
    pub status: String,
    /// The remote server's reply (`550 5.1.1 <x>... User unknown`), or the
    /// local reason.
    pub diagnostic: String,
    /// True when `diagnostic` is a remote SMTP reply.
    pub remote_reply: bool,
    /// The remote host, when there was one.
    pub remote_mta: Option<String>,
    pub last_attempt: i64,
}

/// What kind of notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Permanent failure (Action: failed).
    Failure,
    /// Still trying (Action: delayed): the delay warning.
    Delay { warn_after: i64, retry_until: i64 },
    /// Delivered (NOTIFY=SUCCESS): the return receipt.
    Success,
}

/// Everything a notification is built from.
pub struct Report<'a> {
    pub kind: Kind,
    pub qid: &'a str,
    pub host: &'a str,
    /// The envelope sender being notified.
    pub to: &'a str,
    pub arrival: i64,
    /// Who submitted the original (`root@localhost`, `client [192.0.2.1]`).
    pub received_from: &'a str,
    pub envid: Option<&'a str>,
    /// RET=HDRS: return only the header.
    pub headers_only: bool,
    /// A notification about a bounce that could not be delivered, sent to
    /// the postmaster instead (sendmail's "Postmaster notify").
    pub to_postmaster: bool,
    pub entries: &'a [Entry],
}

/// sendmail's wording for "N hours" in delay warnings.
fn age_words(secs: i64) -> String {
    let h = secs / 3600;
    if secs % 3600 == 0 && h > 0 {
        if h % 24 == 0 {
            let d = h / 24;
            return format!("{d} day{}", if d == 1 { "" } else { "s" });
        }
        return format!("{h} hour{}", if h == 1 { "" } else { "s" });
    }
    let m = (secs / 60).max(1);
    format!("{m} minute{}", if m == 1 { "" } else { "s" })
}

/// Build the whole notification message (header and body, LF line ends),
/// with `original` (the returned message) read from `original`.
pub fn build(r: &Report<'_>, original: &mut dyn BufRead) -> std::io::Result<Vec<u8>> {
    let now = crate::date::now();
    let date = crate::date::rfc5322(now);
    let boundary = format!("{}.{}/{}", r.qid, now, r.host);
    let (subject, auto) = match r.kind {
        Kind::Failure if r.to_postmaster => (
            "Postmaster notify: see transcript for details".to_string(),
            "failure",
        ),
        Kind::Failure => (
            "Returned mail: see transcript for details".to_string(),
            "failure",
        ),
        Kind::Delay { warn_after, .. } => (
            format!(
                "Warning: could not send message for past {}",
                age_words(warn_after)
            ),
            "delay",
        ),
        Kind::Success => ("Return receipt".to_string(), "success"),
    };
    let mut m = String::new();
    m.push_str(&format!("Date: {date}\n"));
    m.push_str(&format!(
        "From: Mail Delivery Subsystem <MAILER-DAEMON@{}>\n",
        r.host
    ));
    m.push_str(&format!(
        "Message-Id: <{}.{}.dsn@{}>\n",
        crate::date::message_id_stamp(now),
        r.qid,
        r.host
    ));
    m.push_str(&format!("To: {}\n", r.to));
    m.push_str("MIME-Version: 1.0\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{boundary}\"\n"
    ));
    m.push_str(&format!("Subject: {subject}\n"));
    m.push_str(&format!("Auto-Submitted: auto-generated ({auto})\n"));
    m.push('\n');
    m.push_str("This is a MIME-encapsulated message\n\n");

    // Part 1: for people.
    m.push_str(&format!("--{boundary}\n\n"));
    m.push_str(&format!(
        "The original message was received at {}\nfrom {}\n\n",
        crate::date::rfc5322(r.arrival),
        r.received_from
    ));
    match r.kind {
        Kind::Failure => {
            m.push_str("   ----- The following addresses had permanent fatal errors -----\n")
        }
        Kind::Delay {
            warn_after,
            retry_until,
        } => {
            m.push_str("   **********************************************\n");
            m.push_str("   **      THIS IS A WARNING MESSAGE ONLY      **\n");
            m.push_str("   **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\n");
            m.push_str("   **********************************************\n\n");
            m.push_str("   ----- The following addresses had transient non-fatal errors -----\n");
            let _ = (warn_after, retry_until);
        }
        Kind::Success => m.push_str(
            "   ----- The following addresses had successful delivery notifications -----\n",
        ),
    }
    for e in r.entries {
        m.push_str(&format!("{}\n", e.recipient));
        if let Some(a) = &e.actual
            && a != &e.recipient
        {
            m.push_str(&format!("    (expanded from: {})\n", e.recipient));
        }
    }
    m.push_str("\n   ----- Transcript of session follows -----\n");
    for e in r.entries {
        let who = e.actual.as_deref().unwrap_or(&e.recipient);
        if e.remote_reply {
            m.push_str(&format!(
                "... while talking to {}:\n",
                e.remote_mta.as_deref().unwrap_or("the remote host")
            ));
            m.push_str(&format!("<<< {}\n", e.diagnostic));
        } else {
            m.push_str(&format!("{who}... {}\n", e.diagnostic));
        }
    }
    if let Kind::Delay { retry_until, .. } = r.kind {
        m.push_str(&format!(
            "Warning: message still undelivered; will keep trying until {}\n",
            crate::date::rfc5322(retry_until)
        ));
    }
    m.push('\n');

    // Part 2: for programs.
    m.push_str(&format!(
        "--{boundary}\nContent-Type: message/delivery-status\n\n"
    ));
    m.push_str(&format!("Reporting-MTA: dns; {}\n", r.host));
    if let Some(id) = r.envid {
        m.push_str(&format!("Original-Envelope-Id: {id}\n"));
    }
    m.push_str(&format!(
        "Arrival-Date: {}\n",
        crate::date::rfc5322(r.arrival)
    ));
    for e in r.entries {
        m.push('\n');
        if let Some(o) = &e.original {
            m.push_str(&format!("Original-Recipient: {o}\n"));
        }
        m.push_str(&format!("Final-Recipient: RFC822; {}\n", e.recipient));
        if let Some(a) = &e.actual {
            m.push_str(&format!("X-Actual-Recipient: rfc822; {a}\n"));
        }
        match r.kind {
            Kind::Failure => m.push_str("Action: failed\n"),
            Kind::Delay { .. } => m.push_str("Action: delayed\n"),
            Kind::Success if e.remote_reply => m.push_str("Action: relayed\n"),
            Kind::Success => m.push_str("Action: delivered\n"),
        }
        m.push_str(&format!("Status: {}\n", e.status));
        if let Some(h) = &e.remote_mta {
            m.push_str(&format!("Remote-MTA: DNS; {h}\n"));
        }
        if e.remote_reply {
            m.push_str(&format!("Diagnostic-Code: SMTP; {}\n", e.diagnostic));
        } else {
            m.push_str(&format!("Diagnostic-Code: X-Local; {}\n", e.diagnostic));
        }
        m.push_str(&format!(
            "Last-Attempt-Date: {}\n",
            crate::date::rfc5322(e.last_attempt)
        ));
        if let Kind::Delay { retry_until, .. } = r.kind {
            m.push_str(&format!(
                "Will-Retry-Until: {}\n",
                crate::date::rfc5322(retry_until)
            ));
        }
    }
    m.push('\n');

    // Part 3: the message.
    let mut out = m.into_bytes();
    if r.headers_only {
        out.extend_from_slice(
            format!("--{boundary}\nContent-Type: text/rfc822-headers\n\n").as_bytes(),
        );
        let mut line = Vec::new();
        loop {
            line.clear();
            if original.read_until(b'\n', &mut line)? == 0 || line == b"\n" {
                break;
            }
            out.extend_from_slice(&line);
        }
    } else {
        out.extend_from_slice(format!("--{boundary}\nContent-Type: message/rfc822\n\n").as_bytes());
        let mut rest = Vec::new();
        original.read_to_end(&mut rest)?;
        out.extend_from_slice(&rest);
        if !rest.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    out.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_report_has_three_parts() {
        let entries = [Entry {
            recipient: "nosuch@example.com".into(),
            actual: None,
            original: None,
            status: "5.1.1".into(),
            diagnostic: "User unknown".into(),
            remote_reply: false,
            remote_mta: None,
            last_attempt: 1795238453,
        }];
        let r = Report {
            kind: Kind::Failure,
            qid: "6AL5Krcl005170",
            host: "mx.example.com",
            to: "alice@example.org",
            arrival: 1795238453,
            received_from: "alice@localhost",
            envid: Some("ENV1"),
            headers_only: false,
            to_postmaster: false,
            entries: &entries,
        };
        let mut orig: &[u8] = b"Subject: hello\n\nbody\n";
        let msg = String::from_utf8(build(&r, &mut orig).unwrap()).unwrap();
        assert!(msg.contains("Subject: Returned mail: see transcript for details\n"));
        assert!(msg.contains(
            "Final-Recipient: RFC822; nosuch@example.com\nAction: failed\nStatus: 5.1.1\n"
        ));
        assert!(msg.contains("Original-Envelope-Id: ENV1\n"));
        assert!(msg.contains("Content-Type: message/rfc822\n\nSubject: hello\n\nbody\n"));
        assert_eq!(msg.matches("--6AL5Krcl005170.").count(), 4);
        assert!(msg.trim_end().ends_with("--"));
    }

    #[test]
    fn ages() {
        assert_eq!(age_words(4 * 3600), "4 hours");
        assert_eq!(age_words(86400), "1 day");
        assert_eq!(age_words(90), "1 minute");
    }
}
