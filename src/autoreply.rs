//! The autoresponder ("vacation"): per-address rules in
//! `/etc/mail/autoreply/ADDRESS` (written by `mailroom autoreply`), the
//! RFC 3834 §2 decision whether a delivered message may be answered, the
//! per-sender memory in `/var/spool/mailroom/autoreply/ADDRESS.db`, and the
//! reply itself.  The queue runner calls these after a successful mailbox
//! delivery; a reply that cannot be sent is logged, never a delivery
//! failure.
//!
//! ## The rule file
//!
//! ```text
//! Subject: We got your message
//! From-Date: 2026-07-01
//! Until-Date: 2026-07-31
//! Interval: 7d
//!
//! Thank you; we answer within two working days.
//! ```
//!
//! ## The memory
//!
//! One line `SENDER UNIX-TIME` per sender answered, rewritten atomically
//! (temporary file + rename) under `flock` on `.ADDRESS.lock`; entries
//! older than the interval are dropped on each rewrite.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;

use crate::config::Config;
use crate::message::Header;

/// The default interval between two replies to one sender: a week.
pub const DEFAULT_INTERVAL: u64 = 7 * 86400;

/// One address's autoreply settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub subject: String,
    /// `YYYY-MM-DD`, inclusive.
    pub from_date: Option<String>,
    /// `YYYY-MM-DD`, inclusive.
    pub until_date: Option<String>,
    /// Seconds.
    pub interval: u64,
    /// The interval as written (`7d`).
    pub interval_text: String,
    pub body: String,
}

/// Is `s` a date `YYYY-MM-DD`?
pub fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && (1..=12).contains(&s[5..7].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&s[8..10].parse::<u32>().unwrap_or(0))
}

impl Rule {
    /// Parse a rule file.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let text = text.replace("\r\n", "\n");
        let (head, body) = match text.split_once("\n\n") {
            Some((h, b)) => (h, b),
            None => (text.trim_end_matches('\n'), ""),
        };
        let mut rule = Rule {
            subject: String::new(),
            from_date: None,
            until_date: None,
            interval: DEFAULT_INTERVAL,
            interval_text: "7d".to_string(),
            body: body.to_string(),
        };
        for (i, l) in head.lines().enumerate() {
            let Some((k, v)) = l.split_once(':') else {
                return Err(format!("line {}: expected NAME: VALUE", i + 1));
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "subject" => rule.subject = v.to_string(),
                "from-date" | "until-date" if !valid_date(v) => {
                    return Err(format!("line {}: {v:?} is not a date YYYY-MM-DD", i + 1));
                }
                "from-date" => rule.from_date = Some(v.to_string()),
                "until-date" => rule.until_date = Some(v.to_string()),
                "interval" => {
                    rule.interval = crate::config::parse_duration(v, 86400)
                        .ok_or_else(|| format!("line {}: {v:?} is not an interval", i + 1))?;
                    rule.interval_text = v.to_string();
                }
                other => return Err(format!("line {}: unknown setting {other:?}", i + 1)),
            }
        }
        if rule.subject.is_empty() {
            return Err("no Subject: line".to_string());
        }
        if let (Some(f), Some(u)) = (&rule.from_date, &rule.until_date)
            && f > u
        {
            return Err(format!(
                "From-Date {f} is after Until-Date {u}: never active"
            ));
        }
        Ok(rule)
    }

    /// The file text.
    pub fn to_text(&self) -> String {
        let mut s = format!("Subject: {}\n", self.subject);
        if let Some(d) = &self.from_date {
            s.push_str(&format!("From-Date: {d}\n"));
        }
        if let Some(d) = &self.until_date {
            s.push_str(&format!("Until-Date: {d}\n"));
        }
        s.push_str(&format!("Interval: {}\n\n", self.interval_text));
        s.push_str(&self.body);
        if !self.body.is_empty() && !self.body.ends_with('\n') {
            s.push('\n');
        }
        s
    }

    /// Is `today` (`YYYY-MM-DD`) inside the date window?
    pub fn active_on(&self, today: &str) -> bool {
        self.from_date.as_deref().is_none_or(|f| today >= f)
            && self.until_date.as_deref().is_none_or(|u| today <= u)
    }
}

