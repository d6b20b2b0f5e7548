"""pop3 (issue 20, target 2): mailroom's pop3d against Dovecot 2.3's pop3
on one mbox of 10,000 messages of 50 KB (about 500 MB), over TCP on
loopback, through the same client.

The servers, both installed at their default paths inside the sandbox:
  - Dovecot (dovecot-pop3d) with Debian's configuration and a local.conf
    that adds only: POP3 only, on 127.0.0.1:110, no TLS, plain-text
    logins allowed (the client is on loopback), a log file.  Debian's
    defaults stand: mail_location = mbox:~/mail:INBOX=/var/mail/%u,
    passwords through PAM (so /etc/shadow), its index under ~/mail/.imap;
    "dovecot -F" is started once for the section (local.conf is
    put back as it was at its end);
  - mailroom's pop3d, started per connection by openbsd-inetd with the
    line mailroom ships (etc/inetd/inetd.conf), on 127.0.0.2:110, with
    the mailroom.conf make install leaves.
The user bob has the same SHA-512 crypt hash in /etc/shadow for both.

Each round, for each system (the order reversed every other round):
  1. a fresh copy of the same mbox is put at /var/mail/bob (written,
     fsynced, renamed into place: its pages are in the page cache), and
     the server's own state is removed: Dovecot's index directory
     (~/mail/.imap), mailroom's cache (/var/mail/.bob.pop3-index);
  2. cold: connect, greeting, USER, PASS, STAT, timed to STAT's +OK --
     "cold" means no index or cache of the server's, the mbox in the
     page cache (the page cache is shared by the whole machine and is
     not dropped); then QUIT;
  3. warm: the same again, now with the index the first session left;
     then UIDL (to the end of the list), then RETR of every message in
     turn (MB/s: the bytes received, terminators included, over the
     time), then RSET and QUIT (nothing changes);
  4. DELE 1 + QUIT, twice, each on another fresh copy (the server's
     index kept; login and STAT not timed), timed to QUIT's +OK: the
     whole file moves.  First the mbox as delivered; then the mbox as
     the server keeps it: for Dovecot, the same messages carrying the
     X-IMAPbase, X-UID, Status and Content-Length fields it writes into
     every message the first time it rewrites an mbox (that copy is made
     once per section by Dovecot itself, deleting an extra first
     message), for mailroom, which writes nothing into the mbox, the
     same as delivered.  Afterwards the mbox must hold the 9,999 other
     messages in order (their Message-Ids, read from the file, 1..9,999,
     and as many From lines).
Peak RSS: every process of the server (Dovecot's master and its
children; inetd and the pop3d processes) is sampled every 10 ms for
VmHWM during each session; "the mailbox process" is the largest of those
running as bob (Dovecot's pop3, mailroom's pop3d after login), "all" the
sum of each process's peak over the session, the worst session of the
round.  The last few ms before a process exits can escape the sampling.

Floors, measured in the same rounds: cold, one read of the fresh mbox
from the page cache (1 MiB reads: what any scan of it costs at least);
warm, one SHA-512 crypt of the password (what any login against this
/etc/shadow costs); RETR, this client against an in-memory responder
(its own ceiling, not a floor); DELE 1 + QUIT, a copy of the mbox less
its first message into a new file beside it, fsynced (moving the whole
file durably).

BENCH_PEERS_POP3_MESSAGES (default 10000) changes the mbox's size.
"""

import ctypes
import mmap
import os
import pwd
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import common

MESSAGES = int(os.environ.get("BENCH_PEERS_POP3_MESSAGES", "10000"))
USER = "bob"
PASSWORD = "secret"
# PASSWORD hashed by crypt(3), SHA-512 (5,000 rounds), as in benches/bench.rs.
PASSWORD_HASH = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"
SPOOL = Path("/var/mail")
MBOX = SPOOL / USER
MAILROOM_CACHE = SPOOL / f".{USER}.pop3-index"
DOVECOT = ("127.0.0.1", 110)
MAILROOM = ("127.0.0.2", 110)
DOVECOT_LOCAL = Path("/etc/dovecot/local.conf")
POP3D = "/usr/libexec/mailroom/pop3d"
INETD = "/usr/sbin/inetd"
# openbsd-inetd's line from etc/inetd/inetd.conf, bound to MAILROOM.
INETD_LINE = f"{MAILROOM[0]}:{MAILROOM[1]}\tstream\ttcp\tnowait\troot\t{POP3D}\tpop3d\n"
DOVECOT_LOCAL_CONF = """\
# bench-peers pop3: POP3 only, on loopback, no TLS; everything else is
# Debian's configuration (conf.d/; mail_location is its default, restated).
protocols = pop3
mail_location = mbox:~/mail:INBOX=/var/mail/%u
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
log_path = /var/log/dovecot.log
service pop3-login {
  inet_listener pop3s {
    port = 0
  }
}
"""
SAMPLE_EVERY = 0.01


