//! `deliver`, the local delivery agent, run against private roots: what it
//! writes into mboxes, Maildirs, programs and files, how aliases, lists
//! and `~/.forward` send mail on, and how it fails (quota, loops, unknown
//! users, a full disk) without damaging a mailbox.
//!
//! Under a private root `deliver` delivers as its caller, so every user in
//! the root's `etc/passwd` has the caller's uid; home directories are
//! resolved under the root.

mod common;
use common::*;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const HOST: &str = "test.example";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A private root with users bob, carol, dave and nobody (the
/// default_user), homes under the root, programs limited to one second.
fn site(name: &str, extra_conf: &str) -> Root {
    let r = Root::new(name);
    let (uid, gid) = (uid(), gid());
    let users = ["bob", "carol", "dave"];
    let mut pw = passwd_lines(&users, uid, gid);
    for u in users {
        fs::create_dir_all(r.path(&format!("home/{u}"))).unwrap();
    }
    pw.push_str(&format!(
        "nobody:x:{uid}:{gid}:nobody:/nonexistent:/usr/sbin/nologin\n"
    ));
    r.write("etc/passwd", &pw);
    r.write(
        "etc/mail/mailroom.conf",
        &format!(
            "hostname = {HOST}\nlog = /var/log/mail.log\nmin_free_space = 0\nprogram_timeout = 1s\n{extra_conf}"
        ),
    );
    r
}

/// One `-q` report line: `KIND RECIPIENT PRINTABLE AGAIN CTL SENDER DSN
/// TEXT`, tab-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    kind: String,
    rcpt: String,
    printable: String,
    /// How to address the target next time (`\bob`, an address, ...).
    again: String,
    /// The controlling user (`name:uid:gid`) of programs and files.
    ctl: String,
    /// The envelope sender when not the message's (owner-LIST).
    sender: String,
    dsn: String,
    text: String,
}

fn parse_report(text: &str) -> Vec<Line> {
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 8, "report line {l:?}");
            Line {
                kind: f[0].into(),
                rcpt: f[1].into(),
                printable: f[2].into(),
                again: f[3].into(),
                ctl: f[4].into(),
                sender: f[5].into(),
                dsn: f[6].into(),
                text: f[7].into(),
            }
        })
        .collect()
}

fn lines(o: &Output) -> Vec<Line> {
    parse_report(&stdout(o))
}

/// The `-q` report as `KIND RECIPIENT PRINTABLE DSN TEXT` lines.
fn report(o: &Output) -> Vec<String> {
    lines(o)
        .iter()
        .map(|l| {
            format!(
                "{}\t{}\t{}\t{}\t{}",
                l.kind, l.rcpt, l.printable, l.dsn, l.text
            )
        })
        .collect()
}

fn mbox_path(r: &Root, user: &str) -> String {
    r.path(&format!("var/mail/{user}")).display().to_string()
}

fn mode(r: &Root, rel: &str) -> u32 {
    fs::metadata(r.path(rel)).unwrap().permissions().mode() & 0o7777
}

/// `ctime(3)` of `t` in local time, without the newline — computed here
/// with the C library, independently of mailroom's own formatting.
fn ctime(t: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let tt = t as libc::time_t;
    // SAFETY: an all-zero tm is valid; localtime_r fills it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    unsafe { libc::localtime_r(&tt, &mut tm) };
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[tm.tm_wday as usize],
        MONTHS[tm.tm_mon as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        tm.tm_year + 1900
    )
}

/// Check every From_ line of an mbox (at the start and after an empty
/// line): `From SENDER  DATE` with two spaces and a ctime date between
/// `t0` and `t1`.  Returns the text with each date replaced by `DATE`, for
/// exact comparison.
fn dates_checked(text: &str, t0: i64, t1: i64) -> String {
    let mut out = String::new();
    let mut after_blank = true;
    for line in text.split_inclusive('\n') {
        if after_blank && line.starts_with("From ") {
            let l = line.strip_suffix('\n').expect("From_ line ends with LF");
            let (sender_part, date) = l
                .split_once("  ")
                .unwrap_or_else(|| panic!("no two spaces in {l:?}"));
            assert!(
                !sender_part["From ".len()..].contains(' '),
                "one field before the date: {l:?}"
            );
            assert!(
                (t0..=t1).any(|t| ctime(t) == date),
                "date {date:?} is not a ctime between {} and {}",
                ctime(t0),
                ctime(t1)
            );
            out.push_str(sender_part);
            out.push_str("  DATE\n");
        } else {
            out.push_str(line);
        }
        after_blank = line == "\n";
    }
    out
}

