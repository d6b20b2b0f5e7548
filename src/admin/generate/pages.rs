//! The manual pages mailroom writes from its own sources, so that they
//! cannot drift from the code:
//!
//! * `sendmail.8` (also read as mailq and newaliases), `qrun.8`,
//!   `deliver.8`, `pop3d.8` — from the man-like text of each program in
//!   `man/NAME.8.txt`, the one place their text is kept;
//! * `mailroom.conf.5` — every key, its default and meaning, from
//!   [`crate::conf_keys`], the table `mailroom check` uses;
//! * `mailroom-filter.5` — the rule language, from the documentation of
//!   [`crate::filter`] and [`crate::filter::files`], and the DMARC and
//!   spam rules' keys from [`crate::conf_keys`];
//! * `mailroom-log.5` — every log line, from [`crate::log::catalog`].

use std::io;
use std::path::{Path, PathBuf};

use super::roff::{self, Page, escape, inline};
use crate::log::Level;
use crate::log::catalog::{self, LINES, Piece, Qid};

/// (page name, section, source with the man-like header).
const PROGRAMS: &[(&str, &str, &str)] = &[
    ("sendmail", "8", include_str!("../../../man/sendmail.8.txt")),
    ("qrun", "8", include_str!("../../../man/qrun.8.txt")),
    ("deliver", "8", include_str!("../../../man/deliver.8.txt")),
    ("pop3d", "8", include_str!("../../../man/pop3d.8.txt")),
];

