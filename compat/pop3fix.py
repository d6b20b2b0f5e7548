"""Fixtures for driving the installed pop3d with real POP3 clients.

* `Inetd`: Debian's openbsd-inetd in the foreground (`inetd -d -i CONF`)
  with a private configuration: pop3d on 127.0.0.1:11110 and
  `pop3d --tls` on 127.0.0.1:11995, exactly the lines an admin puts in
  /etc/inetd.conf (etc/inetd/).  It also finds the pop3d processes it
  started (through /proc), to check their user ids and to kill them.
* `Raw`: a plain socket client for exact reply bytes.
* `curl`, `fetchmail`: the real programs, with private files.
* Mailboxes: `fresh_user` (a system user with a password and an empty
  mbox or Maildir), `submit` (`sendmail -odi`: delivered when it
  returns), and `stored` (every message of a mailbox, as the bytes a
  POP3 client must receive: read from the file with Python's `mailbox`
  module, mboxrd quoting undone, the mail readers' private header fields
  (Status:, X-UID:, ...) left out, CRLF line ends).

Everything runs as root inside the compat sandbox (lib/sandbox.sh); no
file outside the sandbox's private /etc, /var, /tmp, /home is touched.
"""

import mailbox
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import mr

POP3D = "/usr/libexec/mailroom/pop3d"
INETD = "/usr/sbin/inetd"
CURL = "/usr/bin/curl"
FETCHMAIL = "/usr/bin/fetchmail"
ADDR = "127.0.0.1"
PORT = 11110
TLS_PORT = 11995
SPOOL = "/var/mail"
TLS_DIR = "/etc/mail/tls"
STAMPS = "/var/spool/mailroom/pop-before-smtp"
EMPTY_DIR = "/var/lib/mailroom/empty"

_workdir = None


def workdir():
    """A private directory for configurations, certificates and output."""
    global _workdir
    if _workdir is None:
        _workdir = tempfile.mkdtemp(prefix="pop3fix.", dir=os.environ.get("COMPAT_WORK") or None)
    return _workdir


def missing_programs():
    return [p for p in (POP3D, INETD, CURL, FETCHMAIL) if not os.access(p, os.X_OK)]


# ---------------------------------------------------------------------------
# Processes


def proc_status(pid):
    """{field: value} of /proc/PID/status, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except (FileNotFoundError, ProcessLookupError):
        return None


def proc_ids(pid):
    """(uids, gids, groups) of a live process: lists of ints, or None."""
    st = proc_status(pid)
    if st is None:
        return None
    return ([int(x) for x in st["Uid"].split()], [int(x) for x in st["Gid"].split()],
            sorted(int(x) for x in st.get("Groups", "").split()))


def proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def proc_root(pid):
    try:
        return os.readlink(f"/proc/{pid}/root")
    except OSError:
        return None


def children_map():
    """{ppid: [pid, ...]} of every process (zombies included)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z":
            continue
        out.setdefault(int(fields[1]), []).append(int(d))
    return out


def descendants(pid):
    """[(pid, parent)] of every live descendant of `pid`, parents first."""
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        for c in sorted(kids.get(p, [])):
            out.append((c, p))
            todo.append(c)
    return out


