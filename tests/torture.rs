//! Crash torture and the concurrency soak (issue 9): nothing accepted is
//! lost, nothing is corrupted, whatever is killed and whenever.
//!
//! Crash torture: on a private root, rounds of
//!   * `sendmail -i` submissions, each SIGKILLed at a random instant of its
//!     lifetime (or left alone),
//!   * a `qrun -q` that delivers them into an mbox (alice) and a Maildir
//!     (carol), SIGKILLed at a random instant (with its delivery children:
//!     the process group, as the OOM killer's or an admin's `kill -9` of a
//!     whole service would),
//!   * a standalone `deliver` into either mailbox, SIGKILLed likewise,
//!   * a `pop3d` session that RETRs and DELEs some of alice's messages and
//!     QUITs (the mbox compaction), SIGKILLed likewise;
//!
//! then the normal flow (`qrun -q` until the queue is empty) and the
//! checks: every message whose submission (or `deliver`) returned 0 is in a
//! mailbox exactly once, or was deleted by a POP3 client that asked for
//! it; a killed submission's message is there at most once; every mbox
//! and Maildir file is a whole message; no `tf`/`xf` file survives; no
//! bounces.  Each kill is one kill point; the counts are printed.
//!
//! Soak: 16 submitters, 4 queue runners, 8 `deliver`s and 2 POP3 clients
//! on the same two users for a bounded time, nobody killed; then the counts
//! must match exactly (no loss, no duplicate).
//!
//! Sizes: `TORTURE_KILL_POINTS` (default 300) and `TORTURE_SOAK_SECONDS`
//! (default 60), what `make test` runs; `make torture` runs the long form
//! (10,000 kill points, five minutes of soak).  Nothing fails on timing: delays adapt to how long
//! things take here.

