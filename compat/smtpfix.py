"""Fixtures for driving the installed SMTP server (`sendmail -bs`) with
real SMTP clients.

* `Inetd`: Debian's openbsd-inetd in the foreground with a private
  configuration holding the smtp and submission lines of etc/inetd/
  (`/usr/sbin/sendmail sendmail -bs`), bound to 127.0.0.1:25 and
  127.0.0.1:587 (or other services: `submissions`, 127.0.0.1:465,
  `sendmail -bs --tls`) -- pop3fix.Inetd, which also finds the sessions
  inetd started.
* `client_address()`: 192.0.2.10 (TEST-NET-1) on the sandbox's loopback
  interface.  Clients bind their sockets to it (smtplib's source_address,
  swaks --local-interface, curl --interface), so the server sees a peer
  that is not loopback -- an outside client, not trusted to relay.  Only
  ever inside the compat sandbox's private network namespace.
* TLS: pop3fix's self-signed certificate (localhost, 127.0.0.1) installed
  as /etc/mail/tls/mail.crt and mail.key, which the server offers
  STARTTLS with.
* DNS and the rest of "the internet": compat/netfix.py (dnsmasq, and an
  aiosmtpd sink playing a remote domain's MX host); all of it with the
  configuration and inetd at once: compat/sitefix.py.
* `Raw`: a plain socket SMTP client for exact reply bytes, STARTTLS
  included.
* `swaks`, `curl`, `php`: the real programs.
* Mailboxes: `fresh_user` (pop3fix: a system user with a password and no
  mbox), `messages` / `wait_for_messages` (the messages delivered to
  /var/mail/USER, mboxrd quoting undone, LF line ends).

Everything runs as root inside the compat sandbox (lib/sandbox.sh).
"""

import mailbox
import os
import re
import socket
import ssl
import tempfile

import mr
import pop3fix as pf

SENDMAIL = "/usr/sbin/sendmail"
INETD = pf.INETD
SWAKS = "/usr/bin/swaks"
CURL = pf.CURL
PHP = "/usr/bin/php"
ADDR = "127.0.0.1"
SMTP_PORT = 25
SUBMISSION_PORT = 587
# A documentation address (RFC 5737) on the private loopback interface:
# the address an "outside" client connects from.
CLIENT_ADDR = "192.0.2.10"
SPOOL = pf.SPOOL
INETD_CONF = os.path.join(mr.REPO, "etc", "inetd", "inetd.conf")

SUBMISSIONS_PORT = 465  # submission with implicit TLS (RFC 8314)
# The spec's lines, for a tree whose etc/inetd/inetd.conf has none.
DEFAULT_LINES = {
    "smtp": "smtp\tstream\ttcp\tnowait\troot\t/usr/sbin/sendmail\tsendmail -bs",
    "submission": "submission\tstream\ttcp\tnowait\troot\t/usr/sbin/sendmail\tsendmail -bs",
    "submissions": "submissions\tstream\ttcp\tnowait\troot\t/usr/sbin/sendmail\tsendmail -bs --tls",
}
PORTS = {"smtp": SMTP_PORT, "submission": SUBMISSION_PORT, "submissions": SUBMISSIONS_PORT}

PHP_LIBS = {
    "symfony": "/usr/share/php/Symfony/Component/Mailer/autoload.php",
    "swift": "/usr/share/php/Swift/autoload.php",
    "phpmailer": "/usr/share/php/libphp-phpmailer/autoload.php",
}

wait_until = pf.wait_until
fresh_user = pf.fresh_user


def missing(*paths):
    return [p for p in paths if not os.access(p, os.X_OK if not p.endswith(".php") else os.R_OK)]


# ---------------------------------------------------------------------------
# inetd


def inetd_lines(services=("smtp", "submission"), addresses=(ADDR,)):
    """The lines of etc/inetd/inetd.conf for `services` (or the spec's,
    where it has none), with the service field made `127.0.0.1:25` /
    `127.0.0.1:587` / `127.0.0.1:465`: the same program, user and
    arguments, on loopback only -- or on each of `addresses` (one line
    per address; not the wildcard, which would take port 25 from the
    aiosmtpd sinks on 127.0.0.N)."""
    found = {}
    try:
        with open(INETD_CONF) as f:
            for line in f:
                fields = line.split()
                if fields and fields[0] in PORTS and fields[0] not in found:
                    found[fields[0]] = line.strip()
    except FileNotFoundError:
        pass
    out = []
    for service in services:
        for address in addresses:
            fields = found.get(service, DEFAULT_LINES[service]).split()
            fields[0] = f"{address}:{PORTS[service]}"
            # inetd.conf: service socktype proto wait user program argv...
            out.append("\t".join(fields[:6]) + "\t" + " ".join(fields[6:]))
    return out


