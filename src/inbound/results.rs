//! `Authentication-Results:` (RFC 8601): the one field where this host
//! says what it found about a message's sender, written by the queue's
//! door at the top of the header and read back at delivery by the filter
//! language (`if auth dmarc is fail`) and the quarantine rule.
//!
//! ```text
//! Authentication-Results: mx.shop.example;
//!     spf=pass smtp.mailfrom=alice@example.org;
//!     dkim=pass header.d=example.org header.s=sel header.a=rsa-sha256 header.b=AbCdEfGh;
//!     dmarc=fail (p=quarantine) header.from=example.org policy.dmarc=quarantine
//! ```
//!
//! * The authserv-id (`authserv_id`, default the host name) names this
//!   host.  A field arriving with it is removed at the door (RFC 8601 §5):
//!   otherwise a sender could forge a pass.  Ids compare case-insensitively
//!   and without a trailing dot.
//! * `policy.dmarc` is the disposition this host applied (`none`,
//!   `quarantine`, `reject`); the domain's published policy is in the
//!   comment.  Delivery files `dmarc=fail … policy.dmarc=quarantine` into
//!   the Spam folder.
//! * `auth=pass smtp.auth=LOGIN` for a client that logged in (RFC 8601
//!   §2.7.4); such mail is not checked further.

use crate::message::Header;

/// One `method=result` with its reason, comment and properties.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Method {
    /// `spf`, `dkim`, `dmarc`, `auth`, `iprev`...
    pub method: String,
    /// `pass`, `fail`, `none`, ...
    pub result: String,
    /// A comment after the result: `(p=reject)`.
    pub comment: Option<String>,
    /// `reason="..."`.
    pub reason: Option<String>,
    /// `ptype.property=value`, in order.
    pub props: Vec<(String, String)>,
}

impl Method {
    pub fn new(method: &str, result: &str) -> Method {
        Method {
            method: method.to_string(),
            result: result.to_string(),
            ..Default::default()
        }
    }

    pub fn prop(mut self, name: &str, value: &str) -> Method {
        self.props.push((name.to_string(), value.to_string()));
        self
    }

    pub fn comment(mut self, text: &str) -> Method {
        self.comment = Some(text.to_string());
        self
    }

    pub fn reason(mut self, text: &str) -> Method {
        self.reason = Some(text.to_string());
        self
    }

    /// The value of property `name` (`header.d`), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A whole `Authentication-Results:` field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthResults {
    pub authserv_id: String,
    /// Empty: `none` (nothing was checked).
    pub methods: Vec<Method>,
}

impl AuthResults {
    pub fn new(authserv_id: &str) -> AuthResults {
        AuthResults {
            authserv_id: authserv_id.to_string(),
            methods: Vec::new(),
        }
    }

    /// The results of `method`, in order (`dkim` may have several).
    pub fn results<'a>(&'a self, method: &'a str) -> impl Iterator<Item = &'a Method> + 'a {
        self.methods
            .iter()
            .filter(move |m| m.method.eq_ignore_ascii_case(method))
    }

    /// Did `method` give `result` (any of its results, for DKIM)?
    pub fn says(&self, method: &str, result: &str) -> bool {
        self.results(method)
            .any(|m| m.result.eq_ignore_ascii_case(result))
    }

    /// The disposition applied for DMARC (`policy.dmarc`) when DMARC failed.
    pub fn dmarc_disposition(&self) -> Option<&str> {
        self.results("dmarc")
            .find(|m| m.result.eq_ignore_ascii_case("fail"))
            .and_then(|m| m.get("policy.dmarc"))
    }

    /// The field, name included, folded one method per line.
    pub fn render(&self) -> String {
        let mut out = format!("Authentication-Results: {}", clean(&self.authserv_id));
        if self.methods.is_empty() {
            out.push_str("; none");
            return out;
        }
        for m in &self.methods {
            out.push_str(";\n\t");
            out.push_str(&format!("{}={}", token(&m.method), token(&m.result)));
            if let Some(c) = &m.comment {
                out.push_str(&format!(" ({})", comment(c)));
            }
            if let Some(r) = &m.reason {
                out.push_str(&format!(" reason={}", quoted(r)));
            }
            for (n, v) in &m.props {
                out.push_str(&format!(" {}={}", token(n), value(v)));
            }
        }
        out
    }

    /// Parse a field's value (after `Authentication-Results:`).
    pub fn parse(value: &str) -> Option<AuthResults> {
        let mut p = Parser::new(value);
        let authserv_id = p.word()?;
        p.cfws();
        // An optional version number after the authserv-id.
        if p.peek().is_some_and(|c| c.is_ascii_digit()) {
            p.word()?;
        }
        let mut out = AuthResults::new(&authserv_id);
        loop {
            p.cfws();
            match p.peek() {
                None => break,
                Some(b';') => p.i += 1,
                Some(_) => return None,
            }
            p.cfws();
            if p.peek().is_none() {
                break;
            }
            let method = p.token_until(b"=;/")?;
            if method.eq_ignore_ascii_case("none") {
                continue;
            }
            p.cfws();
            if p.peek() == Some(b'/') {
                // method/version
                p.i += 1;
                p.cfws();
                p.token_until(b"=;")?;
                p.cfws();
            }
            if p.peek() != Some(b'=') {
                return None;
            }
            p.i += 1;
            p.cfws();
            p.last_comment = None;
            let result = p.token_until(b";( ")?;
            let mut m = Method::new(&method.to_ascii_lowercase(), &result.to_ascii_lowercase());
            m.comment = p.last_comment.take();
            loop {
                p.cfws();
                if m.comment.is_none() {
                    m.comment = p.last_comment.take();
                }
                match p.peek() {
                    None | Some(b';') => break,
                    _ => {}
                }
                let name = p.token_until(b"=;")?;
                p.cfws();
                if p.peek() != Some(b'=') {
                    return None;
                }
                p.i += 1;
                p.cfws();
                let v = p.word()?;
                if name.eq_ignore_ascii_case("reason") {
                    m.reason = Some(v);
                } else {
                    m.props.push((name.to_ascii_lowercase(), v));
                }
            }
            out.methods.push(m);
        }
        Some(out)
    }
}

