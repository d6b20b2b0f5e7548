"""Fault injection on the installed suite (issue 9, item 2): a DNS server
that never answers.  (Full and read-only file systems, a missing spool
and a remote server stalling mid-DATA are in tests/faults.rs.)

A UDP and TCP socket on 127.0.0.1:53 takes every query and answers none;
/etc/resolv.conf points at it (netfix.use_local_resolver).  A queue run
must not hang, must defer the message with a 4.x status and no bounce, and
must deliver it once DNS answers again (dnsmasq, compat/netfix.py).

Runs as root in the compat sandbox (lib/sandbox.sh).
"""

import os
import socket
import threading
import time
import unittest

import mr
import netfix


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

    def test_a_dns_server_that_never_answers_defers_and_loses_nothing(self):
        hole = BlackHoleDNS()
        self.addCleanup(hole.stop)
        netfix.use_local_resolver()
        p = mr.sendmail(["-i", "customer@silent.example"], b"Subject: dns\n\nwaiting\n", user="alice")
        self.assertEqual(p.returncode, 0, p.stderr)
        (qid,) = mr.queue_ids()
        t = time.monotonic()
        p = mr.run(["/usr/sbin/sendmail", "-qf"], timeout=120)
        took = time.monotonic() - t
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        print(f"\nDNS never answers: {hole.queries} queries unanswered, queue run took {took:.1f} s")
        self.assertGreater(hole.queries, 0, "the resolver never asked")
        self.assertLess(took, 60, "a queue run must not hang on DNS")
        self.assertEqual(mr.queue_ids(), [qid])
        q = mr.run(["mailq"]).stdout.decode()
        self.assertIn("(Deferred: ", q)
        with open("/var/log/mail.log", errors="replace") as f:
            log = f.read()
        self.assertRegex(log, rf"{qid}: to=<?customer@silent\.example>?, .*dsn=4\.\d\.\d+, stat=Deferred")
        self.assertNotIn(f"{qid}: ", "\n".join(l for l in log.splitlines() if "DSN:" in l))
        self.assertFalse(os.path.exists("/var/mail/alice"), "no bounce for a DNS timeout")
        # DNS answers again: the message goes, once.
        hole.stop()
        self.net.dns(mx={"silent.example": [(10, "mx.silent.example")]},
                     hosts={"mx.silent.example": "127.0.0.3"})
        mx = self.net.smtp("127.0.0.3")
        p = mr.run(["/usr/sbin/sendmail", "-qf"], timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        got = mx.wait_for(1, timeout=15)
        self.assertEqual([m.rcpt_tos for m in got], [["customer@silent.example"]])
        self.assertEqual(mr.queue_ids(), [])


if __name__ == "__main__":
    unittest.main()
