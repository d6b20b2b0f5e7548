use super::*;
use crate::config::Paths;
use crate::resolve::transport::Transports;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// How the fake server answers one session.
#[derive(Clone)]
struct Script {
    /// RCPT replies by the address's first letters; 250 otherwise.
    rcpt: Vec<(&'static str, &'static str)>,
    /// The replies after the final dot, one per accepted recipient.
    data: Vec<&'static str>,
    /// Hang up after sending this many of `data`.
    cut_after: Option<usize>,
}

/// A fake LMTP server on a UNIX socket, one session per script; what
/// it was sent, one list of lines per session.
fn fake_server(dir: &Path, scripts: Vec<Script>) -> (PathBuf, Arc<Mutex<Vec<Vec<String>>>>) {
    let path = dir.join("lmtp");
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for script in scripts {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            let mut lines = Vec::new();
            w.write_all(b"220 fake LMTP\r\n").unwrap();
            let mut in_data = false;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end().to_string();
                if in_data {
                    if l == "." {
                        in_data = false;
                        let n = script.cut_after.unwrap_or(script.data.len());
                        for reply in &script.data[..n] {
                            w.write_all(format!("{reply}\r\n").as_bytes()).unwrap();
                        }
                        if script.cut_after.is_some() {
                            lines.push("CUT".to_string());
                            break;
                        }
                    }
                    continue;
                }
                lines.push(l.clone());
                let up = l.to_ascii_uppercase();
                let reply = if up.starts_with("LHLO") {
                    "250-fake\r\n250-PIPELINING\r\n250 8BITMIME"
                } else if let Some(a) = up.strip_prefix("RCPT TO:<") {
                    script
                        .rcpt
                        .iter()
                        .find(|(p, _)| a.starts_with(&p.to_ascii_uppercase()))
                        .map_or("250 2.1.5 OK", |(_, r)| r)
                } else if up == "DATA" {
                    in_data = true;
                    "354 go"
                } else if up == "QUIT" {
                    // Recorded before the client can see the end.
                    log.lock().unwrap().push(std::mem::take(&mut lines));
                    w.write_all(b"221 bye\r\n").unwrap();
                    break;
                } else {
                    "250 OK"
                };
                w.write_all(format!("{reply}\r\n").as_bytes()).unwrap();
            }
            if !lines.is_empty() {
                log.lock().unwrap().push(lines);
            }
        }
    });
    (path, seen)
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mailroom-lmtp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn pending(dest: &LmtpServer, login: &str, rcpt: &str) -> Pending {
    Pending {
        report: 0,
        dest: dest.clone(),
        login: login.to_string(),
        rcpt: rcpt.to_string(),
        sender: "a@far.example".to_string(),
        scanned: None,
        forwards: vec![format!("copy-of-{login}@far.example")],
    }
}

/// Run one set of copies; the outcome of each, and the forwards kept.
fn run_all(
    dest: &LmtpServer,
    journal: &Path,
    logins: &[&str],
) -> (Vec<Outcome>, Vec<(usize, Vec<String>)>) {
    let cfg = Config::defaults(Paths::under("/nonexistent"));
    let msg = Message::from_bytes(b"Subject: t\n\n.dot\nbody\n").unwrap();
    let req = Request {
        sender: "<a@far.example>",
        arrival: crate::date::now(),
        message: &msg,
        queue_id: None,
        redelivery: false,
        job_lock: None,
        lmtp_journal: Some(journal),
    };
    let list: Vec<Pending> = logins
        .iter()
        .enumerate()
        .map(|(i, l)| Pending {
            report: i,
            ..pending(dest, l, &format!("{l}@shop.example"))
        })
        .collect();
    let mut outcomes = vec![Outcome::Delivered; logins.len()];
    let forwards = run(&cfg, &req, list, &mut |i, o| outcomes[i] = o);
    (outcomes, forwards)
}

