"""Filters and the Spam folder on the installed suite: mail comes in over
SMTP (inetd starting `sendmail -bs` on 127.0.0.1:25, a client on
192.0.2.10), is delivered in the background, and is read back over POP3
(inetd starting pop3d on 127.0.0.1:11110, Python's poplib) and by Dovecot
(`doveadm` on a private copy, as nobody), which must see the same folders
an IMAP client would.

* `X-Spam-Score: 7.2` lands in Spam — Maildir++ `~/Maildir/.Spam/` and
  mbox `~/mail/Spam` — and POP3 shows only the inbox; 12.0 is discarded
  with a log line.
* A user's `~/.mailroom-filter` moves a newsletter into a folder.
* A broken `~/.mailroom-filter` still delivers to the inbox and the error
  is logged with its file and line.
* With Debian's spamassassin (spamd, spamc) installed: spamd on loopback,
  `spamc = /usr/bin/spamc` in mailroom.conf; GTUBE is discarded with the
  default thresholds and filed into Spam when discarding is off, a clean
  message reaches the inbox with spamd's `X-Spam-Status: No`.  Skipped
  only when spamd or spamc is not installed.

Needs openbsd-inetd and dovecot-core (.ci/run installs them, and
spamassassin, spamc and spamd for the last scenario).  Runs as root in the
compat sandbox (lib/sandbox.sh).
"""

import os
import poplib
import pwd
import re
import shutil
import smtplib
import subprocess
import tempfile
import unittest

import mr
import pop3fix as pf
import sitefix
import smtpfix as sf
from test_mailbox_readers import Readers

HOST = mr.HOST
PASSWORD = "F1lter-pw"
SPAMD = "/usr/sbin/spamd"
SPAMC = "/usr/bin/spamc"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def message(subject, extra="", body="hello\n"):
    return (f"From: Alice <alice@example.org>\nTo: someone@{HOST}\nSubject: {subject}\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.org>\n{extra}\n{body}")


class Filters(mr.Case):
    """Per test: background delivery, SMTP and POP3 through inetd."""

    CONFIG = ""

    def setUp(self):
        absent = sf.missing(sf.INETD, sf.SENDMAIL, pf.POP3D)
        if absent:
            self.skipTest(f"not installed: {' '.join(absent)}")
        super().setUp()
        sitefix.configure("pop3_auth_fail_delay = 0\n" + self.CONFIG)
        # No remote domains: nothing here leaves the box.
        self.mark = sitefix.Site(self.addCleanup, pop3=True).mark
        self.readers = Readers(self)
        self.addCleanup(self.readers.cleanup)

    # -- helpers -----------------------------------------------------------

    def user(self, name, maildir=False):
        pw = pf.fresh_user(name, PASSWORD, maildir=maildir)
        for p in (".mailroom-filter", "mail"):
            path = os.path.join(pw.pw_dir, p)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.unlink(path)
        return pw

    def send(self, rcpt, msg):
        """One message over SMTP from the outside client."""
        s = smtplib.SMTP(sf.ADDR, sf.SMTP_PORT, local_hostname="client.example.org",
                         source_address=(sf.CLIENT_ADDR, 0), timeout=15)
        try:
            s.sendmail("alice@example.org", [f"{rcpt}@{HOST}"], msg)  # str: CRLF added
        finally:
            s.quit()

    def delivered(self, rcpt, count):
        """Wait until `count` deliveries to rcpt are logged (stat=...)."""
        # The queue runner's line (dsn=...), not the submission's (stat=queued).
        pat = re.compile(rf"to=<?{re.escape(rcpt)}(@{re.escape(HOST)})?>?, .*mailer=local, .*dsn=")

        def done():
            return [l for l in self.log().splitlines() if pat.search(l)]
        ok = pf.wait_until(lambda: len(done()) >= count, 30)
        self.assertTrue(ok, f"{count} deliveries to {rcpt} not logged:\n{self.log()}")
        return done()

    def log(self):
        return mr.log_since(self.mark)

    def pop3_subjects(self, user):
        """STAT's count and the Subject of each message, over POP3."""
        p = poplib.POP3(pf.ADDR, pf.PORT, timeout=15)
        try:
            p.user(user)
            self.assertEqual(p.pass_(PASSWORD), b"+OK Logged in.")
            count, _ = p.stat()
            subjects = []
            for i in range(1, count + 1):
                lines = p.top(i, 0)[1]
                subjects += [l.decode()[9:] for l in lines if l.startswith(b"Subject: ")]
            return count, subjects
        finally:
            p.quit()

    def dovecot_maildir(self, pw):
        """(folder, subject) of every message Dovecot sees in ~/Maildir."""
        md = os.path.join(pw.pw_dir, "Maildir")
        got = self.readers.dovecot(lambda d: f"maildir:{d}/Maildir",
                                   lambda d: shutil.copytree(md, os.path.join(d, "Maildir")),
                                   "mailbox hdr.subject")
        return None if got is None else sorted((m["mailbox"], m["hdr.subject"]) for m in got)

    def dovecot_mbox(self, pw):
        """(folder, subject) of every message Dovecot sees with
        mbox:~/mail:INBOX=/var/mail/USER."""
        def copy_in(d):
            if os.path.isdir(os.path.join(pw.pw_dir, "mail")):
                shutil.copytree(os.path.join(pw.pw_dir, "mail"), os.path.join(d, "mail"))
            inbox = os.path.join(sf.SPOOL, pw.pw_name)
            if os.path.exists(inbox):
                shutil.copyfile(inbox, os.path.join(d, "inbox"))
            else:
                open(os.path.join(d, "inbox"), "w").close()
        got = self.readers.dovecot(lambda d: f"mbox:{d}/mail:INBOX={d}/inbox", copy_in,
                                   "mailbox hdr.subject")
        return None if got is None else sorted((m["mailbox"], m["hdr.subject"]) for m in got)

    def files(self, d):
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def check_dovecot(self, got, want):
        if got is None:
            print("\n    SKIPPED part: doveadm is not installed", end="", flush=True)
            return
        self.assertEqual(got, sorted(want))


