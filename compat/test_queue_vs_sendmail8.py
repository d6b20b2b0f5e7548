"""Differential: a queue moves between real sendmail 8 and mailroom.

An admin replacing sendmail with mailroom keeps /var/spool/mqueue: what
sendmail 8 queued (sendmail -odq, or mail it could not deliver yet) must be
delivered by our queue runner, and after our runner has tried and deferred
a job, sendmail 8 must still read the control file we rewrote — same
`mailq` output, and it can even finish the delivery itself.

"The internet" is on loopback (compat/netfix.py): dnsmasq for MX records,
aiosmtpd for the remote MX hosts.  The oracle (compat/oracle) does not use
DNS; where it must deliver, its private hosts file names the MX address.
"""

import grp
import os
import shutil
import unittest

import mr
import netfix
import pop3fix as pf

# Local users of both machines (the oracle instance has its own passwd).
USERS = ("dave", "eve")


def mbox_text(user):
    path = f"/var/mail/{user}"
    if not os.path.exists(path):
        return ""
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def queue_and_log(run, mark):
    """What a failure needs: the runner's output, its log lines and the
    control files it left."""
    out = [run.stdout.decode(errors="replace"), run.stderr.decode(errors="replace"),
           mr.log_since(mark)]
    for f in sorted(os.listdir(mr.QUEUE)):
        if f[:2] in ("qf", "xf"):
            with open(os.path.join(mr.QUEUE, f), encoding="latin-1") as q:
                out.append(f"--- {f}\n" + q.read())
    return "\n".join(out)


def our_mailq(*args):
    p = mr.run(["mailq"] + list(args))
    assert p.returncode == 0, p.stderr
    return p.stdout.decode("latin-1")