#[test]
fn destinations_parse_or_say_why_not() {
    assert_eq!(
        LmtpServer::parse_setting("lmtp:unix:/run/dovecot/lmtp"),
        Ok(Some(LmtpServer::Unix("/run/dovecot/lmtp".into())))
    );
    assert_eq!(
        LmtpServer::parse_setting("LMTP:[10.0.0.5]:24"),
        Ok(Some(LmtpServer::Tcp {
            host: "10.0.0.5".into(),
            port: 24
        }))
    );
    assert_eq!(
        LmtpServer::parse("store.example").unwrap().to_string(),
        "lmtp:[store.example]:24"
    );
    assert_eq!(
        LmtpServer::parse("[2001:db8::1]:2424").unwrap(),
        LmtpServer::Tcp {
            host: "2001:db8::1".into(),
            port: 2424
        }
    );
    assert_eq!(LmtpServer::parse_setting("local"), Ok(None));
    for bad in [
        "smtp:[10.0.0.5]",
        "lmtp:unix:run/lmtp",
        "lmtp:[10.0.0.5]:25",
        "lmtp:[10.0.0.5]:port",
        "lmtp:",
        "/run/dovecot/lmtp",
    ] {
        let e = LmtpServer::parse_setting(bad).unwrap_err();
        assert!(!e.is_empty(), "{bad}");
    }
}

#[test]
fn a_folder_is_the_addresss_detail() {
    assert_eq!(rcpt_address("info@shop.example", None), "info@shop.example");
    assert_eq!(
        rcpt_address("info@shop.example", Some("Spam")),
        "info+Spam@shop.example"
    );
    assert_eq!(
        rcpt_address("info@shop.example", Some("Old mail")),
        "\"info+Old mail\"@shop.example"
    );
}

