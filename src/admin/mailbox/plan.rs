//! Planning new mailboxes against the [`Tables`]: the address checked
//! (its domain ours, nothing owning it yet), a free user name and uid
//! reserved, then the lines written ([`Tables::apply`]) and added to the
//! resolver's tables, so that the next plan of an import sees them.

use std::path::PathBuf;

use super::name::parse_name;
use super::quota::{QuotaSetting, parse_quota};
use super::tables::Tables;
use super::{FIRST_UID, HOME, LAST_UID, SHELL};
use crate::accounts::VirtualEntry;
use crate::admin::names::{derive_name, with_suffix};
use crate::exit::{ExitCode, Failure};
use crate::table::makemap;
use crate::users::User;

/// A planned mailbox (validated, names reserved, not yet written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub address: String,
    pub kind: PlanKind,
    pub quota: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanKind {
    System {
        user: String,
        uid: u32,
        gid: u32,
        vt_key: Option<String>,
    },
    Virtual {
        login: String,
        mailbox: PathBuf,
        owner: (u32, u32),
    },
}

impl Plan {
    /// The system user or virtual login.
    pub fn login(&self) -> &str {
        match &self.kind {
            PlanKind::System { user, .. } => user,
            PlanKind::Virtual { login, .. } => login,
        }
    }
}

impl Tables {
    /// A user name free for a new mailbox user.
    fn name_free(&self, n: &str) -> bool {
        !self.reserved.contains_key(n)
            && self.resolver.resolve(n).decision.is_none_or(|d| !d.owns())
    }

    fn next_uid(&mut self) -> Result<u32, Failure> {
        let nss = self.resolver.accounts.users().asks_system();
        let mut uid = self.max_uid + 1;
        while uid <= LAST_UID
            && (self.used_uids.contains(&uid) || nss && crate::users::by_uid(uid).is_some())
        {
            uid += 1;
        }
        if uid > LAST_UID {
            return Err(Failure::new(
                ExitCode::CantCreat,
                format!("no free uid left in {FIRST_UID}..{LAST_UID}"),
            ));
        }
        self.max_uid = uid;
        self.used_uids.insert(uid);
        Ok(uid)
    }

    /// Validate a new mailbox and reserve its names (nothing is written
    /// until [`Tables::apply`]).
    pub fn plan(
        &mut self,
        address: &str,
        is_virtual: bool,
        quota: Option<&str>,
    ) -> Result<Plan, Failure> {
        let name = parse_name(address)?;
        let text = name.text();
        if let Some(d) = &name.domain
            && !self.is_known_domain(d)
        {
            return Err(Failure::new(
                ExitCode::NoUser,
                format!("{d} is not a domain of this host"),
            )
            .hint(format!(
                "add it first: 'mailroom domain add {d}' (or --virtual), see 'mailroom domain list'"
            )));
        }
        if let Some(owner) = self.taken(&name) {
            return Err(Failure::new(
                ExitCode::DataErr,
                format!("{text} is already taken: {owner}"),
            )
            .hint("pick another address, or remove that entry first (see 'mailroom alias list', 'mailroom mailbox list')"));
        }
        let quota = quota.map(parse_quota).transpose()?;
        let quota = match quota {
            Some(QuotaSetting::Limit(s)) => Some(s),
            Some(QuotaSetting::Default) | None => None,
        };
        let here = self.pending_where();
        let kind = if is_virtual {
            let Some(owner) = self.virtual_owner else {
                return Err(Failure::new(
                    ExitCode::Config,
                    format!(
                        "virtual mailboxes belong to the user {}, and there is no such user",
                        self.virtual_user
                    ),
                )
                .hint(format!(
                    "create it (useradd --system --gid mail --home-dir {} --shell {SHELL} {}) \
                     or set virtual_user in mailroom.conf",
                    self.virtual_base.display(),
                    self.virtual_user
                )));
            };
            let (dir, file) = match &name.domain {
                Some(d) => (d.clone(), name.local.clone()),
                None => ("local".to_string(), name.local.clone()),
            };
            self.reserved.insert(text.clone(), here);
            PlanKind::Virtual {
                login: text.clone(),
                mailbox: self.virtual_base.join(dir).join(file),
                owner,
            }
        } else {
            let user = match &name.domain {
                None => name.local.clone(),
                Some(d) => {
                    let base = derive_name(&format!("{}@{d}", name.local));
                    let mut n = 1;
                    let mut cand = base.clone();
                    while !self.name_free(&cand) {
                        n += 1;
                        cand = with_suffix(&base, n);
                    }
                    cand
                }
            };
            let uid = self.next_uid()?;
            self.reserved.insert(user.clone(), here.clone());
            let vt_key = name.domain.as_ref().map(|_| text.clone());
            if let Some(k) = &vt_key {
                self.reserved.insert(k.clone(), here);
            }
            PlanKind::System {
                user,
                uid,
                gid: self.mail_gid,
                vt_key,
            }
        };
        Ok(Plan {
            address: text,
            kind,
            quota,
        })
    }

