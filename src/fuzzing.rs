//! The bodies of the fuzz targets (`fuzz/fuzz_targets/*.rs`), here so
//! that the coverage-guided fuzzer and the stable-toolchain regression
//! test (`tests/fuzz_regressions.rs`, which replays `fuzz/corpus/` and
//! `fuzz/regressions/`) run the same code.
//!
//! Each target takes arbitrary bytes, drives one surface that hostile
//! input reaches, and panics only when an invariant breaks: a parser
//! that panics, a queue file that does not read back as written, a
//! mailbox whose index disagrees with itself, an SMTP reply that is not
//! a reply, a message acknowledged but not queued.
//!
//! Targets that need files work in a private root under
//! `$MAILROOM_FUZZ_DIR` (default `/dev/shm`, else the temporary
//! directory), in `mailroom-fuzz-PID/TARGET`; [`scratch_dir`] names it so
//! callers can remove it.  Nothing is logged (the logger is never
//! initialised) and nothing is started: the SMTP server queues only.

use std::fs::{self, File};
use std::io::{Read, Seek, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::access::{self, Access};
use crate::address;
use crate::aliases;
use crate::cli::sendmail_args;
use crate::cli::submit;
use crate::config::{Config, Paths};
use crate::message::collect::{CollectError, CollectOptions, collect};
use crate::message::header::Header;
use crate::pop3::maildrop::{Maildrop, mbox::Mbox};
use crate::queue::qf::Envelope;
use crate::resolve::Resolver;
use crate::route::{self, Router};
use crate::table::{self, Syntax, Table};
use crate::wire::Wire;

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target: its name (the directory under `fuzz/corpus/`) and body.
pub const TARGETS: &[(&str, Target)] = &[
    ("argv", argv),
    ("header", header),
    ("aliases", aliases),
    ("tables", tables),
    ("qf", qf),
    ("mbox", mbox),
    ("pop3", pop3),
    ("smtp", smtp),
];

/// This process's scratch directory (every target's root is inside).
pub fn scratch_dir() -> PathBuf {
    let base = std::env::var_os("MAILROOM_FUZZ_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let shm = Path::new("/dev/shm");
            if shm.is_dir() {
                shm.to_path_buf()
            } else {
                std::env::temp_dir()
            }
        });
    base.join(format!("mailroom-fuzz-{}", std::process::id()))
}

/// A private root for `target` with a minimal configuration and `files`
/// (path relative to the root, contents); its configuration.
fn root(target: &str, files: &[(&str, String)]) -> Config {
    let dir = scratch_dir().join(target);
    let _ = fs::remove_dir_all(&dir);
    for d in ["etc/mail", "var/spool/mqueue", "var/mail", "var/log"] {
        fs::create_dir_all(dir.join(d)).expect("create the fuzz root");
    }
    let conf = "hostname = test.example\nmin_free_space = 0\ndelivery_mode = queue\n\
                smtp_greet_pause = 0\nsmtp_auth_fail_delay = 0\nsmtp_timeout = 5s\n\
                pop3_auth_fail_delay = 0\npop3_first_uid = 0\n";
    fs::write(dir.join("etc/mail/mailroom.conf"), conf).expect("write the configuration");
    for (rel, text) in files {
        fs::write(dir.join(rel), text).expect("write a fixture file");
    }
    Config::load(Paths::under(&dir), None).expect("load the fuzz configuration")
}

