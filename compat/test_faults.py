"""Fault injection on the installed suite (issue 9, item 2): a full queue
disk and a full mail spool (small tmpfs mounts over /var/spool/mqueue and
/var/mail), a read-only queue, a missing /var/mail, and a DNS server that
never answers.  Each gives a temporary failure and loses nothing: the
message is refused with 75 / 4xx before it was accepted, or it stays
queued and arrives, once and whole, when the trouble is gone.  A remote MX
(aiosmtpd) that takes the message and never answers the final dot is
given up on after the capped timeout, and the message goes later, once.
(EIO at every write and ENOSPC at every fill level are in tests/faults.rs.)

A UDP and TCP socket on 127.0.0.1:53 takes every query and answers none;
/etc/resolv.conf points at it (netfix.use_local_resolver).  A queue run
must not hang, must defer the message with a 4.x status and no bounce, and
must deliver it once DNS answers again (dnsmasq, compat/netfix.py).

Runs as root in the compat sandbox (lib/sandbox.sh).
"""

import mailbox
import os
import socket
import subprocess
import threading
import time
import unittest

import mr
import netfix
import smtpfix as sf

QUEUE = mr.QUEUE
SPOOL = "/var/mail"


def mount_tmpfs(testcase, path, kib):
    """A `kib` KiB tmpfs over `path`, with its owner and mode, until the
    test ends."""
    st = os.stat(path)
    subprocess.run(["mount", "-t", "tmpfs", "-o",
                    f"size={kib}k,mode={st.st_mode & 0o7777:o},uid={st.st_uid},gid={st.st_gid}",
                    "tmpfs", path], check=True)
    testcase.addCleanup(subprocess.run, ["umount", "-l", path], check=True)


def fill(path, leave_kib):
    """Fill the file system of `path` up to `leave_kib` KiB free (root's
    reserve does not exist on tmpfs); returns the filler's name."""
    filler = os.path.join(path, ".filler")
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave_kib * 1024))
    return filler


def message(tag, kib):
    """A message of about `kib` KiB whose every body line names `tag`."""
    lines = [f"{tag} line {i:06} ......................................." for i in range(kib * 16)]
    return (f"From: web@example.org\nTo: alice@{mr.HOST}\nSubject: {tag}\n\n" + "\n".join(lines)
            + "\n").encode()


def mbox_subjects(user):
    path = os.path.join(SPOOL, user)
    if not os.path.exists(path):
        return []
    mb = mailbox.mbox(path, create=False)
    try:
        return [m["Subject"] for m in mb]
    finally:
        mb.close()


def smtp_send(msg, rcpt=f"alice@{mr.HOST}"):
    """One transaction on port 25: the replies to MAIL, RCPT, DATA and the
    final dot, then whether RSET still works (the session goes on)."""
    r = sf.Raw(sf.SMTP_PORT, source=None)
    try:
        replies = [r.cmd("EHLO client.example.org"), r.cmd("MAIL FROM:<web@example.org>"),
                   r.cmd(f"RCPT TO:<{rcpt}>"), r.cmd("DATA")]
        if replies[-1].startswith(b"354"):
            body = msg.replace(b"\n", b"\r\n")
            r.send(body + b".\r\n")
            replies.append(r.reply())
        replies.append(r.cmd("RSET"))
        replies.append(r.quit())
        return replies[1:]
    finally:
        r.close()