#[test]
fn mbox_entries_are_exact_mboxrd() {
    let r = site("mbox-exact", "");
    let t0 = now();
    let msg = b"Return-Path: <forged@evil.example>\n\
Status: RO\n\
X-UID: 77\n\
Subject: one\n\
From: Alice <alice@example.org>\n\
\n\
From here\n\
>From there\n\
>>From deep\n\
\x20From indented\n\
From:colon\n\
last line without newline";
    let o = r.deliver(&["-q", "-f", "alice@example.org", "bob"], msg);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        report(&o),
        [format!(
            "ok\tbob\tbob\t2.0.0\tmailbox {}",
            mbox_path(&r, "bob")
        )]
    );
    // The null sender: MAILER-DAEMON on the From_ line, <> in Return-Path.
    let o = r.deliver(&["-q", "-f", "<>", "bob"], b"Subject: two\n\nbody\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let t1 = now();
    let text = r.read_strict("var/mail/bob");
    assert_eq!(
        dates_checked(&text, t0, t1),
        "From alice@example.org  DATE\n\
Return-Path: <alice@example.org>\n\
Delivered-To: bob@test.example\n\
Subject: one\n\
From: Alice <alice@example.org>\n\
\n\
>From here\n\
>>From there\n\
>>>From deep\n\
\x20From indented\n\
From:colon\n\
last line without newline\n\
\n\
From MAILER-DAEMON  DATE\n\
Return-Path: <>\n\
Delivered-To: bob@test.example\n\
Subject: two\n\
\n\
body\n\
\n"
    );
    assert_eq!(mode(&r, "var/mail/bob"), 0o660);
    assert!(!exists(&r.path("var/mail/bob.lock")), "dotlock left behind");
}

