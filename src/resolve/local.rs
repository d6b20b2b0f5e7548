//! Local names: the aliases (step 3), then users and their `.forward`
//! (step 4).

use std::path::PathBuf;

use crate::address;
use crate::aliases::split_list;
use crate::exit::ExitCode;

use super::outcome::{DecidedBy, Owner, Refusal, Target};
use super::walk::{Origin, Run, unquote_whole};

impl Run<'_> {
    /// A local name, as sendmail's parse rules leave it (quotes removed
    /// where [`address::dequote_local`] removes them): aliases, then users.
    /// A backslash anywhere in it (`\\bob`, `"e\\ve"`) skips the aliases,
    /// as in sendmail.
    pub(super) fn local_name(
        &mut self,
        printable: &str,
        name: &str,
        origin: &Origin,
        chain: &mut Vec<String>,
        sender: &Option<String>,
        depth: usize,
    ) {
        if name.is_empty() {
            return self.refuse(
                printable,
                Refusal::new(553, "5.1.3", "User address required", ExitCode::Usage),
                origin,
            );
        }
        if name.contains('\\') {
            return self.user(printable, name, false, origin, chain, sender, depth);
        }
        let lname = name.to_ascii_lowercase();
        let r = self.r;
        let mut keys = vec![lname.clone()];
        if let Some(p) = address::unquoted_find(&lname, '+') {
            keys.push(format!("{}+*", &lname[..p]));
            keys.push(lname[..p].to_string());
        }
        for key in keys {
            let Some(hit) = r.aliases.get(&key) else {
                continue;
            };
            if chain.contains(&key) {
                self.loop_seen = true;
                self.step(format!("{printable}... duplicate suppressed"), None, true);
                return;
            }
            let src = Some((r.aliases.path().to_path_buf(), hit.line));
            self.decide(
                DecidedBy::Alias {
                    name: key.clone(),
                    value: hit.value.to_string(),
                },
                src.clone(),
                key == lname,
            );
            self.step(
                format!("{printable}... aliased to {}", hit.value),
                src,
                true,
            );
            // owner-LIST sends the list's mail on behalf of its owner.
            let owner_key = format!("owner-{key}");
            let list_sender = match r.aliases.get(&owner_key) {
                Some(o) => {
                    let parts = split_list(o.value);
                    let s = if parts.len() == 1 && !parts[0].starts_with(['|', '/', '"', ':']) {
                        parts[0].trim_start_matches('\\').to_string()
                    } else {
                        owner_key.clone()
                    };
                    Some(s)
                }
                None => sender.clone(),
            };
            let list = if crate::lists::is_list(&r.cfg, &key) {
                self.res.lists.push(key.clone());
                Some(key.clone())
            } else {
                origin.list.clone()
            };
            let child = Origin {
                special: true,
                unsafe_source: false,
                owner: r.owner_named(&r.cfg.default_user),
                via: Some(key.clone()),
                read_as: None,
                list,
            };
            let elements = split_list(hit.value);
            chain.push(key.clone());
            for e in elements {
                let e_name = address::dequote_local(e.trim_end());
                // An alias naming itself delivers to the user of that name
                // (sendmail keeps the alias's own address for it).
                if e_name.eq_ignore_ascii_case(&key) {
                    self.user(
                        printable,
                        &e_name,
                        true,
                        &child,
                        chain,
                        &list_sender,
                        depth + 1,
                    );
                } else {
                    self.element(&e, &child, chain, &list_sender, depth + 1);
                }
            }
            chain.pop();
            return;
        }
        self.user(printable, name, true, origin, chain, sender, depth);
    }

    /// A user's mailbox, after `.forward` when `forward` allows it.
    /// `name` is the local name as written, quotes and backslashes and all
    /// (`\\bob`): looked up without them, shown with them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn user(
        &mut self,
        printable: &str,
        name: &str,
        forward: bool,
        origin: &Origin,
        chain: &mut Vec<String>,
        sender: &Option<String>,
        depth: usize,
    ) {
        let escaped = name.contains('\\');
        let forward = forward && !escaped;
        let lname = address::unquote_local(name).to_ascii_lowercase();
        let (user, detail) = match lname.split_once('+') {
            Some((u, d)) => (u.to_string(), Some(d.to_string()).filter(|d| !d.is_empty())),
            None => (lname.clone(), None),
        };
        let r = self.r;
        let account = r
            .accounts
            .system(&user)
            .or_else(|| r.accounts.virtual_account(&user));
        let Some(account) = account else {
            self.step(
                format!("{user}: no such system user or virtual account"),
                None,
                false,
            );
            return self.refuse(printable, Refusal::user_unknown(), origin);
        };
        let exact = !lname.contains('+');
        if account.is_virtual {
            self.decide_virtual(&account.login, exact);
        } else {
            let users = r.accounts.users();
            let source = match (users.find(&account.login), users.file()) {
                (Some((_, Some(line))), Some(f)) => Some((f.path.clone(), line)),
                _ => None,
            };
            self.decide(
                DecidedBy::SystemUser {
                    name: account.login.clone(),
                    uid: account.owner.uid,
                },
                source,
                exact,
            );
        }
        if forward
            && !account.is_virtual
            && r.cfg.forward_files
            && !r.check_only
            && !chain.contains(&format!("~{user}"))
            && let Some(list) = self.read_forward(&account)
        {
            let owner = Owner {
                name: account.owner.name.clone(),
                uid: account.owner.uid,
                gid: account.owner.gid,
                home: account.owner.home.clone(),
            };
            let fwd_path = PathBuf::from(&account.owner.home).join(".forward");
            self.step(
                format!("{printable}... forwarded to {}", list.join(", ")),
                Some((fwd_path, 1)),
                false,
            );
            let child = Origin {
                special: true,
                unsafe_source: false,
                owner: Some(owner.clone()),
                via: Some(user.clone()),
                read_as: Some(owner),
                list: origin.list.clone(),
            };
            chain.push(format!("~{user}"));
            for e in list {
                let e_plain = unquote_whole(e.trim_end());
                // "bob" in bob's own .forward means bob's mailbox.
                let bare = e_plain.trim_start_matches('\\');
                if bare.eq_ignore_ascii_case(&user) {
                    self.user(&e, &e_plain, false, &child, chain, sender, depth + 1);
                } else {
                    self.element(&e, &child, chain, sender, depth + 1);
                }
            }
            chain.pop();
            return;
        }
        // sendmail's local mailer gets the name as written when a backslash
        // kept it from the aliases (`\\bob`), else the login.
        let user = if escaped {
            let shown = name.to_ascii_lowercase();
            match address::unquoted_find(&shown, '+') {
                Some(p) => shown[..p].to_string(),
                None => shown,
            }
        } else {
            account.login.clone()
        };
        self.push(
            printable,
            Target::Mailbox {
                account,
                detail,
                user,
            },
            sender,
            origin,
        );
    }
}
