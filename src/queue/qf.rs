//! The control file (`qf`): sendmail 8's queue file format, version 8.
//!
//! One record per line, the first character naming the record; a line that
//! starts with a space or tab continues the previous `H` record.  Written in
//! this order (sendmail's `queueup()`), ending with a line holding `.`:
//!
//! | record | meaning |
//! |--------|---------|
//! | `V8` | format version; first line |
//! | `T<secs>` | creation time |
//! | `K<secs>` | last delivery attempt (0 = never) |
//! | `N<n>` | delivery attempts so far |
//! | `P<n>` | priority: size − class×1800 + recipients×30000 + attempts×90000 |
//! | `d<dir>` | data file in another directory (read only) |
//! | `I<maj>/<min>/<ino>` | device and inode of the data file |
//! | `B<type>` | body type: `7BIT` or `8BITMIME` |
//! | `q<text>` | quarantine reason |
//! | `M<text>` | envelope status message (shown by `mailq`) |
//! | `F<flags>` | `w` delay warning sent, `r` is a bounce, `8` has 8-bit data, `b` delete `Bcc:`, `d` RET= given, `n` RET=HDRS, `s` split, `e` SMTPUTF8 |
//! | `$<m><v>`, `${name}<v>` | persistent macros (`$_` who submitted, `$r` protocol, `$s` HELO name) |
//! | `S<addr>` | envelope sender (`<>` for a bounce) |
//! | `Z<envid>` | DSN ENVID |
//! | `A<addr>` | AUTH= parameter |
//! | `!<c> <secs>` | DELIVERBY |
//! | per pending recipient: `M<text>` (its status), `C<user:uid:gid>:<alias>` (controlling user, until the next `C`), `Q<orcpt>`, `r<final-rcpt>`, `R<flags>:<addr>` | flags: `P` primary, `N` NOTIFY given, `S`/`F`/`D` notify on success/failure/delay, `B` internal Bcc, `A` from an alias |
//! | `H?<cond>?<field>` | one header field, raw; `<cond>` lists mailer flags that must be set for it to be written (e.g. `P` for `Return-Path:`), where `\x81g` stands for the envelope sender |
//! | `.` | end of file: a control file without it is corrupt |
//!
//! Values never contain a newline (they are replaced by spaces when
//! written), except header fields, whose continuation lines begin with
//! white space.  Bytes are kept as they are; nothing here is UTF-8 only.

use std::fmt;

/// sendmail's internal macro escape, `\201`.
pub const MACRO_ESCAPE: u8 = 0x81;

/// A header field stored in a control file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QHeader {
    /// The condition between the `?`s: mailer flags (`P`, `D`, `F`, `M`,
    /// `x`) or a `$macro`.  Empty = always written.
    pub cond: String,
    /// The field bytes, from the name to the end of the last continuation
    /// line, without the final newline.
    pub field: Vec<u8>,
}

impl QHeader {
    pub fn new(cond: &str, field: &[u8]) -> QHeader {
        let mut f = field.to_vec();
        while f.last() == Some(&b'\n') {
            f.pop();
        }
        QHeader {
            cond: cond.to_string(),
            field: f,
        }
    }

    /// The field name.
    pub fn name(&self) -> &str {
        let end = self
            .field
            .iter()
            .position(|&b| b == b':' || b == b' ' || b == b'\t')
            .unwrap_or(self.field.len());
        std::str::from_utf8(&self.field[..end]).unwrap_or("")
    }

    pub fn is(&self, name: &str) -> bool {
        self.name().eq_ignore_ascii_case(name)
    }

    /// The value after the colon, unfolded and trimmed (lossy UTF-8).
    pub fn value(&self) -> String {
        let colon = self
            .field
            .iter()
            .position(|&b| b == b':')
            .map_or(self.field.len(), |i| i + 1);
        let v: Vec<u8> = self.field[colon..]
            .iter()
            .copied()
            .filter(|&b| b != b'\n')
            .collect();
        String::from_utf8_lossy(&v).trim().to_string()
    }
}

/// One pending recipient.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recipient {
    /// `R` flags, e.g. `PFD`.
    pub flags: String,
    /// The address as recorded (sendmail keeps the printable form, e.g.
    /// `Frank Q <frank@remote.test>`).
    pub addr: String,
    /// Last status for this recipient (`M` before its `R`).
    pub status: Option<String>,
    /// Controlling user and alias (`C` record in force), e.g. `:bob` or
    /// `eve:1002:100:bob`.
    pub ctl: Option<String>,
    /// DSN ORCPT (`Q`).
    pub orcpt: Option<String>,
    /// DSN final recipient (`r`), e.g. `RFC822; dave@example.com`.
    pub final_rcpt: Option<String>,
}

