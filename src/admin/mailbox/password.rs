//! Passwords: read from the terminal without echo (twice) or one line of
//! stdin, never from the command line; hashed with SHA-512 crypt by the
//! system's crypt(3), the one pop3d checks with.

use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::exit::{ExitCode, Failure, io_reason};

/// A password as typed (zeroed when dropped).
pub struct Secret(pub Vec<u8>);

impl Drop for Secret {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: a valid, aligned, exclusive pointer; volatile so the
            // clearing is not optimised away.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Check a password's form: not empty, no NUL, no line break.
pub fn check_password(pw: &[u8]) -> Result<(), String> {
    if pw.is_empty() {
        return Err("the password is empty".into());
    }
    if pw.iter().any(|&b| b == 0 || b == b'\n' || b == b'\r') {
        return Err("the password contains a NUL or a line break".into());
    }
    Ok(())
}

/// SHA-512 crypt of `pw` with 16 random salt characters.
pub fn hash_password(pw: &[u8]) -> Result<String, Failure> {
    const ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut raw = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .map_err(|e| Failure::io("cannot read", Path::new("/dev/urandom"), &e))?;
    // 256 is a multiple of 64: no bias.
    let salt: String = raw
        .iter()
        .map(|b| ALPHABET[(*b % 64) as usize] as char)
        .collect();
    let setting = format!("$6${salt}$");
    let out = crypt(pw, &setting).ok_or_else(|| {
        Failure::new(
            ExitCode::Unavailable,
            "cannot hash the password: the system's crypt(3) (libcrypt) is missing or refuses SHA-512",
        )
        .hint("install libcrypt1 (or libxcrypt)")
    })?;
    if !out.starts_with(&setting) || out.len() < setting.len() + 80 {
        return Err(Failure::new(
            ExitCode::Software,
            "cannot hash the password: crypt(3) returned something unexpected",
        ));
    }
    Ok(out)
}

/// The system's crypt(3) (the one pop3d checks with).
fn crypt(pw: &[u8], setting: &str) -> Option<String> {
    let key = std::ffi::CString::new(pw).ok()?;
    let setting = std::ffi::CString::new(setting).ok()?;
    let f = crate::login::system_crypt()?;
    // SAFETY: two valid C strings; crypt returns a static buffer or NULL
    // (this process is single-threaded here).
    let out = unsafe { f(key.as_ptr(), setting.as_ptr()) };
    if out.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated string from crypt.
    let s = unsafe { std::ffi::CStr::from_ptr(out) }
        .to_string_lossy()
        .into_owned();
    (!s.starts_with('*')).then_some(s)
}

/// The password: one line of stdin, or asked twice on the terminal.
pub fn read_password(who: &str, from_stdin: bool) -> Result<Secret, Failure> {
    let bad = |why: String| Failure::new(ExitCode::DataErr, why).hint("nothing was changed");
    if from_stdin {
        let mut line = Vec::new();
        io::stdin()
            .lock()
            .take(4096)
            .read_until(b'\n', &mut line)
            .map_err(|e| Failure::new(ExitCode::IoErr, format!("cannot read stdin: {e}")))?;
        let mut pw = Secret(line);
        while pw.0.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            pw.0.pop();
        }
        check_password(&pw.0).map_err(|w| bad(format!("{w} (on stdin)")))?;
        return Ok(pw);
    }
    let mut tty = Tty::open().map_err(|e| {
        Failure::new(
            ExitCode::Usage,
            format!("no terminal to ask for the password ({})", io_reason(&e)),
        )
        .hint("give it on stdin with --password-stdin")
    })?;
    let first = tty
        .ask(&format!("New password for {who}: "))
        .map_err(|e| Failure::new(ExitCode::IoErr, format!("cannot read the password: {e}")))?;
    check_password(&first.0).map_err(bad)?;
    let second = tty
        .ask("Retype the password: ")
        .map_err(|e| Failure::new(ExitCode::IoErr, format!("cannot read the password: {e}")))?;
    if first.0 != second.0 {
        return Err(bad("the two passwords differ".into()));
    }
    Ok(first)
}

/// The controlling terminal, for a prompt without echo.
struct Tty {
    file: fs::File,
}

/// The terminal's settings while echo is off, for the signal handler.
static SAVED_TERMIOS: std::sync::OnceLock<(i32, libc::termios)> = std::sync::OnceLock::new();

extern "C" fn restore_and_die(sig: libc::c_int) {
    if let Some((fd, t)) = SAVED_TERMIOS.get() {
        // SAFETY: tcsetattr, signal and raise are async-signal-safe.
        unsafe {
            libc::tcsetattr(*fd, libc::TCSANOW, t);
        }
    }
    // SAFETY: as above.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

impl Tty {
    fn open() -> io::Result<Tty> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
            .open("/dev/tty")?;
        Ok(Tty { file })
    }

    /// Print `prompt`, read a line with echo off.
    fn ask(&mut self, prompt: &str) -> io::Result<Secret> {
        use std::os::unix::io::AsRawFd;
        let fd = self.file.as_raw_fd();
        // SAFETY: an all-zero termios is a valid out-parameter.
        let mut old: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor and pointer.
        if unsafe { libc::tcgetattr(fd, &mut old) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let _ = SAVED_TERMIOS.set((fd, old));
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            // SAFETY: installing a handler that only calls async-signal-safe
            // functions.
            unsafe {
                libc::signal(sig, restore_and_die as *const () as libc::sighandler_t);
            }
        }
        let mut quiet = old;
        quiet.c_lflag &= !(libc::ECHO | libc::ECHOE | libc::ECHOK);
        quiet.c_lflag |= libc::ECHONL;
        self.file.write_all(prompt.as_bytes())?;
        self.file.flush()?;
        // SAFETY: valid descriptor and pointer.
        if unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut line = Secret(Vec::new());
        let mut byte = [0u8; 1];
        let r = loop {
            match self.file.read(&mut byte) {
                Ok(0) => break Ok(()),
                Ok(_) if byte[0] == b'\n' => break Ok(()),
                Ok(_) if line.0.len() < 4096 => line.0.push(byte[0]),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        // SAFETY: valid descriptor and pointer.
        unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &old) };
        r?;
        if line.0.last() == Some(&b'\r') {
            line.0.pop();
        }
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_with_the_pop3_check() {
        let h = hash_password(b"s3cret pass").unwrap();
        assert!(h.starts_with("$6$"));
        assert_eq!(h.split('$').nth(2).unwrap().len(), 16);
        assert!(crate::login::crypt_matches(b"s3cret pass", &h));
        assert!(!crate::login::crypt_matches(b"s3cret", &h));
        assert_ne!(hash_password(b"s3cret pass").unwrap(), h, "salt is random");
        assert!(check_password(b"").is_err());
        assert!(check_password(b"a\nb").is_err());
    }
}
