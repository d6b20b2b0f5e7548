//! Delivering to another host: route, MX, connect (reusing sessions),
//! TLS, AUTH, one transaction for all recipients of one domain, and a
//! per-recipient verdict.
//!
//! Errors are classified so that only a definite answer bounces: a 5xx
//! reply, a domain that does not exist (NXDOMAIN), or a routing `error:`.
//! DNS trouble, refused or dropped connections, TLS or AUTH failures and
//! 4xx replies all leave the recipient queued.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Condvar, Mutex};

use crate::dns::{Answer, Dns};
use crate::route::{Hop, Route, Router, Tls};
use crate::smtp::client::{self, Outgoing, Session};

/// The verdict for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted by the remote server (its reply).
    Sent { reply: String },
    /// Try again later.
    Deferred { status: String, text: String },
    /// Bounce.
    Failed {
        status: String,
        text: String,
        remote_reply: bool,
    },
}

/// Where the transaction went (for logs and bounces).
#[derive(Debug, Clone, Default)]
pub struct Relay {
    /// `mx.example.com. [192.0.2.1]`
    pub text: String,
    pub host: Option<String>,
}

/// Identifies reusable sessions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    addr: SocketAddr,
    tls: Tls,
    auth: bool,
    /// The local address connected from (`source-addresses`).
    bind: Option<std::net::IpAddr>,
}

/// Shared state for one queue run: idle sessions and per-host limits.
pub struct Pool {
    idle: Mutex<HashMap<PoolKey, Vec<Session>>>,
    busy: Mutex<HashMap<String, usize>>,
    freed: Condvar,
    max_per_destination: usize,
}

impl Pool {
    pub fn new(max_per_destination: usize) -> Pool {
        Pool {
            idle: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashMap::new()),
            freed: Condvar::new(),
            max_per_destination,
        }
    }

    fn acquire(&self, host: &str) {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while *busy.get(host).unwrap_or(&0) >= self.max_per_destination {
            busy = self.freed.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        *busy.entry(host.to_string()).or_insert(0) += 1;
    }

    fn release(&self, host: &str) {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = busy.get_mut(host) {
            *n = n.saturating_sub(1);
        }
        self.freed.notify_all();
    }

    fn take(&self, key: &PoolKey) -> Option<Session> {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(key)
            .and_then(Vec::pop)
    }

    fn put(&self, key: PoolKey, s: Session) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .push(s);
    }

    /// Close every idle session (end of the run).
    pub fn close_all(&self) {
        let all: Vec<Session> = self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .flat_map(|(_, v)| v)
            .collect();
        for s in all {
            s.quit();
        }
    }
}

/// What one delivery attempt to a domain needs.
pub struct Job<'a> {
    pub domain: &'a str,
    pub sender: &'a str,
    pub rcpts: &'a [client::Rcpt],
    pub message: &'a [u8],
    pub ret: Option<&'a str>,
    pub envid: Option<&'a str>,
}

/// Context: routing, DNS, the pool, settings.
pub struct Context<'a> {
    pub router: &'a Router,
    pub dns: &'a Dns,
    pub pool: &'a Pool,
    pub pacer: &'a super::pacing::Pacer,
    pub helo: &'a str,
    pub my_names: &'a dyn Fn(&str) -> bool,
    pub timeouts: client::Timeouts,
    pub auth: Option<(String, String)>,
    pub bind: Option<std::net::IpAddr>,
}

