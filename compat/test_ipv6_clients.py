"""Clients over IPv6, and IPv4 clients that reach a dual-stack `[::]`
socket as IPv4-mapped addresses (`::ffff:192.0.2.10`: xinetd's default,
inetutils-inetd's `tcp6`, openbsd-inetd's `tcp46`, systemd's
`ListenStream=25`).

Differential, against real sendmail 8: `/etc/mail/access` `Connect:`
entries for IPv6 clients, written every way an admin might (the full
uncompressed form sendmail 8.15+ looks up, prefixes of whole groups,
upper case, untagged `IPv6:` keys, a `0` group, leading zeros, a `::`
prefix, more specific entries inside broader ones) and IPv4 entries for
IPv4-mapped clients.  Both servers run as inetd runs them (`sendmail -bs`
on an accepted connection of one `[::]` socket that takes both
families); each client address is put on lo and connects from it; the
dialogue is EHLO, MAIL, RCPT to a remote domain, QUIT, and every reply
must be the same (the `Hello [IPv6:2001:db8:0:0:0:0:0:1]` line included),
sendmail 8's RCPT verdict pinned per client.  One deliberate difference,
checked on its own: a whole address written compressed
(`Connect:IPv6:2001:db8::2`, cf/README's own spelling) is honoured by us
and silently never matched by sendmail 8.17.

Under a real inetd (Debian's openbsd-inetd, private configuration, the
installed suite): an IPv4 client through a `tcp46` line is one IPv4
client everywhere -- its `Connect:` entry, Received:, the log, pop3d's
POP-before-SMTP stamp and the per-address connection slots it shares
with the same client on a plain `tcp` socket; and an IPv6 client is
named and matched as sendmail names it.

Runs as root inside the compat sandbox (its own network namespace).
"""

import os
import smtplib
import socket
import subprocess
import unittest

import mr
import pop3fix as pf
import smtpfix as sf
from test_smtp_vs_sendmail8 import converse, normalize

PORT = 2526
HOST = "oracle.test"
CONFIG = (f"hostname = {HOST}\nlog = {mr.LOG}\nprobe_interfaces = no\nforward_files = no\n"
          "delivery_mode = queue\n" + mr.NO_SENDER_CHECKS)
FAR = "u@far.test"

ACCESS = """\
Connect:IPv6:2001:db8:0:0:0:0:0:1	RELAY
Connect:IPv6:2001:db8::2	RELAY
Connect:IPv6:2001:db8:1	RELAY
Connect:IPv6:2001:0db8:0002	RELAY
Connect:IPv6:2001:db8:3:0	RELAY
Connect:IPv6:2001:DB8:4	RELAY
IPv6:2001:db8:5	RELAY
Connect:IPv6:2001:db8:6::	RELAY
Connect:IPv6:2001:db8:8	RELAY
Connect:IPv6:2001:db8:8:1	SKIP
Connect:IPv6:2001:db8:9	OK
Connect:IPv6:2001:db8:9:1	RELAY
Connect:IPv6:0:0:0:0:0:ffff	RELAY
Connect:192.0.2.77	RELAY
"""

RELAYED = f"250 2.1.5 <{FAR}>... Recipient ok"
DENIED = f"550 5.7.1 <{FAR}>... Relaying denied"

# client -> (how sendmail 8 names it in Hello, its RCPT verdict, why)
CASES = {
    "2001:db8::1": ("IPv6:2001:db8:0:0:0:0:0:1", RELAYED, "the full, uncompressed form"),
    "2001:db8:1::9": ("IPv6:2001:db8:1:0:0:0:0:9", RELAYED, "a prefix of whole groups"),
    "2001:db8:2::9": ("IPv6:2001:db8:2:0:0:0:0:9", DENIED, "leading zeros never match"),
    "2001:db8:3::9": ("IPv6:2001:db8:3:0:0:0:0:9", RELAYED, "a prefix with a 0 group"),
    "2001:db8:4::9": ("IPv6:2001:db8:4:0:0:0:0:9", RELAYED, "keys are case-insensitive"),
    "2001:db8:5::9": ("IPv6:2001:db8:5:0:0:0:0:9", RELAYED, "an untagged IPv6: key"),
    "2001:db8:6::9": ("IPv6:2001:db8:6:0:0:0:0:9", DENIED, "a prefix written with :: never matches"),
    "2001:db8:7::9": ("IPv6:2001:db8:7:0:0:0:0:9", DENIED, "no entry"),
    "2001:db8:8:1::5": ("IPv6:2001:db8:8:1:0:0:0:5", DENIED, "a longer SKIP beats a shorter RELAY"),
    "2001:db8:8:2::5": ("IPv6:2001:db8:8:2:0:0:0:5", RELAYED, "the shorter RELAY"),
    "2001:db8:9:1::5": ("IPv6:2001:db8:9:1:0:0:0:5", RELAYED, "a longer RELAY beats a shorter OK"),
    "2001:db8:9::5": ("IPv6:2001:db8:9:0:0:0:0:5", DENIED, "OK accepts, it does not relay"),
    "192.0.2.77": ("192.0.2.77", RELAYED, "IPv4-mapped: its IPv4 entry"),
    "192.0.2.78": ("192.0.2.78", DENIED, "IPv4-mapped: no IPv6 ::ffff entry applies"),
}
COMPRESSED = "2001:db8::2"  # the deliberate difference


