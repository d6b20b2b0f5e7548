//! `mailroom queue`: the queue as an admin needs it — age, attempts, next
//! retry, last error — in a table or JSON, and the actions: retry, hold,
//! release, delete (with or without a bounce to the sender).

use std::io::{self, Write};

use crate::queue::{Envelope, Queue, QueueId};
use crate::runner::Settings;

/// One job as listed.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    /// `queued`, `held` (hf) or `set-aside` (Qf).
    pub state: &'static str,
    /// Being delivered right now.
    pub locked: bool,
    pub size: u64,
    pub created: i64,
    pub attempts: u32,
    pub last_attempt: i64,
    /// When the next periodic run will try it (None: held, set aside).
    pub next_retry: Option<i64>,
    pub sender: String,
    pub recipients: Vec<(String, Option<String>)>,
    pub last_error: Option<String>,
}

/// Every job: queued, held and set aside.
pub fn list(queue: &Queue, settings: &Settings) -> io::Result<Vec<Item>> {
    let mut items = Vec::new();
    for (prefix, state) in [("qf", "queued"), ("hf", "held"), ("Qf", "set-aside")] {
        let mut ids = queue.ids_with(prefix)?;
        ids.sort();
        for id in ids {
            let env = match queue.read_with(prefix, &id) {
                Ok(e) => e,
                Err(e) => Envelope {
                    message: Some(format!("unreadable control file: {e}")),
                    ..Default::default()
                },
            };
            let next_retry = (state == "queued").then(|| {
                if env.attempts == 0 {
                    env.created
                } else {
                    env.last_attempt + settings.backoff(env.attempts)
                }
            });
            items.push(Item {
                id: id.to_string(),
                state,
                locked: state == "queued" && queue.is_locked(&id),
                size: queue.data_size(&id).unwrap_or(0),
                created: env.created,
                attempts: env.attempts,
                last_attempt: env.last_attempt,
                next_retry,
                sender: env.sender.clone(),
                recipients: env
                    .recipients
                    .iter()
                    .map(|r| (r.addr.clone(), r.status.clone()))
                    .collect(),
                last_error: env.message.clone(),
            });
        }
    }
    Ok(items)
}

/// "3d4h", "1h04m", "12m", "40s".
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    if s >= 86400 {
        format!("{}d{}h", s / 86400, s % 86400 / 3600)
    } else if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The human table.
pub fn print_table(items: &[Item], now: i64, out: &mut dyn Write) -> io::Result<()> {
    if items.is_empty() {
        return writeln!(out, "The queue is empty.");
    }
    writeln!(
        out,
        "{:<16} {:<9} {:>6} {:>5}  {:<10} {:>8}  SENDER -> RECIPIENTS",
        "ID", "STATE", "AGE", "TRIES", "NEXT TRY", "SIZE"
    )?;
    for i in items {
        let next = match i.next_retry {
            Some(t) if t <= now => "now".to_string(),
            Some(t) => format!("in {}", age(t - now)),
            None => "-".to_string(),
        };
        let state = if i.locked { "sending" } else { i.state };
        writeln!(
            out,
            "{:<16} {:<9} {:>6} {:>5}  {:<10} {:>8}  {}",
            i.id,
            state,
            age(now - i.created),
            i.attempts,
            next,
            i.size,
            if i.sender.is_empty() { "<>" } else { &i.sender }
        )?;
        for (r, status) in &i.recipients {
            match status {
                Some(s) => writeln!(out, "{:58}-> {r}  ({s})", "")?,
                None => writeln!(out, "{:58}-> {r}", "")?,
            }
        }
        // The job's last status, unless a recipient's line already says it.
        if let Some(e) = &i.last_error
            && !i.recipients.iter().any(|(_, s)| s.as_ref() == Some(e))
        {
            writeln!(out, "{:58}   last error: {e}", "")?;
        }
    }
    writeln!(
        out,
        "{} message{}",
        items.len(),
        if items.len() == 1 { "" } else { "s" }
    )
}

/// A JSON string.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_opt(s: &Option<String>) -> String {
    s.as_deref().map_or("null".to_string(), json_str)
}

/// One JSON array, one object per job.
pub fn print_json(items: &[Item], now: i64, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "[")?;
    for (n, i) in items.iter().enumerate() {
        let rcpts: Vec<String> = i
            .recipients
            .iter()
            .map(|(a, s)| {
                format!(
                    "{{\"address\": {}, \"status\": {}}}",
                    json_str(a),
                    json_opt(s)
                )
            })
            .collect();
        writeln!(
            out,
            "  {{\"id\": {}, \"state\": {}, \"sending\": {}, \"size\": {}, \"queued_at\": {}, \"age_seconds\": {}, \"attempts\": {}, \"last_attempt\": {}, \"next_retry\": {}, \"sender\": {}, \"recipients\": [{}], \"last_error\": {}}}{}",
            json_str(&i.id),
            json_str(i.state),
            i.locked,
            i.size,
            i.created,
            now - i.created,
            i.attempts,
            if i.last_attempt == 0 {
                "null".to_string()
            } else {
                i.last_attempt.to_string()
            },
            i.next_retry.map_or("null".to_string(), |t| t.to_string()),
            json_str(&i.sender),
            rcpts.join(", "),
            json_opt(&i.last_error),
            if n + 1 < items.len() { "," } else { "" }
        )?;
    }
    writeln!(out, "]")
}

/// Parse the ids an admin typed; a bad one is an error naming it.
pub fn parse_ids(ids: &[String]) -> Result<Vec<QueueId>, String> {
    ids.iter()
        .map(|s| QueueId::parse(s.trim()).ok_or_else(|| format!("not a queue id: {s:?}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escaping_and_ages() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
        assert_eq!(age(40), "40s");
        assert_eq!(age(3840), "1h04m");
        assert_eq!(age(2 * 86400 + 3600), "2d1h");
    }
}