/// Is this field's authserv-id `id` (case-insensitive, trailing dot
/// ignored)?
pub fn is_ours(field_value: &str, id: &str) -> bool {
    let mut p = Parser::new(field_value);
    match p.word() {
        Some(w) => same_id(&w, id),
        None => false,
    }
}

fn same_id(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// Our own results in `header`: the first field with our authserv-id
/// (the door removed any that arrived from outside, and ours is on top).
pub fn ours(header: &Header, authserv_id: &str) -> Option<AuthResults> {
    header
        .all("Authentication-Results")
        .map(|f| f.value())
        .filter(|v| is_ours(v, authserv_id))
        .find_map(|v| AuthResults::parse(&v))
}

/// Remove every field claiming our authserv-id; how many went.
pub fn remove_ours(header: &mut Header, authserv_id: &str) -> usize {
    let before = header.fields.len();
    header
        .fields
        .retain(|f| !(f.is("Authentication-Results") && is_ours(&f.value(), authserv_id)));
    before - header.fields.len()
}

/// A cursor over a field value: tokens, quoted strings, and comments
/// (RFC 5322 CFWS), keeping the last comment seen.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    last_comment: Option<String>,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Parser<'a> {
        Parser {
            s: s.as_bytes(),
            i: 0,
            last_comment: None,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// Skip white space and comments (nested), remembering the last comment.
    fn cfws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() {
                self.i += 1;
            } else if c == b'(' {
                let start = self.i + 1;
                let mut depth = 0;
                while let Some(c) = self.peek() {
                    self.i += 1;
                    match c {
                        b'\\' => self.i += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let end = self.i.saturating_sub(1).max(start).min(self.s.len());
                self.last_comment = Some(
                    String::from_utf8_lossy(&self.s[start..end])
                        .trim()
                        .to_string(),
                );
            } else {
                break;
            }
        }
    }

    /// A token or a quoted string.
    fn word(&mut self) -> Option<String> {
        self.cfws();
        if self.peek() == Some(b'"') {
            self.i += 1;
            let mut out = Vec::new();
            while let Some(c) = self.peek() {
                self.i += 1;
                match c {
                    b'\\' => {
                        if let Some(n) = self.peek() {
                            out.push(n);
                            self.i += 1;
                        }
                    }
                    b'"' => return Some(String::from_utf8_lossy(&out).into_owned()),
                    _ => out.push(c),
                }
            }
            return None;
        }
        self.token_until(b";")
    }

    /// Bytes up to white space, a comment, or one of `stops`; none: None.
    fn token_until(&mut self, stops: &[u8]) -> Option<String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() || c == b'(' || stops.contains(&c) {
                break;
            }
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
}

/// Characters that need quoting in a property value (RFC 2045 tspecials
/// and space); `@` and `/` are allowed bare by RFC 8601 §2.2 in pvalue.
fn needs_quotes(v: &str) -> bool {
    v.is_empty()
        || v.bytes()
            .any(|c| c <= b' ' || c >= 0x7f || b"()<>,;:\\\"[]?=".contains(&c))
}

fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect::<String>()
}

