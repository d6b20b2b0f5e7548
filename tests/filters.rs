//! Filters through the `deliver` binary against private roots: the
//! built-in spam rule (folder and discard), Maildir++ and mbox folders, a
//! user's rules moving a newsletter, the global and per-account files, a
//! broken or unsafe rule file (mail still delivered, error logged),
//! reject and forward, configurable thresholds, spamc (a stand-in
//! script: the real spamd is exercised by compat/test_filters.py), and
//! the SMTP server's Authentication-Results: the DMARC quarantine and
//! `auth` rules.

mod common;
use common::*;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;

/// Users bob (mbox, home), carol (Maildir, home) and dave (mbox, no home).
fn site(name: &str, extra_conf: &str) -> Root {
    let r = Root::new(name);
    let (uid, gid) = (uid(), gid());
    let users = ["bob", "carol"];
    let mut pw = passwd_lines(&users, uid, gid);
    for u in users {
        fs::create_dir_all(r.path(&format!("home/{u}"))).unwrap();
    }
    pw.push_str(&format!(
        "dave:x:{uid}:{gid}:dave:/nonexistent:/usr/sbin/nologin\n"
    ));
    r.write("etc/passwd", &pw);
    fs::create_dir_all(r.path("home/carol/Maildir")).unwrap();
    r.write(
        "etc/mail/mailroom.conf",
        &format!(
            "hostname = test.example\nlog = /var/log/mail.log\nmin_free_space = 0\n{extra_conf}"
        ),
    );
    r
}

/// Write a rule file with `mode`.
fn rules(r: &Root, rel: &str, text: &str, mode: u32) {
    r.write(rel, text);
    fs::set_permissions(r.path(rel), fs::Permissions::from_mode(mode)).unwrap();
}

/// `deliver -q -f news@lists.example RCPT < msg`.
fn deliver(r: &Root, rcpt: &str, msg: &str) -> Output {
    r.deliver(&["-q", "-f", "news@lists.example", rcpt], msg.as_bytes())
}

/// The `-q` report as `KIND PRINTABLE DSN TEXT`.
fn report(o: &Output) -> Vec<String> {
    stdout(o)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            format!("{}\t{}\t{}\t{}", f[0], f[2], f[6], f[7])
        })
        .collect()
}