class Inetd(pf.Inetd):
    """openbsd-inetd starting `sendmail -bs` for each connection."""

    def __init__(self, services=("smtp", "submission"), extra_lines=(), addresses=(ADDR,)):
        super().__init__(inetd_lines(services, addresses) + list(extra_lines))

    def pop3d_processes(self):
        """[(pid, parent)] of the live sendmail processes inetd started
        (pop3fix.Inetd's name for them; its sessions() uses it)."""
        if self.proc is None:
            return []
        out = []
        for p, pp in pf.descendants(self.proc.pid):
            argv = pf.proc_cmdline(p)
            if argv and os.path.basename(argv[0]) == b"sendmail":
                out.append((p, pp))
        return out

    def wait_idle(self, timeout=10.0):
        """Wait until every session inetd started has ended."""
        return wait_until(lambda: not self.sessions(), timeout)


# ---------------------------------------------------------------------------
# The outside client's address


def client_address():
    """Put CLIENT_ADDR on lo (once); only inside the sandbox's private
    network namespace."""
    if not os.environ.get("COMPAT_WORK"):
        raise RuntimeError("smtpfix.client_address() runs only inside the compat sandbox")
    p = mr.run(["ip", "-o", "-4", "addr", "show", "dev", "lo"], check=True)
    if f" {CLIENT_ADDR}/" not in p.stdout.decode():
        mr.run(["ip", "addr", "add", f"{CLIENT_ADDR}/32", "dev", "lo"], check=True)
    return CLIENT_ADDR


# ---------------------------------------------------------------------------
# TLS


def install_certificate():
    """/etc/mail/tls/mail.crt and mail.key (self-signed, for localhost and
    127.0.0.1); returns the CA file clients check the server with."""
    return pf.install_certificate()


def client_tls_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    return ctx


# ---------------------------------------------------------------------------
# Mailboxes


def messages(user):
    """Every message in /var/mail/USER: raw bytes with LF line ends, the
    mboxrd quoting undone, the From_ line left out."""
    path = os.path.join(SPOOL, user)
    if not os.path.exists(path):
        return []
    box = mailbox.mbox(path, create=False)
    try:
        return [pf.mbox_unquote(box.get_bytes(k)) for k in box.keys()]
    finally:
        box.close()


def from_lines(user):
    """The mbox's From_ lines (envelope senders)."""
    path = os.path.join(SPOOL, user)
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        return [l for l in f.read().split(b"\n") if l.startswith(b"From ")]


def wait_for_messages(user, count=1, timeout=15.0):
    """Poll /var/mail/USER until it holds `count` messages (background
    delivery by the queue runner); returns the messages."""
    wait_until(lambda: len(messages(user)) >= count, timeout, step=0.1)
    return messages(user)


def split(msg):
    """(header block, body) of a raw message (LF or CRLF)."""
    m = re.search(rb"\r?\n\r?\n", msg)
    if not m:
        return msg, b""
    return msg[:m.start()], msg[m.end():]


def header(msg, name):
    """The first `name:` field of a raw message, unfolded, or None."""
    return all_headers(msg, name)[0] if all_headers(msg, name) else None


def all_headers(msg, name):
    head = split(msg)[0].decode("utf-8", "replace").replace("\r\n", "\n")
    out = []
    for m in re.finditer(r"(?mi)^" + re.escape(name) + r":[ \t]*(.*(?:\n[ \t].*)*)", head):
        out.append(re.sub(r"\n[ \t]+", " ", m.group(1)).strip())
    return out


def mailq():
    p = mr.run(["mailq"])
    return p.stdout.decode("latin-1") + p.stderr.decode("latin-1")


# ---------------------------------------------------------------------------
# Clients


