//! The targets of an alias, forward, catch-all or list owner, checked
//! before they are written: programs, files and `:include:`s only where
//! the configuration allows them, `\user` only for a user that exists,
//! and an address or name on this host only when it reaches somewhere.

use crate::admin::directory::Directory;
use crate::admin::names::{parse_domain, parse_local_name, valid_local};
use crate::config::Config;
use crate::exit::{ExitCode, Failure};

/// Check one target and return it as it is to be written; `owner` is
/// what the entry is for (no pointing at itself).  A target on this host
/// must reach somewhere, as delivery resolves it in `dir`.
pub fn check_target(
    dir: &Directory,
    cfg: &Config,
    raw: &str,
    owner: &str,
) -> Result<Target, Failure> {
    let t = raw.trim();
    let bad = |why: &str| Failure::new(ExitCode::Usage, format!("target {raw:?}: {why}"));
    if t.is_empty() {
        return Err(bad("empty"));
    }
    if t.contains(['\n', '\r', '\0']) {
        return Err(bad("contains a line break"));
    }
    let plain = if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        &t[1..t.len() - 1]
    } else {
        t
    };
    let quote = |s: &str| -> Result<String, Failure> {
        if s.contains('"') || s.contains('\\') {
            return Err(bad("quotes and backslashes cannot be written into aliases"));
        }
        Ok(if s.contains([' ', '\t', ',']) {
            format!("\"{s}\"")
        } else {
            s.to_string()
        })
    };
    if let Some(cmd) = plain.strip_prefix('|') {
        if cmd.trim().is_empty() {
            return Err(bad("no program after |"));
        }
        if !cfg.allow_programs {
            return Err(Failure::new(
                ExitCode::DataErr,
                format!(
                    "target {raw:?}: programs are turned off (allow_programs = no in mailroom.conf)"
                ),
            )
            .hint("give an address instead, or set allow_programs = yes"));
        }
        return Ok(Target::special(quote(plain)?));
    }
    if plain.starts_with('/') {
        if !cfg.allow_files {
            return Err(Failure::new(
                ExitCode::DataErr,
                format!(
                    "target {raw:?}: delivery to files is turned off (allow_files = no in mailroom.conf)"
                ),
            ));
        }
        return Ok(Target::special(quote(plain)?));
    }
    if plain.len() >= 9 && plain[..9].eq_ignore_ascii_case(":include:") {
        let path = plain[9..].trim();
        if !path.starts_with('/') {
            return Err(bad(":include: needs an absolute path"));
        }
        if !cfg.paths.resolve(path).is_file() {
            return Err(Failure::new(
                ExitCode::NoUser,
                format!("target {raw:?}: {path} does not exist"),
            )
            .hint("create the list file first (one address per line)"));
        }
        return Ok(Target::special(quote(&format!(":include:{path}"))?));
    }
    if plain.len() >= 6 && plain[..6].eq_ignore_ascii_case("error:") {
        return Err(bad(
            "error: entries are not made by mailroom; write them into the virtusertable by hand",
        ));
    }
    if let Some(user) = plain.strip_prefix('\\') {
        let user = user.to_ascii_lowercase();
        if !valid_local(&user) {
            return Err(bad("not a user name"));
        }
        if dir.user(&user).is_none() {
            return Err(Failure::new(
                ExitCode::NoUser,
                format!("target {raw:?}: there is no system user {user}"),
            ));
        }
        return Ok(Target::special(format!("\\{user}")));
    }
    if let Some((local, domain)) = plain.rsplit_once('@') {
        let d = parse_domain(domain).map_err(|f| bad(&f.message))?;
        if local.is_empty()
            || local.len() > 64
            || local
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || ",;:<>()[]\"\\@".contains(c))
        {
            return Err(bad("not an address (local@domain)"));
        }
        if dir.domain(&d).is_none() {
            return Ok(Target::simple(format!("{local}@{d}")));
        }
        let local = local.to_ascii_lowercase();
        let text = format!("{local}@{d}");
        if text.eq_ignore_ascii_case(owner) {
            return Err(Failure::new(
                ExitCode::DataErr,
                format!("target {text} is {owner} itself"),
            )
            .hint(SELF_HINT));
        }
        if !dir.address_resolves(&local, &d) {
            return Err(Failure::new(
                ExitCode::NoUser,
                format!(
                    "target {text} does not exist: {d} is a domain of this host and nothing takes {text}"
                ),
            )
            .hint(format!(
                "create it first ('mailroom mailbox add {text}' or 'mailroom alias add {text} ...')"
            )));
        }
        return Ok(Target::simple(text));
    }
    let Some(name) = parse_local_name(t) else {
        return Err(bad("not an address or a local name"));
    };
    if name == owner.to_ascii_lowercase() {
        return Err(Failure::new(
            ExitCode::DataErr,
            format!("target {name} is {owner} itself"),
        )
        .hint(SELF_HINT));
    }
    if dir.name_owner(&name).is_none() {
        let mut f = Failure::new(
            ExitCode::NoUser,
            format!("target {name} is not a user, alias or mailbox account of this host"),
        );
        let prefix = format!("{name}@");
        let similar: Vec<&str> = dir
            .vut
            .iter()
            .filter(|l| l.key.starts_with(&prefix))
            .map(|l| l.written.as_str())
            .take(3)
            .collect();
        f = if similar.is_empty() {
            f.hint("give a full address, or create it first ('mailroom mailbox add NAME')")
        } else {
            f.hint(format!("did you mean {}?", similar.join(" or ")))
        };
        return Err(f);
    }
    Ok(Target::simple(name))
}