def put_on_lo(address):
    if ":" in address:
        argv = ["ip", "-6", "addr", "add", f"{address}/128", "dev", "lo", "nodad"]
    else:
        argv = ["ip", "addr", "add", f"{address}/32", "dev", "lo"]
    p = subprocess.run(argv, capture_output=True)
    if p.returncode != 0 and b"File exists" not in p.stderr and b"already assigned" not in p.stderr:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.decode(errors='replace')}")
    # Usable once a socket can be bound to it (a new IPv6 address may take
    # a moment even without duplicate address detection).
    fam = socket.AF_INET6 if ":" in address else socket.AF_INET
    pf.wait_until(lambda: _bindable(fam, address), 5)


def _bindable(fam, address):
    with socket.socket(fam) as s:
        try:
            s.bind((address, 0))
            return True
        except OSError:
            return False


class DualStackPeer:
    """A `[::]:PORT` socket taking both families (IPV6_V6ONLY off); each
    accepted connection is given to the server program as stdin and
    stdout, as inetd does.  `source(addr)` is a peer as converse() wants
    it: connections from that address (IPv4 ones arrive mapped)."""

    def __init__(self):
        self.srv = socket.socket(socket.AF_INET6)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.srv.bind(("::", PORT))
        self.srv.listen(5)

    def close(self):
        self.srv.close()

    def source(self, address):
        peer = self

        class From:
            def connect(self, argv, env):
                v6 = ":" in address
                c = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)
                c.bind((address, 0))
                c.connect(("::1" if v6 else "127.0.0.1", PORT))
                conn, raw = peer.srv.accept()
                if not v6:
                    assert raw[0] == "::ffff:" + address, raw  # really mapped
                err = open(os.path.join(os.environ.get("COMPAT_WORK", "/tmp"), "smtp-server.stderr"), "w+b")
                p = subprocess.Popen(argv, stdin=conn, stdout=conn, stderr=err, env=env)
                conn.close()
                c.settimeout(20)
                return c, p, err

        return From()


STEPS = [b"EHLO client.test", b"MAIL FROM:<a@remote.test>", b"RCPT TO:<" + FAR.encode() + b">", b"QUIT"]


