"""Simple mailing lists on the installed suite (issue 8 item 2).

`mailroom list create team --owner boss`, members alice and bob (local
mailboxes) and gone@remote.example, whose MX (an aiosmtpd sink on
127.0.0.2, found through dnsmasq: compat/netfix.py) answers 550 to that
RCPT.  Mail comes in on port 25 through openbsd-inetd starting the
installed `sendmail -bs` (compat/smtpfix.py) from 192.0.2.10.

* A member's post reaches alice and bob with `List-Id: <team.HOST>`,
  `List-Post: <mailto:team@HOST>` and `Return-Path: <owner-team@HOST>`;
  the remote MX saw MAIL FROM:<owner-team@HOST>; its 550 comes back as a
  bounce in boss's mailbox (naming gone@remote.example), none in the
  poster's.
* A non-member is refused at RCPT (550 5.7.1); so is <>.  A non-member's
  local submission is bounced to them with the same reason and reaches no
  member.
* Differential: real sendmail 8 (compat/oracle) compiles the aliases
  file `mailroom list` wrote without a complaint and expands the list to
  the same members as `sendmail -bv team`.

Needs openbsd-inetd, dnsmasq and python3-aiosmtpd; runs as root in the
compat sandbox (lib/sandbox.sh).
"""

import os
import re
import shutil
import tempfile
import unittest

import mr
import netfix
import sitefix
import smtpfix as sf

HOST = mr.HOST
REMOTE = "remote.example"
REMOTE_MX = "127.0.0.2"
GONE = f"gone@{REMOTE}"
USERS = ("alice", "bob", "boss", "eve")


