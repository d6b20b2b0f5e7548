//! A tiny authoritative DNS server on loopback for the Rust tests: it
//! answers from a [`Zone`] held in memory, over UDP and TCP on one port,
//! so a test can point a resolver at it (`Verifier::with_name_servers`).
//! The compat tests use a real server (dnsmasq) instead.
//!
//! It answers like an authoritative server: the records of the asked type,
//! with a CNAME chain followed inside the zone; NODATA for a name with
//! none of that type; NXDOMAIN for a name it does not have.  A zone can
//! also leave a question unanswered, as a broken server does, to test
//! timeouts.  An answer too big for UDP is sent truncated, and TCP has the
//! whole of it.  Its threads live as long as the test process.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};

use hickory_resolver::proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

/// One line of a name's data.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A record of the name.
    Record(RData),
    /// Questions of any type with no record listed before this entry get
    /// no answer at all (entries after it are never served).
    Timeout,
    /// Questions of this type get no answer at all.
    TimeoutFor(RecordType),
}

/// The data served: names (case-insensitive) and their entries in order.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    names: HashMap<String, (Name, Vec<Entry>)>,
}

/// What the server does with one question.
enum Answer {
    /// Says nothing (a timeout for the client).
    Silent,
    Reply(ResponseCode, Vec<Record>),
}

/// How many CNAMEs an answer follows before it gives up (a loop).
const MAX_CNAME_CHAIN: usize = 8;

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    /// Add `entry` to `name` (dotted; empty labels are ignored, as a
    /// zone file's parser would refuse them).
    pub fn add(&mut self, name: &str, entry: Entry) {
        let key = key_of_text(name);
        let owner = Name::from_labels(key.split('.').filter(|l| !l.is_empty()).map(str::as_bytes))
            .unwrap_or_else(|e| panic!("fake DNS: bad owner name {name:?}: {e}"));
        self.names
            .entry(key.to_ascii_lowercase())
            .or_insert_with(|| (owner, Vec::new()))
            .1
            .push(entry);
    }

    fn answer(&self, qname: &Name, qtype: RecordType) -> Answer {
        let mut records = Vec::new();
        let mut name = qname.clone();
        for _ in 0..MAX_CNAME_CHAIN {
            let Some((owner, entries)) = self.names.get(&key_of_name(&name)) else {
                let rcode = if records.is_empty() {
                    ResponseCode::NXDomain
                } else {
                    ResponseCode::NoError
                };
                return Answer::Reply(rcode, records);
            };
            let mut found = Vec::new();
            let mut cname = None;
            for e in entries {
                match e {
                    Entry::Record(r) if r.record_type() == qtype => {
                        found.push(Record::from_rdata(owner.clone(), 300, r.clone()));
                    }
                    Entry::Record(RData::CNAME(c)) if cname.is_none() => {
                        cname = Some((RData::CNAME(c.clone()), c.0.clone()));
                    }
                    Entry::Record(_) => {}
                    Entry::TimeoutFor(t) if *t == qtype => return Answer::Silent,
                    Entry::TimeoutFor(_) => {}
                    Entry::Timeout if found.is_empty() => return Answer::Silent,
                    Entry::Timeout => break,
                }
            }
            match cname {
                Some((rdata, target)) if found.is_empty() => {
                    records.push(Record::from_rdata(owner.clone(), 300, rdata));
                    name = target;
                }
                _ => {
                    records.extend(found);
                    return Answer::Reply(ResponseCode::NoError, records);
                }
            }
        }
        // A CNAME loop: what a server has, the chain so far.
        Answer::Reply(ResponseCode::NoError, records)
    }
}

