//! Tests of the queue directory's files, locks and crash states.

use super::*;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mr-spool-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn draft_commit_and_drop() {
    let d = tmpdir("draft");
    let q = Queue::new(&d);
    let mut ids = IdGenerator::new();
    let mut draft = q.create(&mut ids, 1795238453).unwrap();
    draft.data().write_all(b"body\n").unwrap();
    let mut env = Envelope {
        sender: "root".into(),
        ..Default::default()
    };
    let id = draft.commit(&mut env).unwrap();
    assert_eq!(names(&d), [format!("df{id}"), format!("qf{id}")]);
    assert!(env.df_inode.is_some());
    assert_eq!(q.read(&id).unwrap().sender, "root");

    // An abandoned draft leaves nothing.
    let draft = q.create(&mut ids, 1795238453).unwrap();
    drop(draft);
    assert_eq!(names(&d).len(), 2);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_job_committed_held_is_listed_held_and_released_without_its_reason() {
    let d = tmpdir("held");
    let q = Queue::new(&d);
    let mut draft = q.create(&mut IdGenerator::new(), 1).unwrap();
    draft.data().write_all(b"x").unwrap();
    let mut env = Envelope {
        sender: "a".into(),
        quarantine: Some("held: user www-data over 200 messages/hour".into()),
        ..Default::default()
    };
    let id = draft.commit_held(&mut env).unwrap();
    assert_eq!(names(&d), [format!("df{id}"), format!("hf{id}")]);
    assert!(q.ids().unwrap().is_empty(), "no runner takes it");
    assert_eq!(q.ids_with("hf").unwrap(), std::slice::from_ref(&id));
    assert!(q.release(&id).unwrap());
    assert_eq!(names(&d), [format!("df{id}"), format!("qf{id}")]);
    assert_eq!(q.read(&id).unwrap().quarantine, None);
    fs::remove_dir_all(&d).unwrap();
}

/// A job with a one-byte message, committed to `q`.
fn queued(q: &Queue) -> QueueId {
    let mut draft = q.create(&mut IdGenerator::new(), 1).unwrap();
    draft.data().write_all(b"x").unwrap();
    draft
        .commit(&mut Envelope {
            sender: "a".into(),
            ..Default::default()
        })
        .unwrap()
}

#[test]
fn a_locked_job_is_not_locked_twice_and_rewrites_keep_the_lock() {
    let d = tmpdir("lock");
    let q = Queue::new(&d);
    let id = queued(&q);
    let mut job = q.lock(&id).unwrap().expect("lock");
    assert!(q.lock(&id).unwrap().is_none());
    assert!(q.is_locked(&id));
    let mut env = job.envelope().unwrap();
    env.attempts = 1;
    job.rewrite(&env).unwrap();
    assert!(q.lock(&id).unwrap().is_none(), "lock follows the new file");
    assert_eq!(q.read(&id).unwrap().attempts, 1);
    job.finish().unwrap();
    assert!(names(&d).is_empty());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_reader_is_waited_out_but_a_worker_is_not() {
    let d = tmpdir("peek");
    let q = Queue::new(&d);
    let id = queued(&q);
    // mailq reading the job (its shared lock, held a moment longer
    // than usual): the run still gets the job.
    let reader = File::open(q.path("qf", &id)).unwrap();
    // SAFETY: plain flock on a valid descriptor.
    assert_eq!(unsafe { libc::flock(reader.as_raw_fd(), libc::LOCK_SH) }, 0);
    let done = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(reader);
    });
    let job = q.lock(&id).unwrap().expect("taken once the reader is done");
    done.join().unwrap();
    // A runner working on it: skipped at once, without the wait.
    let t = std::time::Instant::now();
    assert!(q.lock(&id).unwrap().is_none());
    assert!(t.elapsed() < PEEK_WAIT);
    drop(job);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn noreplace_rename_refuses_to_clobber() {
    let d = tmpdir("rename");
    fs::write(d.join("a"), "a").unwrap();
    fs::write(d.join("b"), "b").unwrap();
    let e = rename_noreplace(&d.join("a"), &d.join("b")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(fs::read_to_string(d.join("b")).unwrap(), "b");
    fs::remove_dir_all(&d).unwrap();
}
