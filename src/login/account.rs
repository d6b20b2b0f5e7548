//! Which account a login names, and the check itself (run in the child
//! process [`super::check`] forks): the login name's forms, the account
//! files, the proof against the account's secret.

use std::path::PathBuf;

use super::secret::{apop_matches, crypt_matches, dummy_hash, secret_matches, shadow_hash};
use super::{Identity, Proof, Refused, Settings};
use crate::accounts::{Account, Accounts, MailboxPath};
use crate::config::Config;
use crate::resolve::{Resolver, Target};
use crate::users::UserDb;

/// Longest login name accepted.
pub const MAX_NAME: usize = 128;

/// A login name in its canonical form (`user` or `user@domain`, lower
/// case), or `None` when it is not an acceptable name.
pub fn normalize(raw: &[u8]) -> Option<String> {
    if raw.is_empty() || raw.len() > MAX_NAME {
        return None;
    }
    let mut out = String::with_capacity(raw.len());
    let mut separated = false;
    for &b in raw {
        let c = match b {
            b'@' | b'%' | b'/' if !separated => {
                separated = true;
                '@'
            }
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' | b'+' | b'=' => b as char,
            b'A'..=b'Z' => (b as char).to_ascii_lowercase(),
            _ => return None,
        };
        out.push(c);
    }
    let (local, domain) = match out.split_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (out.as_str(), None),
    };
    if local.is_empty() || local.starts_with('.') || local.contains("..") {
        return None;
    }
    if let Some(d) = domain
        && (d.is_empty() || d.starts_with('.') || d.ends_with('.') || d.contains(".."))
    {
        return None;
    }
    Some(out)
}

/// The check itself (in the child).
pub(super) fn verify(
    cfg: &Config,
    settings: &Settings,
    name: &[u8],
    proof: &Proof,
) -> Result<Identity, Refused> {
    let login = normalize(name);
    let account = login.as_deref().and_then(|l| find_account(cfg, l));
    let ok = match (&account, proof) {
        (Some(a), Proof::Password(pw)) if a.is_virtual => {
            a.secret.as_deref().is_some_and(|s| secret_matches(s, pw))
        }
        (Some(a), Proof::Password(pw)) => {
            let allowed = a.owner.uid != 0 && a.owner.uid >= settings.first_uid;
            let matched = shadow_hash(cfg, &a.owner.name).is_some_and(|h| crypt_matches(pw, &h));
            allowed && matched
        }
        (Some(a), Proof::Apop { timestamp, digest }) => a
            .secret
            .as_deref()
            .and_then(|s| s.strip_prefix("{PLAIN}"))
            .is_some_and(|secret| apop_matches(timestamp, secret, digest)),
        (None, Proof::Password(pw)) => {
            // As slow as a real check.
            let _ = crypt_matches(pw, &dummy_hash(cfg));
            false
        }
        (None, Proof::Apop { .. }) => false,
    };
    let Some(a) = account else {
        return Err(Refused::Unknown);
    };
    if !ok {
        return Err(Refused::Account(a.login));
    }
    Ok(identity(cfg, a))
}

/// The account `name` names, with no proof (in the child): the accounts
/// [`verify`] could let in, whatever their password.
pub(super) fn lookup(cfg: &Config, settings: &Settings, name: &[u8]) -> Option<Identity> {
    let a = find_account(cfg, &normalize(name)?)?;
    if !a.is_virtual && (a.owner.uid == 0 || a.owner.uid < settings.first_uid) {
        return None;
    }
    Some(identity(cfg, a))
}

fn identity(cfg: &Config, a: Account) -> Identity {
    let folders = a.mbox_folders(&cfg.paths);
    let home = match (&folders, &a.mailbox) {
        _ if !a.is_virtual => cfg.paths.resolve(&a.owner.home),
        (Some(dir), _) => dir.clone(),
        (None, MailboxPath::Maildir(dir) | MailboxPath::Mbox(dir)) => dir.clone(),
    };
    Identity {
        login: a.login,
        owner: a.owner.name,
        uid: a.owner.uid,
        gid: a.owner.gid,
        mailbox: a.mailbox,
        folders,
        home,
        quota: a.quota,
    }
}

/// The account a canonical login name names (see the module text).
pub fn find_account(cfg: &Config, login: &str) -> Option<Account> {
    let accounts = Accounts::load(cfg, UserDb::for_root(&cfg.paths));
    if let Some(a) = accounts.virtual_account(login) {
        return Some(a);
    }
    if !login.contains('@') {
        return accounts.system(login);
    }
    let resolver = Resolver::for_checking(cfg);
    let res = resolver.resolve(login);
    let mut found: Option<Account> = None;
    for f in &res.finals {
        match &f.target {
            Target::Mailbox { account, .. } => match &found {
                Some(a) if a.login != account.login => return None,
                _ => found = Some(account.clone()),
            },
            Target::Error(_) => return None,
            _ => {}
        }
    }
    found.or_else(|| forwarded_away(&resolver, &accounts, login))
}