# ---- the mbox


def write_template(path: Path, n: int, extra_first: bool = False) -> None:
    """n messages of about 50 KB as delivery writes them (the mbox of
    benches/bench.rs's pop3 section): Message-Id <i@example.org>, i from 0
    (after one more, <extra@example.org>, when extra_first)."""
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod te\n"
    body = line * (50 * 1024 // len(line)) + b"\n"
    with open(path, "wb", buffering=1 << 20) as f:
        if extra_first:
            f.write(b"From extra@example.org  Sat Nov 21 04:59:59 2026\nMessage-Id: <extra@example.org>\n\n")
            f.write(body)
        for i in range(n):
            f.write(
                (
                    f"From sender{i}@example.org  Sat Nov 21 05:{(i // 60) % 60:02}:{i % 60:02} 2026\n"
                    f"Return-Path: <sender{i}@example.org>\n"
                    "Delivered-To: bob@bench.example\n"
                    f"Received: (from sender{i}@localhost)\n"
                    f"\tby bench.example (mailroom) id 6AL5{i:010};\n"
                    "\tSat, 21 Nov 2026 05:00:00 GMT\n"
                    "Date: Sat, 21 Nov 2026 05:00:00 GMT\n"
                    f"From: sender{i}@example.org\n"
                    f"Message-Id: <{i}@example.org>\n"
                    f"Subject: message {i}\n\n"
                ).encode()
            )
            f.write(body)


def copy_file(src_path: Path, dst_path: Path, uid: int = -1, gid: int = -1) -> None:
    """src_path's bytes into a new dst_path, fsynced."""
    with open(src_path, "rb") as src, open(dst_path, "wb") as dst:
        size = os.fstat(src.fileno()).st_size
        done = 0
        while done < size:
            done += os.sendfile(dst.fileno(), src.fileno(), done, size - done)
        os.fchown(dst.fileno(), uid, gid)
        os.fchmod(dst.fileno(), 0o660)
        os.fsync(dst.fileno())


def install_mbox(template: Path, uid: int, mail_gid: int) -> None:
    """A fresh copy of template at MBOX, durable, owned as delivery leaves
    it (bob:mail 0660), renamed into place."""
    tmp = SPOOL / f".{USER}.bench-new"
    copy_file(template, tmp, uid, mail_gid)
    os.rename(tmp, MBOX)


def mbox_check(expect_ids: range) -> str | None:
    """What is wrong with MBOX, or None: its messages must be exactly
    expect_ids, in order, each starting with a From line."""
    with open(MBOX, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
        ids = [int(x) for x in re.findall(rb"\nMessage-Id: <(\d+)@example\.org>", m)]
        froms = (1 if m[:5] == b"From " else 0) + count_from_lines(m)
    if ids != list(expect_ids):
        got = f"{len(ids)} messages, first {ids[:1]}, last {ids[-1:]}"
        return f"expected messages {expect_ids.start}..{expect_ids.stop - 1}, found {got}"
    if froms != len(ids):
        return f"{froms} From lines for {len(ids)} messages"
    return None


def count_from_lines(m: mmap.mmap) -> int:
    """From lines after the first message (each follows an empty line)."""
    n, i = 0, 0
    while (i := m.find(b"\n\nFrom ", i)) >= 0:
        n += 1
        i += 7
    return n


# ---- the client


class PopError(Exception):
    pass


class Pop3:
    """A plain POP3 client on a socket: reads straight into one buffer, the
    terminator searched for only in what arrived (as fast as this language
    allows: several times what the servers reach, see the RETR floor)."""

    def __init__(self, addr: tuple[str, int]):
        self.sock = socket.create_connection(addr, timeout=300)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray(4 << 20)
        self.view = memoryview(self.buf)
        self.lo = self.hi = 0  # buf[lo:hi]: received, not yet read
        self.status("greeting")

    def _fill(self) -> None:
        if self.hi == len(self.buf):
            self.view.release()
            self.buf.extend(bytes(len(self.buf)))
            self.view = memoryview(self.buf)
        n = self.sock.recv_into(self.view[self.hi :])
        if not n:
            raise PopError("the server closed the connection")
        self.hi += n

    def status(self, what: str) -> str:
        # Between replies: move what is left to the front (rarely anything).
        if self.lo > len(self.buf) // 2 or self.lo == self.hi:
            n = self.hi - self.lo
            self.buf[:n] = self.buf[self.lo : self.hi]
            self.lo, self.hi = 0, n
        while (i := self.buf.find(b"\r\n", self.lo, self.hi)) < 0:
            self._fill()
        line = self.buf[self.lo : i].decode("latin-1")
        self.lo = i + 2
        if not line.startswith("+OK"):
            raise PopError(f"{what}: {line}")
        return line

    def cmd(self, c: str) -> str:
        self.sock.sendall(c.encode() + b"\r\n")
        return self.status(c.split()[0])

    def body(self, keep: bool = False) -> tuple[int, bytes]:
        """A multi-line body, up to and including the final dot: its size
        (and its bytes when keep).  The status line's CRLF precedes it, so
        the terminator is searched for from two bytes back."""
        start = self.lo
        at = max(start - 2, 0)
        while (i := self.buf.find(b"\r\n.\r\n", at, self.hi)) < 0:
            at = max(self.hi - 4, at)
            self._fill()
        self.lo = i + 5
        return self.lo - start, bytes(self.buf[start : self.lo]) if keep else b""

    def close(self) -> None:
        self.view.release()
        self.sock.close()


def login(addr, messages: int) -> tuple[Pop3, float]:
    """Connect, USER, PASS, STAT: the client and the time to STAT's +OK (ms)."""
    t = time.perf_counter()
    c = Pop3(addr)
    c.cmd(f"USER {USER}")
    c.cmd(f"PASS {PASSWORD}")
    stat = c.cmd("STAT")
    ms = (time.perf_counter() - t) * 1000
    if stat.split()[1] != str(messages):
        raise PopError(f"STAT: {stat} (expected {messages} messages)")
    return c, ms


def quit(c: Pop3) -> None:
    c.cmd("QUIT")
    c.close()


# ---- peak RSS of a server's processes


def _status(pid: int) -> dict[str, str] | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            out += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    except OSError:
        pass
    return out


def tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += _children(p)
    return pids


class PeakRss:
    """VmHWM of every process under root, sampled until stop(): per pid its
    peak (KiB) and whether it ever ran as uid."""

    def __init__(self, root: int, uid: int):
        self.root, self.uid = root, uid
        self.peak: dict[int, int] = {}
        self.owner: set[int] = set()
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def sample(self) -> list[int]:
        """One pass; the pids running as uid now."""
        as_uid = []
        for pid in tree(self.root):
            st = _status(pid)
            if not st or "VmHWM" not in st:
                continue
            with self.lock:
                self.peak[pid] = max(self.peak.get(pid, 0), int(st["VmHWM"].split()[0]))
                if str(self.uid) in st["Uid"].split():
                    self.owner.add(pid)
                    as_uid.append(pid)
        return as_uid

    def _run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(SAMPLE_EVERY)

    def stop_when_gone(self, timeout: float = 60) -> tuple[float, float]:
        """Waits for the session's processes (those running as uid) to end;
        (the mailbox process's peak, all processes' peaks summed), MiB."""
        common.wait_until(lambda: not self.sample(), timeout, "the session's processes to end")
        self.done.set()
        self.thread.join()
        mailbox = max((self.peak[p] for p in self.owner), default=0)
        return mailbox / 1024, sum(self.peak.values()) / 1024


# ---- the servers


def listening(addr: tuple[str, int]) -> bool:
    a, port = addr
    want = "{:08X}:{:04X}".format(int.from_bytes(socket.inet_aton(a), "little"), port)
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[1] == want and f[3] == "0A":
            return True
    return False


class Server:
    def __init__(self, name: str, addr, proc: subprocess.Popen, log: Path, index: Path):
        self.name, self.addr, self.proc, self.log, self.index = name, addr, proc, log, index
        # The mbox as this server keeps it (see keep_dovecot_headers()).
        self.kept: Path | None = None

    def wait_listening(self) -> None:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            return listening(self.addr)

        common.wait_until(up, 20, f"{self.name} to listen on {self.addr[0]}:{self.addr[1]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_dovecot(work: Path, home: Path) -> Server:
    if not os.access("/usr/sbin/dovecot", os.X_OK):
        raise RuntimeError("no /usr/sbin/dovecot: enter.sh installs dovecot-pop3d")
    DOVECOT_LOCAL.write_text(DOVECOT_LOCAL_CONF)
    log = work / "dovecot.out"
    proc = subprocess.Popen(
        ["/usr/sbin/dovecot", "-F"], stdin=subprocess.DEVNULL, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    s = Server("dovecot", DOVECOT, proc, log, home / "mail" / ".imap")
    s.wait_listening()
    return s


def start_mailroom(work: Path) -> Server:
    for prog in (INETD, POP3D):
        if not os.access(prog, os.X_OK):
            raise RuntimeError(f"no {prog}: enter.sh installs openbsd-inetd and mailroom")
    conf = work / "inetd.conf"
    conf.write_text(INETD_LINE)
    log = work / "inetd.out"
    proc = subprocess.Popen(
        [INETD, "-i", str(conf)], stdin=subprocess.DEVNULL, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    s = Server("mailroom", MAILROOM, proc, log, MAILROOM_CACHE)
    s.wait_listening()
    return s


def make_user(home: Path) -> int:
    """bob, with the password's hash in /etc/shadow and a home of his own
    (Dovecot's ~/mail); his uid."""
    try:
        pwd.getpwnam(USER)
        subprocess.run(["usermod", "-d", str(home), "-p", PASSWORD_HASH, USER], check=True)
    except KeyError:
        subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh", "-p", PASSWORD_HASH, USER], check=True)
    uid, gid = pwd.getpwnam(USER).pw_uid, pwd.getpwnam(USER).pw_gid
    (home / "mail").mkdir(parents=True, exist_ok=True)
    for p in (home, home / "mail"):
        os.chown(p, uid, gid)
        os.chmod(p, 0o700)
    return uid


# ---- one round of one system


def remove_tree(p: Path) -> None:
    if p.is_dir():
        subprocess.run(["rm", "-rf", str(p)], check=True)
    elif p.exists():
        p.unlink()


def dele_quit(server: Server, template: Path, uid: int, mail_gid: int, n: int) -> tuple[float, tuple]:
    """A fresh copy of template (n messages), login and STAT, then DELE 1 +
    QUIT, timed (ms); and the session's peak RSS."""
    install_mbox(template, uid, mail_gid)
    rss = PeakRss(server.proc.pid, uid)
    c, _ = login(server.addr, n)
    t = time.perf_counter()
    c.cmd("DELE 1")
    c.cmd("QUIT")
    ms = (time.perf_counter() - t) * 1000
    c.close()
    return ms, rss.stop_when_gone()


def keep_dovecot_headers(server: Server, work: Path, uid: int, mail_gid: int) -> None:
    """server.kept: the mbox as Dovecot keeps it -- the same messages with
    the X-IMAPbase, X-UID, Status and Content-Length header fields Dovecot
    writes into every message the first time it rewrites the file -- made
    by Dovecot itself, by deleting an extra first message."""
    extra = work / "extra-first.mbox"
    write_template(extra, MESSAGES, extra_first=True)
    dele_quit(server, extra, uid, mail_gid, MESSAGES + 1)
    extra.unlink()
    if wrong := mbox_check(range(0, MESSAGES)):
        raise RuntimeError(f"{server.name}: the mbox it keeps: {wrong}")
    server.kept = work / "dovecot-kept.mbox"
    copy_file(MBOX, server.kept)


def measure(server: Server, delivered: Path, uid: int, mail_gid: int) -> dict[str, float]:
    n = MESSAGES
    install_mbox(delivered, uid, mail_gid)
    remove_tree(server.index)

    rss = PeakRss(server.proc.pid, uid)
    c, cold = login(server.addr, n)
    quit(c)
    if not server.index.exists():
        raise RuntimeError(f"{server.name}: no {server.index} after a login: not the index it keeps?")
    peaks = [rss.stop_when_gone()]

    rss = PeakRss(server.proc.pid, uid)
    c, warm = login(server.addr, n)
    t = time.perf_counter()
    c.cmd("UIDL")
    _, listing = c.body(keep=True)
    uidl = (time.perf_counter() - t) * 1000
    if (listed := listing.count(b"\n") - 1) != n:
        raise RuntimeError(f"{server.name}: UIDL listed {listed} of {n} messages")
    t = time.perf_counter()
    got = 0
    for i in range(1, n + 1):
        c.sock.sendall(b"RETR %d\r\n" % i)
        c.status("RETR")
        got += c.body()[0]
    retr = got / 1e6 / (time.perf_counter() - t)
    c.cmd("RSET")
    quit(c)
    peaks.append(rss.stop_when_gone())

    dele = {}
    for kind, template in (("delivered", delivered), ("kept", server.kept or delivered)):
        dele[kind], peak = dele_quit(server, template, uid, mail_gid, n)
        peaks.append(peak)
        if wrong := mbox_check(range(1, n)):
            raise RuntimeError(f"{server.name}: after DELE 1 + QUIT on the mbox {kind}: {wrong}")
    return {
        "cold": cold,
        "warm": warm,
        "uidl": uidl,
        "retr": retr,
        "dele_delivered": dele["delivered"],
        "dele_kept": dele["kept"],
        "rss_mailbox": max(p[0] for p in peaks),
        "rss_all": max(p[1] for p in peaks),
    }


# ---- the floors


def crypt_ms() -> float:
    libcrypt = ctypes.CDLL("libcrypt.so.1")
    libcrypt.crypt.restype = ctypes.c_char_p
    libcrypt.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    t = time.perf_counter()
    out = libcrypt.crypt(PASSWORD.encode(), PASSWORD_HASH.encode())
    ms = (time.perf_counter() - t) * 1000
    if out is None or out.decode() != PASSWORD_HASH:
        raise RuntimeError("crypt(3) does not reproduce the password's hash")
    return ms


def read_ms(path: Path) -> float:
    buf = bytearray(1 << 20)
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass
    return (time.perf_counter() - t) * 1000


def move_ms(path: Path) -> float:
    """Copy path less its first message into a new file beside it, fsync."""
    tmp = path.with_name(f".{path.name}.bench-move")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        with mmap.mmap(src.fileno(), 0, prot=mmap.PROT_READ) as m:
            skip = m.find(b"\n\nFrom ") + 2
        size = os.fstat(src.fileno()).st_size
        t = time.perf_counter()
        done = skip
        while done < size:
            done += os.sendfile(dst.fileno(), src.fileno(), done, size - done)
        os.fsync(dst.fileno())
        ms = (time.perf_counter() - t) * 1000
    tmp.unlink()
    return ms


def responder(sock: socket.socket, message: bytes) -> None:
    """In a child: answers a greeting, then every command line with
    message (a RETR reply, terminator included) until the client leaves."""
    conn, _ = sock.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.sendall(b"+OK ready\r\n")
    f = conn.makefile("rb")
    for line in f:
        if line.startswith(b"QUIT"):
            conn.sendall(b"+OK bye\r\n")
            break
        conn.sendall(message)
    conn.close()


def client_ceiling_mbs(template: Path, n: int) -> float:
    """This client's RETR loop against responder() (MB/s)."""
    with open(template, "rb") as f:
        first = f.read(1 << 20)
    end = first.find(b"\n\nFrom ")
    text = first[first.index(b"\n") + 1 : end + 1 if end >= 0 else len(first)]
    message = b"+OK message follows\r\n" + text.replace(b"\n", b"\r\n") + b".\r\n"
    sock = socket.socket()
    sock.bind(("127.0.0.3", 0))
    sock.listen(1)
    addr = sock.getsockname()
    pid = os.fork()
    if pid == 0:
        try:
            responder(sock, message)
        finally:
            os._exit(0)
    sock.close()
    try:
        c = Pop3(addr)
        t = time.perf_counter()
        got = 0
        for i in range(1, n + 1):
            c.sock.sendall(b"RETR %d\r\n" % i)
            c.status("RETR")
            got += c.body()[0]
        mbs = got / 1e6 / (time.perf_counter() - t)
        quit(c)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return mbs


def floors(template: Path, uid: int, mail_gid: int) -> dict[str, float]:
    install_mbox(template, uid, mail_gid)
    return {
        "cold": read_ms(MBOX),
        "warm": crypt_ms(),
        "retr": client_ceiling_mbs(template, MESSAGES),
        "dele_delivered": move_ms(MBOX),
    }


# ---- the section


def run(ctx) -> list[common.Row]:
    work = Path(ctx.work) / "pop3"
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home" / USER
    uid = make_user(home)
    mail_gid = os.stat(SPOOL).st_gid
    template = work / "template.mbox"
    ctx.log(f"pop3: writing the mbox ({MESSAGES} messages of 50 KB)")
    write_template(template, MESSAGES)
    size_mb = template.stat().st_size / 1e6
    servers: list[Server] = []
    local_conf = DOVECOT_LOCAL.read_text() if DOVECOT_LOCAL.exists() else None
    try:
        servers.append(start_dovecot(work, home))
        servers.append(start_mailroom(work))
        dovecot, mailroom = servers
        ctx.log("pop3: the mbox as Dovecot keeps it")
        keep_dovecot_headers(dovecot, work, uid, mail_gid)
        results = common.rounds(
            ctx,
            {
                "dovecot": lambda: measure(dovecot, template, uid, mail_gid),
                "mailroom": lambda: measure(mailroom, template, uid, mail_gid),
                "floor": lambda: floors(template, uid, mail_gid),
            },
        )
    finally:
        for s in servers:
            s.stop()
        if local_conf is None:
            DOVECOT_LOCAL.unlink(missing_ok=True)
        else:
            DOVECOT_LOCAL.write_text(local_conf)
        for p in (MBOX, MAILROOM_CACHE, template, work / "dovecot-kept.mbox"):
            remove_tree(p)

    def values(key: str) -> dict[str, list[float]]:
        return {name: [r[key] for r in results[name]] for name in ("dovecot", "mailroom")}

    def floor(key: str) -> list[float]:
        return [r[key] for r in results["floor"]]

    mbox = f"{MESSAGES:,} × 50 KB, {size_mb:.0f} MB"
    return [
        common.Row(
            f"cold login + STAT, {mbox}: no index of the server's, mbox in the page cache",
            "ms",
            False,
            values("cold"),
            floor("cold"),
            note="floor: one read of the mbox from the page cache",
        ),
        common.Row(
            "warm login + STAT (the index the cold session left)",
            "ms",
            False,
            values("warm"),
            floor("warm"),
            note="floor: one SHA-512 crypt of the password",
        ),
        common.Row("UIDL, to the end of the list", "ms", False, values("uidl")),
        common.Row(
            "RETR of every message in turn",
            "MB/s",
            True,
            values("retr"),
            floor("retr"),
            note="floor: this client against an in-memory responder, its own ceiling",
        ),
        common.Row(
            "DELE 1 + QUIT on a fresh copy of the mbox as delivered (the whole file moves; "
            "Dovecot also writes its header fields into every message)",
            "ms",
            False,
            values("dele_delivered"),
            floor("dele_delivered"),
            target="no slower than Dovecot",
            meets=lambda m: m["mailroom"] <= m["dovecot"],
            note="floor: copying the mbox less its first message to a new file, fsynced",
        ),
        common.Row(
            "DELE 1 + QUIT on a fresh copy of the mbox as the server keeps it (Dovecot's: with its "
            "X-IMAPbase, X-UID, Status, Content-Length fields; mailroom's: as delivered)",
            "ms",
            False,
            values("dele_kept"),
            floor("dele_delivered"),
            target="no slower than Dovecot",
            meets=lambda m: m["mailroom"] <= m["dovecot"],
            note=f"floor as above; after each DELE 1 + QUIT the mbox held messages 1..{MESSAGES - 1:,} in order",
        ),
        common.Row(
            "peak RSS of the mailbox process (Dovecot's pop3, mailroom's pop3d after login)",
            "MiB",
            False,
            values("rss_mailbox"),
        ),
        common.Row(
            "peak RSS of all the server's processes, summed (Dovecot's master and children; inetd and pop3d)",
            "MiB",
            False,
            values("rss_all"),
        ),
    ]