fn uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// Split at NUL bytes into lossy strings (an argument vector).
fn fields(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

/// A client connection over memory: the input is already received, the
/// read side is at end of file, replies go to an anonymous file.
struct Conn {
    _input: File,
    output: File,
}

impl Conn {
    fn new(bytes: &[u8]) -> (Conn, Wire) {
        let input = File::open("/dev/null").expect("open /dev/null");
        // SAFETY: memfd_create with a static name; the descriptor is
        // owned by the File at once.
        let fd = unsafe { libc::memfd_create(c"fuzz-out".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0, "memfd_create failed");
        // SAFETY: fd is a fresh descriptor nothing else owns.
        let output = unsafe { File::from_raw_fd(fd) };
        let wire = Wire::new(input.as_raw_fd(), output.as_raw_fd()).with_input(bytes);
        (
            Conn {
                _input: input,
                output,
            },
            wire,
        )
    }

    /// Everything written so far.
    fn written(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.output.rewind().expect("rewind the output");
        self.output.read_to_end(&mut out).expect("read the output");
        out
    }
}

// ---------------------------------------------------------------- argv

/// `sendmail`'s command line: NUL-separated, the first field is argv[0].
/// Then what submission does next with the recipients and `-f`.
pub fn argv(data: &[u8]) {
    let mut args = fields(data);
    let argv0 = if args.is_empty() {
        "sendmail".to_string()
    } else {
        args.remove(0)
    };
    match sendmail_args::parse(&argv0, &args) {
        Ok(inv) => {
            let _ = submit::parse_recipients(&inv.recipients);
            if let Some((s, _)) = &inv.sender {
                let _ = address::parse_one(s);
            }
        }
        Err(f) => {
            assert!(!f.message.is_empty(), "an empty error for {args:?}");
            assert!(
                !f.message.contains('\n'),
                "a multi-line error {:?} for {args:?}",
                f.message
            );
        }
    }
}

// -------------------------------------------------------------- header

/// A submitted message: collection (dots, CRLF, the `From ` line, the
/// header/body split), `-t` extraction and the header fix-ups.
pub fn header(data: &[u8]) {
    let small = CollectOptions {
        ignore_dots: true,
        size_limit: 4096,
        max_header_bytes: 1024,
    };
    for opts in [CollectOptions::default(), small] {
        let mut body = Vec::new();
        let c = match collect(data, &mut body, &opts) {
            Ok(c) => c,
            Err(CollectError::TooBig(_)) | Err(CollectError::HeaderTooBig(_)) => continue,
            Err(e) => panic!("collecting from memory failed: {e:?}"),
        };
        assert_eq!(c.body_size, body.len() as u64, "body size miscounted");
        assert!(
            c.size >= c.body_size,
            "size {} < body {}",
            c.size,
            c.body_size
        );
        let mut header = c.header;
        let bytes = header.to_bytes();
        assert!(
            c.has_8bit || !bytes.iter().chain(&body).any(|&b| b >= 0x80),
            "8-bit text not noticed"
        );
        // What is queued is read back by the queue runner.
        assert_eq!(
            Header::parse(&bytes),
            header,
            "the header does not read back"
        );
        let rcpts = submit::dedup(submit::header_recipients(&header));
        assert!(
            rcpts.iter().all(|m| !m.addr.is_empty()),
            "an empty recipient"
        );
        if let Some(line) = &c.from_line {
            let _ = line
                .strip_prefix("From ")
                .and_then(|r| r.split_once(' '))
                .and_then(|(_, d)| crate::date::parse_ctime(d));
        }
        if let Some(f) = header.get("From") {
            let _ = crate::address::quote_display_name(&f.value());
        }
        let _ =
            crate::queue::precedence_class(header.get("Precedence").map(|f| f.value()).as_deref());
        header.remove("Bcc");
        header.remove("Resent-Bcc");
        assert!(
            !header.has("bcc") && !header.has("resent-bcc"),
            "a Bcc survived"
        );
        assert!(
            !Header::parse(&header.to_bytes()).has("bcc"),
            "a Bcc reappears when the header is read back"
        );
    }
}

// ------------------------------------------------------------- aliases

/// Compile `text` as `name` in `cfg`'s `/etc/mail` and check that the
/// index answers what the text says.
fn compiled_round_trip(cfg: &Config, name: &str, syntax: Syntax, text: &[u8]) -> Table {
    let path = cfg.paths.etc_mail(name);
    let _ = fs::remove_file(table::index_path(&path));
    fs::write(&path, text).expect("write the table");
    let parsed = table::parse(syntax, text);
    table::build(&path, syntax).expect("compile the table");
    let t = Table::open(&path, syntax, false);
    assert!(t.is_indexed(), "{name}: the fresh index is not used");
    for e in &parsed.entries {
        let hit = t.get(&e.key);
        assert_eq!(
            hit.map(|h| (h.value, h.line)),
            Some((e.value.as_str(), e.line)),
            "{name}: key {:?} reads back wrong",
            e.key
        );
    }
    t
}

thread_local! {
    static ALIASES: Config = root("aliases", &[]);
    static TABLES: Config = root(
        "tables",
        &[
            ("etc/mail/local-host-names", "example.com\n".to_string()),
            ("etc/passwd", format!("root:x:0:0:root:/root:/bin/sh\nbob:x:{0}:{0}:Bob:/home/bob:/bin/sh\n", uid())),
        ],
    );
}

/// The aliases file: the parser, `newaliases`' checks and the index.
pub fn aliases(data: &[u8]) {
    let p = aliases::parse(data);
    let _ = p.summary();
    let _ = p.has_errors();
    for e in p.effective() {
        assert!(!e.name.is_empty(), "an alias with no name");
    }
    ALIASES.with(|cfg| {
        compiled_round_trip(cfg, "aliases", Syntax::Aliases, data);
    });
}

// -------------------------------------------------------------- tables

/// The same bytes as virtusertable, mailertable and access: parsed,
/// compiled, and every key looked up through the code that uses it.
pub fn tables(data: &[u8]) {
    TABLES.with(|cfg| {
        // One compile; the other two tables are hard links to the same
        // text and index (the index's stamp names the text's inode, so
        // it stays valid under either name).
        compiled_round_trip(cfg, "virtusertable", Syntax::Makemap, data);
        let text = cfg.paths.etc_mail("virtusertable");
        for name in ["mailertable", "access"] {
            let other = cfg.paths.etc_mail(name);
            for (from, to) in [
                (text.clone(), other.clone()),
                (table::index_path(&text), table::index_path(&other)),
            ] {
                let _ = fs::remove_file(&to);
                fs::hard_link(from, to).expect("link a table");
            }
            assert!(
                Table::open(&other, Syntax::Makemap, false).is_indexed(),
                "{name}: a linked index is not used"
            );
        }
        let parsed = table::parse(Syntax::Makemap, data);
        let router = Router::new(cfg, false);
        let acc = Access::load(cfg);
        let resolver = Resolver::new(cfg, false);
        for e in parsed.entries.iter().take(64) {
            let _ = access::parse_value(&e.value);
            let _ = route::Hop::parse(&e.value, 25);
            let key = e.key.as_str();
            let _ = router.route(key);
            let _ = router.route(key.rsplit('@').next().unwrap_or(key));
            if let Ok(ip) = key.parse::<std::net::IpAddr>() {
                let _ = acc.connect(&ip);
            }
            let _ = acc.from(key);
            let _ = acc.to(key);
            let _ = resolver.resolve(key);
            if !key.contains('@') {
                let _ = resolver.resolve(&format!("bob@{key}"));
            }
        }
    });
}

// ------------------------------------------------------------------ qf

/// A queue control file: parsed, and when it parses, written and read
/// back (the runner rewrites qf files after every attempt).  The writer
/// turns CR and LF inside a record into spaces, so the first rewrite may
/// change such a value; it must not add, lose or merge records, and a
/// second rewrite changes nothing.
pub fn qf(data: &[u8]) {
    let Ok(env) = Envelope::parse(data) else {
        return;
    };
    let bytes = env.to_bytes();
    let again = match Envelope::parse(&bytes) {
        Ok(e) => e,
        Err(e) => panic!("a written qf file does not parse: {e:?}"),
    };
    let shape = |e: &Envelope| {
        (
            e.recipients.len(),
            e.headers.len(),
            e.macros.len(),
            e.recipients
                .iter()
                .map(|r| r.flags.clone())
                .collect::<Vec<_>>(),
            e.headers.iter().map(|h| h.cond.clone()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(shape(&again), shape(&env), "rewriting changed the records");
    assert_eq!(again.to_bytes(), bytes, "a second rewrite changed the file");
    assert_eq!(
        Envelope::parse(&bytes).as_ref(),
        Ok(&again),
        "a rewritten qf file reads differently twice"
    );
}

// ---------------------------------------------------------------- mbox

thread_local! {
    static MBOX: Config = root("mbox", &[]);
}

/// Every message of the maildrop as RETR sends it, and the listing.
fn retrieve_all(m: &mut Mbox) -> Vec<(crate::pop3::maildrop::Listed, Vec<u8>)> {
    let listed = m.list().to_vec();
    let mut drop = Maildrop::Mbox(std::mem::replace(m, placeholder()));
    let mut out = Vec::new();
    for (n, l) in listed.into_iter().enumerate() {
        drop.prepare(n).expect("a just-indexed message moved");
        let (mut conn, mut wire) = Conn::new(b"");
        let far = || Instant::now() + Duration::from_secs(5);
        drop.send(n, None, &mut wire, &far).expect("send a message");
        wire.flush(far()).expect("flush to memory");
        drop_wire(wire);
        out.push((l, conn.written()));
    }
    let Maildrop::Mbox(back) = drop else {
        unreachable!()
    };
    *m = back;
    out
}

fn drop_wire(w: Wire) {
    drop(w);
}

fn placeholder() -> Mbox {
    Mbox::open(Path::new("/nonexistent/mailroom-fuzz"), 0, Duration::ZERO)
        .expect("a missing mbox is an empty maildrop")
}

/// The octets a RETR of `sent` stands for: dot-stuffing undone, CRLF
/// counted as sent.
fn unstuffed_len(sent: &[u8]) -> u64 {
    let mut n = 0u64;
    for line in sent.split_inclusive(|&b| b == b'\n') {
        n += line.len() as u64;
        if line.starts_with(b"..") {
            n -= 1;
        }
    }
    n
}

/// An mbox as the POP3 maildrop indexes it: the listing matches what is
/// sent, the cached index gives the same listing, a message appended by
/// local delivery is found after all the others, and a deletion removes
/// exactly one message.
pub fn mbox(data: &[u8]) {
    MBOX.with(|cfg| {
        let path = cfg.paths.resolve("/var/mail/fuzz");
        let index = path.with_file_name(".fuzz.pop3-index");
        let _ = fs::remove_file(&index);
        let _ = fs::remove_file(&path);
        fs::write(&path, data).expect("write the mbox");
        let me = uid();
        let open = || Mbox::open(&path, me, Duration::from_secs(5)).expect("open the mbox");

        let mut m = open();
        let first = retrieve_all(&mut m);
        for (l, sent) in &first {
            assert_eq!(
                unstuffed_len(sent),
                l.size,
                "LIST says {} octets, RETR sends {:?}",
                l.size,
                String::from_utf8_lossy(sent)
            );
        }
        let listed: Vec<_> = first.iter().map(|(l, _)| l.clone()).collect();
        drop(m);

        // The index written by the first open.
        let m = open();
        assert_eq!(m.list(), &listed[..], "the cached index lists differently");
        drop(m);

        // Local delivery appends one message.
        let msg = crate::mailbox::Message::from_bytes(b"Subject: appended\n\nFrom here\n")
            .expect("a message in memory");
        let a = crate::mailbox::mbox::Append {
            from_line: "From fuzz@test.example  Thu Nov 20 10:00:00 2025\n",
            prepend: b"",
            message: &msg,
            quota: 0,
            lock_timeout: Duration::from_secs(5),
            owner: Some(me),
            create_mode: 0o600,
            in_process_turn: false,
            already: None,
        };
        crate::mailbox::mbox::append(&path, &a).expect("append to the mbox");
        let mut m = open();
        let after = m.list().to_vec();
        assert_eq!(
            after.len(),
            listed.len() + 1,
            "appending one message to {:?} lists {} instead of {}",
            String::from_utf8_lossy(data),
            after.len(),
            listed.len() + 1
        );
        assert_eq!(
            &after[..listed.len()],
            &listed[..],
            "appending changed the old messages"
        );
        let last = retrieve_all(&mut m).pop().expect("the appended message").1;
        assert!(
            last.windows(9).any(|w| w == b"appended\r"),
            "the appended message is not the last one"
        );

        // Delete the first message.
        let mut deleted = vec![false; after.len()];
        deleted[0] = true;
        m.commit(&deleted).expect("delete a message");
        drop(m);
        // Identical copies are numbered in file order (`-2`): deleting
        // one renumbers the others, by design; the content hash stays.
        let content = |l: &[crate::pop3::maildrop::Listed]| -> Vec<(u64, String)> {
            l.iter()
                .map(|l| match &l.uidl {
                    crate::pop3::maildrop::Uidl::Hash(h, _) => (l.size, format!("{h:?}")),
                    other => (l.size, other.to_string()),
                })
                .collect()
        };
        let m = open();
        assert_eq!(
            content(m.list()),
            content(&after[1..]),
            "deleting one message changed the others"
        );
    });
}

// ---------------------------------------------------------------- pop3

thread_local! {
    static POP3: Config = root("pop3", &[]);
}

const POP3_MAILBOX: &[u8] = b"From a@example.com  Thu Nov 20 10:00:00 2025\n\
Subject: one\nTo: bob\n\nfirst\n.dot line\n>From quoted\n\n\
From b@example.com  Thu Nov 20 10:00:01 2025\n\
Subject: two\n\nsecond\r\nwith CRLF\n\n\
From c@example.com  Thu Nov 20 10:00:02 2025\n\
Subject: three\nX-UID: 7\nStatus: RO\n\n\nthird\n";

/// A POP3 client's bytes, to the AUTHORIZATION state (whose password
/// checks are answered "failed", then "ok") and to the TRANSACTION state
/// over a three-message mbox.
pub fn pop3(data: &[u8]) {
    POP3.with(|cfg| {
        let settings = crate::pop3::settings::Settings::from_config(cfg).expect("pop3 settings");

        let (ctl, mut authority) = std::os::unix::net::UnixStream::pair().expect("a socketpair");
        crate::privsep::frame::send(&mut authority, &[b"FAIL"]).expect("queue an answer");
        crate::privsep::frame::send(&mut authority, &[b"OK"]).expect("queue an answer");
        // Further questions find the authority gone.
        authority
            .shutdown(std::net::Shutdown::Write)
            .expect("shut the authority");
        let (_conn, wire) = Conn::new(data);
        let mut front = crate::pop3::front::Front {
            wire,
            tls: None,
            apop: Some("<1.2@test.example>".to_string()),
            settings: &settings,
            ctl,
        };
        front.run(false);
        drop(front);
        drop(authority);

        let path = cfg.paths.resolve("/var/mail/bob");
        let _ = fs::remove_file(path.with_file_name(".bob.pop3-index"));
        let _ = fs::remove_file(&path);
        fs::write(&path, POP3_MAILBOX).expect("write the mailbox");
        let mbox = Mbox::open(&path, uid(), Duration::from_secs(5)).expect("open the mailbox");
        assert_eq!(mbox.list().len(), 3, "the fixture mailbox");
        let (mut conn, wire) = Conn::new(data);
        let caps = crate::pop3::front::Front::capabilities(&settings, false, true);
        let mut s = crate::pop3::session::Session::new(
            Maildrop::Mbox(mbox),
            wire,
            Duration::from_secs(5),
            caps,
        );
        let how = s.run();
        let deleted = s.counts.deleted;
        drop(s);
        let out = conn.written();
        assert!(
            out.is_empty() || out.ends_with(b"\r\n"),
            "a reply cut short"
        );
        let left = Mbox::open(&path, uid(), Duration::from_secs(5))
            .expect("reopen the mailbox")
            .list()
            .len();
        let want = if how == "quit" { 3 - deleted } else { 3 };
        assert_eq!(left, want, "{deleted} deleted, session ended {how}");
    });
}

// ---------------------------------------------------------------- smtp

struct Smtp {
    cfg: Config,
    settings: crate::smtp::server::settings::Settings,
    policy: crate::smtp::server::policy::Policy,
}

thread_local! {
    static SMTP: &'static Smtp = {
        let cfg = root(
            "smtp",
            &[
                ("etc/passwd", format!("root:x:0:0:root:/root:/bin/sh\nbob:x:{0}:{0}:Bob:/home/bob:/bin/sh\n", uid())),
                ("etc/mail/local-host-names", "example.com\n".to_string()),
                ("etc/mail/aliases", "sales: bob, frank@remote.test\npostmaster: root\nlist: :include:/etc/mail/list\n".to_string()),
                ("etc/mail/list", "bob\n".to_string()),
                (
                    "etc/mail/virtusertable",
                    "abuse@example.com error:5.7.1:550 Abuse desk closed\ninfo@example.com bob\n@hosted.test bob\n".to_string(),
                ),
                (
                    "etc/mail/access",
                    "From:spam@bad.test REJECT\nTo:blocked@example.com ERROR:5.7.1:550 Not here\nConnect:192.0.2.66 REJECT\n".to_string(),
                ),
                ("etc/mail/quotas", "bob 100000\n".to_string()),
            ],
        );
        let settings = crate::smtp::server::settings::Settings::from_config(&cfg).expect("smtp settings");
        let policy = crate::smtp::server::policy::Policy::load(&cfg, 0, false);
        Box::leak(Box::new(Smtp { cfg, settings, policy }))
    };
}

/// An SMTP client's bytes, from the internet, to the server's dialogue:
/// every reply is a reply, every message acknowledged is in the queue.
pub fn smtp(data: &[u8]) {
    let fx = SMTP.with(|s| *s);
    let auth = crate::smtp::server::Authenticator::in_process(&fx.cfg, &fx.settings);
    let (mut conn, wire) = Conn::new(data);
    let mut s = crate::smtp::server::session::Session::new(
        &fx.cfg,
        &fx.settings,
        &fx.policy,
        wire,
        crate::smtp::server::session::Client::Network {
            ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            submission: false,
        },
        None,
        auth,
    );
    s.run();
    drop(s);
    let out = conn.written();
    let text = String::from_utf8_lossy(&out);
    let mut acked = 0;
    for line in text.split_inclusive('\n') {
        let b = line.as_bytes();
        let ok = b.len() >= 6
            && b[..3].iter().all(u8::is_ascii_digit)
            && (b[3] == b' ' || b[3] == b'-')
            && line.ends_with("\r\n")
            && !line[..line.len() - 2].contains(['\r', '\n']);
        assert!(ok, "not an SMTP reply line: {line:?}");
        // "250 2.0.0 ID Message accepted ...": queued (without an id:
        // discarded by policy, nothing to find).
        if line.starts_with("250 2.0.0 ")
            && line.contains(" Message accepted for delivery")
            && !line.starts_with("250 2.0.0 Message")
        {
            acked += 1;
        }
    }
    let queue = &fx.cfg.queue_dir;
    let mut queued = 0;
    for e in fs::read_dir(queue).expect("read the queue").flatten() {
        if e.file_name().to_string_lossy().starts_with("qf") {
            queued += 1;
        }
        let _ = fs::remove_file(e.path());
    }
    assert_eq!(
        acked, queued,
        "acknowledged {acked} messages, queued {queued}:\n{text}"
    );
    let _ = std::io::stderr().flush();
}