fn token(s: &str) -> String {
    let t: String = clean(s)
        .chars()
        .filter(|c| c.is_ascii_graphic() && !"()<>,;:\\\"[]?=".contains(*c))
        .collect();
    if t.is_empty() { "none".to_string() } else { t }
}

fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in clean(s).chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn value(s: &str) -> String {
    if needs_quotes(s) { quoted(s) } else { clean(s) }
}

fn comment(s: &str) -> String {
    clean(s)
        .chars()
        .map(|c| {
            if c == '(' || c == ')' || c == '\\' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AuthResults {
        let mut ar = AuthResults::new("mx.shop.example");
        ar.methods
            .push(Method::new("spf", "pass").prop("smtp.mailfrom", "alice@example.org"));
        ar.methods.push(
            Method::new("dkim", "fail")
                .reason("body hash did not verify")
                .prop("header.d", "example.org")
                .prop("header.s", "sel")
                .prop("header.b", "AbC+/dE="),
        );
        ar.methods.push(
            Method::new("dmarc", "fail")
                .comment("p=quarantine")
                .prop("header.from", "example.org")
                .prop("policy.dmarc", "quarantine"),
        );
        ar
    }

    #[test]
    fn renders_one_method_per_line_and_reads_back() {
        let ar = sample();
        let text = ar.render();
        assert_eq!(
            text,
            "Authentication-Results: mx.shop.example;\n\tspf=pass smtp.mailfrom=alice@example.org;\n\tdkim=fail reason=\"body hash did not verify\" header.d=example.org header.s=sel header.b=\"AbC+/dE=\";\n\tdmarc=fail (p=quarantine) header.from=example.org policy.dmarc=quarantine"
        );
        let value = text.split_once(':').unwrap().1.replace("\n\t", " ");
        assert_eq!(AuthResults::parse(&value), Some(ar.clone()));
        assert!(ar.says("dmarc", "fail"));
        assert!(ar.says("spf", "PASS"));
        assert_eq!(ar.dmarc_disposition(), Some("quarantine"));
    }

    #[test]
    fn reads_other_writers_fields() {
        // Gmail's shape: comments after results, a version, odd spacing.
        let v = "mx.google.com 1;\r\n       dkim=pass header.i=@example.com header.s=s1 header.b=Ab12;\r\n       spf=softfail (google.com: domain of transitioning x@example.com does not designate 192.0.2.1 as permitted sender) smtp.mailfrom=x@example.com;\r\n       dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=example.com";
        let ar = AuthResults::parse(v).unwrap();
        assert_eq!(ar.authserv_id, "mx.google.com");
        assert_eq!(ar.methods.len(), 3);
        assert_eq!(ar.methods[1].result, "softfail");
        assert_eq!(ar.methods[1].get("smtp.mailfrom"), Some("x@example.com"));
        assert_eq!(
            ar.methods[2].comment.as_deref(),
            Some("p=NONE sp=NONE dis=NONE")
        );
        assert_eq!(
            AuthResults::parse("example.net; none").unwrap().methods,
            vec![]
        );
        assert!(AuthResults::parse("").is_none());
    }

    #[test]
    fn ours_is_told_by_the_authserv_id() {
        assert!(is_ours("mx.shop.example; spf=pass", "MX.Shop.Example."));
        assert!(is_ours(" mx.shop.example. ; dmarc=pass", "mx.shop.example"));
        assert!(!is_ours(
            "mx.shop.example.evil; spf=pass",
            "mx.shop.example"
        ));
        assert!(!is_ours("other.example; spf=pass", "mx.shop.example"));
        let mut h = Header::parse(
            b"Authentication-Results: mx.shop.example; dmarc=pass header.from=shop.example\nAuthentication-Results: relay.example; spf=pass smtp.mailfrom=a@b.example\nSubject: hi\n",
        );
        assert!(ours(&h, "mx.shop.example").unwrap().says("dmarc", "pass"));
        assert_eq!(remove_ours(&mut h, "mx.shop.example"), 1);
        assert_eq!(h.fields.len(), 2);
        assert!(ours(&h, "mx.shop.example").is_none());
    }

    #[test]
    fn values_cannot_break_out_of_the_field() {
        let mut ar = AuthResults::new("mx.example");
        ar.methods
            .push(Method::new("spf", "pass").prop("smtp.mailfrom", "a\r\nX-Evil: 1; dmarc=pass@x"));
        let text = ar.render();
        assert!(!text.contains("\r"), "{text}");
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        let back = AuthResults::parse(text.split_once(':').unwrap().1).unwrap();
        assert_eq!(back.methods.len(), 1);
        assert!(!back.says("dmarc", "pass"));
    }
}