class SpamFolder(Filters):
    def test_a_spam_score_of_7_2_lands_in_spam_and_pop3_shows_only_the_inbox(self):
        md = self.user("fspammd", maildir=True)
        mb = self.user("fspammb")
        for u in ("fspammd", "fspammb"):
            self.send(u, message("ham for you"))
            self.send(u, message("cheap pills", "X-Spam-Score: 7.2\n"))
            self.delivered(u, 2)
        # Maildir++: .Spam/ with its marker; the inbox has the ham only.
        spam_dir = os.path.join(md.pw_dir, "Maildir", ".Spam")
        self.assertEqual(len(self.files(os.path.join(spam_dir, "new"))), 1)
        self.assertTrue(os.path.isfile(os.path.join(spam_dir, "maildirfolder")))
        st = os.stat(spam_dir)
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (md.pw_uid, 0o700))
        self.assertEqual(len(self.files(os.path.join(md.pw_dir, "Maildir", "new"))), 1)
        # mbox: ~/mail/Spam, owned by the user.
        spam_box = os.path.join(mb.pw_dir, "mail", "Spam")
        st = os.stat(spam_box)
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (mb.pw_uid, 0o600))
        with open(spam_box) as f:
            self.assertIn("Subject: cheap pills", f.read())
        for u in ("fspammd", "fspammb"):
            self.assertEqual(self.pop3_subjects(u), (1, ["ham for you"]))
        self.assertIn(f"filter: fspammd@{HOST}: into folder Spam by spam rule:2, spam score 7.2",
                      self.log())
        self.check_dovecot(self.dovecot_maildir(md),
                           [("INBOX", "ham for you"), ("Spam", "cheap pills")])
        self.check_dovecot(self.dovecot_mbox(mb),
                           [("INBOX", "ham for you"), ("Spam", "cheap pills")])

    def test_a_score_over_10_is_discarded_with_a_log_line(self):
        md = self.user("fdiscard", maildir=True)
        self.send("fdiscard", message("very cheap pills", "X-Spam-Score: 12.0\n"))
        self.send("fdiscard", message("after"))
        self.delivered("fdiscard", 2)
        self.assertEqual(self.pop3_subjects("fdiscard"), (1, ["after"]))
        self.assertFalse(os.path.exists(os.path.join(md.pw_dir, "Maildir", ".Spam")))
        self.assertIn(f"filter: fdiscard@{HOST}: discarded by spam rule:1, spam score 12",
                      self.log())


class UserRules(Filters):
    def write_rules(self, pw, text):
        path = os.path.join(pw.pw_dir, ".mailroom-filter")
        with open(path, "w") as f:
            f.write(text)
        os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(path, 0o644)
        return path

    def test_a_user_rule_moves_a_newsletter(self):
        md = self.user("fnews", maildir=True)
        self.write_rules(md, "# newsletters out of the inbox\n"
                             "if header List-Id contains weekly.lists.example then folder Lists/Weekly\n")
        self.send("fnews", message("Weekly digest", "List-Id: Weekly <weekly.lists.example>\n"))
        self.send("fnews", message("personal"))
        self.delivered("fnews", 2)
        self.assertEqual(self.pop3_subjects("fnews"), (1, ["personal"]))
        self.assertEqual(len(self.files(os.path.join(md.pw_dir, "Maildir", ".Lists.Weekly", "new"))), 1)
        # Dovecot's default hierarchy separator for Maildir++ is '.'.
        self.check_dovecot(self.dovecot_maildir(md),
                           [("INBOX", "personal"), ("Lists.Weekly", "Weekly digest")])

    def test_a_broken_user_rule_file_still_delivers(self):
        mb = self.user("fbroken")
        path = self.write_rules(mb, "if header Subject contains pills then folder Spam\n"
                                    "if from is boss@example.org folder Boss\n")
        self.send("fbroken", message("pills and more", "X-Spam-Score: 12.0\n"))
        self.delivered("fbroken", 1)
        self.assertEqual(self.pop3_subjects("fbroken"), (1, ["pills and more"]))
        self.assertFalse(os.path.exists(os.path.join(mb.pw_dir, "mail")))
        self.assertIn(f"filter: {path}:2: expected 'and' or 'then', found 'folder'; rules not "
                      f"applied, delivered to the inbox of fbroken@{HOST}", self.log())


