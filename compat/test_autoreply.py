"""The autoresponder on the installed suite, as a hosting customer uses it
(issue 8): `support@shop.example` answers every sender once a week with
"We got your message", and never a robot.

The admin sets it up with nothing but `mailroom` commands (domain add,
mailbox add, autoreply set).  Mail comes in on port 25 through
openbsd-inetd starting the installed `sendmail -bs` (compat/smtpfix.py),
from 192.0.2.10, an outside client; the senders' domain far.example has
its MX on 127.0.0.3 (compat/netfix.py: dnsmasq + an aiosmtpd sink), so a
reply is seen exactly as the sender's provider would see it.

* A normal message is delivered and answered once: from <>, to the
  sender, `Auto-Submitted: auto-replied`, `In-Reply-To`/`References` the
  original's Message-ID, the subject and text the admin set.
* A second message from the same sender within the interval is delivered
  and not answered; another sender is answered.
* Each robot is delivered and not answered, each for its own reason: a
  list message (List-Id), Precedence: bulk, Auto-Submitted: auto-generated,
  a bounce (MAIL FROM:<>), MAILER-DAEMON, an owner- sender, and a message
  where support@ is only a Bcc.
* Outside its date window nothing is answered; `autoreply clear` stops it.

Needs openbsd-inetd, dnsmasq and python3-aiosmtpd; runs as root in the
compat sandbox (lib/sandbox.sh).
"""

import datetime
import os
import re
import tempfile
import time
import unittest

import mr
import netfix
import sitefix
import smtpfix as sf

HOST = mr.HOST
SHOP = "shop.example"
SUPPORT = f"support@{SHOP}"
SUPPORT_USER = "support-shop"          # the system user `mailbox add` makes
FAR = "far.example"
FAR_MX = "127.0.0.3"
MAILROOM = "/usr/sbin/mailroom"
SUBJECT = "We got your message"
TEXT = "Thank you for writing to Shop.\nWe answer within two working days.\n"


