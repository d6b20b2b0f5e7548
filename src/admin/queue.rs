//! `mailroom queue`: the queue as an admin needs it — age, attempts, next
//! retry, last error — in a table or JSON; the actions (retry, hold,
//! release, delete), on ids or on every job a selector chooses (who sent
//! it, where it goes, its subject, its age); and the summary of who is
//! sending how much right now (the outbound limits' counters, the queue).

use std::io::{self, Write};

use clap::{Args, Subcommand};

use crate::config::{Config, parse_duration};
use crate::exit::ExitCode;
use crate::queue::select::Selector;
use crate::queue::{Envelope, Queue, QueueId};
use crate::runner::Settings;

pub const QUEUE_HELP: &str = "\
Examples:
  mailroom queue
  mailroom queue summary
  mailroom queue release --held --user www-data
  mailroom queue delete --held --user www-data
  mailroom queue delete --from @spam.example --dry-run
  mailroom queue hold --to-domain gmail.com --older-than 1h
  mailroom queue retry 6B5C1a2b000123

Selectors choose every job that matches all of them: --from ADDRESS or
@DOMAIN (envelope sender), --user LOGIN (the local user who ran sendmail),
--login ADDRESS (the SMTP AUTH login), --client IP, --to-domain DOMAIN,
--subject GLOB (* and ?), --older-than AGE (30m, 2h, 1d), --held (only
held jobs).  Each action prints how many match, then acts; --dry-run only
counts.";

