//! Quotas as given on the command line, and sizes for people.

use crate::config::parse_size;
use crate::exit::Failure;

/// A quota as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaSetting {
    /// `none`: no setting of its own; the default applies.
    Default,
    /// A size (`0` = unlimited), as written into the table.
    Limit(String),
}

pub fn parse_quota(s: &str) -> Result<QuotaSetting, Failure> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "none" | "default" => return Ok(QuotaSetting::Default),
        "unlimited" | "0" => return Ok(QuotaSetting::Limit("0".into())),
        _ => {}
    }
    match parse_size(t) {
        Some(n) if n > 0 && !t.starts_with(['+', '-']) => {
            let mut v = t.to_string();
            if v.ends_with(['k', 'm', 'g']) {
                v = v.to_ascii_uppercase();
            }
            Ok(QuotaSetting::Limit(v))
        }
        _ => Err(Failure::usage(format!(
            "{t:?} is not a size: give bytes with K, M or G (200M, 1G), unlimited, or none"
        ))),
    }
}

pub use crate::quota::human;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas() {
        assert_eq!(parse_quota("none").unwrap(), QuotaSetting::Default);
        assert_eq!(
            parse_quota("unlimited").unwrap(),
            QuotaSetting::Limit("0".into())
        );
        assert_eq!(
            parse_quota("200m").unwrap(),
            QuotaSetting::Limit("200M".into())
        );
        assert_eq!(
            parse_quota("1048576").unwrap(),
            QuotaSetting::Limit("1048576".into())
        );
        for bad in ["", "-1", "12X", "M", "+5"] {
            assert!(parse_quota(bad).is_err(), "{bad}");
        }
    }
}