@unittest.skipUnless(netfix.available(), "needs dnsmasq, python3-aiosmtpd and openssl")
class Autoresponder(mr.Case):
    def setUp(self):
        absent = sf.missing(sf.INETD, sf.SENDMAIL, MAILROOM)
        if absent:
            self.skipTest(f"not installed: {' '.join(absent)}")
        super().setUp()
        sitefix.configure()
        self.work = tempfile.mkdtemp(prefix="autoreply.", dir=netfix.workdir())
        self.admin("domain", "add", SHOP)
        self.admin("mailbox", "add", SUPPORT, "--password-stdin", input=b"s3cret-Pass\n")
        self.body_file = os.path.join(self.work, "reply.txt")
        with open(self.body_file, "w") as f:
            f.write(TEXT)
        site = sitefix.Site(self.addCleanup, remotes={FAR: FAR_MX})
        self.mark, self.inetd = site.mark, site.inetd
        self.far = site.sinks[FAR]
        self.sent = 0

    def tearDown(self):
        # Before /etc/mail is put back: the user lives in /etc/passwd.
        self.admin("autoreply", "clear", SUPPORT, check=False)
        self.admin("mailbox", "remove", SUPPORT, check=False)
        super().tearDown()

    # -- helpers -----------------------------------------------------------

    def admin(self, *args, input=None, check=True):
        p = mr.run([MAILROOM, *args], input=input)
        if check:
            self.assertEqual(p.returncode, 0, f"mailroom {' '.join(args)}: "
                             + (p.stdout + p.stderr).decode(errors="replace"))
        return p

    def set_autoreply(self, *extra):
        self.admin("autoreply", "set", SUPPORT, "--subject", SUBJECT,
                   "--body-file", self.body_file, *extra)

    def log(self):
        return mr.log_since(self.mark)

    def send(self, sender, headers, rcpt=SUPPORT, to=SUPPORT):
        """One message by SMTP on port 25 from the outside client, then
        waits until support's mailbox has it (the original is always
        delivered).  Returns its Message-ID."""
        self.sent += 1
        mid = f"<m{self.sent}.{time.time_ns()}@{FAR}>"
        head = f"From: {sender or 'MAILER-DAEMON@' + FAR}\n"
        if to:
            head += f"To: {to}\n"
        head += f"Subject: message {self.sent}\nMessage-ID: {mid}\n" + headers
        r = sf.Raw()
        self.addCleanup(r.close)
        self.assertTrue(r.greeting.startswith(b"220 "), r.greeting)
        self.assertTrue(r.cmd(f"EHLO mx.{FAR}").startswith(b"250"))
        self.assertTrue(r.cmd(f"MAIL FROM:<{sender}>").startswith(b"250 2.1.0"))
        reply = r.cmd(f"RCPT TO:<{rcpt}>")
        self.assertTrue(reply.startswith(b"250 2.1.5"), reply)
        self.assertTrue(r.cmd("DATA").startswith(b"354"))
        data = head + "\nhello\n"
        r.send(data.replace("\n", "\r\n").encode() + b".\r\n")
        reply = r.reply()
        self.assertTrue(reply.startswith(b"250 2.0.0"), reply)
        r.quit()
        got = sf.wait_for_messages(SUPPORT_USER, self.sent, timeout=20)
        self.assertEqual(len(got), self.sent, f"not delivered\nlog:\n{self.log()}")
        self.assertIn(mid.encode(), got[-1])
        return mid

    def settle(self):
        """Let any reply the runner would queue reach the sink: the queue
        empties once it has been sent."""
        self.assertTrue(sf.wait_until(lambda: mr.queue_ids() == [], 20),
                        f"queue not empty:\n{sf.mailq()}\nlog:\n{self.log()}")
        self.assertTrue(self.inetd.wait_idle())

    def replies(self):
        return list(self.far.messages)

    # -- scenarios ---------------------------------------------------------

    def test_a_sender_is_answered_once_per_interval(self):
        self.set_autoreply("--interval", "7d")
        mid = self.send(f"alice@{FAR}", "")
        (reply,) = self.far.wait_for(1, timeout=20) or [None]
        self.assertIsNotNone(reply, f"no reply\nlog:\n{self.log()}")
        self.assertEqual(reply.mail_from, "<>")
        self.assertEqual(reply.rcpt_tos, [f"alice@{FAR}"])
        m = reply.message
        self.assertEqual(m["Subject"], SUBJECT)
        self.assertEqual(m["Auto-Submitted"], "auto-replied")
        self.assertEqual(m["In-Reply-To"], mid)
        self.assertIn(mid, m["References"])
        self.assertIn(SUPPORT, m["From"])
        self.assertIn(f"alice@{FAR}", m["To"])
        self.assertIn("We answer within two working days.", m.get_payload(decode=True).decode())
        # The same sender again: delivered, not answered.
        self.send(f"alice@{FAR}", "")
        self.settle()
        self.assertEqual(len(self.replies()), 1, self.replies())
        self.assertRegex(self.log(), rf"autoreply from {re.escape(SUPPORT)}: none \(alice@{FAR} "
                                     r"answered within the interval\)")
        # Another sender is answered.
        self.send(f"bob@{FAR}", "")
        got = self.far.wait_for(2, timeout=20)
        self.assertEqual([g.rcpt_tos for g in got], [[f"alice@{FAR}"], [f"bob@{FAR}"]])

    def test_robots_are_never_answered(self):
        self.set_autoreply()
        cases = [
            ("a list message", f"news@{FAR}", "List-Id: <news.far.example>\n", SUPPORT, SUPPORT),
            ("Precedence: bulk", f"promo@{FAR}", "Precedence: bulk\n", SUPPORT, SUPPORT),
            ("Auto-Submitted", f"robot@{FAR}", "Auto-Submitted: auto-generated\n", SUPPORT, SUPPORT),
            ("a bounce", "", "Content-Type: text/plain\n", SUPPORT, SUPPORT),
            ("MAILER-DAEMON", f"MAILER-DAEMON@{FAR}", "", SUPPORT, SUPPORT),
            ("an owner- sender", f"owner-news@{FAR}", "", SUPPORT, SUPPORT),
            ("support only in Bcc", f"carol@{FAR}", "", SUPPORT, f"someone@{FAR}"),
        ]
        for what, sender, headers, rcpt, to in cases:
            with self.subTest(what):
                self.send(sender, headers, rcpt=rcpt, to=to)
        self.settle()
        time.sleep(1)
        self.assertEqual(self.replies(), [], f"log:\n{self.log()}")
        log = self.log()
        for reason in ("list message", "Precedence bulk/list/junk", "Auto-Submitted",
                       "null sender", "sender is a mail system", "sender is a list address",
                       "address not in To or Cc"):
            self.assertIn(f"autoreply from {SUPPORT}: none ({reason})", log)
        # A person is still answered afterwards: the rule was live all along.
        self.send(f"dave@{FAR}", "")
        self.assertEqual(len(self.far.wait_for(1, timeout=20)), 1, self.log())

    def test_nothing_is_answered_outside_the_date_window_or_after_clear(self):
        today = datetime.date.today()
        past = [(today - datetime.timedelta(days=d)).isoformat() for d in (20, 10)]
        self.set_autoreply("--from", past[0], "--until", past[1])
        self.send(f"erin@{FAR}", "")
        self.settle()
        self.assertEqual(self.replies(), [])
        p = self.admin("autoreply", "list", "--json")
        self.assertIn(SUPPORT, p.stdout.decode())
        # In the window: answered.  Then cleared: not again (another sender).
        self.set_autoreply("--from", today.isoformat(), "--until", today.isoformat())
        self.send(f"erin@{FAR}", "")
        self.assertEqual(len(self.far.wait_for(1, timeout=20)), 1, self.log())
        self.admin("autoreply", "clear", SUPPORT)
        self.send(f"frank@{FAR}", "")
        self.settle()
        self.assertEqual([g.rcpt_tos for g in self.replies()], [[f"erin@{FAR}"]])


if __name__ == "__main__":
    unittest.main()
