//! `mailroom dkim` on private roots: keys written private, records printed
//! and shown again, bad names and clashes refused with sysexits codes, keys
//! replaced only under a new selector, removed.

mod common;
use common::*;

use std::os::unix::fs::PermissionsExt;

/// `mailroom dkim ARGS`.
fn dkim(r: &Root, args: &[&str]) -> std::process::Output {
    r.mailroom(&[&["dkim"], args].concat())
}

fn selectors(r: &Root) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(r.path("etc/mail/dkim/shop.example"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn generate_show_replace_and_remove() {
    let r = Root::new("dkim-admin");
    let o = dkim(&r, &["generate", "Shop.Example.", "--selector", "s1"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let zone = stdout(&o);
    assert!(
        zone.starts_with("s1-rsa._domainkey.shop.example. IN TXT ( \"v=DKIM1; k=rsa; p=MIIB"),
        "{zone}"
    );
    assert!(
        zone.contains("\ns1-ed25519._domainkey.shop.example. IN TXT ( \"v=DKIM1; k=ed25519; p="),
        "{zone}"
    );
    assert!(
        zone.split('"').skip(1).step_by(2).all(|s| s.len() <= 255),
        "{zone}"
    );
    assert_eq!(selectors(&r), ["s1-ed25519.key", "s1-rsa.key"]);
    for f in selectors(&r) {
        let m = std::fs::metadata(r.path(&format!("etc/mail/dkim/shop.example/{f}"))).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{f}");
    }
    // show prints the same records (sorted by selector).
    let shown = stdout(&dkim(&r, &["show", "shop.example"]));
    let mut want: Vec<&str> = zone.split_inclusive(" )\n").collect();
    want.sort();
    assert_eq!(shown, want.concat());
    // Refused: a bad name (64), an existing algorithm or selector (73),
    // a replacement under the same selector (73), an RSA size ring cannot use.
    for (args, c) in [
        (&["generate", "../etc"][..], 64),
        (&["generate", "localhost"], 64),
        (&["show", "a b.example"], 64),
        (
            &[
                "generate",
                "shop.example",
                "--algorithm",
                "rsa",
                "--selector",
                "s2",
            ],
            73,
        ),
        (
            &[
                "generate",
                "shop.example",
                "--algorithm",
                "rsa",
                "--selector",
                "s1-rsa",
                "--replace",
            ],
            73,
        ),
        (&["generate", "other.example", "--bits", "1024"], 64),
        (&["remove", "shop.example", "--selector", "nope"], 64),
        (&["show", "other.example"], 66),
    ] {
        let o = dkim(&r, args);
        assert_eq!(code(&o), c, "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with("mailroom: "),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    assert_eq!(selectors(&r), ["s1-ed25519.key", "s1-rsa.key"]);
    // Rotation: a new selector replaces the key of its algorithm.
    let o = dkim(
        &r,
        &[
            "generate",
            "shop.example",
            "--algorithm",
            "rsa",
            "--selector",
            "s2",
            "--replace",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(selectors(&r), ["s1-ed25519.key", "s2.key"]);
    let list = stdout(&dkim(&r, &["list", "--json"]));
    assert_eq!(
        list.trim(),
        "[{\"domain\":\"shop.example\",\"selector\":\"s1-ed25519\",\"type\":\"ed25519\",\"bits\":256},{\"domain\":\"shop.example\",\"selector\":\"s2\",\"type\":\"rsa\",\"bits\":2048}]"
    );
    let o = dkim(&r, &["remove", "shop.example"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!r.path("etc/mail/dkim/shop.example").exists());
    assert_eq!(stdout(&dkim(&r, &["list", "--json"])).trim(), "[]");
}
