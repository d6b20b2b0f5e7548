"""The systems compared, as the sandbox has them installed, and how each is
configured, started, filled and watched.

All three deliver local mail into /var/mail/USER (mbox) for users of
bench.example, the sandbox's host name:
  mailroom  /usr/sbin/sendmail, its defaults plus a log file, outbound
            limits high enough never to hold a bench message (counted all
            the same, as in make bench), and no pacing per destination
            (destination_rate: Postfix and dma have none);
  dma       /usr/sbin/dma (dma 0.13 as Debian ships it; local mail through
            its set-user-id dma-mbox-create);
  postfix   /usr/sbin/sendmail.postfix, Debian's Postfix 3.7 with its
            defaults except: no chroot, logging to a file through postlogd,
            loopback only, no DNS.
"""

import os
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

from common import sh, wait_until

DOMAIN = "bench.example"
MAIL_SPOOL = Path("/var/mail")
SENDMAIL = {
    "mailroom": "/usr/sbin/sendmail",
    "dma": "/usr/sbin/dma",
    "postfix": "/usr/sbin/sendmail.postfix",
}
# Programs that live only as long as one submission or delivery: a run is
# over when none is left (Postfix's daemons stay, they are not counted).
TRANSIENT = {
    "sh", "cat", "sendmail", "sendmail.postfi", "postdrop", "postqueue", "postsuper",
    "dma", "dma-mbox-create", "qrun", "deliver",
}  # fmt: skip


def running_transient() -> list[str]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                comm = Path(f"/proc/{entry.name}/comm").read_text().strip()
                state = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if comm in TRANSIENT and state != "Z":
                found.append(f"{comm}[{entry.name}]")
    return found


def settle(timeout: float = 60) -> None:
    """Waits until every submission and delivery process has ended."""
    wait_until(lambda: not running_transient(), timeout, "the submission and delivery processes to end")


def clear_mailboxes() -> None:
    for p in MAIL_SPOOL.iterdir():
        if p.is_file():
            p.unlink()


# ---- counting delivered messages by their Message-IDs.

ID_LINE = re.compile(rb"^Message-ID: <([^>]+)@bench\.example>", re.M | re.I)


class Delivered:
    """Counts the bench's messages as they land in a set of files (mboxes,
    the SMTP sink's dump), reading only what was appended since the last
    look, and checks at the end that each expected one is there once."""

    def __init__(self, paths: list[Path], prefix: str):
        self.paths = paths
        self.marker = b"\nmessage-id: <" + prefix.encode().lower() + b"."
        self.offsets = {p: 0 for p in paths}
        self.count = 0

    def poll(self) -> int:
        for p in self.paths:
            try:
                size = p.stat().st_size
            except FileNotFoundError:
                continue
            start = self.offsets[p]
            if size <= start:
                continue
            with p.open("rb") as f:
                # From one byte back, so a header at the very start of the
                # new data still has its newline.
                f.seek(max(start - 1, 0))
                data = f.read(size - start + (1 if start else 0))
            if not start:
                data = b"\n" + data
            end = data.rfind(b"\n")
            self.count += data[: end + 1].lower().count(self.marker)
            self.offsets[p] = start + end if start else end
        return self.count

    def wait(self, n: int, timeout: float, what: str) -> float:
        """Waits until n are in; returns time.monotonic() then."""
        deadline = time.monotonic() + timeout
        # Looking costs a stat per file: less often when there are many,
        # to leave the systems their CPU.
        pause = 0.005 if len(self.paths) <= 4 else 0.02
        while self.poll() < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: {self.count} of {n} delivered after {timeout:.0f} s")
            time.sleep(pause)
        return time.monotonic()

    def check(self, expected: list[str], what: str) -> None:
        """Every expected Message-ID exactly once, nothing else of ours."""
        seen: Counter = Counter()
        for p in self.paths:
            if p.exists():
                seen.update(m.decode() for m in ID_LINE.findall(p.read_bytes()))
        want = set(expected)
        missing = [i for i in expected if seen[i] == 0]
        twice = [i for i, c in seen.items() if c > 1 and i in want]
        stray = [i for i in seen if i not in want and i.startswith(expected[0].rsplit(".", 1)[0])]
        if missing or twice or stray:
            raise RuntimeError(
                f"{what}: {len(missing)} of {len(expected)} messages missing, {len(twice)} delivered more than"
                f" once, {len(stray)} unexpected (e.g. {(missing + twice + stray)[:3]})"
            )


# ---- mailroom.

MAILROOM_CONF = f"""hostname = {DOMAIN}
log = /var/log/mailroom.log
limit_per_hour = 100000000 messages, 100000000 recipients
limit_per_day = 100000000 messages, 100000000 recipients
limit_domain_per_hour = 100000000 messages, 100000000 recipients
limit_domain_per_day = 100000000 messages, 100000000 recipients
destination_rate = unlimited
"""