/// Files in a Maildir subdirectory.
fn files(r: &Root, rel: &str) -> Vec<String> {
    match fs::read_dir(r.path(rel)) {
        Ok(d) => d
            .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

const SPAM7: &str = "Subject: cheap\nX-Spam-Score: 7.2\n\nbuy\n";
const SPAM12: &str = "Subject: cheaper\nX-Spam-Score: 12.0\n\nbuy now\n";
const NEWS: &str = "Subject: Weekly\nList-Id: Weekly news <weekly.lists.example>\n\nnews\n";

#[test]
fn spam_goes_to_the_spam_folder_and_heavy_spam_is_discarded() {
    let r = site("spam", "");
    let root = r.dir.display().to_string();
    // mbox with a home: ~/mail/Spam; the inbox untouched.
    let o = deliver(&r, "bob", SPAM7);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        report(&o),
        [format!(
            "ok\tbob\t2.0.0\tfolder Spam of mailbox {root}/var/mail/bob"
        )]
    );
    let spam = r.read("home/bob/mail/Spam");
    assert!(spam.starts_with("From news@lists.example  "), "{spam}");
    assert!(spam.contains("\nDelivered-To: bob@test.example\nSubject: cheap\n"));
    assert!(!r.path("var/mail/bob").exists());
    assert_eq!(
        fs::metadata(r.path("home/bob/mail"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    assert!(
        r.log()
            .contains("filter: bob@test.example: into folder Spam by spam rule:2, spam score 7.2")
    );

    // Maildir: the Maildir++ folder .Spam/ with its marker file.
    let o = deliver(&r, "carol", SPAM7);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = files(&r, "home/carol/Maildir/.Spam/new");
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("Subject: cheap"));
    assert!(r.path("home/carol/Maildir/.Spam/maildirfolder").is_file());
    assert!(r.path("home/carol/Maildir/.Spam/cur").is_dir());
    assert!(files(&r, "home/carol/Maildir/new").is_empty());

    // No home: next to the inbox.
    let o = deliver(&r, "dave", SPAM7);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        r.read("var/mail/dave.folders/Spam")
            .contains("Subject: cheap")
    );

    // Over 10: discarded, with a log line, and counted as delivered.
    for u in ["bob", "carol"] {
        let o = deliver(&r, u, SPAM12);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(
            report(&o),
            [format!("ok\t{u}\t2.0.0\tdiscarded by spam rule:1")]
        );
        assert!(
            r.log().contains(&format!(
                "filter: {u}@test.example: discarded by spam rule:1, spam score 12"
            )),
            "{}",
            r.log()
        );
    }
    assert!(!r.read("home/bob/mail/Spam").contains("cheaper"));
    assert_eq!(files(&r, "home/carol/Maildir/.Spam/new").len(), 1);

    // Clean mail reaches the inbox.
    let o = deliver(&r, "bob", "Subject: hello\nX-Spam-Score: 1.0\n\nhi\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(r.read("var/mail/bob").contains("Subject: hello"));
}

#[test]
fn thresholds_and_folder_are_configurable() {
    let r = site(
        "thresholds",
        "spam_folder_score = 3\nspam_discard_score = off\nspam_folder = Junk\n",
    );
    let o = deliver(&r, "carol", SPAM12);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(files(&r, "home/carol/Maildir/.Junk/new").len(), 1);
    let o = deliver(&r, "carol", "Subject: s\nX-Spam-Score: 3.5\n\nx\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(files(&r, "home/carol/Maildir/.Junk/new").len(), 2);

    let r = site("thresholds-bad", "spam_folder_score = lots\n");
    let o = deliver(&r, "carol", SPAM7);
    assert_eq!(code(&o), 78, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bad value for spam_folder_score"),
        "{}",
        stderr(&o)
    );
    let r = site("folder-bad", "spam_folder = ../x\n");
    let o = deliver(&r, "carol", SPAM7);
    assert_eq!(code(&o), 78, "{}", stderr(&o));
}

#[test]
fn a_user_rule_moves_a_newsletter() {
    let r = site("newsletter", "");
    let rule =
        "# newsletters\nif header List-Id contains weekly.lists.example then folder Lists/Weekly\n";
    rules(&r, "home/bob/.mailroom-filter", rule, 0o644);
    rules(&r, "home/carol/.mailroom-filter", rule, 0o600);
    for u in ["bob", "carol"] {
        let o = deliver(&r, u, NEWS);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    assert!(
        r.read("home/bob/mail/Lists/Weekly")
            .contains("Subject: Weekly")
    );
    assert_eq!(files(&r, "home/carol/Maildir/.Lists.Weekly/new").len(), 1);
    assert!(!r.path("var/mail/bob").exists());
    // Other mail is untouched by the rule.
    let o = deliver(&r, "bob", "Subject: personal\n\nhi\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(r.read("var/mail/bob").contains("Subject: personal"));
    // A user rule can take mail back out of the spam folder.
    rules(
        &r,
        "home/bob/.mailroom-filter",
        "if sender is news@lists.example then keep\n",
        0o644,
    );
    let o = deliver(&r, "bob", SPAM7);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(r.read("var/mail/bob").contains("Subject: cheap"));
    assert!(!r.path("home/bob/mail/Spam").exists());
}

#[test]
fn a_broken_or_unsafe_rule_file_still_delivers() {
    let r = site("broken", "");
    let path = r.path("home/bob/.mailroom-filter");
    rules(
        &r,
        "home/bob/.mailroom-filter",
        "if always then folder Fine\nif header Subject contain x then discard\n",
        0o644,
    );
    // Even heavy spam: a broken file means no filtering, never a loss.
    for m in [NEWS, SPAM12] {
        let o = deliver(&r, "bob", m);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let inbox = r.read("var/mail/bob");
    assert!(inbox.contains("Subject: Weekly") && inbox.contains("Subject: cheaper"));
    assert!(!r.path("home/bob/mail").exists());
    assert!(
        r.log().contains(&format!(
            "filter: {}:2: expected contains, is or matches, found 'contain'; rules not applied, delivered to the inbox of bob@test.example",
            path.display()
        )),
        "{}",
        r.log()
    );

    // A world-writable file is ignored (and logged); the spam rule still runs.
    rules(
        &r,
        "home/bob/.mailroom-filter",
        "if always then discard\n",
        0o666,
    );
    let o = deliver(&r, "bob", SPAM7);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(r.read("home/bob/mail/Spam").contains("Subject: cheap"));
    assert!(r.log().contains(&format!(
        "filter: {}: ignored (group or world writable)",
        path.display()
    )));
    // So is a symbolic link.
    fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
    let o = deliver(&r, "bob", "Subject: after link\n\nx\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(r.read("var/mail/bob").contains("Subject: after link"));
}

#[test]
fn global_and_per_account_files_run_first() {
    let r = site("global", "");
    rules(
        &r,
        "etc/mail/filter",
        "if header Subject contains \"[urgent]\" then keep; stop\nif size over 1K then reject \"Too big, send a link\"\n",
        0o644,
    );
    rules(
        &r,
        "etc/mail/filters/dave",
        "if header Subject contains \"[urgent]\" then folder Never\nif from contains boss then folder Boss\n",
        0o644,
    );
    // stop in the global file: dave's rule never runs.
    let o = deliver(
        &r,
        "dave",
        "Subject: [urgent] x\nFrom: boss@x.example\n\nx\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(r.read("var/mail/dave").contains("[urgent]"));
    let o = deliver(&r, "dave", "Subject: y\nFrom: Boss <boss@x.example>\n\ny\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(r.read("var/mail/dave.folders/Boss").contains("Subject: y"));
    // reject: a 5.7.1 failure with the text, nothing stored.
    let big = format!("Subject: big\n\n{}\n", "x".repeat(2000));
    let o = deliver(&r, "carol", &big);
    assert_eq!(code(&o), 65, "{}", stderr(&o));
    let root = r.dir.display();
    assert_eq!(
        report(&o),
        ["fail\tcarol\t5.7.1\tToo big, send a link".to_string()]
    );
    assert!(files(&r, "home/carol/Maildir/new").is_empty());
    assert!(r.log().contains(&format!(
        "filter: carol@test.example: rejected by {root}/etc/mail/filter:2"
    )));
}

#[test]
fn forward_sends_a_copy_on() {
    let r = site("forward", "");
    rules(
        &r,
        "home/bob/.mailroom-filter",
        "if header Subject contains copy then forward bob@elsewhere.example; keep\nif header Subject contains away then forward bob@elsewhere.example\n",
        0o600,
    );
    let o = deliver(&r, "bob", "Subject: copy\n\nx\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let root = r.dir.display();
    assert_eq!(
        report(&o),
        [
            format!("ok\tbob\t2.0.0\tmailbox {root}/var/mail/bob"),
            "forward\tbob@elsewhere.example\t2.0.0\tforwarded to bob@elsewhere.example".to_string(),
        ]
    );
    let o = deliver(&r, "bob", "Subject: away\n\ny\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        report(&o),
        [
            format!("ok\tbob\t2.0.0\tnot kept, forwarded by {root}/home/bob/.mailroom-filter:2"),
            "forward\tbob@elsewhere.example\t2.0.0\tforwarded to bob@elsewhere.example".to_string(),
        ]
    );
    assert!(!r.read("var/mail/bob").contains("Subject: away"));
}

#[test]
fn spamc_scans_first_and_its_failure_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("mr-filters-spamc-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let script = |name: &str, body: &str| {
        let p = dir.join(name);
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p.display().to_string()
    };
    // A stand-in spamd verdict that outranks the sender's own header.
    let good = script(
        "spamc-good",
        "echo 'X-Spam-Status: Yes, score=8.5 required=5.0 tests=GTUBE'; echo \"X-Args: $*\"; cat",
    );
    let r = site("spamc", &format!("spamc = {good}\n"));
    let o = deliver(&r, "carol", "Subject: s\nX-Spam-Score: -20\n\nx\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = files(&r, "home/carol/Maildir/.Spam/new");
    assert_eq!(got.len(), 1);
    assert!(
        got[0].contains("X-Spam-Status: Yes, score=8.5"),
        "{}",
        got[0]
    );
    assert!(got[0].contains("X-Args: -x -u carol -t 30"), "{}", got[0]);

    let bad = script("spamc-bad", "cat >/dev/null; exit 69");
    let r = site(
        "spamc-down",
        &format!("spamc = {bad}\nspamc_timeout = 2s\n"),
    );
    let o = deliver(&r, "carol", "Subject: t\n\nx\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(files(&r, "home/carol/Maildir/new").len(), 1);
    assert!(
        r.log().contains(&format!(
            "spamc: {bad} exited with 69; delivering to carol@test.example unscanned"
        )),
        "{}",
        r.log()
    );
    let _ = fs::remove_dir_all(&dir);
}

/// A message as the SMTP server queues it from the internet: its own
/// Authentication-Results field (authserv-id `id`) on top.
fn from_outside(id: &str, spf: &str, dmarc: &str, subject: &str) -> String {
    format!(
        "Authentication-Results: {id};\n\tspf={spf} smtp.mailfrom=ceo@example.org;\n\tdkim=none;\n\t{dmarc}\nFrom: CEO <ceo@example.org>\nSubject: {subject}\n\npay this invoice\n"
    )
}

const QUARANTINE: &str =
    "dmarc=fail (p=quarantine) header.from=example.org policy.dmarc=quarantine";
const MARKED: &str = "dmarc=fail (p=quarantine) header.from=example.org policy.dmarc=none";

#[test]
fn a_dmarc_quarantine_goes_to_the_spam_folder() {
    let r = site("dmarc", "");
    let root = r.dir.display().to_string();
    let invoice = from_outside("test.example", "pass", QUARANTINE, "invoice");
    // mbox with a home: ~/mail/Spam, logged with the rule and the domain.
    let o = deliver(&r, "bob", &invoice);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        report(&o),
        [format!(
            "ok\tbob\t2.0.0\tfolder Spam of mailbox {root}/var/mail/bob"
        )]
    );
    assert!(r.read("home/bob/mail/Spam").contains("Subject: invoice"));
    assert!(!r.path("var/mail/bob").exists());
    assert!(
        r.log().contains(
            "filter: bob@test.example: into folder Spam by DMARC rule:1, DMARC quarantine for example.org"
        ),
        "{}",
        r.log()
    );
    // Maildir: .Spam/; no home: next to the inbox.
    let o = deliver(&r, "carol", &invoice);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = files(&r, "home/carol/Maildir/.Spam/new");
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("Subject: invoice"));
    assert!(files(&r, "home/carol/Maildir/new").is_empty());
    let o = deliver(&r, "dave", &invoice);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        r.read("var/mail/dave.folders/Spam")
            .contains("Subject: invoice")
    );

    // A field that is not this host's, or one where the server only
    // marked the failure: the inbox.
    for (i, m) in [
        from_outside("mx.elsewhere.example", "pass", QUARANTINE, "theirs"),
        from_outside("test.example", "pass", MARKED, "marked"),
    ]
    .iter()
    .enumerate()
    {
        let o = deliver(&r, "carol", m);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(files(&r, "home/carol/Maildir/new").len(), i + 1);
    }
    assert_eq!(files(&r, "home/carol/Maildir/.Spam/new").len(), 1);
    let log = r.log();
    assert_eq!(log.matches("by DMARC rule:1").count(), 3, "{log}");

    // A user's rule can take it back out, as from the spam rule.
    rules(
        &r,
        "home/bob/.mailroom-filter",
        "if from is ceo@example.org then keep\n",
        0o644,
    );
    let o = deliver(&r, "bob", &invoice);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(r.read("var/mail/bob").contains("Subject: invoice"));
}

#[test]
fn the_quarantine_follows_the_authserv_id_and_spam_folder() {
    let r = site(
        "dmarc-conf",
        "authserv_id = mx.test.example\nspam_folder = Junk\n",
    );
    // The host name is no longer our id; the configured one is.
    let o = deliver(
        &r,
        "carol",
        &from_outside("test.example", "pass", QUARANTINE, "old id"),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(files(&r, "home/carol/Maildir/new").len(), 1);
    let o = deliver(
        &r,
        "carol",
        &from_outside("MX.test.example.", "pass", QUARANTINE, "new id"),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = files(&r, "home/carol/Maildir/.Junk/new");
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("Subject: new id"));
}

#[test]
fn auth_rules_read_this_hosts_results() {
    let r = site("auth", "");
    rules(
        &r,
        "home/carol/.mailroom-filter",
        "if auth dmarc is fail then folder Suspicious\n\
         if auth spf is softfail then folder Softfail\n\
         if auth spf is none and auth dkim is none and auth dmarc is none then folder Unchecked\n",
        0o600,
    );
    let cases = [
        // The quarantine first, then the user's rule moves it on.
        (
            from_outside("test.example", "pass", QUARANTINE, "q"),
            ".Suspicious",
        ),
        (
            from_outside("test.example", "pass", MARKED, "m"),
            ".Suspicious",
        ),
        (
            from_outside(
                "test.example",
                "softfail",
                "dmarc=pass header.from=example.org",
                "soft",
            ),
            ".Softfail",
        ),
        (
            from_outside(
                "test.example",
                "pass",
                "dmarc=pass header.from=example.org",
                "good",
            ),
            "",
        ),
        // Someone else's field says nothing; local mail has none.
        (
            from_outside("mx.elsewhere.example", "softfail", MARKED, "theirs"),
            ".Unchecked",
        ),
        (
            "From: cron@test.example\nSubject: local\n\nx\n".to_string(),
            ".Unchecked",
        ),
    ];
    for (msg, _) in &cases {
        let o = deliver(&r, "carol", msg);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let subjects = |folder: &str| -> Vec<String> {
        let mut s: Vec<String> = files(&r, &format!("home/carol/Maildir/{folder}/new"))
            .iter()
            .filter_map(|m| {
                m.lines()
                    .find(|l| l.starts_with("Subject: "))
                    .map(str::to_string)
            })
            .collect();
        s.sort();
        s
    };
    for folder in [".Suspicious", ".Softfail", "", ".Unchecked"] {
        let want: Vec<String> = {
            let mut w: Vec<String> = cases
                .iter()
                .filter(|(_, f)| f == &folder)
                .map(|(m, _)| {
                    m.lines()
                        .find(|l| l.starts_with("Subject: "))
                        .unwrap()
                        .to_string()
                })
                .collect();
            w.sort();
            w
        };
        assert_eq!(subjects(folder), want, "folder '{folder}'");
    }
    assert!(files(&r, "home/carol/Maildir/.Spam/new").is_empty());
    // The log says where the quarantined one went, and why.
    assert!(
        r.log().contains(&format!(
            "filter: carol@test.example: into folder Suspicious by {}/home/carol/.mailroom-filter:1, DMARC quarantine for example.org",
            r.dir.display()
        )),
        "{}",
        r.log()
    );
}

#[test]
fn the_quarantine_reads_the_field_spamd_may_drop() {
    // spamd's report_safe wraps spam in a new message that copies only a
    // few fields; the field of the message as queued still counts.
    let dir = std::env::temp_dir().join(format!("mr-filters-wrap-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let wrap = dir.join("spamc-wrap");
    fs::write(
        &wrap,
        "#!/bin/sh
printf 'X-Spam-Status: No, score=1.0\nSubject: wrapped\nContent-Type: message/rfc822\n\n'
cat
",
    )
    .unwrap();
    fs::set_permissions(&wrap, fs::Permissions::from_mode(0o755)).unwrap();
    let r = site("dmarc-wrap", &format!("spamc = {}\n", wrap.display()));
    let o = deliver(
        &r,
        "carol",
        &from_outside("test.example", "pass", QUARANTINE, "invoice"),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = files(&r, "home/carol/Maildir/.Spam/new");
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("Subject: wrapped"), "{}", got[0]);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn mailroom_filter_sets_shows_lists_and_clears_a_mailboxs_rules() {
    let r = site("admin", "probe_interfaces = no\n");
    r.write("good.rules", "if from contains boss then folder Boss\n");
    r.write(
        "bad.rules",
        "if from contains boss then folder Boss\nif size over 5Q then discard\n",
    );
    let bad = r.path("bad.rules").display().to_string();
    let good = r.path("good.rules").display().to_string();
    // A broken file is refused with its line, and nothing is written.
    let o = r.mailroom(&["filter", "set", "dave", "--file", &bad]);
    assert_eq!(code(&o), 65, "{}", stderr(&o));
    assert_eq!(
        stderr(&o).trim(),
        format!("mailroom: {bad}:2: '5Q' is not a size (e.g. 500K, 20M)")
    );
    assert!(!r.path("etc/mail/filters/dave").exists());
    // Not a mailbox.
    let o = r.mailroom(&["filter", "set", "nobody@elsewhere.example", "--file", &good]);
    assert_eq!(code(&o), 67, "{}", stderr(&o));

    let o = r.mailroom(&["filter", "set", "dave@test.example", "--file", &good]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let path = r.path("etc/mail/filters/dave");
    assert_eq!(
        stdout(&o).trim(),
        format!("dave: 1 filter rule(s) in {}", path.display())
    );
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let o = r.mailroom(&["filter", "show", "dave"]);
    assert_eq!(stdout(&o), "if from contains boss then folder Boss\n");
    let o = r.mailroom(&["filter", "list", "--json"]);
    assert_eq!(stdout(&o).trim(), "[{\"mailbox\":\"dave\",\"rules\":1}]");
    // Delivery uses it.
    let o = deliver(
        &r,
        "dave",
        "From: The Boss <boss@x.example>\nSubject: b\n\nx\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(r.read("var/mail/dave.folders/Boss").contains("Subject: b"));

    // mailroom check reports a broken global file and a stray login.
    r.write("etc/mail/filter", "if always then\n");
    r.write("etc/mail/filters/ghost", "if always then keep\n");
    let o = r.mailroom(&["check"]);
    let out = stdout(&o) + &stderr(&o);
    assert_eq!(code(&o), 78, "{out}");
    assert!(
        out.contains("expected an action at the end of the line: the rules are not used; mail goes to the inbox"),
        "{out}"
    );
    assert!(
        out.contains("ghost: no such user or mailbox account"),
        "{out}"
    );
    assert!(!out.contains("filters/dave"), "{out}");

    let o = r.mailroom(&["filter", "clear", "dave"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!path.exists());
    let o = r.mailroom(&["filter", "clear", "dave"]);
    assert_eq!(code(&o), 64, "{}", stderr(&o));
    let o = r.mailroom(&["filter", "show", "dave"]);
    assert_eq!(code(&o), 64, "{}", stderr(&o));
}
