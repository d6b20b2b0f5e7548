//! `mailroom explain ADDRESS`: where mail for an address goes, step by
//! step, each step with the file and line that decided it.

use std::io::Write;

use crate::resolve::{Resolver, StepKind, Target};

/// Print the explanation of `addr`; returns false when it ends in errors.
pub fn explain(resolver: &Resolver, addr: &str, out: &mut dyn Write) -> std::io::Result<bool> {
    let res = resolver.resolve(addr);
    writeln!(out, "{addr}")?;
    for s in &res.steps {
        let marker = match s.kind {
            StepKind::Error => "!",
            _ => " ",
        };
        match &s.source {
            Some((file, line)) => {
                writeln!(out, " {marker} {}    ({}:{line})", s.text, file.display())?
            }
            None => writeln!(out, " {marker} {}", s.text)?,
        }
    }
    writeln!(out, "result:")?;
    if res.finals.is_empty() {
        writeln!(out, "  (nothing: no destination)")?;
    }
    for f in &res.finals {
        let what = match &f.target {
            Target::Mailbox {
                account, detail, ..
            } => {
                let place = match &account.mailbox {
                    crate::accounts::MailboxPath::Mbox(p) => format!("mbox {}", p.display()),
                    crate::accounts::MailboxPath::Maildir(p) => format!("Maildir {}", p.display()),
                };
                let kind = if account.is_virtual {
                    "virtual account"
                } else {
                    "user"
                };
                let detail = detail
                    .as_deref()
                    .map(|d| format!(", detail +{d}"))
                    .unwrap_or_default();
                let quota = if account.quota > 0 {
                    format!(", quota {} bytes", account.quota)
                } else {
                    String::new()
                };
                format!("{place} ({kind} {}{detail}{quota})", account.login)
            }
            Target::Program { command, owner } => {
                format!("program {command} (run as {})", owner.name)
            }
            Target::File { path, owner } => format!("file {path} (written as {})", owner.name),
            Target::Remote { address, host } => format!(
                "remote: {address}, by SMTP to {}",
                host.trim_end_matches('.')
            ),
            Target::Error(r) => format!(
                "{} {} {} ({})",
                r.code,
                r.dsn,
                r.text,
                if r.temporary { "deferred" } else { "refused" }
            ),
        };
        let sender = f
            .sender
            .as_deref()
            .map(|s| format!("  [sent as from {s}]"))
            .unwrap_or_default();
        writeln!(out, "  {:<28} {what}{sender}", f.printable)?;
    }
    Ok(res.ok())
}
