//! Folder names, as filter rules (`folder NAME`) and the `spam_folder`
//! setting give them: `/`-separated parts (`a/b` is a subfolder) that
//! become Maildir++ `.a.b/` directories or mbox files in a folders
//! directory ([`super::maildir::folder_dir`],
//! [`crate::accounts::Account::mbox_folders`]) and IMAP mailbox names for
//! Dovecot.  So each part is printable ASCII (spaces allowed), not empty
//! and not starting with `~`, without `.` (Maildir++'s separator and `..`),
//! `&` (IMAP's modified UTF-7), `\`, `*`, `%` (IMAP wildcards) or `"`.
//! This module imports nothing of the crate: the configuration and the
//! filters both check names here.

/// Check a folder name: `/`-separated parts of printable ASCII without
/// the characters Maildir++ and IMAP give a meaning to.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 200 {
        return Err(format!(
            "'{name}' is not a folder name (1 to 200 characters)"
        ));
    }
    for part in name.split('/') {
        if part.is_empty() || part.starts_with('~') {
            return Err(format!("'{name}' is not a folder name (empty part or '~')"));
        }
        if let Some(bad) = part
            .chars()
            .find(|&ch| !(ch.is_ascii_graphic() || ch == ' ') || ".&\\*%\"".contains(ch))
        {
            return Err(format!(
                "'{name}' is not a folder name ('{bad}' is not allowed; use / for subfolders)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names() {
        for good in ["Spam", "Lists/Rust", "Junk E-mail", "a/b/c", "x_y-z+1"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "../x",
            "a//b",
            "/a",
            "a/",
            "~x",
            "a/~b",
            "a.b",
            "a&b",
            "a\\b",
            "a*",
            "a%",
            "\"q\"",
            "caf\u{e9}",
            "tab\there",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&"x".repeat(200)).is_ok());
        assert!(check_name(&"x".repeat(201)).is_err());
    }
}