/// Deliver to all recipients of one domain; one verdict per recipient.
pub fn deliver(ctx: &Context<'_>, job: &Job<'_>) -> (Vec<Verdict>, Relay) {
    let all = |v: Verdict| vec![v; job.rcpts.len()];
    let (hops, tls, auth) = match ctx.router.route(job.domain) {
        Route::Error(r) => {
            let v = if r.temporary {
                Verdict::Deferred {
                    status: r.dsn,
                    text: r.text,
                }
            } else {
                Verdict::Failed {
                    status: r.dsn,
                    text: format!("{} {}", r.code, r.text),
                    remote_reply: false,
                }
            };
            return (all(v), Relay::default());
        }
        Route::Local(_) => {
            // The runner handles local routes itself; reaching here is a
            // configuration mix-up.
            return (
                all(Verdict::Deferred {
                    status: "4.3.5".into(),
                    text: "mailertable local: route reached the SMTP client".into(),
                }),
                Relay::default(),
            );
        }
        Route::Hosts {
            hops, tls, auth, ..
        } => (hops, tls, auth),
        Route::Mx { domain, tls } => match mx_hops(ctx, &domain) {
            Ok(h) => (h, tls, false),
            Err(v) => return (all(v), Relay::default()),
        },
    };
    let mut last = Verdict::Deferred {
        status: "4.4.1".into(),
        text: format!("Deferred: no way to reach {}", job.domain),
    };
    let mut relay = Relay::default();
    for hop in &hops {
        let addrs = match ctx.dns.addresses(&hop.host) {
            Answer::Found(a) => a,
            Answer::NoSuchDomain | Answer::NoData => {
                last = Verdict::Deferred {
                    status: "4.1.2".into(),
                    text: format!("Deferred: Name server: {}: host not found", hop.host),
                };
                continue;
            }
            Answer::TempFail(e) => {
                last = Verdict::Deferred {
                    status: "4.4.3".into(),
                    text: format!("Deferred: Name server: {}: {e}", hop.host),
                };
                continue;
            }
        };
        for ip in addrs {
            let addr = SocketAddr::new(ip, hop.port);
            relay = Relay {
                text: format!("{}. [{}]", hop.host.trim_end_matches('.'), ip),
                host: Some(hop.host.clone()),
            };
            ctx.pool.acquire(&hop.host);
            let result = attempt(ctx, job, hop, addr, tls, auth);
            ctx.pool.release(&hop.host);
            match result {
                Attempt::Done(v) => return (v, relay),
                Attempt::TryNext(v) => last = v,
            }
        }
    }
    (all(last), relay)
}

enum Attempt {
    /// The transaction happened: per-recipient verdicts.
    Done(Vec<Verdict>),
    /// This host did not take the message; try the next (with this
    /// verdict if none does).
    TryNext(Verdict),
}

/// MX hosts of `domain` (or the domain itself), skipping this host.
fn mx_hops(ctx: &Context<'_>, domain: &str) -> Result<Vec<Hop>, Verdict> {
    let hosts: Vec<String> = match ctx.dns.mx(domain) {
        Answer::Found(mx) => mx.into_iter().map(|(_, h)| h).collect(),
        Answer::NoData => vec![domain.to_string()],
        Answer::NoSuchDomain => {
            return Err(Verdict::Failed {
                status: "5.1.2".into(),
                text: format!("Host unknown (Name server: {domain}: host not found)"),
                remote_reply: false,
            });
        }
        Answer::TempFail(e) => {
            return Err(Verdict::Deferred {
                status: "4.4.3".into(),
                text: format!("Deferred: Name server: {domain}: {e}"),
            });
        }
    };
    let hops: Vec<Hop> = hosts
        .iter()
        .filter(|h| !(ctx.my_names)(h))
        .map(|h| Hop {
            host: h.clone(),
            port: 25,
            literal: true,
        })
        .collect();
    if hops.is_empty() {
        return Err(Verdict::Failed {
            status: "5.3.5".into(),
            text: "config error: mail loops back to me (MX problem?)".into(),
            remote_reply: false,
        });
    }
    Ok(hops)
}

fn temp(text: String) -> Verdict {
    Verdict::Deferred {
        status: "4.4.1".into(),
        text,
    }
}

fn attempt(
    ctx: &Context<'_>,
    job: &Job<'_>,
    hop: &Hop,
    addr: SocketAddr,
    tls: Tls,
    auth: bool,
) -> Attempt {
    // A destination of the other address family is reached unbound.
    let bind = ctx.bind.filter(|b| b.is_ipv4() == addr.is_ipv4());
    let key = PoolKey {
        addr,
        tls,
        auth,
        bind,
    };
    let host = hop.host.trim_end_matches('.');
    // A pooled session first; a dead one is dropped and a new one made.
    let mut session = None;
    if let Some(mut s) = ctx.pool.take(&key)
        && s.reset()
    {
        session = Some(s);
    }
    let mut session = match session {
        Some(s) => s,
        None => match pace_connection(ctx, job.domain)
            .and_then(|()| open(ctx, hop, addr, tls, auth, bind))
        {
            Ok(s) => s,
            Err(v) => return Attempt::TryNext(v),
        },
    };
    let out = Outgoing {
        sender: job.sender,
        rcpts: job.rcpts,
        message: job.message,
        ret: job.ret,
        envid: job.envid,
    };
    match session.send(&out) {
        Ok(o) => {
            let verdicts = (0..job.rcpts.len())
                .map(|i| {
                    let r = o.for_rcpt(i);
                    if r.is_positive() {
                        Verdict::Sent {
                            reply: r.lines.join(" "),
                        }
                    } else if r.is_temporary() {
                        Verdict::Deferred {
                            status: r.status(),
                            text: format!("Deferred: {}", r.one_line()),
                        }
                    } else {
                        Verdict::Failed {
                            status: r.status(),
                            text: r.one_line(),
                            remote_reply: true,
                        }
                    }
                })
                .collect();
            // A 4xx to MAIL FROM may mean "this host, not now": let the next MX try.
            if o.mail.is_temporary() {
                session.quit();
                return Attempt::TryNext(Verdict::Deferred {
                    status: o.mail.status(),
                    text: format!("Deferred: {}", o.mail.one_line()),
                });
            }
            ctx.pool.put(key, session);
            Attempt::Done(verdicts)
        }
        Err(e) => Attempt::TryNext(temp(format!("Deferred: {e} with {host}"))),
    }
}

