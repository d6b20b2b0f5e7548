"""IMAP through Dovecot's real server on mailroom's accounts, the way
README "How to add IMAP" sets it up: a private Dovecot 2.3 instance
(`dovecot -F` with base_dir under /run, imap on 127.0.0.1:11143) whose
configuration is the installed /usr/share/mailroom/dovecot/99-mailroom.conf
and a few lines for the private instance; Python's imaplib is the client.
Logins go through the installed set-uid checkpassword program (the login
door pop3d and SMTP AUTH use); pop3d runs under inetd on 127.0.0.1:11110
(compat/pop3fix.py); mail is delivered by the installed `deliver`.

* Logins: info@shop.example (a system user made by `mailroom mailbox add`),
  also written info/shop.example and info%shop.example; a virtual account
  of /etc/mail/passwd; a wrong password and an unknown login get the same
  refusal, and the log tells them apart without naming the unknown login.
  `doveadm -u` finds the same mailboxes (the userdb side of the program).
* The program itself, run as Dovecot runs it (as `dovecot`, the request on
  descriptor 3): answers as root, then runs the reply program with every
  id back to the caller's and the caller's environment plus the answer;
  exit 1 for a wrong password and an unknown login, 3 for an unknown
  login in a userdb lookup, 2 for misuse; a user outside group dovecot
  cannot run it, one inside it but not in checkpassword_callers is refused.
* LIST shows INBOX and the Spam folder mailroom's spam rule files into.
* mailroom's quota is Dovecot's (`doveadm quota get`).
* A message fetched by IMAP (BODY.PEEK[]) is the one POP3 RETR gives, byte
  for byte -- with one difference by design for mbox, checked exactly: a
  body line `From ...` is stored mboxrd-quoted as `>From ...`; pop3d
  removes the quoting (the client gets the message that was delivered),
  Dovecot does not (it reads mbox as mboxo, where the `>` cannot be told
  from a real one).  The mail readers' private header fields (Status,
  X-UID, X-Keywords, ... which Dovecot writes into the mbox even on
  reads) are hidden by both.
* A message expunged by IMAP is gone for POP3; one deleted by POP3 is gone
  for IMAP.
* COMPAT_IMAP_DELIVERIES (default 1000) deliveries while an IMAP client
  expunges and a POP3 client deletes: every message delivered once, each
  deleted by the one client whose share it was or still there, and the
  mailbox whole for Python's `mailbox` and for `doveadm` -- for an mbox and
  for a Maildir.

Needs dovecot-imapd (and dovecot-core) and openbsd-inetd; .ci/run installs
them.  Runs as root in the compat sandbox (lib/sandbox.sh).
"""

import email
import grp
import imaplib
import json
import mailbox
import os
import poplib
import pwd
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import mr
import pop3fix as pf

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
IMAP_SERVER = "/usr/lib/dovecot/imap"
CHECKPASSWORD = "/usr/libexec/mailroom/checkpassword"
SNIPPET = "/usr/share/mailroom/dovecot/99-mailroom.conf"
DELIVER = "/usr/libexec/mailroom/deliver"
ADDR = "127.0.0.1"
IMAP_PORT = 11143
PASSWORD = "Imap-pw 1"
DELIVERIES = int(os.environ.get("COMPAT_IMAP_DELIVERIES", "1000"))
# What Dovecot answers every failed login (its text; the same for both).
REFUSAL = b"[AUTHENTICATIONFAILED] Authentication failed."


