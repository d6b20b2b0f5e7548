//! Signing: one `DKIM-Signature:` field per key, added at the top.
//!
//! `h=` lists every present field of [`SIGNED_FIELDS`] once per instance,
//! and `From` once more so that a second `From:` cannot be added.  The
//! body is signed as it goes on the wire (CRLF line ends, before
//! dot-stuffing); a body with 8-bit bytes is made 7-bit first (RFC 6376
//! §5.3), so no relay has to convert it.

use super::canon::{header_hash_input, relaxed_body, relaxed_header, split};
use super::keys::Key;

/// Header fields signed when present (RFC 6376 §5.4.1's list, plus the
/// list headers bulk senders are asked to sign).
pub const SIGNED_FIELDS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Sender",
    "List-Id",
    "List-Post",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
];

/// `message` with one `DKIM-Signature:` field per key added at the top.
/// 8-bit bodies are converted to quoted-printable first (see the module
/// text), so the result is what must be sent.
pub fn sign_message(
    message: &[u8],
    domain: &str,
    keys: &[Key],
    now: i64,
) -> Result<Vec<u8>, String> {
    let converted;
    let message = if crate::smtp::data::has_8bit(split(message).1) {
        converted = crate::smtp::data::to_7bit(message);
        &converted[..]
    } else {
        message
    };
    let (header, body) = split(message);
    let fields = crate::message::Header::parse(header).fields;
    let bh = crate::b64::encode(
        ring::digest::digest(&ring::digest::SHA256, &relaxed_body(body)).as_ref(),
    );
    let mut names: Vec<&str> = Vec::new();
    for want in SIGNED_FIELDS {
        let n = fields.iter().filter(|f| f.is(want)).count();
        let n = if *want == "From" { n + 1 } else { n };
        names.extend(std::iter::repeat_n(*want, n));
    }
    let mut out = Vec::with_capacity(message.len() + 1024 * keys.len());
    for key in keys {
        let unsigned = signature_field(key, domain, now, &names, &bh);
        let mut data = header_hash_input(&fields, &names);
        data.extend_from_slice(&relaxed_header(unsigned.as_bytes()));
        let b = crate::b64::encode(&key.sign(&data)?);
        out.extend_from_slice(unsigned.as_bytes());
        out.extend_from_slice(fold_b64(&b).as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(message);
    Ok(out)
}

/// The signature field up to and including the empty `b=`, folded below
/// 78 columns.
fn signature_field(key: &Key, domain: &str, now: i64, names: &[&str], bh: &str) -> String {
    let mut s = format!(
        "DKIM-Signature: v=1; a={}; c=relaxed/relaxed; d={domain};\n\ts={}; t={now};\n\th=",
        key.algorithm().tag(),
        key.selector
    );
    let mut col = 3;
    for (i, n) in names.iter().enumerate() {
        let piece = if i + 1 < names.len() {
            format!("{n}:")
        } else {
            format!("{n};")
        };
        if col + piece.len() > 76 {
            s.push_str("\n\t ");
            col = 2;
        }
        s.push_str(&piece);
        col += piece.len();
    }
    s.push_str(&format!("\n\tbh={bh};\n\tb="));
    s
}

/// The b= value folded into lines of 72 characters.
fn fold_b64(b: &str) -> String {
    b.as_bytes()
        .chunks(72)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\n\t ")
}

#[cfg(test)]
mod tests {
    use super::super::keys::{Algorithm, generate};
    use super::super::test_vectors::*;
    use super::super::verify::verify;
    use super::*;

    #[test]
    fn rfc8463_ed25519_signature_reproduced_exactly() {
        let key = rfc_ed25519();
        assert_eq!(
            key.dns_record(),
            "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
        );
        let (header, _) = split(RFC8463.as_bytes());
        let fields = crate::message::Header::parse(header).fields;
        let names = [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "from",
            "subject",
            "date",
        ];
        let mut data = header_hash_input(&fields, &names);
        let sig = String::from_utf8(fields[0].raw.clone()).unwrap();
        let unsigned = &sig[..sig.find(" b=").unwrap() + 3];
        data.extend_from_slice(&relaxed_header(unsigned.as_bytes()));
        assert_eq!(
            crate::b64::encode(&key.sign(&data).unwrap()),
            "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw=="
        );
    }

    #[test]
    fn signs_present_fields_oversigns_from_and_verifies() {
        let key = rfc_ed25519();
        let record = key.dns_record();
        let signed = sign_message(sample(), "shop.example", &[key], 1_800_000_000).unwrap();
        let text = String::from_utf8(signed.clone()).unwrap();
        assert!(text.starts_with("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=shop.example;\n\ts=brisbane; t=1800000000;\n\th=From:From:Subject:Date:To:Cc:Message-ID;\n\tbh="), "{text}");
        assert!(text.ends_with("\n\nThanks.\n\n"));
        assert!(text.lines().all(|l| l.len() <= 78), "{text}");
        let lookup =
            |s: &str, d: &str| (s == "brisbane" && d == "shop.example").then(|| record.clone());
        assert_eq!(
            verify(&signed, &lookup),
            vec![Ok("ed25519-sha256 d=shop.example s=brisbane".to_string())]
        );
        // Each kind of tampering breaks it: body, a signed header, a second
        // From: added on top, white space changes do not.
        for (from, to) in [
            ("Thanks.", "Thanks!"),
            ("Your   order", "Your refund"),
            (
                "Received: from x",
                "From: evil@example.com\nReceived: from x",
            ),
        ] {
            let bad = text.replacen(from, to, 1);
            assert!(
                verify(bad.as_bytes(), &lookup)[0].is_err(),
                "{from} -> {to}"
            );
        }
        let spaced = text
            .replace("Thanks.\n", "Thanks.  \r\n")
            .replace("X-Mailer: PHP", "X-Mailer: other");
        assert!(verify(spaced.as_bytes(), &lookup)[0].is_ok());
    }

    #[test]
    fn eight_bit_bodies_are_signed_as_quoted_printable() {
        let msg = "From: a@shop.example\nSubject: s\n\ncaf\u{e9}\n".as_bytes();
        let key = rfc_ed25519();
        let record = key.dns_record();
        let signed = sign_message(msg, "shop.example", &[key], 1).unwrap();
        let text = String::from_utf8(signed.clone()).unwrap();
        assert!(
            text.ends_with("Content-Transfer-Encoding: quoted-printable\n\ncaf=C3=A9\n"),
            "{text}"
        );
        // What the SMTP client would do to it for a 7-bit server changes nothing.
        assert_eq!(crate::smtp::data::to_7bit(&signed), signed);
        let lookup = |_: &str, _: &str| Some(record.clone());
        assert!(verify(&signed, &lookup)[0].is_ok());
    }

    #[test]
    fn rsa_key_generated_signs_and_verifies_with_ed25519_beside_it() {
        let rsa = Key::from_pem("r", &generate(Algorithm::Rsa, 2048).unwrap()).unwrap();
        assert_eq!((rsa.algorithm(), rsa.bits()), (Algorithm::Rsa, 2048));
        let records = [
            ("r", rsa.dns_record()),
            ("brisbane", rfc_ed25519().dns_record()),
        ];
        assert!(
            records[0]
                .1
                .starts_with("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A")
        );
        let signed = sign_message(sample(), "shop.example", &[rsa, rfc_ed25519()], 5).unwrap();
        let lookup = |s: &str, _: &str| records.iter().find(|r| r.0 == s).map(|r| r.1.clone());
        assert_eq!(
            verify(&signed, &lookup),
            vec![
                Ok("rsa-sha256 d=shop.example s=r".to_string()),
                Ok("ed25519-sha256 d=shop.example s=brisbane".to_string())
            ]
        );
    }
}