/// Check every target (an argument may hold several, `a, b`), each once.
pub fn check_targets(
    dir: &Directory,
    cfg: &Config,
    raw: &[String],
    owner: &str,
) -> Result<Vec<Target>, Failure> {
    if raw.is_empty() {
        return Err(Failure::usage("no target given").hint("name at least one TARGET"));
    }
    let mut out: Vec<Target> = Vec::new();
    for r in raw {
        // "a, b" in one argument is two targets.
        for piece in crate::aliases::split_list(r) {
            let t = check_target(dir, cfg, &piece, owner)?;
            if !out.iter().any(|o| o.text.eq_ignore_ascii_case(&t.text)) {
                out.push(t);
            }
        }
    }
    if out.is_empty() {
        return Err(Failure::usage("no target given").hint("name at least one TARGET"));
    }
    Ok(out)
}

const SELF_HINT: &str =
    "an entry cannot lead to itself (for a forward, --keep-copy keeps a copy in the mailbox)";

/// A checked target, as it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub text: String,
    /// An address or a local name: may stand alone as a virtusertable
    /// value (programs, files, includes and `\user` need aliases).
    pub simple: bool,
}

impl Target {
    pub(super) fn simple(text: String) -> Target {
        Target { text, simple: true }
    }
    pub(super) fn special(text: String) -> Target {
        Target {
            text,
            simple: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::directory::test_site;

    #[test]
    fn targets_on_this_host_must_exist() {
        let (dir, cfg) = test_site();
        let v = Directory::on_disk(&cfg);
        assert_eq!(
            check_target(&v, &cfg, "Bob", "x").unwrap(),
            Target::simple("bob".into())
        );
        assert!(check_target(&v, &cfg, "info@shop.example", "x").is_ok());
        assert_eq!(
            check_target(&v, &cfg, "nosuch@shop.example", "x")
                .unwrap_err()
                .code,
            ExitCode::NoUser
        );
        let e = check_target(&v, &cfg, "info", "x").unwrap_err();
        assert!(
            e.to_string().contains("did you mean info@shop.example"),
            "{e}"
        );
        assert!(check_target(&v, &cfg, "someone@far.example", "x").is_ok());
        assert_eq!(
            check_target(&v, &cfg, "|/usr/bin/x -y", "x").unwrap(),
            Target::special("\"|/usr/bin/x -y\"".into())
        );
        assert!(check_target(&v, &cfg, "error:nouser x", "x").is_err());
        assert!(check_target(&v, &cfg, "x", "x").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    // A target is followed as delivery follows it: an entry that exists
    // but leads nowhere (a user since removed, a loop) is no target.
    #[test]
    fn a_target_must_lead_somewhere_as_delivery_resolves_it() {
        let (dir, cfg) = test_site();
        std::fs::write(
            cfg.paths.etc_mail("virtusertable"),
            "info@shop.example\tinfo-shop\ngone@shop.example\tnosuchuser\nping@shop.example\tpong@shop.example\npong@shop.example\tping@shop.example\nfar@shop.example\tsomeone@far.example\n",
        )
        .unwrap();
        let v = Directory::on_disk(&cfg);
        for dead in ["gone@shop.example", "ping@shop.example"] {
            let e = check_target(&v, &cfg, dead, "x").unwrap_err();
            assert_eq!(e.code, ExitCode::NoUser, "{dead}: {e}");
        }
        assert!(check_target(&v, &cfg, "far@shop.example", "x").is_ok());
        assert!(check_target(&v, &cfg, "info@shop.example", "x").is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