class Dovecot:
    """A private Dovecot: its own base_dir and log under /run (the login
    and auth processes, as dovenull and dovecot, must reach it), imap on
    127.0.0.1:11143, the shipped snippet included as an admin would."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="dovecot.", dir="/run")
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.proc = None

    def start(self):
        with open(self.conf, "w") as f:
            f.write(
                "# compat/test_imap_dovecot.py: a private instance\n"
                f"base_dir = {self.dir}/run\nstate_dir = {self.dir}/state\n"
                f"log_path = {self.log_path}\n"
                "protocols = imap\nlisten = 127.0.0.1\nssl = no\n"
                # Loopback is "secured" anyway; said for clarity.
                "disable_plaintext_auth = no\n"
                # Dovecot's own pause after a failure: off, to keep the test
                # short (mailroom's pop3_auth_fail_delay is 0 here too).
                "auth_failure_delay = 0\nauth_verbose = yes\n"
                "service imap-login {\n  inet_listener imap {\n"
                f"    address = {ADDR}\n    port = {IMAP_PORT}\n  }}\n"
                "  inet_listener imaps {\n    port = 0\n  }\n}\n"
                f"!include {SNIPPET}\n")
        os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
        log = open(os.path.join(self.dir, "stderr.log"), "ab")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if not pf.wait_until(lambda: self.proc.poll() is not None
                             or pf.listening(IMAP_PORT), 15):
            self.stop()
            raise RuntimeError(f"dovecot did not listen: {self.log()}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"dovecot exited {self.proc.returncode}: {self.log()}")
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self):
        out = ""
        for name in ("dovecot.log", "stderr.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    out += f.read()
            except OSError:
                pass
        return out

    def doveadm(self, *args):
        """`doveadm -c CONF ARGS` (as root); the CompletedProcess."""
        return mr.run([DOVEADM, "-c", self.conf] + list(args), timeout=120)


def missing():
    return [p for p in (DOVECOT, DOVEADM, IMAP_SERVER, pf.INETD, pf.POP3D, DELIVER, CHECKPASSWORD,
                        SNIPPET) if not os.path.exists(p)]


def message(serial, subject=None, extra="", body=None):
    subject = subject or f"message {serial}"
    body = body if body is not None else f"serial {serial}\nline two\n"
    return (f"From: Alice <alice@example.org>\nTo: info@shop.example\nSubject: {subject}\n"
            f"Message-ID: <{serial}.imap@example.org>\nX-Serial: {serial}\n{extra}\n{body}").encode()


def deliver(rcpt, msg):
    p = mr.run([DELIVER, "-f", "alice@example.org", rcpt], input=msg)
    if p.returncode != 0:
        raise AssertionError(f"deliver to {rcpt} exited {p.returncode}: "
                             f"{p.stderr.decode(errors='replace')}")


def quoted(login):
    """A login as an IMAP quoted string (info%shop.example holds a list
    wildcard, which an atom may not)."""
    return '"' + login.replace("\\", "\\\\").replace('"', '\\"') + '"'


def imap(login, password=PASSWORD):
    m = imaplib.IMAP4(ADDR, IMAP_PORT, timeout=60)
    m.login(quoted(login), password)
    return m


def refusal(login, password):
    """The server's words when `login` is refused (raises if it is not)."""
    m = imaplib.IMAP4(ADDR, IMAP_PORT, timeout=60)
    try:
        m.login(quoted(login), password)
    except imaplib.IMAP4.error as e:
        said = e.args[0] if e.args else b""
        return said if isinstance(said, bytes) else str(said).encode()
    finally:
        try:
            m.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    raise AssertionError(f"{login} with {password!r} logged in")


def logout(m):
    """LOGOUT, whatever state the connection is in."""
    try:
        m.logout()
    except (imaplib.IMAP4.error, OSError):
        pass


def imap_messages(m, folder="INBOX"):
    """[(uid, bytes of BODY.PEEK[])] of a folder, in order."""
    typ, _ = m.select(quoted(folder))
    assert typ == "OK", folder
    typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
    out = []
    for item in data:
        if isinstance(item, tuple):
            uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
            out.append((uid, item[1]))
    return out


def serial_of(msg):
    m = re.search(rb"(?mi)^X-Serial: (\d+)\r?$", msg)
    return int(m.group(1)) if m else None


def pop3(login, password=PASSWORD):
    p = poplib.POP3(pf.ADDR, pf.PORT, timeout=60)
    try:
        p.user(login)
        p.pass_(password)
    except BaseException:
        p.close()
        raise
    return p


def pop3_messages(p):
    """[(number, bytes as RETR gives them, CRLF line ends)]."""
    count, _ = p.stat()
    out = []
    for i in range(1, count + 1):
        _, lines, _ = p.retr(i)
        out.append((i, b"\r\n".join(lines) + b"\r\n"))
    return out