def wait_until(pred, timeout=10.0, step=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


# ---------------------------------------------------------------------------
# inetd


def listening(port, addr=ADDR):
    """Whether something listens on addr:port (from /proc/net/tcp); addr
    "*" is any address of either family (/proc/net/tcp6 too)."""
    if addr == "*":
        wants = {("/proc/net/tcp", f"{'0' * 8}:{port:04X}"),
                 ("/proc/net/tcp6", f"{'0' * 32}:{port:04X}")}
    else:
        a = "".join(f"{int(x):02X}" for x in reversed(addr.split(".")))
        wants = {("/proc/net/tcp", f"{a}:{port:04X}")}
    for table, want in wants:
        try:
            with open(table) as f:
                for line in f.readlines()[1:]:
                    parts = line.split()
                    if parts[1] == want and parts[3] == "0A":
                        return True
        except FileNotFoundError:
            pass
    return False


def listen_spec(line):
    """(address, port) of an inetd.conf line: `127.0.0.1:11110`, or a bare
    service name or port (every address: "*")."""
    host, _, service = line.split()[0].rpartition(":")
    port = int(service) if service.isdigit() else socket.getservbyname(service, "tcp")
    return (host or "*"), port


def inetd_lines():
    """pop3d and `pop3d --tls` as etc/inetd/ starts them, on
    127.0.0.1:11110 and 127.0.0.1:11995 (no privileged port needed)."""
    return [
        f"{ADDR}:{PORT}\tstream\ttcp\tnowait\troot\t{POP3D}\tpop3d",
        f"{ADDR}:{TLS_PORT}\tstream\ttcp\tnowait\troot\t{POP3D}\tpop3d --tls",
    ]


class Inetd:
    """openbsd-inetd with a private configuration, in the foreground."""

    def __init__(self, lines=None):
        self.lines = lines or inetd_lines()
        self.dir = tempfile.mkdtemp(prefix="inetd.", dir=workdir())
        self.conf = os.path.join(self.dir, "inetd.conf")
        self.log_path = os.path.join(self.dir, "inetd.log")
        self.proc = None

    def start(self, timeout=10.0):
        with open(self.conf, "w") as f:
            f.write("# compat/pop3fix.py: pop3d as /etc/inetd.conf would start it\n")
            f.write("\n".join(self.lines) + "\n")
        log = open(self.log_path, "ab")
        # -d: debug log on stderr, stay in the foreground; -i: no daemon.
        self.proc = subprocess.Popen([INETD, "-d", "-i", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        log.close()
        ports = [listen_spec(l) for l in self.lines]
        if not wait_until(lambda: self.proc.poll() is not None
                          or all(listening(p, a) for a, p in ports), timeout):
            self.stop()
            raise RuntimeError(f"inetd did not listen within {timeout}s: {self.log()}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"inetd exited {self.proc.returncode}: {self.log()}")
        return self

    def pop3d_processes(self):
        """[(pid, parent)] of the live pop3d processes inetd started."""
        if self.proc is None:
            return []
        return [(p, pp) for p, pp in descendants(self.proc.pid)
                if any(os.path.basename(a) == b"pop3d" for a in proc_cmdline(p)[:1])]

    def sessions(self):
        """The pop3d processes inetd started itself (one per connection)."""
        return [p for p, pp in self.pop3d_processes() if pp == self.proc.pid]

    def stop(self):
        """Stop inetd, then kill any session it started that is still there."""
        if self.proc is None:
            return
        left = [p for p, _ in descendants(self.proc.pid)]
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


# ---------------------------------------------------------------------------
# TLS

_cert = None


def certificate():
    """(cert, key) of a self-signed certificate for localhost and
    127.0.0.1, made once per process."""
    global _cert
    if _cert is None:
        d = os.path.join(workdir(), "tls")
        os.makedirs(d, exist_ok=True)
        cert, key = os.path.join(d, "localhost.crt"), os.path.join(d, "localhost.key")
        p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-subj", "/CN=localhost", "-days", "2",
                            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                            "-keyout", key, "-out", cert], capture_output=True)
        if p.returncode != 0:
            raise RuntimeError(f"openssl req failed: {p.stderr.decode(errors='replace')}")
        _cert = (cert, key)
    return _cert


def install_certificate():
    """Put the certificate where pop3d looks by default; returns the CA
    file clients should trust."""
    cert, key = certificate()
    os.makedirs(TLS_DIR, mode=0o755, exist_ok=True)
    shutil.copyfile(cert, os.path.join(TLS_DIR, "mail.crt"))
    shutil.copyfile(key, os.path.join(TLS_DIR, "mail.key"))
    os.chmod(os.path.join(TLS_DIR, "mail.key"), 0o600)
    return cert


# ---------------------------------------------------------------------------
# Users and mail


def set_password(user, password):
    mr.run(["chpasswd"], input=f"{user}:{password}\n".encode(), check=True)


def fresh_user(name, password, maildir=False):
    """A system user with `password`, an empty mailbox (an mbox in the
    spool, or ~/Maildir/ when asked) and no ~/.forward."""
    pw = mr.ensure_user(name)
    set_password(name, password)
    for p in (os.path.join(SPOOL, name), os.path.join(SPOOL, name + ".lock"),
              os.path.join(SPOOL, f".{name}.pop3-index"), os.path.join(pw.pw_dir, ".forward")):
        if os.path.lexists(p):
            os.unlink(p)
    md = os.path.join(pw.pw_dir, "Maildir")
    shutil.rmtree(md, ignore_errors=True)
    if maildir:
        os.mkdir(md, 0o700)
        os.chown(md, pw.pw_uid, pw.pw_gid)
    return pw


def submit(rcpt, message, sender="alice@example.org"):
    """`sendmail -odi -i -f SENDER RCPT < message`: delivered on return."""
    if isinstance(message, str):
        message = message.encode()
    p = mr.sendmail(["-odi", "-i", "-f", sender, rcpt], message)
    if p.returncode != 0:
        raise AssertionError(f"sendmail to {rcpt} exited {p.returncode}: "
                             f"{p.stderr.decode(errors='replace')}")
    return p


def crlf(data):
    """LF line ends to CRLF (a stored CRLF stays one CRLF)."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def mbox_unquote(data):
    """Undo one level of mboxrd quoting: `>From ` -> `From `."""
    return re.sub(rb"(?m)^>(>*From )", rb"\1", data)


# Header fields mail readers keep in an mbox for themselves (mutt,
# Dovecot, Pine): pop3d leaves them out (src/mailbox READER_PRIVATE_HEADERS).
READER_PRIVATE = ("status", "x-status", "x-keywords", "x-uid", "x-imap", "x-imapbase",
                  "content-length", "x-uidl")


def without_reader_fields(msg):
    """An mbox message (LF) without the readers' private header fields."""
    head, sep, body = msg.partition(b"\n\n")
    out, skipping = [], False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower().decode("latin-1")
        skipping = b":" in line and name in READER_PRIVATE
        if not skipping:
            out.append(line)
    return b"\n".join(out) + sep + body


def mailbox_path(user):
    md = os.path.expanduser(f"~{user}/Maildir")
    return md if os.path.isdir(md) else os.path.join(SPOOL, user)


def stored(path):
    """What a POP3 client must receive for each message stored at `path`
    (an mbox file, or a Maildir directory): [(key, bytes)], in mbox order
    or sorted by Maildir key (the file's unique part)."""
    if os.path.isdir(path):
        box = mailbox.Maildir(path, factory=None, create=False)
        out = [(k, crlf(box.get_bytes(k))) for k in box.keys()]
        return sorted(out)
    if not os.path.exists(path):
        return []
    box = mailbox.mbox(path, create=False)
    try:
        return [(k, crlf(mbox_unquote(without_reader_fields(box.get_bytes(k))))) for k in box.keys()]
    finally:
        box.close()


def header(msg, name):
    """The first `name:` field's value in raw message bytes (CRLF or LF)."""
    head = re.split(rb"\r?\n\r?\n", msg, 1)[0]
    m = re.search(rb"(?mi)^" + re.escape(name.encode()) + rb":[ \t]*(.*?)\r?$", head)
    return m.group(1).decode("latin-1") if m else None


def by_serial(messages):
    """{X-Serial: bytes} of a list of raw messages."""
    out = {}
    for m in messages:
        s = header(m, "X-Serial")
        assert s is not None and s not in out, m[:300]
        out[s] = m
    return out


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def pop3d_log(mark):
    return [l for l in mr.log_since(mark).splitlines() if " pop3d[" in l]


# ---------------------------------------------------------------------------
# Clients


class Raw:
    """A POP3 connection on a plain socket: every reply as raw bytes."""

    def __init__(self, port=PORT, timeout=10):
        self.sock = socket.create_connection((ADDR, port), timeout=timeout)
        self.f = self.sock.makefile("rb")
        self.greeting = self.line()

    def line(self):
        return self.f.readline()

    def send(self, text):
        if isinstance(text, str):
            text = text.encode()
        self.sock.sendall(text + b"\r\n")

    def cmd(self, text):
        """Send one command, return its first reply line (bytes, CRLF kept)."""
        self.send(text)
        return self.line()

    def multi(self, text):
        """Send a command with a multi-line answer: (first line, [lines])."""
        first = self.cmd(text)
        lines = []
        if first.startswith(b"+OK"):
            while True:
                l = self.line()
                if l in (b".\r\n", b""):
                    break
                lines.append(l)
        return first, lines

    def eof(self):
        """Whether the server closed the connection (reads until then)."""
        try:
            return self.f.read() == b""
        except OSError:
            return True

    def close(self):
        try:
            self.f.close()
        finally:
            self.sock.close()


def curl(args, timeout=30):
    """curl -sS ARGS (bytes stdout, stderr, exit status)."""
    return mr.run([CURL, "-sS", "--max-time", "20"] + list(args), timeout=timeout)


def fetchmail_conf(user, password, outdir, *, keep=False, fetchall=False, port=PORT,
                   tls=None, implicit_tls=False, uidl=False):
    """A fetchmail rc text polling `localhost` (for certificate name
    checks), writing each message through an mda into `outdir`.  tls: the
    CA file to check the server's certificate with (STLS, or TLS from the
    first byte with implicit_tls)."""
    mda = outdir.rstrip("/") + ".mda"
    with open(mda, "w") as f:
        f.write(f"#!/bin/sh\nexec cat > \"$(mktemp {outdir}/msg.XXXXXXXX)\"\n")
    os.chmod(mda, 0o755)
    os.makedirs(outdir, exist_ok=True)
    lines = [
        "set no syslog",
        "set no bouncemail",
        # No Received: field of its own, so what the mda gets is exactly
        # what the server sent (with LF line ends).
        "set invisible",
        f"poll localhost port {port} protocol pop3 {'uidl ' if uidl else ''}auth password "
        "timeout 20",
        f'  user "{user}" there with password "{password}" is "root" here',
        "  no rewrite",
        "  keep" if keep else "  no keep",
        "  fetchall" if fetchall else "  no fetchall",
    ]
    if tls:
        lines.append(f'  {"ssl " if implicit_tls else ""}sslproto "TLS1.2+" sslcertck sslcertfile "{tls}"')
    else:
        # fetchmail 6.4 insists on STLS unless told otherwise.
        lines.append("  sslproto ''")
    lines.append(f'  mda "{mda}"')
    return "\n".join(lines) + "\n"


def fetchmail(rc_text, name, idfile=None, timeout=60):
    """Run fetchmail once on a private rc file (mode 0600) with a private
    home; returns the CompletedProcess."""
    d = os.path.join(workdir(), "fetchmail-" + name)
    os.makedirs(d, exist_ok=True)
    rc = os.path.join(d, "fetchmailrc")
    fd = os.open(rc, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(rc_text)
    os.chmod(rc, 0o600)
    args = [FETCHMAIL, "-f", rc, "-v", "--nosyslog"]
    if idfile:
        args += ["-i", idfile]
    p = mr.run(args, env={"HOME": d, "FETCHMAILHOME": d}, timeout=timeout)
    # -v's protocol trace goes to stdout, errors to stderr.
    p.trace = (p.stdout + p.stderr).decode(errors="replace")
    return p


def read_dir_messages(outdir):
    """Contents of every file an mda wrote into `outdir`."""
    if not os.path.isdir(outdir):
        return []
    return [file_bytes(os.path.join(outdir, n)) for n in sorted(os.listdir(outdir))]
