//! Nothing lost, nothing half-made: `sendmail` killed with SIGKILL at many
//! points of a submission, and a queue file system that fills up.

mod common;
use common::*;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mailroom::queue::{Envelope, Queue};

fn message(n: usize) -> Vec<u8> {
    let mut m = format!("To: crash{n}@example.org\nSubject: crash test {n}\n\n").into_bytes();
    for i in 0..4000 {
        m.extend_from_slice(
            format!("line {i} of message {n} ........................................\n")
                .as_bytes(),
        );
    }
    m
}

/// Every control file is complete and its data file holds the whole body;
/// no control file is missing its data file.
fn check_queue(r: &Root, bodies: &std::collections::HashMap<String, Vec<u8>>) -> usize {
    let mut complete = 0;
    for id in r.queued_ids() {
        let qf = std::fs::read(r.queue().join(format!("qf{id}"))).unwrap();
        let env = Envelope::parse(&qf).unwrap_or_else(|e| panic!("qf{id} is torn: {e}"));
        let rcpt = &env.recipients[0].addr;
        let df = r.df(&id);
        let want = bodies
            .get(rcpt)
            .unwrap_or_else(|| panic!("unknown recipient {rcpt}"));
        assert_eq!(&df, want, "df{id} is not the whole body");
        complete += 1;
    }
    complete
}

#[test]
fn sigkill_anywhere_leaves_a_complete_job_or_none() {
    let r = Root::new("crash");
    let mut rng = Lcg(0x5eed ^ std::process::id() as u64);
    let mut bodies = std::collections::HashMap::new();

    // How long does one submission take here?  (median of five)
    let m = message(0);
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let o = r.sendmail(&["-t", "-i"], &m);
            assert_eq!(code(&o), 0, "{}", stderr(&o));
            t.elapsed()
        })
        .collect();
    times.sort();
    let lifetime = times[2].max(Duration::from_millis(1));
    bodies.insert(
        "crash0@example.org".to_string(),
        m[m.windows(2).position(|w| w == b"\n\n").unwrap() + 2..].to_vec(),
    );

    // Kill points spread over a submission's lifetime, until enough runs
    // were really cut short; the lifetime estimate shrinks whenever a run
    // finished first (a loaded machine makes the first estimate long), so
    // the test never depends on timing to pass.
    let want_killed = 60;
    let mut lifetime = lifetime;
    let mut killed = 0;
    let mut n = 0;
    while (killed < want_killed || n < 300) && n < 3000 {
        n += 1;
        let m = message(n);
        let body = m[m.windows(2).position(|w| w == b"\n\n").unwrap() + 2..].to_vec();
        bodies.insert(format!("crash{n}@example.org"), body);
        let mut child = r
            .cmd("sendmail")
            .args(["-t", "-i"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(&m);
        drop(stdin);
        let delay = lifetime.as_micros() as u64 * (rng.next() % 1000) / 1000;
        std::thread::sleep(Duration::from_micros(delay));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.code().is_none() {
            killed += 1;
        } else {
            lifetime = (lifetime * 9 / 10).max(Duration::from_micros(100));
        }
        check_queue(&r, &bodies);
    }
    assert!(
        killed >= want_killed,
        "only {killed} of {n} runs were killed mid-way"
    );
    let complete = check_queue(&r, &bodies);
    assert!(complete > 1, "some submissions completed");

    // What the dead left behind is recognised and cleaned by the runner.
    let q = Queue::new(r.queue());
    q.remove_stale_older_than(Duration::ZERO, Duration::ZERO)
        .unwrap();
    for f in r.queue_files() {
        assert!(f.starts_with("qf") || f.starts_with("df"), "left over: {f}");
    }
    let dfs = r
        .queue_files()
        .iter()
        .filter(|f| f.starts_with("df"))
        .count();
    assert_eq!(dfs, complete, "every data file belongs to a job");
    eprintln!("kill points: {n}, killed mid-way: {killed}, complete jobs: {complete}");
}

#[test]
fn a_full_disk_gives_75_and_leaves_nothing() {
    let r = Root::new("diskfull");
    let sendmail = bin("sendmail");
    let big = r.path("big.msg");
    let mut m = b"To: a@example.org\nSubject: big\n\n".to_vec();
    m.extend(std::iter::repeat_n(b'x', 1 << 20));
    std::fs::write(&big, &m).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=64k tmpfs {q} || exit 99; \
         MAILROOM_ROOT={root} {sm} -t -i < {big} 2>{root}/err; echo $? > {root}/rc; ls -A {q} > {root}/left",
        q = r.queue().display(),
        root = r.dir.display(),
        sm = sendmail.display(),
        big = big.display()
    );
    let Some(o) = in_mount_namespace(&r, &script) else {
        return;
    };
    assert!(r.path("rc").exists(), "{}", stderr(&o));
    let rc = r.read_strict("rc");
    let err = r.read_strict("err");
    let left = r.read_strict("left");
    assert_eq!(rc.trim(), "75", "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("sendmail: cannot queue message in "),
        "{err}"
    );
    assert!(err.contains("No space left on device"), "{err}");
    assert!(left.trim().is_empty(), "files left: {left}");
}

#[test]
fn the_free_space_floor_refuses_before_writing() {
    let r = Root::new("floor");
    r.write(
        "etc/mail/mailroom.conf",
        "hostname = test.example\nmin_free_space = 1000000G\n",
    );
    let o = r.sendmail(&["a@example.org"], b"x\n");
    assert_eq!(code(&o), 75, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("insufficient disk space"),
        "{}",
        stderr(&o)
    );
    assert!(r.queue_files().is_empty());
}