@unittest.skipUnless(mr.oracle_available(), "sendmail 8 oracle not built (compat/oracle/setup.sh)")
class AccessConnectVsSendmail8(mr.Case):
    @classmethod
    def setUpClass(cls):
        cls.inst = mr.oracle_instance("ipv6-access", domains="example.com\n", users="eve\n",
                                      access=ACCESS)
        for a in list(CASES) + [COMPRESSED]:
            put_on_lo(a)
        cls.peer = DualStackPeer()
        cls.addClassCleanup(cls.peer.close)

    def setUp(self):
        super().setUp()
        mr.write_config(CONFIG)
        with open("/etc/mail/local-host-names", "w") as f:
            f.write("example.com\n")
        with open("/etc/mail/access", "w") as f:
            f.write(ACCESS)

    def dialogue(self, client, ours):
        if ours:
            argv, env = ["/usr/sbin/sendmail", "-bs"], {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
        else:
            argv = [os.path.join(mr.ORACLE, "sm.sh"), self.inst, "-bs"]
            env = {"SM_ORACLE": mr.SM_ORACLE, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        out, _ = converse(self.peer.source(client), argv, env, STEPS)
        return [(step, normalize(step, lines)) for step, lines in out]

    def verdicts(self, transcript):
        got = dict(transcript)
        return got["EHLO client.test"][0], got["RCPT TO:<" + FAR + ">"][0]

    def test_connect_entries_judge_each_client_as_sendmail8_does(self):
        problems = []
        for client, (name, verdict, why) in CASES.items():
            theirs = self.dialogue(client, ours=False)
            # sendmail 8's own answer, pinned: a changed oracle cannot
            # make this comparison vacuous.
            self.assertEqual(self.verdicts(theirs),
                             (f"250-{HOST} Hello [{name}], pleased to meet you", verdict),
                             f"sendmail 8 for {client} ({why})")
            ours = self.dialogue(client, ours=True)
            if ours != theirs:
                problems.append(f"  {client} ({why}):\n    sendmail 8: {theirs}\n    we:         {ours}")
        if problems:
            self.fail("replies differ from sendmail 8:\n" + "\n".join(problems))
        log = mr.log_since(0)
        self.assertIn(f"relay=[IPv6:2001:db8:1:0:0:0:0:9]: relaying to <{FAR}> allowed: "
                      "access Connect:IPv6:2001:db8:1 RELAY", log)
        self.assertIn(f"relay=[192.0.2.77]: relaying to <{FAR}> allowed: access Connect:192.0.2.77 RELAY", log)
        self.assertNotIn("ffff:", log)

    def test_a_compressed_whole_address_we_honour_where_sendmail8_never_matches(self):
        theirs = self.dialogue(COMPRESSED, ours=False)
        ours = self.dialogue(COMPRESSED, ours=True)
        hello = f"250-{HOST} Hello [IPv6:2001:db8:0:0:0:0:0:2], pleased to meet you"
        self.assertEqual(self.verdicts(theirs), (hello, DENIED))
        self.assertEqual(self.verdicts(ours), (hello, RELAYED))
        self.assertIn("allowed: access Connect:IPv6:2001:db8::2 RELAY", mr.log_since(0))


# ---------------------------------------------------------------------------
# Under a real inetd


IPV6_CLIENT = "2001:db8:77::7"
ALT_PORT = 2626  # the tcp46 (dual-stack) SMTP line
PASSWORD = "Dual-st4ck-pw"


class DualStackUnderInetd(mr.Case):
    """openbsd-inetd: smtp (25) on `tcp` (an IPv4 and an IPv6-only
    socket), SMTP on 2626 and pop3 (110) on `tcp46` (one dual-stack
    socket: IPv4 clients arrive mapped)."""

    def setUp(self):
        absent = sf.missing(pf.INETD, sf.SENDMAIL, pf.CURL)
        if absent:
            self.skipTest(f"not installed: {' '.join(absent)}")
        super().setUp()
        mr.default_config("smtp_max_connections_per_ip = 1\nsmtp_auth_fail_delay = 0\n")
        sf.client_address()
        put_on_lo(IPV6_CLIENT)
        if os.path.exists(pf.STAMPS):
            os.unlink(pf.STAMPS)
        sendmail = "root\t/usr/sbin/sendmail\tsendmail -bs"
        self.inetd = pf.Inetd([f"smtp\tstream\ttcp\tnowait\t{sendmail}",
                               f"{ALT_PORT}\tstream\ttcp46\tnowait\t{sendmail}",
                               # (tcp46 takes a port number, not a service name)
                               f"110\tstream\ttcp46\tnowait\troot\t{pf.POP3D}\tpop3d"])
        self.inetd.start()
        self.addCleanup(self.inetd.stop)
        self.mark = mr.log_mark()

    def log(self):
        return mr.log_since(self.mark)

    def relay_attempt(self, port, host="127.0.0.1", source=sf.CLIENT_ADDR, send=False):
        """EHLO, MAIL, RCPT to a remote domain (and the message when
        accepted) from `source`; the RCPT reply."""
        s = smtplib.SMTP(host, port, local_hostname="client.example.org", timeout=15,
                         source_address=(source, 0))
        self.addCleanup(s.close)
        s.ehlo()
        self.assertEqual(s.mail("someone@example.net")[0], 250)
        code, text = s.rcpt(FAR)
        if send and code == 250:
            self.assertEqual(s.data(b"Subject: dual stack\r\n\r\nhi\r\n")[0], 250)
        s.quit()
        return f"{code} {text.decode()}"

    def test_an_ipv4_client_through_a_dual_stack_socket_is_its_ipv4_address_everywhere(self):
        # Its Connect: entry, Received: and the log name 192.0.2.10.
        self.assertEqual(self.relay_attempt(ALT_PORT), DENIED)
        self.assertIn(f"relay=[{sf.CLIENT_ADDR}], reject=550 5.7.1", self.log())
        with open("/etc/mail/access", "w") as f:
            f.write(f"Connect:{sf.CLIENT_ADDR}\tRELAY\n")
        self.assertEqual(self.relay_attempt(ALT_PORT, send=True), RELAYED)
        self.assertIn(f"relay=[{sf.CLIENT_ADDR}]: relaying to <{FAR}> allowed: "
                      f"access Connect:{sf.CLIENT_ADDR} RELAY", self.log())
        rcvd = [h for _, h in mr.qf_headers(mr.only_id(self)) if h.startswith("Received:")]
        self.assertRegex(rcvd[0], rf"^Received: from client\.example\.org \(\[{sf.CLIENT_ADDR}\]\)")
        self.assertNotIn("ffff", self.log())

    def test_a_pop3_login_through_a_dual_stack_socket_is_a_permit_for_its_ipv4_address(self):
        pf.fresh_user("dualpop", PASSWORD)
        mr.default_config("pop_before_smtp_window = 5m\n")
        p = mr.run([pf.CURL, "-sS", "--max-time", "20", "--interface", sf.CLIENT_ADDR,
                    "-u", f"dualpop:{PASSWORD}", "pop3://127.0.0.1/"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"connect from {sf.CLIENT_ADDR}", self.log())
        with open(pf.STAMPS) as f:
            self.assertEqual([l.split()[0] for l in f], [sf.CLIENT_ADDR])
        # Both the IPv4 socket and the dual-stack one see the same client.
        self.assertEqual(self.relay_attempt(sf.SMTP_PORT), RELAYED)
        self.assertEqual(self.relay_attempt(ALT_PORT), RELAYED)
        self.assertIn(f"relay=[{sf.CLIENT_ADDR}]: relaying to <{FAR}> allowed: POP before SMTP", self.log())

    def test_the_connection_limit_counts_one_client_across_both_sockets(self):
        # smtp_max_connections_per_ip = 1: a session on the IPv4 socket
        # leaves no slot for the same client on the dual-stack one.
        first = sf.Raw(sf.SMTP_PORT)
        self.addCleanup(first.close)
        self.assertTrue(first.greeting.startswith(b"220 "), first.greeting)
        second = sf.Raw(ALT_PORT, read_greeting=False)
        self.addCleanup(second.close)
        self.assertEqual(second.reply(), f"421 4.7.0 {mr.HOST} Too many connections from "
                                         f"[{sf.CLIENT_ADDR}]; try again later\r\n".encode())
        self.assertEqual(first.quit()[:3], b"221")
        second.close()
        self.assertTrue(pf.wait_until(lambda: not pf.descendants(self.inetd.proc.pid), 10),
                        "sessions still running")
        third = sf.Raw(ALT_PORT)
        self.addCleanup(third.close)
        self.assertTrue(third.greeting.startswith(b"220 "), third.greeting)

    def test_an_ipv6_client_is_named_and_matched_as_sendmail_names_it(self):
        name = "IPv6:2001:db8:77:0:0:0:0:7"
        self.assertEqual(self.relay_attempt(sf.SMTP_PORT, host="::1", source=IPV6_CLIENT), DENIED)
        self.assertIn(f"relay=[{name}], reject=550 5.7.1", self.log())
        with open("/etc/mail/access", "w") as f:
            f.write("Connect:IPv6:2001:db8:77\tRELAY\n")
        self.assertEqual(self.relay_attempt(sf.SMTP_PORT, host="::1", source=IPV6_CLIENT, send=True),
                         RELAYED)
        self.assertIn(f"relay=[{name}]: relaying to <{FAR}> allowed: access Connect:IPv6:2001:db8:77 RELAY",
                      self.log())
        rcvd = [h for _, h in mr.qf_headers(mr.only_id(self)) if h.startswith("Received:")]
        self.assertRegex(rcvd[0], rf"^Received: from client\.example\.org \(\[{name}\]\)")


if __name__ == "__main__":
    unittest.main()