class Imap(mr.Case):
    """One Dovecot, one inetd with pop3d, and the accounts, for the class."""

    @classmethod
    def setUpClass(cls):
        absent = missing()
        if absent:
            if mr.under_ci():
                raise AssertionError(f"prerequisite missing under CI: {' '.join(absent)}")
            raise unittest.SkipTest(f"not installed: {' '.join(absent)}")
        etc_mail = mr.snapshot_etc_mail()
        cls.addClassCleanup(mr.restore_etc_mail, etc_mail)
        cls.configure()
        mr.ensure_user("vmail", home=False)
        for args in (["domain", "add", "shop.example"],
                     ["domain", "add", "virt.example", "--virtual"],
                     ["mailbox", "add", "info@shop.example", "--password-stdin"],
                     ["mailbox", "add", "sales@virt.example", "--virtual", "--password-stdin"]):
            p = mr.run(["/usr/sbin/mailroom"] + args, input=(PASSWORD + "\n").encode())
            if p.returncode != 0:
                raise AssertionError(f"mailroom {' '.join(args)}: {p.stdout + p.stderr}")
        p = mr.run(["/usr/sbin/mailroom", "mailbox", "list", "--json"], check=True)
        rows = {r["address"]: r for r in json.loads(p.stdout.decode())}
        # The system user `mailbox add` made (info-shop, or info-shop-2
        # when that name was taken) and its mbox.
        cls.info_user = rows["info@shop.example"]["user"]
        cls.info_mbox = rows["info@shop.example"]["mailbox"]
        cls.inetd = pf.Inetd([pf.inetd_lines()[0]]).start()
        cls.addClassCleanup(cls.inetd.stop)
        cls.dovecot = Dovecot().start()
        cls.addClassCleanup(cls.dovecot.stop)

    @staticmethod
    def configure():
        mr.write_config(f"hostname = {mr.HOST}\nlog = {mr.LOG}\n" + mr.NO_SENDER_CHECKS
                        + "pop3_auth_fail_delay = 0\n")

    def setUp(self):
        super().setUp()
        self.configure()
        self.dovecot_mark = len(self.dovecot.log())

    def tearDown(self):
        # Dovecot's errors during this test, on the test's line.
        errors = [l for l in self.dovecot.log()[self.dovecot_mark:].splitlines()
                  if "Error" in l or "Panic" in l or "Fatal" in l]
        if errors:
            print("\n    dovecot: " + "\n    dovecot: ".join(errors[-20:]), end="", flush=True)
        super().tearDown()

    def fail_with_logs(self, what):
        self.fail(f"{what}\n--- dovecot:\n{self.dovecot.log()[-4000:]}\n--- mail.log:\n"
                  f"{mr.log_since(0)[-4000:]}")

    def empty(self, *paths):
        for p in paths:
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.lexists(p):
                os.unlink(p)

    def maildir_user(self, name):
        """A system user with an empty ~/Maildir and a password."""
        pw = pf.fresh_user(name, PASSWORD, maildir=True)
        self.empty(os.path.join(pw.pw_dir, "mail"))
        return pw


