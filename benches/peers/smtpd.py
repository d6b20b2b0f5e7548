"""smtpd (issue 20, target 4): messages/s accepted over SMTP on
127.0.0.1:25 by mailroom's sendmail -bs, started per connection by
openbsd-inetd, and by Postfix 3.7's smtpd; 8 parallel clients, 2 KB and
50 KB messages, one message per connection and 20 per connection.

Only acceptance is measured: nothing is delivered.
  - mailroom: installed by make install; inetd's line is mailroom's own
    (etc/inetd/inetd.conf) with the per-minute limit raised
    (nowait.1000000: openbsd-inetd turns a service off for ten minutes
    past it, and the bench opens thousands of connections a minute);
    mailroom.conf adds delivery_mode = queue (only queue), inbound_checks
    = no (there is no DNS in here), smtp_greet_pause = 0 (its default
    300 ms pause before the greeting, against clients that talk first,
    has no counterpart here: Postfix runs without postscreen) and a log
    file;
  - Postfix: Debian's package and master.cf (smtpd started by master and
    reused for up to 100 connections; no postscreen), main.cf as
    written here (inet_interfaces = loopback-only,
    the recipient a local user checked against passwd and aliases, a log
    file through postlogd, services not chrooted) and header_checks
    putting every message on hold.
Both fsync each message before the 250 (mailroom's queue, Postfix's
cleanup).  Each round starts each server afresh, warms it with 0.5 s of
traffic, then runs the four cases, ~4 s each; after each case the
queue must hold exactly as many messages as the clients got 250s for
(mailroom: qf files; Postfix: the hold queue), and is then emptied.

The clients: 8 processes of this script, each connecting, waiting for
the 220, EHLO, then MAIL, RCPT and DATA in one write (both servers offer
PIPELINING), the message, and after the last message QUIT; no client
starts a connection after the case's 4 s.  The rate is the messages
accepted over the time until the last client is done.  The floor line is
these clients against an in-memory responder (8 processes answering
every command at once, without storing anything): the clients' own
ceiling, measured in the same rounds, to show they are not what limits
the servers; each row also notes the CPU the clients used.  (In
interleaved runs against both servers, these clients and the Rust ones
of make bench's smtp section, MAILROOM_BENCH_SMTP_TARGET, reached the
same rates within the noise, 2 KB at 1 and 10 messages per connection.)

Postfix's main.cf and master.cf, /etc/aliases and mailroom.conf are put
back as they were at the end.
"""

import grp
import os
import pwd
import signal
import socket
import subprocess
import time
import traceback
from pathlib import Path

import common

ADDR = ("127.0.0.1", 25)
CLIENTS = 8
CASE_SECONDS = 4.0
WARMUP_SECONDS = 0.5
DOMAIN = "bench.example"
RCPT = f"bob@{DOMAIN}"
SENDER = "sender@client.bench.example"
# (message size, messages per connection)
CASES = [(2 * 1024, 1), (2 * 1024, 20), (50 * 1024, 1), (50 * 1024, 20)]

INETD = "/usr/sbin/inetd"
SENDMAIL = "/usr/sbin/sendmail"
MAILROOM_CONF = Path("/etc/mail/mailroom.conf")
MAILROOM_KEYS = f"""
# bench-peers smtpd: acceptance only, no DNS, no greet pause.
hostname = {DOMAIN}
log = /var/log/mail.log
delivery_mode = queue
inbound_checks = no
smtp_greet_pause = 0
"""
MQUEUE = Path("/var/spool/mqueue")
POSTFIX_QUEUE = Path("/var/spool/postfix")
POSTFIX_MAIN_CF = f"""\
compatibility_level = 3.6
myhostname = {DOMAIN}
mydomain = {DOMAIN}
myorigin = {DOMAIN}
mydestination = {DOMAIN}, localhost
alias_maps = hash:/etc/aliases
alias_database = hash:/etc/aliases
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
biff = no
maillog_file = /var/log/postfix.log
header_checks = regexp:/etc/postfix/hold
"""


