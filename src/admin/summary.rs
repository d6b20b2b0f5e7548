//! `mailroom queue summary`: who is sending how much right now — each
//! sender the outbound limits counted (the last hour and day, against its
//! limit), what is held and for whom, where the queued mail is going.

use std::collections::HashMap;
use std::io::{self, Write};

use crate::address;
use crate::config::Config;
use crate::exit::ExitCode;
use crate::limits::{self, Count, Counters};
use crate::queue::select;
use crate::queue::{Envelope, Queue};
use crate::table::{Syntax, Table};

/// One sender's line.
#[derive(Debug, Clone)]
struct Sender {
    key: String,
    hour: Count,
    day: Count,
    /// Its limit, as `200 messages/hour, 500 recipients/hour, ...`; None:
    /// unlimited.
    limit: Option<String>,
    held: usize,
}

/// The key a held job is charged to: its user, login or client; else its
/// sender's domain.
fn key_of(env: &Envelope) -> String {
    if let Some(u) = select::submitting_user(env) {
        return format!("user:{}", u.to_ascii_lowercase());
    }
    if let Some(l) = select::auth_login(env) {
        return format!("login:{}", l.to_ascii_lowercase());
    }
    if let Some(c) = select::client_address(env) {
        return format!("connect:{c}");
    }
    let sender = address::parse_one(&env.sender)
        .map(|m| m.addr)
        .unwrap_or_default();
    match address::split_addr(&sender).1 {
        Some(d) => format!("domain:{}", d.to_ascii_lowercase()),
        None => "(local)".to_string(),
    }
}

fn limit_words(l: &limits::Limit) -> String {
    let parts: Vec<String> = [
        (l.messages_per_hour, "messages/hour"),
        (l.recipients_per_hour, "recipients/hour"),
        (l.messages_per_day, "messages/day"),
        (l.recipients_per_day, "recipients/day"),
    ]
    .into_iter()
    .filter_map(|(n, what)| n.map(|n| format!("{n} {what}")))
    .collect();
    parts.join(", ")
}

