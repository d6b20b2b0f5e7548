//! `make bench`: mailroom's performance figures, printed beside the targets
//! named in the issues.  Nothing here fails on timing.
//!
//! Every figure is taken with the same harness: a Rust program that spawns
//! the measured command with `std::process::Command`, writes its input on a
//! pipe and waits for it.  "The floor" is the same harness starting
//! `cat >/dev/null` on the same input: the cost no submission can beat.
//!
//! Run a single section with `cargo bench --bench bench -- submission`.

mod panel;

#[path = "../tests/common/fake_dns.rs"]
#[allow(dead_code)]
mod fake_dns;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use std::time::Instant;

struct Root {
    dir: PathBuf,
}

impl Root {
    fn new(name: &str) -> Root {
        // /var/tmp, like the real spool under /var (MAILROOM_BENCH_DIR to
        // measure another file system).
        let base = std::env::var_os("MAILROOM_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp"));
        let dir = base.join(format!("mailroom-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["etc/mail", "var/spool/mqueue", "var/mail", "var/log"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(
            dir.join("etc/mail/mailroom.conf"),
            format!("hostname = bench.example\nlog = /var/log/mail.log\nmin_free_space = 0\ndelivery_mode = queue\n{BENCH_LIMITS}"),
        )
        .unwrap();
        Root { dir }
    }

