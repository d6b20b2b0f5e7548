//! The names the admin commands take and make: addresses and local names
//! as mailroom writes them into the tables, domain names, and the user
//! and aliases names derived from an address (`info@shop.example` →
//! `info-shop`).

use std::fmt;

use crate::exit::Failure;

/// An address given on the command line: `local@domain` or a bare local
/// name, lower-cased (makemap and aliases fold keys to lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub local: String,
    pub domain: Option<String>,
}

impl Addr {
    /// `local@domain` or `local`.
    pub fn key(&self) -> String {
        match &self.domain {
            Some(d) => format!("{}@{d}", self.local),
            None => self.local.clone(),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// A local part or local name mailroom writes: letters, digits, `. _ + - =`,
/// starting with a letter, digit or `_`, at most 64 characters.
pub fn valid_local(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-=".contains(c))
        && !s.contains("..")
        && !s.ends_with('.')
}

/// A local name as mailroom writes it into the tables, or `None`: a
/// [`valid_local`] name, or a quoted name whose words ([`valid_local`]
/// characters) are separated by single spaces (`"john smith"`).  Returned
/// as newaliases keys it ([`crate::address::dequote_local`], lower-cased):
/// quotes only where the name has spaces, so `"Sales.Team"` is
/// `sales.team`.  Quotes that would need escapes inside, or that hide an
/// address (`"a@b"`), are not names.
pub fn parse_local_name(s: &str) -> Option<String> {
    let key = crate::address::dequote_local(s.trim()).to_ascii_lowercase();
    if valid_local(&key) {
        return Some(key);
    }
    let inner = key.strip_prefix('"')?.strip_suffix('"')?;
    let words_ok = inner.len() <= 64
        && inner.split(' ').all(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._+-=".contains(c))
        });
    words_ok.then_some(key)
}

/// A domain name: `example.com` (lower-cased, no trailing dot), labels of
/// letters, digits and `-`, at least two of them.
pub fn parse_domain(s: &str) -> Result<String, Failure> {
    let d = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let bad = |why: &str| {
        Failure::usage(format!("{s:?} is not a domain name: {why}"))
            .hint("write it like example.com")
    };
    if d.is_empty() {
        return Err(bad("empty"));
    }
    if d.len() > 253 {
        return Err(bad("too long"));
    }
    if !d.contains('.') {
        return Err(bad("it has no dot"));
    }
    for label in d.split('.') {
        if label.is_empty() {
            return Err(bad("an empty label (two dots)"));
        }
        if label.len() > 63 {
            return Err(bad("a label longer than 63 characters"));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(bad("only letters, digits, '-' and '.' may appear"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with '-'"));
        }
    }
    Ok(d)
}

/// Parse an address argument: `local@domain` or a bare `NAME`.
pub fn parse_address(s: &str) -> Result<Addr, Failure> {
    let t = s.trim();
    if let Some(d) = t.strip_prefix('@') {
        return Err(
            Failure::usage(format!("{s:?}: an address needs a local part")).hint(format!(
                "for every address of a domain use 'mailroom catchall set {d} TARGET'"
            )),
        );
    }
    let (local, domain) = match crate::address::unquoted_find(t, '@') {
        Some(at) => (&t[..at], Some(&t[at + 1..])),
        None => (t, None),
    };
    let Some(local) = parse_local_name(local) else {
        return Err(Failure::usage(format!(
            "{s:?} is not an address mailroom can create"
        ))
        .hint(
            "use letters, digits and . _ + - = (starting with a letter or digit), like sales@example.com; \
             a name with spaces goes in double quotes: '\"john smith\"'",
        ));
    };
    let domain = match domain {
        Some(d) => Some(parse_domain(d)?),
        None => None,
    };
    if domain.is_some() && local.starts_with('"') {
        return Err(Failure::usage(format!(
            "{s:?}: a local part with spaces cannot be written into the virtusertable \
             (its keys end at the first space)"
        ))
        .hint(format!(
            "for this host's local domains use the bare name, which serves them all: \
             'mailroom alias add {local} TARGET...'"
        )));
    }
    Ok(Addr { local, domain })
}

/// The system user / aliases name derived from an address:
/// `info@shop.example` → `info-shop`; lower-case, `[a-z][a-z0-9_-]*`, at
/// most 32 characters.  (Collisions: see
/// [`super::directory::Directory::free_name`].)
pub fn derive_name(address: &str) -> String {
    let (local, domain) = address.split_once('@').unwrap_or((address, ""));
    let label = domain.split('.').next().unwrap_or("");
    let raw = if label.is_empty() {
        local.to_string()
    } else {
        format!("{local}-{label}")
    };
    let mut out = String::new();
    for c in raw.to_ascii_lowercase().chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert(0, 'm');
    }
    out.truncate(32);
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// `base-N`, shortened so that the whole stays within 32 characters.
pub fn with_suffix(base: &str, n: usize) -> String {
    let suffix = format!("-{n}");
    let mut b = base.to_string();
    b.truncate(32 - suffix.len());
    while b.ends_with('-') {
        b.pop();
    }
    format!("{b}{suffix}")
}

/// Was `name` derived from `address` ([`derive_name`], or a collision's
/// `-N` form)?  How mailroom tells the entries it made for an address.
pub fn is_derived(address: &str, name: &str) -> bool {
    let base = derive_name(address);
    if name == base {
        return true;
    }
    match name.rsplit_once('-') {
        Some((_, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n
            .parse::<usize>()
            .is_ok_and(|n| n >= 2 && with_suffix(&base, n) == name),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitCode;

    #[test]
    fn names_derive_from_addresses() {
        assert_eq!(derive_name("info@shop.example"), "info-shop");
        assert_eq!(derive_name("First.Last@Example.com"), "first-last-example");
        assert_eq!(derive_name("123@x.example"), "m123-x");
        assert_eq!(derive_name("catchall@shop.example"), "catchall-shop");
        let long = derive_name(&format!("{}@example.com", "a".repeat(40)));
        assert_eq!(long.len(), 32);
        assert_eq!(with_suffix(&long, 12).len(), 32);
        assert!(is_derived("info@shop.example", "info-shop"));
        assert!(is_derived("info@shop.example", "info-shop-3"));
        assert!(!is_derived("info@shop.example", "info-shop-1"));
        assert!(!is_derived("info@shop.example", "info-example"));
        assert!(!is_derived("info@shop.example", "bob"));
    }

    #[test]
    fn quoted_names_are_keyed_as_newaliases_keys_them() {
        assert_eq!(
            parse_local_name("\"Sales.Team\"").as_deref(),
            Some("sales.team")
        );
        assert_eq!(
            parse_local_name("\"John Smith\"").as_deref(),
            Some("\"john smith\"")
        );
        assert_eq!(parse_local_name("Bob").as_deref(), Some("bob"));
        for bad in [
            "\"a@b\"",
            "\"x\\\"y\"",
            "\"two  words\"",
            "\" x\"",
            "\"\"",
            "a b",
            "\"open",
        ] {
            assert_eq!(parse_local_name(bad), None, "{bad}");
        }
        assert_eq!(
            parse_address("\"Sales.Team\"@Example.COM").unwrap().key(),
            "sales.team@example.com"
        );
        assert_eq!(
            parse_address("\"John Smith\"").unwrap().key(),
            "\"john smith\""
        );
        assert!(parse_address("\"john smith\"@example.com").is_err());
    }

    #[test]
    fn addresses_and_domains_parse() {
        let a = parse_address("Sales@Shop.Example").unwrap();
        assert_eq!(a.key(), "sales@shop.example");
        assert_eq!(parse_address("webmaster").unwrap().domain, None);
        assert_eq!(
            parse_address("@shop.example").unwrap_err().code,
            ExitCode::Usage
        );
        assert!(parse_address("a b@x.example").is_err());
        assert!(parse_address("a@x").is_err());
        assert!(parse_address("a@-x.example").is_err());
        assert!(parse_address(".a@x.example").is_err());
        assert_eq!(parse_domain("Example.COM.").unwrap(), "example.com");
        assert!(parse_domain("exa mple.com").is_err());
    }
}
