//! `mailq` / `sendmail -bp`: the queue listing, in sendmail 8's exact
//! layout, because monitoring plugins (check_mailq, Checkmk) parse it.
//!
//! ```text
//! \t\t/var/spool/mqueue (1 request)
//! -----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------
//! 6AL5Q6p0028434        5 Sat Nov 21 05:26 sender@example.com
//!                  (Deferred: Connection refused by deferhost.test.)
//! \t\t\t\t\t y@deferhost.test
//! \t\tTotal requests: 1
//! ```
//!
//! Jobs are listed by priority (lowest first); jobs of equal priority in
//! directory order, as sendmail's stable sort leaves them.  Each job: the id
//! right-aligned in 13 columns, a status character (`*` = being delivered
//! now), the data file size in 8 columns, the first 16 characters of
//! `ctime(3)` of the submission time, the sender (39 characters at most).
//! When the job has a body type or a status message, a second line of four
//! spaces, the body type in 10 columns and `   (message)` (60 characters at
//! most).  Then one line per pending recipient.  With `-v`: a priority
//! column, `+` after it when a delay warning was sent, 78 characters of
//! sender, 71 of recipient, each recipient's own status after it, and
//! controlling users as `(---user---)`.
//!
//! The control file is read as a stream of records, as sendmail does, so a
//! half-written control file still lists what it has.
//!
//! Held jobs (`hfID`: the admin's `mailroom queue hold`, or mail over an
//! outbound limit) are listed after the queue, as a second section in the
//! layout of sendmail 8's `mailq -qQ`, each with its `QUARANTINE:` reason
//! line.  sendmail 8 itself lists them only with `-qQ`; here a plain
//! `mailq` shows them too, so that mail held is never out of sight.
//! `mailq -qQ` lists the held jobs alone, as sendmail 8 does.

use std::io::{self, Write};

use super::id::QueueId;
use super::spool::Queue;

struct Entry {
    id: QueueId,
    priority: i64,
    locked: bool,
    qf: Option<Vec<u8>>,
    size: i64,
    open_error: Option<io::Error>,
}

/// Which jobs a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The queue (`qf`), then the held jobs when there are any.
    Queue,
    /// Only the held jobs (`hf`), as `mailq -qQ`.
    Held,
}

/// Print the listing; returns the number of jobs.
pub fn print(queue: &Queue, part: Part, verbose: bool, out: &mut dyn Write) -> io::Result<usize> {
    match part {
        Part::Held => print_section(queue, "hf", true, verbose, out),
        Part::Queue => {
            let n = print_section(queue, "qf", true, verbose, out)?;
            let held = print_section(queue, "hf", false, verbose, out)?;
            Ok(n + held)
        }
    }
}

/// One section: the jobs whose control file has `prefix`; `always`: also
/// when there are none ("is empty").
fn print_section(
    queue: &Queue,
    prefix: &str,
    always: bool,
    verbose: bool,
    out: &mut dyn Write,
) -> io::Result<usize> {
    let ids = queue.ids_with(prefix)?;
    if ids.is_empty() && !always {
        return Ok(0);
    }
    let dir = queue.dir().display().to_string();
    let read = |id: QueueId| {
        let (qf, locked, open_error) = match queue.peek_with(prefix, &id) {
            Ok((b, locked)) => (Some(b), locked, None),
            Err(e) => (None, false, Some(e)),
        };
        let priority = qf.as_deref().map(priority_of).unwrap_or(0);
        Entry {
            locked,
            size: queue.data_size(&id).map_or(-1, |s| s as i64),
            id,
            priority,
            qf,
            open_error,
        }
    };
    // A large queue is read by a few threads: the cost is system calls,
    // three per job, which run in parallel.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let mut entries: Vec<Entry> = if ids.len() < 1000 || threads == 1 {
        ids.into_iter().map(read).collect()
    } else {
        let chunk = ids.len().div_ceil(threads);
        let chunks: Vec<Vec<QueueId>> = ids.chunks(chunk).map(|c| c.to_vec()).collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|c| s.spawn(move || c.into_iter().map(read).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    };
    // stable: equal priorities keep directory order
    entries.sort_by_key(|e| e.priority);

    if entries.is_empty() {
        writeln!(out, "{dir} is empty")?;
        writeln!(out, "\t\tTotal requests: 0")?;
        return Ok(0);
    }
    let n = entries.len();
    write!(
        out,
        "\t\t{dir} ({n} request{}",
        if n == 1 { "" } else { "s" }
    )?;
    if verbose {
        writeln!(
            out,
            ")\n-----Q-ID----- --Size-- -Priority- ---Q-Time--- --------Sender/Recipient--------"
        )?;
    } else {
        writeln!(
            out,
            ")\n-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------"
        )?;
    }
    for e in &entries {
        write!(out, "{:>13}", e.id.as_str())?;
        let Some(qf) = &e.qf else {
            match &e.open_error {
                Some(err) if err.kind() == io::ErrorKind::NotFound => {
                    writeln!(out, " (job completed)")?
                }
                Some(err) if err.kind() == io::ErrorKind::PermissionDenied => {
                    writeln!(out, " (permission denied)")?
                }
                Some(err) => writeln!(out, " ({})", crate::exit::io_reason(err))?,
                None => writeln!(out)?,
            }
            continue;
        };
        out.write_all(if e.locked { b"*" } else { b" " })?;
        print_job(qf, e.size, e.priority, verbose, out)?;
        writeln!(out)?;
    }
    writeln!(out, "\t\tTotal requests: {n}")?;
    Ok(n)
}

