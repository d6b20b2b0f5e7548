//! Mailbox names as given on the command line: `local@domain` or a bare
//! user name, and the user names mailroom creates.

use crate::exit::Failure;

/// Longest user name.
pub const MAX_USER: usize = 32;

/// A mailbox name as given: `local@domain` or a bare user name, lower
/// case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub local: String,
    pub domain: Option<String>,
}

impl Name {
    /// `local@domain`, or the bare name.
    pub fn text(&self) -> String {
        match &self.domain {
            Some(d) => format!("{}@{d}", self.local),
            None => self.local.clone(),
        }
    }
}

/// Parse a mailbox address or bare user name.
pub fn parse_name(s: &str) -> Result<Name, Failure> {
    let t = s.trim().to_ascii_lowercase();
    if t.contains('@') {
        let a = crate::admin::names::parse_address(&t)?;
        if a.local.contains('+') {
            return Err(Failure::usage(format!(
                "{t}: a mailbox address cannot contain '+'"
            ))
            .hint("'+' starts a detail: mail for user+detail@domain reaches user@domain's mailbox by itself"));
        }
        return Ok(Name {
            local: a.local,
            domain: a.domain,
        });
    }
    if !valid_user(&t) {
        return Err(
            Failure::usage(format!("{t:?} is not a user name mailroom can create")).hint(format!(
                "a letter, then letters, digits, '_' or '-', at most {MAX_USER} characters; \
             or give an address: local@domain"
            )),
        );
    }
    Ok(Name {
        local: t,
        domain: None,
    })
}

/// A user name mailroom creates: `[a-z][a-z0-9_-]*`, at most 32.
pub fn valid_user(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_USER
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::names::{derive_name, with_suffix};

    #[test]
    fn names() {
        // The names alias.rs derives (one rule for both).
        assert_eq!(derive_name("info@shop.example"), "info-shop");
        assert_eq!(derive_name("john.doe@example.com"), "john-doe-example");
        assert_eq!(derive_name("1st@x.org"), "m1st-x");
        let long = derive_name(&format!("{}@example.com", "a".repeat(60)));
        assert_eq!(long.len(), MAX_USER);
        assert!(valid_user(&long));
        assert!(valid_user(&with_suffix(&long, 12)));
        assert!(with_suffix(&long, 12).ends_with("-12"));

        assert_eq!(
            parse_name("Info@Shop.Example.").unwrap(),
            Name {
                local: "info".into(),
                domain: Some("shop.example".into())
            }
        );
        assert_eq!(parse_name("bob").unwrap().text(), "bob");
        for bad in [
            "a+b@x.com",
            "@x.com",
            "a@",
            "a b@x.com",
            ".a@x.com",
            "a..b@x.com",
            "a@x..com",
            "1bob",
            "bo:b",
            "a@-x.com",
            "a:b@x.com",
        ] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
        assert!(!valid_user(&"a".repeat(33)));
    }
}