#[test]
fn an_mbox_without_its_final_blank_line_is_repaired_before_appending() {
    let r = site("mbox-repair", "");
    let old_partial = "From x@example.org  Sat Nov 21 05:00:00 2026\nSubject: old\n\nhalf a line";
    let old_no_blank = "From x@example.org  Sat Nov 21 05:00:00 2026\nSubject: old\n\nwhole line\n";
    r.write("var/mail/bob", old_partial);
    r.write("var/mail/carol", old_no_blank);
    for u in ["bob", "carol"] {
        let o = r.deliver(&["-f", "alice@example.org", u], b"Subject: new\n\nnew\n");
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let bob = r.read_strict("var/mail/bob");
    let tail = bob
        .strip_prefix(&format!("{old_partial}\n\n"))
        .unwrap_or_else(|| panic!("{bob:?}"));
    assert!(tail.starts_with("From alice@example.org  "), "{bob:?}");
    assert!(tail.ends_with("\nnew\n\n"), "{bob:?}");
    let carol = r.read_strict("var/mail/carol");
    let tail = carol
        .strip_prefix(&format!("{old_no_blank}\n"))
        .unwrap_or_else(|| panic!("{carol:?}"));
    assert!(tail.starts_with("From alice@example.org  "), "{carol:?}");
}

/// The single file in `dir`, or a panic naming what is there.
fn only_file(dir: &std::path::Path) -> std::path::PathBuf {
    let files: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// A Maildir message file: its content and exact `,S=` and `,W=`.
fn check_maildir_file(p: &std::path::Path, expected: &str) {
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    let content = fs::read(p).unwrap();
    assert_eq!(String::from_utf8_lossy(&content), expected);
    let lfs = content.iter().filter(|&&c| c == b'\n').count();
    let sizes = format!(",S={},W={}", content.len(), content.len() + lfs);
    let base = name
        .strip_suffix(&sizes)
        .unwrap_or_else(|| panic!("{name} does not end with {sizes}"));
    assert!(base.ends_with(&format!(".{HOST}")), "{name}");
    assert!(!name.contains(':') && !name.contains('/'), "{name}");
    let secs = base.split('.').next().unwrap();
    assert!(
        !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit()),
        "{name}"
    );
}

#[test]
fn a_user_with_a_maildir_gets_new_files_with_exact_sizes() {
    let r = site("maildir", "");
    fs::create_dir_all(r.path("home/bob/Maildir")).unwrap();
    let o = r.deliver(
        &["-q", "-f", "alice@example.org", "bob"],
        b"Subject: md\nStatus: RO\n\nFrom me\n>From you\nno newline",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let md = r.path("home/bob/Maildir");
    assert_eq!(
        report(&o),
        [format!("ok\tbob\tbob\t2.0.0\tmaildir {}", md.display())]
    );
    // No From_ line and no quoting in a Maildir; the final newline added.
    let f = only_file(&md.join("new"));
    check_maildir_file(
        &f,
        "Return-Path: <alice@example.org>\nDelivered-To: bob@test.example\n\
Subject: md\nStatus: RO\n\nFrom me\n>From you\nno newline\n",
    );
    assert_eq!(fs::read_dir(md.join("tmp")).unwrap().count(), 0);
    assert!(md.join("cur").is_dir());
    assert!(!exists(&r.path("var/mail/bob")), "no mbox as well");
}

#[test]
fn mailbox_format_maildir_creates_the_maildir() {
    let r = site("maildir-conf", "mailbox_format = maildir\n");
    let o = r.deliver(&["-f", "alice@example.org", "carol"], b"Subject: x\n\nhi\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let f = only_file(&r.path("home/carol/Maildir/new"));
    check_maildir_file(
        &f,
        "Return-Path: <alice@example.org>\nDelivered-To: carol@test.example\nSubject: x\n\nhi\n",
    );
    assert!(!exists(&r.path("var/mail/carol")));
}

#[test]
fn an_alias_keeps_a_copy_for_a_user_and_forwards_one() {
    let r = site("alias-copy", "");
    r.write(
        "etc/mail/aliases",
        "support: \\bob, helper@remote.example\n",
    );
    // \bob means bob's mailbox itself, not his .forward.
    r.write("home/bob/.forward", "elsewhere@remote.example\n");
    let o = r.deliver(
        &["-q", "-f", "alice@example.org", "support"],
        b"Subject: help\n\nplease\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        report(&o),
        [
            format!(
                "ok\tsupport\t\\bob\t2.0.0\tmailbox {}",
                mbox_path(&r, "bob")
            ),
            "forward\tsupport\thelper@remote.example\t2.0.0\tforwarded to helper@remote.example"
                .to_string(),
        ]
    );
    let l = lines(&o);
    // What a retry would name: the mailbox itself, the remote address.
    assert_eq!(l[0].again, "\\bob");
    assert_eq!(l[1].again, "helper@remote.example");
    // The forwarded copy leaves with an SRS sender (alice is outside).
    assert_eq!(l[0].sender, "");
    assert!(
        l[1].sender.starts_with("<SRS0=")
            && l[1].sender.ends_with("=example.org=alice@test.example>"),
        "{}",
        l[1].sender
    );
    let bob = r.read_strict("var/mail/bob");
    assert_eq!(bob.matches("\nSubject: help\n").count(), 1, "{bob}");
    assert!(
        bob.contains("\nReturn-Path: <alice@example.org>\nDelivered-To: bob@test.example\n"),
        "{bob}"
    );
}

#[test]
fn owner_list_is_the_envelope_sender_of_the_members_copies() {
    let r = site("owner-list", "");
    r.write(
        "etc/mail/aliases",
        "staff: carol, dave, far@remote.example\nowner-staff: bob\nplain: carol\n",
    );
    let o = r.deliver(
        &["-q", "-f", "alice@example.org", "staff"],
        b"Subject: to staff\n\nhi\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        report(&o),
        [
            format!(
                "ok\tstaff\tcarol\t2.0.0\tmailbox {}",
                mbox_path(&r, "carol")
            ),
            format!("ok\tstaff\tdave\t2.0.0\tmailbox {}", mbox_path(&r, "dave")),
            "forward\tstaff\tfar@remote.example\t2.0.0\tforwarded to far@remote.example"
                .to_string(),
        ]
    );
    // Every member's copy, the remote one the queue sends too, has the
    // owner as its envelope sender.
    for l in lines(&o) {
        assert!(
            l.sender == "bob" || l.sender == "bob@test.example",
            "sender of {l:?}"
        );
    }
    for u in ["carol", "dave"] {
        let text = r.read_strict(&format!("var/mail/{u}"));
        assert!(text.starts_with("From bob@test.example  "), "{text}");
        assert!(
            text.contains(&format!(
                "\nReturn-Path: <bob@test.example>\nDelivered-To: {u}@test.example\nSubject: to staff\n"
            )),
            "{text}"
        );
    }
    // A list without an owner keeps the message's sender.
    let o = r.deliver(&["-f", "alice@example.org", "plain"], b"Subject: p\n\np\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let carol = r.read_strict("var/mail/carol");
    assert!(
        carol.contains("\n\nFrom alice@example.org  ")
            && carol.contains(
                "\nReturn-Path: <alice@example.org>\nDelivered-To: carol@test.example\nSubject: p\n"
            ),
        "{carol}"
    );
}

#[test]
fn an_include_list_delivers_to_each_member() {
    let r = site("include", "");
    r.write(
        "lists/team",
        "# the team\ncarol\ndave, erin@remote.example\n\n",
    );
    r.write("etc/mail/aliases", "team: :include:/lists/team\n");
    let o = r.deliver(
        &["-q", "-f", "alice@example.org", "team"],
        b"Subject: t\n\nt\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        report(&o),
        [
            format!("ok\tteam\tcarol\t2.0.0\tmailbox {}", mbox_path(&r, "carol")),
            format!("ok\tteam\tdave\t2.0.0\tmailbox {}", mbox_path(&r, "dave")),
            "forward\tteam\terin@remote.example\t2.0.0\tforwarded to erin@remote.example"
                .to_string(),
        ]
    );
    assert!(
        r.read_strict("var/mail/carol")
            .contains("\nDelivered-To: carol@test.example\n")
    );
    assert!(
        r.read_strict("var/mail/dave")
            .contains("\nDelivered-To: dave@test.example\n")
    );
}

#[test]
fn program_targets_get_the_message_and_their_exit_status_decides() {
    let r = site("programs", "");
    let out = r.path("out");
    fs::create_dir_all(&out).unwrap();
    r.write(
        "etc/mail/aliases",
        &format!(
            "prog: \"|cat > {o}/prog.txt\"\n\
             later: \"|exit 75\"\n\
             oserr: \"|exit 71\"\n\
             ioerr: \"|exit 74\"\n\
             qmail: \"|exit 111\"\n\
             broken: \"|exit 1\"\n\
             chatty: \"|echo oops; exit 1\"\n\
             slow: \"|sleep 30\"\n",
            o = out.display()
        ),
    );
    let msg = b"Subject: to a program\n\nFrom the body\n";
    let o = r.deliver(&["-q", "-f", "alice@example.org", "prog"], msg);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        report(&o),
        [format!(
            "ok\tprog\t\"|cat > {o}/prog.txt\"\t2.0.0\tprogram cat > {o}/prog.txt",
            o = out.display()
        )]
    );
    let (uid, gid) = (uid(), gid());
    assert_eq!(
        lines(&o)[0].ctl,
        format!("nobody:{uid}:{gid}"),
        "runs as default_user"
    );
    // Programs get Return-Path first and the message unquoted, no From_ line.
    let got = r.read_strict("out/prog.txt");
    assert!(
        got.starts_with("Return-Path: <alice@example.org>\n"),
        "{got}"
    );
    assert!(
        got.ends_with("Subject: to a program\n\nFrom the body\n"),
        "{got}"
    );

    for alias in ["later", "oserr", "ioerr", "qmail"] {
        let o = r.deliver(&["-q", alias], msg);
        assert_eq!(code(&o), 75, "{alias}: {}", stdout(&o));
        let l = report(&o);
        assert_eq!(l.len(), 1, "{l:?}");
        assert!(
            l[0].starts_with(&format!("defer\t{alias}\t\"|exit ")) && l[0].contains("\t4."),
            "{l:?}"
        );
    }

    let o = r.deliver(&["-q", "broken"], msg);
    assert!(![0, 75].contains(&code(&o)), "{}", code(&o));
    assert_eq!(
        report(&o),
        ["fail\tbroken\t\"|exit 1\"\t5.3.0\tunknown mailer error 1"]
    );
    // What the program said goes into the bounce text.
    let o = r.deliver(&["-q", "chatty"], msg);
    let l = report(&o);
    assert!(
        l.len() == 1
            && l[0].starts_with("fail\tchatty\t")
            && l[0].contains("unknown mailer error 1")
            && l[0].contains("oops"),
        "{l:?}"
    );

    // program_timeout = 1s: killed and deferred, quickly.
    let t = Instant::now();
    let o = r.deliver(&["-q", "slow"], msg);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(code(&o), 75, "{}", stdout(&o));
    let l = report(&o);
    assert!(
        l.len() == 1
            && l[0].starts_with("defer\tslow\t\"|sleep 30\"\t4.")
            && l[0].contains("timed out"),
        "{l:?}"
    );
}

// A program that never reads (here `sleep 6`) a message larger than the
// pipe buffer (1 MB) must still be killed after program_timeout (1s) and
// the delivery deferred — not block `deliver` until the program exits.
#[test]
fn a_program_that_never_reads_a_big_message_still_times_out() {
    let r = site("program-no-read", "");
    r.write("etc/mail/aliases", "sleepy: \"|sleep 6\"\n");
    let mut msg = b"Subject: big\n\n".to_vec();
    for _ in 0..10_000 {
        msg.extend(std::iter::repeat_n(b'x', 99));
        msg.push(b'\n');
    }
    let t = Instant::now();
    let o = r.deliver(&["-q", "sleepy"], &msg);
    let took = t.elapsed();
    let l = lines(&o);
    assert!(
        l.len() == 1
            && l[0].kind == "defer"
            && l[0].dsn.starts_with("4.")
            && l[0].text.contains("timed out"),
        "after {took:?}: {l:?}"
    );
    assert_eq!(code(&o), 75);
    assert!(took < Duration::from_secs(5), "{took:?}");
}

// `/dev/null` discards, as in sendmail 8 (deliver.c mailfile(), "Special
// case /dev/null") and Postfix local(8); "nobody: /dev/null" aliases are
// common.
#[test]
fn an_alias_to_dev_null_discards_the_mail() {
    let r = site("devnull", "");
    r.write("etc/mail/aliases", "devnull: /dev/null\n");
    let o = r.deliver(&["-q", "devnull"], b"Subject: away\n\nx\n");
    let l = lines(&o);
    assert!(
        l.len() == 1 && l[0].kind == "ok" && l[0].printable == "/dev/null",
        "{l:?}"
    );
    assert_eq!(code(&o), 0);
    assert!(
        !exists(&r.path("dev/null")),
        "a file was created for /dev/null"
    );
}

#[test]
fn a_file_target_is_appended_to_as_an_mbox() {
    let r = site("file", "");
    r.write("etc/mail/aliases", "archive: /archive/all.mbox\n");
    fs::create_dir_all(r.path("archive")).unwrap();
    let t0 = now();
    for n in ["1", "2"] {
        let o = r.deliver(
            &["-q", "-f", "alice@example.org", "archive"],
            format!("Subject: {n}\n\nFrom {n}\n").as_bytes(),
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(
            report(&o),
            ["ok\tarchive\t/archive/all.mbox\t2.0.0\tfile /archive/all.mbox"]
        );
    }
    let t1 = now();
    assert_eq!(
        dates_checked(&r.read_strict("archive/all.mbox"), t0, t1),
        "From alice@example.org  DATE\nReturn-Path: <alice@example.org>\nSubject: 1\n\n>From 1\n\n\
From alice@example.org  DATE\nReturn-Path: <alice@example.org>\nSubject: 2\n\n>From 2\n\n"
    );
    assert_eq!(mode(&r, "archive/all.mbox"), 0o600);
}

#[test]
fn a_safe_forward_file_is_honoured_and_can_keep_a_copy() {
    let r = site("forward", "");
    r.write("home/bob/.forward", "\\bob, other@remote.example\n");
    fs::set_permissions(
        r.path("home/bob/.forward"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let o = r.deliver(
        &["-q", "-f", "alice@example.org", "bob"],
        b"Subject: f\n\nf\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        report(&o),
        [
            format!("ok\tbob\t\\bob\t2.0.0\tmailbox {}", mbox_path(&r, "bob")),
            "forward\tbob\tother@remote.example\t2.0.0\tforwarded to other@remote.example"
                .to_string(),
        ]
    );
    assert!(
        r.read_strict("var/mail/bob")
            .contains("\nDelivered-To: bob@test.example\nSubject: f\n")
    );

    // Programs and files in a .forward run for its user.
    let out = r.path("out");
    fs::create_dir_all(&out).unwrap();
    r.write(
        "home/carol/.forward",
        &format!("\"|cat > {}/carol-prog\"\n/out/carol-file\n", out.display()),
    );
    fs::set_permissions(
        r.path("home/carol/.forward"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let o = r.deliver(
        &["-q", "-f", "alice@example.org", "carol"],
        b"Subject: c\n\nc\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let l = report(&o);
    assert_eq!(l.len(), 2, "{l:?}");
    assert!(l[0].starts_with("ok\tcarol\t\"|cat > "), "{l:?}");
    let (uid, gid) = (uid(), gid());
    for l in lines(&o) {
        assert_eq!(l.ctl, format!("carol:{uid}:{gid}"), "runs as carol: {l:?}");
    }
    assert_eq!(
        l[1],
        "ok\tcarol\t/out/carol-file\t2.0.0\tfile /out/carol-file"
    );
    assert!(
        r.read_strict("out/carol-prog")
            .ends_with("Subject: c\n\nc\n")
    );
    assert!(
        r.read_strict("out/carol-file")
            .contains("\nSubject: c\n\nc\n\n")
    );
    assert!(
        !exists(&r.path("var/mail/carol")),
        "forwarded, no copy kept"
    );
}

#[test]
fn a_group_or_world_writable_forward_file_is_ignored() {
    for m in [0o666, 0o620] {
        let r = site(&format!("forward-{m:o}"), "");
        r.write("home/bob/.forward", "other@remote.example\n");
        fs::set_permissions(r.path("home/bob/.forward"), fs::Permissions::from_mode(m)).unwrap();
        let o = r.deliver(
            &["-q", "-f", "alice@example.org", "bob"],
            b"Subject: f\n\nf\n",
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(
            report(&o),
            [format!(
                "ok\tbob\tbob\t2.0.0\tmailbox {}",
                mbox_path(&r, "bob")
            )],
            "mode {m:o}"
        );
        assert!(r.read_strict("var/mail/bob").contains("\nSubject: f\n"));
    }
}

#[test]
fn over_quota_defers_a_young_message_and_bounces_an_old_one() {
    // bob: the default limit; dave: his own, smaller; carol: none.
    let r = site("quota", "mailbox_size_limit = 1000\n");
    r.write("etc/mail/quotas", "dave 300\ncarol 0\n");
    let small = b"Subject: small\n\nsmall\n";
    let mut big = b"Subject: big\n\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 1200));
    big.push(b'\n');
    let fresh = now().to_string();
    let old = (now() - 2 * 86400).to_string();

    for u in ["bob", "dave"] {
        let o = r.deliver(&["-q", "-f", "alice@example.org", u], small);
        assert_eq!(code(&o), 0, "{u}: {}", stdout(&o));
    }
    // dave's 300 bytes do not hold a 600-byte message; bob's 1000 do.
    let mut medium = b"Subject: medium\n\n".to_vec();
    medium.extend(std::iter::repeat_n(b'm', 600));
    medium.push(b'\n');
    let o = r.deliver(&["-q", "-T", &fresh, "dave"], &medium);
    assert_eq!(code(&o), 75, "{}", stdout(&o));
    let o = r.deliver(&["-q", "-T", &fresh, "bob"], &medium);
    assert_eq!(code(&o), 0, "{}", stdout(&o));

    for u in ["bob", "dave"] {
        let before = fs::read(r.path(&format!("var/mail/{u}"))).unwrap();
        let o = r.deliver(&["-q", "-T", &fresh, u], &big);
        assert_eq!(code(&o), 75, "{u}: {}", stdout(&o));
        let l = report(&o);
        assert!(
            l.len() == 1 && l[0].starts_with(&format!("defer\t{u}\t{u}\t4.2.2\t")),
            "{l:?}"
        );
        let o = r.deliver(&["-T", &old, u], &big);
        assert!(![0, 75].contains(&code(&o)), "{u}: {}", code(&o));
        assert!(
            stderr(&o).starts_with(&format!("{u}... ")),
            "{}",
            stderr(&o)
        );
        let o = r.deliver(&["-q", "-T", &old, u], &big);
        let l = report(&o);
        assert!(
            l.len() == 1 && l[0].starts_with(&format!("fail\t{u}\t{u}\t5.2.2\t")),
            "{l:?}"
        );
        assert_eq!(
            fs::read(r.path(&format!("var/mail/{u}"))).unwrap(),
            before,
            "{u}'s mailbox changed"
        );
    }
    // "carol 0" lifts the default limit.
    let o = r.deliver(&["-q", "-T", &old, "carol"], &big);
    assert_eq!(code(&o), 0, "{}", stdout(&o));

    // over_quota_defer sets how long a message may wait.
    let r = site(
        "quota-1h",
        "mailbox_size_limit = 1000\nover_quota_defer = 1h\n",
    );
    for (age, kind, dsn) in [(1800, "defer", "4.2.2"), (7200, "fail", "5.2.2")] {
        let t = (now() - age).to_string();
        let o = r.deliver(&["-q", "-T", &t, "bob"], &big);
        let l = lines(&o);
        assert!(
            l.len() == 1 && l[0].kind == kind && l[0].dsn == dsn,
            "{age}s old: {l:?}"
        );
    }
}

#[test]
fn over_quota_in_a_maildir_defers_and_adds_nothing() {
    let r = site("quota-maildir", "mailbox_size_limit = 500\n");
    fs::create_dir_all(r.path("home/bob/Maildir")).unwrap();
    let o = r.deliver(&["-q", "bob"], b"Subject: s\n\ns\n");
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let mut big = b"Subject: big\n\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 600));
    let o = r.deliver(&["-q", "bob"], &big);
    assert_eq!(code(&o), 75, "{}", stdout(&o));
    assert!(
        report(&o)[0].starts_with("defer\tbob\tbob\t4.2.2\t"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        fs::read_dir(r.path("home/bob/Maildir/new"))
            .unwrap()
            .count(),
        1
    );
    assert_eq!(
        fs::read_dir(r.path("home/bob/Maildir/tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn a_message_already_delivered_to_the_mailbox_is_a_loop() {
    let r = site("loop", "");
    for dt in ["bob@test.example", "BOB@Test.Example"] {
        let msg = format!("Delivered-To: {dt}\nSubject: again\n\nx\n");
        let o = r.deliver(&["-q", "bob"], msg.as_bytes());
        assert!(![0, 75].contains(&code(&o)), "{}", code(&o));
        let l = report(&o);
        assert!(
            l.len() == 1 && l[0].starts_with("fail\tbob\tbob\t5.4.6\t"),
            "{l:?}"
        );
        assert!(!exists(&r.path("var/mail/bob")), "nothing delivered");
    }
    // A Delivered-To: in the body (a quoted bounce) is not a loop.
    let o = r.deliver(
        &["-q", "bob"],
        b"Subject: bounce\n\nDelivered-To: bob@test.example\n",
    );
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    fs::remove_file(r.path("var/mail/bob")).unwrap();
    // Delivered to someone else before: fine.
    let o = r.deliver(
        &["-q", "bob"],
        b"Delivered-To: carol@test.example\nSubject: fwd\n\nx\n",
    );
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(r.read_strict("var/mail/bob").contains(
        "\nDelivered-To: bob@test.example\nDelivered-To: carol@test.example\nSubject: fwd\n"
    ));
}

#[test]
fn an_unknown_user_is_67_and_the_others_still_get_their_copy() {
    let r = site("unknown", "");
    let o = r.deliver(&["nosuch"], b"Subject: x\n\nx\n");
    assert_eq!(code(&o), 67, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("nosuch... User unknown"),
        "{}",
        stderr(&o)
    );
    let o = r.deliver(&["-q", "bob", "nosuch"], b"Subject: x\n\nx\n");
    assert_eq!(code(&o), 67, "{}", stderr(&o));
    assert_eq!(
        report(&o),
        [
            format!("ok\tbob\tbob\t2.0.0\tmailbox {}", mbox_path(&r, "bob")),
            "fail\tnosuch\tnosuch\t5.1.1\tUser unknown".to_string(),
        ]
    );
    assert!(r.read_strict("var/mail/bob").contains("\nSubject: x\n"));
}

#[test]
fn concurrent_deliveries_leave_every_message_whole() {
    let r = site("concurrent", "");
    let bin = bin("deliver");
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let root = r.dir.clone();
            let bin = bin.clone();
            std::thread::spawn(move || {
                for n in 0..4 {
                    let mut msg = format!("Subject: {w}-{n}\n\n").into_bytes();
                    // Larger than one write(2) (80 KB): without locks, copies
                    // would interleave.
                    for i in 0..3000 {
                        msg.extend(format!("From line {i} of {w}-{n}\n").as_bytes());
                    }
                    let mut c = Command::new(&bin);
                    c.env("MAILROOM_ROOT", &root).arg("bob");
                    let o = run_with_input(&mut c, &msg);
                    assert_eq!(code(&o), 0, "{}", stderr(&o));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let text = r.read_strict("var/mail/bob");
    let entries: Vec<&str> = text
        .strip_prefix("From ")
        .unwrap()
        .split("\n\nFrom ")
        .collect();
    assert_eq!(entries.len(), 24);
    let mut seen = std::collections::HashSet::new();
    for e in entries {
        let subject = e.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap();
        assert!(seen.insert(subject.to_string()), "{subject} twice");
        let body: Vec<&str> = e.split("\n\n").nth(1).unwrap().lines().collect();
        assert_eq!(body.len(), 3000, "{subject}");
        for (i, l) in body.iter().enumerate() {
            assert_eq!(*l, format!(">From line {i} of {subject}"));
        }
    }
}

#[test]
fn a_full_disk_defers_and_leaves_the_mbox_as_it_was() {
    let r = site("diskfull", "");
    let deliver = bin("deliver");
    // An mbox of ~40 KB on a 64 KB file system, then a 100 KB message.
    let mut before = b"From x@example.org  Sat Nov 21 05:00:00 2026\nSubject: old\n\n".to_vec();
    before.extend(std::iter::repeat_n(b'o', 40_000));
    before.extend(b"\n\n");
    fs::write(r.path("before"), &before).unwrap();
    let mut big = b"Subject: big\n\n".to_vec();
    for _ in 0..1000 {
        big.extend(std::iter::repeat_n(b'b', 99));
        big.push(b'\n');
    }
    fs::write(r.path("big.msg"), &big).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=64k tmpfs {mail} || exit 99; \
         cp {root}/before {mail}/bob || exit 98; \
         MAILROOM_ROOT={root} {d} -q bob < {root}/big.msg > {root}/out 2>{root}/err; echo $? > {root}/rc; \
         cp {mail}/bob {root}/after; ls -A {mail} > {root}/left",
        mail = r.path("var/mail").display(),
        root = r.dir.display(),
        d = deliver.display(),
    );
    let Some(o) = in_mount_namespace(&r, &script) else {
        return;
    };
    assert!(r.path("rc").exists(), "{}", stderr(&o));
    let rc = r.read_strict("rc");
    let out = r.read_strict("out");
    assert_eq!(rc.trim(), "75", "out: {out} err: {}", r.read_strict("err"));
    let l = parse_report(&out);
    assert!(
        l.len() == 1 && l[0].kind == "defer" && l[0].rcpt == "bob" && l[0].dsn == "4.3.0",
        "{out}"
    );
    assert!(l[0].text.contains("No space left on device"), "{out}");
    assert!(
        fs::read(r.path("after")).unwrap() == before,
        "the mbox changed"
    );
    assert_eq!(r.read_strict("left"), "bob\n", "only the mbox is left");
}

#[test]
fn a_destination_reached_twice_gets_one_copy() {
    let r = site("dedup", "");
    r.write("etc/mail/aliases", "staff: carol, dave\n");
    let o = r.deliver(
        &["-q", "staff", "carol", "Carol@test.example"],
        b"Subject: d\n\nd\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        report(&o),
        [
            format!(
                "ok\tstaff\tcarol\t2.0.0\tmailbox {}",
                mbox_path(&r, "carol")
            ),
            format!("ok\tstaff\tdave\t2.0.0\tmailbox {}", mbox_path(&r, "dave")),
        ]
    );
    assert_eq!(
        r.read_strict("var/mail/carol")
            .matches("\nSubject: d\n")
            .count(),
        1
    );
}

/// Set a file's modification time to `secs` ago.
fn age(p: &std::path::Path, secs: i64) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let t = libc::timeval {
        tv_sec: (now() - secs) as libc::time_t,
        tv_usec: 0,
    };
    // SAFETY: a valid path and two valid timevals.
    assert_eq!(unsafe { libc::utimes(c.as_ptr(), [t, t].as_ptr()) }, 0);
}

#[test]
fn a_locked_mailbox_defers_and_a_stale_dotlock_is_broken() {
    let r = site("locked", "mailbox_lock_timeout = 1s\n");
    let before = "From x@example.org  Sat Nov 21 05:00:00 2026\nSubject: old\n\nold\n\n";
    r.write("var/mail/bob", before);
    // Someone else's fresh dotlock.
    r.write("var/mail/bob.lock", "0");
    let o = r.deliver(&["-q", "bob"], b"Subject: new\n\nnew\n");
    assert_eq!(code(&o), 75, "{}", stdout(&o));
    assert!(
        report(&o)[0].starts_with("defer\tbob\tbob\t4.2.0\t"),
        "{}",
        stdout(&o)
    );
    assert_eq!(r.read_strict("var/mail/bob"), before);
    assert!(exists(&r.path("var/mail/bob.lock")), "not ours to remove");

    // An fcntl lock held by another process (this one).
    fs::remove_file(r.path("var/mail/bob.lock")).unwrap();
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(r.path("var/mail/bob"))
        .unwrap();
    // SAFETY: an all-zero flock is valid; l_len 0 = the whole file.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor and a valid flock.
    assert_eq!(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) }, 0);
    let o = r.deliver(&["-q", "bob"], b"Subject: new\n\nnew\n");
    assert_eq!(code(&o), 75, "{}", stdout(&o));
    assert_eq!(r.read_strict("var/mail/bob"), before);
    assert!(!exists(&r.path("var/mail/bob.lock")));
    drop(f);

    // A dotlock untouched for ten minutes belongs to a dead process.
    r.write("var/mail/bob.lock", "0");
    age(&r.path("var/mail/bob.lock"), 600);
    let o = r.deliver(&["-q", "bob"], b"Subject: new\n\nnew\n");
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        r.read_strict("var/mail/bob")
            .ends_with("\nSubject: new\n\nnew\n\n")
    );
    assert!(!exists(&r.path("var/mail/bob.lock")));
}

#[test]
fn a_mailbox_that_is_a_link_is_refused_and_its_target_untouched() {
    let r = site("links", "");
    r.write("victim", "precious\n");
    std::os::unix::fs::symlink(r.path("victim"), r.path("var/mail/bob")).unwrap();
    fs::hard_link(r.path("victim"), r.path("var/mail/carol")).unwrap();
    for u in ["bob", "carol"] {
        let o = r.deliver(&["-q", u], b"Subject: x\n\nx\n");
        assert_ne!(code(&o), 0, "{u}: {}", stdout(&o));
        let l = report(&o);
        assert!(
            l.len() == 1
                && (l[0].starts_with(&format!("fail\t{u}\t{u}\t5."))
                    || l[0].starts_with(&format!("defer\t{u}\t{u}\t4."))),
            "{l:?}"
        );
        assert_eq!(r.read_strict("victim"), "precious\n", "{u}");
    }
}
