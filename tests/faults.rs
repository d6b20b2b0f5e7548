//! Fault injection (issue 9, item 2): a file system that fills up at
//! every write of the queue and the mailbox paths, a read-only queue, a
//! missing mail spool.  Each gives the documented temporary failure
//! (sendmail exits 75, a delivery is deferred 4.x) and loses nothing:
//! once the fault is gone, every accepted message arrives exactly once.
//!
//! The small file systems are tmpfs mounts in a private mount namespace
//! (`unshare --mount`, with `--map-root-user` when not root), filled to a
//! different level for each attempt so that the failure lands on a
//! different write (tmpfs counts 4 KiB pages).  EIO comes from an
//! LD_PRELOAD shim compiled by the test with cc, failing the Nth write or
//! fsync (skipped where there is no C compiler, a failure under CI).

mod common;
use common::fake_mx::FakeMx;
use common::*;

use std::fs;
use std::process::Command;

use mailroom::queue::Envelope;

/// A root whose users bob (mbox) and eve (Maildir) are us.
fn root(name: &str) -> Root {
    let r = Root::with_users(name, &["bob", "eve"]);
    r.write("etc/mail/aliases", "postmaster: bob\n");
    r.write(
        "etc/mail/mailroom.conf",
        "hostname = test.example\nlog = /var/log/mail.log\nmin_free_space = 0\n\
         delivery_mode = queue\nprobe_interfaces = no\n",
    );
    fs::create_dir_all(r.path("home/bob")).unwrap();
    r
}

/// Run `script` in a private mount namespace ([`in_mount_namespace`]);
/// false when the test is skipped for want of one.
fn in_namespace(r: &Root, script: &str) -> bool {
    let Some(o) = in_mount_namespace(r, script) else {
        return false;
    };
    assert_eq!(code(&o), 0, "namespace script: {}", stderr(&o));
    true
}

/// A message of about `kib` KiB whose body names `tag` on every line.
fn message(rcpt: &str, tag: &str, kib: usize) -> Vec<u8> {
    let mut m = format!("To: {rcpt}\nSubject: {tag}\n\n").into_bytes();
    for i in 0..kib * 16 {
        m.extend_from_slice(
            format!("{tag} line {i:06} .......................................\n").as_bytes(),
        );
    }
    m
}

fn count(hay: &[u8], needle: &str) -> usize {
    hay.windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}