/// Write every page into `dir`.
pub fn write_all(dir: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut pages: Vec<(String, String)> = PROGRAMS
        .iter()
        .map(|(name, section, source)| {
            (
                format!("{name}.{section}"),
                roff::program_page(name, section, source),
            )
        })
        .collect();
    pages.push(("mailroom.conf.5".into(), conf_page()));
    pages.push(("mailroom-filter.5".into(), filter_page()));
    pages.push(("mailroom-log.5".into(), log_page()));
    for (file, text) in pages {
        let path = dir.join(file);
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(())
}

/// mailroom.conf(5).
pub fn conf_page() -> String {
    let mut p = Page::new("mailroom.conf", "5", "File Formats");
    p.section("NAME");
    p.raw("mailroom.conf \\- mailroom's own settings");
    p.section("SYNOPSIS");
    p.raw("/etc/mail/mailroom.conf");
    p.section("DESCRIPTION");
    p.paragraph(
        "mailroom needs no configuration file: every key has a default, and \
         the file may be missing.  Each line is `key = value`; lines starting \
         with `#` are comments, blank lines are ignored, keys are \
         case-insensitive, and a key given twice takes its last value.  A \
         known key with a bad value is an error naming the file and the line \
         (the programs exit 78, or answer a temporary failure); an unknown \
         key is reported by `mailroom check` and otherwise ignored.  Sizes \
         take K, M and G suffixes; durations s, m, h, d and w (`1h30m`); \
         yes/no settings also take true/false, on/off, 1/0.",
    );
    p.paragraph(
        "The sendmail files stay where sendmail keeps them: \
         /etc/mail/aliases, virtusertable, local-host-names, \
         virtuser-domains, mailertable, access and trusted-users.  Nothing \
         needs restarting after an edit: each program reads the file when \
         it starts.",
    );
    p.section("KEYS");
    p.paragraph("Each key with its default.");
    for s in crate::conf_keys::SECTIONS {
        p.subsection(s.title);
        for (key, default, meaning) in s.keys {
            p.item(
                &format!("\\fB{}\\fR = \\fI{}\\fR", escape(key), escape(default)),
                &sentence(meaning),
            );
        }
    }
    p.section("FILES");
    p.item(
        "\\fB/etc/mail/mailroom.conf\\fR",
        "The file; installed with every key commented out at its default.",
    );
    p.section("SEE ALSO");
    p.raw(&inline(
        "mailroom(8), sendmail(8), qrun(8), pop3d(8), mailroom-filter(5), mailroom-log(5)",
    ));
    p.finish()
}

/// A table's meaning as a sentence: with a final full stop.
fn sentence(s: &str) -> String {
    if s.ends_with('.') {
        s.to_string()
    } else {
        format!("{s}.")
    }
}

/// mailroom-filter(5).
pub fn filter_page() -> String {
    let mut p = Page::new("mailroom-filter", "5", "File Formats");
    p.section("NAME");
    p.raw("mailroom-filter \\- rules that file, forward or refuse mail at delivery");
    p.section("SYNOPSIS");
    p.raw("/etc/mail/filter\n.br\n/etc/mail/filters/\\fILOGIN\\fR\n.br\n~/.mailroom\\-filter");
    p.section("DESCRIPTION");
    p.paragraph(
        "Every mailbox delivery runs the built-in DMARC and spam rules, then \
         these rule files, then stores the message where the last matching \
         rule said: the inbox, a folder, nowhere, or back to the sender.  \
         `mailroom filter set ADDRESS --file FILE` installs a checked copy as \
         /etc/mail/filters/LOGIN; `mailroom check` reports broken or ignored \
         files.",
    );
    // The language, from the filter module's own documentation.
    let module = roff::doc_header(include_str!("../../filter/mod.rs"));
    let format = module
        .find("## The file format")
        .map(|i| &module[i..])
        .unwrap_or(&module);
    roff::markdown(&mut p, format);
    p.section("WHERE RULES COME FROM");
    roff::markdown(
        &mut p,
        &roff::doc_header(include_str!("../../filter/files.rs")),
    );
    p.section("THE DMARC RULE");
    p.paragraph(
        "Mail from the internet carries this host's Authentication-Results: \
         field (see auth above).  Where it says the SMTP server quarantined \
         the message (dmarc=fail ... policy.dmarc=quarantine), the DMARC rule \
         files it into spam_folder before the files run; a rule file can take \
         it back out with keep.  The SMTP server decides what it quarantines; \
         the keys, in mailroom.conf(5):",
    );
    for key in [
        "dmarc_quarantine",
        "dmarc_reject",
        "own_domain_forgery",
        "authserv_id",
    ] {
        key_item(&mut p, key);
    }
    p.section("THE SPAM RULE AND SPAMC");
    p.paragraph(
        "Before the files, mail whose X-Spam-Status: score= (else X-Spam-Score:) \
         reaches a threshold is filed or discarded; a rule file can take it \
         back out with keep.  The keys, in mailroom.conf(5):",
    );
    for key in [
        "spam_folder_score",
        "spam_discard_score",
        "spam_folder",
        "spamc",
        "spamc_timeout",
    ] {
        key_item(&mut p, key);
    }
    p.paragraph(
        "spamc is given the message as it was queued, this host's \
         Authentication-Results: field included.  For SpamAssassin to use \
         it, load its AuthRes plugin (v401.pre) and set \
         authres_trusted_authserv to this host's authserv_id and \
         authres_networks all in local.cf (safe here: a field arriving with \
         that id is removed).  A field spamd drops (report_safe) still \
         counts for the DMARC rule and auth tests.",
    );
    p.section("FOLDERS");
    p.paragraph(
        "Folders are what Dovecot's IMAP shows: for Maildir users Maildir++ \
         ~/Maildir/.NAME/ (`Lists/Weekly` is .Lists.Weekly/); for mbox users \
         ~/mail/NAME, or without a home /var/mail/LOGIN.folders/NAME.  pop3d \
         shows only the inbox.",
    );
    p.section("SEE ALSO");
    p.raw(&inline(
        "mailroom-filter(8), deliver(8), mailroom.conf(5), mailroom-log(5), spamc(1)",
    ));
    p.finish()
}

/// A mailroom.conf key as an item: name, default, meaning.
fn key_item(p: &mut Page, key: &str) {
    if let Some((k, default, meaning)) = crate::conf_keys::all().find(|(k, _, _)| *k == key) {
        p.item(
            &format!("\\fB{}\\fR = \\fI{}\\fR", escape(k), escape(default)),
            &sentence(meaning),
        );
    }
}

/// One catalogue shape in roff: literal text in bold, variables in
/// italics, optional parts in brackets.
fn shape_roff(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Text(t) => format!("\\fB{}\\fR", escape(t)),
            Piece::Var(v) => format!("\\fI{}\\fR", escape(v)),
            Piece::Optional(inner) => format!("[{}]", shape_roff(inner)),
        })
        .collect()
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Err => "err",
        Level::Warning => "warning",
        Level::Notice => "notice",
        Level::Info => "info",
    }
}

/// The sections of mailroom-log(5): (program, title).
const LOG_GROUPS: &[(&str, &str)] = &[
    ("sendmail", "sendmail: submission, mailq, newaliases"),
    ("sendmail -bs", "sendmail -bs: the SMTP server"),
    ("qrun", "qrun: the queue runner"),
    ("deliver", "local delivery"),
    ("panel", "panel: the web panel's front end"),
    ("pop3d", "pop3d: the POP3 server"),
    ("checkpassword", "checkpassword: Dovecot's login check"),
    ("panel-helper", "panel-helper: the web panel's root side"),
    ("mailroom", "mailroom: the admin command"),
    ("*", "every program that reads the sendmail tables"),
];

/// The section of mailroom-log(5) a line goes in: its first program's,
/// or the last for lines most programs write.
fn log_group(l: &catalog::Line) -> &'static str {
    if l.programs.len() > 3 {
        "*"
    } else {
        l.programs[0]
    }
}