/// The directory of rule files.
pub fn rules_dir(cfg: &Config) -> PathBuf {
    cfg.paths.etc_mail("autoreply")
}

/// The directory of per-sender memories (see [`crate::state`]).
pub fn db_dir(cfg: &Config) -> PathBuf {
    crate::state::dir(cfg).join(crate::state::AUTOREPLY)
}

/// The key an address is stored under: lower case, qualified with the
/// host name, no angle brackets; `None` when it cannot be a file name.
pub fn key(address: &str, host: &str) -> Option<String> {
    let a = address
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim_start_matches('\\');
    if a.is_empty() || a.starts_with('.') || a.contains(['/', '\0', ' ', '\t', '\n', '|']) {
        return None;
    }
    Some(crate::address::qualify(a, host).to_ascii_lowercase())
}

/// The rule for `key`, if there is one (a broken file counts as none and
/// is reported in the returned error).
pub fn load(cfg: &Config, key: &str) -> Result<Option<Rule>, String> {
    let path = rules_dir(cfg).join(key);
    match fs::read_to_string(&path) {
        Ok(t) => Rule::parse(&t)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "{}: {}",
            path.display(),
            crate::exit::io_reason(&e)
        )),
    }
}

/// Why a message gets no reply (RFC 3834 §2 and common practice).
pub fn refuse(sender: &str, header: &Header, addresses: &[String]) -> Option<&'static str> {
    let s = sender.trim().trim_start_matches('<').trim_end_matches('>');
    if s.is_empty() {
        return Some("null sender");
    }
    let local = crate::address::split_addr(s).0.to_ascii_lowercase();
    let local = local.trim_matches('"');
    if local == "mailer-daemon" || local == "postmaster" {
        return Some("sender is a mail system");
    }
    if local.ends_with("-request") || local.starts_with("owner-") {
        return Some("sender is a list address");
    }
    if let Some(f) = header.get("Auto-Submitted") {
        let v = f.value().to_ascii_lowercase();
        let word = v.split([';', ' ', '\t', '(']).next().unwrap_or("");
        if word != "no" {
            return Some("Auto-Submitted");
        }
    }
    if header.all("Precedence").any(|f| {
        matches!(
            f.value().to_ascii_lowercase().as_str(),
            "bulk" | "list" | "junk"
        )
    }) {
        return Some("Precedence bulk/list/junk");
    }
    if header.has_prefix("List-") {
        return Some("list message");
    }
    if header.all("X-Auto-Response-Suppress").any(|f| {
        let v = f.value().to_ascii_lowercase();
        v.contains("all") || v.contains("oof") || v.contains("autoreply")
    }) {
        return Some("X-Auto-Response-Suppress");
    }
    if header.get("Content-Type").is_some_and(|f| {
        f.value()
            .to_ascii_lowercase()
            .starts_with("multipart/report")
    }) {
        return Some("delivery report");
    }
    let wanted: Vec<String> = addresses.iter().map(|a| a.to_ascii_lowercase()).collect();
    let named = ["To", "Cc"].iter().any(|h| {
        header.all(h).any(|f| {
            let v = f.value();
            match crate::address::parse_list(&v) {
                Ok(list) => list
                    .iter()
                    .any(|m| wanted.contains(&m.addr.to_ascii_lowercase())),
                Err(_) => {
                    let l = v.to_ascii_lowercase();
                    wanted.iter().any(|w| l.contains(w.as_str()))
                }
            }
        })
    });
    if !named {
        return Some("address not in To or Cc");
    }
    None
}