/// A new connection to `domain` takes a connection token: a short wait
/// for it is waited, a long one defers (see [`super::pacing`]).
fn pace_connection(ctx: &Context<'_>, domain: &str) -> Result<(), Verdict> {
    use super::pacing::{Token, now};
    const LONGEST_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
    for _ in 0..3 {
        match ctx.pacer.take(domain, Token::Connection, now()) {
            Ok(()) => return Ok(()),
            Err(wait) if wait <= LONGEST_WAIT => std::thread::sleep(wait),
            Err(_) => break,
        }
    }
    let rate = ctx.pacer.rates(domain).connections;
    Err(Verdict::Deferred {
        status: "4.4.5".into(),
        text: format!(
            "Deferred: pacing {domain} ({})",
            rate.map_or(String::new(), |r| r.words("connections"))
        ),
    })
}

/// Connect, TLS and AUTH as the route asks.
fn open(
    ctx: &Context<'_>,
    hop: &Hop,
    addr: SocketAddr,
    tls: Tls,
    auth: bool,
    bind: Option<std::net::IpAddr>,
) -> Result<Session, Verdict> {
    let host = hop.host.trim_end_matches('.');
    let connect = || Session::connect(addr, host, ctx.helo, ctx.timeouts, bind);
    let conn_err = |e: client::Error| -> Verdict {
        match e {
            client::Error::Connect(ref io)
                if io.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                temp(format!("Deferred: Connection refused by {host}."))
            }
            client::Error::Connect(ref io)
                if io.kind() == std::io::ErrorKind::TimedOut
                    || io.kind() == std::io::ErrorKind::WouldBlock =>
            {
                temp(format!("Deferred: Connection timed out with {host}."))
            }
            client::Error::Reply(r) if r.is_permanent() && r.code != 0 => Verdict::Failed {
                status: r.status(),
                text: r.one_line(),
                remote_reply: true,
            },
            client::Error::Reply(r) => temp(format!("Deferred: {} from {host}", r.one_line())),
            other => temp(format!("Deferred: {other} with {host}")),
        }
    };
    if tls == Tls::Implicit {
        let cfg = crate::tls::client_verified(None)
            .map_err(|e| temp(format!("Deferred: TLS setup: {e}")))?;
        let mut s = Session::connect_tls(addr, host, ctx.helo, ctx.timeouts, bind, cfg)
            .map_err(conn_err)?;
        if auth {
            authenticate(ctx, &mut s, host)?;
        }
        return Ok(s);
    }
    let mut s = connect().map_err(conn_err)?;
    if tls != Tls::Never && s.ext.starttls {
        let cfg = match tls {
            Tls::Verify => crate::tls::client_verified(None)
                .map_err(|e| temp(format!("Deferred: TLS setup: {e}")))?,
            _ => crate::tls::client_opportunistic(),
        };
        if let Err(e) = s.starttls(cfg, host) {
            if tls == Tls::May {
                // Opportunistic: try again in the clear.
                crate::log::notice(
                    None,
                    &format!("STARTTLS with {host} failed ({e}); delivering without TLS"),
                );
                let mut plain = connect().map_err(conn_err)?;
                plain.ext.starttls = false;
                s = plain;
            } else {
                return Err(temp(format!("Deferred: {e} with {host}")));
            }
        }
    } else if matches!(tls, Tls::Encrypt | Tls::Verify) {
        s.quit();
        return Err(temp(format!(
            "Deferred: {host} does not offer STARTTLS, which is required"
        )));
    }
    if auth {
        authenticate(ctx, &mut s, host)?;
    }
    Ok(s)
}

/// AUTH with the smarthost credentials, when there are any.  A refusal
/// defers (the login may be fixed); it never bounces.
fn authenticate(ctx: &Context<'_>, s: &mut Session, host: &str) -> Result<(), Verdict> {
    match &ctx.auth {
        Some((user, pass)) => s
            .auth(user, pass)
            .map_err(|e| temp(format!("Deferred: {e} ({host})"))),
        None => {
            crate::log::warning(
                None,
                &format!("no smarthost credentials configured; sending to {host} without AUTH"),
            );
            Ok(())
        }
    }
}