@unittest.skipUnless(mr.oracle_available(), "sendmail 8 oracle not built (compat/oracle/setup.sh)")
@unittest.skipUnless(netfix.available(), "needs dnsmasq, python3-aiosmtpd and openssl")
class QueueDifferential(mr.Case):
    @classmethod
    def setUpClass(cls):
        cls.inst = mr.oracle_instance("queue-diff", aliases="postmaster: root\n",
                                      domains="example.com\n", users="\n".join(USERS) + "\n")
        cls.oq = os.path.join(cls.inst, "mqueue")
        with open(os.path.join(cls.inst, "hosts")) as f:
            cls.hosts = f.read()

    def setUp(self):
        super().setUp()
        for u in USERS:
            mr.ensure_user(u)
        for u in USERS + ("root",):
            try:
                os.unlink(f"/var/mail/{u}")
            except FileNotFoundError:
                pass
        # example.com is local on both machines
        with open("/etc/mail/local-host-names", "a") as f:
            f.write("example.com\n")
        mr.default_config("smtp_timeout_cap = 3s\nsmtp_connect_timeout = 3s\n")
        self.clear_oracle_queue()
        with open(os.path.join(self.inst, "hosts"), "w") as f:
            f.write(self.hosts)
        self.net = netfix.Network()
        self.addCleanup(self.net.stop_all)
        self.net.dns(mx={"remote.example": [(10, "mx.remote.example")],
                         "corp.example": [(10, "mx.remote.example")],
                         "deferhost.example": [(10, "mx.deferhost.example")]},
                     hosts={"mx.remote.example": "127.0.0.2",
                            "mx.deferhost.example": "127.0.0.9"})   # nothing listens there

    def clear_oracle_queue(self):
        for f in os.listdir(self.oq):
            os.unlink(os.path.join(self.oq, f))

    def oracle_submit(self, args, message):
        p = mr.oracle(self.inst, ["-odq"] + list(args), input=message)
        self.assertEqual(p.returncode, 0, p.stderr)

    def oracle_mailq(self, *args):
        p = mr.oracle(self.inst, ["-bp", f"-oQ{mr.QUEUE}"] + list(args))
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.decode("latin-1")

    def move_oracle_queue_to_ours(self):
        """What an admin does when switching: the qf/df files go into
        /var/spool/mqueue, owned as mailroom's own (root:mqueue 0640)."""
        gid = grp.getgrnam("mqueue").gr_gid
        moved = []
        for f in sorted(os.listdir(self.oq)):
            dst = os.path.join(mr.QUEUE, f)
            shutil.copyfile(os.path.join(self.oq, f), dst)
            os.chown(dst, 0, gid)
            os.chmod(dst, 0o640)
            moved.append(f)
        self.clear_oracle_queue()
        return moved

    def submit_sendmail8_mail(self):
        """Three jobs queued by real sendmail 8: local and remote
        recipients, an 8-bit body, NOTIFY=SUCCESS."""
        self.oracle_submit(["-t", "-i"],
                           b"To: dave, friend@remote.example\nCc: eve@example.com\n"
                           b"Subject: from sendmail 8\n\nh\xc3\xa9llo from the old server\n")
        self.oracle_submit(["-f", "eve@example.com", "-N", "success,failure", "boss@corp.example"],
                           b"Subject: receipt please\n\nbody\n")

    def check_sendmail8_mail_delivered(self, mx):
        got = mx.wait_for(2)
        by_rcpt = {tuple(m.rcpt_tos): m for m in got}
        self.assertEqual(sorted(by_rcpt), [("boss@corp.example",), ("friend@remote.example",)],
                         mx.transactions)
        first = by_rcpt[("friend@remote.example",)]
        self.assertEqual(first.message["Subject"], "from sendmail 8")
        self.assertIn("oracle.test (8.17.1.9/8.17.1.9)", first.message["Received"])
        # the 8-bit body (qf flag 8) goes out unchanged, as 8BITMIME
        self.assertTrue(first.data.endswith(b"\r\n\r\nh\xc3\xa9llo from the old server\r\n"),
                        first.data)
        self.assertIn("BODY=8BITMIME", first.mail_options)
        self.assertEqual(by_rcpt[("boss@corp.example",)].mail_from, "eve@example.com")
        for user in USERS:
            box = mbox_text(user)
            self.assertIn("Subject: from sendmail 8\n", box, user)
            self.assertIn("h\u00e9llo from the old server", box, user)
        # NOTIFY=SUCCESS, relayed to a server without DSN: a return receipt
        self.assertIn("Subject: Return receipt\n", mbox_text("eve"))
        self.assertIn("Final-Recipient: RFC822; boss@corp.example\nAction: relayed\n",
                      mbox_text("eve"))
        # root queued the first one; the envelope sender goes out qualified
        self.assertEqual(by_rcpt[("friend@remote.example",)].mail_from, f"root@{mr.HOST}")

    # -- (a) sendmail 8's queue, delivered by us ----------------------------------

    def test_our_runner_delivers_a_queue_moved_over_from_sendmail8(self):
        mx = self.net.smtp("127.0.0.2")
        self.submit_sendmail8_mail()
        moved = self.move_oracle_queue_to_ours()
        self.assertEqual(len([f for f in moved if f.startswith("qf")]), 2, moved)
        # before delivery both programs list the moved queue alike
        self.assertEqual(our_mailq(), self.oracle_mailq())
        mark = mr.log_mark()
        p = self.run_queue(timeout=60)
        self.assertEqual(mr.queue_ids(), [], queue_and_log(p, mark))
        self.check_sendmail8_mail_delivered(mx)

    def test_our_runner_delivers_sendmail8s_queue_directory_in_place(self):
        mx = self.net.smtp("127.0.0.2")
        self.submit_sendmail8_mail()
        mr.default_config(f"smtp_timeout_cap = 3s\nqueue_directory = {self.oq}\n")
        p = self.run_queue(timeout=60)
        left = [f for f in os.listdir(self.oq) if f[:2] in ("qf", "df")]
        self.assertEqual(left, [], p.stdout.decode(errors="replace") + "".join(
            open(os.path.join(self.oq, f), encoding="latin-1").read() for f in left if f.startswith("qf")))
        self.check_sendmail8_mail_delivered(mx)

    # -- (b) our rewritten queue, read by sendmail 8 ------------------------------

    def fill_and_defer(self):
        """Jobs of both origins, each with recipients at a host that refuses
        connections, after one attempt by our runner."""
        self.oracle_submit(["-f", "eve@example.com", "x@deferhost.example", "y@deferhost.example"],
                           b"Subject: from sendmail 8, will defer\n\nbody\n")
        self.move_oracle_queue_to_ours()
        for args, msg in (
                (["-i", "a@deferhost.example", "b@deferhost.example"], b"Subject: ours\n\nbody\n"),
                # dave is delivered now; the control file keeps only the rest
                (["-f", "eve@example.com", "-i", "dave", "c@deferhost.example"],
                 b"Subject: mixed\n\n" + b"z" * 1234 + b"\n")):
            p = mr.sendmail(args, msg)
            self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(mr.queue_ids()), 3)
        self.run_queue(timeout=60)
        self.assertEqual(len(mr.queue_ids()), 3)
        self.assertIn("Subject: mixed", mbox_text("dave"))

    def test_sendmail8_reads_the_queue_our_runner_rewrote(self):
        self.fill_and_defer()
        ours = our_mailq()
        self.assertEqual(ours.count("(Deferred: Connection refused by mx.deferhost.example.)"), 3, ours)
        self.assertNotIn("\t dave\n", ours)
        self.assertEqual(self.oracle_mailq(), ours)
        self.assertEqual(self.oracle_mailq("-v"), our_mailq("-v"))

    def test_sendmail8_finishes_delivering_what_our_runner_deferred(self):
        self.fill_and_defer()
        # the network is fixed; the old sendmail takes the queue back
        with open(os.path.join(self.inst, "hosts"), "a") as f:
            f.write("127.0.0.9\tdeferhost.example\n")
        mx = self.net.smtp("127.0.0.9")
        p = mr.oracle(self.inst, ["-qf", f"-oQ{mr.QUEUE}"])
        self.assertEqual(p.returncode, 0, p.stderr)
        got = mx.wait_for(3)
        self.assertEqual(sorted(r for m in got for r in m.rcpt_tos),
                         ["a@deferhost.example", "b@deferhost.example", "c@deferhost.example",
                          "x@deferhost.example", "y@deferhost.example"], mx.transactions)
        self.assertEqual(mr.queue_ids(), [])
        # dave got his copy once, from us
        self.assertEqual(mbox_text("dave").count("Subject: mixed"), 1)


if __name__ == "__main__":
    unittest.main()
