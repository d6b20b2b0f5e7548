//! An SPF record, read per RFC 7208's grammar (§4.5, §4.6.1, §5, §6,
//! §12), before any of it is evaluated.
//!
//! ```text
//! record    = "v=spf1" *( 1*SP ( directive / modifier ) ) *SP
//! directive = [ "+" / "-" / "~" / "?" ] mechanism
//! mechanism = all / include:D / a[:D][cidr] / mx[:D][cidr] / ptr[:D]
//!           / ip4:NET[/len] / ip6:NET[/len] / exists:D
//! modifier  = redirect=D / exp=D / name=macro-string
//! D         = domain-spec: a macro string ending in "." toplabel ["."]
//!             or in a macro
//! cidr      = [ "/" 0-32 ] [ "//" 0-128 ]
//! ```
//!
//! Any error anywhere — a byte that is not visible ASCII, an unknown
//! mechanism, an argument where none belongs, a CIDR length out of range
//! or with a leading zero, a bad macro, a domain-spec whose last label
//! is no toplabel (all digits, starting with `-`, holding `:`...), a
//! modifier name not starting with a letter, `redirect=` or `exp=` twice
//! — makes the whole record a permerror (§4.6), with the reason.
//! Unknown modifiers are checked, then ignored (§6).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::SpfResult;
use super::macros::{MacroString, Place};

/// A record that parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub directives: Vec<Directive>,
    pub redirect: Option<MacroString>,
    pub exp: Option<MacroString>,
}

/// A qualifier and its mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// What a match gives: pass, fail, softfail or neutral.
    pub qualifier: SpfResult,
    pub mechanism: Mechanism,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    All,
    Include(MacroString),
    /// The target (None: the current domain) and the prefix lengths.
    A(Option<MacroString>, Cidr),
    Mx(Option<MacroString>, Cidr),
    Ptr(Option<MacroString>),
    /// A network: an address and its prefix length.
    Ip(IpAddr, u8),
    Exists(MacroString),
}

impl Mechanism {
    /// Whether it queries DNS, and so counts against the limit of 10
    /// (§4.6.4).
    pub fn queries_dns(&self) -> bool {
        !matches!(self, Mechanism::All | Mechanism::Ip(..))
    }
}

/// The prefix lengths of `a` and `mx`: IPv4, IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub v4: u8,
    pub v6: u8,
}

impl Default for Cidr {
    fn default() -> Cidr {
        Cidr { v4: 32, v6: 128 }
    }
}

/// Whether a TXT record (its strings joined) is an SPF record: it starts
/// with the version `v=spf1`, in any case, then a space or its end (§4.5).
pub fn is_spf1(txt: &[u8]) -> bool {
    txt.get(..6)
        .is_some_and(|v| v.eq_ignore_ascii_case(b"v=spf1"))
        && txt.get(6).is_none_or(|&b| b == b' ')
}

impl Record {
    /// Parse an SPF record (one for which [`is_spf1`] holds); Err: the
    /// syntax error, for the permerror's reason.
    pub fn parse(txt: &[u8]) -> Result<Record, String> {
        if !is_spf1(txt) {
            return Err("not an SPF record".to_string());
        }
        let mut record = Record {
            directives: Vec::new(),
            redirect: None,
            exp: None,
        };
        for term in txt[6..].split(|&b| b == b' ').filter(|t| !t.is_empty()) {
            if let Some(&b) = term.iter().find(|&&b| !(0x21..=0x7e).contains(&b)) {
                return Err(format!(
                    "the term {:?} holds the byte 0x{b:02x}: only visible ASCII is allowed",
                    String::from_utf8_lossy(term)
                ));
            }
            // Visible ASCII only, so this is text.
            let term = std::str::from_utf8(term).map_err(|e| e.to_string())?;
            record.add(term).map_err(|why| format!("{term:?}: {why}"))?;
        }
        Ok(record)
    }