    /// Write a planned mailbox with its password hash.
    pub fn apply(&mut self, plan: &Plan, hash: Option<&str>) {
        match &plan.kind {
            PlanKind::System {
                user,
                uid,
                gid,
                vt_key,
            } => {
                let line = self.passwd.append(&format!(
                    "{user}:x:{uid}:{gid}:{}:{HOME}:{SHELL}",
                    plan.address
                ));
                let new = User {
                    name: user.clone(),
                    uid: *uid,
                    gid: *gid,
                    gecos: plan.address.clone(),
                    home: HOME.into(),
                    shell: SHELL.into(),
                };
                let path = self.passwd.path.clone();
                self.resolver.accounts.users_mut().stage(&path, new, line);
                self.reserved.remove(user);
                self.shadow.push_secret(user, hash, shadow_rest());
                if let Some(k) = vt_key {
                    let l = self.vt.append(&format!("{k}\t{user}"));
                    self.resolver.virtusertable.insert(k, user, l);
                    self.reserved.remove(k);
                }
            }
            PlanKind::Virtual { login, .. } => {
                let l = self.vpasswd.push_secret(login, hash, ":::".into());
                self.resolver.accounts.stage_virtual(VirtualEntry {
                    login: login.clone(),
                    secret: String::new(),
                    mailbox: String::new(),
                    quota: String::new(),
                    full_name: String::new(),
                    line: l,
                });
                self.reserved.remove(login);
            }
        }
        if let Some(q) = &plan.quota {
            let key = plan.login().to_string();
            if makemap::get(&self.quotas.text, &key).is_some() {
                let t = makemap::set_entry(&self.quotas.text, &key, q);
                self.quotas.replace(t);
            } else {
                self.quotas.append(&format!("{key}\t{q}"));
            }
        }
    }
}

/// A new shadow line after the hash: last change today, no ageing.
fn shadow_rest() -> String {
    format!(":{}:0:99999:7:::", crate::date::now() / 86400)
}

/// A whole shadow line for `user`.
pub(super) fn shadow_line(user: &str, hash: &str) -> String {
    format!("{user}:{hash}{}", shadow_rest())
}

#[cfg(test)]
mod tests {
    use super::super::tables::tests::root;
    use super::*;
    use std::collections::HashMap;
    use std::fs;

    #[test]
    fn plans_take_free_names_and_uids() {
        let (dir, cfg) = root("plan");
        let mut t = Tables::load_disk(&cfg).unwrap();
        assert_eq!(t.mail_gid, 8);
        // info-shop exists already: the next one is -2.
        let p = t.plan("info@shop.example", false, Some("200m")).unwrap();
        assert_eq!(
            p.kind,
            PlanKind::System {
                user: "info-shop-2".into(),
                uid: 1002,
                gid: 8,
                vt_key: Some("info@shop.example".into())
            }
        );
        assert_eq!(p.quota.as_deref(), Some("200M"));
        t.apply(&p, Some("$6$salt$hash"));
        // The same address again, in the same change: taken.
        let e = t.plan("info@shop.example", false, None).unwrap_err();
        assert_eq!(e.code, ExitCode::DataErr);
        assert!(e.message.contains("virtusertable:3"), "{}", e.message);
        // Taken by the virtusertable, an alias, a user in a local domain.
        let e = t.plan("sales@example.com", false, None).unwrap_err();
        assert!(
            e.message
                .ends_with("virtusertable:2: sales@example.com bob"),
            "{}",
            e.message
        );
        let e = t.plan("billing@example.com", false, None).unwrap_err();
        assert!(
            e.message.contains("aliases:2: billing: bob"),
            "{}",
            e.message
        );
        let e = t.plan("bob@shop.example", false, None).unwrap_err();
        assert!(
            e.message.contains("passwd:2: system user bob (uid 1000)"),
            "{}",
            e.message
        );
        let e = t.plan("bob", false, None).unwrap_err();
        assert!(e.message.contains("is already taken"), "{}", e.message);
        // ...but not in a virtual domain, where users are not reached.
        assert!(t.plan("bob@virt.example", false, None).is_ok());
        // Unknown domain.
        let e = t.plan("x@nowhere.example", false, None).unwrap_err();
        assert_eq!(e.code, ExitCode::NoUser);
        // Bare names.
        let p = t.plan("carol", false, None).unwrap();
        assert!(
            matches!(p.kind, PlanKind::System { ref user, uid: 1004, vt_key: None, .. } if user == "carol")
        );
        t.apply(&p, None);
        let mut change_text = String::new();
        change_text.push_str(&t.passwd.text);
        assert!(change_text.ends_with(
            "info-shop-2:x:1002:8:info@shop.example:/nonexistent:/usr/sbin/nologin\n\
             carol:x:1004:8:carol:/nonexistent:/usr/sbin/nologin\n"
        ));
        assert!(t.shadow.render().starts_with("info-shop-2:$6$salt$hash:"));
        assert!(t.shadow.render().contains("\ncarol:!:"));
        t.set_hashes(&HashMap::from([(
            "carol".to_string(),
            "$6$c$d".to_string(),
        )]));
        assert!(t.shadow.render().contains("\ncarol:$6$c$d:"));
        assert!(t.vt.text.ends_with("info@shop.example\tinfo-shop-2\n"));
        assert_eq!(t.quotas.text, "info-shop-2\t200M\n");
        // Virtual accounts need their owner.
        let e = t.plan("v@virt.example", true, None).unwrap_err();
        assert_eq!(e.code, ExitCode::Config);
        fs::remove_dir_all(dir).unwrap();
    }
}
