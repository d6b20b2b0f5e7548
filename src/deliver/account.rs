//! A mailbox copy: spamc when configured, then the filter rules, which
//! pick the inbox, a folder, nowhere (logged) or a 5.7.1 refusal, and may
//! add forwards (reported only once the local copy is safe); then the
//! append to the mbox or the Maildir, as the mailbox's owner, and back
//! as root the quota warning if the copy took the mailbox past a
//! threshold ([`crate::quota::warning`]) — or, for a mailbox whose
//! transport is LMTP, the copy to send (`lmtp.rs`; the LMTP server keeps
//! that mailbox's quota).

use std::path::Path;
use std::time::Duration;

use super::as_user::{as_user, mail_gid, switches_users};
use super::lmtp::{self, Pending};
use super::{Outcome, Request, mailbox_address, outcome};
use crate::accounts::{Account, MailboxPath};
use crate::config::Config;
use crate::hop::LmtpServer;
use crate::mailbox::{self, Failure, maildir, mbox};

/// What became of a mailbox copy.
pub(super) enum Copy {
    /// What it is, the outcome, and the addresses the filter forwards to.
    Done(String, Outcome, Vec<String>),
    /// What it is, and the copy an LMTP transaction will deliver.
    Lmtp(String, Pending),
}

/// A mailbox copy for recipient `rcpt` (`sole`: the mailbox is all it
/// leads to): spamc, the filters, then the inbox, a folder, nowhere or a
/// bounce.  `transport`: where the mailbox's copies go (`Ok(None)`: its
/// files); a quota warning queued goes to `warning`.
#[allow(clippy::too_many_arguments)]
pub(super) fn to_account(
    cfg: &Config,
    req: &Request<'_>,
    (rcpt, sole): (&str, bool),
    account: &Account,
    sender: &str,
    delivered_to: &[String],
    transport: Result<Option<LmtpServer>, String>,
    warning: &mut Option<crate::queue::QueueId>,
) -> Copy {
    use crate::filter::{self, Place, files::Loaded};
    let qid = req.queue_id;
    let addr = mailbox_address(account, &cfg.hostname);
    let inbox = match &account.mailbox {
        MailboxPath::Mbox(p) => format!("mailbox {}", p.display()),
        MailboxPath::Maildir(p) => format!("maildir {}", p.display()),
    };
    if delivered_to.iter().any(|d| *d == addr.to_ascii_lowercase()) {
        let fail = Failure::perm("5.4.6", format!("mail forwarding loop for {addr}"));
        return Copy::Done(inbox, Outcome::Failed(fail), Vec::new());
    }
    let lmtp = match transport {
        Ok(t) => t,
        // A broken mailertable line: the mail waits for the fix.
        Err(e) => {
            return Copy::Done(
                inbox,
                Outcome::Deferred(Failure::temp("4.3.5", e)),
                Vec::new(),
            );
        }
    };
    let inbox = match &lmtp {
        Some(dest) => format!("mailbox {addr} by {dest}"),
        None => inbox,
    };
    use crate::message::Header;
    let mut header = Header::parse(&req.message.header_bytes().unwrap_or_default());
    // This host's Authentication-Results field, read from the message as
    // it was queued: spamd may rewrite the header (report_safe wraps spam
    // keeping only a few of its fields), and the field is ours either way.
    let auth = crate::inbound::results::ours(&header, &crate::inbound::authserv_id(cfg));
    let mut scanned: Option<crate::mailbox::Message> = None;
    if let Some(spamc) = &cfg.spamc {
        match filter::spamc::scan(
            spamc,
            Duration::from_secs(cfg.spamc_timeout),
            switches_users(cfg),
            &account.owner,
            &account.login,
            req.message,
        ) {
            Ok(m) => {
                header = Header::parse(&m.header_bytes().unwrap_or_default());
                scanned = Some(m);
            }
            Err(why) => crate::log::warning(
                qid,
                &format!("spamc: {why}; delivering to {addr} unscanned"),
            ),
        }
    }
    // From here on the message is the scanned one.
    let msg = scanned.as_ref().unwrap_or(req.message);
    let scanned_req = Request {
        message: msg,
        ..*req
    };
    let req = &scanned_req;
    let decision = match filter::files::load(cfg, account, qid) {
        Loaded::Broken(e) => {
            crate::log::warning(
                qid,
                &format!("filter: {e}; rules not applied, delivered to the inbox of {addr}"),
            );
            filter::Decision {
                place: Place::Inbox,
                by: None,
                forwards: Vec::new(),
            }
        }
        Loaded::Rules(sets) => {
            let recipients = [
                rcpt.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string(),
                addr.clone(),
            ];
            let refs: Vec<&filter::Rules> = sets.iter().collect();
            filter::evaluate(
                &refs,
                &filter::Facts {
                    header: &header,
                    sender,
                    recipients: &recipients,
                    size: msg.len(),
                    auth: auth.as_ref(),
                },
            )
        }
    };
    let by = decision.by.as_deref().unwrap_or("");
    // What the log lines add: the spam score, and the door's quarantine.
    let mut notes = filter::spam_score(&header)
        .map(|s| format!(", spam score {s}"))
        .unwrap_or_default();
    if let Some(a) = auth.as_ref().filter(|a| filter::quarantine::quarantined(a)) {
        let from = a.results("dmarc").find_map(|m| m.get("header.from"));
        notes.push_str(&format!(
            ", DMARC quarantine for {}",
            from.unwrap_or("an unknown domain")
        ));
    }
    let prepend = format!("Return-Path: <{sender}>\nDelivered-To: {addr}\n");
    let trace_id = req
        .redelivery
        .then(|| msg.header_bytes().ok())
        .flatten()
        .and_then(|h| mailbox::first_received_id(&h));
    let already = trace_id.as_deref().map(|id| {
        (
            mailbox::Already {
                id,
                delivered_to: &addr,
            },
            req.arrival,
        )
    });
    if let (Some(dest), Place::Inbox | Place::Folder(_)) = (lmtp, &decision.place) {
        let folder = match &decision.place {
            Place::Folder(name) => {
                crate::log::info(
                    qid,
                    &format!("filter: {addr}: into folder {name} by {by}{notes}"),
                );
                Some(name.as_str())
            }
            _ => None,
        };
        let what = match folder {
            Some(name) => format!("folder {name} of {inbox}"),
            None => inbox,
        };
        let pending = Pending {
            report: 0,
            dest,
            login: account.login.clone(),
            rcpt: lmtp::rcpt_address(&addr, folder),
            sender: sender.to_string(),
            scanned,
            forwards: decision.forwards,
        };
        return Copy::Lmtp(what, pending);
    }
    // Quota warnings: what the mailbox was before this copy, and the
    // limit it is held to (none for a warning of its own).
    let quota = match &decision.place {
        Place::Inbox | Place::Folder(_) => crate::quota::warning::before(cfg, account, qid),
        _ => None,
    };
    let limit = quota.as_ref().map_or(account.quota, |q| q.limit());
    let (what, r) = match &decision.place {
        Place::Reject(text) => {
            crate::log::info(qid, &format!("filter: {addr}: rejected by {by}{notes}"));
            let fail = Failure::perm("5.7.1", text.clone());
            return Copy::Done(
                format!("rejected by {by}"),
                Outcome::Failed(fail),
                Vec::new(),
            );
        }
        Place::Nowhere => {
            let what = if decision.forwards.is_empty() {
                format!("discarded by {by}")
            } else {
                format!("not kept, forwarded by {by}")
            };
            crate::log::info(qid, &format!("filter: {addr}: {what}{notes}"));
            (what, Ok(()))
        }
        Place::Inbox => (
            inbox,
            to_mailbox(
                cfg,
                account,
                None,
                sender,
                prepend.as_bytes(),
                req,
                limit,
                already,
            ),
        ),
        Place::Folder(name) => {
            crate::log::info(
                qid,
                &format!("filter: {addr}: into folder {name} by {by}{notes}"),
            );
            (
                format!("folder {name} of {inbox}"),
                to_mailbox(
                    cfg,
                    account,
                    Some(name),
                    sender,
                    prepend.as_bytes(),
                    req,
                    limit,
                    already,
                ),
            )
        }
    };
    if r.is_ok()
        && let Some(q) = &quota
    {
        // What the copy adds to what the quota counts (an mbox's folders
        // are not counted).
        let counted = match (&account.mailbox, &decision.place) {
            (MailboxPath::Mbox(_), Place::Folder(_)) => None,
            (MailboxPath::Mbox(_), _) => {
                Some(mbox::from_line(sender, 0).len() as u64 + prepend.len() as u64 + msg.len() + 1)
            }
            (MailboxPath::Maildir(_), _) => Some(prepend.len() as u64 + msg.len()),
        };
        // Named by the address this copy came for when that address is
        // this mailbox's alone (the one its owner knows: info@shop.example,
        // not the user info-shop), else by the mailbox's own.
        let rcpt = rcpt.trim().trim_start_matches('<').trim_end_matches('>');
        let known_as = if sole && rcpt.contains('@') && !rcpt.starts_with('\\') {
            rcpt
        } else {
            &addr
        };
        *warning = q.after(cfg, account, known_as, counted, qid);
    }
    let outcome = outcome(cfg, req, r);
    let forwards = if outcome == Outcome::Delivered {
        decision.forwards
    } else {
        Vec::new()
    };
    Copy::Done(what, outcome, forwards)
}