    fn clear_queue(&self) {
        for e in std::fs::read_dir(self.dir.join("var/spool/mqueue")).unwrap() {
            let _ = std::fs::remove_file(e.unwrap().path());
        }
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The outbound limits stay on (every message is counted, as on a real
/// box) but high enough that the thousands of messages a run submits are
/// never held: the figures measure the normal path.
const BENCH_LIMITS: &str = "limit_per_hour = 100000000 messages, 100000000 recipients\n\
     limit_per_day = 100000000 messages, 100000000 recipients\n\
     limit_domain_per_hour = 100000000 messages, 100000000 recipients\n\
     limit_domain_per_day = 100000000 messages, 100000000 recipients\n";

fn exe(name: &str) -> PathBuf {
    match name {
        "sendmail" => PathBuf::from(env!("CARGO_BIN_EXE_sendmail")),
        "deliver" => PathBuf::from(env!("CARGO_BIN_EXE_deliver")),
        "qrun" => PathBuf::from(env!("CARGO_BIN_EXE_qrun")),
        "pop3d" => PathBuf::from(env!("CARGO_BIN_EXE_pop3d")),
        other => panic!("unknown program {other}"),
    }
}

/// A 2 KB message such as a PHP contact form sends.
fn message_2k() -> Vec<u8> {
    let mut m = b"To: info@example.com\r\nSubject: Contact form\r\nFrom: web@example.com\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n".to_vec();
    while m.len() < 2048 {
        m.extend_from_slice(
            b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n",
        );
    }
    m.truncate(2048);
    m
}

/// Spawn `cmd` with `input` on stdin and wait; the wall time.
fn timed(cmd: &mut Command, input: &[u8]) -> Duration {
    let t = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input);
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "{cmd:?} failed: {status}");
    t.elapsed()
}

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

/// `n` sequential runs of `make()`: (median ms per call, runs per second).
fn sequential(n: usize, input: &[u8], mut make: impl FnMut() -> Command) -> (f64, f64) {
    let t = Instant::now();
    let times: Vec<Duration> = (0..n).map(|_| timed(&mut make(), input)).collect();
    let total = t.elapsed().as_secs_f64();
    (median_ms(times), n as f64 / total)
}

/// `workers` threads doing `per_worker` runs each: (median ms, runs/s).
fn concurrent(
    workers: usize,
    per_worker: usize,
    input: &[u8],
    make: impl Fn() -> Command + Sync,
) -> (f64, f64) {
    let t = Instant::now();
    let times: Vec<Duration> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    (0..per_worker)
                        .map(|_| timed(&mut make(), input))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let total = t.elapsed().as_secs_f64();
    (median_ms(times), (workers * per_worker) as f64 / total)
}

/// What the file system alone costs for one queued message: create the data
/// and control files, fsync both, rename, fsync the directory — done in
/// process, so no process start is included.
fn fsync_cost(dir: &std::path::Path) -> f64 {
    use std::fs::OpenOptions;
    let d = dir.join("fsync-probe");
    std::fs::create_dir_all(&d).unwrap();
    let times: Vec<Duration> = (0..300)
        .map(|i| {
            let t = Instant::now();
            let mut df = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(d.join(format!("df{i}")))
                .unwrap();
            df.write_all(&[b'x'; 2048]).unwrap();
            df.sync_all().unwrap();
            let mut tf = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(d.join(format!("tf{i}")))
                .unwrap();
            tf.write_all(&[b'y'; 500]).unwrap();
            tf.sync_all().unwrap();
            std::fs::rename(d.join(format!("tf{i}")), d.join(format!("qf{i}"))).unwrap();
            std::fs::File::open(&d).unwrap().sync_all().unwrap();
            t.elapsed()
        })
        .collect();
    let _ = std::fs::remove_dir_all(&d);
    median_ms(times)
}

fn submission() {
    println!("== submission: sendmail -t -i, 2 KB message (issue 2) ==");
    let root = Root::new("submit");
    let msg = message_2k();
    let sendmail = exe("sendmail");
    let make = || {
        let mut c = Command::new(&sendmail);
        c.args(["-t", "-i"]).env("MAILROOM_ROOT", &root.dir);
        c
    };
    let cat = || {
        let mut c = Command::new("/bin/cat");
        c.stdout(Stdio::null());
        c
    };
    // Warm up the page cache and the binary.
    sequential(50, &msg, make);
    root.clear_queue();
    let (floor_ms, floor_rate) = sequential(1000, &msg, cat);
    let (seq_ms, seq_rate) = sequential(1000, &msg, make);
    root.clear_queue();
    let (par_ms, par_rate) = concurrent(8, 125, &msg, make);
    root.clear_queue();
    let (pfloor_ms, pfloor_rate) = concurrent(8, 125, &msg, cat);
    let fs_ms = fsync_cost(&root.dir);
    println!(
        "  floor (cat on the same input), sequential : {floor_ms:6.2} ms/call  {floor_rate:8.0} /s"
    );
    println!(
        "  sendmail -t -i, 1000 sequential            : {seq_ms:6.2} ms/call  {seq_rate:8.0} msg/s   (+{:.2} ms over the floor)",
        seq_ms - floor_ms
    );
    println!(
        "  floor, 8 concurrent                        : {pfloor_ms:6.2} ms/call  {pfloor_rate:8.0} /s"
    );
    println!(
        "  sendmail -t -i, 8 concurrent submitters     : {par_ms:6.2} ms/call  {par_rate:8.0} msg/s"
    );
    println!(
        "  file system alone: 2 files + 2 fsyncs + rename + dir fsync: {fs_ms:6.2} ms  (floor + this = {:.2} ms)",
        floor_ms + fs_ms
    );
    println!("  target: within about 1 ms of the floor, i.e. one process start plus the fsyncs;");
    println!(
        "  the peers (dma, Postfix, Dovecot), measured side by side in one run: make bench-peers"
    );
    println!();
    limits_cost(&msg);
}

/// Issue 18: what counting costs a submission.  The same sendmail, limits
/// off and on (counted, never over), in alternating rounds so that drift
/// of the machine falls on both; and the check alone, in process.
fn limits_cost(msg: &[u8]) {
    println!("== outbound limits: submission with limits off and on (issue 18) ==");
    let off = Root::new("limits-off");
    let conf = off.dir.join("etc/mail/mailroom.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, format!("{text}limits = off\n")).unwrap();
    let on = Root::new("limits-on");
    let sendmail = exe("sendmail");
    let make = |root: &Root| {
        let dir = root.dir.clone();
        let sendmail = sendmail.clone();
        move || {
            let mut c = Command::new(&sendmail);
            c.args(["-t", "-i"]).env("MAILROOM_ROOT", &dir);
            c
        }
    };
    sequential(50, msg, make(&off));
    sequential(50, msg, make(&on));
    off.clear_queue();
    on.clear_queue();
    // Paired calls, off then on then off..., so that the disk's fsync
    // latency (which varies by milliseconds from minute to minute) falls on
    // both alike: the median of the pairs' differences is the cost.
    let (mut t_off, mut t_on, mut diffs) = (Vec::new(), Vec::new(), Vec::new());
    let (make_off, make_on) = (make(&off), make(&on));
    for i in 0..1000 {
        let (a, b) = if i % 2 == 0 {
            let a = timed(&mut make_off(), msg);
            (a, timed(&mut make_on(), msg))
        } else {
            let b = timed(&mut make_on(), msg);
            (timed(&mut make_off(), msg), b)
        };
        diffs.push(b.as_secs_f64() * 1e3 - a.as_secs_f64() * 1e3);
        t_off.push(a);
        t_on.push(b);
        if i % 200 == 199 {
            off.clear_queue();
            on.clear_queue();
        }
    }
    diffs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let diff = diffs[diffs.len() / 2];
    let (m_off, m_on) = (median_ms(t_off), median_ms(t_on));
    // The check alone: the counters file locked, read, updated, unlocked.
    let cfg =
        mailroom::config::Config::load(mailroom::config::Paths::under(&on.dir), None).unwrap();
    let sub = mailroom::limits::Submission {
        who: mailroom::limits::Who::User("www-data".into()),
        sender_domain: Some("shop.example"),
        remote_recipients: 1,
    };
    let now = mailroom::date::now();
    let n = 20_000;
    let start = Instant::now();
    for _ in 0..n {
        assert!(mailroom::limits::check(&cfg, &sub, now).is_none());
    }
    let check_us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!(
        "  sendmail -t -i, limits off                 : {m_off:6.3} ms/call (median of 1000 calls, paired with:)"
    );
    println!("  sendmail -t -i, limits on (counted)        : {m_on:6.3} ms/call");
    println!(
        "  difference, median of the 1000 pairs       : {diff:+6.3} ms/call   target: under 0.1 ms"
    );
    println!(
        "  the check alone (lock, read, count, unlock): {check_us:6.1} us   target: well under 100 us"
    );
    println!();
}

/// A root with `n` users u0..u{n-1} (our own uid) and the given settings.
fn root_with_users(name: &str, n: usize, conf: &str) -> Root {
    let root = Root::new(name);
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/sh\n");
    for i in 0..n {
        passwd.push_str(&format!("u{i}:x:{uid}:{uid}:user {i}:/home/u{i}:/bin/sh\n"));
    }
    std::fs::write(root.dir.join("etc/passwd"), passwd).unwrap();
    std::fs::write(
        root.dir.join("etc/mail/mailroom.conf"),
        format!("hostname = bench.example\nlog = /var/log/mail.log\nmin_free_space = 0\nprobe_interfaces = no\n{conf}"),
    )
    .unwrap();
    root
}

/// Queue `n` 2 KB messages to recipients chosen by `rcpt(i)`, without
/// starting delivery.
fn fill_queue(root: &Root, n: usize, rcpt: impl Fn(usize) -> String + Sync) {
    let sendmail = exe("sendmail");
    let msg = message_2k();
    let per = n.div_ceil(8);
    std::thread::scope(|s| {
        for w in 0..8 {
            let (sendmail, msg, rcpt) = (&sendmail, &msg, &rcpt);
            s.spawn(move || {
                for i in w * per..((w + 1) * per).min(n) {
                    let mut c = Command::new(sendmail);
                    c.args(["-odq", "-i", &rcpt(i)])
                        .env("MAILROOM_ROOT", &root.dir);
                    timed(&mut c, msg);
                }
            });
        }
    });
}

fn qrun_pass(root: &Root) -> f64 {
    let t = Instant::now();
    let st = Command::new(exe("qrun"))
        .arg("-q")
        .env("MAILROOM_ROOT", &root.dir)
        .status()
        .unwrap();
    assert!(st.success());
    t.elapsed().as_secs_f64()
}

fn local_delivery() {
    println!("== local delivery: the queue runner draining 2,000 2 KB messages (issue 3) ==");
    for (mboxes, label) in [
        (100usize, "into 100 mboxes"),
        (1, "into one contended mbox"),
    ] {
        // Three rounds, each after the filled queue is on disk (a drain
        // must not pay for the submissions' writeback); the median and
        // the spread are printed, as this machine's disk is shared.
        let mut rates = Vec::new();
        let mut left = 0;
        for _ in 0..3 {
            let root = root_with_users("deliver", mboxes, "delivery_mode = queue\n");
            fill_queue(&root, 2000, |i| format!("u{}", i % mboxes));
            // SAFETY: sync(2) has no preconditions.
            unsafe { libc::sync() };
            rates.push(2000.0 / qrun_pass(&root));
            left += std::fs::read_dir(root.dir.join("var/spool/mqueue"))
                .unwrap()
                .count();
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "  {label:<28}: {:8.0} deliveries/s  (median of 3 drains of 2,000: {:.0}..{:.0}; {left} queue files left)",
            rates[1], rates[0], rates[2]
        );
    }
    // One deliver process per message, 8 at a time (a mail.local-style MDA).
    let root = root_with_users("deliver-proc", 100, "");
    let msg = message_2k();
    let d = exe("deliver");
    let (ms, rate) = concurrent(8, 250, &msg, || {
        let mut c = Command::new(&d);
        c.args([
            "-f",
            "bench@example.org",
            &format!("u{}", crate_rand() % 100),
        ])
        .env("MAILROOM_ROOT", &root.dir);
        c
    });
    println!(
        "  deliver, one process per message, 8 parallel: {rate:8.0} deliveries/s  ({ms:.2} ms median per process)"
    );
    println!(
        "  target: above dma, each delivery fsynced; the peers (dma, Postfix, Dovecot), measured side by side in one run: make bench-peers"
    );
    println!();
}

fn crate_rand() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(12345);
    N.fetch_add(2654435761, Ordering::Relaxed) >> 8
}

fn tables() {
    use mailroom::table::{Syntax, Table, build};
    println!("== tables: 1,000,000 entries (issue 3) ==");
    let root = Root::new("tables");
    for (name, syntax) in [
        ("virtusertable", Syntax::Makemap),
        ("aliases", Syntax::Aliases),
    ] {
        let path = root.dir.join("etc/mail").join(name);
        {
            let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
            for i in 0..1_000_000u32 {
                match syntax {
                    Syntax::Makemap => {
                        writeln!(w, "user{i}@domain{}.example local{i}", i % 1000).unwrap()
                    }
                    Syntax::Aliases => {
                        writeln!(w, "user{i}: local{i}, other{i}@remote.example").unwrap()
                    }
                }
            }
        }
        let t = Instant::now();
        build(&path, syntax).unwrap();
        let build_s = t.elapsed().as_secs_f64();
        let table = Table::open(&path, syntax, false);
        assert!(table.is_indexed());
        let n = 1_000_000u32;
        let t = Instant::now();
        let mut hits = 0;
        for k in 0..n {
            let i = (k.wrapping_mul(2654435761)) % 1_000_000;
            let key = match syntax {
                Syntax::Makemap => format!("user{i}@domain{}.example", i % 1000),
                Syntax::Aliases => format!("user{i}"),
            };
            if table.get(&key).is_some() {
                hits += 1;
            }
        }
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(hits, n);
        // The open itself, as each process pays it (mmap of the index).
        let t = Instant::now();
        for _ in 0..1000 {
            let t2 = Table::open(&path, syntax, false);
            assert!(t2.get("user1").is_some() || syntax == Syntax::Makemap);
        }
        let open_us = t.elapsed().as_secs_f64() * 1000.0;
        println!(
            "  {name:<13}: build {build_s:5.2} s, {:9.0} lookups/s ({:.2} µs each, random keys), open {open_us:.1} µs",
            n as f64 / secs,
            secs * 1e6 / n as f64
        );
    }
    println!("  target: a lookup under 20 µs, a build under 3 s");
    println!();
}

fn latency() {
    println!("== sendmail returning -> message in the local mbox (issue 4) ==");
    let root = root_with_users("latency", 1, "");
    let sendmail = exe("sendmail");
    let mbox = root.dir.join("var/mail/u0");
    let msg = message_2k();
    let mut times = Vec::new();
    for i in 0..200 {
        let before = std::fs::metadata(&mbox).map(|m| m.len()).unwrap_or(0);
        let mut c = Command::new(&sendmail);
        c.args(["-i", "u0"]).env("MAILROOM_ROOT", &root.dir);
        let _ = i;
        timed(&mut c, &msg);
        let t = Instant::now();
        loop {
            if std::fs::metadata(&mbox).map(|m| m.len()).unwrap_or(0) > before {
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                panic!("message not delivered");
            }
            std::thread::yield_now();
        }
        times.push(t.elapsed());
        // let the runner finish removing the job
        std::thread::sleep(Duration::from_millis(2));
    }
    println!(
        "  median {:.2} ms from sendmail's exit to the message in the mbox (200 messages)",
        median_ms(times)
    );
    println!("  target: under 3 ms");
    println!();
}

/// A fast SMTP sink on loopback: accepts everything, with PIPELINING.
fn smtp_sink() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::BufRead;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let c = c.clone();
            std::thread::spawn(move || {
                let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                let mut w = std::io::BufWriter::new(s);
                let _ = w.write_all(b"220 sink ESMTP\r\n");
                let _ = w.flush();
                let mut in_data = false;
                let mut line = Vec::new();
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if in_data {
                        if line == b".\r\n" {
                            in_data = false;
                            c.fetch_add(1, Ordering::Relaxed);
                            let _ = w.write_all(b"250 2.0.0 Ok\r\n");
                            let _ = w.flush();
                        }
                        continue;
                    }
                    let up = line.to_ascii_uppercase();
                    if up.starts_with(b"EHLO") {
                        let _ = w.write_all(b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
                    } else if up.starts_with(b"DATA") {
                        in_data = true;
                        let _ = w.write_all(b"354 go\r\n");
                    } else if up.starts_with(b"QUIT") {
                        let _ = w.write_all(b"221 bye\r\n");
                        let _ = w.flush();
                        return;
                    } else {
                        let _ = w.write_all(b"250 Ok\r\n");
                    }
                    // Flush when the client has nothing more pipelined.
                    if r.buffer().is_empty() {
                        let _ = w.flush();
                    }
                }
            });
        }
    });
    (port, count)
}

