//! The TLS certificate of the SMTP server and pop3d (`tls_cert`,
//! `tls_key`, [`ServerCert`]) for `mailroom check --dns`: the servers can
//! use it with its key; a client with the system's CAs trusts it; it is
//! in date for 14 more days; it names the host name (what mail clients
//! connect to: an error if not) and each MX name that points here (what
//! senders that verify, MTA-STS and DANE, connect to: a warning).

use std::time::Duration;

use rustls::CertificateError;
use rustls::pki_types::UnixTime;
use x509_parser::extensions::GeneralName;

use super::{Level, Report};
use crate::tls::ServerCert;

/// Warn this long before the certificate expires: certbot renews at 30
/// days left, so a renewal that keeps failing shows with two weeks to act.
const EXPIRY_WARNING: i64 = 14 * 86400;

/// Can the servers load the pair?
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Usable {
    Yes,
    No(String),
    /// The key is root's to read: not checked.
    KeyUnreadable(String),
}

/// What the check needs of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Facts {
    pub not_before: i64,
    pub not_after: i64,
    /// Its DNS names (subjectAltName), lower case; the subject's CN when
    /// it has none.
    pub names: Vec<String>,
    /// Would a client with the system's CAs accept the chain (dates and
    /// names aside)?
    pub trusted: Result<(), String>,
    pub usable: Usable,
}

