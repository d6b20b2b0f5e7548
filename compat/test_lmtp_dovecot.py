"""Delivery by LMTP into a real Dovecot (dovecot-lmtpd) on the installed
suite: `mailbox_transport = lmtp:unix:...` hands every mailbox copy to
Dovecot's LMTP server, run here with a private configuration (base_dir in
a temporary directory, only the lmtp UNIX listener, a passwd-file userdb
for three users, Maildir, the maildir quota with 1 KB for one user,
lmtp_rcpt_check_quota = yes, folders by +detail).  Mail is queued with
`sendmail -odq` and delivered by a queue run.

* One message to three users lands once in each user's Maildir, in one
  LMTP transaction; a spam score the filter sends to Spam lands in
  Dovecot's Spam folder (`user+Spam`).
* One user over quota at Dovecot: only that recipient stays queued,
  `mailq` says why (Dovecot's own text), the other two are delivered.
* A proxy between mailroom and Dovecot hangs up after passing the first
  recipient's reply to the final dot: the retry delivers the other two,
  and nobody has the message twice (the first reply was recorded before
  the cut).

Needs dovecot-core and dovecot-lmtpd (.ci/run installs them).  Runs as
root in the compat sandbox (lib/sandbox.sh).
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import mr

HOST = mr.HOST
DOVECOT = "/usr/sbin/dovecot"
LMTP = "/usr/lib/dovecot/lmtp"
USERS = ("lmanna", "lmbob", "lmcarl")


def wait_for(path, seconds=20):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.05)
    return False


class Dovecot:
    """A private Dovecot with only its LMTP service."""

    def __init__(self, quota_user):
        self.dir = tempfile.mkdtemp(prefix="mr-lmtp-")
        os.chmod(self.dir, 0o755)
        self.vmail = pwd.getpwnam("nobody")
        users = []
        for u in USERS:
            home = os.path.join(self.dir, "home", u)
            os.makedirs(home)
            os.chown(home, self.vmail.pw_uid, self.vmail.pw_gid)
            extra = "userdb_quota_rule=*:storage=1K" if u == quota_user else "userdb_quota_rule=*:storage=0"
            users.append(f"{u}::{self.vmail.pw_uid}:{self.vmail.pw_gid}::{home}::{extra}")
        with open(os.path.join(self.dir, "users"), "w") as f:
            f.write("\n".join(users) + "\n")
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(f"""protocols = lmtp
ssl = no
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
mail_location = maildir:~/Maildir
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = username_format=%n {self.dir}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {self.dir}/users
}}
recipient_delimiter = +
lmtp_save_to_detail_mailbox = yes
lda_mailbox_autocreate = yes
lmtp_rcpt_check_quota = yes
mail_plugins = quota
plugin {{
  quota = maildir:User quota
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
""")
        self.socket = os.path.join(self.dir, "run", "lmtp")

    def start(self):
        # The master forks and keeps its descriptors: not a pipe we would
        # wait on for ever.
        with open(os.path.join(self.dir, "start.log"), "wb") as out:
            p = subprocess.run([DOVECOT, "-c", self.conf], stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT, timeout=60)
        if p.returncode != 0:
            with open(os.path.join(self.dir, "start.log")) as f:
                raise AssertionError("dovecot did not start: " + f.read())
        if not wait_for(self.socket):
            raise AssertionError("no LMTP socket: " + self.log())

    def log(self):
        try:
            with open(os.path.join(self.dir, "dovecot.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        subprocess.run([DOVECOT, "-c", self.conf, "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        time.sleep(0.3)
        shutil.rmtree(self.dir, ignore_errors=True)

    def messages(self, user, folder=""):
        """The messages in `user`'s Maildir (a folder: `.Spam`)."""
        out = []
        base = os.path.join(self.dir, "home", user, "Maildir", folder)
        for sub in ("new", "cur"):
            d = os.path.join(base, sub)
            if os.path.isdir(d):
                for n in sorted(os.listdir(d)):
                    with open(os.path.join(d, n), "rb") as f:
                        out.append(f.read())
        return out

    def count(self, user, message_id, folder=""):
        return sum(1 for m in self.messages(user, folder) if message_id.encode() in m)


class CuttingProxy:
    """Between mailroom and Dovecot: passes everything, except that in its
    first session it hangs up once it has passed `replies` reply lines
    after the message's final dot."""

    def __init__(self, path, upstream, replies):
        self.path, self.upstream, self.replies = path, upstream, replies
        self.sessions = 0
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        os.chmod(path, 0o666)
        self.srv.listen(5)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.sessions += 1
            cut = self.sessions == 1
            threading.Thread(target=self.session, args=(c, cut), daemon=True).start()

    def session(self, client, cut):
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        up.connect(self.upstream)
        state = {"dot": False}

        def to_server():
            seen = b""
            while True:
                b = client.recv(65536)
                if not b:
                    break
                seen = (seen + b)[-5:]
                if seen.endswith(b"\r\n.\r\n"):
                    state["dot"] = True
                up.sendall(b)
            up.close()

        threading.Thread(target=to_server, daemon=True).start()
        passed = 0
        buf = b""
        while True:
            b = up.recv(65536)
            if not b:
                break
            if not (cut and state["dot"]):
                client.sendall(b)
                continue
            buf += b
            while b"\n" in buf and passed < self.replies:
                line, buf = buf.split(b"\n", 1)
                client.sendall(line + b"\n")
                passed += 1
            if passed >= self.replies:
                break
        client.shutdown(socket.SHUT_RDWR)
        client.close()
        up.close()

    def close(self):
        self.srv.close()


class LmtpDovecot(mr.Case):
    QUOTA_USER = None

    def setUp(self):
        for prog, pkg in ((DOVECOT, "dovecot-core"), (LMTP, "dovecot-lmtpd")):
            if not mr.have(prog, pkg):
                self.skipTest(f"not installed: {pkg}")
        super().setUp()
        for u in USERS:
            mr.ensure_user(u)
        self.dovecot = Dovecot(self.QUOTA_USER)
        self.addCleanup(self.dovecot.stop)
        self.dovecot.start()

    def configure(self, socket_path):
        mr.default_config(f"mailbox_transport = lmtp:unix:{socket_path}\n")

    def send(self, subject, rcpts, body="hello\n", extra=""):
        mid = f"<{subject.replace(' ', '-')}.{time.time_ns()}@example.org>"
        msg = (f"From: Alice <alice@example.org>\nTo: {', '.join(rcpts)}\nSubject: {subject}\n"
               f"Message-ID: {mid}\n{extra}\n{body}")
        p = mr.sendmail(["-odq", "-f", "alice@example.org"] + [f"{u}@{HOST}" for u in rcpts], msg)
        self.assertEqual(p.returncode, 0, p.stderr)
        return mid

    def diag(self):
        return f"\nmailroom log:\n{mr.log_since(self.mark)}\ndovecot log:\n{self.dovecot.log()}"


class Delivery(LmtpDovecot):
    QUOTA_USER = None

    def test_three_users_get_one_copy_each_and_spam_goes_to_the_spam_folder(self):
        self.configure(self.dovecot.socket)
        self.mark = mr.log_mark()
        mid = self.send("three users", USERS)
        spam = self.send("spammy", ["lmbob"], extra="X-Spam-Score: 7.2\n")
        self.run_queue()
        self.assertEqual(mr.queue_ids(), [], self.diag())
        for u in USERS:
            self.assertEqual(self.dovecot.count(u, mid), 1, u + self.diag())
        self.assertEqual(self.dovecot.count("lmbob", spam, ".Spam"), 1, self.diag())
        self.assertEqual(self.dovecot.count("lmbob", spam), 0, "not in the inbox")
        # Dovecot wrote the trace fields; one transaction for the three.
        got = self.dovecot.messages("lmanna")[0].decode(errors="replace")
        self.assertIn("Return-Path: <alice@example.org>", got)


class OverQuota(LmtpDovecot):
    QUOTA_USER = "lmcarl"

    def test_only_the_user_over_quota_at_dovecot_stays_queued(self):
        self.configure(self.dovecot.socket)
        self.mark = mr.log_mark()
        mid = self.send("big one", USERS, body="x" * 70 + "\n" * 1 + ("y" * 70 + "\n") * 60)
        self.run_queue()
        self.assertEqual(self.dovecot.count("lmanna", mid), 1, self.diag())
        self.assertEqual(self.dovecot.count("lmbob", mid), 1, self.diag())
        self.assertEqual(self.dovecot.count("lmcarl", mid), 0, self.diag())
        qid = mr.only_id(self)
        rcpts = mr.qf_recipients(qid)
        self.assertEqual(len(rcpts), 1, self.diag())
        self.assertIn("lmcarl", rcpts[0], self.diag())
        q = mr.run(["/usr/bin/mailq"], check=True).stdout.decode(errors="replace")
        self.assertIn("lmcarl", q)
        self.assertRegex(q, r"(?i)quota", q)
        self.assertNotIn("lmanna", q)


class CutAfterTheDot(LmtpDovecot):
    QUOTA_USER = None

    def test_a_cut_after_the_first_reply_retries_only_the_others_without_duplicates(self):
        proxy_path = os.path.join(self.dovecot.dir, "proxy")
        proxy = CuttingProxy(proxy_path, self.dovecot.socket, replies=1)
        self.addCleanup(proxy.close)
        self.configure(proxy_path)
        self.mark = mr.log_mark()
        mid = self.send("cut", USERS)
        self.run_queue()
        # Dovecot delivered all three; only the first reply got through.
        for u in USERS:
            self.assertEqual(self.dovecot.count(u, mid), 1, u + self.diag())
        qid = mr.only_id(self)
        rcpts = " ".join(mr.qf_recipients(qid))
        self.assertEqual(len(mr.qf_recipients(qid)), 2, self.diag())
        self.assertNotIn("lmanna", rcpts, self.diag())
        log = mr.log_since(self.mark)
        self.assertIn("connection lost after the message was sent", log)
        self.run_queue()
        self.assertEqual(mr.queue_ids(), [], self.diag())
        self.assertEqual(proxy.sessions, 2)
        # lmanna's reply was recorded: she is not sent it again.  The two
        # whose replies were cut get it again — Dovecot had committed it,
        # and RFC 2033 gives no way to know (README: "LMTP").
        self.assertEqual(self.dovecot.count("lmanna", mid), 1, self.diag())
        for u in ("lmbob", "lmcarl"):
            self.assertEqual(self.dovecot.count(u, mid), 2, u + self.diag())
        self.assertFalse([f for f in mr.queue_files() if f.startswith("lf")], mr.queue_files())


if __name__ == "__main__":
    unittest.main()