class Logins(Imap):
    def test_every_login_form_reaches_its_mailbox_and_failures_are_alike(self):
        deliver("info@shop.example", message(1, "for info"))
        deliver("sales@virt.example", message(2, "for sales"))
        mark = mr.log_mark()
        for login, subject in (("info@shop.example", b"for info"),
                               ("info/shop.example", b"for info"),
                               ("info%shop.example", b"for info"),
                               ("Info@Shop.Example", b"for info"),
                               ("sales@virt.example", b"for sales"),
                               ("sales%virt.example", b"for sales")):
            try:
                m = imap(login)
            except imaplib.IMAP4.error as e:
                self.fail_with_logs(f"{login}: {e}")
            try:
                got = imap_messages(m)
                self.assertTrue(got, login)
                self.assertIn(b"Subject: " + subject + b"\r\n", got[-1][1], login)
            finally:
                logout(m)
        log = mr.log_since(mark)
        self.assertIn("checkpassword", log)
        self.assertIn(f"login: {self.info_user} from 127.0.0.1 (imap)", log)
        self.assertRegex(log, r"login: sales@virt\.example from 127\.0\.0\.1 \(imap\)")

        # A wrong password, an unknown login (plain and in every form), a
        # name that is no login at all: the same words from Dovecot.
        mark = mr.log_mark()
        answers = {login: refusal(login, pw) for login, pw in (
            ("info@shop.example", "wrong"),
            ("sales@virt.example", "wrong"),
            ("nobody-here@shop.example", PASSWORD),
            ("nobody-here/shop.example", PASSWORD),
            ("root", PASSWORD),
        )}
        for login, said in answers.items():
            self.assertEqual(said, REFUSAL, login)
        log = mr.log_since(mark)
        self.assertIn(f"login failed: {self.info_user} from 127.0.0.1 (imap)", log)
        self.assertIn("login failed: unknown user from 127.0.0.1 (imap)", log)
        self.assertNotIn("nobody-here", log)

    def test_doveadm_finds_the_same_mailboxes_through_the_userdb(self):
        """`doveadm -u` asks the program without a password (AUTHORIZED=1)."""
        p = self.dovecot.doveadm("user", "info/shop.example")
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, out + p.stderr.decode())
        self.assertIn(f"\nmail\tmbox:{self.info_mbox}.folders:INBOX={self.info_mbox}\n", out)
        self.assertIn(f"\nuid\t{pwd.getpwnam(self.info_user).pw_uid}\n", out)
        self.assertRegex(out, r"(?m)^quota_rule\s+\*:storage=\d+B$")
        # mailroom's quota is Dovecot's: none (0B: unlimited), then 10M.
        p = self.dovecot.doveadm("quota", "get", "-u", "info@shop.example")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout.decode(), r"(?m)^User quota\s+STORAGE\s+\d+\s+-\s")
        mr.run(["/usr/sbin/mailroom", "mailbox", "quota", "sales@virt.example", "10M"], check=True)
        p = self.dovecot.doveadm("quota", "get", "-u", "sales%virt.example")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout.decode(), r"(?m)^User quota\s+STORAGE\s+\d+\s+10240\s")
        p = self.dovecot.doveadm("user", "nobody-here@shop.example")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("doesn't exist", p.stdout.decode() + p.stderr.decode())

    def test_list_shows_inbox_and_the_spam_folder_the_filter_fills(self):
        md = self.maildir_user("imapspam")
        for rcpt in ("info@shop.example", "imapspam"):
            deliver(rcpt, message(10, "cheap pills", "X-Spam-Score: 7.2\n"))
            deliver(rcpt, message(11, "ham"))
        for login in ("info@shop.example", "imapspam"):
            m = imap(login)
            try:
                typ, data = m.list()
                self.assertEqual(typ, "OK")
                names = {re.search(rb'"([^"]*)"$|(\S+)$', l).group(0).strip(b'"') for l in data}
                self.assertIn(b"INBOX", names, data)
                self.assertIn(b"Spam", names, data)
                spam = [msg for _, msg in imap_messages(m, "Spam")]
                self.assertTrue(any(b"Subject: cheap pills\r\n" in s for s in spam), login)
                inbox = [msg for _, msg in imap_messages(m, "INBOX")]
                self.assertFalse(any(b"cheap pills" in s for s in inbox), login)
                typ, data = m.lsub()
                self.assertTrue(any(b"Spam" in l for l in data), data)
            finally:
                logout(m)
        self.assertTrue(os.path.isdir(os.path.join(md.pw_dir, "Maildir", ".Spam")))


