"""A customer checks mail by POP3, then sends through the box on port 25
(POP-before-SMTP, as hosting guides tell customers: "log in via one of
your pop3 accounts before you try to send").

The customer is on another machine: a second network namespace joined to
the sandbox by a veth pair (compat/netfix.py OutsideHost), at 198.51.100.7
and 2001:db8:51::7 -- neither loopback (which may relay anyway) nor ours.
The servers are the installed ones, started as root by Debian's
openbsd-inetd from the lines shipped in etc/inetd/inetd.conf, unchanged
(`tcp`: both families), exactly as on a real box.  The clients are real:
curl logs in by POP3, Python's smtplib talks SMTP.

For each family: relaying is refused before a login from that address
(and a login from the customer's other address does not count); after a
login it is allowed on port 25 and the message is queued with the
client's address in Received:; after pop_before_smtp_window (short here)
it is refused again.  And the permits cannot be forged: the stamp file
and its directory are root's alone, so a mailbox owner -- who also runs
the set-group-id mqueue sendmail -- can neither write a stamp nor plant
one.

Needs openbsd-inetd, curl, nsenter/unshare (util-linux) and iproute2
(.ci/run installs them).  Runs as root inside the compat sandbox.
"""

import json
import os
import stat
import time
import unittest

import mr
import netfix
import pop3fix as pf

WINDOW = 10  # seconds of pop_before_smtp_window
USER = "popfirst"
PASSWORD = "Pop-b4-smtp-pw"
FAR = "friend@far-away.example"
STAMPS = pf.STAMPS
SHIPPED = os.path.join(mr.REPO, "etc", "inetd", "inetd.conf")
O = netfix.OutsideHost

# Run on the outside host: one SMTP session to port 25 that tries to
# relay; a message is sent only when the recipient is accepted.
SMTP_PROBE = r"""
import json, smtplib
s = smtplib.SMTP(SERVER, 25, local_hostname="laptop.example.net", timeout=30)
s.ehlo()
out = {"mail": s.mail("customer@example.net"), "rcpt": s.rcpt(RCPT)}
if out["rcpt"][0] == 250:
    out["data"] = s.data(b"Subject: sent after checking mail\r\n\r\nhello\r\n")
s.quit()
print(json.dumps({k: [v[0], v[1].decode()] for k, v in out.items()}))
"""


def shipped_lines(*services):
    """The lines of etc/inetd/inetd.conf for `services`, as shipped."""
    with open(SHIPPED) as f:
        lines = [l.strip() for l in f if l.split() and l.split()[0] in services]
    assert [l.split()[0] for l in lines] == list(services), lines
    return lines


