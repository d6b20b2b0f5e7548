//! Who may touch which object: asked for every object a request names,
//! reads included.  Deny by default; an object a session may not touch
//! gets the answer a name that does not exist gets (`missing`), so a
//! domain admin guessing at another domain learns nothing.
//!
//! * A box admin may touch everything.
//! * A domain admin: a domain of theirs; an address of one of their
//!   domains (aliases, autoreplies, lists, new mailboxes); and a mailbox
//!   only when it is wholly of their domains — a virtual account of one
//!   of them, or a mailbox-only system user (home `/nonexistent`, a
//!   nologin shell: what `mailroom mailbox add` makes) whose every
//!   virtusertable address and whose own address (its GECOS) are of
//!   their domains.  A login account that one of their addresses happens
//!   to lead to (the host's `bob`) is not theirs: its forward is bob's
//!   mail for every domain.
//! * A mailbox user: their own mailbox, named by the name they log in
//!   with or their account's login; nothing else.

use std::collections::HashMap;

use super::session::Session;
use crate::admin::mailbox::{Found, Tables};
use crate::config::Config;
use crate::panel::protocol::Role;

/// The domain of `address` (lower case, without a final dot), if it has one.
pub fn domain_of(address: &str) -> Option<String> {
    let (_, d) = address.trim().rsplit_once('@')?;
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    (!d.is_empty()).then_some(d)
}

/// Is `address` the session's own mailbox's name?
pub fn own(s: &Session, address: &str) -> bool {
    let a = address.trim();
    !a.is_empty() && (a.eq_ignore_ascii_case(&s.name) || a.eq_ignore_ascii_case(&s.login))
}

fn has_domain(s: &Session, d: &str) -> bool {
    let d = d.trim().trim_end_matches('.');
    s.domains.iter().any(|m| m.eq_ignore_ascii_case(d))
}

/// May the session manage domain `d` (its records, its queue)?
pub fn may_domain(s: &Session, d: &str) -> bool {
    match s.role {
        Role::Admin => true,
        Role::DomainAdmin => has_domain(s, d),
        Role::User => false,
    }
}

/// May the session manage what is keyed by `address` itself (an alias,
/// an autoreply, a list, a mailbox not made yet)?
pub fn may_address(s: &Session, address: &str) -> bool {
    match s.role {
        Role::Admin => true,
        Role::DomainAdmin => domain_of(address).is_some_and(|d| has_domain(s, &d)),
        Role::User => own(s, address),
    }
}

/// May the session manage the list `address` names?  Its own address
/// (in its settings) must be the session's too: an alias of their domain
/// that names another domain's list gives nothing.
pub fn may_list(cfg: &Config, s: &Session, address: &str) -> bool {
    if s.role == Role::Admin {
        return true;
    }
    if !may_address(s, address) {
        return false;
    }
    let view = crate::admin::directory::Directory::on_disk(cfg);
    let name = match view.vut_get(&address.trim().to_ascii_lowercase()) {
        Some((v, _)) => v.trim().to_ascii_lowercase(),
        None => return false,
    };
    crate::lists::List::load(cfg, &name)
        .ok()
        .flatten()
        .is_some_and(|l| may_address(s, &l.settings.address))
}

/// May the session manage the mailbox `address` leads to (its password,
/// quota, forward, filter; its removal)?
pub fn may_mailbox(cfg: &Config, s: &Session, address: &str) -> bool {
    match s.role {
        Role::Admin => true,
        Role::User => own(s, address),
        Role::DomainAdmin => may_address(s, address) && Mailboxes::load(cfg).may(s, address),
    }
}

/// The mailboxes and the addresses that lead to each, loaded once for
/// [`may_mailbox`]'s question about many of them (a listing).
pub struct Mailboxes {
    tables: Tables,
    keys: HashMap<String, Vec<String>>,
}

impl Mailboxes {
    pub fn load(cfg: &Config) -> Mailboxes {
        let tables = Tables::load_readable(cfg);
        let keys = tables.keys_by_value();
        Mailboxes { tables, keys }
    }

    /// [`may_mailbox`], against these tables.
    pub fn may(&self, s: &Session, address: &str) -> bool {
        match s.role {
            Role::Admin => true,
            Role::User => own(s, address),
            Role::DomainAdmin => {
                let ours = |a: &str| domain_of(a).is_some_and(|d| has_domain(s, &d));
                may_address(s, address)
                    && match self.tables.find(address) {
                        Ok(Found::Virtual { login, .. }) => ours(&login),
                        Ok(Found::System { user, .. }) => {
                            let keys = self.keys.get(&user.name).map_or(&[][..], Vec::as_slice);
                            user.is_mailbox_only()
                                && !keys.is_empty()
                                && keys.iter().all(|k| ours(k))
                                && (!user.gecos.contains('@') || ours(&user.gecos))
                        }
                        Err(_) => false,
                    }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(role: Role, name: &str, domains: &[&str]) -> Session {
        Session {
            token: String::new(),
            login: name.replace('@', "-"),
            name: name.into(),
            role,
            domains: domains.iter().map(|d| d.to_string()).collect(),
            csrf: String::new(),
            created: 1,
            used: 1,
            from: String::new(),
        }
    }

    #[test]
    fn each_role_reaches_only_its_own() {
        let (dir, cfg) = crate::admin::directory::test_site();
        let w = |rel: &str, text: &str| std::fs::write(dir.join(rel), text).unwrap();
        w(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n\
             info-shop:x:1001:8:info@shop.example:/nonexistent:/usr/sbin/nologin\n\
             both:x:1002:8:both@shop.example:/nonexistent:/usr/sbin/nologin\n",
        );
        w("etc/mail/local-host-names", "example.com\nother.example\n");
        w(
            "etc/mail/virtusertable",
            "info@shop.example info-shop\nboss@shop.example bob\n\
             both@shop.example both\nboth@other.example both\n",
        );
        let dom = session(
            Role::DomainAdmin,
            "postmaster@shop.example",
            &["shop.example"],
        );
        assert!(may_domain(&dom, "Shop.Example"));
        assert!(!may_domain(&dom, "other.example"));
        assert!(may_address(&dom, "new@shop.example"));
        assert!(!may_address(&dom, "new@other.example"));
        assert!(!may_address(&dom, "bob"));
        assert!(may_mailbox(&cfg, &dom, "info@shop.example"));
        // A login account, and a mailbox another domain shares: not theirs.
        assert!(!may_mailbox(&cfg, &dom, "boss@shop.example"));
        assert!(!may_mailbox(&cfg, &dom, "both@shop.example"));
        assert!(!may_mailbox(&cfg, &dom, "nobody@shop.example"));
        let user = session(Role::User, "info@shop.example", &[]);
        assert!(may_mailbox(&cfg, &user, "INFO@shop.example"));
        assert!(!may_mailbox(&cfg, &user, "boss@shop.example"));
        assert!(!may_domain(&user, "shop.example"));
        assert!(!may_address(&user, ""));
        let admin = session(Role::Admin, "alice", &[]);
        assert!(may_mailbox(&cfg, &admin, "boss@shop.example"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
