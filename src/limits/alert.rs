//! The alert the postmaster gets when a sender first goes over a limit in
//! an hour: who, how much in the last hour and day, where the mail was
//! going and what it was about, which script sent it, and the exact
//! commands that release or delete what was held.

use std::collections::HashMap;

use super::Over;
use crate::address;
use crate::config::Config;
use crate::date;
use crate::queue::select::{self, Selector};
use crate::queue::{Envelope, Queue};

/// What the door knows about the message that went over the limit.
#[derive(Debug, Clone, Default)]
pub struct Offending {
    /// Its queue id.
    pub qid: String,
    /// Held (a local program) or refused (an SMTP client).
    pub held: bool,
    pub subject: Option<String>,
    /// Its recipients' domains.
    pub recipient_domains: Vec<String>,
    /// PHP's `X-PHP-Originating-Script:` (`33:wp-content/x.php`), else the
    /// submitting program's working directory.
    pub script: Option<String>,
}

/// The selector that finds the offender's jobs, and its command-line form.
fn selector_of(key: &str) -> (Selector, String) {
    let (kind, name) = key.split_once(':').unwrap_or(("", key));
    let mut s = Selector::default();
    let arg = match kind {
        "user" => {
            s.user = Some(name.to_string());
            format!("--user {name}")
        }
        "login" => {
            s.login = Some(name.to_string());
            format!("--login {name}")
        }
        "connect" => {
            s.client = Some(name.to_string());
            format!("--client {name}")
        }
        _ => {
            s.from = Some(format!("@{name}"));
            format!("--from @{name}")
        }
    };
    (s, arg)
}

/// The offender's jobs still in the queue (queued and held), at most
/// `limit` of each, newest first.
fn jobs_of(queue: &Queue, sel: &Selector, now: i64, limit: usize) -> Vec<(bool, Envelope)> {
    let mut out = Vec::new();
    for (prefix, held) in [("hf", true), ("qf", false)] {
        let Ok(mut ids) = queue.ids_with(prefix) else {
            continue;
        };
        ids.sort();
        ids.reverse();
        let mut n = 0;
        for id in ids {
            if n >= limit {
                break;
            }
            if let Ok(env) = queue.read_with(prefix, &id)
                && sel.matches(&env, now)
            {
                out.push((held, env));
                n += 1;
            }
        }
    }
    out
}

/// The most frequent of `items`, at most `n`, as "name (count)".
fn top(items: impl Iterator<Item = String>, n: usize) -> Vec<String> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for i in items {
        *counts.entry(i).or_default() += 1;
    }
    let mut v: Vec<(String, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.into_iter()
        .take(n)
        .map(|(k, c)| format!("{k} ({c})"))
        .collect()
}