class Raw:
    """An SMTP connection on a plain socket, from CLIENT_ADDR unless told:
    every reply as raw bytes (all its lines, CRLF kept)."""

    def __init__(self, port=SMTP_PORT, source=CLIENT_ADDR, timeout=10, read_greeting=True, host=ADDR):
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.buf = b""
        self.closed = False
        self.greeting = self.reply() if read_greeting else None

    def _fill(self):
        """Read more from the socket into the buffer; False at its end."""
        if self.closed:
            return False
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            data = b""
        if not data:
            self.closed = True
            return False
        self.buf += data
        return True

    def line(self):
        while b"\n" not in self.buf:
            if not self._fill():
                out, self.buf = self.buf, b""
                return out
        i = self.buf.index(b"\n") + 1
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def reply(self):
        """One reply: its lines joined (b"" at end of file)."""
        out = b""
        while True:
            line = self.line()
            out += line
            if len(line) < 4 or line[3:4] != b"-":
                return out

    def pending(self, wait=1.0):
        """Every reply that arrives within `wait` seconds of quiet."""
        out = []
        while True:
            if b"\n" not in self.buf:
                self.sock.settimeout(wait)
                try:
                    more = self._fill()
                except socket.timeout:
                    more = False
                finally:
                    self.sock.settimeout(self.timeout)
                if not more and not self.buf:
                    return out
            out.append(self.reply())

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def cmd(self, text):
        """Send one command line, return its reply."""
        if isinstance(text, str):
            text = text.encode()
        self.send(text + b"\r\n")
        return self.reply()

    def starttls(self, cafile, hostname=ADDR):
        """STARTTLS, then TLS on the same socket; returns the 220 reply."""
        r = self.cmd("STARTTLS")
        if r.startswith(b"220"):
            if self.buf:
                raise AssertionError(f"data after 220 to STARTTLS, before the TLS handshake: {self.buf!r}")
            self.sock = client_tls_context(cafile).wrap_socket(self.sock, server_hostname=hostname)
        return r

    def eof(self):
        """Whether the server closed the connection (reads until then);
        then closes this end too, as clients do (the server drains the
        connection until the client is gone)."""
        try:
            while self._fill():
                pass
        except OSError:
            self.closed = True
        if self.closed:
            self.close()
        return self.closed

    def quit(self):
        """QUIT: returns the reply, after the server closed the connection
        (b"... still open" appended when it did not)."""
        r = self.cmd("QUIT")
        return r if self.eof() else r + b" ... still open"

    def close(self):
        self.sock.close()


def ehlo_keywords(reply):
    """The EHLO reply's extension keywords (upper-case, first word of each
    line after the first) -> their parameters."""
    lines = reply.decode("latin-1").split("\r\n")[:-1]
    out = {}
    for l in lines[1:]:
        words = l[4:].split()
        if words:
            out[words[0].upper()] = words[1:]
    return out


def swaks(args, port=SMTP_PORT, source=CLIENT_ADDR, timeout=30):
    """swaks against 127.0.0.1:PORT from `source`; the CompletedProcess
    gets .trace: the whole transcript as text."""
    cmd = [SWAKS, "--server", ADDR, "--port", str(port), "--timeout", "15",
           "--helo", "client.example.org"]
    if source:
        cmd += ["--local-interface", source]
    p = mr.run(cmd + list(args), timeout=timeout)
    p.trace = (p.stdout + p.stderr).decode("utf-8", "replace")
    return p


def swaks_replies(trace):
    """The server's lines of a swaks transcript, marker stripped:
    ["220 ...", "250-...", ...]."""
    out = []
    for l in trace.splitlines():
        m = re.match(r"^\s*(<-|<~|<\*\*|<~\*)\s+(.*)$", l)
        if m:
            out.append(m.group(2))
    return out


def curl(args, timeout=40):
    """curl -sS -v ARGS; the CompletedProcess gets .trace (curl's -v
    protocol lines: "> CMD", "< reply")."""
    p = mr.run([CURL, "-sS", "-v", "--max-time", "20"] + list(args), timeout=timeout)
    p.trace = [l for l in p.stderr.decode("utf-8", "replace").splitlines() if l[:2] in ("> ", "< ")]
    return p


def php(code, user="www-data", timeout=60):
    """Run a PHP script (given as text, on standard input) as `user`, with
    the system's php.ini (for mbstring and intl) and errors on stderr."""
    return mr.run([PHP, "-d", "display_errors=stderr", "-d", "error_reporting=E_ALL & ~E_DEPRECATED"],
                  input=code.encode(), user=user, timeout=timeout, cwd="/")


def php_string(s):
    """A PHP expression for the string `s` (any bytes, any characters)."""
    import base64
    if isinstance(s, str):
        s = s.encode()
    return "base64_decode('" + base64.b64encode(s).decode() + "')"


def have_swaks_tls():
    """swaks with TLS (libnet-ssleay-perl); else mr.lacking() and False."""
    if not mr.have(SWAKS, "swaks"):
        return False
    # `swaks --support` lists every feature ("=== TLS supported"); given an
    # argument it refuses to run, which once made this check always false
    # and the swaks TLS parts of the scenarios pass without running.
    p = mr.run([SWAKS, "--support"])
    if "=== TLS supported" in (p.stdout + p.stderr).decode():
        return True
    mr.lacking("swaks's TLS (package libnet-ssleay-perl)")
    return False


def tempdir(prefix):
    """A fresh private directory for a scenario's files."""
    return tempfile.mkdtemp(prefix=prefix, dir=pf.workdir())
