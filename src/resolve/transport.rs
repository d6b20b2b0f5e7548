//! Where a local mailbox's copy goes: written to its file here, or handed
//! to an LMTP server (`mailbox_transport`, overridden per domain by a
//! mailertable `lmtp:` or `local:` line).  Loaded once per resolver, when
//! first needed; delivery ([`crate::deliver`]'s `lmtp.rs`) asks it.

use crate::config::Config;
use crate::hop::LmtpServer;
use crate::table::{Syntax, Table};

/// Where each domain's mailboxes go: `mailbox_transport`, overridden per
/// domain by mailertable.
#[derive(Debug)]
pub struct Transports {
    default: Option<LmtpServer>,
    mailertable: Table,
}

impl Transports {
    pub fn load(cfg: &Config) -> Transports {
        Transports {
            default: cfg.mailbox_transport.clone(),
            mailertable: Table::open(&cfg.paths.etc_mail("mailertable"), Syntax::Makemap, false),
        }
    }

    /// The LMTP server for mailboxes of `domain`; `Ok(None)`: write the
    /// files.  A broken mailertable entry is an `Err` (the mail waits).
    pub fn for_domain(&self, domain: &str) -> Result<Option<LmtpServer>, String> {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        match crate::table::mailertable_lookup(&self.mailertable, &d) {
            Some((key, value)) => {
                let (mailer, arg) = value.split_once(':').unwrap_or((&value, ""));
                match mailer.to_ascii_lowercase().as_str() {
                    "lmtp" => LmtpServer::parse(arg)
                        .map(Some)
                        .map_err(|e| format!("mailertable {key}: {e}")),
                    "local" if arg.trim().is_empty() => Ok(None),
                    _ => Ok(self.default.clone()),
                }
            }
            None => Ok(self.default.clone()),
        }
    }
}
