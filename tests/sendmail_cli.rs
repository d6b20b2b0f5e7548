//! `sendmail` as real callers run it: PHP, cron, backup scripts, mutt, git
//! send-email; what lands in the queue and the exit code.

mod common;
use common::*;

const PHP_MESSAGE: &[u8] =
    b"To: eve@example.org\r\nSubject: Contact form\r\nFrom: web@example.com\r\n\r\nHello\r\n.\r\nbye\r\n";

#[test]
fn php_mail_queues_with_crlf_stored_as_lf_and_a_lone_dot_kept() {
    let r = Root::new("php");
    let o = r.sendmail(&["-t", "-i"], PHP_MESSAGE);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(o.stderr.is_empty(), "no chatter: {}", stderr(&o));
    let id = r.only_id();
    assert_eq!(r.df(&id), b"Hello\n.\nbye\n");
    let qf = r.qf(&id);
    assert_eq!(recipients(&qf), ["eve@example.org"]);
    assert!(qf.contains("\nSroot\n") || qf.contains("\nS"), "{qf}");
    let h = headers(&qf);
    assert!(h.iter().any(|l| l == "??To: eve@example.org"), "{h:?}");
    assert!(h.iter().any(|l| l == "??From: web@example.com"), "{h:?}");
    assert!(
        !h.iter().any(|l| l.starts_with("?F?From:")),
        "From: kept, not generated: {h:?}"
    );
    assert!(
        h.iter()
            .any(|l| l.starts_with("?M?Message-Id: <")
                && l.contains(&format!(".{id}@test.example>")))
    );
    assert!(h.iter().any(|l| l.starts_with("?D?Date: ")));
    assert!(h[1].starts_with("??Received: (from "), "{h:?}");
}