/// The alert message, complete (header and body).
pub fn build(cfg: &Config, over: &Over, msg: &Offending, to: &str, now: i64) -> Vec<u8> {
    let host = &cfg.hostname;
    let (sel, arg) = selector_of(&over.key);
    let jobs = jobs_of(&crate::queue::Queue::new(&cfg.queue_dir), &sel, now, 1000);
    let held_n = jobs.iter().filter(|(h, _)| *h).count();
    let domains = top(
        jobs.iter()
            .flat_map(|(_, e)| e.recipients.iter())
            .filter_map(|r| {
                let a = address::parse_one(&r.addr).ok()?.addr;
                Some(address::split_addr(&a).1?.to_ascii_lowercase())
            })
            // A held message is in the queue already; a refused one is not.
            .chain(msg.recipient_domains.iter().filter(|_| !msg.held).cloned()),
        5,
    );
    let subjects = top(
        jobs.iter()
            .filter_map(|(_, e)| select::subject(e))
            .chain(msg.subject.clone().filter(|_| !msg.held)),
        5,
    );
    let who = over.text();
    let action = if msg.held {
        "Its mail is accepted and held in the queue, not sent"
    } else {
        "Its SMTP sessions get \"451 4.7.0\" (try again later)"
    };
    let mut body = format!(
        "{who} on {host}.\n\n\
         {action}, until the admin decides; nothing is lost.\n\n\
         Sender:        {key}\n\
         Last hour:     {} messages, {} recipients\n\
         Last day:      {} messages, {} recipients\n\
         Held now:      {held_n} message{}\n\
         Message:       {qid}\n",
        over.hour.messages,
        over.hour.recipients,
        over.day.messages,
        over.day.recipients,
        if held_n == 1 { "" } else { "s" },
        key = over.key,
        qid = msg.qid,
    );
    if let Some(s) = &msg.script {
        body.push_str(&format!("Script:        {s}\n"));
    }
    if !domains.is_empty() {
        body.push_str(&format!("To domains:    {}\n", domains.join(", ")));
    }
    if !subjects.is_empty() {
        body.push_str("Subjects:\n");
        for s in &subjects {
            body.push_str(&format!("    {s}\n"));
        }
    }
    body.push_str(&format!(
        "\nIf this is legitimate mail, send what was held:\n\
         \x20   mailroom queue release --held {arg}\n\
         and raise its limit in /etc/mail/limits (see 'man mailroom.conf'), e.g.\n\
         \x20   {} messages=2000/hour\n\
         \nIf it is not, delete what was held and find the cause (a hacked\n\
         script, a stolen password):\n\
         \x20   mailroom queue delete --held {arg}\n\
         \x20   mailroom queue summary\n",
        table_key(&over.key)
    ));
    let subject = format!("{who}: mail held on {host}");
    let subject = if msg.held {
        subject
    } else {
        format!("{who}: mail refused on {host}")
    };
    format!(
        "From: Mail Delivery Subsystem <MAILER-DAEMON@{host}>\n\
         To: {to}\n\
         Subject: {subject}\n\
         Date: {}\n\
         Message-Id: <{}.limits.{}@{host}>\n\
         Auto-Submitted: auto-generated\n\
         Precedence: bulk\n\
         Content-Type: text/plain; charset=utf-8\n\
         \n{body}",
        date::rfc5322(now),
        date::message_id_stamp(now),
        msg.qid,
    )
    .into_bytes()
}

/// `user:www-data` as `/etc/mail/limits` writes it: `User:www-data`.
fn table_key(key: &str) -> String {
    let (kind, name) = key.split_once(':').unwrap_or(("", key));
    let tag = match kind {
        "user" => "User",
        "login" => "Login",
        "connect" => "Connect",
        _ => "Domain",
    };
    format!("{tag}:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Count;

    #[test]
    fn the_alert_says_who_how_much_and_what_to_type() {
        let root = std::env::temp_dir().join(format!("mr-alert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("var/spool/mqueue")).unwrap();
        let mut cfg = Config::defaults(crate::config::Paths::under(&root));
        cfg.hostname = "mx.example".into();
        let over = Over {
            key: "user:www-data".into(),
            limit: "200 messages/hour".into(),
            hour: Count {
                messages: 201,
                recipients: 402,
            },
            day: Count {
                messages: 950,
                recipients: 1900,
            },
            alert_due: true,
        };
        let msg = Offending {
            qid: "6B5AAAAA000001".into(),
            // Refused over SMTP: not in the queue, so the alert counts it
            // itself (a held one is counted from the queue).
            held: false,
            subject: Some("Cheap pills".into()),
            recipient_domains: vec!["gmail.com".into()],
            script: Some("33:wp-content/plugins/evil.php".into()),
        };
        let text =
            String::from_utf8(build(&cfg, &over, &msg, "postmaster", 1_800_000_000)).unwrap();
        for want in [
            "Subject: user www-data over 200 messages/hour: mail refused on mx.example",
            "To: postmaster",
            "Last hour:     201 messages, 402 recipients",
            "Script:        33:wp-content/plugins/evil.php",
            "To domains:    gmail.com (1)",
            "Cheap pills (1)",
            "mailroom queue release --held --user www-data",
            "mailroom queue delete --held --user www-data",
            "User:www-data messages=2000/hour",
        ] {
            assert!(text.contains(want), "{want}\n{text}");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