class SpamAssassin(Filters):
    """Debian's spamd on 127.0.0.1:783 (the sandbox's own network), and
    mailroom configured with spamc."""

    def setUp(self):
        if not (os.access(SPAMD, os.X_OK) and os.access(SPAMC, os.X_OK)):
            self.skipTest("spamassassin's spamd/spamc are not installed")
        self.CONFIG = f"spamc = {SPAMC}\nspamc_timeout = 60s\n"
        super().setUp()
        home = tempfile.mkdtemp(prefix="spamd.", dir=pf.workdir())
        nobody = pwd.getpwnam("nobody")
        os.chown(home, nobody.pw_uid, nobody.pw_gid)
        log = open(os.path.join(home, "spamd.log"), "ab")
        # -L: no network tests (the sandbox has no DNS); -x: no per-user
        # files; as nobody, the recipient's name (spamc -u) only reaches
        # the log.
        self.spamd = subprocess.Popen(
            [SPAMD, "-L", "-x", "-u", "nobody", "-H", home, "--listen", "127.0.0.1:783",
             "--allowed-ips", "127.0.0.1", "--max-children", "2", "--syslog", "stderr",
             "--pidfile", os.path.join(home, "spamd.pid")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.addCleanup(self.stop_spamd)
        self.spamd_log = os.path.join(home, "spamd.log")
        if not pf.wait_until(lambda: self.spamd.poll() is not None or pf.listening(783), 120, 0.2):
            self.fail(f"spamd did not listen: {self.read_spamd_log()}")
        self.assertIsNone(self.spamd.poll(), self.read_spamd_log())

    def read_spamd_log(self):
        with open(self.spamd_log, errors="replace") as f:
            return f.read()

    def stop_spamd(self):
        if self.spamd.poll() is None:
            self.spamd.terminate()
            try:
                self.spamd.wait(15)
            except subprocess.TimeoutExpired:
                self.spamd.kill()
                self.spamd.wait()

    def test_gtube_is_discarded_or_filed_into_spam_and_ham_reaches_the_inbox(self):
        md = self.user("fsa", maildir=True)
        # A sender's own verdict does not count: spamd's replaces it.
        self.send("fsa", message("gtube one", "X-Spam-Status: No, score=-50.0\nX-Spam-Score: -50\n",
                                 body=GTUBE + "\n"))
        self.send("fsa", message("plain ham", body="Lunch at noon tomorrow?\n"))
        self.delivered("fsa", 2)
        log = self.log()
        self.assertRegex(log, rf"filter: fsa@{HOST}: discarded by spam rule:1, spam score 10\d\d")
        self.assertEqual(self.pop3_subjects("fsa"), (1, ["plain ham"]))
        inbox = os.path.join(md.pw_dir, "Maildir", "new")
        with open(os.path.join(inbox, self.files(inbox)[0])) as f:
            self.assertRegex(f.read(), r"(?m)^X-Spam-Status: No, score=-?\d")
        self.assertIn("spamd: processing message", self.read_spamd_log())

        # With discarding off, GTUBE lands in Spam, scored by spamd.
        sitefix.configure(f"pop3_auth_fail_delay = 0\nspamc = {SPAMC}\nspamc_timeout = 60s\n"
                          "spam_discard_score = off\n")
        self.send("fsa", message("gtube two", body=GTUBE + "\n"))
        self.delivered("fsa", 3)
        spam_new = os.path.join(md.pw_dir, "Maildir", ".Spam", "new")
        self.assertEqual(len(self.files(spam_new)), 1)
        with open(os.path.join(spam_new, self.files(spam_new)[0])) as f:
            self.assertRegex(f.read(), r"(?m)^X-Spam-Status: Yes, score=10\d\d")
        self.assertEqual(self.pop3_subjects("fsa"), (1, ["plain ham"]))
        self.check_dovecot(self.dovecot_maildir(md),
                           [("INBOX", "plain ham"), ("Spam", "gtube two")])


if __name__ == "__main__":
    unittest.main()