/// The lookup key of dotted text: its non-empty labels.
fn key_of_text(name: &str) -> String {
    name.split('.')
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

/// The lookup key of a name in a question: its labels as bytes, lower case.
fn key_of_name(name: &Name) -> String {
    name.iter()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(".")
}

/// A running server.
pub struct FakeDns {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Arc<Zone>>>,
    asked: Arc<Mutex<Vec<(String, RecordType)>>>,
}

impl FakeDns {
    /// Serve `zone` on 127.0.0.1, UDP and TCP on one free port.
    pub fn start(zone: Zone) -> FakeDns {
        let (udp, tcp) = bind_pair();
        let dns = FakeDns {
            addr: udp.local_addr().unwrap(),
            zone: Arc::new(Mutex::new(Arc::new(zone))),
            asked: Arc::default(),
        };
        let (zone, asked) = (dns.zone.clone(), dns.asked.clone());
        std::thread::spawn(move || serve_udp(udp, &zone, &asked));
        let (zone, asked) = (dns.zone.clone(), dns.asked.clone());
        std::thread::spawn(move || {
            for s in tcp.incoming() {
                let Ok(s) = s else { continue };
                let (zone, asked) = (zone.clone(), asked.clone());
                std::thread::spawn(move || serve_tcp(s, &zone, &asked));
            }
        });
        dns
    }

    /// Serve `zone` from now on.
    pub fn set_zone(&self, zone: Zone) {
        *self.zone.lock().unwrap() = Arc::new(zone);
    }

    /// The questions asked since the last call: name and type.
    pub fn take_asked(&self) -> Vec<(String, RecordType)> {
        std::mem::take(&mut *self.asked.lock().unwrap())
    }
}

/// A UDP socket and a TCP listener on the same free port of 127.0.0.1.
fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            return (udp, tcp);
        }
    }
    panic!("fake DNS: no port free for both UDP and TCP");
}

/// The reply to one query, encoded; None: stay silent.  `limit`: the most
/// a UDP reply may carry (None over TCP).
fn respond(
    query: &[u8],
    limit: Option<usize>,
    zone: &Mutex<Arc<Zone>>,
    asked: &Mutex<Vec<(String, RecordType)>>,
) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.authoritative = true;
    reply.add_queries(request.queries.iter().cloned());
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        reply.set_edns(edns);
    }
    let Some(q) = request.queries.first() else {
        reply.metadata.response_code = ResponseCode::FormErr;
        return reply.to_vec().ok();
    };
    asked
        .lock()
        .unwrap()
        .push((key_of_name(q.name()), q.query_type()));
    let zone = zone.lock().unwrap().clone();
    match zone.answer(q.name(), q.query_type()) {
        Answer::Silent => return None,
        Answer::Reply(rcode, records) => {
            reply.metadata.response_code = rcode;
            reply.add_answers(records);
        }
    }
    let bytes = reply.to_vec().ok()?;
    let limit = limit.map(|l| match &request.edns {
        Some(e) => l.min(usize::from(e.max_payload().max(512))),
        None => l.min(512),
    });
    match limit {
        Some(l) if bytes.len() > l => reply.truncate().to_vec().ok(),
        _ => Some(bytes),
    }
}

fn serve_udp(sock: UdpSocket, zone: &Mutex<Arc<Zone>>, asked: &Mutex<Vec<(String, RecordType)>>) {
    let mut buf = [0u8; 4096];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if let Some(reply) = respond(&buf[..n], Some(1232), zone, asked) {
            let _ = sock.send_to(&reply, peer);
        }
    }
}

/// One TCP connection: length-prefixed queries until the client closes.
fn serve_tcp(mut s: TcpStream, zone: &Mutex<Arc<Zone>>, asked: &Mutex<Vec<(String, RecordType)>>) {
    loop {
        let mut len = [0u8; 2];
        if s.read_exact(&mut len).is_err() {
            return;
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if s.read_exact(&mut query).is_err() {
            return;
        }
        if let Some(reply) = respond(&query, None, zone, asked) {
            let Ok(n) = u16::try_from(reply.len()) else {
                continue;
            };
            let mut framed = n.to_be_bytes().to_vec();
            framed.extend_from_slice(&reply);
            if s.write_all(&framed).is_err() {
                return;
            }
        }
    }
}