#[derive(Subcommand, Debug)]
pub enum QueueAction {
    /// List the queue (the default).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Try these messages again now.
    Retry {
        #[arg(value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Keep these messages in the queue but do not try them.
    Hold {
        #[arg(value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Let held (or set-aside) messages be tried again.
    Release {
        #[arg(value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Remove messages from the queue.
    Delete {
        /// Tell each sender, with a bounce, that the message was deleted.
        #[arg(long)]
        bounce: bool,
        #[arg(value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Who is sending how much right now: senders over the last hour and
    /// day (with their limits), held mail, destination domains.
    Summary {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// The selectors on the command line.
#[derive(Args, Debug, Default, Clone)]
pub struct SelectArgs {
    /// The envelope sender, or @DOMAIN for every sender of a domain.
    #[arg(long, value_name = "ADDRESS|@DOMAIN")]
    from: Option<String>,
    /// Submitted by this local user (PHP's www-data, a cron job's user).
    #[arg(long, value_name = "LOGIN")]
    user: Option<String>,
    /// Sent by this SMTP AUTH login.
    #[arg(long, value_name = "ADDRESS")]
    login: Option<String>,
    /// Sent by an SMTP client at this address.
    #[arg(long, value_name = "IP")]
    client: Option<String>,
    /// At least one recipient in this domain.
    #[arg(long, value_name = "DOMAIN")]
    to_domain: Option<String>,
    /// The Subject: matches this pattern (* and ?, case-insensitive).
    #[arg(long, value_name = "GLOB")]
    subject: Option<String>,
    /// Queued at least this long ago (30m, 2h, 1d).
    #[arg(long, value_name = "AGE")]
    older_than: Option<String>,
    /// Only held messages.
    #[arg(long)]
    held: bool,
    /// Only count what matches; change nothing.
    #[arg(long)]
    dry_run: bool,
}

impl SelectArgs {
    /// The selector, or `None` when no selector was given; a bad AGE is
    /// an error.
    fn selector(&self) -> Result<Option<Selector>, String> {
        let older_than = match &self.older_than {
            None => None,
            Some(a) => Some(
                parse_duration(a, 1)
                    .ok_or_else(|| format!("--older-than {a:?}: not an age (30m, 2h, 1d)"))?
                    as i64,
            ),
        };
        let s = Selector {
            from: self.from.clone(),
            user: self.user.clone(),
            login: self.login.clone(),
            client: self.client.clone(),
            to_domain: self.to_domain.clone(),
            subject: self.subject.clone(),
            older_than,
        };
        Ok((s != Selector::default() || self.held).then_some(s))
    }
}

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

/// One action's target: the jobs named or chosen.
struct Targets {
    /// Named on the command line.
    ids: Vec<QueueId>,
    /// Chosen by a selector (`None`: ids only).
    chosen: Option<Vec<(QueueId, bool)>>,
    dry_run: bool,
}

/// The jobs `select` chooses among those with prefix `qf` (queued) and,
/// as asked, `hf` (held): (id, held).
fn choose(
    q: &Queue,
    sel: &Selector,
    queued: bool,
    held: bool,
    now: i64,
) -> io::Result<Vec<(QueueId, bool)>> {
    let mut out = Vec::new();
    for (prefix, is_held, wanted) in [("qf", false, queued), ("hf", true, held)] {
        if !wanted {
            continue;
        }
        let mut ids = q.ids_with(prefix)?;
        ids.sort();
        for id in ids {
            if let Ok(env) = q.read_with(prefix, &id)
                && sel.matches(&env, now)
            {
                out.push((id, is_held));
            }
        }
    }
    Ok(out)
}

/// Resolve an action's ids and selectors: which jobs, queued and/or held
/// (`--held` narrows to held ones).  Prints how many match.
fn targets(
    q: &Queue,
    ids: &[String],
    select: &SelectArgs,
    queued: bool,
    held: bool,
) -> Result<Targets, i32> {
    let usage = |m: String| {
        eprintln!("mailroom: {m}; see 'mailroom queue --help'");
        ExitCode::Usage.code()
    };
    let ids = parse_ids(ids).map_err(usage)?;
    let sel = select.selector().map_err(usage)?;
    if ids.is_empty() && sel.is_none() {
        return Err(usage(
            "name the messages: queue ids, or selectors such as --user LOGIN or --held".into(),
        ));
    }
    let chosen = match sel {
        None => None,
        Some(sel) => {
            let (queued, held) = if select.held {
                (false, true)
            } else {
                (queued, held)
            };
            let v = choose(q, &sel, queued, held, crate::date::now()).map_err(|e| {
                eprintln!(
                    "mailroom: cannot read the queue {}: {}; run as root",
                    q.dir().display(),
                    crate::exit::io_reason(&e)
                );
                ExitCode::NoPerm.code()
            })?;
            println!(
                "{} message{} match",
                v.len(),
                if v.len() == 1 { "" } else { "s" }
            );
            Some(v)
        }
    };
    Ok(Targets {
        ids,
        chosen,
        dry_run: select.dry_run,
    })
}

/// Run `mailroom queue ...`; the exit code.
pub fn run(cfg: &Config, action: Option<QueueAction>, json: bool) -> i32 {
    let settings = match Settings::from_config(cfg) {
        Ok(s) => s,
        Err(f) => {
            eprintln!("mailroom: {f}");
            return f.code.code();
        }
    };
    let q = Queue::new(&cfg.queue_dir);
    let fail = |what: String| -> i32 {
        eprintln!("mailroom: {what}");
        ExitCode::TempFail.code()
    };
    let action = action.unwrap_or(QueueAction::List { json });
    match action {
        QueueAction::List { json: j } => {
            let items = match list(&q, &settings) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!(
                        "mailroom: cannot read the queue {}: {}; run as root",
                        cfg.queue_dir.display(),
                        crate::exit::io_reason(&e)
                    );
                    return ExitCode::NoPerm.code();
                }
            };
            let now = crate::date::now();
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let r = if j || json {
                print_json(&items, now, &mut out)
            } else {
                print_table(&items, now, &mut out)
            };
            if r.is_err() {
                ExitCode::IoErr.code()
            } else {
                0
            }
        }
        QueueAction::Summary { json: j } => super::summary::run(cfg, &q, j || json),
        QueueAction::Retry { ids, select } => {
            let t = match targets(&q, &ids, &select, true, false) {
                Ok(t) if t.dry_run => return 0,
                Ok(t) => t,
                Err(code) => return code,
            };
            let runner = match crate::runner::Runner::new(cfg, false) {
                Ok(r) => r,
                Err(f) => return fail(f.to_string()),
            };
            let named = !t.ids.is_empty();
            let (code, done) = act_on(&t, |id| match runner.make_due(id) {
                Ok(true) => {
                    if named {
                        crate::runner::start::start_delivery(
                            &cfg.queue_dir,
                            id,
                            crate::config::DeliveryMode::Background,
                        );
                        println!("{id}: retrying now");
                    }
                    Outcome::Done
                }
                Ok(false) => Outcome::Untouched(BUSY, ExitCode::TempFail),
                Err(e) => Outcome::Failed(e),
            });
            if t.chosen.is_some() {
                crate::runner::start::start_run();
                println!("retrying {done} now");
            }
            code
        }
        QueueAction::Hold { ids, select } => {
            let t = match targets(&q, &ids, &select, true, false) {
                Ok(t) if t.dry_run => return 0,
                Ok(t) => t,
                Err(code) => return code,
            };
            let (code, done) = act_on(&t, |id| match q.hold(id) {
                Ok(true) => {
                    if t.chosen.is_none() {
                        println!("{id}: held");
                    }
                    Outcome::Done
                }
                Ok(false) => Outcome::Untouched(BUSY, ExitCode::TempFail),
                Err(e) => Outcome::Failed(crate::exit::io_reason(&e)),
            });
            if t.chosen.is_some() {
                println!("held {done}");
            }
            code
        }
        QueueAction::Release { ids, select } => {
            let t = match targets(&q, &ids, &select, false, true) {
                Ok(t) if t.dry_run => return 0,
                Ok(t) => t,
                Err(code) => return code,
            };
            let (code, done) = act_on(&t, |id| match q.release(id) {
                Ok(true) => {
                    if t.chosen.is_none() {
                        crate::runner::start::start_delivery(
                            &cfg.queue_dir,
                            id,
                            crate::config::DeliveryMode::Background,
                        );
                        println!("{id}: released");
                    }
                    Outcome::Done
                }
                Ok(false) => Outcome::Untouched("not held", ExitCode::Usage),
                Err(e) => Outcome::Failed(crate::exit::io_reason(&e)),
            });
            if t.chosen.is_some() {
                // One queue run takes them all (at each destination's pace).
                crate::runner::start::start_run();
                println!("released {done}");
            }
            code
        }
        QueueAction::Delete {
            bounce,
            ids,
            select,
        } => {
            let t = match targets(&q, &ids, &select, true, true) {
                Ok(t) if t.dry_run => return 0,
                Ok(t) => t,
                Err(code) => return code,
            };
            let runner = match crate::runner::Runner::new(cfg, false) {
                Ok(r) => r,
                Err(f) => return fail(f.to_string()),
            };
            let notified = if bounce { ", sender notified" } else { "" };
            let (code, done) = act_on(&t, |id| {
                match runner.abandon(
                    id,
                    bounce,
                    "Message deleted from the queue by the administrator",
                ) {
                    Ok(true) => {
                        if t.chosen.is_none() {
                            println!("{id}: deleted{notified}");
                        }
                        Outcome::Done
                    }
                    Ok(false) => Outcome::Untouched(BUSY, ExitCode::TempFail),
                    Err(e) => Outcome::Failed(e),
                }
            });
            if t.chosen.is_some() {
                println!(
                    "deleted {done}{}",
                    if bounce { ", senders notified" } else { "" }
                );
            }
            code
        }
    }
}

/// A job being delivered right now cannot be locked (or it is gone).
const BUSY: &str = "not queued (being delivered right now, or gone)";

/// What an action did to one job.
enum Outcome {
    Done,
    /// Left as it was: why, and the exit code that says so.
    Untouched(&'static str, ExitCode),
    /// The action failed: why.
    Failed(String),
}

/// Run `act` on every target, the named ones first: the exit code and how
/// many were done.  A job left untouched or failed is said at once; what
/// a done job prints is the action's.
fn act_on(t: &Targets, mut act: impl FnMut(&QueueId) -> Outcome) -> (i32, usize) {
    let (mut code, mut done) = (0, 0);
    for id in t
        .ids
        .iter()
        .chain(t.chosen.iter().flatten().map(|(id, _)| id))
    {
        match act(id) {
            Outcome::Done => done += 1,
            Outcome::Untouched(why, c) => {
                println!("{id}: {why}");
                code = c.code();
            }
            Outcome::Failed(why) => {
                eprintln!("mailroom: {id}: {why}");
                code = ExitCode::TempFail.code();
            }
        }
    }
    (code, done)
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
