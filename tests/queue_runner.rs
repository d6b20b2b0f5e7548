//! The queue runner on private roots: local delivery, two runners on one
//! queue, remote delivery to a scripted SMTP server (routed with
//! mailertable, no DNS), per-recipient outcomes, retries and bounces.

mod common;
use common::fake_mx::FakeMx;
use common::*;

use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A root with users bob, eve, alice (our own uid), nobody, and the given
/// config.
fn root(name: &str, extra_conf: &str) -> Root {
    let r = Root::with_users(name, &["bob", "eve", "alice"]);
    r.append(
        "etc/passwd",
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
    );
    r.write(
        "etc/mail/mailroom.conf",
        &format!(
            "hostname = test.example\nlog = /var/log/mail.log\nmin_free_space = 0\ndelivery_mode = queue\nprobe_interfaces = no\nsmtp_timeout_cap = 3s\n{extra_conf}"
        ),
    );
    r.write("etc/mail/aliases", "postmaster: root\nteam: bob, eve\n");
    r
}

/// A root whose messages are delivered as they are queued (an express
/// run, not `delivery_mode = queue`), lingering `linger` seconds.
fn express_root(name: &str, linger: u32) -> Root {
    let r = root(name, "");
    r.write(
        "etc/mail/mailroom.conf",
        &format!(
            "hostname = test.example\nlog = /var/log/mail.log\nmin_free_space = 0\nprobe_interfaces = no\nexpress_linger = {linger}\n"
        ),
    );
    r
}