def mailroom_configure(mailertable: dict[str, str] | None = None) -> None:
    Path("/etc/mail/mailroom.conf").write_text(MAILROOM_CONF)
    mt = Path("/etc/mail/mailertable")
    for p in mt.parent.glob("mailertable*"):
        p.unlink()
    if mailertable:
        mt.write_text("".join(f"{d} {route}\n" for d, route in mailertable.items()))
    for p in Path("/var/spool/mailroom/limits").glob("*"):
        p.unlink()


def mailroom_queue() -> int:
    return sum(1 for p in os.scandir("/var/spool/mqueue") if p.name.startswith(("qf", "hf", "Qf")))


# ---- dma.

DMA_CONF = Path("/etc/dma/dma.conf")


def dma_configure(smarthost: str | None = None, port: int | None = None) -> None:
    lines = ["MAILNAME /etc/mailname"]
    if smarthost:
        lines.append(f"SMARTHOST {smarthost}")
    if port:
        lines.append(f"PORT {port}")
    DMA_CONF.write_text("\n".join(lines) + "\n")


def dma_queue() -> int:
    return sum(1 for p in os.scandir("/var/spool/dma") if p.name.startswith("Q"))


# ---- Postfix.

POSTFIX_QUEUE = Path("/var/spool/postfix")
POSTFIX_MAIN = f"""compatibility_level = 3.6
myhostname = {DOMAIN}
mydomain = {DOMAIN}
myorigin = {DOMAIN}
mydestination = {DOMAIN}, localhost
alias_maps = hash:/etc/aliases
alias_database = hash:/etc/aliases
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtp_tls_security_level = none
biff = no
sendmail_path = /usr/sbin/sendmail.postfix
maillog_file = /var/log/postfix.log
transport_maps = hash:/etc/postfix/transport
"""


class Postfix:
    def __init__(self):
        self.running = False
        self.transport: dict[str, str] = {}
        self.configure()

    def configure(self, transport: dict[str, str] | None = None, hold: bool = False) -> None:
        self.transport = transport or {}
        main = POSTFIX_MAIN + ("header_checks = regexp:/etc/postfix/hold\n" if hold else "")
        Path("/etc/postfix/main.cf").write_text(main)
        Path("/etc/postfix/hold").write_text("/^Subject:/ HOLD held for the benchmark\n")
        Path("/etc/postfix/transport").write_text("".join(f"{d} {t}\n" for d, t in (transport or {}).items()))
        sh("postmap /etc/postfix/transport")
        if not Path("/etc/aliases.db").exists():
            Path("/etc/aliases").write_text("postmaster: root\n")
            sh("postalias /etc/aliases")
        # Debian chroots most services; the chroot would need copies of
        # /etc files and changes nothing measured here.
        sh("postconf -F '*/*/chroot = n'")
        # postsuper logs there itself when "postfix start" runs it before
        # postlogd is up (renaming copied queue files), as the postfix user.
        log = Path("/var/log/postfix.log")
        log.touch()
        shutil.chown(log, "postfix", "postfix")
        if not sh("postconf -M postlog/unix-dgram", check=False).stdout.strip():
            sh("postconf -M 'postlog/unix-dgram = postlog unix-dgram n - n - 1 postlogd'")
        if self.running:
            sh("postfix reload")

    def start(self) -> None:
        if not self.running:
            sh("postfix start")
            self.running = True
            wait_until(lambda: Path("/var/spool/postfix/public/pickup").exists(), 30, "Postfix's pickup")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.running:
            sh("postfix stop")
            self.running = False
            wait_until(
                lambda: sh("postfix status", check=False).returncode != 0, 30, "Postfix to stop"
            )

    def queued(self) -> int:
        n = 0
        for d in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _root, _dirs, files in os.walk(POSTFIX_QUEUE / d):
                n += len(files)
        return n

    def held(self) -> int:
        return sum(len(f) for _r, _d, f in os.walk(POSTFIX_QUEUE / "hold"))

    def release(self) -> None:
        """Every held message back to the queue, and a flush."""
        sh("postsuper -H ALL")
        sh("postqueue -f")