mod common;
use common::*;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// "secret", hashed by the system's crypt (SHA-512, salt "saltsalt").
fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// alice has an mbox, carol a Maildir; dave sends (bounces would land in
/// his mbox).  All share one uid, so this runs as root or not.
fn torture_root(name: &str) -> Root {
    use std::os::unix::fs::PermissionsExt;
    let r = Root::new(name);
    let u = login_uid();
    let users = ["alice", "carol", "dave"];
    r.write(
        "etc/passwd",
        &format!("{ROOT_PASSWD_LINE}{}", passwd_lines(&users, u, u)),
    );
    r.write("etc/shadow", &shadow_with_secret(&users));
    r.write(
        "etc/mail/mailroom.conf",
        "hostname = test.example\nlog = /var/log/mail.log\nmin_free_space = 0\n\
         delivery_mode = queue\nprobe_interfaces = no\npop3_first_uid = 0\n\
         pop3_auth_fail_delay = 0\nmailbox_lock_timeout = 2s\n",
    );
    r.write("etc/mail/aliases", "postmaster: dave\nroot: dave\n");
    for d in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(r.path(&format!("home/carol/Maildir/{d}"))).unwrap();
    }
    if is_root() {
        // The users write their own mailboxes and dotlocks.
        std::fs::set_permissions(r.path("var/mail"), std::fs::Permissions::from_mode(0o777))
            .unwrap();
        // pop3d logs as the user once logged in: what it repairs must be
        // in the log too, should a run fail.
        std::fs::write(r.path("var/log/mail.log"), "").unwrap();
        std::fs::set_permissions(
            r.path("var/log/mail.log"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        for d in [
            "home/carol",
            "home/carol/Maildir",
            "home/carol/Maildir/tmp",
            "home/carol/Maildir/new",
            "home/carol/Maildir/cur",
        ] {
            std::os::unix::fs::chown(r.path(d), Some(u), Some(u)).unwrap();
        }
    }
    r
}

const USERS: [&str; 2] = ["alice", "carol"];

/// A message whose completeness can be checked: a tag in the subject and
/// as the last body line.
fn message(tag: &str, lines: usize) -> Vec<u8> {
    let mut m = format!("From: dave@test.example\nSubject: {tag}\n\n").into_bytes();
    for i in 0..lines {
        m.extend_from_slice(format!("{tag} line {i} .............................\n").as_bytes());
    }
    m.extend_from_slice(format!("END {tag}\n").as_bytes());
    m
}

/// What is in the mailboxes: tag -> copies; plus the corrupt entries.
#[derive(Default)]
struct Found {
    copies: HashMap<String, usize>,
    corrupt: Vec<String>,
    messages: usize,
}

impl Found {
    fn entry(&mut self, where_: &str, text: &str) {
        self.messages += 1;
        let tag = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .map(str::to_string);
        match tag {
            Some(tag) if text.trim_end().ends_with(&format!("END {tag}")) => {
                *self.copies.entry(tag).or_default() += 1;
            }
            _ => self.corrupt.push(format!(
                "{where_}: {:?}",
                text.chars().take(200).collect::<String>()
            )),
        }
    }
}

/// Split an mbox into messages (a `From ` line at the start or after an
/// empty line) and check each.
fn read_mbox(path: &Path, found: &mut Found) {
    let Ok(bytes) = std::fs::read(path) else {
        return;
    };
    let text = String::from_utf8_lossy(&bytes);
    if text.is_empty() {
        return;
    }
    if !text.starts_with("From ") {
        found.corrupt.push(format!(
            "{}: does not start with a From line",
            path.display()
        ));
    }
    let mut starts = vec![0];
    let b = text.as_bytes();
    for i in 1..b.len() {
        if b[i - 1] == b'\n' && text[i..].starts_with("From ") && i >= 2 && b[i - 2] == b'\n' {
            starts.push(i);
        }
    }
    starts.push(text.len());
    for w in starts.windows(2) {
        found.entry(&path.display().to_string(), &text[w[0]..w[1]]);
    }
    if !text.ends_with("\n\n") {
        found.corrupt.push(format!(
            "{}: does not end with an empty line",
            path.display()
        ));
    }
}

fn read_maildir(dir: &Path, found: &mut Found) -> usize {
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
            for e in rd.flatten() {
                let text = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned();
                found.entry(&e.path().display().to_string(), &text);
            }
        }
    }
    std::fs::read_dir(dir.join("tmp"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

/// Everything in alice's and carol's mailboxes, and dave's (bounces).
fn survey(r: &Root) -> (Found, usize, usize) {
    let mut found = Found::default();
    read_mbox(&r.path("var/mail/alice"), &mut found);
    let tmp = read_maildir(&r.path("home/carol/Maildir"), &mut found);
    let mut bounces = Found::default();
    read_mbox(&r.path("var/mail/dave"), &mut bounces);
    (found, tmp, bounces.messages)
}

/// Spawn `cmd` in its own process group (so a kill takes its children
/// too), feeding `input`.
fn spawn_group(cmd: &mut Command, input: Option<&[u8]>) -> Child {
    cmd.process_group(0)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(input);
    }
    child
}

fn kill_group(child: &mut Child) {
    // SAFETY: killpg on the group this test made.
    unsafe {
        libc::killpg(child.id() as i32, libc::SIGKILL);
    }
}

/// Kill `child` (and its group) after `delay` unless it exits first;
/// returns its exit code, or None when it was killed.
fn kill_after(mut child: Child, delay: Duration) -> Option<i32> {
    let deadline = Instant::now() + delay;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        if Instant::now() >= deadline {
            kill_group(&mut child);
            let st = child.wait().unwrap();
            return st.code();
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// An adaptive estimate of how long a kind of run takes: kill points are
/// spread over it; it shrinks when runs finish before their kill, grows
/// when they are always killed, so the kills land inside the work.
struct Lifetime(Duration);
impl Lifetime {
    fn pick(&self, rng: &mut Lcg) -> Duration {
        Duration::from_micros(self.0.as_micros() as u64 * rng.below(1000) / 1000)
    }
    fn finished_first(&mut self) {
        self.0 = (self.0 * 9 / 10).max(Duration::from_micros(300));
    }
    fn killed(&mut self) {
        self.0 = (self.0 * 21 / 20).min(Duration::from_secs(2));
    }
}

/// Run as root on a private root, the suite delivers as root (it switches
/// to mailbox owners only on the system's own paths), while pop3d always
/// drops to the user: give the users their mail before a POP3 session,
/// as a real delivery would have.
fn hand_to_users(r: &Root) {
    if !is_root() {
        return;
    }
    let u = login_uid();
    let mut paths = vec![r.path("var/mail/alice")];
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(r.path(&format!("home/carol/Maildir/{sub}"))) {
            paths.extend(rd.flatten().map(|e| e.path()));
        }
    }
    for p in paths {
        let _ = std::os::unix::fs::chown(&p, Some(u), Some(u));
    }
}

/// A POP3 client's session: log in as `user`, RETR and DELE each message
/// `pick` chooses (by its tag); QUIT.  Returns (tags deleted, whether QUIT
/// said +OK).  Any step may fail (the session was killed): what was asked
/// so far is returned.
fn fetch(
    pop: &mut PopSession,
    user: &str,
    pick: &mut dyn FnMut(&str) -> bool,
) -> (Vec<String>, bool) {
    let mut deleted = Vec::new();
    let ok = |l: Option<String>| l.is_some_and(|l| l.starts_with("+OK"));
    if !ok(pop.try_line())
        || !ok(pop.try_cmd(format!("USER {user}")))
        || !ok(pop.try_cmd("PASS secret"))
    {
        return (deleted, false);
    }
    let Some(l) = pop.try_cmd("STAT") else {
        return (deleted, false);
    };
    let n: usize = l
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    for i in 1..=n {
        if !ok(pop.try_cmd(format!("RETR {i}"))) {
            return (deleted, false);
        }
        let Some(body) = pop.try_body() else {
            return (deleted, false);
        };
        let tag = body
            .iter()
            .find_map(|l| l.strip_prefix("Subject: "))
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default();
        if pick(&tag) {
            // Counted as asked for before the reply: a kill may come
            // between the two.
            deleted.push(tag);
            if !ok(pop.try_cmd(format!("DELE {i}"))) {
                return (deleted, false);
            }
        }
    }
    let quit = ok(pop.try_cmd("QUIT"));
    (deleted, quit)
}

/// The ledger: what the harness was told about every message.
#[derive(Default)]
struct Ledger {
    /// Submitted with exit 0 (sendmail or deliver).
    accepted: HashSet<String>,
    /// Killed during submission: may or may not exist.
    uncertain: HashSet<String>,
    /// Failed with an exit code: must not appear.
    refused: HashSet<String>,
    /// Deleted by a POP3 client that asked (QUIT answered, or killed
    /// while asking): gone is fine, present once is fine.
    popped: HashSet<String>,
    submitted: usize,
}

#[derive(Default, Debug)]
struct Verdict {
    delivered: usize,
    lost: Vec<String>,
    duplicated: Vec<String>,
    phantom: Vec<String>,
}

fn judge(ledger: &Ledger, found: &Found) -> Verdict {
    let mut v = Verdict::default();
    for (tag, &n) in &found.copies {
        if n > 1 {
            v.duplicated.push(format!("{tag} x{n}"));
        }
        if ledger.refused.contains(tag)
            || !(ledger.accepted.contains(tag) || ledger.uncertain.contains(tag))
        {
            v.phantom.push(tag.clone());
        }
    }
    for tag in &ledger.accepted {
        match found.copies.get(tag) {
            Some(_) => v.delivered += 1,
            None if ledger.popped.contains(tag) => v.delivered += 1,
            None => v.lost.push(tag.clone()),
        }
    }
    v.lost.sort();
    v
}

/// Queue files other than complete jobs (`qf`+`df`).
fn queue_leftovers(r: &Root) -> Vec<String> {
    r.queue_files()
        .into_iter()
        .filter(|f| !(f.starts_with("qf") || f.starts_with("df") || f.starts_with('.')))
        .collect()
}

/// The normal flow after the kills: the runner until the queue is empty
/// (jobs the crash guard set aside after repeated kills are put back, as
/// an admin would after reading the log).  Returns the number set aside.
fn drain(r: &Root) -> usize {
    let mut set_aside = 0;
    for _ in 0..20 {
        for f in r.queue_files() {
            if let Some(id) = f.strip_prefix("Qf") {
                set_aside += 1;
                std::fs::rename(r.queue().join(&f), r.queue().join(format!("qf{id}"))).unwrap();
            }
        }
        let o = r.qrun(&["-q"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        if r.queue_files().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    set_aside
}

#[test]
fn sigkill_at_random_instants_loses_and_corrupts_nothing() {
    let kill_points = env_number("TORTURE_KILL_POINTS", 300) as usize;
    let seed = 0x7017 ^ std::process::id() as u64;
    let mut rng = Lcg(seed);
    let r = torture_root("torture");
    let mut ledger = Ledger::default();
    let mut kills: BTreeMap<&str, (usize, usize)> = BTreeMap::new(); // tried, killed mid-way
    let mut life: HashMap<&str, Lifetime> = HashMap::new();
    for k in ["sendmail", "qrun", "deliver", "pop3d"] {
        life.insert(k, Lifetime(Duration::from_millis(20)));
    }
    let mut n = 0usize;
    let mut tried = 0usize;
    let started = Instant::now();
    let note = |kills: &mut BTreeMap<&str, (usize, usize)>,
                life: &mut HashMap<&'static str, Lifetime>,
                what: &'static str,
                killed: bool| {
        let e = kills.entry(what).or_default();
        e.0 += 1;
        if killed {
            e.1 += 1;
            life.get_mut(what).unwrap().killed();
        } else {
            life.get_mut(what).unwrap().finished_first();
        }
    };
    while tried < kill_points {
        // Submissions, some killed.
        for _ in 0..4 {
            n += 1;
            let tag = format!("t{n}");
            let rcpt = USERS[rng.below(2) as usize];
            let m = message(&tag, 20 + rng.below(400) as usize);
            ledger.submitted += 1;
            let child = spawn_group(r.cmd("sendmail").args(["-i", rcpt]), Some(&m));
            let delay = life["sendmail"].pick(&mut rng);
            let rc = kill_after(child, delay);
            match rc {
                Some(0) => drop(ledger.accepted.insert(tag)),
                Some(_) => drop(ledger.refused.insert(tag)),
                None => drop(ledger.uncertain.insert(tag)),
            }
            note(&mut kills, &mut life, "sendmail", rc.is_none());
            tried += 1;
        }
        // A standalone delivery, maybe killed.
        n += 1;
        let tag = format!("d{n}");
        let rcpt = USERS[rng.below(2) as usize];
        let m = message(&tag, 20 + rng.below(2000) as usize);
        ledger.submitted += 1;
        let child = spawn_group(
            r.cmd("deliver").args(["-f", "dave@test.example", rcpt]),
            Some(&m),
        );
        let rc = kill_after(child, life["deliver"].pick(&mut rng));
        match rc {
            Some(0) => drop(ledger.accepted.insert(tag)),
            // 75: deferred (a dead writer's lock): the caller would retry.
            Some(_) => drop(ledger.refused.insert(tag)),
            None => drop(ledger.uncertain.insert(tag)),
        }
        note(&mut kills, &mut life, "deliver", rc.is_none());
        tried += 1;
        // The queue runner, maybe killed.
        let child = spawn_group(r.cmd("qrun").arg("-q"), None);
        let rc = kill_after(child, life["qrun"].pick(&mut rng));
        note(&mut kills, &mut life, "qrun", rc.is_none());
        tried += 1;
        // A POP3 client fetching and deleting some of alice's mail.
        if rng.below(2) == 0 {
            hand_to_users(&r);
            let mut pop = PopSession::start(&r);
            let delay = life["pop3d"].pick(&mut rng);
            let pid = pop.child.id() as i32;
            let done = Arc::new(AtomicBool::new(false));
            let killer = {
                let done = done.clone();
                std::thread::spawn(move || {
                    let t = Instant::now();
                    while t.elapsed() < delay {
                        if done.load(Ordering::SeqCst) {
                            return false;
                        }
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    // SAFETY: the group of the pop3d this test started.
                    unsafe { libc::killpg(pid, libc::SIGKILL) };
                    true
                })
            };
            let mut seed = rng.next();
            let (deleted, _quit) = fetch(&mut pop, "alice", &mut |_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                (seed >> 40).is_multiple_of(3)
            });
            done.store(true, Ordering::SeqCst);
            let was_killed = killer.join().unwrap();
            let _ = pop.sock.shutdown(std::net::Shutdown::Both);
            let _ = pop.child.wait();
            ledger.popped.extend(deleted);
            note(&mut kills, &mut life, "pop3d", was_killed);
            tried += 1;
        }
    }
    // The normal flow: a little later (a killed sendmail's `tf` is taken
    // for a leftover two seconds after it was last touched), a message
    // for each user, and queue runs until the queue is empty.
    std::thread::sleep(Duration::from_millis(2100));
    for u in USERS {
        let tag = format!("last-{u}");
        let o = r.sendmail(&["-i", u], &message(&tag, 3));
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        ledger.accepted.insert(tag);
        ledger.submitted += 1;
    }
    let set_aside = drain(&r);
    let left = queue_leftovers(&r);
    let (found, maildir_tmp, bounces) = survey(&r);
    let v = judge(&ledger, &found);
    let killed_total: usize = kills.values().map(|k| k.1).sum();
    eprintln!(
        "torture: seed {seed:#x}, {:.1}s\n\
         kill points: {tried} tried, {killed_total} killed mid-way ({})\n\
         messages: {} submitted / {} accepted / {} delivered / {bounces} bounced / {} lost / {} duplicated \
         ({} killed submissions: {} delivered)\n\
         mailboxes: 2 checked / {} corrupt entries ({} messages read; Maildir tmp leftovers {maildir_tmp})\n\
         queue: {} leftovers after the next run; {set_aside} jobs set aside by the crash guard and put back",
        started.elapsed().as_secs_f64(),
        kills
            .iter()
            .map(|(k, (t, x))| format!("{k} {x}/{t}"))
            .collect::<Vec<_>>()
            .join(", "),
        ledger.submitted,
        ledger.accepted.len(),
        v.delivered,
        v.lost.len(),
        v.duplicated.len(),
        ledger.uncertain.len(),
        ledger
            .uncertain
            .iter()
            .filter(|t| found.copies.contains_key(*t))
            .count(),
        found.corrupt.len(),
        found.messages,
        left.len(),
    );
    assert!(
        found.corrupt.is_empty(),
        "corrupt: {:#?}\nwhat the locks and repairs logged:\n{}",
        found.corrupt,
        r.log()
            .lines()
            .filter(
                |l| ["lock", "repair", "removed", "compaction", "login", "QUIT"]
                    .iter()
                    .any(|w| l.contains(w))
            )
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(v.lost.is_empty(), "lost: {:?}\n{}", v.lost, r.log());
    assert!(
        v.phantom.is_empty(),
        "appeared without being accepted: {:?}",
        v.phantom
    );
    assert!(left.is_empty(), "queue leftovers: {left:?}");
    assert_eq!(maildir_tmp, 0, "Maildir tmp/ leftovers after a delivery");
    assert!(
        r.queued_ids().is_empty(),
        "queue not drained: {:?}",
        r.queue_files()
    );
    assert_eq!(bounces, 0, "bounces to the sender");
    assert!(v.duplicated.is_empty(), "duplicated: {:?}", v.duplicated);
}

#[test]
fn a_soak_of_submitters_runners_deliveries_and_pop3_clients_counts_exactly() {
    let seconds = env_number("TORTURE_SOAK_SECONDS", 60);
    let r = Arc::new(torture_root("soak"));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicUsize::new(0));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut threads = Vec::new();
    // 16 submitters.
    for i in 0..16 {
        let (r, stop, counter, ledger) = (r.clone(), stop.clone(), counter.clone(), ledger.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let tag = format!("s{n}");
                let rcpt = USERS[(n + i) % 2];
                let o = r.sendmail(&["-i", rcpt], &message(&tag, 10 + n % 300));
                let mut l = ledger.lock().unwrap();
                l.submitted += 1;
                if code(&o) == 0 {
                    l.accepted.insert(tag);
                } else {
                    l.refused.insert(tag);
                }
            }
        }));
    }
    // 8 deliveries.
    for i in 0..8 {
        let (r, stop, counter, ledger) = (r.clone(), stop.clone(), counter.clone(), ledger.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let tag = format!("d{n}");
                let rcpt = USERS[(n + i) % 2];
                let o = r.deliver(
                    &["-f", "dave@test.example", rcpt],
                    &message(&tag, 10 + n % 300),
                );
                let mut l = ledger.lock().unwrap();
                l.submitted += 1;
                match code(&o) {
                    0 => drop(l.accepted.insert(tag)),
                    // A busy mailbox defers: the caller keeps it and
                    // retries, so it is not lost; here it is refused.
                    _ => drop(l.refused.insert(tag)),
                }
            }
        }));
    }
    // 4 queue runners.
    for _ in 0..4 {
        let (r, stop) = (r.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let o = r.qrun(&["-q"]);
                assert_eq!(code(&o), 0, "{}", stderr(&o));
            }
        }));
    }
    // 2 POP3 clients deleting every other message of both users.
    let popped = Arc::new(Mutex::new(Vec::new()));
    for i in 0..2 {
        let (r, stop, popped) = (r.clone(), stop.clone(), popped.clone());
        threads.push(std::thread::spawn(move || {
            let mut k = 0u64;
            let mut sessions = 0;
            while !stop.load(Ordering::SeqCst) {
                hand_to_users(&r);
                let mut pop = PopSession::start(&r);
                let (deleted, quit) = fetch(&mut pop, USERS[(sessions + i) % 2], &mut |_| {
                    k += 1;
                    k.is_multiple_of(2)
                });
                let _ = pop.child.wait();
                sessions += 1;
                // [IN-USE] (the other client) ends a session early, and a
                // QUIT that cannot lock the busy mailbox in time answers
                // -ERR and deletes nothing: then what it marked must still
                // be there (the final count checks it).
                if quit {
                    popped.lock().unwrap().extend(deleted);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let set_aside = drain(&r);
    let mut ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
    ledger.popped.extend(popped.lock().unwrap().drain(..));
    let (found, _tmp, bounces) = survey(&r);
    let v = judge(&ledger, &found);
    // Every message deleted over POP3 must really be gone.
    let popped_present: Vec<&String> = ledger
        .popped
        .iter()
        .filter(|t| found.copies.contains_key(*t))
        .collect();
    eprintln!(
        "soak: {seconds}s, 16 submitters, 4 queue runners, 8 deliveries, 2 POP3 clients\n\
         messages: {} submitted / {} accepted / {} refused / {} delivered ({} of them fetched and deleted over POP3) / \
         {bounces} bounced / {} lost / {} duplicated\n\
         mailboxes: 2 checked / {} corrupt entries; {set_aside} jobs set aside",
        ledger.submitted,
        ledger.accepted.len(),
        ledger.refused.len(),
        v.delivered,
        ledger.popped.len(),
        v.lost.len(),
        v.duplicated.len(),
        found.corrupt.len(),
    );
    assert!(found.corrupt.is_empty(), "corrupt: {:#?}", found.corrupt);
    assert!(v.lost.is_empty(), "lost: {:?}", v.lost);
    assert!(v.duplicated.is_empty(), "duplicated: {:?}", v.duplicated);
    assert!(v.phantom.is_empty(), "phantoms: {:?}", v.phantom);
    assert!(
        popped_present.is_empty(),
        "deleted but still there: {popped_present:?}"
    );
    assert_eq!(set_aside, 0);
    assert_eq!(bounces, 0);
    assert!(queue_leftovers(&r).is_empty());
    assert!(ledger.accepted.len() > 16, "the soak did some work");
}