/// Print the summary; the exit code.
pub fn run(cfg: &Config, q: &Queue, json: bool) -> i32 {
    let now = crate::date::now();
    let settings = match limits::Settings::from_config(cfg) {
        Ok(s) => s,
        Err(f) => {
            eprintln!("mailroom: {f}");
            return f.code.code();
        }
    };
    let table = Table::open(&cfg.paths.etc_mail("limits"), Syntax::Makemap, false);
    let records = match Counters::lock(&limits::counters_dir(cfg)) {
        Ok(c) => c.all(now).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    // The queue: held per sender, destinations of what waits.
    let (mut queued, mut held_total) = (0usize, 0usize);
    let mut held: HashMap<String, usize> = HashMap::new();
    let mut destinations: HashMap<String, usize> = HashMap::new();
    for (prefix, is_held) in [("qf", false), ("hf", true)] {
        let Ok(ids) = q.ids_with(prefix) else {
            eprintln!(
                "mailroom: cannot read the queue {}; run as root",
                q.dir().display()
            );
            return ExitCode::NoPerm.code();
        };
        for id in ids {
            let Ok(env) = q.read_with(prefix, &id) else {
                continue;
            };
            if is_held {
                held_total += 1;
                *held.entry(key_of(&env)).or_default() += 1;
            } else {
                queued += 1;
            }
            for r in &env.recipients {
                if let Ok(m) = address::parse_one(&r.addr)
                    && let Some(d) = address::split_addr(&m.addr).1
                {
                    *destinations.entry(d.to_ascii_lowercase()).or_default() += 1;
                }
            }
        }
    }
    let mut senders: Vec<Sender> = records
        .into_iter()
        .filter(|r| {
            let (h, d) = r.totals();
            h.messages > 0 || d.messages > 0
        })
        .map(|r| {
            let (hour, day) = r.totals();
            let limit = settings
                .limit_for(&table, &r.key, r.key.starts_with("domain:"))
                .ok()
                .flatten()
                .map(|l| limit_words(&l));
            Sender {
                held: held.remove(&r.key).unwrap_or(0),
                key: r.key,
                hour,
                day,
                limit,
            }
        })
        .collect();
    // Held mail of senders no longer counted (an old hold).
    for (key, n) in held {
        senders.push(Sender {
            key,
            hour: Count::default(),
            day: Count::default(),
            limit: None,
            held: n,
        });
    }
    senders.sort_by(|a, b| {
        (b.hour.messages, b.day.messages, b.held)
            .cmp(&(a.hour.messages, a.day.messages, a.held))
            .then(a.key.cmp(&b.key))
    });
    let mut dest: Vec<(String, usize)> = destinations.into_iter().collect();
    dest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    dest.truncate(10);
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let r = if json {
        print_json(
            &mut out,
            &senders,
            queued,
            held_total,
            &dest,
            settings.enabled,
        )
    } else {
        print_table(
            &mut out,
            &senders,
            queued,
            held_total,
            &dest,
            settings.enabled,
        )
    };
    if r.is_err() {
        ExitCode::IoErr.code()
    } else {
        0
    }
}

fn print_table(
    out: &mut dyn Write,
    senders: &[Sender],
    queued: usize,
    held: usize,
    dest: &[(String, usize)],
    enabled: bool,
) -> io::Result<()> {
    if !enabled {
        writeln!(
            out,
            "Outbound limits are off (limits = no in mailroom.conf)."
        )?;
    }
    writeln!(out, "Queue: {queued} queued, {held} held")?;
    if senders.is_empty() {
        writeln!(out, "No outbound mail counted in the last day.")?;
    } else {
        writeln!(
            out,
            "{:<36} {:>14} {:>14} {:>6}  LIMIT",
            "SENDER", "LAST HOUR", "LAST DAY", "HELD"
        )?;
        for s in senders {
            let (kind, name) = s.key.split_once(':').unwrap_or(("", &s.key));
            writeln!(
                out,
                "{:<36} {:>14} {:>14} {:>6}  {}",
                format!("{kind} {name}"),
                format!("{}m/{}r", s.hour.messages, s.hour.recipients),
                format!("{}m/{}r", s.day.messages, s.day.recipients),
                s.held,
                s.limit.as_deref().unwrap_or("unlimited"),
            )?;
        }
    }
    if !dest.is_empty() {
        let d: Vec<String> = dest.iter().map(|(d, n)| format!("{d} ({n})")).collect();
        writeln!(out, "Waiting for: {}", d.join(", "))?;
    }
    Ok(())
}

fn print_json(
    out: &mut dyn Write,
    senders: &[Sender],
    queued: usize,
    held: usize,
    dest: &[(String, usize)],
    enabled: bool,
) -> io::Result<()> {
    use super::queue::json_str;
    let s: Vec<String> = senders
        .iter()
        .map(|s| {
            format!(
                "{{\"key\": {}, \"hour\": {{\"messages\": {}, \"recipients\": {}}}, \"day\": {{\"messages\": {}, \"recipients\": {}}}, \"held\": {}, \"limit\": {}}}",
                json_str(&s.key),
                s.hour.messages,
                s.hour.recipients,
                s.day.messages,
                s.day.recipients,
                s.held,
                s.limit.as_deref().map_or("null".to_string(), json_str)
            )
        })
        .collect();
    let d: Vec<String> = dest
        .iter()
        .map(|(d, n)| format!("{{\"domain\": {}, \"recipients\": {n}}}", json_str(d)))
        .collect();
    writeln!(
        out,
        "{{\"limits\": {enabled}, \"queued\": {queued}, \"held\": {held}, \"senders\": [{}], \"destinations\": [{}]}}",
        s.join(", "),
        d.join(", ")
    )
}