@unittest.skipUnless(netfix.available(), "needs dnsmasq, python3-aiosmtpd and openssl")
class Lists(mr.Case):
    def setUp(self):
        absent = sf.missing(sf.INETD, sf.SENDMAIL)
        if absent:
            self.skipTest(f"not installed: {' '.join(absent)}")
        super().setUp()
        sitefix.configure()
        for u in USERS:
            mr.ensure_user(u)
            p = os.path.join(sf.SPOOL, u)
            if os.path.exists(p):
                os.unlink(p)
        site = sitefix.Site(self.addCleanup, remotes={REMOTE: REMOTE_MX}, sink_options={
            REMOTE: {"rcpt": {GONE: "550 5.1.1 <gone@remote.example>... User unknown"}}})
        self.mark = site.mark
        self.remote = site.sinks[REMOTE]
        self.admin(["list", "create", "team", "--owner", "boss"])
        self.admin(["list", "add", "team", "alice", f"bob@{HOST}", GONE])

    def admin(self, args):
        p = mr.run(["mailroom"] + args)
        self.assertEqual(p.returncode, 0, (p.stdout + p.stderr).decode(errors="replace"))
        return p.stdout.decode()

    def log(self):
        return mr.log_since(self.mark)

    def raw(self):
        r = sf.Raw()
        self.addCleanup(r.close)
        self.assertTrue(r.greeting.startswith(b"220 "), r.greeting)
        self.assertTrue(r.cmd("EHLO client.far.example").startswith(b"250"))
        return r

    def rcpt(self, sender):
        r = self.raw()
        self.assertTrue(r.cmd(f"MAIL FROM:<{sender}>").startswith(b"250"))
        return r, r.cmd(f"RCPT TO:<team@{HOST}>").decode("latin-1")

    def test_a_post_reaches_every_member_from_the_owner_and_bounces_reach_the_owner(self):
        r, reply = self.rcpt(f"alice@{HOST}")
        self.assertTrue(reply.startswith("250 2.1.5"), reply)
        self.assertTrue(r.cmd("DATA").startswith(b"354"))
        r.send(f"From: Alice <alice@{HOST}>\r\nTo: team@{HOST}\r\nSubject: Team lunch\r\n\r\n"
               "Friday?\r\n.\r\n".encode())
        self.assertTrue(r.reply().startswith(b"250 2.0.0"))
        r.quit()
        for who in ("alice", "bob"):
            (m,) = sf.wait_for_messages(who)
            self.assertEqual(sf.header(m, "Subject"), "Team lunch", m)
            self.assertEqual(sf.header(m, "Return-Path"), f"<owner-team@{HOST}>", m)
            self.assertEqual(sf.header(m, "List-Id"), f"<team.{HOST}>", m)
            self.assertEqual(sf.header(m, "List-Post"), f"<mailto:team@{HOST}>", m)
        # The remote member's copy: from the owner, refused at RCPT.
        sf.wait_until(lambda: any(t.rcpts for t in self.remote.transactions), 20)
        t = self.remote.transactions[-1]
        self.assertEqual(t.mail_from, f"owner-team@{HOST}", self.remote.transactions)
        self.assertEqual([a for a, _ in t.rcpts], [GONE])
        # Its bounce: the owner's, naming the member; the poster gets none.
        (b,) = sf.wait_for_messages("boss")
        self.assertEqual(sf.header(b, "To"), f"owner-team@{HOST}", b)
        self.assertIn(f"Final-Recipient: RFC822; {GONE}".lower(), b.decode("latin-1").lower())
        self.assertIn(b"550 5.1.1", b)
        self.assertEqual(len(sf.messages("alice")), 1, sf.messages("alice"))
        self.assertEqual(sf.messages("eve"), [])

    def test_non_members_and_bounces_are_refused(self):
        r, reply = self.rcpt("eve@far.example")
        self.assertEqual(reply.strip(),
                         f"550 5.7.1 <team@{HOST}>... only members may post to team@{HOST}")
        r.quit()
        r, reply = self.rcpt("")
        self.assertTrue(reply.startswith("550 5.7.1"), reply)
        r.quit()
        # Submitted on this host by a non-member: bounced to them.
        p = mr.run(["sendmail", "-i", "team"], user="eve",
                   input=b"Subject: let me in\n\nhello\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        (b,) = sf.wait_for_messages("eve")
        self.assertIn(f"only members may post to team@{HOST}".encode(), b)
        self.assertEqual(sf.messages("alice") + sf.messages("bob"), [])
        self.assertEqual(sf.messages("boss"), [])
        # `anyone` lets eve in.
        with open("/etc/mail/lists/team.conf") as f:
            conf = f.read()
        with open("/etc/mail/lists/team.conf", "w") as f:
            f.write(conf.replace("posting = members", "posting = anyone"))
        r, reply = self.rcpt("eve@far.example")
        self.assertTrue(reply.startswith("250 2.1.5"), reply)
        r.quit()

    def test_sendmail8_reads_the_list_the_same_way(self):
        if not mr.oracle_available():
            self.skipTest("sendmail 8 oracle not built (compat/oracle/setup.sh)")
        src = tempfile.mkdtemp(prefix="oracle-src.")
        self.addCleanup(shutil.rmtree, src, True)
        inst = os.path.join(mr.SM_ORACLE, "run", "lists")
        shutil.rmtree(inst, ignore_errors=True)
        self.addCleanup(shutil.rmtree, inst, True)
        # The oracle's instance directory stands for /etc/mail/lists.
        with open("/etc/mail/aliases") as f:
            aliases = f.read().replace("/etc/mail/lists/", "@DIR@/")
        files = {}
        for name, text in (("aliases", aliases), ("virtusertable", ""), ("domains", HOST + "\n"),
                           ("users", "\n".join(USERS) + "\n")):
            files[name] = os.path.join(src, name)
            with open(files[name], "w") as f:
                f.write(text)
        extra = []
        for n in ("team", "team.owner"):
            shutil.copyfile(f"/etc/mail/lists/{n}", os.path.join(src, n))
            extra.append(os.path.join(src, n))
        p = mr.run([os.path.join(mr.ORACLE, "mkinst.sh"), inst, files["aliases"],
                    files["virtusertable"], files["domains"], files["users"]],
                   env={"SM_ORACLE": mr.SM_ORACLE, "EXTRA_FILES": " ".join(extra)})
        report = (p.stdout + p.stderr).decode(errors="replace")
        self.assertEqual(p.returncode, 0, report)
        complaints = [l for l in report.splitlines()
                      if l.strip() and not re.search(r"aliases: \d+ aliases, longest \d+ bytes, \d+ bytes total$", l)]
        self.assertEqual(complaints, [], report)
        for a in ("team", f"owner-team@{HOST}"):
            with self.subTest(address=a):
                t = mr.oracle(inst, ["-bv", "--", a])
                theirs = (t.stdout + t.stderr).decode("latin-1")
                o = mr.run([sf.SENDMAIL, "-bv", "--", a])
                ours = (o.stdout + o.stderr).decode("latin-1")
                self.assertEqual(sorted(l for l in ours.split("\n") if l),
                                 sorted(l for l in theirs.split("\n") if l),
                                 f"\nours:\n{ours}\nsendmail 8:\n{theirs}")
                self.assertEqual(o.returncode, t.returncode)
                if a == "team":
                    self.assertIn(f"{GONE}... deliverable: mailer esmtp", theirs)

if __name__ == "__main__":
    unittest.main()
