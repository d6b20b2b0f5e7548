"""Differential: real sendmail 8's mailq and ours read each other's queues.

An admin who moves from sendmail to mailroom (or back) keeps the queue: the
same ids, senders, recipients, sizes and status lines must show up in both
programs' `mailq`.
"""

import os
import unittest

import mr


def our_mailq(args=(), queue_dir=None):
    cmd = ["mailq"] + list(args)
    if queue_dir:
        cmd.append(f"-oQ{queue_dir}")
    p = mr.run(cmd)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode("latin-1")


@unittest.skipUnless(mr.oracle_available(), "sendmail 8 oracle not built (compat/oracle/setup.sh)")
class MailqDifferential(mr.Case):
    @classmethod
    def setUpClass(cls):
        cls.inst = mr.oracle_instance(
            "mailq-diff", aliases="postmaster: root\n", domains="example.com\n",
            users="dave\neve\nbob\n")

    def oracle_mailq(self, args=(), queue_dir=None):
        a = ["-bp"] + list(args)
        if queue_dir:
            a.append(f"-oQ{queue_dir}")
        p = mr.oracle(self.inst, a)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.decode("latin-1")

    def fill_our_queue(self):
        mr.ensure_user("alice")
        sends = [
            (["-t", "-i"], b"To: eve@example.com, dave@example.com\nSubject: one\n\nbody\n", None),
            (["-f", "backup@example.com", "admin@example.org"], b"done\n", None),
            (["-B8BITMIME", "-N", "success,failure", "Frank Q <frank@remote.test>"], "Subject: 8\n\nh\u00e9llo\n".encode(), None),
            (["-f", "<>", "postmaster@example.com"], b"Subject: bounce\n\nx" * 50, None),
            (["-i", "bob@example.com"], b"Subject: from alice\n\n" + b"y" * 3000 + b"\n", "alice"),
            (["-f", "a very long sender name that goes on and on@example.com", "x@example.org"], b"s\n", None),
        ]
        for args, msg, user in sends:
            p = mr.sendmail(args, msg, user=user)
            self.assertEqual(p.returncode, 0, p.stderr)

    def test_sendmail8_lists_our_queue_exactly_as_we_do(self):
        self.fill_our_queue()
        ours = our_mailq()
        theirs = self.oracle_mailq(queue_dir=mr.QUEUE)
        self.assertEqual(theirs, ours)
        self.assertIn("Total requests: 6", ours)
        for qid in mr.queue_ids():
            self.assertIn(qid, ours)
        self.assertEqual(self.oracle_mailq(["-v"], queue_dir=mr.QUEUE), our_mailq(["-v"]))

    def test_we_list_sendmail8s_queue_exactly_as_it_does(self):
        q = os.path.join(self.inst, "mqueue")
        for f in os.listdir(q):
            os.unlink(os.path.join(q, f))
        sends = [
            (["-odq", "-t", "-i"], b"To: eve, dave\nSubject: hi\n\nbody\n"),
            (["-odq", "-f", "sender@example.com", "bob"], b"Subject: x\n\n" + b"z" * 1234),
            (["-odq", "-B8BITMIME", "dave", "frank@remote.test"], "Subject: 8\n\nh\u00e9\n".encode()),
            (["-odq", "-f", "<>", "eve"], b"Subject: null sender\n\nx\n"),
        ]
        for args, msg in sends:
            p = mr.oracle(self.inst, args, input=msg)
            self.assertEqual(p.returncode, 0, p.stderr)
        # A remote recipient that defers: "Connection refused" for a host
        # on loopback where nothing listens.
        with open(os.path.join(self.inst, "hosts"), "a") as f:
            f.write("127.0.0.9\tdeferhost.test\n")
        p = mr.oracle(self.inst, ["-f", "sender@example.com", "x@deferhost.test", "y@deferhost.test"],
                      input=b"Subject: will defer\n\nbody\n")
        p = mr.oracle(self.inst, ["-qf"])
        theirs = self.oracle_mailq()
        self.assertIn("Deferred", theirs)
        self.assertEqual(our_mailq(queue_dir=q), theirs)
        self.assertEqual(our_mailq(["-v"], queue_dir=q), self.oracle_mailq(["-v"]))

    def test_empty_queue(self):
        self.assertEqual(our_mailq(), self.oracle_mailq(queue_dir=mr.QUEUE))
        self.assertEqual(our_mailq(), "/var/spool/mqueue is empty\n\t\tTotal requests: 0\n")


if __name__ == "__main__":
    unittest.main()