/// mailroom-log(5).
pub fn log_page() -> String {
    let mut p = Page::new("mailroom-log", "5", "File Formats");
    p.section("NAME");
    p.raw("mailroom-log \\- the lines mailroom's programs write to the mail log");
    p.section("DESCRIPTION");
    p.paragraph(
        "mailroom logs to syslog(3), facility mail, in sendmail 8's format, \
         so that tools written for sendmail's log (logwatch, fail2ban, \
         pflogsumm's cousins) read it; with `log = FILE` in mailroom.conf(5) \
         the same lines are appended to FILE in syslog's layout.  Each line \
         is `TAG[PID]: ` followed by the text below; a line about a queued \
         message starts with its queue id, `QID: `.",
    );
    p.paragraph(
        "The tag is `sendmail` for submission, mailq and newaliases, for the \
         SMTP server (sendmail -bs) and for the queue runner with the local \
         deliveries it makes, as with sendmail 8; `pop3d` for the POP3 \
         server; `mailroom` for the admin command; `mailroom-deliver` for the \
         deliver command run by hand.",
    );
    p.paragraph(
        "Below, every line each program can write: literal text in bold, \
         variable parts in italics, parts in brackets only sometimes there; \
         then its syslog level and what it means.  A line written by \
         several programs is listed under the first one named.  This list is \
         generated from the code's own catalogue (src/log/catalog.rs), which \
         a test keeps equal to what the code writes.",
    );
    // Log lines are copied and searched for: no hyphens added, no
    // stretched spaces.
    p.raw(".nh\n.ad l");
    let mut shown = 0;
    for (program, title) in LOG_GROUPS {
        let lines: Vec<&catalog::Line> =
            LINES.iter().filter(|l| log_group(l) == *program).collect();
        if lines.is_empty() {
            continue;
        }
        p.section(title);
        for l in lines {
            shown += 1;
            let qid = match l.qid {
                Qid::Never => String::new(),
                Qid::Always => "\\fIQID\\fR\\fB: \\fR".to_string(),
                Qid::IfAny => "[\\fIQID\\fR\\fB: \\fR]".to_string(),
            };
            let also = if l.programs.len() > 1 {
                format!("; also {}", l.programs[1..].join(", "))
            } else {
                String::new()
            };
            p.item(
                &format!("{qid}{}", shape_roff(&catalog::pieces(l.shape))),
                &format!("({}{also}) {}", level_name(l.level), l.meaning),
            );
        }
    }
    debug_assert_eq!(shown, LINES.len(), "a program missing from the groups");
    p.section("SEE ALSO");
    p.raw(&inline(
        "sendmail(8), qrun(8), deliver(8), pop3d(8), mailroom(8), mailroom.conf(5), syslog(3)",
    ));
    p.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_on_the_configuration_page() {
        let page = conf_page();
        for (key, _, _) in crate::conf_keys::all() {
            assert!(
                page.contains(&format!("\\fB{}\\fR = ", escape(key))),
                "{key}"
            );
        }
        assert!(page.contains("\\fBqueue_return\\fR = \\fI5d\\fR"), "{page}");
    }

    #[test]
    fn every_log_line_is_on_the_log_page_under_a_program() {
        let page = log_page();
        for l in LINES {
            let shape = shape_roff(&catalog::pieces(l.shape));
            assert!(page.contains(&shape), "{}", l.shape);
        }
        assert!(
            page.contains("\\fIQID\\fR\\fB: \\fR\\fBfrom=\\fR\\fISENDER\\fR"),
            "{page}"
        );
        for l in LINES {
            assert!(
                LOG_GROUPS.iter().any(|(g, _)| *g == log_group(l)),
                "{}",
                l.shape
            );
        }
    }

    #[test]
    fn program_pages_come_from_their_manual_text() {
        let page = roff::program_page("sendmail", "8", include_str!("../../../man/sendmail.8.txt"));
        assert!(page.contains(".TH sendmail 8"), "{page}");
        assert!(
            page.contains("sendmail, mailq, newaliases \\- submit mail"),
            "{page}"
        );
        assert!(page.contains(".TP\n\\fB\\-t\\fR\n"), "{page}");
        assert!(page.contains("\\fBqrun\\fR(8)"), "{page}");
        for (name, _, source) in PROGRAMS {
            let header = source;
            for s in ["NAME", "SYNOPSIS", "DESCRIPTION", "EXIT STATUS", "SEE ALSO"] {
                assert!(header.lines().any(|l| l == s), "{name}: no {s}");
            }
        }
    }

    #[test]
    fn the_filter_page_holds_the_grammar_and_the_spam_keys() {
        let page = filter_page();
        assert!(page.contains(".SH \"THE FILE FORMAT\""), "{page}");
        assert!(page.contains("spam\\-score"), "{page}");
        assert!(
            page.contains("\\fBspam_folder_score\\fR = \\fI5\\fR"),
            "{page}"
        );
        assert!(page.contains(".SH \"WHERE RULES COME FROM\""), "{page}");
        assert!(page.contains("auth spf|dkim|dmarc"), "{page}");
        assert!(page.contains(".SH \"THE DMARC RULE\""), "{page}");
        assert!(
            page.contains("\\fBdmarc_quarantine\\fR = \\fIquarantine\\fR"),
            "{page}"
        );
    }
}