fn remote_flush() {
    use std::sync::atomic::Ordering;
    println!(
        "== remote delivery: flushing 10,000 queued 2 KB messages to an SMTP sink on loopback (issue 4) =="
    );
    for domains in [1usize, 50] {
        let (port, count) = smtp_sink();
        let root = root_with_users(
            "flush",
            1,
            "delivery_mode = queue\nqueue_workers = 16\nmax_per_destination = 16\n",
        );
        let mut mt = String::new();
        for d in 0..domains {
            mt.push_str(&format!("dest{d}.example smtp:[127.0.0.1]:{port}\n"));
        }
        std::fs::write(root.dir.join("etc/mail/mailertable"), mt).unwrap();
        fill_queue(&root, 10_000, |i| {
            format!("rcpt{i}@dest{}.example", i % domains)
        });
        let secs = qrun_pass(&root);
        let got = count.load(Ordering::Relaxed);
        println!(
            "  {domains:>2} destination domain(s): {:8.0} messages/s  ({secs:.2} s; the sink received {got})",
            10_000.0 / secs
        );
    }
    println!("  target: at least 2x Postfix's smtp client on the same sink and machine;");
    println!(
        "  the peers (dma, Postfix, Dovecot), measured side by side in one run: make bench-peers"
    );
    println!();
}

fn queue_scan() {
    println!("== scanning a queue of 100,000 messages (issue 4) ==");
    let root = root_with_users("scan", 1, "delivery_mode = queue\n");
    let q = root.dir.join("var/spool/mqueue");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Written directly (no fsync): 100,000 deferred jobs not yet due.
    for i in 0..100_000u32 {
        let id = format!("6AL{:05}{:06}", i % 100000, i);
        std::fs::write(q.join(format!("df{id}")), b"body\n").unwrap();
        std::fs::write(
            q.join(format!("qf{id}")),
            format!("V8\nT{now}\nK{now}\nN1\nP120005\nMDeferred: Connection refused by mx.example.\nSroot\nRPFD:x{i}@example.org\nH??Subject: x\n.\n"),
        )
        .unwrap();
    }
    let t = Instant::now();
    let st = Command::new(exe("qrun"))
        .args(["-q", "--periodic"])
        .env("MAILROOM_ROOT", &root.dir)
        .status()
        .unwrap();
    assert!(st.success());
    let pass = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let out = Command::new(exe("sendmail"))
        .arg("-bp")
        .env("MAILROOM_ROOT", &root.dir)
        .output()
        .unwrap();
    let mailq = t.elapsed().as_secs_f64();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Total requests: 100000"));
    println!("  periodic queue run over 100,000 jobs not yet due: {pass:.2} s");
    println!("  mailq listing 100,000 jobs: {mailq:.2} s");
    println!("  target: the whole queue scanned in under 1 s");
    println!();
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    if want("submission") {
        submission();
    }
    if want("delivery") {
        local_delivery();
    }
    if want("tables") {
        tables();
    }
    if want("latency") {
        latency();
    }
    if want("remote") {
        remote_flush();
    }
    if want("scan") {
        queue_scan();
    }
    if want("pop3") {
        pop3();
    }
    if want("smtp") {
        smtp();
    }
    if want("panel") {
        panel::bench();
    }
}

