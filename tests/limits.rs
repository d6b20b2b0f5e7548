//! The outbound limits at the queue's door (src/limits): concurrent
//! submitters, kills in the middle of the counter update, a damaged
//! counters file.

mod common;
use common::*;

use std::time::{Duration, Instant};

/// A root whose user (whoever runs the tests) may hand in `per_hour`
/// messages an hour to the outside.
fn root(name: &str, per_hour: u32) -> Root {
    let r = Root::new(name);
    r.write(
        "etc/mail/mailroom.conf",
        &format!(
            "hostname = test.example\nlog = /var/log/mail.log\nmin_free_space = 0\ndelivery_mode = queue\n\
             limit_per_hour = {per_hour} messages, 100000 recipients\n\
             limit_domain_per_hour = 100000 messages, 100000 recipients\nlimit_alert = off\n"
        ),
    );
    r
}

fn held(r: &Root) -> usize {
    r.queue_files()
        .iter()
        .filter(|f| f.starts_with("hf"))
        .count()
}

fn submit(r: &Root, n: usize) -> std::process::Output {
    r.sendmail(
        &["-i", "-f", "shop@test.example", "customer@far.example"],
        format!("Subject: order {n}\n\nthanks\n").as_bytes(),
    )
}

#[test]
fn sixteen_submitters_at_once_never_get_past_the_limit() {
    // The bound: the check and the count are one locked step at the
    // queue's door, so the limit is exceeded by exactly 0 messages, however
    // many submitters are in flight.
    let r = root("limits-16", 40);
    std::thread::scope(|s| {
        for t in 0..16 {
            let r = &r;
            s.spawn(move || {
                for i in 0..5 {
                    let o = submit(r, t * 100 + i);
                    assert_eq!(code(&o), 0, "{}", stderr(&o));
                }
            });
        }
    });
    assert_eq!(r.queued_ids().len(), 40, "{:?}", r.queue_files());
    assert_eq!(held(&r), 40);
    assert_eq!(r.log().matches("held: user ").count(), 40, "{}", r.log());
    // Mail to the box's own mailboxes is not counted.
    let o = r.sendmail(&["-i", "root"], b"Subject: local\n\nx\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(r.queued_ids().len(), 41);
}

#[test]
fn killed_in_the_counter_update_loses_no_mail_and_blocks_no_one() {
    let r = root("limits-kill", 1_000_000);
    let mut rng = Lcg(0x5eed_1234);
    let mut finished = 0;
    for n in 0..300 {
        let mut c = r.cmd("sendmail");
        c.args(["-i", "-f", "shop@test.example", "customer@far.example"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(format!("Subject: k{n}\n\nx\n").as_bytes());
        }
        std::thread::sleep(Duration::from_micros(rng.below(4000)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            finished += 1;
        }
    }
    // Every finished submission is queued, whole; a new submission gets
    // through at once (no lock left behind).
    let t = Instant::now();
    let o = submit(&r, 9999);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let jobs = r.queued_ids();
    assert!(
        jobs.len() > finished,
        "{} jobs for {finished} finished submissions",
        jobs.len()
    );
    for id in &jobs {
        let qf = std::fs::read(r.queue().join(format!("qf{id}"))).unwrap();
        assert!(
            mailroom::queue::Envelope::parse(&qf).is_ok(),
            "qf{id} is not whole"
        );
    }
    assert!(r.log().matches("damaged").count() <= 1, "{}", r.log());
}

#[test]
fn a_damaged_counters_file_is_made_anew_with_a_log_line() {
    let r = root("limits-damaged", 2);
    assert_eq!(code(&submit(&r, 1)), 0);
    r.write("var/spool/mailroom/limits/counters", "rubbish");
    for n in 2..5 {
        assert_eq!(code(&submit(&r, n)), 0);
    }
    assert!(
        r.log()
            .contains("not a counters file of this version; counting starts anew"),
        "{}",
        r.log()
    );
    // Counting went on from zero: two more sent, the third held.
    assert_eq!(
        (r.queued_ids().len(), held(&r)),
        (3, 1),
        "{:?}",
        r.queue_files()
    );
}

#[test]
fn mailq_lists_held_mail_with_its_reason() {
    let r = root("limits-mailq", 1);
    assert_eq!(code(&submit(&r, 1)), 0);
    assert_eq!(code(&submit(&r, 2)), 0);
    let o = r.cmd("sendmail").arg("-bp").output().unwrap();
    let text = stdout(&o);
    assert!(text.contains("(1 request)"), "{text}");
    assert!(text.contains("     QUARANTINE: held: user "), "{text}");
    assert_eq!(text.matches("customer@far.example").count(), 2, "{text}");
    // mailq -qQ: the held ones alone, as sendmail 8 lists them.
    let o = r.cmd("sendmail").args(["-bp", "-qQ"]).output().unwrap();
    let text = stdout(&o);
    assert_eq!(text.matches("customer@far.example").count(), 1, "{text}");
    assert!(text.contains("QUARANTINE"), "{text}");
}

/// Deterministically where strace is at hand: `sendmail` killed on
/// entering each `flock` and `pwrite64` of its run (the counters' lock and
/// record writes among them): no mail is lost, no lock is left held, and
/// the counts go on.
#[test]
fn killed_at_each_step_of_the_counter_update() {
    let strace_ok = std::process::Command::new("strace")
        .args(["-o", "/dev/null", "true"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !strace_ok {
        eprintln!("skipped: strace is missing or may not trace here");
        return;
    }
    let r = root("limits-steps", 1_000_000);
    assert_eq!(code(&submit(&r, 0)), 0);
    let mut killed = 0;
    for (call, max) in [("flock", 4), ("pwrite64", 6)] {
        for n in 1..=max {
            let o = run_with_input(
                std::process::Command::new("strace")
                    .args(["-f", "-o", "/dev/null", "-e"])
                    .arg(format!("inject={call}:signal=KILL:when={n}"))
                    .arg(bin("sendmail"))
                    .args(["-i", "-f", "shop@test.example", "customer@far.example"])
                    .env("MAILROOM_ROOT", &r.dir),
                format!("Subject: {call} {n}\n\nx\n").as_bytes(),
            );
            if code(&o) != 0 {
                killed += 1;
            }
            // The next one is never blocked and always queued.
            let t = Instant::now();
            assert_eq!(code(&submit(&r, n)), 0, "after {call} {n}");
            assert!(t.elapsed() < Duration::from_secs(5), "after {call} {n}");
        }
    }
    assert!(killed >= 4, "only {killed} runs were killed");
    for id in r.queued_ids() {
        let qf = std::fs::read(r.queue().join(format!("qf{id}"))).unwrap();
        assert!(mailroom::queue::Envelope::parse(&qf).is_ok(), "qf{id}");
    }
    // The counts went on: at least every submission that was not killed
    // (the first, and the one after each kill) is counted.
    let c = mailroom::limits::Counters::lock(&r.path("var/spool/mailroom/limits")).unwrap();
    let now = mailroom::date::now();
    let user: u64 = c
        .all(now)
        .unwrap()
        .iter()
        .filter(|rec| rec.key.starts_with("user:"))
        .map(|rec| rec.totals().0.messages)
        .sum();
    assert!(user >= 11, "{user} counted");
}

/// The most events of `times` within any `window`.
fn busiest(times: &[Instant], window: Duration) -> usize {
    let mut t: Vec<Instant> = times.to_vec();
    t.sort();
    (0..t.len())
        .map(|i| t[i..].iter().take_while(|x| **x < t[i] + window).count())
        .max()
        .unwrap_or(0)
}

#[test]
fn pacing_spreads_a_burst_to_one_domain_and_delays_no_other() {
    let paced = common::fake_mx::FakeMx::start();
    let other = common::fake_mx::FakeMx::start();
    let r = Root::new("limits-pacing");
    r.write(
        "etc/mail/mailroom.conf",
        "hostname = test.example\nlog = /var/log/mail.log\nmin_free_space = 0\ndelivery_mode = queue\n\
         limits = no\nqueue_workers = 8\ndestination_rate = 10000 messages, 10000 connections\n",
    );
    r.write(
        "etc/mail/mailertable",
        &format!(
            "paced.test smtp:[127.0.0.1]:{}\nother.test smtp:[127.0.0.1]:{}\n",
            paced.port, other.port
        ),
    );
    // 50 messages a second at most, a second's worth at once.
    r.write(
        "etc/mail/limits",
        "To:paced.test messages=50/1s connections=50/1s\n",
    );
    for i in 0..500 {
        let o = r.sendmail(
            &["-i", "-f", "news@test.example", &format!("c{i}@paced.test")],
            format!("Subject: newsletter {i}\n\nhello\n").as_bytes(),
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    for i in 0..20 {
        let o = r.sendmail(
            &["-i", "-f", "shop@test.example", &format!("x{i}@other.test")],
            format!("Subject: order {i}\n\nthanks\n").as_bytes(),
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let start = Instant::now();
    let o = r.qrun(&["-q"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let took = start.elapsed();
    assert!(r.queued_ids().is_empty(), "{:?}", r.queue_files());
    // Every message once.
    let got = paced.transactions();
    assert_eq!(got.len(), 500);
    let mut rcpts: Vec<String> = got.iter().flat_map(|t| t.rcpts.clone()).collect();
    rcpts.sort();
    rcpts.dedup();
    assert_eq!(rcpts.len(), 500);
    // Spread at the rate: (500 - a burst of 50) at 50 a second is 9 s, and
    // no second ever saw more than a burst and a second's refill.
    let times: Vec<Instant> = got.iter().map(|t| t.at).collect();
    assert!(took >= Duration::from_secs(8), "{took:?}");
    let most = busiest(&times, Duration::from_secs(1));
    assert!(most <= 100, "{most} messages in one second");
    let conns = paced.connected.lock().unwrap().clone();
    assert!(busiest(&conns, Duration::from_secs(1)) <= 100);
    // The other domain was not made to wait behind the burst: its mail
    // went out while most of the burst was still waiting for its pace.
    let others = other.transactions();
    assert_eq!(others.len(), 20);
    let last_other = others.iter().map(|t| t.at).max().unwrap();
    let mut sorted = times.clone();
    sorted.sort();
    assert!(
        last_other < sorted[250],
        "other.test waited {:?}",
        last_other - start
    );
    eprintln!(
        "pacing: 500 messages in {took:?}, at most {most} in one second; {} connections; other.test done after {:?}",
        conns.len(),
        last_other - start
    );
}

#[test]
fn held_mail_is_released_or_deleted_in_one_command() {
    let r = root("limits-cleanup", 2);
    for n in 0..6 {
        assert_eq!(code(&submit(&r, n)), 0);
    }
    assert_eq!((r.queued_ids().len(), held(&r)), (2, 4));
    let me = r.log();
    let user = me
        .split("held: user ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_string();
    // The summary names the sender, its counts, its held mail.
    let s = r.mailroom_ok(&["queue", "summary"]);
    assert!(s.contains(&format!("user {user}")), "{s}");
    assert!(s.contains("6m/6r"), "{s}");
    assert!(s.contains("Queue: 2 queued, 4 held"), "{s}");
    let j = r.mailroom_ok(&["queue", "summary", "--json"]);
    assert!(j.contains("\"held\": 4"), "{j}");
    // A dry run counts and changes nothing.
    let o = r.mailroom_ok(&["queue", "release", "--held", "--user", &user, "--dry-run"]);
    assert!(o.contains("4 messages match"), "{o}");
    assert_eq!(held(&r), 4);
    // Selectors that match nothing.
    let o = r.mailroom_ok(&["queue", "delete", "--held", "--user", "nobody-else"]);
    assert!(o.contains("0 messages match"), "{o}");
    // Release: every held one queued again, its hold reason gone.
    let o = r.mailroom_ok(&[
        "queue",
        "release",
        "--held",
        "--user",
        &user,
        "--subject",
        "ORDER 2",
    ]);
    assert!(
        o.contains("1 message match") && o.contains("released 1"),
        "{o}"
    );
    // (The release starts a queue run, which may already be working on
    // the queued jobs: count the held ones, and what the run cannot take.)
    assert_eq!(held(&r), 3);
    for id in r.queued_ids() {
        if let Ok(qf) = std::fs::read_to_string(r.queue().join(format!("qf{id}"))) {
            assert!(!qf.contains("\nqheld"), "{qf}");
        }
    }
    let held_before: Vec<String> = r
        .queue_files()
        .into_iter()
        .filter(|f| f.starts_with("hf"))
        .collect();
    // Delete the rest: only the held ones, never released on the way (a
    // running queue run could otherwise send them).
    let o = r.mailroom_ok(&["queue", "delete", "--held", "--user", &user]);
    assert!(
        o.contains("3 messages match") && o.contains("deleted 3"),
        "{o}"
    );
    assert_eq!(held(&r), 0);
    let log = r.log();
    for hf in &held_before {
        let id = &hf[2..];
        assert!(
            log.contains(&format!("{id}: removed from the queue")),
            "{log}"
        );
        let tried = log
            .lines()
            .filter(|l| l.contains(&format!("{id}: to=")))
            .any(|l| !l.contains("stat=queued") && !l.contains("stat=held"));
        assert!(!tried, "{id} was tried: {log}");
    }
    // Without ids or selectors: a usage error.
    let o = r.mailroom(&["queue", "delete"]);
    assert_eq!(code(&o), 64, "{}", stderr(&o));
}

#[test]
fn mailroom_check_reads_the_limits_table_as_the_door_does() {
    let r = root("limits-check", 200);
    r.write(
        "etc/mail/limits",
        "User:news unlimited\nLogin:ceo@test.example messages=5/hour\nDomain:test.example messages=lots/day\nTo:gmail.com messages=30/1m connections=5/1m\nTo:slow.example messages=1/fortnight\nSender:x unlimited\n",
    );
    let o = r.mailroom(&["check"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 78, "{out}");
    assert!(out.contains("limits:3: error"), "{out}");
    assert!(out.contains("limits:5: error"), "{out}");
    assert!(
        out.contains("limits:6: error")
            && out.to_ascii_lowercase().contains("sender:x: never used"),
        "{out}"
    );
    for good in [1, 2, 4] {
        assert!(!out.contains(&format!("limits:{good}: ")), "{out}");
    }
    // A wrong setting in mailroom.conf is named too.
    r.write(
        "etc/mail/mailroom.conf",
        "hostname = test.example\nlimit_per_hour = many\n",
    );
    let o = r.mailroom(&["check"]);
    assert!(stdout(&o).contains("limit_per_hour"), "{}", stdout(&o));
}

#[test]
fn the_alert_names_the_script_or_else_the_directory_it_ran_in() {
    let r = root("limits-script", 1);
    r.write(
        "etc/mail/mailroom.conf",
        "hostname = test.example\nlog = /var/log/mail.log\nmin_free_space = 0\ndelivery_mode = queue\n\
         limit_per_hour = 1 messages, 100 recipients\nlimit_alert = postmaster\n",
    );
    let site = r.path("var/www/shop/wp-content/plugins/form");
    std::fs::create_dir_all(&site).unwrap();
    let alert_text = |r: &Root| -> String {
        r.queued_ids()
            .iter()
            .map(|id| String::from_utf8_lossy(&r.df(id)).into_owned())
            .find(|d| d.contains("Held now:"))
            .unwrap_or_default()
    };
    // Without PHP's header: the directory sendmail was run from.
    for n in 0..2 {
        let o = run_with_input(
            r.cmd("sendmail")
                .args(["-i", "-f", "shop@test.example", "customer@far.example"])
                .current_dir(&site),
            format!("Subject: order {n}\n\nthanks\n").as_bytes(),
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let alert = alert_text(&r);
    assert!(
        alert.contains(&format!("Script:        run in {}", site.display())),
        "{alert}"
    );
    // With it (mail.add_x_header = On): the script PHP names.
    for f in r.queue_files() {
        std::fs::remove_file(r.queue().join(f)).unwrap();
    }
    std::fs::remove_dir_all(r.path("var/spool/mailroom/limits")).unwrap();
    for n in 0..2 {
        let o = r.sendmail(
            &["-i", "-f", "shop@test.example", "customer@far.example"],
            format!("X-PHP-Originating-Script: 33:mailer.php\nSubject: order {n}\n\nthanks\n")
                .as_bytes(),
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let alert = alert_text(&r);
    assert!(alert.contains("Script:        33:mailer.php"), "{alert}");
}
