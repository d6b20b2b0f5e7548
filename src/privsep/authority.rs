//! The authority's side of the channel: answer the network process's
//! login requests through the login door until one succeeds and the
//! server is done with it, or the network process goes.

use std::ops::ControlFlow;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::protocol::{Answer, Request};
use crate::login::{Door, Identity, Outcome, Refused};

/// What the authority answers with, besides the login door.
pub struct Logins<'d, 'a> {
    /// The door, paced by the server's own settings.
    pub door: &'d mut Door<'a>,
    /// The longest wait for the next request (the network process enforces
    /// the client's timeouts; this only bounds a wedged one).
    pub wait: Duration,
    /// The APOP timestamp of the greeting, when APOP is offered.
    pub apop: Option<&'d str>,
}

/// Answer requests on `chan`.  Each failure is logged by `log_failure`
/// (each server words its own line), paused for and answered `FAIL`, or
/// `BYE` when it was one too many — which ends the loop.  After a login,
/// `logged_in` answers the network process itself and says whether the
/// loop goes on (SMTP: more AUTH commands may come) or ends with a value
/// (pop3d: the session was served).  `None`: the network process went
/// away, or was told `BYE`.
pub fn answer_logins<T>(
    chan: &mut UnixStream,
    logins: Logins<'_, '_>,
    mut log_failure: impl FnMut(&Refused),
    mut logged_in: impl FnMut(&mut UnixStream, Identity) -> ControlFlow<T>,
) -> Option<T> {
    let Logins { door, wait, apop } = logins;
    loop {
        let Ok(request) = Request::receive(chan, wait) else {
            return None;
        };
        let outcome = match request.and_then(|r| r.attempt(apop)) {
            Some(attempt) => door.attempt(&attempt, &mut log_failure),
            None => door.refuse(Refused::Unknown, &mut log_failure),
        };
        match outcome {
            Outcome::LoggedIn(id) => {
                if let ControlFlow::Break(t) = logged_in(chan, id) {
                    return Some(t);
                }
            }
            Outcome::Failed => {
                if Answer::Failed.send(chan).is_err() {
                    return None;
                }
            }
            Outcome::TooManyFailures => {
                let _ = Answer::TooManyFailures.send(chan);
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::login::Pace;
    use crate::privsep::frame;

    fn bob(password: &[u8]) -> Request {
        Request::Password {
            authzid: Vec::new(),
            name: b"bob".to_vec(),
            password: password.to_vec(),
        }
    }

    /// The network side: send each request (or raw frame), collect the
    /// answers until the authority hangs up.
    fn network(
        mut chan: UnixStream,
        requests: Vec<Result<Request, Vec<&'static [u8]>>>,
    ) -> std::thread::JoinHandle<Vec<Option<Answer>>> {
        std::thread::spawn(move || {
            let wait = Duration::from_secs(10);
            let mut answers = Vec::new();
            for r in requests {
                let sent = match r {
                    Ok(r) => r.send(&mut chan),
                    Err(fields) => frame::send(&mut chan, &fields),
                };
                if sent.is_err() {
                    break;
                }
                match Answer::receive(&mut chan, wait) {
                    Ok(a) => answers.push(a),
                    Err(_) => break,
                }
            }
            answers
        })
    }

    #[test]
    fn failures_are_logged_answered_and_counted_until_a_login() {
        let (root, cfg) = crate::login::testing::root("authority");
        let settings = crate::login::Settings { first_uid: 100 };
        let pace = Pace {
            delay: Duration::ZERO,
            max_failures: 3,
        };
        let (mut chan, net) = UnixStream::pair().unwrap();
        let client = network(
            net,
            vec![
                Ok(bob(b"guess")),
                // No request at all: a failure like any other.
                Err(vec![b"SHELL", b"/bin/sh"]),
                Ok(bob(b"secret")),
            ],
        );
        let mut door = Door::new(&cfg, &settings, pace);
        let mut logged = Vec::new();
        let served = answer_logins(
            &mut chan,
            Logins {
                door: &mut door,
                wait: Duration::from_secs(10),
                apop: None,
            },
            |why| logged.push(why.who().to_string()),
            |chan, id| {
                Answer::LoggedIn(id.login.clone()).send(chan).unwrap();
                ControlFlow::Break(id.login)
            },
        );
        drop(chan);
        assert_eq!(served.as_deref(), Some("bob"));
        assert_eq!(logged, ["bob", "unknown user"]);
        assert_eq!(
            client.join().unwrap(),
            [
                Some(Answer::Failed),
                Some(Answer::Failed),
                Some(Answer::LoggedIn("bob".into()))
            ]
        );

        // Too many failures: BYE, and the loop ends.
        let (mut chan, net) = UnixStream::pair().unwrap();
        let apop = Request::Apop {
            name: b"bob".to_vec(),
            digest: b"0123".to_vec(),
        };
        // APOP where the greeting offered none is a failure too.
        let client = network(net, vec![Ok(apop), Ok(bob(b"guess")), Ok(bob(b"secret"))]);
        let mut door = Door::new(
            &cfg,
            &settings,
            Pace {
                max_failures: 2,
                ..pace
            },
        );
        let served: Option<()> = answer_logins(
            &mut chan,
            Logins {
                door: &mut door,
                wait: Duration::from_secs(10),
                apop: None,
            },
            |_| {},
            |_, _| panic!("no login after BYE"),
        );
        drop(chan);
        assert_eq!(served, None);
        assert_eq!(
            client.join().unwrap(),
            [Some(Answer::Failed), Some(Answer::TooManyFailures)]
        );
        let _ = std::fs::remove_dir_all(root);
    }
}
