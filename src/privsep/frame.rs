//! The frames on the socket pair between a server's network process and
//! its authority: a 4-byte big-endian length, then fields separated by
//! NUL, at most 16 KiB.  The authority trusts nothing in them beyond their
//! syntax (popa3d's rule: not even its own less-privileged child).  What
//! the fields say is [`super::protocol`].

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Largest frame accepted.
const MAX_FRAME: usize = 16 * 1024;

/// Send one frame of `fields`.
pub fn send(s: &mut UnixStream, fields: &[&[u8]]) -> io::Result<()> {
    let body = fields.join(&0u8);
    if body.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame too large",
        ));
    }
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    s.write_all(&frame)
}

/// The next frame's fields; `timeout` for the whole wait.
pub fn receive(s: &mut UnixStream, timeout: Duration) -> io::Result<Vec<Vec<u8>>> {
    s.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok(body.split(|&b| b == 0).map(<[u8]>::to_vec).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        send(&mut a, &[b"PASS", b"bob", b"pass word"]).unwrap();
        let f = receive(&mut b, Duration::from_secs(1)).unwrap();
        assert_eq!(
            f,
            vec![b"PASS".to_vec(), b"bob".to_vec(), b"pass word".to_vec()]
        );
    }
}