def smtp_fill(rcpts: list[str], messages: list[bytes], workers: int = 8) -> None:
    """Sends message I to rcpts[I] through the SMTP server on 127.0.0.1:25,
    `workers` connections at once."""
    import smtplib
    import threading

    errors: list[str] = []

    def work(k: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", 25, local_hostname=DOMAIN, timeout=60) as smtp:
                for i in range(k, len(rcpts), workers):
                    smtp.sendmail(f"web@{DOMAIN}", [rcpts[i]], messages[i])
        except (OSError, smtplib.SMTPException) as e:
            errors.append(f"{e!r}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"filling Postfix over SMTP: {errors[0]}")


def fill(submit: list[list[str]], message: bytes | list[bytes], workers: int = 8) -> None:
    """Runs each command of submit with its message on stdin, `workers` at
    a time (as several web requests would), and fails on any failure."""
    import threading

    errors: list[str] = []

    def work(k: int) -> None:
        for i in range(k, len(submit), workers):
            msg = message[i] if isinstance(message, list) else message
            p = subprocess.run(submit[i], input=msg, capture_output=True)
            if p.returncode != 0:
                errors.append(f"{' '.join(submit[i])}: exit {p.returncode}: {p.stderr.decode(errors='replace')}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(submit)} submissions failed: {errors[0]}")


# ---- a queue of N messages, filled without delivering, then run.


def fill_queue(name: str, postfix: "Postfix", rcpts: list[str], prefix: str) -> None:
    """Queues one 2 KB message to each of rcpts, Message-ID PREFIX.I, and
    delivers none: mailroom's sendmail -odq, dma's -bq; Postfix through its
    smtpd on 127.0.0.1:25 (8 connections: its sendmail would go through
    the single pickup process, several times slower) with every message
    put on hold by cleanup (header_checks HOLD), Postfix then left stopped,
    its hold queue full."""
    from common import message_2k

    messages = [message_2k(r, ident=f"{prefix}.{i}") for i, r in enumerate(rcpts)]
    if name == "mailroom":
        fill([[SENDMAIL[name], "-odq", "-i", r] for r in rcpts], messages)
    elif name == "dma":
        fill([[SENDMAIL[name], "-bq", "-i", r] for r in rcpts], messages)
    else:
        postfix.stop()
        postfix.configure(postfix.transport, hold=True)
        postfix.start()
        smtp_fill(rcpts, messages)
        wait_until(lambda: postfix.held() >= len(rcpts), 600, "Postfix to hold every message", poll=0.1)
        postfix.stop()
        postfix.configure(postfix.transport, hold=False)


# Where each system keeps a queued message (Postfix: its held ones).
SPOOL = {
    "mailroom": Path("/var/spool/mqueue"),
    "dma": Path("/var/spool/dma"),
    "postfix": POSTFIX_QUEUE / "hold",
}


class Queues:
    """Each queue a section drains is filled once, kept in the scratch
    directory, and put back before every round (cp -a, then a sync): the
    rounds measure the run, not the filling, which for Postfix (a single
    pickup process) takes far longer than the run itself.  Postfix renames
    the copied files after their new inodes when it starts (postsuper's
    structure check, part of "postfix start")."""

    def __init__(self, work: Path, postfix: "Postfix"):
        self.dir = work / "queues"
        self.postfix = postfix

    def load(self, name: str, key: str, rcpts: list[str]) -> str:
        """The queue `key` of system `name` (one message to each of rcpts),
        in place and not yet running; returns its messages' Message-ID
        prefix."""
        prefix = f"{key}-{name}"
        saved = self.dir / prefix
        spool = SPOOL[name]
        self.postfix.stop()
        clear_queue(name)
        if not saved.exists():
            fill_queue(name, self.postfix, rcpts, prefix)
            saved.mkdir(parents=True)
            sh(f"cp -a {spool}/. {saved}/")
        else:
            sh(f"cp -a {saved}/. {spool}/")
        os.sync()
        if name == "postfix":
            self.postfix.start()
            # Held, so nothing moves before run_queue().
            n = self.postfix.held()
        else:
            n = queued(name, self.postfix)
        if n != len(rcpts):
            raise RuntimeError(f"{name}: {n} messages queued, {len(rcpts)} wanted")
        return prefix


def clear_queue(name: str) -> None:
    """Empties a system's queue (Postfix stopped)."""
    spool = SPOOL[name]
    if not spool.exists():  # Postfix makes its queue on first start
        return
    # mailroom's new/ holds the express run's wake-up markers.
    dirs = [spool, spool / "new"] if name == "mailroom" else [spool]
    for d in dirs:
        for p in d.iterdir() if d.is_dir() else []:
            if p.is_file() and (name != "dma" or p.name.startswith(("M", "Q"))):
                p.unlink()


def run_queue(name: str, postfix: "Postfix") -> None:
    """Starts the delivery of the whole queue, as an admin would."""
    if name == "postfix":
        postfix.release()
        return
    # Both detach the run; nothing of it may hold a pipe of ours.
    status = subprocess.run(
        [SENDMAIL[name], "-q"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ).returncode
    if status != 0:
        raise RuntimeError(f"{SENDMAIL[name]} -q: exit {status}")


def queued(name: str, postfix: "Postfix") -> int:
    return {"mailroom": mailroom_queue, "dma": dma_queue, "postfix": postfix.queued}[name]()


def wait_queue_empty(name: str, postfix: "Postfix", what: str) -> None:
    """After the last delivery: the queue must empty (a system removes its
    queue file just after delivering)."""
    try:
        wait_until(lambda: queued(name, postfix) == 0, 30, "the queue to empty", poll=0.05)
    except RuntimeError:
        raise RuntimeError(f"{what}: {queued(name, postfix)} messages still queued") from None
