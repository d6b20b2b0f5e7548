//! Who is who in the panel: the role a login gets, decided once at login
//! and kept in the session ([`super::session`]).
//!
//! * **Box admin** (manages everything, domains included): a login named
//!   alone on a line of `/etc/mail/panel-admins`, or a member of the Unix
//!   group `panel_admin_group` (default `mailadmin`; its member list in
//!   `/etc/group`, or its members' primary group).
//! * **Domain admin** of the domains named: a login named on a line of
//!   `/etc/mail/panel-admins` with domains after it; and by default the
//!   account `postmaster@DOMAIN` of each of this host's domains: a
//!   virtual account of that login, or the mailbox the virtusertable's
//!   own line `postmaster@DOMAIN` names (as `mailroom mailbox add
//!   postmaster@DOMAIN` makes it; never through a catch-all or an alias
//!   entry, which would make whoever gets a domain's stray mail its
//!   admin).
//! * **Mailbox user**: anyone else who logs in; they manage their own
//!   mailbox only.
//!
//! ## `/etc/mail/panel-admins`
//!
//! One login a line; `#` starts a comment; blank lines are ignored.
//!
//! ```text
//! # box admins: everything, domains included
//! alice
//! # domain admins: only these domains
//! info@shop.example   shop.example
//! carol               shop.example  b.example
//! ```
//!
//! A LOGIN is matched (without regard to case) against the name the user
//! logs in with, normalized as the login door does (`info%shop.example`
//! is `info@shop.example`), and against the account it logs into.  The
//! file is root's (`0644` is fine: it holds no secret); a domain that is
//! not (or no longer) one of this host's gives nothing.  The file is read
//! at each login: a change applies from the next login.

use std::path::Path;

use crate::admin::directory::Directory;
use crate::config::Config;
use crate::panel::protocol::Role;

/// The roles file.
pub const FILE: &str = "panel-admins";

/// What a login may manage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub role: Role,
    /// A domain admin's domains (lower case, this host's).
    pub domains: Vec<String>,
}

/// The role of the account `login`, logged into as `name` (normalized).
pub fn grant(cfg: &Config, admin_group: &str, name: &str, login: &str) -> Grant {
    let view = Directory::on_disk(cfg);
    let ours = |d: &str| view.domain(d).is_some();
    let is = |l: &str| l.eq_ignore_ascii_case(name) || l.eq_ignore_ascii_case(login);
    let text = std::fs::read_to_string(cfg.paths.etc_mail(FILE)).unwrap_or_default();
    let mut domains: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(who) = words.next() else { continue };
        if !is(who) {
            continue;
        }
        let named: Vec<String> = words.map(|d| d.to_ascii_lowercase()).collect();
        if named.is_empty() {
            return admin();
        }
        domains.extend(named.into_iter().filter(|d| ours(d)));
    }
    if in_group(cfg, admin_group, login) {
        return admin();
    }
    // postmaster@DOMAIN: its virtual account, or the mailbox its own
    // virtusertable line names.
    for n in [name, login] {
        let Some(d) = n.strip_prefix("postmaster@") else {
            continue;
        };
        let own_line = view
            .vut_get(n)
            .is_some_and(|(v, _)| v.trim().eq_ignore_ascii_case(login));
        if ours(d) && (n.eq_ignore_ascii_case(login) || own_line) {
            domains.push(d.to_string());
        }
    }
    domains.sort();
    domains.dedup();
    if domains.is_empty() {
        Grant {
            role: Role::User,
            domains,
        }
    } else {
        Grant {
            role: Role::DomainAdmin,
            domains,
        }
    }
}

fn admin() -> Grant {
    Grant {
        role: Role::Admin,
        domains: Vec::new(),
    }
}

/// Is the system user `login` a member of `group` (its list in
/// `/etc/group`, or its primary group)?  Virtual logins never are.
fn in_group(cfg: &Config, group: &str, login: &str) -> bool {
    if group.is_empty() || login.contains('@') {
        return false;
    }
    let group_file = cfg.paths.resolve("/etc/group");
    let text = std::fs::read_to_string(&group_file).unwrap_or_default();
    let mut gid = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 4 && f[0] == group {
            if f[3].split(',').any(|m| m.trim() == login) {
                return true;
            }
            gid = f[2].parse::<u32>().ok();
        }
    }
    if group_file == Path::new("/etc/group") && gid.is_none() {
        // Groups from NSS (LDAP, sssd) on the real system.
        if let Ok(Some(g)) = nix::unistd::Group::from_name(group) {
            if g.mem.iter().any(|m| m == login) {
                return true;
            }
            gid = Some(g.gid.as_raw());
        }
    }
    let users = crate::users::UserDb::for_root(&cfg.paths);
    gid.is_some_and(|g| users.by_name(login).is_some_and(|u| u.gid == g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_the_group_and_postmaster_decide_the_role() {
        let (dir, cfg) = crate::admin::directory::test_site();
        let w = |rel: &str, text: &str| std::fs::write(dir.join(rel), text).unwrap();
        w(
            "etc/mail/panel-admins",
            "# admins\nAlice\ncarol shop.example nowhere.example # a comment\n\n",
        );
        w(
            "etc/group",
            "mail:x:8:\nmailadmin:x:900:dave\nstaff:x:50:\n",
        );
        let g = |name: &str, login: &str| grant(&cfg, "mailadmin", name, login);
        assert_eq!(g("alice", "alice").role, Role::Admin);
        let carol = g("carol", "carol");
        assert_eq!(carol.role, Role::DomainAdmin);
        // Only this host's domains.
        assert_eq!(carol.domains, ["shop.example"]);
        assert_eq!(g("dave", "dave").role, Role::Admin);
        // A virtual postmaster@ is its domain's admin.
        let pm = g("postmaster@shop.example", "postmaster@shop.example");
        assert_eq!(
            (pm.role, pm.domains),
            (Role::DomainAdmin, vec!["shop.example".into()])
        );
        // Logging in as postmaster@ through an entry that is not its own
        // mailbox's line gives nothing.
        assert_eq!(g("postmaster@shop.example", "bob").role, Role::User);
        assert_eq!(
            g("postmaster@nowhere.example", "postmaster@nowhere.example").role,
            Role::User
        );
        assert_eq!(g("info@shop.example", "info-shop").role, Role::User);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
