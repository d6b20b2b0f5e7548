//! The panel's audit trail: one mail-log line ([`crate::log`]) per
//! change asked for, and per login and logout — who (the account), from
//! where (the client's address as the front end saw it), what operation
//! on which object, and how it ended.  Never a password: a login line
//! names the account (or `unknown user`), a change line the operation and
//! its object only.
//!
//! ```text
//! panel-helper[4242]: login: info-shop from 192.0.2.7 (panel)
//! panel-helper[4243]: change by info-shop from 192.0.2.7: forward.set info@shop.example: done
//! panel-helper[4244]: change by postmaster@b.example from 192.0.2.9: mailbox.remove info@shop.example: refused (missing)
//! panel-helper[4245]: logout: info-shop from 192.0.2.7 (panel)
//! ```

use super::session::Session;
use crate::panel::protocol::Answer;

/// A client address fit for a log line: the characters of an IPv4 or
/// IPv6 address (and a port), at most 64; `unknown` when none is left.
pub fn client(raw: &str) -> String {
    let c: String = raw
        .chars()
        .filter(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']' | '%'))
        .take(64)
        .collect();
    if c.is_empty() { "unknown".into() } else { c }
}

/// An operation's name as a request gave it, fit for a message.
pub fn client_op(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(40)
        .collect()
}

/// A value fit for a log line: no control characters, at most 200.
fn shown(v: &str) -> String {
    let v: String = v
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if v.trim().is_empty() { "-".into() } else { v }
}

/// How a change ended, in a word or two.
fn outcome(a: &Answer) -> String {
    match a {
        Answer::Done { .. } | Answer::Session { .. } => "done".into(),
        Answer::Missing => "refused (missing)".into(),
        Answer::NoSession => "refused (no CSRF token of the session)".into(),
        Answer::Stale { .. } => "refused (stale: changed since shown)".into(),
        Answer::Failed { message } => format!("failed: {}", shown(message)),
        Answer::Refused => "refused".into(),
        Answer::Data(_) => "read".into(),
    }
}

/// The line of a change asked for by session `s`.
pub fn change(s: &Session, from: &str, op: &str, object: &str, answer: &Answer) {
    let line = format!(
        "change by {} from {from}: {} {}: {}",
        shown(&s.login),
        shown(op),
        shown(object),
        outcome(answer)
    );
    crate::log::notice(None, &line);
}

/// A successful login.
pub fn login(login: &str, from: &str) {
    crate::log::info(
        None,
        &format!("login: {} from {from} (panel)", shown(login)),
    );
}

/// A logout.
pub fn logout(s: &Session, from: &str) {
    crate::log::info(
        None,
        &format!("logout: {} from {from} (panel)", shown(&s.login)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_address_cannot_forge_a_line() {
        assert_eq!(client("192.0.2.7"), "192.0.2.7");
        assert_eq!(client("[2001:db8::1]:443"), "[2001:db8::1]:443");
        let forged = client("1.2.3.4\nlogin: root from x");
        assert!(
            !forged.contains(['\n', ' ']) && !forged.contains("root"),
            "{forged}"
        );
        assert_eq!(client(""), "unknown");
        assert_eq!(shown("a\nb"), "a b");
    }
}