/// Today as `YYYY-MM-DD` (local time).
pub fn today(now: i64) -> String {
    let tm = crate::date::local(now);
    format!("{:04}-{:02}-{:02}", tm.year, tm.month + 1, tm.day)
}

/// Under the memory's lock: when `sender` got no reply from `key` within
/// `interval`, run `send`; if it returns true, remember the reply.
/// Returns whether the sender was due (`false` = replied recently).
pub fn once_per_interval(
    cfg: &Config,
    key: &str,
    sender: &str,
    interval: u64,
    now: i64,
    send: impl FnOnce() -> bool,
) -> io::Result<bool> {
    let dir = db_dir(cfg);
    fs::create_dir_all(&dir)?;
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(format!(".{key}.lock")))?;
    // SAFETY: flock on a valid descriptor; released when `lock` closes.
    while unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let path = dir.join(format!("{key}.db"));
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let sender = sender.to_ascii_lowercase();
    let mut entries: Vec<(String, i64)> = text
        .lines()
        .filter_map(|l| {
            let (s, t) = l.split_once(' ')?;
            Some((s.to_string(), t.trim().parse().ok()?))
        })
        .filter(|(_, t)| now - *t < interval as i64)
        .collect();
    if entries.iter().any(|(s, _)| *s == sender) {
        return Ok(false);
    }
    if send() {
        entries.push((sender, now));
    }
    let tmp = dir.join(format!(".{key}.db.tmp"));
    {
        let mut f = fs::File::create(&tmp)?;
        for (s, t) in &entries {
            writeln!(f, "{s} {t}")?;
        }
        f.sync_all()?;
    }
    fs::rename(&tmp, &path)?;
    Ok(true)
}

/// A header value in RFC 2047 form when it is not plain ASCII.
fn encode_word(s: &str) -> String {
    if s.is_ascii() {
        s.to_string()
    } else {
        format!("=?UTF-8?B?{}?=", crate::b64::encode(s.as_bytes()))
    }
}