def message(size: int) -> bytes:
    """The message of benches/bench.rs's smtp section (message_2k()), CRLF,
    cut at size bytes and ended with CRLF and the dot; no line starts with
    a dot.  The Subject: is what Postfix's header_checks holds on."""
    head = (
        "To: info@example.com\r\nSubject: Contact form\r\nFrom: web@example.com\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n\r\n"
    )
    line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"
    text = (head + line * (size // len(line) + 1)).encode()[:size]
    if not text.endswith(b"\r\n"):
        text = text[:-2] + b"\r\n"
    return text + b".\r\n"


# ---- the clients


class SmtpError(Exception):
    pass


class Reply:
    """Reads SMTP replies off a socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def expect(self, code: bytes, what: str) -> bytes:
        """One whole reply (all its lines); fails unless its code is code."""
        last = 0  # where the reply's last line starts
        while True:
            i = self.buf.find(b"\r\n", last)
            if i < 0:
                data = self.sock.recv(65536)
                if not data:
                    raise SmtpError(f"{what}: connection closed")
                self.buf += data
                continue
            if self.buf[last + 3 : last + 4] == b"-":
                last = i + 2
                continue
            reply, self.buf = self.buf[: i + 2], self.buf[i + 2 :]
            if reply[last : last + 3] != code:
                raise SmtpError(f"{what}: {reply.decode('latin-1').strip()}")
            return reply


def session(data: bytes, per_conn: int) -> tuple[int, str]:
    """One connection of per_conn messages: how many were accepted, and
    what went wrong ("" when nothing did)."""
    accepted = 0
    try:
        with socket.create_connection(ADDR, timeout=60) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            r = Reply(s)
            r.expect(b"220", "greeting")
            s.sendall(b"EHLO client.bench.example\r\n")
            pipelining = b"PIPELINING" in r.expect(b"250", "EHLO").upper()
            mail = f"MAIL FROM:<{SENDER}>\r\n".encode()
            rcpt = f"RCPT TO:<{RCPT}>\r\n".encode()
            for _ in range(per_conn):
                if pipelining:
                    s.sendall(mail + rcpt + b"DATA\r\n")
                else:
                    s.sendall(mail)
                r.expect(b"250", "MAIL")
                if not pipelining:
                    s.sendall(rcpt)
                r.expect(b"250", "RCPT")
                if not pipelining:
                    s.sendall(b"DATA\r\n")
                r.expect(b"354", "DATA")
                s.sendall(data)
                r.expect(b"250", "end of data")
                accepted += 1
            s.sendall(b"QUIT\r\n")
            r.expect(b"221", "QUIT")
    except (OSError, SmtpError) as e:
        return accepted, str(e) or type(e).__name__
    return accepted, ""


def client(data: bytes, per_conn: int, start: float, seconds: float, out: int) -> None:
    """One client process: connections until start + seconds (or 20
    failures in a row); writes "accepted connections failures
    first-failure" to the pipe out."""
    while time.monotonic() < start:
        time.sleep(0.001)
    accepted = conns = failures = in_a_row = 0
    first = ""
    while time.monotonic() < start + seconds and in_a_row < 20:
        conns += 1
        got, error = session(data, per_conn)
        accepted += got
        if error:
            failures += 1
            in_a_row += 1
            first = first or error
            time.sleep(0.01)
        else:
            in_a_row = 0
    os.write(out, f"{accepted} {conns} {failures} {first}".encode())


class Load:
    """What CLIENTS clients came to in one case."""

    def __init__(self):
        self.accepted = self.connections = self.failures = 0
        self.first_failure = ""
        self.seconds = 0.0
        self.client_cpu = 0.0

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


def load(data: bytes, per_conn: int, seconds: float) -> Load:
    """CLIENTS client processes for seconds; what they came to."""
    start = time.monotonic() + 0.05
    kids = []
    for _ in range(CLIENTS):
        rd, wr = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(rd)
                client(data, per_conn, start, seconds, wr)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        os.close(wr)
        kids.append((pid, rd))
    total = Load()
    for pid, rd in kids:
        chunks = []
        while chunk := os.read(rd, 65536):
            chunks.append(chunk)
        os.close(rd)
        _, status, usage = os.wait4(pid, 0)
        total.client_cpu += usage.ru_utime + usage.ru_stime
        if status != 0 or not chunks:
            raise RuntimeError(f"a client process failed (status {status})")
        accepted, conns, failures, first = (b"".join(chunks).decode().split(" ", 3) + [""])[:4]
        total.accepted += int(accepted)
        total.connections += int(conns)
        total.failures += int(failures)
        total.first_failure = total.first_failure or first
    total.seconds = time.monotonic() - start
    return total


# ---- the servers


def listening() -> bool:
    want = "{:08X}:{:04X}".format(int.from_bytes(socket.inet_aton(ADDR[0]), "little"), ADDR[1])
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[1] == want and f[3] == "0A":
            return True
    return False


class Mailroom:
    name = "mailroom"

    def __init__(self, work: Path):
        for prog in (INETD, SENDMAIL):
            if not os.access(prog, os.X_OK):
                raise RuntimeError(f"no {prog}: enter.sh installs openbsd-inetd and mailroom")
        self.conf = work / "inetd.conf"
        self.conf.write_text(
            f"{ADDR[0]}:{ADDR[1]}\tstream\ttcp\tnowait.1000000\troot\t{SENDMAIL}\tsendmail -bs\n"
        )
        self.log = work / "inetd.out"
        self.proc = None

    def start(self) -> None:
        self.clear()
        self.proc = subprocess.Popen(
            [INETD, "-i", str(self.conf)],
            stdin=subprocess.DEVNULL,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )

        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"inetd exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            return listening()

        common.wait_until(up, 20, f"inetd to listen on {ADDR[0]}:{ADDR[1]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        # sendmail -bs processes still finishing a session end on their own.
        common.wait_until(lambda: not listening(), 20, "inetd to stop listening")

    def queued(self) -> int:
        dirs = [MQUEUE] + [d for d in (MQUEUE / "qf",) if d.is_dir()]
        return sum(1 for d in dirs for e in os.scandir(d) if e.name.startswith("qf"))

    def clear(self) -> None:
        for d in [MQUEUE] + [d for d in (MQUEUE / "qf", MQUEUE / "df") if d.is_dir()]:
            for e in os.scandir(d):
                if e.is_file():
                    os.unlink(e.path)


class InetdFloor(Mailroom):
    """The inetd floor: the same inetd starting inetd_floor.c's program
    for each connection, which writes each message to a file, fsyncs it,
    renames it and fsyncs the directory before its 250 (mailroom's
    promise, with nothing else: no checks, no log, no privilege split)."""

    name = "inetd floor"

    def __init__(self, work: Path):
        if not os.access(INETD, os.X_OK):
            raise RuntimeError(f"no {INETD}: enter.sh installs openbsd-inetd")
        prog = work / "inetd-floor"
        common.sh(f"gcc -O2 -o {prog} {Path(__file__).parent / 'inetd_floor.c'}")
        self.spool = work / "floor-spool"
        self.spool.mkdir(exist_ok=True)
        self.conf = work / "inetd-floor.conf"
        self.conf.write_text(
            f"{ADDR[0]}:{ADDR[1]}\tstream\ttcp\tnowait.1000000\troot\t{prog}\tinetd-floor {self.spool}\n"
        )
        self.log = work / "inetd-floor.out"
        self.proc = None

    def queued(self) -> int:
        return sum(1 for e in os.scandir(self.spool) if e.name.startswith("msg."))

    def clear(self) -> None:
        for e in os.scandir(self.spool):
            os.unlink(e.path)


class Postfix:
    name = "postfix"

    def __init__(self):
        if not os.access("/usr/sbin/postfix", os.X_OK):
            raise RuntimeError("no /usr/sbin/postfix: enter.sh installs postfix")

    def start(self) -> None:
        common.sh("postfix start")
        common.wait_until(listening, 20, f"Postfix's smtpd to listen on {ADDR[0]}:{ADDR[1]}")
        self.clear()

    def stop(self) -> None:
        common.sh("postfix stop")
        common.wait_until(lambda: not listening(), 20, "Postfix to stop listening")

    def queued(self) -> int:
        return sum(
            len(files)
            for sub in ("maildrop", "incoming", "active", "deferred", "hold")
            for _, _, files in os.walk(POSTFIX_QUEUE / sub)
        )

    def clear(self) -> None:
        common.sh("postsuper -d ALL")


class Responder:
    """The floor's server: CLIENTS processes sharing one listening socket,
    answering every command at once and storing nothing."""

    name = "floor"

    def __init__(self):
        self.pids: list[int] = []

    def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(ADDR)
        sock.listen(128)
        for _ in range(CLIENTS):
            pid = os.fork()
            if pid == 0:
                try:
                    while True:
                        conn, _ = sock.accept()
                        try:
                            self.serve(conn)
                        except OSError:
                            conn.close()
                finally:
                    os._exit(0)
            self.pids.append(pid)
        sock.close()

    @staticmethod
    def serve(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sendall(b"220 responder ESMTP\r\n")
        buf = bytearray()
        pos = 0
        in_data = False
        while data := conn.recv(1 << 16):
            buf += data
            out = []
            while True:
                if in_data:
                    i = buf.find(b"\r\n.\r\n", max(pos - 2, 0))
                    if i < 0:
                        break
                    pos, in_data = i + 5, False
                    out.append(b"250 2.0.0 queued\r\n")
                    continue
                i = buf.find(b"\r\n", pos)
                if i < 0:
                    break
                verb = bytes(buf[pos : pos + 4]).upper()
                pos = i + 2
                if verb == b"EHLO":
                    out.append(b"250-responder\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    out.append(b"354 go on\r\n")
                    in_data = True
                elif verb == b"QUIT":
                    conn.sendall(b"".join(out) + b"221 bye\r\n")
                    conn.close()
                    return
                else:
                    out.append(b"250 ok\r\n")
            if out:
                conn.sendall(b"".join(out))
            del buf[:pos]
            pos = 0
        conn.close()

    def stop(self) -> None:
        for pid in self.pids:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        self.pids = []

    def queued(self) -> int | None:
        return None

    def clear(self) -> None:
        pass


def measure(server, datas: dict[int, bytes], log) -> dict[tuple[int, int], Load]:
    """One round of one server: start it, warm it, the four cases, stop it."""
    server.start()
    try:
        load(datas[CASES[0][0]], 1, WARMUP_SECONDS)
        server.clear()
        loads = {}
        for size, per_conn in CASES:
            got = load(datas[size], per_conn, CASE_SECONDS)
            if got.accepted == 0:
                raise RuntimeError(f"{server.name}: nothing accepted ({got.first_failure})")
            if (queued := server.queued()) is not None:
                # The 250 comes after the message is on disk; a failed
                # connection may have queued one its client never heard of.
                deadline = time.monotonic() + 2
                while queued < got.accepted and time.monotonic() < deadline:
                    time.sleep(0.05)
                    queued = server.queued()
                if not got.accepted <= queued <= got.accepted + got.failures:
                    raise RuntimeError(
                        f"{server.name}, {size // 1024} KB × {per_conn}: {queued} messages queued, "
                        f"the clients got {got.accepted} 250s"
                    )
                log(f"smtpd: {server.name}, {size // 1024} KB × {per_conn}: {got.accepted} 250s, {queued} queued")
            server.clear()
            loads[(size, per_conn)] = got
        return loads
    finally:
        server.stop()


def configure_postfix() -> dict[Path, str | None]:
    """main.cf (master.cf's services unchrooted) and the hold rule; what
    the files held before."""
    saved = {}
    for p in (Path("/etc/postfix/main.cf"), Path("/etc/postfix/master.cf"), Path("/etc/aliases")):
        saved[p] = p.read_text() if p.exists() else None
    Path("/etc/postfix/main.cf").write_text(POSTFIX_MAIN_CF)
    common.sh("postconf -F '*/*/chroot = n'")
    if not common.sh("postconf -M postlog/unix-dgram", check=False).stdout.strip():
        common.sh("postconf -M 'postlog/unix-dgram = postlog unix-dgram n - n - 1 postlogd'")
    Path("/etc/postfix/hold").write_text("/^Subject:/ HOLD held for the benchmark\n")
    if saved[Path("/etc/aliases")] is None:
        Path("/etc/aliases").write_text("postmaster: root\n")
    # Postfix's own postalias: /usr/bin/newaliases is mailroom's here.
    common.sh("postalias /etc/aliases")
    return saved


def run(ctx) -> list[common.Row]:
    work = Path(ctx.work) / "smtpd"
    work.mkdir(parents=True, exist_ok=True)
    try:
        pwd.getpwnam("bob")
    except KeyError:
        subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", "bob"], check=True)
    if common.sh("postfix status", check=False).returncode == 0:
        common.sh("postfix stop")
    saved = configure_postfix()
    saved[MAILROOM_CONF] = MAILROOM_CONF.read_text() if MAILROOM_CONF.exists() else None
    MAILROOM_CONF.write_text((saved[MAILROOM_CONF] or "") + MAILROOM_KEYS)
    # The log file as benches/bench.rs makes it: sendmail -bs's network
    # process (mail:mqueue) writes it too.
    log = Path("/var/log/mail.log")
    log.touch()
    os.chown(log, 0, grp.getgrnam("mqueue").gr_gid)
    os.chmod(log, 0o660)
    datas = {size: message(size) for size, _ in CASES}
    try:
        servers = {
            "postfix": Postfix(),
            "mailroom": Mailroom(work),
            "floor": Responder(),
            "inetd floor": InetdFloor(work),
        }
        results = common.rounds(ctx, {name: (lambda s=s: measure(s, datas, ctx.log)) for name, s in servers.items()})
    finally:
        for p, text in saved.items():
            if text is None:
                p.unlink(missing_ok=True)
            else:
                p.write_text(text)
    rows = []
    for size, per_conn in CASES:
        key = (size, per_conn)
        loads = {name: [r[key] for r in results[name]] for name in results}
        cpu = ", ".join(
            f"{name} {common.median([x.client_cpu / x.seconds for x in loads[name]]):.2f}"
            for name in ("postfix", "mailroom", "floor")
        )
        inetd_floor = common.median([x.rate for x in loads["inetd floor"]])
        mailroom = common.median([x.rate for x in loads["mailroom"]])
        notes = [
            f"inetd floor (a minimal program per connection from the same inetd, each message "
            f"written, fsynced, renamed, directory fsynced): {common.fmt(inetd_floor)} msg/s, "
            f"mailroom at {mailroom / inetd_floor:.2f}× it",
            f"the clients' CPU, in cores (medians): {cpu}",
        ]
        if key == CASES[0]:
            notes.insert(0, "floor: these clients against an in-memory responder, their own ceiling")
            notes.insert(1, "after every case the queue held as many messages as the clients got 250s")
        for name in ("postfix", "mailroom"):
            failed = sum(x.failures for x in loads[name])
            if failed:
                first = next(x.first_failure for x in loads[name] if x.failures)
                notes.append(f"{name}: {failed} connections failed, first: {first}")
        if per_conn == 1:
            target = "1 msg/conn: ≥ Postfix"
            meets = lambda m: m["mailroom"] >= m["postfix"]  # noqa: E731
        else:
            target = f"{per_conn} msg/conn: > Postfix"
            meets = lambda m: m["mailroom"] > m["postfix"]  # noqa: E731
        rows.append(
            common.Row(
                f"{size // 1024} KB messages, {per_conn} per connection, {CLIENTS} clients",
                "msg/s",
                True,
                {name: [x.rate for x in loads[name]] for name in ("postfix", "mailroom")},
                [x.rate for x in loads["floor"]],
                target=target,
                meets=meets,
                note="; ".join(notes),
            )
        )
    return rows