class Program(Imap):
    """The installed set-uid program itself, run as Dovecot runs it."""

    # The reply program: who it runs as, and what it was told.
    REPLY = ["/bin/sh", "-c", 'echo "$(id -u) $(id -ru) $(id -g) $USER $userdb_uid '
             '$AUTHORIZED $FROM_CALLER"']

    def ask(self, user, request, env=None):
        """checkpassword REPLY run as `user`, the request on descriptor 3."""
        cmd = ["bash", "-c", 'exec 3<&0 0</dev/null; exec "$@"', "_"]
        return mr.run(cmd + [CHECKPASSWORD] + self.REPLY, input=request, user=user,
                      env=dict({"FROM_CALLER": "kept"}, **(env or {})))

    def test_it_answers_as_root_then_runs_the_reply_as_its_caller(self):
        dovecot = pwd.getpwnam("dovecot")
        info = pwd.getpwnam(self.info_user)
        p = self.ask("dovecot", f"info/shop.example\0{PASSWORD}\0\0".encode())
        self.assertEqual(p.returncode, 0, p.stderr)
        # Every id back to the caller's (so Dovecot's ORIG_UID check holds),
        # the answer and the caller's own environment given to the reply.
        self.assertEqual(p.stdout.decode().split(),
                         [str(dovecot.pw_uid), str(dovecot.pw_uid), str(dovecot.pw_gid),
                          self.info_user, str(info.pw_uid), "kept"])
        for request in (f"info@shop.example\0wrong\0\0", f"nobody-here\0{PASSWORD}\0\0"):
            p = self.ask("dovecot", request.encode())
            self.assertEqual((p.returncode, p.stdout), (1, b""), request)
        # A userdb lookup: no password, AUTHORIZED=2, or 3 for no account.
        p = self.ask("dovecot", b"sales%virt.example\0\0", {"AUTHORIZED": "1"})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(" sales@virt.example ", p.stdout.decode())
        self.assertIn(" 2 kept", p.stdout.decode())
        p = self.ask("dovecot", b"nobody-here@virt.example\0\0", {"AUTHORIZED": "1"})
        self.assertEqual(p.returncode, 3)
        # Not the protocol: misuse.
        p = self.ask("dovecot", b"no nul at all")
        self.assertEqual(p.returncode, 2)

    def test_nobody_else_may_run_it(self):
        request = f"info@shop.example\0{PASSWORD}\0\0".encode()
        # Installed for group dovecot only: the kernel refuses others.
        st = os.stat(CHECKPASSWORD)
        self.assertEqual((oct(st.st_mode & 0o7777), st.st_uid, st.st_gid),
                         (oct(0o4750), 0, grp.getgrnam("dovecot").gr_gid))
        p = self.ask("nobody", request)
        self.assertEqual((p.returncode, p.stdout), (126, b""))
        # Someone in group dovecot who is not a checkpassword_callers user:
        # the program refuses before it reads any account file.
        intruder = mr.ensure_user("cpintruder")
        mr.run(["usermod", "-a", "-G", "dovecot", "cpintruder"], check=True)
        mark = mr.log_mark()
        p = self.ask("cpintruder", request)
        self.assertEqual((p.returncode, p.stdout), (2, b""))
        self.assertIn(f"uid {intruder.pw_uid} may not run checkpassword (checkpassword_callers)",
                      mr.log_since(mark))


class SameMessages(Imap):
    """IMAP and POP3 see one mailbox: the same bytes, the same deletions."""

    BODIES = [
        "plain text\n",
        "From the desk of Alice: a line mbox must quote\n>From already quoted\nend\n",
        "trailing spaces   \n\n\nblank lines above\n.\n..dots\n",
    ]

    def check_same_bytes(self, login, path):
        for i, body in enumerate(self.BODIES):
            deliver(login, message(100 + i, body=body))
        m = imap(login)
        try:
            by_imap = {serial_of(b): b for _, b in imap_messages(m)}
        finally:
            logout(m)
        p = pop3(login)
        try:
            by_pop = {serial_of(b): b for _, b in pop3_messages(p)}
        finally:
            p.quit()
        self.assertEqual(sorted(by_imap), sorted(by_pop))
        self.assertEqual(sorted(by_pop), [100, 101, 102])
        if not os.path.isdir(path):
            # Dovecot's own fields are in the file, and neither shows them.
            with open(path, "rb") as f:
                self.assertIn(b"\nX-UID: ", f.read())
            for b in list(by_imap.values()) + list(by_pop.values()):
                self.assertNotRegex(b, rb"(?mi)^(X-UID|X-IMAPbase|Status|X-Keywords):")
        for serial, pop_bytes in by_pop.items():
            imap_bytes = by_imap[serial]
            if os.path.isdir(path) or not re.search(rb"(?m)^>*From ", pop_bytes):
                self.assertEqual(imap_bytes, pop_bytes, serial)
            else:
                # The one difference by design (module text): Dovecot keeps
                # the mboxrd quoting of `From ` lines that pop3d removes.
                self.assertNotEqual(imap_bytes, pop_bytes)
                self.assertEqual(imap_bytes, re.sub(rb"(?m)^(>*From )", rb">\1", pop_bytes))
            # What was delivered, as POP3 gives it.
            self.assertIn(b"\r\n\r\n" + body_crlf(self.BODIES[serial - 100]), pop_bytes)

    def test_imap_gives_what_pop3_gives_mbox(self):
        self.empty(self.info_mbox)
        self.check_same_bytes("info@shop.example", self.info_mbox)

    def test_imap_gives_what_pop3_gives_maildir(self):
        md = self.maildir_user("imapbytes")
        self.check_same_bytes("imapbytes", os.path.join(md.pw_dir, "Maildir"))

    def check_deletions_cross(self, login):
        for n in range(200, 204):
            deliver(login, message(n))
        # IMAP expunges 200; POP3 must not see it.
        m = imap(login)
        try:
            for uid, msg in imap_messages(m):
                if serial_of(msg) == 200:
                    m.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)")
            self.assertEqual(m.expunge()[0], "OK")
        finally:
            logout(m)
        p = pop3(login)
        try:
            got = pop3_messages(p)
            self.assertEqual(sorted(serial_of(b) for _, b in got), [201, 202, 203])
            # POP3 deletes 201; IMAP must not see it.
            for i, b in got:
                if serial_of(b) == 201:
                    p.dele(i)
        finally:
            p.quit()
        m = imap(login)
        try:
            self.assertEqual(sorted(serial_of(b) for _, b in imap_messages(m)), [202, 203])
        finally:
            logout(m)

    def test_an_expunge_is_a_deletion_for_pop3_and_back_mbox(self):
        self.empty(self.info_mbox)
        self.check_deletions_cross("info@shop.example")

    def test_an_expunge_is_a_deletion_for_pop3_and_back_maildir(self):
        self.maildir_user("imapdele")
        self.check_deletions_cross("imapdele")