#[test]
fn each_recipient_gets_its_own_reply() {
    let dir = tempdir("replies");
    let (socket, seen) = fake_server(
        &dir,
        vec![Script {
            rcpt: vec![("gone", "550 5.1.1 <gone@shop.example> User doesn't exist")],
            data: vec![
                "250 2.0.0 <anna@shop.example> Saved",
                "451 4.3.0 <bob@shop.example> Temporary internal error",
                "552 5.2.2 <full@shop.example> Quota exceeded (mailbox for user is full)",
                "554 5.6.0 <carl@shop.example> Message refused",
            ],
            cut_after: None,
        }],
    );
    let dest = LmtpServer::Unix(socket);
    let journal = dir.join("lfX");
    let (o, forwards) = run_all(&dest, &journal, &["anna", "gone", "bob", "full", "carl"]);
    assert_eq!(o[0], Outcome::Delivered);
    match &o[1] {
        Outcome::Failed(f) => {
            assert_eq!(f.dsn, "5.1.1");
            assert!(f.text.contains("User doesn't exist"), "{}", f.text);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&o[2], Outcome::Deferred(f) if f.dsn == "4.3.0"),
        "{:?}",
        o[2]
    );
    // Over quota at the server: our own rule, deferred while young.
    assert!(
        matches!(&o[3], Outcome::Deferred(f) if f.dsn == "4.2.2"),
        "{:?}",
        o[3]
    );
    match &o[4] {
        Outcome::Failed(f) => assert!(f.text.contains("554 5.6.0"), "{}", f.text),
        other => panic!("{other:?}"),
    }
    // Only the delivered copy's forwards go on, and only it is recorded.
    assert_eq!(
        forwards,
        vec![(0, vec!["copy-of-anna@far.example".to_string()])]
    );
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap(),
        "delivered anna\n"
    );
    let lines = seen.lock().unwrap()[0].clone();
    assert!(lines.iter().any(|l| l.starts_with("LHLO")), "{lines:?}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("RCPT TO:")).count(),
        5,
        "one transaction for all: {lines:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_cut_after_the_dot_retries_only_the_recipients_without_a_reply() {
    let dir = tempdir("cut");
    let (socket, seen) = fake_server(
        &dir,
        vec![
            Script {
                rcpt: vec![],
                data: vec![
                    "250 2.0.0 <anna@shop.example> Saved",
                    "250 2.0.0 <bob@shop.example> Saved",
                    "250 2.0.0 <carl@shop.example> Saved",
                ],
                cut_after: Some(1),
            },
            Script {
                rcpt: vec![],
                data: vec!["250 2.0.0 Saved", "250 2.0.0 Saved"],
                cut_after: None,
            },
        ],
    );
    let dest = LmtpServer::Unix(socket);
    let journal = dir.join("lfX");
    let (o, _) = run_all(&dest, &journal, &["anna", "bob", "carl"]);
    assert_eq!(o[0], Outcome::Delivered);
    for x in &o[1..] {
        match x {
            Outcome::Deferred(f) => {
                assert_eq!(f.dsn, "4.4.2");
                assert!(f.text.contains("may deliver it twice"), "{}", f.text);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap(),
        "delivered anna\n"
    );
    // The retry (the runner killed or not): anna is not sent again.
    let (o, forwards) = run_all(&dest, &journal, &["anna", "bob", "carl"]);
    assert!(o.iter().all(|x| *x == Outcome::Delivered), "{o:?}");
    assert_eq!(
        forwards.len(),
        3,
        "every delivered copy's forwards: {forwards:?}"
    );
    let sessions = seen.lock().unwrap().clone();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0].last().map(String::as_str), Some("CUT"));
    let second: Vec<&String> = sessions[1]
        .iter()
        .filter(|l| l.starts_with("RCPT TO:"))
        .collect();
    assert_eq!(
        second,
        ["RCPT TO:<bob@shop.example>", "RCPT TO:<carl@shop.example>"]
    );
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap(),
        "delivered anna\ndelivered bob\ndelivered carl\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_server_defers_every_copy() {
    let dir = tempdir("down");
    let dest = LmtpServer::Unix(dir.join("nobody-listens"));
    let journal = dir.join("lfX");
    let (o, forwards) = run_all(&dest, &journal, &["anna", "bob"]);
    for x in &o {
        assert!(
            matches!(x, Outcome::Deferred(f) if f.dsn == "4.4.1"),
            "{x:?}"
        );
    }
    assert!(forwards.is_empty());
    assert!(!journal.exists(), "nothing delivered, nothing recorded");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mailertable_overrides_the_default_per_domain() {
    let root = tempdir("routes");
    std::fs::create_dir_all(root.join("etc/mail")).unwrap();
    std::fs::write(
        root.join("etc/mail/mailertable"),
        "shop.example lmtp:[10.0.0.5]:24\nfiles.example local:\nbroken.example lmtp:[10.0.0.5]:25\nfar.example smtp:[relay.example]\n",
    )
    .unwrap();
    let mut cfg = Config::defaults(Paths::under(&root));
    cfg.mailbox_transport = Some(LmtpServer::Unix("/run/dovecot/lmtp".into()));
    let t = Transports::load(&cfg);
    assert_eq!(
        t.for_domain("Shop.Example").unwrap().unwrap().to_string(),
        "lmtp:[10.0.0.5]:24"
    );
    assert_eq!(t.for_domain("files.example").unwrap(), None);
    assert!(
        t.for_domain("broken.example")
            .unwrap_err()
            .contains("port 25")
    );
    assert_eq!(
        t.for_domain("mx.example").unwrap().unwrap().to_string(),
        "lmtp:unix:/run/dovecot/lmtp"
    );
    assert_eq!(
        t.for_domain("far.example").unwrap().unwrap().to_string(),
        "lmtp:unix:/run/dovecot/lmtp",
        "an smtp: entry says nothing about mailboxes"
    );
    std::fs::remove_dir_all(&root).unwrap();
}