/// The reply message (LF line ends).
pub fn build_reply(
    rule: &Rule,
    from: &str,
    to: &str,
    original: &Header,
    host: &str,
    qid: &str,
    now: i64,
) -> Vec<u8> {
    let mut m = String::new();
    m.push_str(&format!("Date: {}\n", crate::date::rfc5322(now)));
    m.push_str(&format!("From: <{from}>\n"));
    m.push_str(&format!("To: <{to}>\n"));
    m.push_str(&format!("Subject: {}\n", encode_word(&rule.subject)));
    m.push_str(&format!(
        "Message-Id: <{}.{qid}.autoreply@{host}>\n",
        crate::date::message_id_stamp(now)
    ));
    if let Some(id) = original.get("Message-Id").map(|f| f.value())
        && !id.is_empty()
    {
        m.push_str(&format!("In-Reply-To: {id}\n"));
        let refs = original
            .get("References")
            .map(|f| f.value())
            .unwrap_or_default();
        if refs.is_empty() {
            m.push_str(&format!("References: {id}\n"));
        } else {
            m.push_str(&format!("References: {refs}\n\t{id}\n"));
        }
    }
    m.push_str("Auto-Submitted: auto-replied\n");
    m.push_str("X-Auto-Response-Suppress: All\n");
    m.push_str("MIME-Version: 1.0\n");
    m.push_str("Content-Type: text/plain; charset=UTF-8\n");
    m.push_str("Content-Transfer-Encoding: 8bit\n\n");
    let body = rule.body.replace("\r\n", "\n");
    m.push_str(&body);
    if !body.ends_with('\n') {
        m.push('\n');
    }
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(text: &str) -> Header {
        Header::parse(text.as_bytes())
    }

    const ME: &str = "support@test.example";

    fn refused(sender: &str, head: &str) -> Option<&'static str> {
        refuse(sender, &h(head), &[ME.to_string()])
    }

    #[test]
    fn a_normal_message_is_answered() {
        assert_eq!(
            refused("ann@else.example", "To: Support <support@test.example>\n"),
            None
        );
        assert_eq!(
            refused(
                "<ann@else.example>",
                "To: x@y.example\nCc: SUPPORT@Test.Example\nAuto-Submitted: no\n"
            ),
            None
        );
    }

    #[test]
    fn each_exclusion() {
        let to = "To: support@test.example\n";
        assert!(refused("", to).is_some());
        assert!(refused("<>", to).is_some());
        assert!(refused("MAILER-DAEMON@x.example", to).is_some());
        assert!(refused("MAILER-DAEMON", to).is_some());
        assert!(refused("postmaster@x.example", to).is_some());
        assert!(refused("users-request@lists.example", to).is_some());
        assert!(refused("owner-users@lists.example", to).is_some());
        for p in ["bulk", "list", "junk", "BULK"] {
            assert!(refused("a@b.example", &format!("{to}Precedence: {p}\n")).is_some());
        }
        assert!(refused("a@b.example", &format!("{to}Precedence: first-class\n")).is_none());
        for l in [
            "List-Id: <x.lists>",
            "List-Unsubscribe: <mailto:x>",
            "list-post: x",
        ] {
            assert!(refused("a@b.example", &format!("{to}{l}\n")).is_some());
        }
        for a in [
            "auto-replied",
            "auto-generated",
            "auto-notified; owner-email=x",
        ] {
            assert!(refused("a@b.example", &format!("{to}Auto-Submitted: {a}\n")).is_some());
        }
        assert!(
            refused(
                "a@b.example",
                &format!("{to}Content-Type: multipart/report; report-type=delivery-status\n")
            )
            .is_some()
        );
        assert!(
            refused(
                "a@b.example",
                &format!("{to}X-Auto-Response-Suppress: OOF\n")
            )
            .is_some()
        );
        assert_eq!(
            refused(
                "a@b.example",
                "To: other@test.example\nBcc: support@test.example\n"
            ),
            Some("address not in To or Cc")
        );
        assert!(refused("a@b.example", "To: xsupport@test.example\n").is_some());
    }

    #[test]
    fn rule_file_round_trip_and_window() {
        let t = "Subject: Away\nFrom-Date: 2026-07-01\nUntil-Date: 2026-07-31\nInterval: 2d\n\nBack soon.\n";
        let r = Rule::parse(t).unwrap();
        assert_eq!(r.interval, 2 * 86400);
        assert_eq!(r.to_text(), t);
        assert!(!r.active_on("2026-06-30"));
        assert!(r.active_on("2026-07-01"));
        assert!(r.active_on("2026-07-31"));
        assert!(!r.active_on("2026-08-01"));
        assert!(Rule::parse("Subject: x\nFrom-Date: 2026-13-01\n\n").is_err());
        assert!(Rule::parse("Interval: 1d\n\nbody").is_err());
        assert_eq!(
            Rule::parse("Subject: x\n\nb").unwrap().interval,
            DEFAULT_INTERVAL
        );
    }

    #[test]
    fn the_reply_names_the_original() {
        let r = Rule::parse("Subject: Hors du bureau é\n\nMerci.\n").unwrap();
        let orig = h("Message-Id: <abc@x.example>\nReferences: <z@x.example>\n");
        let m = String::from_utf8(build_reply(
            &r,
            ME,
            "ann@x.example",
            &orig,
            "test.example",
            "Q1",
            0,
        ))
        .unwrap();
        assert!(m.contains("Auto-Submitted: auto-replied\n"), "{m}");
        assert!(m.contains("In-Reply-To: <abc@x.example>\n"), "{m}");
        assert!(
            m.contains("References: <z@x.example>\n\t<abc@x.example>\n"),
            "{m}"
        );
        assert!(m.contains("Subject: =?UTF-8?B?"), "{m}");
        assert!(m.contains("charset=UTF-8"), "{m}");
        assert!(m.ends_with("\n\nMerci.\n"), "{m}");
    }
}