/// Every message the shell loop in a namespace submitted with
/// `sendmail -t` to a nearly full queue: exit 0 and a complete job (its
/// data file the whole body), or exit 75 with one line and nothing left.
#[test]
fn a_queue_filling_up_at_every_write_keeps_a_whole_job_or_none() {
    let r = root("fault-queue");
    let levels = 24;
    for n in 0..levels {
        fs::write(
            r.path(&format!("m{n}")),
            message("bob@test.example", &format!("q{n}"), 40),
        )
        .unwrap();
    }
    // A 128 KiB tmpfs over var/spool holding the queue and a filler that
    // leaves `n` pages free; after each try the queue is moved out.
    let script = format!(
        "set -u; R={root}; S=$R/var/spool; \
         mount -t tmpfs -o size=128k tmpfs $S || exit 99; mkdir -m 700 $S/mqueue; \
         for n in $(seq 0 {last}); do \
           dd if=/dev/zero of=$S/filler bs=4096 count=$((32 - n)) 2>/dev/null; \
           {sm} -t -i < $R/m$n > /dev/null 2> $R/err$n; echo $? > $R/rc$n; \
           mkdir $R/out$n; mv $S/mqueue/* $R/out$n/ 2>/dev/null; rm -f $S/filler; \
         done",
        root = r.dir.display(),
        last = levels - 1,
        sm = bin("sendmail").display(),
    );
    if !in_namespace(&r, &script) {
        return;
    }
    let (mut ok, mut full) = (0, 0);
    for n in 0..levels {
        let rc = r.read_strict(&format!("rc{n}"));
        let err = r.read_strict(&format!("err{n}"));
        let files: Vec<String> = fs::read_dir(r.path(&format!("out{n}")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        match rc.trim() {
            "0" => {
                ok += 1;
                assert_eq!(files.len(), 2, "level {n}: {files:?}");
                let qf = files.iter().find(|f| f.starts_with("qf")).unwrap();
                let id = &qf[2..];
                let env = Envelope::parse(&fs::read(r.path(&format!("out{n}/{qf}"))).unwrap())
                    .unwrap_or_else(|e| panic!("level {n}: qf torn: {e}"));
                assert_eq!(env.recipients[0].addr, "bob@test.example");
                let df = fs::read(r.path(&format!("out{n}/df{id}"))).unwrap();
                let m = fs::read(r.path(&format!("m{n}"))).unwrap();
                assert!(m.ends_with(&df), "level {n}: df is not the whole body");
            }
            "75" => {
                full += 1;
                assert_eq!(err.lines().count(), 1, "level {n}: {err}");
                assert!(err.contains("No space left on device"), "level {n}: {err}");
                assert!(files.is_empty(), "level {n}: left {files:?}");
            }
            other => panic!("level {n}: exit {other}: {err}"),
        }
    }
    eprintln!("queue ENOSPC: {levels} fill levels, {ok} queued whole, {full} refused with 75");
    assert!(ok > 0 && full > 0, "the levels must reach both sides");
}

/// A queued message delivered by `qrun` to an mbox and a Maildir on a
/// nearly full file system, for each level of free space: delivered
/// whole, or deferred (4.3.0) with the mailbox as it was; then, with room
/// again, it arrives exactly once.
#[test]
fn mailboxes_filling_up_at_every_write_defer_and_lose_nothing() {
    let r = root("fault-mbox");
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(r.path(&format!("home/eve/Maildir/{sub}"))).unwrap();
    }
    let levels = 10;
    // An mbox that must never change on a failure.
    let before = b"From x@example.org  Sat Nov 21 05:00:00 2026\nSubject: old\n\nold\n\n".to_vec();
    fs::write(r.path("var/mail/bob"), &before).unwrap();
    for n in 0..levels {
        for who in ["bob", "eve"] {
            fs::write(
                r.path(&format!("m-{who}{n}")),
                message(who, &format!("{who}{n}"), 20),
            )
            .unwrap();
        }
    }
    // var/mail and eve's home on 128 KiB tmpfs mounts (32 pages).  Per
    // level n: queue one message for each, fill all but n pages, run the
    // queue, keep the mailboxes; empty the filler, run the queue again,
    // keep the mailboxes, and put them back as they were for the next.
    let script = format!(
        "set -u; R={root}; M=$R/var/mail; E=$R/home/eve; \
         cp -a $M $R/mail.orig; cp -a $E $R/eve.orig; \
         mount -t tmpfs -o size=128k tmpfs $M || exit 99; \
         mount -t tmpfs -o size=128k tmpfs $E || exit 99; \
         cp -a $R/eve.orig/. $E/; \
         for n in $(seq 0 {last}); do \
           cp $R/mail.orig/bob $M/bob; \
           {sm} -t -i < $R/m-bob$n || exit 1; {sm} -t -i < $R/m-eve$n || exit 1; \
           dd if=/dev/zero of=$M/.filler bs=4096 count=$((32 - 1 - n)) 2>/dev/null; \
           dd if=/dev/zero of=$E/.filler bs=4096 count=$((32 - n)) 2>/dev/null; \
           {qrun} -q > /dev/null 2>> $R/qerr; \
           cp $M/bob $R/bob.full$n; ls $E/Maildir/new $E/Maildir/tmp > $R/eve.full$n; \
           rm -f $M/.filler $E/.filler; \
           {qrun} -qf > /dev/null 2>> $R/qerr; \
           cp $M/bob $R/bob.after$n; mkdir $R/eve.after$n; \
           cp $E/Maildir/new/* $R/eve.after$n/ 2>/dev/null; \
           ls $E/Maildir/tmp > $R/eve.tmp$n; rm -f $E/Maildir/new/*; \
           ls $R/var/spool/mqueue > $R/queue$n; \
         done",
        root = r.dir.display(),
        last = levels - 1,
        sm = bin("sendmail").display(),
        qrun = bin("qrun").display(),
    );
    if !in_namespace(&r, &script) {
        return;
    }
    let log = r.log();
    let (mut whole, mut deferred) = (0, 0);
    for n in 0..levels {
        let (b, e) = (format!("Subject: bob{n}\n"), format!("Subject: eve{n}\n"));
        // On the full file system: the mbox as it was, or grown by the
        // whole message.
        let full = fs::read(r.path(&format!("bob.full{n}"))).unwrap();
        assert!(
            full.starts_with(&before),
            "level {n}: the mbox was rewritten"
        );
        if full.len() == before.len() {
            deferred += 1;
        } else {
            whole += 1;
            assert_eq!(count(&full, &b), 1, "level {n}");
            assert_eq!(
                count(&full, &format!("bob{n} line 000319")),
                1,
                "level {n}: partial"
            );
        }
        // Afterwards: exactly once each, whole, no Maildir leftovers.
        let after = fs::read(r.path(&format!("bob.after{n}"))).unwrap();
        assert!(after.starts_with(&before));
        assert_eq!(count(&after, &b), 1, "level {n}: bob");
        assert_eq!(
            count(&after, &format!("bob{n} line 000319")),
            1,
            "level {n}: bob whole"
        );
        let mut md = Vec::new();
        let mut files = 0;
        for e in fs::read_dir(r.path(&format!("eve.after{n}"))).unwrap() {
            md.extend(fs::read(e.unwrap().path()).unwrap());
            files += 1;
        }
        assert_eq!(files, 1, "level {n}: eve's new/");
        assert_eq!(count(&md, &e), 1, "level {n}: eve");
        assert_eq!(
            count(&md, &format!("eve{n} line 000319")),
            1,
            "level {n}: eve whole"
        );
        let tmp = r.read_strict(&format!("eve.tmp{n}"));
        assert!(
            tmp.trim().is_empty(),
            "level {n}: Maildir tmp/ leftovers: {tmp}"
        );
        let q = r.read_strict(&format!("queue{n}"));
        assert!(!q.contains("qf"), "level {n}: still queued: {q}");
    }
    assert!(
        deferred > 0 && whole > 0,
        "the levels must reach both sides"
    );
    assert!(log.contains("dsn=4.3.0, stat=Deferred"), "{log}");
    assert!(!log.contains("DSN"), "no bounce for a full disk: {log}");
    eprintln!(
        "mailbox ENOSPC: {levels} fill levels x 2 mailboxes: mbox {whole} whole, {deferred} deferred; 0 lost"
    );
}

/// A queue on a read-only file system: sendmail refuses with a temporary
/// failure and one line; the runner leaves the queued job as it was.
#[test]
fn a_read_only_queue_refuses_with_75_and_keeps_queued_mail() {
    let r = root("fault-ro");
    let o = r.sendmail(&["-i", "bob"], b"Subject: before\n\nqueued before\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = r.only_id();
    let qf_before = r.qf(&id);
    let script = format!(
        "set -u; R={root}; Q=$R/var/spool/mqueue; \
         mount --bind $Q $Q && mount -o remount,ro,bind $Q || exit 99; \
         printf 'Subject: ro\\n\\nx\\n' | {sm} -i bob > /dev/null 2> $R/err; echo $? > $R/rc; \
         {qrun} -q > /dev/null 2> $R/qerr; echo $? > $R/qrc; ls $Q > $R/left",
        root = r.dir.display(),
        sm = bin("sendmail").display(),
        qrun = bin("qrun").display(),
    );
    if !in_namespace(&r, &script) {
        return;
    }
    let rc = r.read_strict("rc");
    let err = r.read_strict("err");
    assert_eq!(rc.trim(), "75", "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    // The runner could record nothing, so it delivered nothing (a copy
    // it cannot mark as sent would go out again): the job is untouched.
    assert_eq!(r.qf(&id), qf_before);
    assert!(
        !r.path("var/mail/bob").exists(),
        "delivered without a record"
    );
    assert!(
        r.log()
            .contains("read-only file system: no delivery attempted"),
        "{}",
        r.log()
    );
    let o = r.qrun(&["-q"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mbox = r.read_strict("var/mail/bob");
    assert_eq!(mbox.matches("Subject: before").count(), 1, "{mbox}");
    assert!(r.queued_ids().is_empty(), "{:?}", r.queue_files());
}

/// No /var/mail at all: the delivery is deferred (4.x), the message stays
/// queued, and arrives once the spool is back.
#[test]
fn a_missing_mail_spool_defers_and_the_message_waits() {
    let r = root("fault-nospool");
    fs::remove_dir(r.path("var/mail")).unwrap();
    let o = r.sendmail(&["-i", "bob"], b"Subject: spool\n\nwaiting\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = r.only_id();
    let o = r.qrun(&["-q"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        r.queued_ids(),
        std::slice::from_ref(&id),
        "the message must wait"
    );
    let log = r.log();
    assert!(log.contains("stat=Deferred"), "{log}");
    assert!(!log.contains("DSN"), "no bounce for a missing spool: {log}");
    fs::create_dir(r.path("var/mail")).unwrap();
    let o = r.qrun(&["-qf"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mbox = r.read_strict("var/mail/bob");
    assert_eq!(mbox.matches("Subject: spool").count(), 1);
    assert!(r.queued_ids().is_empty());
}

/// A remote server that takes the whole message after DATA and then never
/// answers the final dot: the runner gives up after its (capped) timeout,
/// defers with a 4.x status, keeps the job, and delivers it on the next
/// run to a server that answers.
#[test]
fn a_remote_server_stalling_mid_data_defers_and_loses_nothing() {
    let r = root("fault-stall");
    let conf = r.read_strict("etc/mail/mailroom.conf");
    r.write(
        "etc/mail/mailroom.conf",
        &format!("{conf}smtp_timeout_cap = 2s\nsmtp_connect_timeout = 2s\n"),
    );
    let stalled = FakeMx::stalling_after_data();
    r.write(
        "etc/mail/mailertable",
        &format!("remote.test smtp:[127.0.0.1]:{}\n", stalled.port),
    );
    let o = r.sendmail(
        &["-i", "user@remote.test"],
        b"Subject: stalled\n\nthe body\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = r.only_id();
    let t = std::time::Instant::now();
    let o = r.qrun(&["-q"]);
    let took = t.elapsed();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stalled.transactions().len(), 1, "the server got the data");
    assert!(
        took < std::time::Duration::from_secs(20),
        "the runner hung for {took:?}"
    );
    assert_eq!(
        r.queued_ids(),
        std::slice::from_ref(&id),
        "the job must be kept"
    );
    let log = r.log();
    assert!(
        log.contains("dsn=4.") && log.contains("stat=Deferred"),
        "{log}"
    );
    assert!(!log.contains("DSN"), "no bounce for a timeout: {log}");
    // The remote end is fixed: the next run delivers it.
    let good = FakeMx::start();
    r.write(
        "etc/mail/mailertable",
        &format!("remote.test smtp:[127.0.0.1]:{}\n", good.port),
    );
    let o = r.qrun(&["-qf"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = good.transactions();
    assert_eq!(got.len(), 1);
    assert!(got[0].data.contains("the body"));
    assert!(r.queued_ids().is_empty(), "{:?}", r.queue_files());
    eprintln!("stalled mid-DATA: deferred after {took:?}, delivered on the next run");
}

/// An LD_PRELOAD shim, compiled here with cc, that fails the Nth write,
/// writev or pwrite on a regular file, or fsync/fdatasync of a file or
/// directory, with EIO
/// (`FAULT_AT=N`), and creates `FAULT_FIRED` when it did.  None when
/// there is no C compiler.
fn eio_shim(r: &Root) -> Option<std::path::PathBuf> {
    let src = r.path("eio.c");
    let so = r.path("eio.so");
    fs::write(
        &src,
        r#"#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
static long calls;
static int fail_now(int fd, int dir_too) {
    struct stat st;
    const char *at = getenv("FAULT_AT");
    if (!at || fstat(fd, &st) != 0) return 0;
    if (!S_ISREG(st.st_mode) && !(dir_too && S_ISDIR(st.st_mode))) return 0;
    if (++calls != atol(at)) return 0;
    const char *fired = getenv("FAULT_FIRED");
    if (fired) { int m = open(fired, O_CREAT | O_WRONLY, 0644); if (m >= 0) close(m); }
    errno = EIO;
    return 1;
}
#define REAL(name, ...) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))(__VA_ARGS__)
ssize_t write(int fd, const void *b, size_t n) { return fail_now(fd, 0) ? -1 : REAL(write, fd, b, n); }
ssize_t writev(int fd, const struct iovec *v, int n) { return fail_now(fd, 0) ? -1 : REAL(writev, fd, v, n); }
ssize_t pwrite64(int fd, const void *b, size_t n, off_t o) { return fail_now(fd, 0) ? -1 : REAL(pwrite64, fd, b, n, o); }
int fsync(int fd) { return fail_now(fd, 1) ? -1 : REAL(fsync, fd); }
int fdatasync(int fd) { return fail_now(fd, 1) ? -1 : REAL(fdatasync, fd); }
"#,
    )
    .unwrap();
    let o = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .output();
    match o {
        Ok(o) if o.status.success() => Some(so),
        Ok(o) => {
            skip(&format!("a working C compiler (cc failed: {})", stderr(&o)));
            None
        }
        Err(e) => {
            skip(&format!("a C compiler, cc (package gcc): {e}"));
            None
        }
    }
}

/// EIO at each write and fsync of a submission, one after another: exit 0
/// with a whole job, or a temporary failure (75) with one line and
/// nothing left in the queue.
#[test]
fn eio_at_every_write_of_a_submission_keeps_a_whole_job_or_none() {
    let r = root("fault-eio-queue");
    let Some(shim) = eio_shim(&r) else { return };
    let msg = message("bob@test.example", "eio", 24);
    let fired = r.path("fired");
    let (mut points, mut ok) = (0, 0);
    for n in 1..200 {
        let _ = fs::remove_file(&fired);
        let o = run_with_input(
            r.cmd("sendmail")
                .args(["-t", "-i"])
                .env("LD_PRELOAD", &shim)
                .env("FAULT_AT", n.to_string())
                .env("FAULT_FIRED", &fired),
            &msg,
        );
        if !fired.exists() {
            assert_eq!(code(&o), 0, "{}", stderr(&o));
            break;
        }
        points += 1;
        let err = stderr(&o);
        match code(&o) {
            0 => {
                // The failed write was not the message's (the log, say).
                ok += 1;
                let id = r.only_id();
                Envelope::parse(r.qf(&id).as_bytes()).unwrap();
                assert!(msg.ends_with(&r.df(&id)), "write {n}: df not whole");
            }
            75 => {
                assert_eq!(err.lines().count(), 1, "write {n}: {err}");
                assert!(err.contains("I/O error"), "write {n}: {err}");
                let left = r.queue_files();
                assert!(left.is_empty(), "write {n}: left {left:?}");
            }
            c => panic!("write {n}: exit {c}: {err}"),
        }
        for f in r.queue_files() {
            fs::remove_file(r.queue().join(f)).unwrap();
        }
    }
    assert!(points > 2, "the shim never fired");
    eprintln!("queue EIO: {points} writes/fsyncs failed one at a time, {ok} harmless, 0 torn jobs");
}

/// EIO at each write and fsync of a local delivery (mbox and Maildir):
/// delivered once, or deferred 4.x with the mailbox as it was.
#[test]
fn eio_at_every_write_of_a_delivery_defers_with_the_mailbox_as_it_was() {
    let r = root("fault-eio-mbox");
    let Some(shim) = eio_shim(&r) else { return };
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(r.path(&format!("home/eve/Maildir/{sub}"))).unwrap();
    }
    let before = b"From x@example.org  Sat Nov 21 05:00:00 2026\nSubject: old\n\nold\n\n".to_vec();
    let fired = r.path("fired");
    let mut points = 0;
    for who in ["bob", "eve"] {
        let msg = message(who, "eio", 24);
        for n in 1..200 {
            let _ = fs::remove_file(&fired);
            fs::write(r.path("var/mail/bob"), &before).unwrap();
            let _ = fs::remove_file(r.path("var/mail/bob.lock"));
            for sub in ["new", "tmp"] {
                for e in fs::read_dir(r.path(&format!("home/eve/Maildir/{sub}"))).unwrap() {
                    fs::remove_file(e.unwrap().path()).unwrap();
                }
            }
            let o = run_with_input(
                r.cmd("deliver")
                    .args(["-q", who])
                    .env("LD_PRELOAD", &shim)
                    .env("FAULT_AT", n.to_string())
                    .env("FAULT_FIRED", &fired),
                &msg,
            );
            let out = stdout(&o);
            let mbox = fs::read(r.path("var/mail/bob")).unwrap();
            let mut md = Vec::new();
            for e in fs::read_dir(r.path("home/eve/Maildir/new")).unwrap() {
                md.extend(fs::read(e.unwrap().path()).unwrap());
            }
            let tmp = fs::read_dir(r.path("home/eve/Maildir/tmp"))
                .unwrap()
                .count();
            let copies = count(if who == "bob" { &mbox } else { &md }, "eio line 000383");
            let done = fired.exists();
            match code(&o) {
                0 => assert_eq!(copies, 1, "{who} write {n}: {out}"),
                75 => {
                    assert!(
                        out.starts_with("defer\t") && out.contains("\t4."),
                        "{who} write {n}: {out}"
                    );
                    assert_eq!(copies, 0, "{who} write {n}: deferred but delivered");
                }
                c => panic!("{who} write {n}: exit {c}: {out} {}", stderr(&o)),
            }
            assert!(mbox.starts_with(&before), "{who} write {n}: mbox rewritten");
            if code(&o) != 0 || who == "eve" {
                assert_eq!(mbox, before, "{who} write {n}: mbox changed");
            }
            assert_eq!(tmp, 0, "{who} write {n}: Maildir tmp/ leftovers");
            if !done {
                assert_eq!(code(&o), 0);
                break;
            }
            points += 1;
        }
    }
    assert!(points > 2, "the shim never fired");
    eprintln!("mailbox EIO: {points} writes/fsyncs failed one at a time, 0 torn or lost");
}
