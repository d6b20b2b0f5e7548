//! A scripted SMTP server on loopback, standing in for a remote MX in the
//! Rust tests (the compat tests use real ones).  It answers RCPT by the
//! recipient's local part (`defer*` → 451, `reject*` → 550, else 250),
//! records each transaction and each client's address, and can be told to
//! fall silent after the end of DATA, as a stalled server does.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What one transaction brought.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// The reverse path as given to MAIL FROM (`<a@b>`).
    pub from: String,
    /// The accepted forward paths as given to RCPT TO.
    pub rcpts: Vec<String>,
    /// The message as it came after DATA (CRLF, dot-stuffed).
    pub data: String,
    /// When its final dot came.
    pub at: std::time::Instant,
}

pub struct FakeMx {
    pub port: u16,
    pub got: Arc<Mutex<Vec<Transaction>>>,
    /// The address each connection came from.
    pub peers: Arc<Mutex<Vec<String>>>,
    /// When each connection came.
    pub connected: Arc<Mutex<Vec<std::time::Instant>>>,
}

impl FakeMx {
    /// A server that accepts mail.
    pub fn start() -> FakeMx {
        FakeMx::serve(false)
    }

    /// A server that takes the whole message and then never answers the
    /// final dot (it holds the connection open for a minute).
    pub fn stalling_after_data() -> FakeMx {
        FakeMx::serve(true)
    }

    /// The transactions so far.
    pub fn transactions(&self) -> Vec<Transaction> {
        self.got.lock().unwrap().clone()
    }

    fn serve(stall: bool) -> FakeMx {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mx = FakeMx {
            port,
            got: Arc::default(),
            peers: Arc::default(),
            connected: Arc::default(),
        };
        let (got, peers, connected) = (mx.got.clone(), mx.peers.clone(), mx.connected.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                if let Ok(a) = s.peer_addr() {
                    peers.lock().unwrap().push(a.ip().to_string());
                }
                connected.lock().unwrap().push(std::time::Instant::now());
                let got = got.clone();
                std::thread::spawn(move || session(s, stall, &got));
            }
        });
        mx
    }
}

fn session(s: TcpStream, stall: bool, got: &Mutex<Vec<Transaction>>) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let _ = w.write_all(b"220 mx.test ESMTP\r\n");
    let mut t = Transaction {
        from: String::new(),
        rcpts: Vec::new(),
        data: String::new(),
        at: std::time::Instant::now(),
    };
    let mut in_data = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if in_data {
            if line != ".\r\n" {
                t.data.push_str(&line);
                continue;
            }
            in_data = false;
            t.at = std::time::Instant::now();
            got.lock().unwrap().push(t.clone());
            if stall {
                std::thread::sleep(std::time::Duration::from_secs(60));
                return;
            }
            let _ = w.write_all(b"250 2.0.0 Ok: queued\r\n");
            continue;
        }
        let up = line.to_ascii_uppercase();
        let reply: &[u8] = if up.starts_with("EHLO") {
            b"250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        } else if up.starts_with("MAIL FROM:") {
            t.from = line[10..].trim().to_string();
            t.rcpts.clear();
            t.data.clear();
            b"250 2.1.0 Ok\r\n"
        } else if up.starts_with("RCPT TO:<DEFER") {
            b"451 4.2.0 Try again later\r\n"
        } else if up.starts_with("RCPT TO:<REJECT") {
            b"550 5.1.1 No such user here\r\n"
        } else if up.starts_with("RCPT TO:") {
            t.rcpts.push(line[8..].trim().to_string());
            b"250 2.1.5 Ok\r\n"
        } else if up.starts_with("DATA") {
            in_data = true;
            b"354 End data with <CR><LF>.<CR><LF>\r\n"
        } else if up.starts_with("QUIT") {
            let _ = w.write_all(b"221 2.0.0 Bye\r\n");
            return;
        } else {
            b"250 2.0.0 Ok\r\n"
        };
        let _ = w.write_all(reply);
    }
}