/// "secret" hashed by the system's crypt (SHA-512).
const POP_SECRET_HASH: &str = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";

/// A root whose user bob has an mbox of `n` messages of about 50 KB.
fn pop_root(n: usize) -> Root {
    let root = Root::new(&format!("pop3-{n}"));
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let uid = if me == 0 { 4242 } else { me };
    std::fs::write(
        root.dir.join("etc/passwd"),
        format!("root:x:0:0:root:/root:/bin/sh\nbob:x:{uid}:{uid}:Bob:/home/bob:/bin/sh\n"),
    )
    .unwrap();
    std::fs::write(
        root.dir.join("etc/shadow"),
        format!("bob:{POP_SECRET_HASH}:19000:0:99999:7:::\n"),
    )
    .unwrap();
    std::fs::write(
        root.dir.join("etc/mail/mailroom.conf"),
        "hostname = bench.example\nlog = /var/log/mail.log\npop3_first_uid = 100\n",
    )
    .unwrap();
    let path = root.dir.join("var/mail/bob");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
    let line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod te\n";
    for i in 0..n {
        write!(
            w,
            "From sender{i}@example.org  Sat Nov 21 05:{:02}:{:02} 2026\nReturn-Path: <sender{i}@example.org>\nDelivered-To: bob@bench.example\nReceived: (from sender{i}@localhost)\n\tby bench.example (mailroom) id 6AL5{i:010};\n\tSat, 21 Nov 2026 05:00:00 GMT\nDate: Sat, 21 Nov 2026 05:00:00 GMT\nFrom: sender{i}@example.org\nMessage-Id: <{i}@example.org>\nSubject: message {i}\n\n",
            (i / 60) % 60,
            i % 60
        )
        .unwrap();
        for _ in 0..(50 * 1024 / line.len()) {
            w.write_all(line).unwrap();
        }
        w.write_all(b"\n").unwrap();
    }
    drop(w);
    std::os::unix::fs::chown(&path, Some(uid), Some(uid)).unwrap();
    // The spool as installed: root:mail 2775, so pop3d (the user, plus
    // group mail) can keep its index beside the mbox.
    if me == 0 {
        let spool = root.dir.join("var/mail");
        let mail_gid = mailroom::users::group_id("mail");
        std::os::unix::fs::chown(&spool, Some(0), mail_gid).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o2775)).unwrap();
    }
    root
}

/// One pop3d session on a socket pair.
struct PopClient {
    pid: i32,
    sock: std::os::unix::net::UnixStream,
    buf: Vec<u8>,
    lo: usize,
    hi: usize,
}

impl PopClient {
    fn start(root: &Root) -> PopClient {
        use std::os::fd::OwnedFd;
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let child = Command::new(exe("pop3d"))
            .env_clear()
            .env("MAILROOM_ROOT", &root.dir)
            .stdin(Stdio::from(OwnedFd::from(theirs.try_clone().unwrap())))
            .stdout(Stdio::from(OwnedFd::from(theirs)))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut c = PopClient {
            pid: child.id() as i32,
            sock: ours,
            buf: vec![0; 1 << 20],
            lo: 0,
            hi: 0,
        };
        std::mem::forget(child); // reaped with wait4 for its rusage
        c.line();
        c
    }

    fn fill(&mut self) {
        use std::io::Read;
        if self.lo > 0 {
            self.buf.copy_within(self.lo..self.hi, 0);
            self.hi -= self.lo;
            self.lo = 0;
        }
        if self.hi == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.sock.read(&mut self.buf[self.hi..]).unwrap();
        assert!(n > 0, "pop3d closed the connection");
        self.hi += n;
    }

    fn line(&mut self) -> String {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.lo..self.hi]) {
                let l = String::from_utf8_lossy(&self.buf[self.lo..self.lo + i + 1]).into_owned();
                self.lo += i + 1;
                return l;
            }
            self.fill();
        }
    }

    /// Bytes of a multi-line body, up to and including the final ".".
    fn body(&mut self) -> usize {
        let mut total = 0;
        // The body is preceded by CRLF (the status line's), so searching
        // for CRLF.CRLF from two bytes back always works.
        loop {
            let start = self.lo.saturating_sub(2);
            if let Some(i) = memchr::memmem::find(&self.buf[start..self.hi], b"\r\n.\r\n") {
                let end = start + i + 5;
                total += end - self.lo;
                self.lo = end;
                return total;
            }
            // Keep 4 bytes in case the terminator straddles reads.
            let keep = (self.hi - self.lo).min(4);
            total += self.hi - self.lo - keep;
            self.lo = self.hi - keep;
            self.fill();
        }
    }

    fn cmd(&mut self, c: &str) -> String {
        use std::io::Write;
        self.sock.write_all(c.as_bytes()).unwrap();
        self.sock.write_all(b"\r\n").unwrap();
        self.line()
    }

    /// Wait for pop3d to exit; its peak RSS in KiB.
    fn finish(self) -> i64 {
        drop(self.sock);
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid out-parameter.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waiting for our own child.
        unsafe { libc::wait4(self.pid, &mut status, 0, &mut ru) };
        ru.ru_maxrss
    }
}

fn pop3() {
    println!("== pop3d: mboxes of 50 KB messages (issue 5) ==");
    for n in [1_000usize, 10_000] {
        let root = pop_root(n);
        let mbox = root.dir.join("var/mail/bob");
        let size_mb = std::fs::metadata(&mbox).unwrap().len() as f64 / 1e6;
        let index = root.dir.join("var/mail/.bob.pop3-index");
        // SAFETY: sync(2) has no preconditions.
        unsafe { libc::sync() };
        let login = |what: &str| -> (PopClient, f64) {
            let t = Instant::now();
            let mut c = PopClient::start(&root);
            c.cmd("USER bob");
            let ok = c.cmd("PASS secret");
            assert!(ok.starts_with("+OK"), "{what}: {ok}");
            let stat = c.cmd("STAT");
            assert!(stat.starts_with(&format!("+OK {n} ")), "{stat}");
            (c, t.elapsed().as_secs_f64() * 1000.0)
        };
        let _ = std::fs::remove_file(&index);
        let (c, cold) = login("cold");
        c.cmd_quit();
        let (mut c, warm) = login("warm");
        let t = Instant::now();
        assert_eq!(c.cmd("UIDL"), "+OK\r\n");
        c.body();
        let uidl = t.elapsed().as_secs_f64() * 1000.0;
        let t = Instant::now();
        let mut bytes = 0usize;
        for i in 1..=n {
            let ok = c.cmd(&format!("RETR {i}"));
            assert!(ok.starts_with("+OK"), "{ok}");
            bytes += c.body();
        }
        let retr = t.elapsed().as_secs_f64();
        let t = Instant::now();
        assert!(c.cmd("DELE 1").starts_with("+OK"));
        let quit = c.cmd("QUIT");
        assert!(quit.starts_with("+OK"), "{quit}");
        let dele = t.elapsed().as_secs_f64() * 1000.0;
        let rss = c.finish();
        println!("  {n:>6} messages ({size_mb:.0} MB):");
        println!("    connect to +OK after PASS + STAT: cold {cold:7.1} ms, warm {warm:6.1} ms");
        println!(
            "    UIDL: {uidl:.1} ms;  RETR of everything: {:.0} MB/s ({:.2} s)",
            bytes as f64 / 1e6 / retr,
            retr
        );
        println!(
            "    DELE 1 + QUIT (rewrites the mbox): {dele:.0} ms;  pop3d peak RSS: {:.1} MiB",
            rss as f64 / 1024.0
        );
    }
    println!(
        "  the peers (dma, Postfix, Dovecot), measured side by side in one run: make bench-peers"
    );
    println!(
        "  targets: cold under 250 ms, warm under 25 ms, RETR at least 390 MB/s, peak RSS under 4 MiB"
    );
    println!();
}