/// Append to an account's mbox, or deliver into its Maildir; into
/// `folder` instead of the inbox when given.  Folders have the inbox's
/// locking and fsync rules; a Maildir's quota counts its folders, an
/// mbox's quota only the inbox file (folders live under the user's home
/// and its file-system quota).  `quota`: the limit this copy is held to
/// (0: none).
#[allow(clippy::too_many_arguments)]
fn to_mailbox(
    cfg: &Config,
    account: &Account,
    folder: Option<&str>,
    sender: &str,
    prepend: &[u8],
    req: &Request<'_>,
    quota: u64,
    already: Option<(mailbox::Already<'_>, i64)>,
) -> Result<(), Failure> {
    let msg = req.message;
    let keep = req.child_keeps();
    let owner = &account.owner;
    let switch = switches_users(cfg);
    let expect_uid = if switch { Some(owner.uid) } else { None };
    let lock_timeout = Duration::from_secs(cfg.mailbox_lock_timeout);
    let host = cfg.hostname.clone();
    match &account.mailbox {
        MailboxPath::Mbox(inbox) => {
            let (path, folders, quota, create_mode) = match folder {
                None => (inbox.clone(), None, quota, 0o660),
                Some(name) => {
                    let Some(dir) = account.mbox_folders(&cfg.paths) else {
                        return Err(Failure::temp("4.3.0", "no folder directory"));
                    };
                    let path = dir.join(name);
                    let parent = path.parent().map(Path::to_path_buf);
                    (path, parent, 0, 0o600)
                }
            };
            // localtime(3) before the fork (see as_user).
            let from = mbox::from_line(sender, crate::date::now());
            as_user(
                &keep,
                switch,
                (&owner.name, owner.uid, owner.gid),
                // Group mail (for the spool's dotlocks) matters only to a
                // process that switches users: skip the lookup otherwise.
                &if switch { mail_gid() } else { Vec::new() },
                Some(&path),
                |in_process| {
                    if folders.is_none()
                        && account.is_virtual
                        && let Some(parent) = path.parent()
                        && !parent.exists()
                    {
                        std::fs::create_dir_all(parent).map_err(|e| {
                            Failure::from_io(&format!("cannot create {}", parent.display()), &e)
                        })?;
                    }
                    if let Some(dir) = &folders {
                        mailbox::ensure_dir(dir, 0o700).map_err(|e| {
                            Failure::from_io(&format!("cannot create {}", dir.display()), &e)
                        })?;
                    }
                    mbox::append(
                        &path,
                        &mbox::Append {
                            from_line: &from,
                            prepend,
                            message: msg,
                            quota,
                            lock_timeout,
                            owner: expect_uid,
                            create_mode,
                            in_process_turn: in_process,
                            already: already.map(|(a, _)| a),
                        },
                    )
                    .map(|_| ())
                },
            )
        }
        MailboxPath::Maildir(dir) => {
            let dir = dir.clone();
            as_user(
                &keep,
                switch,
                (&owner.name, owner.uid, owner.gid),
                &[],
                None,
                |_| {
                    let d = maildir::Deliver {
                        prepend,
                        message: msg,
                        quota,
                        host: &host,
                        already,
                    };
                    match folder {
                        None => maildir::deliver(&dir, &d),
                        Some(name) => maildir::deliver_folder(&dir, name, &d),
                    }
                    .map(|_| ())
                },
            )
        }
    }
}
