//! `mailroom mailbox` and `mailroom import` against a private root: the
//! round trip of a mailbox (add, list, passwd, quota, remove) with POP3's
//! own password check, imports that change nothing when one line is bad,
//! and `kill -9` of a big import at random moments.

mod common;
use common::*;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailroom::config::{Config, Paths};
use mailroom::login::{Attempt, Settings, check};

/// A root with two local domains, one virtual domain, root, bob and the
/// virtual mailbox owner vmail.
fn admin_root(name: &str) -> Root {
    let r = Root::new(name);
    r.write(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\n\
         bob:x:1000:1000:Bob:/home/bob:/bin/bash\n\
         vmail:x:999:8:virtual mail:/var/mail/virtual:/usr/sbin/nologin\n",
    );
    r.write(
        "etc/shadow",
        "root:*:19000:0:99999:7:::\nbob:*:19000:0:99999:7:::\nvmail:*:19000:0:99999:7:::\n",
    );
    fs::set_permissions(
        r.path("etc/shadow"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    r.write("etc/group", "root:x:0:\nmail:x:8:\n");
    r.write(
        "etc/mail/local-host-names",
        "# local\nexample.com\nshop.example\n",
    );
    r.write("etc/mail/virtuser-domains", "virt.example\n");
    r.write(
        "etc/mail/virtusertable",
        "# hand-written\npostmaster@shop.example\tbob\n",
    );
    r.write("etc/mail/aliases", "postmaster: root\n");
    r
}

/// Does POP3 (its own login check, its own crypt) take `login`/`pw`?
fn pop3_accepts(r: &Root, login: &str, pw: &str) -> Option<String> {
    let cfg = Config::load(Paths::under(r.dir.clone()), None).unwrap();
    let settings = Settings::from_config(&cfg).unwrap();
    check(
        &cfg,
        &settings,
        &Attempt::password(login.as_bytes(), pw.as_bytes()),
    )
    .ok()
    .map(|id| id.owner)
}

/// The line of `file` whose first colon field is `name`.
fn colon_line(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find(|l| l.split(':').next() == Some(name))
        .map(str::to_string)
}

#[test]
fn mailbox_round_trip() {
    let r = admin_root("mbox-round-trip");

    // add
    let out = ok(&r.mailroom_with_input(
        &["mailbox", "add", "Info@Shop.Example", "--password-stdin"],
        b"first secret\n",
    ));
    assert!(out.contains("system user info-shop"), "{out}");
    let pw = colon_line(&r.read("etc/passwd"), "info-shop").unwrap();
    assert_eq!(
        pw,
        "info-shop:x:1001:8:info@shop.example:/nonexistent:/usr/sbin/nologin"
    );
    let sh = colon_line(&r.read("etc/shadow"), "info-shop").unwrap();
    let f: Vec<&str> = sh.split(':').collect();
    assert_eq!(f.len(), 9, "{sh}");
    assert!(f[1].starts_with("$6$"), "{sh}");
    assert_eq!(f[1].split('$').nth(2).unwrap().len(), 16, "16 salt chars");
    assert!(
        r.read("etc/mail/virtusertable").ends_with(
            "# hand-written\npostmaster@shop.example\tbob\ninfo@shop.example\tinfo-shop\n"
        )
    );
    // The compiled index was rebuilt with the table.
    assert!(r.path("etc/mail/virtusertable.mrdb").exists());
    let mbox = r.path("var/mail/info-shop");
    let m = fs::metadata(&mbox).unwrap();
    assert_eq!(m.len(), 0);
    assert_eq!(m.mode() & 0o7777, 0o660);
    if is_root() {
        assert_eq!((m.uid(), m.gid()), (1001, 8));
    }
    // The shadow file kept its mode.
    assert_eq!(
        fs::metadata(r.path("etc/shadow")).unwrap().mode() & 0o777,
        0o640
    );

    // POP3 logs the address in with the password, through the virtusertable.
    assert_eq!(
        pop3_accepts(&r, "info@shop.example", "first secret").as_deref(),
        Some("info-shop")
    );
    assert_eq!(pop3_accepts(&r, "info@shop.example", "first secre"), None);

    // The same address again: refused, naming the entry that has it.
    let o = r.mailroom_with_input(
        &["mailbox", "add", "info@shop.example", "--password-stdin"],
        b"x\n",
    );
    assert_eq!(code(&o), 65, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("info@shop.example is already taken: ")
            && stderr(&o).contains("virtusertable:3: info@shop.example info-shop"),
        "{}",
        stderr(&o)
    );
    // Same local part, other domain: another person, another user.
    ok(&r.mailroom_with_input(
        &["mailbox", "add", "info@example.com", "--password-stdin"],
        b"other\n",
    ));
    assert!(colon_line(&r.read("etc/passwd"), "info-example").is_some());
    // Unknown domain, bad name, no password.
    let o = r.mailroom_with_input(
        &["mailbox", "add", "a@nowhere.example", "--password-stdin"],
        b"x\n",
    );
    assert_eq!(code(&o), 67, "{}", stderr(&o));
    assert!(stderr(&o).contains("mailroom domain add nowhere.example"));
    let o = r.mailroom_with_input(
        &["mailbox", "add", "a b@example.com", "--password-stdin"],
        b"x\n",
    );
    assert_eq!(code(&o), 64, "{}", stderr(&o));
    let o = r.mailroom_with_input(
        &["mailbox", "add", "empty@example.com", "--password-stdin"],
        b"\n",
    );
    assert_eq!(code(&o), 65, "{}", stderr(&o));
    assert!(colon_line(&r.read("etc/passwd"), "empty-example").is_none());
    // Without a terminal and without --password-stdin: told what to do.
    let mut cmd = Command::new(bin("mailroom"));
    cmd.env("MAILROOM_ROOT", &r.dir)
        .args(["mailbox", "add", "tty@example.com"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe: no controlling terminal.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    assert_eq!(code(&o), 64, "{}", stderr(&o));
    assert!(stderr(&o).contains("--password-stdin"), "{}", stderr(&o));

    // list
    let out = r.mailroom_ok(&["mailbox", "list"]);
    assert!(out.starts_with("ADDRESS"), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("info@shop.example"))
        .unwrap();
    assert!(line.contains("info-shop") && line.contains("var/mail/info-shop"));
    assert!(
        !out.contains("vmail"),
        "the virtual owner is no mailbox: {out}"
    );
    let json = r.mailroom_ok(&["mailbox", "list", "--json"]);
    assert!(json.contains("\"address\": \"info@shop.example\", \"user\": \"info-shop\""));
    let only = r.mailroom_ok(&["mailbox", "list", "example.com"]);
    assert!(only.contains("info@example.com") && !only.contains("info@shop.example"));

    // passwd: the new password works at once, the old one no more.
    ok(&r.mailroom_with_input(
        &["mailbox", "passwd", "info@shop.example", "--password-stdin"],
        b"second secret\r\n",
    ));
    assert_eq!(
        pop3_accepts(&r, "info@shop.example", "second secret").as_deref(),
        Some("info-shop")
    );
    assert_eq!(pop3_accepts(&r, "info@shop.example", "first secret"), None);
    let o = r.mailroom_with_input(
        &[
            "mailbox",
            "passwd",
            "nobody@shop.example",
            "--password-stdin",
        ],
        b"x\n",
    );
    assert_eq!(code(&o), 67);

    // quota
    r.mailroom_ok(&["mailbox", "quota", "info@shop.example", "200m"]);
    assert_eq!(r.read("etc/mail/quotas"), "info-shop\t200M\n");
    assert!(r.path("etc/mail/quotas.mrdb").exists());
    let json = r.mailroom_ok(&["mailbox", "list", "--json"]);
    assert!(
        json.contains("\"quota\": 209715200, \"quota_source\": \"quotas\""),
        "{json}"
    );
    r.mailroom_ok(&["mailbox", "quota", "info@shop.example", "unlimited"]);
    assert_eq!(r.read("etc/mail/quotas"), "info-shop\t0\n");
    r.mailroom_ok(&["mailbox", "quota", "info@shop.example", "none"]);
    assert_eq!(r.read("etc/mail/quotas"), "");
    assert_eq!(
        code(&r.mailroom(&["mailbox", "quota", "info@shop.example", "lots"])),
        64
    );

    // remove: refused while an alias still delivers there.
    r.write(
        "etc/mail/aliases",
        "postmaster: root\nteam: bob, info-shop\n",
    );
    let o = r.mailroom(&["mailbox", "remove", "info@shop.example"]);
    assert_eq!(code(&o), 65);
    assert!(
        stderr(&o).contains("aliases:2: team: bob, info-shop"),
        "{}",
        stderr(&o)
    );
    r.write("etc/mail/aliases", "postmaster: root\n");
    fs::write(&mbox, "From a@b  Sat Nov 21 05:00:00 2026\n\nhi\n\n").unwrap();
    r.mailroom_ok(&["mailbox", "remove", "info@shop.example"]);
    assert!(colon_line(&r.read("etc/passwd"), "info-shop").is_none());
    assert!(colon_line(&r.read("etc/shadow"), "info-shop").is_none());
    assert!(
        !r.read("etc/mail/virtusertable")
            .contains("info@shop.example")
    );
    assert!(!exists(&mbox));
    assert_eq!(pop3_accepts(&r, "info@shop.example", "second secret"), None);
    // --keep-mail leaves the mail; a login account is never removed.
    r.mailroom_ok(&["mailbox", "remove", "info@example.com", "--keep-mail"]);
    assert!(exists(&r.path("var/mail/info-example")));
    let o = r.mailroom(&["mailbox", "remove", "bob"]);
    assert_eq!(code(&o), 77, "{}", stderr(&o));
    assert!(colon_line(&r.read("etc/passwd"), "bob").is_some());
    // The hand-written lines are untouched.
    assert_eq!(
        r.read("etc/mail/virtusertable"),
        "# hand-written\npostmaster@shop.example\tbob\n"
    );
}

#[test]
fn virtual_accounts() {
    let r = admin_root("mbox-virtual");
    ok(&r.mailroom_with_input(
        &[
            "mailbox",
            "add",
            "orders@virt.example",
            "--virtual",
            "--password-stdin",
        ],
        b"v-secret\n",
    ));
    let v = r.read("etc/mail/passwd");
    assert!(
        v.starts_with("orders@virt.example:$6$") && v.ends_with(":::\n"),
        "{v}"
    );
    assert_eq!(
        fs::metadata(r.path("etc/mail/passwd")).unwrap().mode() & 0o777,
        0o600
    );
    assert!(colon_line(&r.read("etc/passwd"), "orders-virt").is_none());
    let mbox = r.path("var/mail/virtual/virt.example/orders");
    assert!(exists(&mbox));
    if is_root() {
        assert_eq!(fs::metadata(&mbox).unwrap().uid(), 999);
    }
    assert_eq!(
        pop3_accepts(&r, "orders@virt.example", "v-secret").as_deref(),
        Some("vmail")
    );
    ok(&r.mailroom_with_input(
        &[
            "mailbox",
            "passwd",
            "orders@virt.example",
            "--password-stdin",
        ],
        b"v2\n",
    ));
    assert_eq!(
        pop3_accepts(&r, "orders@virt.example", "v2").as_deref(),
        Some("vmail")
    );
    r.mailroom_ok(&["mailbox", "quota", "orders@virt.example", "1G"]);
    assert_eq!(r.read("etc/mail/quotas"), "orders@virt.example\t1G\n");
    let out = r.mailroom_ok(&["mailbox", "list"]);
    assert!(out.contains("orders@virt.example (virtual)"), "{out}");
    r.mailroom_ok(&["mailbox", "remove", "orders@virt.example"]);
    assert_eq!(r.read("etc/mail/passwd"), "");
    assert_eq!(r.read("etc/mail/quotas"), "");
    assert!(!exists(&mbox));
}

/// Every file of `etc/mail` (but the lock), `etc/passwd`, `etc/shadow`:
/// name → bytes.
fn snapshot(r: &Root) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(r.path("etc/mail")).unwrap() {
        let e = e.unwrap();
        let n = e.file_name().to_string_lossy().into_owned();
        if n != ".mailroom.lock" && e.file_type().unwrap().is_file() {
            out.insert(format!("etc/mail/{n}"), fs::read(e.path()).unwrap());
        }
    }
    for f in ["etc/passwd", "etc/shadow"] {
        out.insert(f.to_string(), fs::read(r.path(f)).unwrap());
    }
    let mut spool: Vec<String> = fs::read_dir(r.path("var/mail"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    spool.sort();
    out.insert("var/mail/".into(), spool.join("\n").into_bytes());
    out
}

#[test]
fn import_all_or_nothing() {
    let r = admin_root("import-bad-line");
    // A first change, so that the lock file exists for the snapshot.
    ok(&r.mailroom_with_input(
        &["mailbox", "add", "first@example.com", "--password-stdin"],
        b"pw\n",
    ));
    let good = format!(
        "# moved from the old host\n\
                domain new.example\n\
                a@new.example   \"pass a\"\n\
                b@new.example   pass-b\n\
                c@shop.example  {{CRYPT}}{SECRET_HASH}\n\
                alias all@new.example team@new.example\n\
                alias team@new.example a@new.example b@new.example\n\
                forward b@new.example b@mobile.example keep-copy\n\
                catchall new.example a@new.example\n\
                quota a@new.example 200M\n"
    );
    let before = snapshot(&r);
    // One bad line, in every place it can be found: each names its line
    // and changes nothing at all.
    let cases: Vec<(String, usize, &str)> = vec![
        (
            format!("{good}lonely@new.example\n"),
            11,
            "expected ADDRESS PASSWORD",
        ),
        (
            format!("{good}first@example.com pw\n"),
            11,
            "first@example.com is already taken",
        ),
        (
            format!("{good}a@new.example again\n"),
            11,
            "a@new.example is already taken",
        ),
        (
            format!("{good}x@unknown.example pw\n"),
            11,
            "unknown.example is not a domain",
        ),
        (
            format!("{good}alias z@new.example nobody-here\n"),
            11,
            "nobody-here",
        ),
        (
            format!("{good}forward nosuch@new.example a@b.example\n"),
            11,
            "nosuch@new.example",
        ),
        (
            format!("{good}quota ghost@new.example 1M\n"),
            11,
            "no mailbox ghost@new.example",
        ),
        (
            format!("x@unknown.example pw\n{good}"),
            1,
            "unknown.example is not a domain",
        ),
        (
            format!("{good}alias\tz@new.example\n"),
            11,
            "expected: alias",
        ),
        // Lines that are no mailbox: free text (it once made the system
        // user "this" with the password "line is broken"), a bare name,
        // a password with spaces but no quotes, an unclosed quote.
        (
            format!("{good}this line is broken\n"),
            11,
            "\"this\" is not an address",
        ),
        (
            format!("{good}zed secret\n"),
            11,
            "\"zed\" is not an address",
        ),
        (
            format!("{good}z@new.example pass word\n"),
            11,
            "found 3 fields",
        ),
        (
            format!("{good}z@new.example \"pass word\n"),
            11,
            "no closing '\"'",
        ),
        (
            format!("this line is broken\n{good}"),
            1,
            "\"this\" is not an address",
        ),
    ];
    for (text, line, why) in &cases {
        let file = r.path("import.txt");
        fs::write(&file, text).unwrap();
        let f = file.to_str().unwrap();
        let o = r.mailroom(&["import", f]);
        assert_eq!(code(&o), 65, "{why}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!("mailroom: {f}:{line}: ")),
            "{why}: {err}"
        );
        assert!(err.contains(why), "{why}: {err}");
        assert!(err.contains("nothing was imported"), "{err}");
        assert_eq!(snapshot(&r), before, "{why}: something changed");
    }
    // From stdin the name is "stdin".
    let o = r.mailroom_with_input(&["import", "-"], b"ok@example.com pw\nbad\n");
    assert_eq!(code(&o), 65);
    assert!(
        stderr(&o).starts_with("mailroom: stdin:2: "),
        "{}",
        stderr(&o)
    );
    assert_eq!(snapshot(&r), before);
    // --dry-run checks and changes nothing.
    fs::write(r.path("import.txt"), good).unwrap();
    let f = r.path("import.txt");
    let out = r.mailroom_ok(&["import", "--dry-run", f.to_str().unwrap()]);
    assert!(out.contains("all good"), "{out}");
    assert_eq!(snapshot(&r), before);

    // The good file: everything at once.
    let out = r.mailroom_ok(&["import", f.to_str().unwrap()]);
    assert!(
        out.contains("imported 1 domain, 3 mailboxes, 1 quota, 2 aliases, 1 forward, 1 catch-all"),
        "{out}"
    );
    assert!(
        r.read("etc/mail/local-host-names")
            .ends_with("new.example\n")
    );
    let vt = r.read("etc/mail/virtusertable");
    for l in [
        "a@new.example\ta-new",
        "b@new.example\tb-new",
        "c@shop.example\tc-shop",
        "team@new.example\tteam-new",
        "all@new.example\tteam@new.example",
        "@new.example\ta@new.example",
    ] {
        assert!(vt.contains(l), "{l} not in {vt}");
    }
    assert!(
        r.read("etc/mail/aliases")
            .contains("b-new: b@mobile.example, \\b-new")
    );
    assert_eq!(r.read("etc/mail/quotas"), "a-new\t200M\n");
    assert_eq!(
        pop3_accepts(&r, "a@new.example", "pass a").as_deref(),
        Some("a-new")
    );
    assert_eq!(
        pop3_accepts(&r, "c@shop.example", "secret").as_deref(),
        Some("c-shop")
    );
    for u in ["a-new", "b-new", "c-shop"] {
        assert!(exists(&r.path(&format!("var/mail/{u}"))), "{u}");
    }
    // Again: every mailbox is taken now.
    let o = r.mailroom(&["import", f.to_str().unwrap()]);
    assert_eq!(code(&o), 65);
}

/// The consistency of the tables: every virtusertable entry that leads to
/// a mailroom mailbox user has its passwd and shadow lines, and every
/// mailbox user (GECOS = its address) has its virtusertable entry and its
/// shadow line.  Returns the mailbox addresses.
fn consistent(r: &Root) -> HashSet<String> {
    let passwd = r.read("etc/passwd");
    let shadow = r.read("etc/shadow");
    let vt = r.read("etc/mail/virtusertable");
    let users: HashMap<String, String> = passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() == 7).then(|| (f[0].to_string(), f[4].to_string()))
        })
        .collect();
    let shadowed: HashSet<String> = shadow
        .lines()
        .filter(|l| l.split(':').nth(1).is_some_and(|h| h.starts_with("$6$")))
        .map(|l| l.split(':').next().unwrap().to_string())
        .collect();
    let mut addresses = HashSet::new();
    for l in vt.lines().filter(|l| !l.starts_with('#')) {
        let mut w = l.split_whitespace();
        let (Some(k), Some(v)) = (w.next(), w.next()) else {
            continue;
        };
        if users.get(v).is_some_and(|g| g.contains('@')) || v.starts_with("imp") {
            assert!(users.contains_key(v), "{k} {v}: no passwd line");
            assert!(shadowed.contains(v), "{k} {v}: no shadow line");
            assert_eq!(users[v], k, "{v}'s GECOS");
            addresses.insert(k.to_string());
        }
    }
    for (u, gecos) in &users {
        if gecos.contains('@') {
            assert!(
                addresses.contains(gecos),
                "user {u}: no virtusertable entry"
            );
            assert!(shadowed.contains(u), "user {u}: no shadow line");
        }
    }
    for u in &shadowed {
        assert!(
            users.contains_key(u),
            "shadow line of {u} without passwd line"
        );
    }
    addresses
}

/// A batch of `n` mailboxes, most with a ready hash (so that the time goes
/// to checking and committing, where a kill matters), some with a password
/// to hash.
fn batch(path: &Path, tag: &str, n: usize) {
    let mut s = String::from("# a big import\n");
    for i in 0..n {
        if i % 40 == 0 {
            s.push_str(&format!("imp{tag}u{i}@example.com \"secret {i}\"\n"));
        } else {
            s.push_str(&format!(
                "imp{tag}u{i}@example.com {{CRYPT}}{SECRET_HASH}\n"
            ));
        }
    }
    fs::write(path, s).unwrap();
}

#[test]
fn kill_9_during_a_big_import_leaves_old_or_new_tables() {
    const N: usize = 2000;
    let r = admin_root("import-kill");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ (std::process::id() as u64) << 32;
    eprintln!("kill test seed: {seed}");
    let mut rng = Lcg(seed);
    // A first batch, timed: the kills land anywhere in such a run.
    let file = r.path("batch.txt");
    batch(&file, "0x", N);
    let t0 = Instant::now();
    r.mailroom_ok(&["import", file.to_str().unwrap()]);
    let full = t0.elapsed();
    let mut expected = consistent(&r);
    assert_eq!(expected.len(), N);
    let (mut old, mut new) = (0, 0);
    for round in 0..30 {
        let tag = format!("{round}k");
        batch(&file, &tag, N);
        let mut child = r
            .cmd("mailroom")
            .args(["import", file.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Most of a run is creating the 2,000 mbox files after the commit:
        // every other kill lands in the first quarter, where the change is
        // checked, staged, decided and renamed into place.
        let span = full.as_micros() as u64;
        let span = if round % 2 == 0 {
            span / 4
        } else {
            span * 12 / 10
        };
        let micros = rng.below(span + 1);
        std::thread::sleep(Duration::from_micros(micros));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        // The next mailroom command finishes (or forgets) the change.
        let list = r.mailroom(&["mailbox", "list", "--json"]);
        assert_eq!(code(&list), 0, "{}", stderr(&list));
        let now = consistent(&r);
        let added: HashSet<String> = now.difference(&expected).cloned().collect();
        assert!(
            now.is_superset(&expected),
            "round {round}: mailboxes were lost"
        );
        if added.is_empty() {
            old += 1;
        } else {
            assert_eq!(
                added.len(),
                N,
                "round {round} (killed after {micros}µs, {status}): a mix of old and new"
            );
            assert!(added.iter().all(|a| a.starts_with(&format!("imp{tag}u"))));
            new += 1;
        }
        // No journal left behind.
        assert!(!exists(&r.path("etc/mail/.mailroom-journal")));
        expected = now;
    }
    eprintln!("kill -9 rounds: {old} left the old tables, {new} the new ones");
    // The tables still work after all that: one more import, one login.
    batch(&file, "last", 3);
    r.mailroom_ok(&["import", file.to_str().unwrap()]);
    assert_eq!(
        pop3_accepts(&r, "implastu0@example.com", "secret 0").as_deref(),
        Some("implastu0-example")
    );
    let vt_index = r.path("etc/mail/virtusertable.mrdb");
    assert!(
        fs::metadata(&vt_index).unwrap().modified().unwrap()
            >= fs::metadata(r.path("etc/mail/virtusertable"))
                .unwrap()
                .modified()
                .unwrap()
    );
}

#[test]
fn help_teaches() {
    let r = admin_root("mbox-help");
    for (args, want) in [
        (
            &["mailbox", "--help"][..],
            "mailroom mailbox add info@shop.example",
        ),
        (&["mailbox", "add", "--help"], "--password-stdin"),
        (&["mailbox", "add", "--help"], "info-shop"),
        (&["mailbox", "quota", "--help"], "unlimited"),
        (&["import", "--help"], "FILE:LINE"),
        (&["import", "--help"], "forward ceo@example.com"),
    ] {
        let out = r.mailroom_ok(args);
        assert!(out.contains(want), "{args:?}: {out}");
    }
}

/// The same, deterministically where strace is at hand: the import is
/// killed on entering its 1st, 2nd, ... `rename` (the journal's, then each
/// table's, then the index's) and `fsync`, every step of the commit.
#[test]
fn kill_9_at_every_step_of_the_commit() {
    if !need_program("strace", &["-o", "/dev/null", "true"], "strace") {
        return;
    }
    let r = admin_root("import-kill-steps");
    let file = r.path("batch.txt");
    let mut expected = consistent(&r);
    let (mut old, mut new) = (0, 0);
    for (call, max) in [("rename", 7), ("fsync", 12)] {
        for n in 1..=max {
            let tag = format!("{call}{n}s");
            batch(&file, &tag, 50);
            let _ = Command::new("strace")
                .args(["-f", "-o", "/dev/null", "-e"])
                .arg(format!("inject={call}:signal=KILL:when={n}"))
                .arg(bin("mailroom"))
                .args(["import", file.to_str().unwrap()])
                .env("MAILROOM_ROOT", &r.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            r.mailroom_ok(&["mailbox", "list"]);
            let now = consistent(&r);
            assert!(now.is_superset(&expected), "{tag}: mailboxes lost");
            let added = now.len() - expected.len();
            assert!(added == 0 || added == 50, "{tag}: {added} of 50 added");
            if added == 0 {
                old += 1
            } else {
                new += 1
            }
            assert!(!exists(&r.path("etc/mail/.mailroom-journal")), "{tag}");
            expected = now;
        }
    }
    eprintln!("killed at each step: {old} left the old tables, {new} the new ones");
    assert!(
        old > 0 && new > 0,
        "the kills missed the commit: {old} old, {new} new"
    );
}