#[test]
fn a_queued_message_is_delivered_to_local_mailboxes() {
    let r = root("qrun-local", "");
    let o = r.sendmail(&["-i", "bob", "team"], b"Subject: hello\n\nbody\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = r.qrun(&["-q"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(r.queue_files().is_empty(), "{:?}", r.queue_files());
    // bob once (via himself and via team), eve once.
    assert_eq!(r.mbox("bob").matches("Subject: hello").count(), 1);
    assert_eq!(r.mbox("eve").matches("Subject: hello").count(), 1);
    assert!(r.log().contains("stat=Sent"), "{}", r.log());
}

/// Quoted aliases names, as sendmail 8 reads them: "john smith" keeps its
/// quotes (any case, exact spacing), "sales.team" is sales.team.  Mail to
/// them arrives whether submitted on the command line or over SMTP.
#[test]
fn mail_to_a_quoted_alias_name_is_delivered_from_sendmail_and_smtp() {
    let r = root("qrun-quoted", "");
    r.write(
        "etc/mail/aliases",
        "postmaster: root\n\"john smith\": eve\n\"sales.team\": alice\n",
    );
    let o = r.sendmail(
        &["-i", "\"John Smith\"", "Sales.Team@test.example"],
        b"Subject: by argv\n\nbody\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = String::from_utf8_lossy(
        &r.sendmail(
            &["-bs"],
            b"HELO web.example\r\nMAIL FROM:<site@test.example>\r\n\
              RCPT TO:<\"john smith\"@test.example>\r\nRCPT TO:<\"sales.team\"@test.example>\r\n\
              RCPT TO:<\"john  smith\"@test.example>\r\n\
              DATA\r\nSubject: by smtp\r\n\r\nbody\r\n.\r\nQUIT\r\n",
        )
        .stdout,
    )
    .into_owned();
    assert!(
        out.contains("250 2.1.5 <\"john smith\"@test.example>... Recipient ok"),
        "{out}"
    );
    assert!(
        out.contains("250 2.1.5 <\"sales.team\"@test.example>... Recipient ok"),
        "{out}"
    );
    // Spacing counts: two spaces are another name.
    assert!(
        out.contains("550 5.1.1 <\"john  smith\"@test.example>... User unknown"),
        "{out}"
    );
    assert!(out.contains("Message accepted for delivery"), "{out}");
    let o = r.qrun(&["-q"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(r.queue_files().is_empty(), "{:?}", r.queue_files());
    for user in ["eve", "alice"] {
        let m = r.mbox(user);
        assert_eq!(m.matches("Subject: by argv").count(), 1, "{user}: {m}");
        assert_eq!(m.matches("Subject: by smtp").count(), 1, "{user}: {m}");
    }
}

#[test]
fn background_delivery_after_sendmail_returns() {
    let r = root("qrun-bg", "");
    r.write(
        "etc/mail/mailroom.conf",
        "hostname = test.example\nlog = /var/log/mail.log\nmin_free_space = 0\nprobe_interfaces = no\n",
    );
    let o = r.sendmail(&["-t", "-i"], b"To: bob\nSubject: fast\n\nx\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let t = Instant::now();
    while !r.mbox("bob").contains("Subject: fast") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "not delivered; queue {:?}",
            r.queue_files()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait until `user`'s mbox holds `n` copies of `what` (at most `secs`).
fn wait_for_mail(r: &Root, user: &str, what: &str, n: usize, secs: u64) {
    let t = Instant::now();
    while r.mbox(user).matches(what).count() < n {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "{n} × {what:?} not delivered to {user} within {secs} s; queue {:?}, new/ {:?}",
            r.queue_files(),
            std::fs::read_dir(r.queue().join("new"))
                .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The express run's last instant: it has looked for new mail for the
/// last time and is letting go of its lock (the test stretches that
/// instant to four seconds) when `sendmail` queues another message, finds the
/// lock held and counts on the run.  The run's look after letting go
/// takes it: delivered at once, not left for the periodic run (there is
/// none here).
#[test]
fn a_message_queued_while_the_express_run_is_finishing_is_delivered_at_once() {
    let r = express_root("qrun-express-finish", 0);
    let send = |subject: &str| {
        let o = run_with_input(
            r.cmd("sendmail")
                .args(["-t", "-i"])
                .env("MAILROOM_TEST_EXPRESS_PAUSE_MS", "4000"),
            format!("To: bob\nSubject: {subject}\n\nx\n").as_bytes(),
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    };
    send("first");
    wait_for_mail(&r, "bob", "Subject: first", 1, 10);
    // The run is done with "first" (its job is gone) and now waits out
    // the stretched instant, still holding its lock.
    let t = Instant::now();
    while !r.queued_ids().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    let new_dir = std::fs::File::open(r.queue().join("new")).unwrap();
    let held = || {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor we own; released at once.
        let free = unsafe { libc::flock(new_dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if free {
            unsafe { libc::flock(new_dir.as_raw_fd(), libc::LOCK_UN) };
        }
        !free
    };
    assert!(held(), "the finishing run should hold its lock now");
    send("second");
    assert!(
        held(),
        "the run let go before sendmail was done (a very slow machine?): the instant was missed"
    );
    wait_for_mail(&r, "bob", "Subject: second", 1, 15);
    // (The job goes just after the mailbox is written.)
    let t = Instant::now();
    while !r.queue_files().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{:?}",
            r.queue_files()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An admin's change applies to the next message even while an express
/// run is lingering with the tables it read at its start.
#[test]
fn an_express_run_applies_a_table_changed_while_it_lingers() {
    let r = express_root("qrun-express-fresh", 30);
    r.write("etc/mail/aliases", "postmaster: root\nsales: bob\n");
    let send = |subject: &str| {
        let o = r.sendmail(
            &["-t", "-i"],
            format!("To: sales\nSubject: {subject}\n\nx\n").as_bytes(),
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    };
    send("before");
    wait_for_mail(&r, "bob", "Subject: before", 1, 10);
    // The run lingers (30 s) with the old aliases; the admin edits them.
    std::thread::sleep(Duration::from_millis(50));
    r.write("etc/mail/aliases", "postmaster: root\nsales: eve\n");
    send("after");
    wait_for_mail(&r, "eve", "Subject: after", 1, 10);
    assert!(
        !r.mbox("bob").contains("Subject: after"),
        "{}",
        r.mbox("bob")
    );
}

/// Many submitters at once, runs starting and ending all the time (no
/// linger): every message is delivered once, promptly, and no marker is
/// left behind.
#[test]
fn messages_from_many_submitters_are_each_delivered_once_by_express_runs() {
    let r = express_root("qrun-express-load", 0);
    std::thread::scope(|s| {
        for t in 0..4 {
            let r = &r;
            s.spawn(move || {
                for i in 0..40 {
                    let o = r.sendmail(
                        &["-t", "-i"],
                        format!("To: bob\nSubject: m{t}-{i}\nMessage-Id: <m{t}-{i}@test>\n\nx\n")
                            .as_bytes(),
                    );
                    assert_eq!(code(&o), 0, "{}", stderr(&o));
                    std::thread::sleep(Duration::from_micros(((t * 7 + i * 13) % 5) as u64 * 700));
                }
            });
        }
    });
    wait_for_mail(&r, "bob", "Message-Id: <m", 160, 60);
    let text = r.mbox("bob");
    for t in 0..4 {
        for i in 0..40 {
            assert_eq!(
                text.matches(&format!("Message-Id: <m{t}-{i}@test>\n"))
                    .count(),
                1
            );
        }
    }
    let t = Instant::now();
    while !r.queue_files().is_empty()
        || std::fs::read_dir(r.queue().join("new")).unwrap().count() > 0
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{:?}",
            r.queue_files()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn two_runners_deliver_each_of_500_messages_exactly_once() {
    let r = root("qrun-two", "queue_workers = 4\n");
    for i in 0..500 {
        let o = r.sendmail(
            &["-i", "bob"],
            format!("Subject: m{i}\nMessage-Id: <m{i}@test>\n\nbody {i}\n").as_bytes(),
        );
        assert_eq!(code(&o), 0);
    }
    let a = r.cmd("qrun").arg("-q").spawn().unwrap();
    let b = r.cmd("qrun").arg("-q").spawn().unwrap();
    assert!(a.wait_with_output().unwrap().status.success());
    assert!(b.wait_with_output().unwrap().status.success());
    // Whatever one runner skipped because the other held it is finished
    // by a last pass.
    r.qrun(&["-q"]);
    assert!(r.queue_files().is_empty(), "{:?}", r.queue_files());
    let text = r.mbox("bob");
    for i in 0..500 {
        assert_eq!(
            text.matches(&format!("Message-Id: <m{i}@test>\n")).count(),
            1,
            "message {i}"
        );
    }
}

#[test]
fn mixed_outcomes_in_one_transaction() {
    let s = FakeMx::start();
    let r = root("qrun-mixed", "");
    r.write(
        "etc/mail/mailertable",
        &format!("remote.test smtp:[127.0.0.1]:{}\n", s.port),
    );
    let o = r.sendmail(
        &[
            "-f",
            "alice",
            "ok@remote.test",
            "defer@remote.test",
            "reject@remote.test",
        ],
        b"Subject: three\n\nbody\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = r.qrun(&["-q"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // One transaction: the accepted one got it.
    let got = s.transactions();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].rcpts, ["<ok@remote.test>"]);
    assert!(got[0].data.contains("Subject: three"));
    assert!(
        got[0].data.contains("From: alice@test.example"),
        "headers qualified: {}",
        got[0].data
    );
    // Only the deferred one stays queued, with its reason.
    let ids = r.queued_ids();
    assert_eq!(ids.len(), 1, "{:?}", r.queue_files());
    let qf = r.qf(&ids[0]);
    assert_eq!(recipients(&qf), ["defer@remote.test"]);
    assert!(qf.contains("MDeferred: 451 4.2.0 Try again later"), "{qf}");
    assert!(qf.contains("\nN1\n"), "{qf}");
    let mailq = stdout(&r.cmd("sendmail").arg("-bp").output().unwrap());
    assert!(
        mailq.contains("(Deferred: 451 4.2.0 Try again later)"),
        "{mailq}"
    );
    // Only the rejected one bounced, to alice, quoting the server.
    let bounce = r.mbox("alice");
    assert!(
        bounce.contains("Subject: Returned mail: see transcript for details"),
        "{bounce}"
    );
    assert!(
        bounce.contains("Final-Recipient: RFC822; reject@remote.test"),
        "{bounce}"
    );
    assert!(
        bounce.contains("Diagnostic-Code: SMTP; 550 5.1.1 No such user here"),
        "{bounce}"
    );
    assert!(
        !bounce.contains("Final-Recipient: RFC822; defer@remote.test"),
        "{bounce}"
    );
    // Not due yet: a periodic run leaves it alone; a forced run retries.
    let o = r.qrun(&["-q", "--periodic"]);
    assert_eq!(code(&o), 0);
    assert!(r.qf(&ids[0]).contains("\nN1\n"));
    r.qrun(&["-q"]);
    assert!(r.qf(&ids[0]).contains("\nN2\n"));
}

#[test]
fn a_host_that_refuses_connections_defers_with_sendmails_words() {
    // A port nothing listens on.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = root("qrun-refused", "");
    r.write(
        "etc/mail/mailertable",
        &format!("gmail.example smtp:[127.0.0.1]:{port}\n"),
    );
    let o = r.sendmail(&["customer@gmail.example"], b"Subject: contact\n\nhi\n");
    assert_eq!(code(&o), 0);
    r.qrun(&["-q"]);
    let mailq = stdout(&r.cmd("sendmail").arg("-bp").output().unwrap());
    assert!(
        mailq.contains("(Deferred: Connection refused by 127.0.0.1.)"),
        "{mailq}"
    );
    assert!(
        r.mbox("root").is_empty(),
        "no bounce for a refused connection"
    );
}

#[test]
fn delay_warning_once_then_final_bounce() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = root("qrun-expire", "queue_warn = 1s\nqueue_return = 3s\n");
    r.write(
        "etc/mail/mailertable",
        &format!("gmail.example smtp:[127.0.0.1]:{port}\n"),
    );
    let o = r.sendmail(
        &["-f", "alice", "customer@gmail.example"],
        b"Subject: slow\n\nhi\n",
    );
    assert_eq!(code(&o), 0);
    std::thread::sleep(Duration::from_millis(1100));
    r.qrun(&["-q"]);
    r.qrun(&["-q"]);
    let m = r.mbox("alice");
    assert_eq!(
        m.matches("Warning: could not send message for past")
            .count(),
        1,
        "{m}"
    );
    assert!(m.contains("Action: delayed"), "{m}");
    std::thread::sleep(Duration::from_millis(2100));
    r.qrun(&["-q"]);
    assert!(r.queued_ids().is_empty(), "{:?}", r.queue_files());
    let m = r.mbox("alice");
    assert!(
        m.contains("Subject: Returned mail: see transcript for details"),
        "{m}"
    );
    assert!(m.contains("Status: 4.4.7"), "{m}");
}

#[test]
fn no_bounce_to_the_null_sender() {
    let s = FakeMx::start();
    let r = root("qrun-null", "");
    r.write(
        "etc/mail/mailertable",
        &format!("remote.test smtp:[127.0.0.1]:{}\n", s.port),
    );
    let o = r.sendmail(
        &["-f", "<>", "reject@remote.test"],
        b"Subject: a bounce\n\nx\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    r.qrun(&["-q"]);
    r.qrun(&["-q"]);
    assert!(r.queued_ids().is_empty(), "{:?}", r.queue_files());
    // The postmaster (root) hears once; nothing goes to <>.
    let m = r.mbox("root");
    assert_eq!(
        m.matches("Final-Recipient: RFC822; reject@remote.test")
            .count(),
        1,
        "{m}"
    );
}

/// Start `qrun -q`, wait until its attempt at `id` is under way, then
/// send it `signal`; then end the job's `/bin/sleep SECS` program.  Each
/// test sleeps its own number of seconds, so that this does not end
/// another test's program (tests run in parallel).
fn signal_runner_during_attempt(r: &Root, id: &str, signal: i32, attempt: usize, secs: u32) {
    let mut child = r
        .cmd("qrun")
        .arg("-q")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !journals(r).iter().any(|j| j.contains(id)) {
        // Generous: under load a runner (and the previous attempt's
        // orphaned delivery child letting go of the job) can be slow.
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "attempt {attempt} never began
{}",
            r.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(child.id() as i32, signal) };
    let st = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(signal),
        "{st:?}"
    );
    let _ = std::process::Command::new("pkill")
        .args(["-f", &format!("^/bin/sleep {secs}$")])
        .status();
}

#[test]
fn a_runner_killed_from_outside_sets_nothing_aside() {
    // SIGKILL (an admin, the OOM killer) says nothing about the message:
    // however often it happens, the job stays queued and is retried.
    let r = root("qrun-killed", "queue_workers = 1\n");
    r.write("etc/mail/aliases", "ticket: \"|/bin/sleep 60\"\n");
    let o = r.sendmail(&["-bi"], b"");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = r.sendmail(&["-i", "ticket"], b"Subject: innocent\n\nx\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = r.only_id();
    for attempt in 1..=4 {
        signal_runner_during_attempt(&r, &id, libc::SIGKILL, attempt, 60);
    }
    // The sweep removes the dead journals and counts nothing.
    r.write("etc/mail/aliases", "ticket: \"|/bin/true\"\n");
    let o = r.sendmail(&["-bi"], b"");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = r.qrun(&["-q"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        !r.queue_files().iter().any(|f| f.starts_with("Qf")),
        "{:?}\n{}",
        r.queue_files(),
        r.log()
    );
    assert!(
        r.log()
            .contains("was killed while delivering this message; retrying"),
        "{}",
        r.log()
    );
}

#[test]
fn a_run_for_one_message_learns_that_its_last_attempt_was_cut_short() {
    // A runner killed mid-attempt, whose delivery had already put the copy
    // in the mailbox (its delivery child keeps the job locked until the
    // copy is written, so the next runner comes after it): the next run
    // -- even `sendmail`'s run for this one message, which lists no queue --
    // must find the dead runner's journal and not deliver a second copy.
    let r = root("qrun-cut-short", "");
    let o = r.sendmail(&["-i", "bob"], b"Subject: once\n\nbody\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = r.only_id();
    let keep = |f: &str| std::fs::read(r.queue().join(format!("{f}{id}"))).unwrap();
    let (qf, df) = (keep("qf"), keep("df"));
    // The attempt that delivered, as far as the copy.
    let o = r.qrun(&[&format!("-qI{id}")]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(r.mbox("bob").matches("Subject: once").count(), 1);
    // ... whose runner died before it removed the job: the job is back,
    // and the dead runner's journal names it.
    std::fs::write(r.queue().join(format!("df{id}")), df).unwrap();
    std::fs::write(r.queue().join(format!("qf{id}")), qf).unwrap();
    let dead = {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let journals = r.queue().join(".running");
    std::fs::create_dir_all(&journals).unwrap();
    let mut journal = format!("{:<31}\n", "running").into_bytes();
    journal.extend(format!("{id:<31}\n").bytes());
    std::fs::write(journals.join(format!("{dead}.0")), journal).unwrap();
    let o = r.qrun(&[&format!("-qI{id}")]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        r.mbox("bob").matches("Subject: once").count(),
        1,
        "delivered twice\n{}",
        r.log()
    );
    assert!(r.queued_ids().is_empty(), "{:?}", r.queue_files());
    assert!(
        r.log().contains("was killed while delivering this message"),
        "{}",
        r.log()
    );
}

#[test]
fn a_message_that_crashes_the_runner_three_times_is_set_aside() {
    // The "crash": the runner gets SIGSEGV while it delivers to a program
    // that never finishes (what a parser bug's bad pointer would raise).
    let r = root("qrun-crash", "queue_workers = 1\n");
    r.write("etc/mail/aliases", "ticket: \"|/bin/sleep 61\"\n");
    let o = r.sendmail(&["-bi"], b"");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = r.sendmail(&["-i", "ticket"], b"Subject: poison\n\nx\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = r.only_id();
    for attempt in 1..=3 {
        signal_runner_during_attempt(&r, &id, libc::SIGSEGV, attempt, 61);
    }
    // The next pass counts the three crashes and sets the job aside.
    let o = r.qrun(&["-q"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(r.queued_ids().is_empty(), "{:?}", r.queue_files());
    assert!(
        r.queue_files().contains(&format!("Qf{id}")),
        "{:?}",
        r.queue_files()
    );
    assert!(
        journals(&r).is_empty() && !r.queue_files().iter().any(|f| f.starts_with(".running.")),
        "dead journals are removed: {:?} {:?}",
        r.queue_files(),
        journals(&r)
    );
    assert!(r.log().contains("set aside for the admin"), "{}", r.log());
    // And the admin can see it and put it back.
    let o = r.mailroom(&["queue", "list"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&id),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// The runners' journals (`QUEUE/.running/`, see runner::crashguard).
fn journals(r: &Root) -> Vec<String> {
    match std::fs::read_dir(r.queue().join(".running")) {
        Ok(d) => d
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_domain_sends_from_its_own_source_address() {
    let mx = FakeMx::start();
    let (port, peers) = (mx.port, &mx.peers);
    let r = root("qrun-source", "");
    r.write(
        "etc/mail/mailertable",
        &format!("remote.test smtp:[127.0.0.1]:{port}\n"),
    );
    r.write(
        "etc/mail/source-addresses",
        "# hosted domains with their own IP\nshop.example 127.0.0.7\n.example.org 127.0.0.9\n",
    );
    for (sender, expect) in [
        ("orders@shop.example", "127.0.0.7"),
        ("news@mail.example.org", "127.0.0.9"),
        ("alice@test.example", "127.0.0.1"),
    ] {
        peers.lock().unwrap().clear();
        let o = r.sendmail(&["-f", sender, "x@remote.test"], b"Subject: s\n\nb\n");
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let o = r.qrun(&["-q"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(r.queued_ids().is_empty(), "{sender}: {}", r.log());
        assert_eq!(*peers.lock().unwrap(), [expect], "{sender}");
    }
}

#[test]
fn forwarded_mail_gets_an_srs_sender_and_its_bounce_comes_back() {
    let s = FakeMx::start();
    let r = root("qrun-srs", "");
    r.write(
        "etc/mail/mailertable",
        &format!(
            "remote.test smtp:[127.0.0.1]:{p}\nfar.example smtp:[127.0.0.1]:{p}\n",
            p = s.port
        ),
    );
    r.write(
        "etc/mail/aliases",
        "postmaster: root\nfwd: someone@remote.test\nboth: bob, other@remote.test\n",
    );
    // From outside, through an alias, to outside: the sender is rewritten.
    let o = r.sendmail(&["-f", "alice@far.example", "fwd"], b"Subject: fwd\n\nb\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    r.qrun(&["-q"]);
    r.qrun(&["-q"]);
    let got = s.transactions();
    assert_eq!(got.len(), 1, "{got:?} {}", r.log());
    let srs = got[0].from.trim_matches(['<', '>']).to_string();
    assert!(
        srs.starts_with("SRS0=") && srs.ends_with("=far.example=alice@test.example"),
        "{srs}"
    );
    assert_eq!(got[0].rcpts, ["<someone@remote.test>"]);
    // A local sender is left alone (SPF passes for our own domain).
    s.got.lock().unwrap().clear();
    r.sendmail(&["-f", "bob@test.example", "fwd"], b"Subject: own\n\nb\n");
    r.qrun(&["-q"]);
    r.qrun(&["-q"]);
    let got = s.transactions();
    assert_eq!(got[0].from, "<bob@test.example>", "{got:?}");
    // The bounce to the SRS address goes back to the original sender.
    s.got.lock().unwrap().clear();
    let o = r.sendmail(&["-f", "<>", &srs], b"Subject: bounce\n\nundeliverable\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    r.qrun(&["-q"]);
    r.qrun(&["-q"]);
    let got = s.transactions();
    assert_eq!(got.len(), 1, "{got:?} {}", r.log());
    assert_eq!(got[0].from, "<>");
    assert_eq!(got[0].rcpts, ["<alice@far.example>"]);
    // A forged one is unknown.
    let forged = srs.replace("=alice@", "=mallory@");
    let o = r.sendmail(&["-bv", &forged], b"");
    assert_eq!(code(&o), 67, "{}", stdout(&o));
}

/// (selector, TXT text) from `mailroom dkim generate|show` output.
fn zone_records(zone: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in zone.lines() {
        if !line.starts_with('\t') {
            let sel = line.split("._domainkey.").next().unwrap().to_string();
            out.push((sel, String::new()));
        }
        let strings: String = line.split('"').skip(1).step_by(2).collect();
        out.last_mut().unwrap().1.push_str(&strings);
    }
    out
}

#[test]
fn remote_mail_is_dkim_signed_with_both_keys_and_local_mail_is_not() {
    let s = FakeMx::start();
    let r = root("qrun-dkim", "");
    r.write(
        "etc/mail/mailertable",
        &format!("remote.test smtp:[127.0.0.1]:{}\n", s.port),
    );
    let o = r.mailroom(&["dkim", "generate", "shop.example"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let records = zone_records(&stdout(&o));
    assert_eq!(records.len(), 2, "{}", stdout(&o));
    // A key that cannot be read keeps its domain's mail queued.
    r.write("etc/mail/dkim/broken.example/s.key", "not a key\n");
    let msg = b"From: Shop <orders@shop.example>\nTo: x@remote.test\nSubject: Your  order\n\nThanks.\n.a dotted line\n";
    let o = r.sendmail(&["-f", "web@vps.example", "x@remote.test", "bob"], msg);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = r.sendmail(
        &["-f", "a@other.example", "y@remote.test"],
        b"From: a@other.example\n\nb\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = r.sendmail(
        &["-f", "a@broken.example", "z@remote.test"],
        b"Subject: b\n\nb\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    r.qrun(&["-q"]);
    let got = s.transactions();
    assert_eq!(got.len(), 2, "{got:?} {}", r.log());
    let signed = got.iter().find(|g| g.rcpts == ["<x@remote.test>"]).unwrap();
    // The message as it arrived: CRLF, dot-stuffing undone.
    let wire: String = signed
        .data
        .split_inclusive("\r\n")
        .map(|l| l.strip_prefix('.').unwrap_or(l))
        .collect();
    let lookup = |sel: &str, d: &str| {
        assert_eq!(d, "shop.example");
        records
            .iter()
            .find(|(s, _)| s == sel)
            .map(|(_, t)| t.clone())
    };
    let results = mailroom::dkim::verify(wire.as_bytes(), &lookup);
    assert_eq!(results.len(), 2, "{wire}");
    assert!(results.iter().all(Result::is_ok), "{results:?}\n{wire}");
    assert!(wire.contains("a=rsa-sha256") && wire.contains("a=ed25519-sha256"));
    let tampered = wire.replace("Thanks.", "Thanks!");
    assert!(
        mailroom::dkim::verify(tampered.as_bytes(), &lookup)
            .iter()
            .all(Result::is_err)
    );
    // No key for the other domain: sent unsigned; never signed locally.
    let other = got.iter().find(|g| g.rcpts == ["<y@remote.test>"]).unwrap();
    assert!(!other.data.contains("DKIM-Signature"), "{}", other.data);
    let local = r.mbox("bob");
    assert!(
        local.contains("Subject: Your  order") && !local.contains("DKIM-Signature"),
        "{local}"
    );
    let ids = r.queued_ids();
    assert_eq!(ids.len(), 1, "{:?}", r.queue_files());
    let qf = r.qf(&ids[0]);
    assert!(
        qf.contains("MDeferred: DKIM key for broken.example:"),
        "{qf}"
    );
    // Fixed (removed), it goes unsigned on the next run.
    std::fs::remove_dir_all(r.path("etc/mail/dkim/broken.example")).unwrap();
    r.qrun(&["-q"]);
    assert_eq!(s.got.lock().unwrap().len(), 3);
    assert!(r.queued_ids().is_empty());
}