impl Recipient {
    pub fn has_flag(&self, c: char) -> bool {
        self.flags.contains(c)
    }
}

/// When to send delivery status notifications (`-N`, SMTP `NOTIFY=`):
/// recorded as flags of the recipient's `R` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notify {
    pub never: bool,
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    /// Parse `never` or a comma list of `success`, `failure`, `delay`.
    pub fn parse(s: &str) -> Option<Notify> {
        let mut n = Notify::default();
        for w in s.split(',') {
            match w.trim().to_ascii_lowercase().as_str() {
                "never" => n.never = true,
                "success" => n.success = true,
                "failure" => n.failure = true,
                "delay" => n.delay = true,
                _ => return None,
            }
        }
        if n.never && (n.success || n.failure || n.delay) {
            return None;
        }
        Some(n)
    }

    /// The `R` record flags this adds (`N` plus `S`/`F`/`D`); sendmail's
    /// default without `-N` is failure and delay.
    pub fn rcpt_flags(notify: Option<Notify>) -> String {
        match notify {
            None => "FD".to_string(),
            Some(n) => {
                let mut s = String::from("N");
                if n.success {
                    s.push('S');
                }
                if n.failure {
                    s.push('F');
                }
                if n.delay {
                    s.push('D');
                }
                s
            }
        }
    }
}

/// What a bounce returns (`-R`, SMTP `RET=`): recorded as the
/// envelope flags `d` (given) and `n` (headers only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Headers,
}

/// Everything a control file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub version: u32,
    pub created: i64,
    pub last_attempt: i64,
    pub attempts: u32,
    pub priority: i64,
    pub data_dir: Option<String>,
    pub df_inode: Option<String>,
    pub body_type: Option<String>,
    pub quarantine: Option<String>,
    pub message: Option<String>,
    pub flags: String,
    /// Persistent macros as (name, value); a one-letter name is written
    /// `$x`, a longer one `${name}`.
    pub macros: Vec<(String, Vec<u8>)>,
    pub sender: String,
    pub envid: Option<String>,
    pub auth: Option<String>,
    pub deliver_by: Option<String>,
    pub recipients: Vec<Recipient>,
    pub headers: Vec<QHeader>,
}

impl Default for Envelope {
    fn default() -> Self {
        Envelope {
            version: 8,
            created: 0,
            last_attempt: 0,
            attempts: 0,
            priority: 0,
            data_dir: None,
            df_inode: None,
            body_type: None,
            quarantine: None,
            message: None,
            flags: String::new(),
            macros: Vec::new(),
            sender: String::new(),
            envid: None,
            auth: None,
            deliver_by: None,
            recipients: Vec::new(),
            headers: Vec::new(),
        }
    }
}

/// Why a control file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QfError {
    /// The file does not end with the `.` record (a torn write).
    Truncated,
    /// The first record is not `V<n>` or the version is not understood.
    BadVersion(String),
    /// A malformed record, with its 1-based line number.
    BadLine(usize, String),
}

impl fmt::Display for QfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QfError::Truncated => f.write_str("control file is incomplete (no final '.')"),
            QfError::BadVersion(v) => write!(f, "unsupported control file version {v:?}"),
            QfError::BadLine(n, l) => write!(f, "bad control file line {n}: {l:?}"),
        }
    }
}

impl std::error::Error for QfError {}

impl Envelope {
    pub fn has_flag(&self, c: char) -> bool {
        self.flags.contains(c)
    }

    pub fn set_flag(&mut self, c: char, on: bool) {
        if on && !self.has_flag(c) {
            self.flags.push(c);
            // keep sendmail's order of flag letters
            let order = "wr8bdnse";
            let mut v: Vec<char> = self.flags.chars().collect();
            v.sort_by_key(|c| order.find(*c).unwrap_or(order.len()));
            self.flags = v.into_iter().collect();
        } else if !on {
            self.flags.retain(|x| x != c);
        }
    }