/// The mailbox behind an address whose mail all goes elsewhere: its own
/// virtusertable line names one account, and that account's aliases
/// entry (`mailroom forward set` without a copy) sends the mail on.  The
/// address still names that mailbox: its owner must be able to log in
/// (POP3 for the mail already there; the web panel to undo the forward).
/// Only the address's exact line counts, never a catch-all.
fn forwarded_away(resolver: &Resolver, accounts: &Accounts, login: &str) -> Option<Account> {
    let (local, domain) = login.rsplit_once('@')?;
    if !resolver.domains.is_local(domain) {
        return None;
    }
    let m = crate::resolve::virtuser::lookup(
        &resolver.virtusertable,
        local,
        domain,
        crate::resolve::virtuser::Steps::User,
    )?;
    let user = m.value.trim();
    if !m.exact || user.is_empty() || user.contains(|c: char| "@|/:,\\\" \t".contains(c)) {
        return None;
    }
    accounts
        .virtual_account(user)
        .or_else(|| accounts.system(user))
}

/// The child's answer: one field per line.
pub(super) fn encode(id: &Identity) -> Vec<u8> {
    let (kind, path) = match &id.mailbox {
        MailboxPath::Mbox(p) => ("mbox", p),
        MailboxPath::Maildir(p) => ("maildir", p),
    };
    let fields = [
        id.login.clone(),
        id.owner.clone(),
        id.uid.to_string(),
        id.gid.to_string(),
        kind.to_string(),
        path.to_string_lossy().into_owned(),
        id.folders
            .as_ref()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        id.home.to_string_lossy().into_owned(),
        id.quota.to_string(),
    ];
    if fields.iter().any(|f| f.contains('\n')) {
        return Vec::new();
    }
    let mut out = fields.join("\n").into_bytes();
    out.push(b'\n');
    out
}

pub(super) fn decode(bytes: &[u8]) -> Option<Identity> {
    let text = std::str::from_utf8(bytes).ok()?;
    let f: Vec<&str> = text.strip_suffix('\n')?.split('\n').collect();
    let [login, owner, uid, gid, kind, path, folders, home, quota] = f[..] else {
        return None;
    };
    let path = PathBuf::from(path);
    Some(Identity {
        login: login.to_string(),
        owner: owner.to_string(),
        uid: uid.parse().ok()?,
        gid: gid.parse().ok()?,
        mailbox: match kind {
            "mbox" => MailboxPath::Mbox(path),
            "maildir" => MailboxPath::Maildir(path),
            _ => return None,
        },
        folders: (!folders.is_empty()).then(|| PathBuf::from(folders)),
        home: PathBuf::from(home),
        quota: quota.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_name_forms() {
        assert_eq!(normalize(b"Bob").as_deref(), Some("bob"));
        assert_eq!(
            normalize(b"info@Example.com").as_deref(),
            Some("info@example.com")
        );
        assert_eq!(
            normalize(b"info%example.com").as_deref(),
            Some("info@example.com")
        );
        assert_eq!(
            normalize(b"info/example.com").as_deref(),
            Some("info@example.com")
        );
        for bad in [
            &b""[..],
            b"../etc/passwd",
            b"a/b/c",
            b".hidden",
            b"a b",
            b"a\0b",
            b"bob@",
            b"@example.com",
            b"bob@example..com",
            "b\u{e9}b".as_bytes(),
        ] {
            assert_eq!(normalize(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(normalize(&[b'a'; 129]), None);
    }

    #[test]
    fn identity_round_trip() {
        let id = Identity {
            login: "info@example.com".into(),
            owner: "vmail".into(),
            uid: 5000,
            gid: 5000,
            mailbox: MailboxPath::Maildir("/var/mail/virtual/example.com/info/".into()),
            folders: None,
            home: "/var/mail/virtual/example.com/info/".into(),
            quota: 200 << 20,
        };
        assert_eq!(decode(&encode(&id)), Some(id.clone()));
        let mbox = Identity {
            mailbox: MailboxPath::Mbox("/var/mail/bob".into()),
            folders: Some("/home/bob/mail".into()),
            home: "/home/bob".into(),
            quota: 0,
            ..id
        };
        assert_eq!(decode(&encode(&mbox)), Some(mbox));
        assert_eq!(decode(b""), None);
    }
}

#[cfg(test)]
mod forwarded {
    use super::*;

    #[test]
    fn an_address_whose_mail_is_forwarded_away_still_names_its_mailbox() {
        let (root, cfg) = crate::login::testing::root("forwarded");
        let etc = root.join("etc/mail");
        std::fs::write(etc.join("local-host-names"), "example.com\n").unwrap();
        std::fs::write(
            etc.join("virtusertable"),
            "info@example.com bob\n@example.com bob\n",
        )
        .unwrap();
        let login = |name: &str| find_account(&cfg, name).map(|a| a.login);
        // Delivered to bob's mailbox: the address logs into it.
        assert_eq!(login("info@example.com").as_deref(), Some("bob"));
        // `mailroom forward set bob far@elsewhere.example` (no copy).
        std::fs::write(etc.join("aliases"), "bob: far@elsewhere.example\n").unwrap();
        assert_eq!(login("info@example.com").as_deref(), Some("bob"));
        // Only the address's own line: not a name the catch-all takes.
        assert_eq!(login("anything@example.com"), None);
        // An address that goes to an alias of several mailboxes names none.
        std::fs::write(etc.join("virtusertable"), "info@example.com team\n").unwrap();
        std::fs::write(etc.join("aliases"), "team: bob, carol\n").unwrap();
        assert_eq!(login("info@example.com"), None);
        let _ = std::fs::remove_dir_all(root);
    }
}