    fn add(&mut self, term: &str) -> Result<(), String> {
        let name_len = term
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
            .unwrap_or(term.len());
        if term[name_len..].starts_with('=') {
            return self.add_modifier(&term[..name_len], &term[name_len + 1..]);
        }
        let (qualifier, rest) = match term.as_bytes()[0] {
            b'+' => (SpfResult::Pass, &term[1..]),
            b'-' => (SpfResult::Fail, &term[1..]),
            b'~' => (SpfResult::SoftFail, &term[1..]),
            b'?' => (SpfResult::Neutral, &term[1..]),
            _ => (SpfResult::Pass, term),
        };
        self.directives.push(Directive {
            qualifier,
            mechanism: mechanism(rest)?,
        });
        Ok(())
    }

    fn add_modifier(&mut self, name: &str, value: &str) -> Result<(), String> {
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err("a modifier name starts with a letter".to_string());
        }
        let slot = if name.eq_ignore_ascii_case("redirect") {
            &mut self.redirect
        } else if name.eq_ignore_ascii_case("exp") {
            &mut self.exp
        } else {
            // Unknown modifiers must be well-formed, and are ignored.
            MacroString::parse(value, Place::Domain)?;
            return Ok(());
        };
        if slot.is_some() {
            return Err(format!("{name}= may appear only once"));
        }
        *slot = Some(domain_spec(value)?);
        Ok(())
    }
}

/// A mechanism and its arguments (after the qualifier).
fn mechanism(text: &str) -> Result<Mechanism, String> {
    let name_end = text.find([':', '/']).unwrap_or(text.len());
    let (name, rest) = text.split_at(name_end);
    let arg = rest.strip_prefix(':');
    let name = name.to_ascii_lowercase();
    let no_arg = |m: Mechanism| {
        if rest.is_empty() {
            Ok(m)
        } else {
            Err(format!("{name} takes no argument"))
        }
    };
    let required = || arg.ok_or_else(|| format!("{name} needs \":\" and a domain"));
    match name.as_str() {
        "all" => no_arg(Mechanism::All),
        "include" => Ok(Mechanism::Include(domain_spec(required()?)?)),
        "exists" => Ok(Mechanism::Exists(domain_spec(required()?)?)),
        "ptr" => match arg {
            Some(d) => Ok(Mechanism::Ptr(Some(domain_spec(d)?))),
            None => no_arg(Mechanism::Ptr(None)),
        },
        "a" | "mx" => {
            let (target, cidr) = match arg {
                Some(a) => {
                    let (spec, cidr) = split_dual_cidr(a)?;
                    (Some(domain_spec(spec)?), cidr)
                }
                None => {
                    let (before, cidr) = split_dual_cidr(rest)?;
                    if !before.is_empty() {
                        return Err(format!("{rest:?} is no prefix length"));
                    }
                    (None, cidr)
                }
            };
            Ok(if name == "a" {
                Mechanism::A(target, cidr)
            } else {
                Mechanism::Mx(target, cidr)
            })
        }
        "ip4" => {
            let arg = arg.ok_or("ip4 needs \":\" and a network")?;
            let (net, len) = arg
                .split_once('/')
                .map_or((arg, None), |(n, l)| (n, Some(l)));
            let addr: Ipv4Addr = net
                .parse()
                .map_err(|_| format!("{net:?} is no IPv4 address"))?;
            let len = len.map_or(Ok(32), |l| prefix_length(l, 32))?;
            Ok(Mechanism::Ip(IpAddr::V4(addr), len))
        }
        "ip6" => {
            let arg = arg.ok_or("ip6 needs \":\" and a network")?;
            let (net, len) = arg
                .split_once('/')
                .map_or((arg, None), |(n, l)| (n, Some(l)));
            let addr: Ipv6Addr = net
                .parse()
                .map_err(|_| format!("{net:?} is no IPv6 address"))?;
            let len = len.map_or(Ok(128), |l| prefix_length(l, 128))?;
            Ok(Mechanism::Ip(IpAddr::V6(addr), len))
        }
        "" => Err("no mechanism".to_string()),
        _ => Err(format!("unknown mechanism {name:?}")),
    }
}