impl PopClient {
    fn cmd_quit(mut self) {
        self.cmd("QUIT");
        self.finish();
    }
}

// ---------------------------------------------------------------------------
// smtp (issue 6): messages/s accepted over port 25 by `sendmail -bs`
// started per connection by inetd.

/// Parallel SMTP clients.
const SMTP_CLIENTS: usize = 8;
/// How long each case runs: no client starts a connection after this.
const SMTP_CASE: Duration = Duration::from_secs(4);
/// The recipient in the inetd sandbox (a local user made there).
const SMTP_SANDBOX_RCPT: &str = "bob@mx.bench.example";

/// What a load of SMTP clients came to.
#[derive(Default)]
struct SmtpLoad {
    connections: usize,
    failures: usize,
    first_failure: Option<String>,
    /// Connect to 221, per completed connection.
    per_conn: Vec<Duration>,
    /// MAIL to the 250 after the data, per accepted message.
    per_txn: Vec<Duration>,
    secs: f64,
}

/// The data of a transaction: message_2k() ending in CRLF, then the dot
/// (no line of it starts with a dot).
fn smtp_data() -> Vec<u8> {
    let mut m = message_2k();
    if !m.ends_with(b"\r\n") {
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b".\r\n");
    m
}

/// One reply (all its lines): its code, or what went wrong.
fn smtp_reply(r: &mut impl std::io::BufRead, want: u16, what: &str) -> Result<(), String> {
    let mut all = Vec::new();
    loop {
        let start = all.len();
        match r.read_until(b'\n', &mut all) {
            Ok(0) => {
                return Err(format!(
                    "{what}: connection closed ({:?})",
                    String::from_utf8_lossy(&all)
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(format!("{what}: {e}")),
        }
        let line = &all[start..];
        if line.len() < 4 || line[3] != b'-' {
            let code = std::str::from_utf8(&line[..3.min(line.len())])
                .ok()
                .and_then(|c| c.parse::<u16>().ok());
            return if code == Some(want) {
                Ok(())
            } else {
                Err(format!(
                    "{what}: {:?}",
                    String::from_utf8_lossy(&all).trim_end()
                ))
            };
        }
    }
}

/// One connection: wait for the greeting, EHLO, `n` transactions (MAIL,
/// RCPT and DATA pipelined, as the server offers PIPELINING), QUIT.  Each
/// accepted message's time goes into `txn`.
fn smtp_session(
    addr: std::net::SocketAddr,
    rcpt: &str,
    data: &[u8],
    n: usize,
    txn: &mut Vec<Duration>,
) -> Result<(), String> {
    let s = std::net::TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut r = std::io::BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let mut w = s;
    let envelope =
        format!("MAIL FROM:<sender@client.bench.example>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n");
    let send = |w: &mut std::net::TcpStream, b: &[u8]| w.write_all(b).map_err(|e| e.to_string());
    smtp_reply(&mut r, 220, "greeting")?;
    send(&mut w, b"EHLO client.bench.example\r\n")?;
    smtp_reply(&mut r, 250, "EHLO")?;
    for _ in 0..n {
        let t = Instant::now();
        send(&mut w, envelope.as_bytes())?;
        smtp_reply(&mut r, 250, "MAIL")?;
        smtp_reply(&mut r, 250, "RCPT")?;
        smtp_reply(&mut r, 354, "DATA")?;
        send(&mut w, data)?;
        smtp_reply(&mut r, 250, "end of data")?;
        txn.push(t.elapsed());
    }
    send(&mut w, b"QUIT\r\n")?;
    smtp_reply(&mut r, 221, "QUIT")
}

/// SMTP_CLIENTS clients, each opening connections of `per_conn` messages
/// until `dur` has passed.
fn smtp_load(addr: std::net::SocketAddr, rcpt: &str, per_conn: usize, dur: Duration) -> SmtpLoad {
    smtp_load_data(addr, rcpt, &smtp_data(), per_conn, dur)
}

/// [`smtp_load`] with a data block of the caller's (ending in the dot).
fn smtp_load_data(
    addr: std::net::SocketAddr,
    rcpt: &str,
    data: &[u8],
    per_conn: usize,
    dur: Duration,
) -> SmtpLoad {
    let start = Instant::now();
    let loads: Vec<SmtpLoad> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..SMTP_CLIENTS)
            .map(|_| {
                s.spawn(move || {
                    let mut l = SmtpLoad::default();
                    let mut failing = 0;
                    while start.elapsed() < dur && failing < 20 {
                        let t = Instant::now();
                        l.connections += 1;
                        match smtp_session(addr, rcpt, data, per_conn, &mut l.per_txn) {
                            Ok(()) => {
                                l.per_conn.push(t.elapsed());
                                failing = 0;
                            }
                            Err(e) => {
                                l.failures += 1;
                                l.first_failure.get_or_insert(e);
                                failing += 1;
                                std::thread::sleep(Duration::from_millis(10));
                            }
                        }
                    }
                    l
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all = SmtpLoad {
        secs: start.elapsed().as_secs_f64(),
        ..SmtpLoad::default()
    };
    for l in loads {
        all.connections += l.connections;
        all.failures += l.failures;
        if all.first_failure.is_none() {
            all.first_failure = l.first_failure;
        }
        all.per_conn.extend(l.per_conn);
        all.per_txn.extend(l.per_txn);
    }
    all
}

/// Print one case; `queue`: the spool to check the count against (then
/// emptied).
fn smtp_case(
    addr: std::net::SocketAddr,
    rcpt: &str,
    per_conn: usize,
    queue: Option<&std::path::Path>,
) -> usize {
    let l = smtp_load(addr, rcpt, per_conn, SMTP_CASE);
    let msgs = l.per_txn.len();
    let label = if per_conn == 1 {
        "1 message per connection".to_string()
    } else {
        format!("{per_conn} messages per connection")
    };
    let med = |v: &[Duration]| {
        if v.is_empty() {
            f64::NAN
        } else {
            median_ms(v.to_vec())
        }
    };
    let conn_ms = med(&l.per_conn);
    println!(
        "    {label:<27}: {:7.0} msg/s  {:7.2} ms/message per client  (connection {conn_ms:.1} ms, MAIL..250 {:.2} ms: medians; {msgs} in {:.1} s)",
        msgs as f64 / l.secs,
        conn_ms / per_conn as f64,
        med(&l.per_txn),
        l.secs
    );
    if l.failures > 0 {
        println!(
            "      {} of {} connections failed, first: {}",
            l.failures,
            l.connections,
            l.first_failure.unwrap_or_default()
        );
    }
    if let Some(q) = queue {
        let queued = queue_files(q);
        if queued != msgs {
            println!("      warning: {queued} messages in the queue, {msgs} accepted");
        }
        for e in std::fs::read_dir(q).unwrap() {
            let _ = std::fs::remove_file(e.unwrap().path());
        }
        // SAFETY: sync(2) has no preconditions.
        unsafe { libc::sync() };
    }
    msgs
}

/// Queued messages (qf files) in `q`.
fn queue_files(q: &std::path::Path) -> usize {
    std::fs::read_dir(q)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .as_encoded_bytes()
                .starts_with(b"qf")
        })
        .count()
}

/// The two greet pauses, each with 1 and with 10 messages per connection;
/// `set_pause(Some(p))` writes `smtp_greet_pause = p`, `None` the default.
fn smtp_cases(
    addr: std::net::SocketAddr,
    rcpt: &str,
    queue: &std::path::Path,
    set_pause: impl Fn(Option<&str>),
) {
    // Warm the page cache and the binary.
    set_pause(Some("0"));
    smtp_load(addr, rcpt, 1, Duration::from_millis(500));
    for e in std::fs::read_dir(queue).unwrap() {
        let _ = std::fs::remove_file(e.unwrap().path());
    }
    for (pause, label) in [
        (None, "smtp_greet_pause = 300ms (the default)"),
        (Some("0"), "smtp_greet_pause = 0"),
    ] {
        set_pause(pause);
        println!("  {label}:");
        for per_conn in [1, 10] {
            smtp_case(addr, rcpt, per_conn, Some(queue));
        }
        if pause.is_none() {
            println!(
                "    (each connection waits 300 ms for its 220: {SMTP_CLIENTS} clients x 1 message / 0.3 s is at most {:.0} msg/s)",
                SMTP_CLIENTS as f64 / 0.3
            );
        }
    }
}

fn smtp() {
    // Client-only mode: these clients against another server (HOST:PORT),
    // e.g. a Postfix smtpd, to check make bench-peers' Python clients.
    if let Ok(target) = std::env::var("MAILROOM_BENCH_SMTP_TARGET") {
        let addr = target
            .parse()
            .expect("MAILROOM_BENCH_SMTP_TARGET: HOST:PORT");
        let rcpt = std::env::var("MAILROOM_BENCH_SMTP_RCPT")
            .unwrap_or_else(|_| "bob@bench.example".into());
        println!("== smtp: the smtp section's clients against {target}, RCPT TO:<{rcpt}> ==");
        let mut accepted = smtp_load(addr, &rcpt, 1, Duration::from_millis(500))
            .per_txn
            .len();
        for per_conn in [1, 10] {
            accepted += smtp_case(addr, &rcpt, per_conn, None);
        }
        println!("  accepted in all: {accepted} (with the warm-up)");
        return;
    }
    // Inside the namespaces made below.
    if let Some(w) = std::env::var_os("MAILROOM_BENCH_SMTP_SANDBOX") {
        std::process::exit(smtp_sandbox(&PathBuf::from(w)));
    }
    println!(
        "== smtp: messages/s accepted over port 25 by sendmail -bs started per connection (inetd); {SMTP_CLIENTS} parallel clients, 2 KB messages (issue 6) =="
    );
    println!(
        "  (clients wait for the 220, pipeline MAIL/RCPT/DATA; delivery_mode = queue: acceptance only, each message fsynced)"
    );
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let have = |p: &str| std::path::Path::new(p).exists();
    let forced = std::env::var("MAILROOM_BENCH_SMTP").is_ok_and(|v| v == "fork");
    let mut done = false;
    if root && !forced && have("/usr/sbin/inetd") && have("/usr/bin/unshare") {
        done = smtp_enter_sandbox();
    }
    if !done {
        smtp_fork_loop();
    }
    println!("  target: level with Postfix's smtpd at 1 message per connection, ahead at 20;");
    println!(
        "  the peers (dma, Postfix, Dovecot), measured side by side in one run: make bench-peers"
    );
    println!();
}

/// As root: this bench again, inside private mount, network, UTS and PID
/// namespaces (see smtp_sandbox()).  False if that could not be set up.
fn smtp_enter_sandbox() -> bool {
    let base = std::env::var_os("MAILROOM_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let w = base.join(format!("mailroom-bench-smtp-{}", std::process::id()));
    std::fs::create_dir_all(&w).unwrap();
    // bash as the namespace's init reaps any orphan.
    let st = Command::new("unshare")
        .args([
            "--mount",
            "--net",
            "--uts",
            "--pid",
            "--fork",
            "--mount-proc",
        ])
        .args(["--", "bash", "-c", "\"$0\" smtp; exit $?"])
        .arg(std::env::current_exe().unwrap())
        .env("MAILROOM_BENCH_SMTP_SANDBOX", &w)
        .status();
    let _ = std::fs::remove_dir_all(&w);
    match st {
        Ok(s) if s.code() == Some(SANDBOX_SETUP_FAILED) => {
            println!(
                "  (could not set up the inetd sandbox: falling back to the bench's own accept loop)"
            );
            false
        }
        Ok(s) if !s.success() => {
            println!("  the sandboxed run failed: {s}");
            true
        }
        Ok(_) => true,
        Err(e) => {
            println!("  (unshare: {e}: falling back to the bench's own accept loop)");
            false
        }
    }
}

const SANDBOX_SETUP_FAILED: i32 = 3;

/// Copy-on-write layers over /etc, /usr and the parts of /var mailroom
/// uses (upper layers in $W, on the disk the other sections use), fresh
/// /run and /tmp, loopback up, then `make install` at the default paths
/// and a local user bob.
const SMTP_SANDBOX_SETUP: &str = r#"
set -euo pipefail
W=$1 REPO=$2 RELEASE=$3
mount --make-rprivate /
for d in etc usr var/spool var/mail var/lib var/log; do
  n=${d//\//-}
  mkdir -p "$W/$n.up" "$W/$n.work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$W/$n.up,workdir=$W/$n.work" "/$d"
done
mount -t tmpfs tmpfs /run
mkdir -p /run/lock
mount -t tmpfs tmpfs /tmp
hostname mx.bench.example
ip link set lo up
# A client "from the internet" (not loopback) for the sender checks.
ip addr add 192.0.2.1/32 dev lo
if ! make -C "$REPO" -o build install PREFIX=/usr RELEASE="$RELEASE" > "$W/install.log" 2>&1; then
  cat "$W/install.log" >&2
  exit 1
fi
getent passwd bob > /dev/null || useradd -M -d /home/bob -s /bin/sh bob
touch /var/log/mail.log
chown root:mqueue /var/log/mail.log
chmod 0660 /var/log/mail.log
"#;

/// In the namespaces: mailroom installed as `make install` does, under
/// openbsd-inetd on 127.0.0.1:25, as a real system runs it (root, the
/// network process as `mail` with group `mqueue`).
fn smtp_sandbox(w: &std::path::Path) -> i32 {
    let sendmail = exe("sendmail");
    let release = sendmail.parent().unwrap();
    let ok = Command::new("bash")
        .args(["-c", SMTP_SANDBOX_SETUP, "setup"])
        .arg(w)
        .arg(env!("CARGO_MANIFEST_DIR"))
        .arg(release)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return SANDBOX_SETUP_FAILED;
    }
    let conf = |pause: Option<&str>| {
        let mut c = String::from(
            "hostname = mx.bench.example\nlog = /var/log/mail.log\ndelivery_mode = queue\n",
        );
        if let Some(p) = pause {
            c.push_str(&format!("smtp_greet_pause = {p}\n"));
        }
        std::fs::write("/etc/mail/mailroom.conf", c).unwrap();
    };
    conf(None);
    // openbsd-inetd's default of 256 connections a minute per service
    // (then the service is off for ten minutes) would stop the bench.
    let inetd_conf = w.join("inetd.conf");
    std::fs::write(
        &inetd_conf,
        "127.0.0.1:25\tstream\ttcp\tnowait.1000000\troot\t/usr/sbin/sendmail\tsendmail -bs\n\
         192.0.2.1:25\tstream\ttcp\tnowait.1000000\troot\t/usr/sbin/sendmail\tsendmail -bs\n",
    )
    .unwrap();
    let log = std::fs::File::create(w.join("inetd.log")).unwrap();
    let inetd = Command::new("/usr/sbin/inetd")
        .arg("-i")
        .arg(&inetd_conf)
        .env_remove("MAILROOM_ROOT")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn();
    let Ok(mut inetd) = inetd else {
        return SANDBOX_SETUP_FAILED;
    };
    let t = Instant::now();
    while !listening_on_25() {
        if t.elapsed() > Duration::from_secs(10) || inetd.try_wait().ok().flatten().is_some() {
            eprintln!(
                "{}",
                std::fs::read_to_string(w.join("inetd.log")).unwrap_or_default()
            );
            return SANDBOX_SETUP_FAILED;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let fs = Command::new("findmnt")
        .args(["-n", "-o", "FSTYPE", "-T"])
        .arg(w)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "  server: openbsd-inetd (nowait.1000000) on 127.0.0.1:25 in private namespaces, mailroom installed there by"
    );
    println!(
        "  make install; sendmail -bs starts as root and forks its network process as mail:mqueue (the privilege"
    );
    println!(
        "  split, as on a real system); queue on {fs} ({}); mailroom.conf: delivery_mode = queue, log to a file",
        w.display()
    );
    let addr: std::net::SocketAddr = "127.0.0.1:25".parse().unwrap();
    let queue = std::path::Path::new("/var/spool/mqueue");
    smtp_cases(addr, SMTP_SANDBOX_RCPT, queue, conf);
    smtp_probe_rss(addr);
    smtp_checks(queue);
    // Ending this namespace's init ends inetd and everything else.
    let _ = inetd.kill();
    let _ = inetd.wait();
    0
}

/// Busy and total CPU time of the whole machine so far (/proc/stat), in
/// clock ticks.
fn machine_cpu() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    let total: u64 = f.iter().sum();
    // idle and iowait are not busy.
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// A message from client.bench.example, `size` bytes, DKIM-signed
/// (rsa-sha256, 2048 bits) with `key`, with the data's dot-stuffing and
/// final dot.
fn signed_data(key: &mailroom::dkim::keys::Key, size: usize) -> Vec<u8> {
    let mut m = b"To: bob@mx.bench.example\r\nSubject: Order confirmation\r\nFrom: Shop <sender@client.bench.example>\r\nMessage-Id: <bench@client.bench.example>\r\nDate: Sat, 05 Dec 2026 10:00:00 +0000\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n".to_vec();
    while m.len() < size {
        m.extend_from_slice(
            b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n",
        );
    }
    let signed = mailroom::dkim::sign::sign_message(
        &m,
        "client.bench.example",
        std::slice::from_ref(key),
        mailroom::date::now(),
    )
    .expect("sign");
    // The signer folds its field with bare LF (the queue's line ends):
    // CRLF throughout on the wire.
    let mut crlf = Vec::with_capacity(signed.len() + 64);
    for (i, &b) in signed.iter().enumerate() {
        if b == b'\n' && (i == 0 || signed[i - 1] != b'\r') {
            crlf.push(b'\r');
        }
        crlf.push(b);
    }
    let mut signed = crlf;
    if !signed.ends_with(b"\r\n") {
        signed.extend_from_slice(b"\r\n");
    }
    signed.extend_from_slice(b".\r\n");
    signed
}

/// Issue 19: the sender checks' cost.  Clients "from the internet"
/// (192.0.2.1, not loopback) send DKIM-signed mail from a domain with SPF
/// and DMARC p=reject records, served by a DNS server in this process
/// (answers from memory: a warm local cache); checks off, then on.
fn smtp_checks(queue: &std::path::Path) {
    use fake_dns::{Entry, FakeDns, Zone};
    use hickory_resolver::proto::rr::RData;
    use hickory_resolver::proto::rr::rdata::{MX, TXT};
    let pem = mailroom::dkim::keys::generate(mailroom::dkim::keys::Algorithm::Rsa, 2048).unwrap();
    let key = mailroom::dkim::keys::Key::from_pem("bench", &pem).unwrap();
    let txt = |s: &str| {
        let parts: Vec<String> = s
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        Entry::Record(RData::TXT(TXT::new(parts)))
    };
    let mut zone = Zone::new();
    zone.add("client.bench.example", txt("v=spf1 ip4:192.0.2.1 -all"));
    zone.add(
        "client.bench.example",
        Entry::Record(RData::MX(MX::new(
            10,
            "mx.client.bench.example.".parse().unwrap(),
        ))),
    );
    zone.add("_dmarc.client.bench.example", txt("v=DMARC1; p=reject"));
    zone.add(
        "bench._domainkey.client.bench.example",
        txt(&key.dns_record()),
    );
    let dns = FakeDns::start(zone);
    let addr: std::net::SocketAddr = "192.0.2.1:25".parse().unwrap();
    let base = "hostname = mx.bench.example\nlog = /var/log/mail.log\ndelivery_mode = queue\nsmtp_greet_pause = 0\n";
    let conf_off = format!("{base}inbound_checks = no\n");
    let conf_on = format!("{base}inbound_resolver = {}\n", dns.addr);
    println!(
        "== smtp: the sender checks (issue 19): SPF, DKIM (rsa-sha256, 2048 bits) and DMARC on each message from the internet =="
    );
    println!(
        "  ({SMTP_CLIENTS} clients from 192.0.2.1 (not loopback) over inetd; the domain's records come from a DNS server in this process, from memory:"
    );
    println!(
        "  as from a warm local caching resolver; CPU per message is the whole machine's busy time over the messages accepted)"
    );
    for size in [2048usize, 50 * 1024] {
        let data = signed_data(&key, size);
        for per_conn in [1usize, 20] {
            let mut line = format!("  {:>2} KB, {per_conn:>2} per connection:", size / 1024);
            let mut cpu = Vec::new();
            for (label, conf) in [("off", &conf_off), ("on", &conf_on)] {
                std::fs::write("/etc/mail/mailroom.conf", conf).unwrap();
                // Warm up (binary, page cache; the resolver's first answers).
                smtp_load_data(
                    addr,
                    SMTP_SANDBOX_RCPT,
                    &data,
                    1,
                    Duration::from_millis(300),
                );
                for e in std::fs::read_dir(queue).unwrap() {
                    let _ = std::fs::remove_file(e.unwrap().path());
                }
                let (busy0, _) = machine_cpu();
                let l = smtp_load_data(addr, SMTP_SANDBOX_RCPT, &data, per_conn, SMTP_CASE);
                let (busy1, _) = machine_cpu();
                let msgs = l.per_txn.len().max(1);
                // SAFETY: sysconf has no preconditions.
                let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
                let ms = (busy1 - busy0) as f64 * 1000.0 / hz / msgs as f64;
                cpu.push(ms);
                line.push_str(&format!(
                    "  checks {label} {:6.0} msg/s ({ms:.2} CPU ms/msg)",
                    l.per_txn.len() as f64 / l.secs
                ));
                if l.failures > 0 {
                    line.push_str(&format!(
                        " [{} failed: {}]",
                        l.failures,
                        l.first_failure.clone().unwrap_or_default()
                    ));
                }
                let queued = queue_files(queue);
                if queued != l.per_txn.len() {
                    line.push_str(&format!(" [{queued} queued]"));
                }
                for e in std::fs::read_dir(queue).unwrap() {
                    let _ = std::fs::remove_file(e.unwrap().path());
                }
                // SAFETY: sync(2) has no preconditions.
                unsafe { libc::sync() };
            }
            line.push_str(&format!(
                "  -> checks cost {:.2} CPU ms/msg",
                cpu[1] - cpu[0]
            ));
            println!("{line}");
        }
    }
    let asked = dns.take_asked().len();
    println!("  (the DNS server answered {asked} questions in all)");
    std::fs::write("/etc/mail/mailroom.conf", conf_off).unwrap();
}

/// Whether something listens on 127.0.0.1:25 (from /proc/net/tcp).
fn listening_on_25() -> bool {
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == "0100007F:0019" && f[3] == "0A"
        })
}

/// One more session, stopped after its message is accepted: the peak RSS
/// (VmHWM) of each sendmail process then (in this PID namespace, only its
/// own).
fn smtp_probe_rss(addr: std::net::SocketAddr) {
    let s = std::net::TcpStream::connect(addr).unwrap();
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut step = |send: &[u8], want: u16| {
        if !send.is_empty() {
            w.write_all(send).unwrap();
        }
        smtp_reply(&mut r, want, "probe")
    };
    let ok = step(b"", 220)
        .and_then(|_| step(b"EHLO client.bench.example\r\n", 250))
        .and_then(|_| step(b"MAIL FROM:<sender@client.bench.example>\r\n", 250))
        .and_then(|_| step(format!("RCPT TO:<{SMTP_SANDBOX_RCPT}>\r\n").as_bytes(), 250))
        .and_then(|_| step(b"DATA\r\n", 354))
        .and_then(|_| step(&smtp_data(), 250));
    if let Err(e) = ok {
        println!("  (peak RSS not measured: {e})");
        return;
    }
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
        };
        if field("Name:").as_deref() != Some("sendmail") {
            continue;
        }
        let uid: u32 = field("Uid:").and_then(|u| u.parse().ok()).unwrap_or(0);
        let kb: f64 = field("VmHWM:").and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let who = if uid == 0 {
            "root (authority)".to_string()
        } else {
            let name = mailroom::users::by_uid(uid)
                .map(|u| u.name)
                .unwrap_or_else(|| uid.to_string());
            format!("{name} (network process)")
        };
        found.push(format!("{who} {:.1} MiB", kb / 1024.0));
    }
    let _ = step(b"QUIT\r\n", 221);
    println!(
        "  peak RSS of sendmail -bs after accepting a message: {}",
        found.join(", ")
    );
}

/// Not root (or no inetd, or MAILROOM_BENCH_SMTP=fork): the bench's own
/// accept loop stands in for inetd, starting `sendmail -bs` per connection
/// with the socket as standard input and output, under MAILROOM_ROOT (one
/// process: no privilege split without root and the system's paths).
fn smtp_fork_loop() {
    use std::os::fd::OwnedFd;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    let root = root_with_users("smtp", 1, "delivery_mode = queue\n");
    std::fs::create_dir_all(root.dir.join("var/spool/mailroom")).unwrap();
    let conf_path = root.dir.join("etc/mail/mailroom.conf");
    let conf = |pause: Option<&str>| {
        let mut c = String::from(
            "hostname = bench.example\nlog = /var/log/mail.log\nmin_free_space = 0\nprobe_interfaces = no\ndelivery_mode = queue\n",
        );
        if let Some(p) = pause {
            c.push_str(&format!("smtp_greet_pause = {p}\n"));
        }
        std::fs::write(&conf_path, c).unwrap();
    };
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let max_rss = Arc::new(AtomicI64::new(0));
    let acceptor = {
        let (stop, max_rss, dir) = (stop.clone(), max_rss.clone(), root.dir.clone());
        std::thread::spawn(move || {
            let sendmail = exe("sendmail");
            for s in l.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(s) = s else { continue };
                let fd = OwnedFd::from(s);
                let child = Command::new(&sendmail)
                    .arg("-bs")
                    .env("MAILROOM_ROOT", &dir)
                    .stdin(Stdio::from(fd.try_clone().unwrap()))
                    .stdout(Stdio::from(fd))
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                let pid = child.id() as i32;
                std::mem::forget(child); // reaped with wait4 for its rusage
                let max_rss = max_rss.clone();
                std::thread::spawn(move || {
                    let mut status = 0;
                    // SAFETY: an all-zero rusage is a valid out-parameter.
                    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
                    // SAFETY: waiting for our own child.
                    unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
                    max_rss.fetch_max(ru.ru_maxrss, Ordering::Relaxed);
                });
            }
        })
    };
    // SAFETY: geteuid cannot fail.
    let who = if unsafe { libc::geteuid() } == 0 {
        "root"
    } else {
        "this user"
    };
    println!(
        "  server: the bench's accept loop on {addr} forks target/release/sendmail -bs per connection (no inetd here;"
    );
    println!(
        "  as {who}, under MAILROOM_ROOT: one process per session, no privilege split); queue in {}",
        root.dir.display()
    );
    smtp_cases(
        addr,
        "u0@bench.example",
        &root.dir.join("var/spool/mqueue"),
        conf,
    );
    stop.store(true, Ordering::Relaxed);
    let _ = std::net::TcpStream::connect(addr);
    let _ = acceptor.join();
    // Let the last sessions' reapers record their figures.
    std::thread::sleep(Duration::from_millis(300));
    println!(
        "  peak RSS of one sendmail -bs session (largest of all): {:.1} MiB",
        max_rss.load(Ordering::Relaxed) as f64 / 1024.0
    );
}