fn priority_of(qf: &[u8]) -> i64 {
    qf.split(|&b| b == b'\n')
        .find(|l| l.first() == Some(&b'P'))
        .and_then(|l| std::str::from_utf8(&l[1..]).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Walk the records of one control file, printing as sendmail does.
fn print_job(
    qf: &[u8],
    size: i64,
    priority: i64,
    verbose: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut submitted: i64 = 0;
    let mut warned = false;
    let mut version = 0;
    let mut status = String::new();
    let mut quarantine = String::new();
    let mut body_type = String::new();
    for line in qf.split(|&b| b == b'\n') {
        let Some((&tag, rest)) = line.split_first() else {
            continue;
        };
        let text = String::from_utf8_lossy(rest);
        match tag {
            b'V' => version = text.trim().parse().unwrap_or(0),
            b'M' => status = text.into_owned(),
            b'q' => quarantine = text.into_owned(),
            b'B' => body_type = text.into_owned(),
            b'T' => submitted = text.trim().parse().unwrap_or(0),
            b'F' => warned = rest.contains(&b'w'),
            b'S' => {
                if verbose {
                    let ct = crate::date::ctime(submitted);
                    write!(
                        out,
                        "{size:8} {priority:10}{}{} ",
                        if warned { '+' } else { ' ' },
                        &ct[4..16]
                    )?;
                    printable(rest, 78, out)?;
                } else {
                    let ct = crate::date::ctime(submitted);
                    write!(out, "{size:8} {} ", &ct[..16])?;
                    printable(rest, 39, out)?;
                }
                if !quarantine.is_empty() {
                    write!(
                        out,
                        "\n     QUARANTINE: {}",
                        truncate(&quarantine, if verbose { 100 } else { 60 })
                    )?;
                    quarantine.clear();
                }
                if !status.is_empty() || !body_type.is_empty() {
                    write!(out, "\n    {:>10}", truncate(&body_type, 10))?;
                    if !status.is_empty() {
                        write!(
                            out,
                            "   ({})",
                            truncate(&status, if verbose { 100 } else { 60 })
                        )?;
                    }
                    status.clear();
                }
            }
            b'C' if verbose => {
                write!(out, "\n\t\t\t\t\t\t(---{}---)", truncate(&text, 64))?;
            }
            b'R' => {
                let addr: &[u8] = if version >= 1 {
                    match rest.iter().position(|&b| b == b':') {
                        Some(i) => &rest[i + 1..],
                        None => continue,
                    }
                } else {
                    rest
                };
                if verbose {
                    out.write_all(b"\n\t\t\t\t\t\t")?;
                    printable(addr, 71, out)?;
                    if !status.is_empty() {
                        write!(out, "\n\t\t ({})", truncate(&status, 100))?;
                        status.clear();
                    }
                } else {
                    out.write_all(b"\n\t\t\t\t\t ")?;
                    printable(addr, 38, out)?;
                }
            }
            _ => {}
        }
    }
    if submitted == 0 {
        write!(out, " (no control file)")?;
    }
    Ok(())
}

/// At most `n` characters of `s`.
fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Print at most `max` columns of `s`: a backslash doubled, anything but
/// printable ASCII as `\ooo` (sendmail's `prtstr`).
fn printable(s: &[u8], max: usize, out: &mut dyn Write) -> io::Result<()> {
    let mut left = max as isize;
    for &c in s {
        if left <= 0 {
            break;
        }
        left -= 1;
        if c == b'\\' {
            if left > 0 {
                left -= 1;
                out.write_all(b"\\\\")?;
            }
        } else if (0x20..0x7f).contains(&c) {
            out.write_all(&[c])?;
        } else {
            left -= 3;
            if left > 0 {
                write!(out, "\\{:03o}", c)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_like_prtstr() {
        let mut v = Vec::new();
        printable(b"a\\b\xc3\xa9", 39, &mut v).unwrap();
        assert_eq!(v, b"a\\\\b\\303\\251");
        let mut v = Vec::new();
        printable(
            b"a very long sender name that goes on and on@example.com",
            39,
            &mut v,
        )
        .unwrap();
        assert_eq!(v, b"a very long sender name that goes on an");
    }

    #[test]
    fn job_lines_match_sendmail() {
        let qf = b"V8\nT1795242598\nK0\nN0\nP90068\nMDeferred: Connection refused by deferhost.test.\nSsender@example.com\nRPFD:y@deferhost.test\nRPFD:x@deferhost.test\nH??Subject: x\n.\n";
        let mut v = Vec::new();
        print_job(qf, 5, 90068, false, &mut v).unwrap();
        let s = String::from_utf8(v).unwrap();
        let date = &crate::date::ctime(1795242598)[..16];
        assert_eq!(
            s,
            format!(
                "       5 {date} sender@example.com\n                 (Deferred: Connection refused by deferhost.test.)\n\t\t\t\t\t y@deferhost.test\n\t\t\t\t\t x@deferhost.test"
            )
        );
    }
}