def body_crlf(text):
    return text.replace("\n", "\r\n").encode()


class Concurrent(Imap):
    """Deliveries while both clients delete: nothing lost, nothing twice."""

    WRITERS = 4

    def run_concurrently(self, login, user, path):
        """DELIVERIES messages (X-Serial 0..N-1) by WRITERS `deliver`
        processes at once, while IMAP rounds expunge the serials = 0 mod 3
        and POP3 rounds delete those = 1 mod 3.  Each client's successive
        views must never show a message twice, nor one back after it was
        gone; at the end (after a last sweep by each) exactly the serials
        = 2 mod 3 remain, once each."""
        n = DELIVERIES
        failures = []
        done = threading.Event()
        stats = {"imap rounds": 0, "pop3 rounds": 0, "QUITs refused": 0,
                 "POP3 sessions left": 0}

        class Views:
            """One client's successive views of the mailbox."""

            def __init__(self, name):
                self.name, self.seen, self.gone = name, set(), set()

            def look(self, serials):
                twice = {s for s in serials if serials.count(s) > 1}
                if twice:
                    failures.append(f"{self.name} sees twice: {sorted(twice)}")
                back = self.gone & set(serials)
                if back:
                    failures.append(f"{self.name} sees again after they were gone: {sorted(back)}")
                self.gone |= self.seen - set(serials)
                self.seen = set(serials)

        imap_view, pop_view = Views("imap"), Views("pop3")

        def writer(w):
            try:
                for serial in range(w, n, self.WRITERS):
                    deliver(login, message(serial))
            except Exception as e:  # reported below
                failures.append(f"writer {w}: {e}")

        def imap_round():
            m = imap(login)
            try:
                got = imap_messages(m)
                imap_view.look([serial_of(b) for _, b in got])
                mine = [str(uid) for uid, b in got if serial_of(b) % 3 == 0]
                if mine:
                    typ, _ = m.uid("STORE", ",".join(mine), "+FLAGS.SILENT", r"(\Deleted)")
                    if typ != "OK":
                        raise AssertionError(f"STORE: {typ}")
                    typ, _ = m.expunge()
                    if typ != "OK":
                        raise AssertionError(f"EXPUNGE: {typ}")
                stats["imap rounds"] += 1
            finally:
                logout(m)

        def pop_round():
            try:
                p = pop3(login)
            except poplib.error_proto as e:
                if b"IN-USE" in str(e).encode() or b"SYS/TEMP" in str(e).encode():
                    return
                raise
            try:
                count, _ = p.stat()
                serials = [serial_of(b"\r\n".join(p.top(i, 0)[1])) for i in range(1, count + 1)]
                pop_view.look(serials)
                for i, s in enumerate(serials, 1):
                    if s % 3 == 1:
                        p.dele(i)
            except poplib.error_proto as e:
                # A message IMAP expunged (or, in an mbox, moved) during
                # this session: pop3d says [SYS/TEMP] "please reconnect".
                # Leaving without QUIT deletes nothing.
                p.close()
                if b"[SYS/TEMP]" not in str(e).encode():
                    raise
                stats["POP3 sessions left"] += 1
                return
            except Exception:
                p.close()  # no QUIT: nothing is deleted
                raise
            try:
                p.quit()
            except poplib.error_proto:
                # -ERR at QUIT: nothing deleted.  pop3d leaves an mbox
                # alone that another program (Dovecot, writing its X-UID
                # and Status fields or expunging) rewrote meanwhile.
                p.close()
                stats["QUITs refused"] += 1
            stats["pop3 rounds"] += 1

        def reader(round_, name):
            try:
                while not done.is_set():
                    round_()
                    time.sleep(0.05)
            except Exception as e:
                failures.append(f"{name}: {e!r}")

        writers = [threading.Thread(target=writer, args=(w,)) for w in range(self.WRITERS)]
        readers = [threading.Thread(target=reader, args=(imap_round, "imap")),
                   threading.Thread(target=reader, args=(pop_round, "pop3"))]
        t = time.monotonic()
        for th in writers + readers:
            th.start()
        for th in writers:
            th.join()
        done.set()
        for th in readers:
            th.join()
        seconds = time.monotonic() - t
        # Last sweeps, one client at a time, until both shares are gone.
        want = list(range(2, n, 3))
        for _ in range(5):
            imap_round()
            pop_round()
            m = imap(login)
            try:
                left = sorted(serial_of(b) for _, b in imap_messages(m))
            finally:
                logout(m)
            if left == want:
                break
        print(f"\n    {login}: {n} deliveries in {seconds:.1f}s; "
              + ", ".join(f"{k} {v}" for k, v in stats.items()), end="", flush=True)
        self.assertEqual(failures, [])
        self.assertEqual(left, want)

        # Python's mailbox: every message whole, each once.
        if os.path.isdir(path):
            box = mailbox.Maildir(path, factory=None, create=False)
            keys = list(box.keys())
            raw = [box.get_bytes(k) for k in keys]
        else:
            box = mailbox.mbox(path, create=False)
            raw = [box.get_bytes(k) for k in box.keys()]
            box.close()
            with open(path, "rb") as f:
                data = f.read()
            self.assertTrue(data.startswith(b"From "), data[:200])
        # Dovecot's folder-data pseudo-message (an mbox's first) is not mail.
        raw = [r for r in raw if b"X-IMAP:" not in r.split(b"\n\n", 1)[0]]
        serials = [serial_of(r) for r in raw]
        self.assertEqual(sorted(serials), want)
        for r in raw:
            s = serial_of(r)
            self.assertIn(f"serial {s}\nline two\n".encode(), r)
            self.assertEqual(email.message_from_bytes(r)["Message-ID"], f"<{s}.imap@example.org>")

        # Dovecot's view: a resync finds nothing wrong, the same serials.
        p = self.dovecot.doveadm("force-resync", "-u", user, "INBOX")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn(b"Error", p.stderr)
        p = self.dovecot.doveadm("-f", "flow", "fetch", "-u", user, "hdr.x-serial", "mailbox", "INBOX")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        got = sorted(int(x) for x in re.findall(rb"hdr\.x-serial=(\d+)", p.stdout))
        self.assertEqual(got, want)

    def test_deliveries_while_imap_expunges_and_pop3_deletes_mbox(self):
        self.empty(self.info_mbox, self.info_mbox + ".lock")
        self.run_concurrently("info@shop.example", self.info_user, self.info_mbox)

    def test_deliveries_while_imap_expunges_and_pop3_deletes_maildir(self):
        md = self.maildir_user("imapbusy")
        self.run_concurrently("imapbusy", "imapbusy", os.path.join(md.pw_dir, "Maildir"))


if __name__ == "__main__":
    unittest.main()