class PopBeforeSmtpFromOutside(mr.Case):
    @classmethod
    def setUpClass(cls):
        absent = [p for p in (pf.INETD, pf.CURL, "/usr/bin/nsenter", "/usr/bin/unshare")
                  if not os.access(p, os.X_OK)]
        if absent:
            raise unittest.SkipTest(f"not installed: {' '.join(absent)}")
        cls.outside = O().start()
        cls.addClassCleanup(cls.outside.stop)

    def setUp(self):
        super().setUp()
        mr.default_config(f"pop_before_smtp_window = {WINDOW}s\n")
        pf.fresh_user(USER, PASSWORD)
        if os.path.exists(STAMPS):
            os.unlink(STAMPS)
        self.inetd = pf.Inetd(shipped_lines("smtp", "pop3"))
        self.inetd.start()
        self.addCleanup(self.inetd.stop)
        self.mark = mr.log_mark()

    # -- the customer's programs ---------------------------------------------

    def pop3_login(self, server):
        """curl checks the mailbox (USER, PASS, LIST, QUIT) from outside."""
        host = f"[{server}]" if ":" in server else server
        p = self.outside.run([pf.CURL, "-sS", "--max-time", "20", "-u", f"{USER}:{PASSWORD}",
                              f"pop3://{host}/"])
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))

    def try_to_relay(self, server):
        """smtplib from outside: the replies to MAIL, RCPT (and DATA)."""
        code = SMTP_PROBE.replace("SERVER", repr(server)).replace("RCPT", repr(FAR))
        return json.loads(self.outside.python(code))

    def assert_refused(self, server, client, why):
        got = self.try_to_relay(server)
        self.assertEqual(got["mail"], [250, "2.1.0 <customer@example.net>... Sender ok"])
        self.assertEqual(got["rcpt"], [550, f"5.7.1 <{FAR}>... Relaying denied"], why)
        self.assertNotIn("data", got)
        self.assertIn(f"ruleset=check_rcpt, arg1=<{FAR}>, relay=[{client}], "
                      f"reject=550 5.7.1 <{FAR}>... Relaying denied", mr.log_since(self.mark))

    def assert_allowed(self, server, client):
        got = self.try_to_relay(server)
        self.assertEqual(got["rcpt"], [250, f"2.1.5 <{FAR}>... Recipient ok"],
                         mr.log_since(self.mark))
        self.assertEqual(got["data"][0], 250, got)
        self.assertIn(f"relay=[{client}]: relaying to <{FAR}> allowed: POP before SMTP",
                      mr.log_since(self.mark))
        qid = mr.only_id(self)
        self.assertEqual([r.strip("<>") for r in mr.qf_recipients(qid)], [FAR])
        self.assertRegex("\n".join(h for _, h in mr.qf_headers(qid)),
                         rf"Received: from laptop\.example\.net \(\[{client}\]\)")
        mr.clear_queue()

    def stamp_time(self, address):
        with open(STAMPS) as f:
            entries = dict(l.split() for l in f)
        return int(entries[address])

    def wait_out_the_window(self, address):
        """Until the login from `address` is older than the window."""
        end = self.stamp_time(address) + WINDOW + 1
        while time.time() < end:
            time.sleep(end - time.time())

    def assert_stamps_are_roots_alone(self):
        st = os.stat(STAMPS, follow_symlinks=False)
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (0, 0, 0o600))
        d = os.stat(os.path.dirname(STAMPS))
        self.assertEqual((d.st_uid, stat.S_IMODE(d.st_mode) & 0o022), (0, 0),
                         "the stamp directory must be root's and writable by nobody else")

    def scenario(self, server, client, stamp_key):
        self.assert_refused(server, client, "no POP3 login yet")
        self.pop3_login(server)
        self.assertIn(f"login: {USER} from {stamp_key}", mr.log_since(self.mark))
        self.assert_stamps_are_roots_alone()
        self.assert_allowed(server, client)
        self.wait_out_the_window(stamp_key)
        self.assert_refused(server, client, f"the login is older than {WINDOW}s")

    # -- the scenarios ---------------------------------------------------------

    def test_after_a_pop3_login_over_ipv4_the_customer_may_relay_until_the_window_ends(self):
        self.scenario(O.SERVER4, O.CLIENT4, O.CLIENT4)

    def test_after_a_pop3_login_over_ipv6_the_customer_may_relay_until_the_window_ends(self):
        # A login from the customer's IPv4 address is no permit for IPv6.
        self.pop3_login(O.SERVER4)
        self.assert_refused(O.SERVER6, "IPv6:2001:db8:51:0:0:0:0:7", "logged in over IPv4 only")
        self.scenario(O.SERVER6, "IPv6:2001:db8:51:0:0:0:0:7", O.CLIENT6)

    def test_a_mailbox_owner_cannot_forge_or_plant_a_stamp(self):
        self.pop3_login(O.SERVER4)
        self.assert_stamps_are_roots_alone()
        forge = ("import sys\n"
                 "for what, f in ((\"append\", lambda: open(sys.argv[1], \"a\")),\n"
                 "                (\"plant\", lambda: open(sys.argv[2], \"x\")),\n"
                 "                (\"read\", lambda: open(sys.argv[1]))):\n"
                 "    try:\n"
                 "        f()\n"
                 "        print(what, \"WORKED\")\n"
                 "    except PermissionError:\n"
                 "        print(what, \"refused\")\n")
        d = os.path.dirname(STAMPS)
        args = [STAMPS, os.path.join(d, ".pop-before-smtp.1")]
        # The mailbox owner, and the same user with group mqueue (what the
        # set-group-id sendmail runs with).
        pw = mr.ensure_user(USER)
        for ids in ([f"--regid={pw.pw_gid}", "--init-groups"],
                    ["--regid=mqueue", "--clear-groups"]):
            p = mr.run(["setpriv", f"--reuid={pw.pw_uid}"] + ids
                       + ["--", "python3", "-c", forge] + args)
            self.assertEqual(p.stdout.decode().split("\n")[:-1],
                             ["append refused", "plant refused", "read refused"],
                             (ids, p.stdout, p.stderr))
        with open(STAMPS) as f:
            self.assertEqual([l.split()[0] for l in f], [O.CLIENT4])


if __name__ == "__main__":
    unittest.main()
