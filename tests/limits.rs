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
    r.queue_files().iter().filter(|f| f.starts_with("hf")).count()
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
    assert_eq!(
        r.log().matches("held: user ").count(),
        40,
        "{}",
        r.log()
    );
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
        r.log().contains("not a counters file of this version; counting starts anew"),
        "{}",
        r.log()
    );
    // Counting went on from zero: two more sent, the third held.
    assert_eq!((r.queued_ids().len(), held(&r)), (3, 1), "{:?}", r.queue_files());
}

#[test]
fn mailq_lists_held_mail_with_its_reason() {
    let r = root("limits-mailq", 1);
    assert_eq!(code(&submit(&r, 1)), 0);
    assert_eq!(code(&submit(&r, 2)), 0);
    let o = r.cmd("sendmail").arg("-bp").output().unwrap();
    let text = stdout(&o);
    assert!(text.contains("(1 request)"), "{text}");
    assert!(
        text.contains("     QUARANTINE: held: user "),
        "{text}"
    );
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