/// Split `[ "/" ip4-len ] [ "//" ip6-len ]` off the end of `text`.
fn split_dual_cidr(text: &str) -> Result<(&str, Cidr), String> {
    let mut cidr = Cidr::default();
    let mut rest = text;
    if let Some((before, len)) = rest.rsplit_once("//")
        && is_digits(len)
    {
        cidr.v6 = prefix_length(len, 128)?;
        rest = before;
    }
    if let Some((before, len)) = rest.rsplit_once('/')
        && is_digits(len)
    {
        cidr.v4 = prefix_length(len, 32)?;
        rest = before;
    }
    Ok((rest, cidr))
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A prefix length: digits without a leading zero, at most `max` (§5.6).
fn prefix_length(text: &str, max: u8) -> Result<u8, String> {
    let bad = || format!("\"/{text}\" is no prefix length (0 to {max})");
    if !is_digits(text) || (text.len() > 1 && text.starts_with('0')) {
        return Err(bad());
    }
    text.parse::<u8>()
        .ok()
        .filter(|&l| l <= max)
        .ok_or_else(bad)
}

/// A domain-spec (§7.1): a macro string ending in a macro-expand or in
/// "." toplabel, with an optional final ".".
pub fn domain_spec(text: &str) -> Result<MacroString, String> {
    let spec = MacroString::parse(text, Place::Domain)?;
    if spec.is_empty() {
        return Err("the domain is empty".to_string());
    }
    if spec.ends_in_macro() {
        return Ok(spec);
    }
    let tail = spec.trailing_text();
    let tail = tail.strip_suffix('.').unwrap_or(tail);
    match tail.rsplit_once('.') {
        Some((_, top)) if is_toplabel(top) => Ok(spec),
        Some((_, top)) => Err(format!(
            "{top:?} cannot end a domain name (letters, digits and inner \"-\", not all digits)"
        )),
        None => Err(format!(
            "{text:?} is not a domain name of two labels or more"
        )),
    }
}

/// `toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *(
/// alphanum / "-" ) alphanum )`.
fn is_toplabel(label: &str) -> bool {
    let b = label.as_bytes();
    let alnum_dash = b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-');
    match (b.first(), b.last()) {
        (Some(first), Some(last)) if alnum_dash => {
            if b.contains(&b'-') {
                first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric()
            } else {
                b.iter().any(u8::is_ascii_alphabetic)
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Record, String> {
        Record::parse(s.as_bytes())
    }

    #[test]
    fn selects_version_1_only() {
        assert!(is_spf1(b"v=spf1"));
        assert!(is_spf1(b"V=SpF1 -all"));
        assert!(!is_spf1(b"v=spf10"));
        assert!(!is_spf1(b"v=spf1mx"));
        assert!(!is_spf1(b"spf1"));
    }

    #[test]
    fn parses_mechanisms_and_modifiers() {
        let r = parse("v=spf1  a mx/24//64 ?ptr:example.com ~ip4:192.0.2.0/24 -ip6:2001:db8::/32 include:_spf.example.com exists:%{ir}.bl.example.com redirect=%{d2} exp=why.%{d} moo.cow-far_out=man:dog/cat +all ").unwrap();
        assert_eq!(r.directives.len(), 8);
        assert_eq!(
            r.directives[1].mechanism,
            Mechanism::Mx(None, Cidr { v4: 24, v6: 64 })
        );
        assert_eq!(r.directives[2].qualifier, SpfResult::Neutral);
        assert_eq!(
            r.directives[3].mechanism,
            Mechanism::Ip("192.0.2.0".parse().unwrap(), 24)
        );
        assert_eq!(r.directives[4].qualifier, SpfResult::Fail);
        assert!(r.redirect.is_some() && r.exp.is_some());
        assert_eq!(parse("v=spf1").unwrap().directives, vec![]);
        assert_eq!(
            parse("v=spf1 a:foo:bar/baz.example.com")
                .unwrap()
                .directives[0]
                .mechanism,
            Mechanism::A(
                Some(MacroString::parse("foo:bar/baz.example.com", Place::Domain).unwrap()),
                Cidr::default()
            )
        );
        assert!(parse("v=spf1 a:foo.example.xn--zckzah -all").is_ok());
        assert!(parse("v=spf1 a:mail.example...com -all").is_ok());
        assert!(parse("v=spf1 redirect=%{d}.d.spf.example.com.").is_ok());
        assert!(parse("v=spf1 default=+ foo=").is_ok());
    }

    #[test]
    fn syntax_errors_are_found_anywhere() {
        for bad in [
            "v=spf1 ip4:1.2.3.4 -all moo",
            "v=spf1 moo.cow/far_out=man:dog/cat ip4:1.2.3.4 -all",
            "v=spf1 moo.cow:far_out=man:dog/cat ip4:1.2.3.4 -all",
            "v=spf1 ip4:1.2.3.4 redirect:t2.example.com",
            "v=spf1 a:foo-bar -all",
            "v=spf1 -all.",
            "v=spf1 -all:foobar",
            "v=spf1 -all/8",
            "v=spf1 ptr/0 -all",
            "v=spf1 ptr:",
            "v=spf1 a/33 -all",
            "v=spf1 a//129 -all",
            "v=spf1 a/24/64 -all",
            "v=spf1 a:example.com:8080",
            "v=spf1 a:111.222.33.44",
            "v=spf1 a:abc.123",
            "v=spf1 a:museum",
            "v=spf1 a:museum.",
            "v=spf1 a:example.-com",
            "v=spf1 a:",
            "v=spf1 a:foo.example.com\0",
            "v=spf1 include +all",
            "v=spf1 include: -all",
            "v=spf1 include:ip5.example.com/24 -all",
            "v=spf1 mx: -all",
            "v=spf1 exists:",
            "v=spf1 exists",
            "v=spf1 exists:mail.example.com/24",
            "v=spf1 ip4:1.2.3.4/33 -all",
            "v=spf1 ip4:1.2.3.4/032 -all",
            "v=spf1 ip4",
            "v=spf1 ip4:1.2.3.4//32",
            "v=spf1 ip4:1.2.3.4:8080",
            "v=spf1 ip4:1.2.3",
            "v=spf1 -all ip6",
            "v=spf1 ip6:::1.1.1.1/129",
            "v=spf1 ip6:::1.1.1.1//33",
            "v=spf1 ip6::CAFE::BABE",
            "v=spf1 1up=foo",
            "v=spf1 =all",
            "v=spf1 -all foo=%abc",
            "v=spf1 exp= -all",
            "v=spf1 exp=-all",
            "v=spf1 redirect=-all ?all",
            "v=spf1 ?all redirect=",
            "v=spf1 exp=a.example.com -all exp=b.example.com",
            "v=spf1 redirect=a.example.com -all redirect=a.example.com",
            "v=spf1 -exists:%(ir).sbl.example.com ?all",
            "v=spf1 -all exp=%{r}.example.com",
            "v=spf1 a:%{a}.example.com -all",
            "v=spf1 a:ctrl.example.com\rptr -all",
            "v=spf1 ip4:192.0.2.5\n include:spf.example.com ~all",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        let non_ascii = b"v=spf1 a:\xEF\xBB\xBFgarbage.example.net -all";
        assert!(Record::parse(non_ascii).is_err());
        assert!(Record::parse(b"v=spf1 a:example.net \x96all").is_err());
    }

    #[test]
    fn toplabels() {
        for good in ["com", "xn--zckzah", "a1", "1a", "1-2"] {
            assert!(is_toplabel(good), "{good}");
        }
        for bad in ["", "123", "-com", "com-", "com:8080", "c_m"] {
            assert!(!is_toplabel(bad), "{bad}");
        }
    }
}
