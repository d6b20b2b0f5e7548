//! The files around the tables: modes of `/etc/mail`, the DKIM keys, the
//! outbound limits' settings and table.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::Findings;
use crate::config::Config;

pub(super) fn check_modes(cfg: &Config, f: &mut Findings) {
    let dir = cfg.paths.etc_mail("");
    let mut paths = vec![dir.clone()];
    if let Ok(rd) = std::fs::read_dir(&dir) {
        let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        paths.extend(entries);
    }
    for p in paths {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.file_type().is_symlink() {
            continue;
        }
        let mode = m.mode() & 0o7777;
        if mode & 0o002 != 0 {
            f.warn(
                &p,
                None,
                format!(
                    "world-writable (mode {mode:04o}): anyone can change where mail goes; chmod o-w"
                ),
            );
        } else if mode & 0o020 != 0 && !(m.is_dir() && mode & 0o1000 != 0) {
            f.warn(
                &p,
                None,
                format!("group-writable (mode {mode:04o}): every member of its group can change where mail goes; chmod g-w"),
            );
        }
    }
}

/// DKIM keys: each must load (else its domain's mail waits in the queue)
/// and be private.
pub(super) fn check_dkim(cfg: &Config, f: &mut Findings) {
    let top = crate::dkim::keys_dir(cfg);
    let Ok(rd) = std::fs::read_dir(&top) else {
        return;
    };
    let mut domains: Vec<(String, PathBuf)> = rd
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, _)| !n.starts_with('.'))
        .collect();
    domains.sort();
    for (domain, dir) in domains {
        if !crate::dkim::valid_domain(&domain) {
            f.warn(&dir, None, "not a domain name: its keys are never used");
            continue;
        }
        let files = match crate::dkim::key_files(cfg, &domain) {
            Ok(files) => files,
            Err(e) => {
                f.error(
                    &dir,
                    None,
                    format!(
                        "cannot read it: {} (run as root)",
                        crate::exit::io_reason(&e)
                    ),
                );
                continue;
            }
        };
        for (selector, path) in files {
            if let Err(e) = crate::dkim::load_key(&selector, &path) {
                let e = e
                    .strip_prefix(&format!("{}: ", path.display()))
                    .unwrap_or(&e)
                    .to_string();
                f.error(
                    &path,
                    None,
                    format!("{e}: mail from {domain} stays queued until this is fixed"),
                );
            }
            if let Ok(m) = std::fs::metadata(&path)
                && m.mode() & 0o077 != 0
            {
                f.warn(
                    &path,
                    None,
                    format!(
                        "private key readable by others (mode {:04o}); chmod 600",
                        m.mode() & 0o7777
                    ),
                );
            }
        }
    }
}

/// The outbound limits: their `mailroom.conf` settings and each entry of
/// `/etc/mail/limits`, read as the queue's door and the queue runner read
/// them (a wrong one is ignored there, with a log line per message).
pub(super) fn check_limits(cfg: &Config, conf_path: &Path, f: &mut Findings) {
    let settings = match crate::limits::Settings::from_config(cfg) {
        Ok(s) => s,
        Err(e) => {
            f.error(conf_path, None, e.to_string());
            return;
        }
    };
    if settings.enabled && cfg.paths.is_system() {
        // Without its directory no submitter can count (sendmail is not
        // root and cannot make it): mail would go out unlimited.  (In a
        // private root everything is the running user's: made on demand.)
        let dir = crate::limits::counters_dir(cfg);
        match std::fs::metadata(&dir) {
            Err(_) => f.error(
                &dir,
                None,
                "missing: outbound mail is not counted or limited; make install makes it (install -d -m 2770, root:mqueue)",
            ),
            Ok(m) if m.mode() & 0o070 != 0o070 => f.error(
                &dir,
                None,
                format!(
                    "mode {:04o}: group mqueue cannot write it, so outbound mail is not counted or limited; chmod 2770",
                    m.mode() & 0o7777
                ),
            ),
            Ok(_) => {}
        }
    }
    if let Err(e) = crate::runner::pacing::Pacer::new(cfg, false) {
        f.error(conf_path, None, e.to_string());
    }
    let path = cfg.paths.etc_mail("limits");
    let Some(text) = super::read(&path, f) else {
        return;
    };
    let parsed = crate::table::parse(crate::table::Syntax::Makemap, text.as_bytes());
    for p in &parsed.problems {
        f.error(&path, Some(p.line), &p.text);
    }
    for e in &parsed.entries {
        if let Err(why) = settings.check_entry(&e.key, &e.value) {
            f.error(&path, Some(e.line), why);
        }
    }
}

/// The sender checks' settings, read as the SMTP server reads them, and
/// the resolver a blocklist needs: Spamhaus and others answer public
/// resolvers with error codes, never listings.
pub(super) fn check_inbound(cfg: &Config, conf_path: &Path, f: &mut Findings) {
    let settings = match crate::inbound::Settings::from_config(cfg) {
        Ok(s) => s,
        Err(e) => {
            f.error(conf_path, None, e.to_string());
            return;
        }
    };
    if !settings.enabled {
        return;
    }
    let resolv = cfg.paths.resolve("/etc/resolv.conf");
    let servers: Vec<String> = std::fs::read_to_string(&resolv)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(|s| s.trim().to_string())
        .collect();
    if servers.is_empty() && cfg.paths.is_system() {
        f.warn(
            &resolv,
            None,
            "no nameserver: the sender checks (SPF, DKIM, DMARC) cannot look anything up, so mail from the internet gets 451 4.7.0 (dns_failure = tempfail)",
        );
    }
    const PUBLIC: &[&str] = &[
        "8.8.8.8",
        "8.8.4.4",
        "1.1.1.1",
        "1.0.0.1",
        "9.9.9.9",
        "149.112.112.112",
        "208.67.222.222",
        "208.67.220.220",
        "2001:4860:4860::8888",
        "2606:4700:4700::1111",
    ];
    if !settings.blocklists.is_empty()
        && let Some(public) = servers.iter().find(|s| PUBLIC.contains(&s.as_str()))
    {
        f.warn(
            &resolv,
            None,
            format!(
                "nameserver {public} is a public resolver: blocklists such as Spamhaus answer it with error codes (127.255.255.254), never listings; run a caching resolver of your own (apt install unbound; nameserver 127.0.0.1)"
            ),
        );
    }
}
