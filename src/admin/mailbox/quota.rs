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

/// Bytes for people: `512`, `1.5K`, `200M`, `2.0G`.
pub fn human(n: u64) -> String {
    const K: u64 = 1024;
    let (unit, div) = if n >= K * K * K {
        ("G", K * K * K)
    } else if n >= K * K {
        ("M", K * K)
    } else if n >= K {
        ("K", K)
    } else {
        return n.to_string();
    };
    if n.is_multiple_of(div) {
        format!("{}{unit}", n / div)
    } else {
        format!("{:.1}{unit}", n as f64 / div as f64)
    }
}

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
        assert_eq!(human(512), "512");
        assert_eq!(human(200 * 1024 * 1024), "200M");
        assert_eq!(human(1536), "1.5K");
    }
}
