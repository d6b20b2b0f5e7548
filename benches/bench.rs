//! `make bench`: mailroom's performance figures, printed beside the targets
//! named in the issues.  Nothing here fails on timing.
//!
//! Every figure is taken with the same harness: a Rust program that spawns
//! the measured command with `std::process::Command`, writes its input on a
//! pipe and waits for it.  "The floor" is the same harness starting
//! `cat >/dev/null` on the same input: the cost no submission can beat.
//!
//! Run a single section with `cargo bench --bench bench -- submission`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
            "hostname = bench.example\nlog = /var/log/mail.log\nmin_free_space = 0\ndelivery_mode = queue\n",
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

fn exe(name: &str) -> PathBuf {
    match name {
        "sendmail" => PathBuf::from(env!("CARGO_BIN_EXE_sendmail")),
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
        "          2x faster than dma (4.2 ms/call), 4x faster than Postfix (8-10 ms/call) measured with one harness"
    );
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
}