    /// The value of macro `name` (`_`, `r`, `s`, `daemon_flags`, ...).
    pub fn macro_value(&self, name: &str) -> Option<&[u8]> {
        self.macros
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Serialise in sendmail's record order.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            512 + self
                .headers
                .iter()
                .map(|h| h.field.len() + 8)
                .sum::<usize>(),
        );
        let line = |out: &mut Vec<u8>, tag: &str, v: &[u8]| {
            out.extend_from_slice(tag.as_bytes());
            out.extend(
                v.iter()
                    .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
            );
            out.push(b'\n');
        };
        line(&mut out, "V", self.version.to_string().as_bytes());
        line(&mut out, "T", self.created.to_string().as_bytes());
        line(&mut out, "K", self.last_attempt.to_string().as_bytes());
        line(&mut out, "N", self.attempts.to_string().as_bytes());
        line(&mut out, "P", self.priority.to_string().as_bytes());
        if let Some(d) = &self.data_dir {
            line(&mut out, "d", d.as_bytes());
        }
        if let Some(i) = &self.df_inode {
            line(&mut out, "I", i.as_bytes());
        }
        if let Some(b) = &self.body_type {
            line(&mut out, "B", b.as_bytes());
        }
        if let Some(q) = &self.quarantine {
            line(&mut out, "q", q.as_bytes());
        }
        if let Some(m) = &self.message {
            line(&mut out, "M", m.as_bytes());
        }
        if !self.flags.is_empty() {
            line(&mut out, "F", self.flags.as_bytes());
        }
        for (name, value) in &self.macros {
            // `${` starts a long name: a one-letter macro called `{`
            // must be written long, or it would not read back.
            let tag = if name.len() == 1 && name != "{" {
                format!("${name}")
            } else {
                format!("${{{name}}}")
            };
            line(&mut out, &tag, value);
        }
        line(&mut out, "S", self.sender.as_bytes());
        if let Some(z) = &self.envid {
            line(&mut out, "Z", z.as_bytes());
        }
        if let Some(a) = &self.auth {
            line(&mut out, "A", a.as_bytes());
        }
        if let Some(b) = &self.deliver_by {
            line(&mut out, "!", b.as_bytes());
        }
        let mut ctl: Option<&str> = None;
        for r in &self.recipients {
            if let Some(m) = &r.status {
                line(&mut out, "M", m.as_bytes());
            }
            if r.ctl.as_deref() != ctl {
                match &r.ctl {
                    Some(c) => line(&mut out, "C", c.as_bytes()),
                    None => line(&mut out, "C", b""),
                }
                ctl = r.ctl.as_deref();
            }
            if let Some(q) = &r.orcpt {
                line(&mut out, "Q", q.as_bytes());
            }
            if let Some(f) = &r.final_rcpt {
                line(&mut out, "r", f.as_bytes());
            }
            line(&mut out, &format!("R{}:", r.flags), r.addr.as_bytes());
        }
        for h in &self.headers {
            out.extend_from_slice(b"H?");
            out.extend_from_slice(h.cond.as_bytes());
            out.push(b'?');
            // Continuation lines must begin with white space, or the reader
            // would take them for records.
            for (i, l) in h.field.split(|&b| b == b'\n').enumerate() {
                if i > 0 {
                    out.push(b'\n');
                    if !matches!(l.first(), Some(b' ') | Some(b'\t')) {
                        out.push(b'\t');
                    }
                }
                out.extend_from_slice(l);
            }
            out.push(b'\n');
        }
        out.extend_from_slice(b".\n");
        out
    }

    /// Parse a control file.  Records this version does not know are
    /// skipped; a missing `.` terminator is an error.
    pub fn parse(bytes: &[u8]) -> Result<Envelope, QfError> {
        let mut env = Envelope::default();
        let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        // split leaves a final empty piece after the last newline
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        let mut pending_status: Option<String> = None;
        let mut ctl: Option<String> = None;
        let mut orcpt: Option<String> = None;
        let mut final_rcpt: Option<String> = None;
        let mut terminated = false;
        let mut seen_version = false;
        let mut seen_sender = false;
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i];
            let lineno = i + 1;
            i += 1;
            if l.is_empty() {
                continue;
            }
            let (tag, rest) = (l[0], &l[1..]);
            if i == 1 && tag != b'V' {
                return Err(QfError::BadVersion(text(l)));
            }
            let num = |r: &[u8]| -> Result<i64, QfError> {
                std::str::from_utf8(r)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .ok_or_else(|| QfError::BadLine(lineno, text(l)))
            };
            match tag {
                b'V' => {
                    let v = num(rest)?;
                    if !(6..=8).contains(&v) {
                        return Err(QfError::BadVersion(text(rest)));
                    }
                    env.version = v as u32;
                    seen_version = true;
                }
                b'T' => env.created = num(rest)?,
                b'K' => env.last_attempt = num(rest)?,
                b'N' => env.attempts = num(rest)?.max(0) as u32,
                b'P' => env.priority = num(rest)?,
                b'd' => env.data_dir = Some(text(rest)),
                b'I' => env.df_inode = Some(text(rest)),
                b'B' => env.body_type = Some(text(rest)),
                b'q' => env.quarantine = Some(text(rest)),
                b'M' => {
                    // An M before the sender record is the envelope's
                    // message; one after it belongs to the next recipient.
                    if seen_sender {
                        pending_status = Some(text(rest));
                    } else {
                        env.message = Some(text(rest));
                    }
                }
                b'F' => env.flags = text(rest),
                b'$' => {
                    let (name, value) = if rest.first() == Some(&b'{') {
                        match rest.iter().position(|&b| b == b'}') {
                            Some(end) => (text(&rest[1..end]), rest[end + 1..].to_vec()),
                            None => return Err(QfError::BadLine(lineno, text(l))),
                        }
                    } else if !rest.is_empty() {
                        (text(&rest[..1]), rest[1..].to_vec())
                    } else {
                        return Err(QfError::BadLine(lineno, text(l)));
                    };
                    env.macros.push((name, value));
                }
                b'S' => {
                    env.sender = text(rest);
                    seen_sender = true;
                }
                b'Z' => env.envid = Some(text(rest)),
                b'A' => env.auth = Some(text(rest)),
                b'!' => env.deliver_by = Some(text(rest)),
                b'C' => {
                    ctl = if rest.is_empty() {
                        None
                    } else {
                        Some(text(rest))
                    }
                }
                b'Q' => orcpt = Some(text(rest)),
                b'r' => final_rcpt = Some(text(rest)),
                b'R' => {
                    let Some(colon) = rest.iter().position(|&b| b == b':') else {
                        // very old format: R<addr> without flags
                        env.recipients.push(Recipient {
                            flags: String::new(),
                            addr: text(rest),
                            status: pending_status.take(),
                            ctl: ctl.clone(),
                            orcpt: orcpt.take(),
                            final_rcpt: final_rcpt.take(),
                        });
                        continue;
                    };
                    let flags = text(&rest[..colon]);
                    if !flags.chars().all(|c| c.is_ascii_alphabetic()) {
                        // "R" followed by an address containing a colon
                        env.recipients.push(Recipient {
                            addr: text(rest),
                            status: pending_status.take(),
                            ctl: ctl.clone(),
                            orcpt: orcpt.take(),
                            final_rcpt: final_rcpt.take(),
                            ..Default::default()
                        });
                        continue;
                    }
                    env.recipients.push(Recipient {
                        flags,
                        addr: text(&rest[colon + 1..]),
                        status: pending_status.take(),
                        ctl: ctl.clone(),
                        orcpt: orcpt.take(),
                        final_rcpt: final_rcpt.take(),
                    });
                }
                b'H' => {
                    let mut field = Vec::new();
                    let mut cond = String::new();
                    if rest.first() == Some(&b'?') {
                        match rest[1..].iter().position(|&b| b == b'?') {
                            Some(end) => {
                                cond = text(&rest[1..1 + end]);
                                field.extend_from_slice(&rest[end + 2..]);
                            }
                            None => return Err(QfError::BadLine(lineno, text(l))),
                        }
                    } else {
                        field.extend_from_slice(rest);
                    }
                    while i < lines.len() && matches!(lines[i].first(), Some(b' ') | Some(b'\t')) {
                        field.push(b'\n');
                        field.extend_from_slice(lines[i]);
                        i += 1;
                    }
                    env.headers.push(QHeader { cond, field });
                }
                b'.' if rest.is_empty() => {
                    terminated = true;
                    break;
                }
                // Obsolete records sendmail still reads but no longer
                // writes (D, E, G, L, X, Y): nothing to keep.
                _ => {}
            }
        }
        if !seen_version {
            return Err(QfError::BadVersion(String::new()));
        }
        if !terminated {
            return Err(QfError::Truncated);
        }
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A control file written by the real sendmail 8.17.1.9.
    const REAL: &[u8] = b"V8\nT1795242598\nK0\nN0\nP60035\nFbs\n$_root@localhost\n${daemon_flags}c u\nSroot\nAroot@oracle.test\nrRFC822; dave@oracle.test\nRPFD:dave\nrRFC822; eve@oracle.test\nRPFD:eve\nH?P?Return-Path: <\x81g>\nH??Received: (from root@localhost)\n\tby oracle.test (8.17.1.9/8.17.1.9) id 6AL6TwR2002391;\n\tSat, 21 Nov 2026 06:29:58 GMT\nH?D?Date: Sat, 21 Nov 2026 06:29:58 GMT\nH?F?From: root <root>\nH?x?Full-Name: root\nH?M?Message-Id: <202611210629.6AL6TwR2002391@oracle.test>\nH??To: eve, dave\nH??Subject: hi\n.\n";

    /// Found by the qf fuzz target: a macro named `{` was written `${value`,
    /// which reads as an unterminated long name: the rewritten file was
    /// unreadable.
    #[test]
    fn a_macro_named_brace_reads_back() {
        let env = Envelope::parse(b"V8\nT1\n${{}x y\nSroot\nRPFD:dave\n.\n").unwrap();
        assert_eq!(env.macros, vec![("{".to_string(), b"x y".to_vec())]);
        assert_eq!(Envelope::parse(&env.to_bytes()).unwrap(), env);
    }

    #[test]
    fn reads_and_rewrites_sendmails_file_byte_for_byte() {
        let env = Envelope::parse(REAL).unwrap();
        assert_eq!(env.created, 1795242598);
        assert_eq!(env.priority, 60035);
        assert_eq!(env.sender, "root");
        assert_eq!(env.recipients.len(), 2);
        assert_eq!(env.recipients[0].addr, "dave");
        assert_eq!(env.recipients[0].flags, "PFD");
        assert_eq!(
            env.recipients[0].final_rcpt.as_deref(),
            Some("RFC822; dave@oracle.test")
        );
        assert_eq!(env.macro_value("daemon_flags"), Some(&b"c u"[..]));
        assert_eq!(env.headers.len(), 8);
        assert_eq!(env.headers[1].name(), "Received");
        assert!(env.headers[1].field.ends_with(b"06:29:58 GMT"));
        assert_eq!(env.to_bytes(), REAL.to_vec());
    }

    #[test]
    fn statuses_and_controlling_users() {
        let text = b"V8\nT1\nK2\nN1\nP90068\nMDeferred: Connection refused by deferhost.test.\nSa@b\nMDeferred: 451 try later\nC:bob\nRFDA:x@deferhost.test\nRPFD:y@deferhost.test\nC\nRPFD:z\n.\n";
        let env = Envelope::parse(text).unwrap();
        assert_eq!(
            env.message.as_deref(),
            Some("Deferred: Connection refused by deferhost.test.")
        );
        assert_eq!(
            env.recipients[0].status.as_deref(),
            Some("Deferred: 451 try later")
        );
        assert_eq!(env.recipients[0].ctl.as_deref(), Some(":bob"));
        assert_eq!(env.recipients[1].ctl.as_deref(), Some(":bob"));
        assert_eq!(env.recipients[2].ctl, None);
        assert_eq!(Envelope::parse(&env.to_bytes()).unwrap(), env);
    }

    #[test]
    fn torn_files_are_refused() {
        assert_eq!(
            Envelope::parse(b"V8\nT1\nSroot\nRPFD:dave\n"),
            Err(QfError::Truncated)
        );
        assert!(matches!(
            Envelope::parse(b"X\n.\n"),
            Err(QfError::BadVersion(_))
        ));
        assert!(matches!(Envelope::parse(b""), Err(QfError::BadVersion(_))));
    }

    #[test]
    fn newlines_in_values_cannot_forge_records() {
        let env = Envelope {
            sender: "a@b\nRPFD:evil".into(),
            ..Default::default()
        };
        let back = Envelope::parse(&env.to_bytes()).unwrap();
        assert!(back.recipients.is_empty());
        assert_eq!(back.sender, "a@b RPFD:evil");
    }

    #[test]
    fn flags_keep_sendmails_order() {
        let mut env = Envelope::default();
        env.set_flag('s', true);
        env.set_flag('b', true);
        env.set_flag('8', true);
        assert_eq!(env.flags, "8bs");
        env.set_flag('b', false);
        assert_eq!(env.flags, "8s");
    }
}