#[test]
fn crons_exact_argv() {
    let r = Root::new("cron");
    let msg = b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@host> /usr/local/bin/backup\nX-Cron-Env: <SHELL=/bin/sh>\n\nbackup done\n";
    let o = r.sendmail(
        &[
            "-FCronDaemon",
            "-i",
            "-odi",
            "-oem",
            "-oi",
            "-t",
            "-f",
            "root",
        ],
        msg,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // -odi: delivered before sendmail returned.
    assert!(r.queued_ids().is_empty(), "{:?}", r.queue_files());
    let mbox = r.read_strict("var/mail/root");
    assert!(mbox.starts_with("From root@test.example "), "{mbox}");
    assert!(
        mbox.contains("\nReturn-Path: <root@test.example>\n"),
        "{mbox}"
    );
    assert!(mbox.contains("\nX-Cron-Env: <SHELL=/bin/sh>\n"), "{mbox}");
    assert!(mbox.ends_with("\n\nbackup done\n\n"), "{mbox}");
    assert!(r.log().contains("from=root, size="), "{}", r.log());

    // Debian's cron: recipient on argv, 8-bit body.
    let r = Root::new("cron-debian");
    let msg = "Subject: Cron <root@host> ls\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\nrésumé\n";
    let o = r.sendmail(
        &["-i", "-FCronDaemon", "-B8BITMIME", "-oem", "root"],
        msg.as_bytes(),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let qf = r.qf(&r.only_id());
    assert!(qf.contains("\nB8BITMIME\n"), "{qf}");
    assert!(qf.contains("\nF8s\n"), "{qf}");
    assert!(qf.contains("?F?From: CronDaemon <root>"), "{qf}");
}

#[test]
fn backup_script_with_f_and_one_recipient() {
    let r = Root::new("backup");
    let o = r.sendmail(
        &["-f", "backup@example.com", "admin@example.com"],
        b"done\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = r.only_id();
    let qf = r.qf(&id);
    assert!(qf.contains("\nSbackup@example.com\n"));
    assert_eq!(recipients(&qf), ["admin@example.com"]);
    assert_eq!(r.df(&id), b"done\n");
    let h = headers(&qf);
    assert!(
        h.iter()
            .any(|l| l.contains(&format!("id {id}\n\tfor admin@example.com; "))),
        "{h:?}"
    );
    assert!(
        h.iter().any(|l| l == "?F?From: backup@example.com"),
        "{h:?}"
    );
}

#[test]
fn t_with_bcc_keeps_the_recipient_and_drops_the_header() {
    let r = Root::new("bcc");
    let msg = b"To: a@example.org\nBcc: hidden@example.org\nSubject: s\n\nx\n";
    let o = r.sendmail(&["-t", "-i"], msg);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let qf = r.qf(&r.only_id());
    assert_eq!(recipients(&qf), ["a@example.org", "hidden@example.org"]);
    assert!(!qf.to_ascii_lowercase().contains("bcc:"), "{qf}");
    assert!(qf.contains("\nFbs\n"), "{qf}");
}

#[test]
fn t_plus_an_argv_recipient_adds_it_once() {
    let r = Root::new("targv");
    let msg = b"To: a@example.org, b@example.org\nSubject: s\n\nx\n";
    let o = r.sendmail(
        &["-t", "c@example.org", "A@EXAMPLE.ORG", "b@example.org"],
        msg,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let qf = r.qf(&r.only_id());
    assert_eq!(
        recipients(&qf),
        [
            "a@example.org",
            "b@example.org",
            "c@example.org",
            "A@EXAMPLE.ORG"
        ]
    );
}

#[test]
fn resent_headers_decide_recipients() {
    let r = Root::new("resent");
    let msg = b"To: original@example.org\nResent-To: new@example.org\nResent-Cc: cc@example.org\nSubject: s\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-Id: <x@y>\n\nx\n";
    let o = r.sendmail(&["-t", "-i"], msg);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let qf = r.qf(&r.only_id());
    assert_eq!(recipients(&qf), ["new@example.org", "cc@example.org"]);
    let h = headers(&qf);
    assert!(h.iter().any(|l| l.starts_with("?D?Resent-Date: ")), "{h:?}");
    assert!(
        h.iter().any(|l| l.starts_with("?M?Resent-Message-Id: <")),
        "{h:?}"
    );
    assert!(
        !h.iter().any(|l| l.starts_with("?D?Date:")),
        "Date present: {h:?}"
    );
}

#[test]
fn double_dash_lets_a_recipient_start_with_a_dash() {
    let r = Root::new("dashdash");
    let o = r.sendmail(&["-oi", "--", "-odd@example.com"], b"Subject: s\n\nx\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(recipients(&r.qf(&r.only_id())), ["-odd@example.com"]);
}

#[test]
fn eight_bit_body_with_long_lines_is_byte_identical() {
    let r = Root::new("8bit");
    let mut body = Vec::new();
    for i in 0..50u8 {
        let mut line: Vec<u8> = (0..2000)
            .map(|j| b'a' + ((i as usize + j) % 26) as u8)
            .collect();
        line.extend_from_slice(&[0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xff, 0x80]);
        line.push(b'\n');
        body.extend_from_slice(&line);
    }
    body.extend_from_slice(b"..leading dots kept with -i\n.\nno final newline");
    let mut msg = b"Subject: =?utf-8?q?caf=C3=A9?=\nX-Raw: caf\xc3\xa9\n\n".to_vec();
    msg.extend_from_slice(&body);
    let o = r.sendmail(&["-i", "someone@example.org"], &msg);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = r.only_id();
    assert_eq!(r.df(&id), body);
    let qf = std::fs::read(r.queue().join(format!("qf{id}"))).unwrap();
    assert!(qf.windows(13).any(|w| w == b"X-Raw: caf\xc3\xa9\n"));
}

#[test]
fn without_i_a_lone_dot_ends_and_double_dots_lose_one() {
    let r = Root::new("dots");
    let o = r.sendmail(
        &["x@example.org"],
        b"Subject: s\n\n..a\n.b\n...\n.\nnot read\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(r.df(&r.only_id()), b".a\n.b\n..\n");
}

#[test]
fn errors_exit_with_sysexits_and_leave_nothing() {
    let r = Root::new("errors");
    let o = r.sendmail(&[], b"x");
    assert_eq!(code(&o), 64);
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).starts_with("sendmail: Recipient names must be specified; "));

    let o = r.sendmail(&["-t"], b"Subject: nobody\n\nx\n");
    assert_eq!(code(&o), 64);
    assert!(
        stderr(&o).contains("No recipient addresses found in header"),
        "{}",
        stderr(&o)
    );

    let o = r.sendmail(&["-Z", "a@b"], b"x");
    assert_eq!(code(&o), 64);
    assert!(
        stderr(&o).starts_with("sendmail: illegal option -- Z"),
        "{}",
        stderr(&o)
    );

    let o = r.sendmail(&["<unbalanced@example.org"], b"x");
    assert_eq!(code(&o), 64);
    assert!(stderr(&o).contains("Unbalanced '<'"), "{}", stderr(&o));

    let o = r.sendmail(&["-N", "sometimes", "a@b"], b"x");
    assert_eq!(code(&o), 64);
    assert!(r.queue_files().is_empty(), "{:?}", r.queue_files());
}

#[test]
fn a_message_over_the_size_limit_is_refused_clearly() {
    let r = Root::new("size");
    r.write("etc/mail/mailroom.conf", "hostname = test.example\nmin_free_space = 0\ndelivery_mode = queue\nmessage_size_limit = 1K\n");
    let big = vec![b'x'; 5000];
    let o = r.sendmail(&["a@example.org"], &big);
    assert_eq!(code(&o), 65, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Message exceeds maximum fixed size (1024)"),
        "{}",
        stderr(&o)
    );
    assert!(r.queue_files().is_empty(), "{:?}", r.queue_files());
}

#[test]
fn flags_that_mean_nothing_here_are_accepted() {
    let r = Root::new("ignored");
    let o = r.sendmail(
        // (-odi is not among them: it delivers before returning, below.)
        &[
            "-oem",
            "-B8BITMIME",
            "-N",
            "never",
            "-R",
            "hdrs",
            "-V",
            "id1",
            "-L",
            "tag",
            "-h",
            "10",
            "-n",
            "-U",
            "-G",
            "-Ac",
            "-X",
            "/nonexistent/log",
            "-v",
            "-m",
            "a@example.org",
        ],
        b"Subject: s\n\nx\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let qf = r.qf(&r.only_id());
    assert!(qf.contains("\nZid1\n"), "{qf}");
    assert!(qf.contains("\nRPN:a@example.org\n"), "{qf}");
    assert!(qf.contains("\nB7BIT\n"), "{qf}");
    assert!(qf.contains("\nFdns\n"), "{qf}");
    assert!(!std::path::Path::new("/nonexistent/log").exists());
}

#[test]
fn generated_from_uses_gecos_or_f_name() {
    let r = Root::new("from");
    let o = r.sendmail(
        &["-F", "Dave Q. User", "a@example.org"],
        b"Subject: s\n\nx\n",
    );
    assert_eq!(code(&o), 0);
    let qf = r.qf(&r.only_id());
    assert!(qf.contains("\nH?F?From: \"Dave Q. User\" <"), "{qf}");
    assert!(qf.contains("\nH?x?Full-Name: \"Dave Q. User\"\n"), "{qf}");
}

#[test]
fn unix_from_line_supplies_the_date() {
    let r = Root::new("fromline");
    let o = r.sendmail(
        &["a@example.org"],
        b"From someone@x.y Thu Nov 20 10:00:00 2025\nSubject: s\n\nbody\n",
    );
    assert_eq!(code(&o), 0);
    let id = r.only_id();
    let qf = r.qf(&id);
    assert!(
        qf.contains("\nP30059\n"),
        "size counts the From line as sendmail does: {qf}"
    );
    assert!(qf.contains("Thu, 20 Nov 2025 10:00:00"), "{qf}");
    assert_eq!(r.df(&id), b"body\n");
}

#[test]
fn log_lines_follow_sendmails_format() {
    let r = Root::new("log");
    let o = r.sendmail(&["a@example.org", "root"], b"Subject: s\n\nx\n");
    assert_eq!(code(&o), 0);
    let id = r.only_id();
    let log = r.log();
    let from = log.lines().find(|l| l.contains("from=")).expect(&log);
    assert!(
        from.contains("sendmail[") && from.contains(&format!("]: {id}: from=")),
        "{from}"
    );
    assert!(
        from.contains(", size=14, class=0, nrcpts=2, msgid=<"),
        "{from}"
    );
    assert!(
        from.ends_with("relay=root@localhost") || from.contains(", relay="),
        "{from}"
    );
    assert!(
        log.contains(&format!(
            "{id}: to=a@example.org, delay=00:00:00, mailer=esmtp, pri=60014, stat=queued"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "{id}: to=root, delay=00:00:00, mailer=local, pri=60014, stat=queued"
        )),
        "{log}"
    );
}

#[test]
fn newaliases_reports_like_sendmail() {
    let r = Root::new("newaliases");
    r.write("etc/mail/aliases", "postmaster: root\nalice: bob\n");
    let o = r.cmd("sendmail").arg("-bi").output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let want = format!(
        "{}: 2 aliases, longest 4 bytes, 22 bytes total\n",
        r.path("etc/mail/aliases").display()
    );
    assert_eq!(stdout(&o), want);

    r.write("etc/mail/aliases", "ok: root\nbroken line\n");
    let o = r.cmd("sendmail").arg("-bi").output().unwrap();
    assert_eq!(code(&o), 70);
    assert!(
        stdout(&o).contains("line 2: missing colon"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn modes_of_later_parts_say_so() {
    let r = Root::new("later");
    for args in [["-bd"], ["-bt"], ["-bh"]] {
        let o = r.cmd("sendmail").args(args).output().unwrap();
        assert_eq!(code(&o), 69, "{args:?}");
        assert_eq!(stderr(&o).lines().count(), 1);
    }
}

/// A hostile 100 KB address (argument, -f, or header for -t) is refused
/// with one short line; nothing of it reaches the queue.
#[test]
fn a_100_kb_address_is_refused_with_one_short_line() {
    let r = Root::new("longaddr");
    let long = format!("{}@example.org", "a".repeat(100_000));
    for args in [
        vec!["-i", long.as_str()],
        vec!["-f", long.as_str(), "-i", "bob@example.org"],
    ] {
        let o = r.sendmail(&args, b"Subject: long\n\nx\n");
        assert_eq!(code(&o), 64, "{}", &stderr(&o)[..200]);
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{}", &err[..200]);
        assert!(err.len() < 400, "{} bytes", err.len());
        assert!(err.contains("Address too long"), "{err}");
        assert!(r.queue_files().is_empty(), "{:?}", r.queue_files());
    }
    // -t: the long address is skipped with a short note; the rest goes.
    let msg = format!("To: {long}, bob@example.org\nSubject: t\n\nx\n");
    let o = r.sendmail(&["-t", "-i"], msg.as_bytes());
    let err = stderr(&o);
    assert!(err.len() < 400, "{} bytes", err.len());
    if code(&o) == 0 {
        assert_eq!(recipients(&r.qf(&r.only_id())), ["bob@example.org"]);
    }
}