def dead_pid():
    """The pid of a process that has exited."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def deferred(testcase, log, qid, rcpt):
    """Check that `log` defers `qid` for `rcpt` (a pattern) with a 4.x.x
    status and holds no bounce; returns that status and reason."""
    testcase.assertRegex(log, rf"{qid}: to=<?{rcpt}.*dsn=4\.\d\.\d+, stat=Deferred", log)
    testcase.assertNotIn("DSN:", log, "no bounce for a temporary failure")
    line = next(l for l in log.splitlines() if f"{qid}: " in l and "stat=Deferred" in l)
    return line[line.index("dsn="):]


def queue_files():
    return [f for f in mr.queue_files() if not f.startswith(".")]


class DiskTrouble(mr.Case):
    """The queue disk fills, goes read-only, the mail spool fills or is
    gone: refused before acceptance, or kept and delivered later."""

    def setUp(self):
        super().setUp()
        mr.ensure_user("alice")
        for p in (os.path.join(SPOOL, "alice"), os.path.join(SPOOL, ".alice.pop3-index")):
            if os.path.lexists(p):
                os.unlink(p)
        self.mark = mr.log_mark()

    def log(self):
        return mr.log_since(self.mark)

    def test_a_full_queue_disk_refuses_with_75_and_452_and_keeps_nothing_half_written(self):
        if sf.missing(sf.INETD):
            self.skipTest("needs openbsd-inetd")
        mr.default_config("min_free_space = 0\n")
        inetd = sf.Inetd().start()
        self.addCleanup(inetd.stop)
        mount_tmpfs(self, QUEUE, 512)
        filler = fill(QUEUE, 96)
        # A PHP site's 300 KB message: no room.  One line, 75, nothing left.
        p = mr.sendmail(["-t", "-i"], message("big", 300), user="alice")
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, 75, err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("No space left on device", err)
        self.assertEqual(queue_files(), [], "a refused message leaves nothing")
        # The same over SMTP: 452 4.3.1 at the end of DATA, and the session goes on.
        replies = smtp_send(message("big-smtp", 300))
        print(f"\nqueue disk full: sendmail exit {p.returncode} ({err.strip()}); "
              f"SMTP end of DATA: {replies[3].strip().decode()}")
        self.assertTrue(replies[3].startswith(b"452 4.3.1 Insufficient disk space"), replies)
        self.assertTrue(replies[4].startswith(b"250"), replies)
        self.assertEqual(queue_files(), [])
        # Small mail still fits, and is delivered.
        p = mr.sendmail(["-t", "-i"], message("small", 2), user="alice")
        self.assertEqual(p.returncode, 0, p.stderr)
        # Below the configured floor: refused before a byte is written.
        mr.default_config("min_free_space = 1M\n")
        p = mr.sendmail(["-t", "-i"], message("floor", 2), user="alice")
        self.assertEqual(p.returncode, 75, p.stderr)
        replies = smtp_send(message("floor-smtp", 2))
        self.assertTrue(replies[3].startswith(b"452 4.3.1"), replies)
        self.assertEqual(len(queue_files()), 2, "only the small message is queued")
        os.unlink(filler)
        mr.default_config("min_free_space = 0\n")
        self.run_queue()
        self.assertEqual(mbox_subjects("alice"), ["small"])
        self.assertEqual(queue_files(), [])

    def test_a_full_mail_spool_defers_keeps_the_mbox_intact_and_delivers_later(self):
        old = b"From x@example.org  Sat Nov 21 05:00:00 2026\nSubject: old\n\nold\n\n"
        mount_tmpfs(self, SPOOL, 256)
        pw = mr.ensure_user("alice")
        box = os.path.join(SPOOL, "alice")
        with open(box, "wb") as f:
            f.write(old)
        os.chown(box, pw.pw_uid, os.stat(SPOOL).st_gid)
        os.chmod(box, 0o660)
        filler = fill(SPOOL, 32)
        p = mr.sendmail(["-i", "alice"], message("roomless", 100), user="alice")
        self.assertEqual(p.returncode, 0, p.stderr)
        qid = mr.only_id(self)
        self.run_queue()
        with open(box, "rb") as f:
            self.assertEqual(f.read(), old, "the mbox must be as it was")
        self.assertEqual(mr.queue_ids(), [qid], "the message must wait")
        print(f"\nmail spool full: {deferred(self, self.log(), qid, 'alice')}")
        os.unlink(filler)
        self.run_queue()
        self.assertEqual(mbox_subjects("alice"), ["old", "roomless"])
        with open(box, "rb") as f:
            self.assertEqual(f.read().count(b"roomless line 001599"), 1, "whole, once")
        self.assertEqual(mr.queue_ids(), [])

    def test_a_read_only_queue_refuses_with_75_and_4xx(self):
        if sf.missing(sf.INETD):
            self.skipTest("needs openbsd-inetd")
        inetd = sf.Inetd().start()
        self.addCleanup(inetd.stop)
        subprocess.run(["mount", "--bind", QUEUE, QUEUE], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", QUEUE], check=True)
        subprocess.run(["mount", "-o", "remount,ro,bind", QUEUE], check=True)
        p = mr.sendmail(["-i", "alice"], b"Subject: ro\n\nx\n", user="alice")
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, 75, err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("Read-only file system", err)
        replies = smtp_send(b"Subject: ro smtp\n\nx\n")
        print(f"\nread-only queue: sendmail exit 75 ({err.strip()}); SMTP: {replies[3].strip().decode()}")
        self.assertTrue(replies[3].startswith(b"451 4.3.0"), replies)
        self.assertTrue(replies[4].startswith(b"250"), replies)

    def test_a_dotlock_left_by_a_dead_process_is_broken_and_the_mail_delivered(self):
        pw = mr.ensure_user("alice")
        lock = os.path.join(SPOOL, "alice.lock")
        for content, age in ((f"{dead_pid()}\n", 0), ("", 600)):
            with self.subTest(content=content, age=age):
                with open(lock, "w") as f:
                    f.write(content)
                os.chown(lock, pw.pw_uid, os.stat(SPOOL).st_gid)
                if age:
                    t = time.time() - age
                    os.utime(lock, (t, t))
                tag = f"after a dead lock {age}"
                p = mr.sendmail(["-i", "alice"], f"Subject: {tag}\n\nx\n".encode(), user="alice")
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertLess(self.run_queue().seconds, 30, "waited out a dead lock")
                self.assertIn(tag, mbox_subjects("alice"))
                self.assertFalse(os.path.exists(lock), "the stale lock must go")
                self.assertEqual(mr.queue_ids(), [])
        self.assertIn("removed stale lock /var/mail/alice.lock", self.log())

    def test_a_missing_mail_spool_defers_and_the_message_waits(self):
        # /var/mail goes (its files kept aside; a directory cannot be
        # renamed across the sandbox's overlay), and comes back as it was.
        st = os.stat(SPOOL)
        away = SPOOL + ".away"
        os.mkdir(away)
        for f in os.listdir(SPOOL):
            os.rename(os.path.join(SPOOL, f), os.path.join(away, f))
        os.rmdir(SPOOL)

        def restore():
            if not os.path.isdir(SPOOL):
                os.mkdir(SPOOL)
                os.chown(SPOOL, st.st_uid, st.st_gid)
                os.chmod(SPOOL, st.st_mode & 0o7777)
            if os.path.isdir(away):
                for f in os.listdir(away):
                    os.rename(os.path.join(away, f), os.path.join(SPOOL, f))
                os.rmdir(away)
        self.addCleanup(restore)
        p = mr.sendmail(["-i", "alice"], b"Subject: nospool\n\nwaiting\n", user="alice")
        self.assertEqual(p.returncode, 0, p.stderr)
        qid = mr.only_id(self)
        self.run_queue()
        self.assertEqual(mr.queue_ids(), [qid])
        deferred(self, self.log(), qid, "alice")
        restore()
        self.run_queue()
        self.assertEqual(mbox_subjects("alice"), ["nospool"])
        self.assertEqual(mr.queue_ids(), [])


class BlackHoleDNS:
    """Reads queries on 127.0.0.1:53 (UDP and TCP) and never replies."""

    def __init__(self):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 53))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", 53))
        self.tcp.listen(16)
        for s in (self.udp, self.tcp):
            s.settimeout(0.1)
        self.queries = 0
        self.held = []
        self.stopped = False
        self.threads = [threading.Thread(target=self._udp, daemon=True),
                        threading.Thread(target=self._tcp, daemon=True)]
        for t in self.threads:
            t.start()

    def _udp(self):
        while not self.stopped:
            try:
                self.udp.recvfrom(4096)
                self.queries += 1
            except socket.timeout:
                continue
            except OSError:
                return

    def _tcp(self):
        while not self.stopped:
            try:
                c, _ = self.tcp.accept()
                self.held.append(c)
                self.queries += 1
            except socket.timeout:
                continue
            except OSError:
                return

    def stop(self):
        self.stopped = True
        for t in self.threads:
            t.join()
        for s in [self.udp, self.tcp] + self.held:
            try:
                s.close()
            except OSError:
                pass


@unittest.skipUnless(netfix.available(), "needs dnsmasq, python3-aiosmtpd and openssl")
class DnsNeverAnswers(mr.Case):
    def setUp(self):
        super().setUp()
        mr.ensure_user("alice")
        self.net = netfix.Network()
        self.addCleanup(self.net.stop_all)
        mr.default_config("smtp_timeout_cap = 3s\nsmtp_connect_timeout = 3s\n")
        self.mark = mr.log_mark()

    def test_a_dns_server_that_never_answers_defers_and_loses_nothing(self):
        hole = BlackHoleDNS()
        self.addCleanup(hole.stop)
        netfix.use_local_resolver()
        p = mr.sendmail(["-i", "customer@silent.example"], b"Subject: dns\n\nwaiting\n", user="alice")
        self.assertEqual(p.returncode, 0, p.stderr)
        (qid,) = mr.queue_ids()
        took = self.run_queue().seconds
        print(f"\nDNS never answers: {hole.queries} queries unanswered, queue run took {took:.1f} s")
        self.assertGreater(hole.queries, 0, "the resolver never asked")
        self.assertLess(took, 60, "a queue run must not hang on DNS")
        self.assertEqual(mr.queue_ids(), [qid])
        q = mr.run(["mailq"]).stdout.decode()
        self.assertIn("(Deferred: ", q)
        deferred(self, mr.log_since(self.mark), qid, r"customer@silent\.example")
        self.assertFalse(os.path.exists("/var/mail/alice"), "no bounce for a DNS timeout")
        # DNS answers again: the message goes, once.
        hole.stop()
        self.net.dns(mx={"silent.example": [(10, "mx.silent.example")]},
                     hosts={"mx.silent.example": "127.0.0.3"})
        mx = self.net.smtp("127.0.0.3")
        self.run_queue()
        got = mx.wait_for(1, timeout=15)
        self.assertEqual([m.rcpt_tos for m in got], [["customer@silent.example"]])
        self.assertEqual(mr.queue_ids(), [])



@unittest.skipUnless(netfix.available(), "needs dnsmasq, python3-aiosmtpd and openssl")
class RemoteServerStalls(mr.Case):
    def setUp(self):
        super().setUp()
        mr.ensure_user("alice")
        if os.path.lexists(os.path.join(SPOOL, "alice")):
            os.unlink(os.path.join(SPOOL, "alice"))
        self.net = netfix.Network()
        self.addCleanup(self.net.stop_all)
        mr.default_config("smtp_timeout_cap = 3s\nsmtp_connect_timeout = 3s\n")
        self.net.dns(mx={"slow.example": [(10, "mx.slow.example")]},
                     hosts={"mx.slow.example": "127.0.0.3"})
        self.mark = mr.log_mark()

    def test_a_server_silent_after_the_final_dot_defers_and_the_message_goes_later(self):
        stalled = self.net.smtp("127.0.0.3", stall_after_data=120)
        p = mr.sendmail(["-i", "customer@slow.example"], b"Subject: stalled\n\nthe body\n", user="alice")
        self.assertEqual(p.returncode, 0, p.stderr)
        (qid,) = mr.queue_ids()
        took = self.run_queue().seconds
        self.assertEqual(len(stalled.wait_for(1)), 1, "the server got the data")
        self.assertLess(took, 60, "the runner hung on a silent server")
        self.assertEqual(mr.queue_ids(), [qid], "the job must be kept")
        status = deferred(self, mr.log_since(self.mark), qid, r"customer@slow\.example")
        self.assertFalse(os.path.exists(os.path.join(SPOOL, "alice")), "no bounce for a timeout")
        print(f"\nMX silent after DATA: gave up after {took:.1f} s: {status}")
        # The remote end is fixed: the next run delivers it, once.
        stalled.stop()
        good = self.net.smtp("127.0.0.3")
        self.run_queue()
        got = good.wait_for(1, timeout=15)
        self.assertEqual([m.rcpt_tos for m in got], [["customer@slow.example"]])
        self.assertIn(b"the body", got[0].data)
        self.assertEqual(mr.queue_ids(), [])


if __name__ == "__main__":
    unittest.main()