/// Read the certificate chain and try it as the servers and a client
/// would.
pub(super) fn read(cert: &ServerCert, host: &str, now: i64) -> Result<Facts, String> {
    let chain = crate::tls::load_chain(&cert.cert)?;
    let (_, x) = x509_parser::parse_x509_certificate(&chain[0])
        .map_err(|e| format!("{}: not a certificate ({e})", cert.cert.display()))?;
    let (not_before, not_after) = (
        x.validity().not_before.timestamp(),
        x.validity().not_after.timestamp(),
    );
    let mut names: Vec<String> = match x.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|g| match g {
                GeneralName::DNSName(n) => Some(n.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        names = x
            .subject()
            .iter_common_name()
            .filter_map(|c| c.as_str().ok())
            .map(str::to_ascii_lowercase)
            .collect();
    }
    // Judged at a moment inside its validity, so that only the chain
    // counts here; dates and names are checked on their own.
    let at = now.clamp(not_before, not_after).max(0) as u64;
    let trusted = match crate::tls::verify_chain(
        &chain,
        host,
        UnixTime::since_unix_epoch(Duration::from_secs(at)),
    ) {
        Ok(()) => Ok(()),
        Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => Ok(()),
        Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            Err("issued by no CA this system trusts (self-signed?)".to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    let usable = match std::fs::File::open(&cert.key) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Usable::KeyUnreadable(
            format!("{}: {}", cert.key.display(), crate::exit::io_reason(&e)),
        ),
        _ => match crate::tls::server_config(&cert.cert, &cert.key) {
            Ok(_) => Usable::Yes,
            Err(e) => Usable::No(e),
        },
    };
    Ok(Facts {
        not_before,
        not_after,
        names,
        trusted,
        usable,
    })
}

/// Does a certificate for `names` cover `host`?  A wildcard stands for
/// exactly one leftmost label (RFC 6125 §6.4.3).
pub(super) fn covers(names: &[String], host: &str) -> bool {
    names.iter().any(|n| {
        n == host
            || n.strip_prefix("*.").is_some_and(|parent| {
                host.split_once('.')
                    .is_some_and(|(first, rest)| !first.is_empty() && rest == parent)
            })
    })
}

fn day(t: i64) -> String {
    let tm = crate::date::utc(t);
    format!("{:04}-{:02}-{:02}", tm.year, tm.month + 1, tm.day)
}

/// The findings about a certificate (`subject`: its file) at `now`.
pub(super) fn judge(
    subject: &str,
    f: &Facts,
    now: i64,
    host: &str,
    mx_names: &[String],
    r: &mut Report,
) {
    let mut add = |level, text: String| r.add(level, subject, "tls", text, Vec::new());
    match &f.usable {
        Usable::Yes => {}
        Usable::No(why) => add(
            Level::Error,
            format!("the SMTP server and pop3d cannot use it ({why}): TLS is off"),
        ),
        Usable::KeyUnreadable(why) => add(
            Level::Warning,
            format!("whether its key matches was not checked: {why} (run as root)"),
        ),
    }
    if now < f.not_before {
        add(
            Level::Error,
            format!(
                "not valid before {}: clients refuse it until then",
                day(f.not_before)
            ),
        );
    } else if now >= f.not_after {
        add(
            Level::Error,
            format!(
                "expired on {}: mail clients refuse it, and so do senders that require TLS; renew it (certbot renew)",
                day(f.not_after)
            ),
        );
    } else if f.not_after - now < EXPIRY_WARNING {
        let days = (f.not_after - now + 43200) / 86400;
        add(
            Level::Warning,
            format!(
                "expires on {}, in {} day{}: renew it now (certbot renew), or mail clients refuse it then",
                day(f.not_after),
                days,
                if days == 1 { "" } else { "s" }
            ),
        );
    }
    let named = if f.names.is_empty() {
        "no name".to_string()
    } else {
        f.names.join(", ")
    };
    if !covers(&f.names, host) {
        add(
            Level::Error,
            format!(
                "it does not name {host}, the name mail clients connect to (it names {named}): they refuse it; get one that names {host}"
            ),
        );
    }
    for mx in mx_names.iter().filter(|m| *m != host) {
        if !covers(&f.names, mx) {
            add(
                Level::Warning,
                format!(
                    "it does not name {mx}, an MX host of this box (it names {named}): senders that verify (MTA-STS, DANE) refuse it; add {mx} to the certificate"
                ),
            );
        }
    }
    if let Err(why) = &f.trusted {
        add(
            Level::Warning,
            format!(
                "not trusted: {why}: mail clients warn or refuse; one from a public CA (Let's Encrypt: certbot) is trusted everywhere"
            ),
        );
    }
}

/// Check the servers' certificate.
pub(super) fn check(cert: &ServerCert, host: &str, mx_names: &[String], now: i64, r: &mut Report) {
    let subject = cert.cert.display().to_string();
    if !cert.cert.exists() {
        r.add(
            Level::Warning,
            &subject,
            "tls",
            format!("no certificate: STARTTLS and POP3 over TLS are off, so mail and passwords cross the network in clear text; get one for {host} (certbot certonly --standalone -d {host}) and set tls_cert and tls_key"),
            Vec::new(),
        );
        return;
    }
    match read(cert, host, now) {
        Ok(f) => judge(&subject, &f, now, host, mx_names, r),
        Err(e) => r.add(
            Level::Error,
            &subject,
            "tls",
            format!("unusable ({e}): TLS is off"),
            Vec::new(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::HOST;
    use super::*;

    /// A self-signed EC certificate for mx.example.test and
    /// *.shop.example, valid 2026-12-05 to 2126-11-11, and its key.
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBtzCCAV2gAwIBAgIUKhSXh3Y/LI5FfBYP30O1UvaMvQQwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPbXguZXhhbXBsZS50ZXN0MCAXDTI2MTIwNTExMTMzMVoYDzIx
MjYxMTExMTExMzMxWjAaMRgwFgYDVQQDDA9teC5leGFtcGxlLnRlc3QwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAAQArrTktUbJJLnWZR6Ai5GTcnaavsik9a9ah+p6
qoX5XhRBr0HwhkKi3toLRxfYfO3MXEfRMTUqt7NLZ7ovnWOeo38wfTAdBgNVHQ4E
FgQUDcN9AGVtz/Dbz68csUPJyWtnxgUwHwYDVR0jBBgwFoAUDcN9AGVtz/Dbz68c
sUPJyWtnxgUwDwYDVR0TAQH/BAUwAwEB/zAqBgNVHREEIzAhgg9teC5leGFtcGxl
LnRlc3SCDiouc2hvcC5leGFtcGxlMAoGCCqGSM49BAMCA0gAMEUCIQDijcNzAbY+
+67Ad0lhGTTJbcjYpnhUUZDCpetCaW+iigIgb5SU6ImiEbuwnnPjj33vma3bj6Z7
vHxmJaFtxa7RGXg=
-----END CERTIFICATE-----
";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgFBap+AseALjG8O27
8BJ2Dy3nXnK8QABm1sBjwZFAGAWhRANCAAQArrTktUbJJLnWZR6Ai5GTcnaavsik
9a9ah+p6qoX5XhRBr0HwhkKi3toLRxfYfO3MXEfRMTUqt7NLZ7ovnWOe
-----END PRIVATE KEY-----
";
    const DAY: i64 = 86400;
    /// 2026-12-05 11:13:31 UTC, the certificate's notBefore.
    const ISSUED: i64 = 1796469211;

    fn facts(not_after: i64) -> Facts {
        Facts {
            not_before: 0,
            not_after,
            names: vec![HOST.into(), "*.shop.example".into()],
            trusted: Ok(()),
            usable: Usable::Yes,
        }
    }

    fn judged(f: &Facts, now: i64, mx: &[&str]) -> Vec<(Level, String)> {
        let mut r = Report::default();
        let mx: Vec<String> = mx.iter().map(|s| s.to_string()).collect();
        judge("mail.crt", f, now, HOST, &mx, &mut r);
        r.0.into_iter().map(|x| (x.level, x.text)).collect()
    }

    #[test]
    fn wildcards_stand_for_one_label() {
        let names = vec!["*.shop.example".to_string(), HOST.to_string()];
        assert!(covers(&names, HOST));
        assert!(covers(&names, "mail.shop.example"));
        assert!(!covers(&names, "shop.example"));
        assert!(!covers(&names, "a.b.shop.example"));
        assert!(!covers(&names, "example.test"));
    }

    #[test]
    fn expiry_within_14_days_warns_and_past_it_is_an_error() {
        let now = 1_000 * DAY;
        assert_eq!(judged(&facts(now + 20 * DAY), now, &[]), vec![]);
        let soon = judged(&facts(now + 5 * DAY + 60), now, &[]);
        assert_eq!(soon.len(), 1);
        assert_eq!(soon[0].0, Level::Warning);
        assert!(
            soon[0].1.starts_with("expires on 1972-10-02, in 5 days"),
            "{soon:?}"
        );
        let gone = judged(&facts(now - DAY), now, &[]);
        assert_eq!(gone[0].0, Level::Error);
        assert!(gone[0].1.starts_with("expired on 1972-09-26"), "{gone:?}");
        let mut early = facts(now + 400 * DAY);
        early.not_before = now + DAY;
        assert_eq!(judged(&early, now, &[])[0].0, Level::Error);
    }

    #[test]
    fn the_host_name_must_be_covered_and_mx_names_should_be() {
        let now = 1_000 * DAY;
        let mut f = facts(now + 400 * DAY);
        assert_eq!(judged(&f, now, &[HOST, "mail.shop.example"]), vec![]);
        let mx = judged(&f, now, &["mx.other.example"]);
        assert_eq!(mx.len(), 1);
        assert_eq!(mx[0].0, Level::Warning);
        f.names = vec!["other.example".into()];
        let host = judged(&f, now, &[]);
        assert_eq!(host[0].0, Level::Error);
        assert!(
            host[0].1.contains("does not name mx.example.test"),
            "{host:?}"
        );
    }

    #[test]
    fn untrusted_or_unusable_certificates_are_reported() {
        let now = 1_000 * DAY;
        let mut f = facts(now + 400 * DAY);
        f.trusted = Err("issued by no CA this system trusts (self-signed?)".into());
        assert_eq!(judged(&f, now, &[])[0].0, Level::Warning);
        f.trusted = Ok(());
        f.usable = Usable::No("the key does not match".into());
        assert_eq!(judged(&f, now, &[])[0].0, Level::Error);
        f.usable = Usable::KeyUnreadable("permission denied".into());
        assert_eq!(judged(&f, now, &[])[0].0, Level::Warning);
    }

    #[test]
    fn a_certificate_file_is_read_as_the_servers_and_clients_read_it() {
        let dir = std::env::temp_dir().join(format!("mailroom-cert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = ServerCert {
            cert: dir.join("mail.crt"),
            key: dir.join("mail.key"),
        };
        std::fs::write(&cert.cert, CERT).unwrap();
        std::fs::write(&cert.key, KEY).unwrap();
        let f = read(&cert, HOST, ISSUED + DAY).unwrap();
        assert_eq!(f.not_before, ISSUED);
        assert!(f.not_after > ISSUED + 99 * 365 * DAY);
        assert_eq!(f.names, vec![HOST, "*.shop.example"]);
        assert_eq!(f.usable, Usable::Yes);
        assert!(f.trusted.is_err(), "self-signed");
        // Nothing there: a warning; garbage: an error.
        let mut r = Report::default();
        check(
            &ServerCert {
                cert: dir.join("none.crt"),
                key: cert.key.clone(),
            },
            HOST,
            &[],
            0,
            &mut r,
        );
        assert_eq!(r.0[0].level, Level::Warning);
        std::fs::write(&cert.cert, "not PEM").unwrap();
        let mut r = Report::default();
        check(&cert, HOST, &[], 0, &mut r);
        assert_eq!(r.0[0].level, Level::Error);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
