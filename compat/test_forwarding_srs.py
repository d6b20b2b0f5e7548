"""Forwarded mail and SPF (SRS), and a hosted domain's own outbound IP:
the installed suite as the big providers see it (issue 8).

"The internet" is on loopback (compat/netfix.py): dnsmasq answers the MX
records of remote.example (where the alias forwards to: an aiosmtpd sink
on 127.0.0.2) and far.example (the original sender's domain: a sink on
127.0.0.3).  Mail comes in on port 25 through openbsd-inetd starting the
installed `sendmail -bs` (compat/smtpfix.py), from 192.0.2.10, an outside
client.  Delivery is in the background, as on a server.

* A message from alice@far.example to a local alias forwarding to
  someone@remote.example reaches remote.example's MX with the envelope
  sender SRS0=HASH=DAY=far.example=alice@mx.example.test.  The HASH is
  checked independently here: HMAC-MD5 over `DAY=far.example=alice` with
  the secret in /etc/mail/srs-secret, first 20 bits in base 32 (README,
  src/srs.rs).
* remote.example bounces: a DSN from <> to that SRS address, by SMTP on
  port 25, is delivered to far.example's MX for <alice@far.example>.
* A forged SRS address (hash changed, or another local part under the old
  hash) and an expired one (a correct hash over a day 30 days ago) are
  refused at RCPT with 550 5.1.1; nothing is relayed.
* Mail from the box's own domains forwarded off the box keeps its sender.
* /etc/mail/source-addresses `shop.example 127.0.0.7`: mail from
  x@shop.example reaches the remote MX from 127.0.0.7 (the peer address
  aiosmtpd saw), other senders from the kernel's default address.

Needs openbsd-inetd, dnsmasq and python3-aiosmtpd; runs as root in the
compat sandbox (lib/sandbox.sh).
"""

import grp
import hashlib
import hmac
import os
import re
import socket
import time
import unittest

import mr
import netfix
import sitefix
import smtpfix as sf

HOST = mr.HOST
REMOTE = "remote.example"
REMOTE_MX = "127.0.0.2"
FAR = "far.example"
FAR_MX = "127.0.0.3"
SHOP = "shop.example"
SHOP_IP = "127.0.0.7"
OTHER_LOCAL = "hosted.example"       # a second local domain (local-host-names)
ALIASES = "/etc/mail/aliases"
SECRET = "/etc/mail/srs-secret"
LOCAL_HOST_NAMES = "/etc/mail/local-host-names"
SOURCE_ADDRESSES = "/etc/mail/source-addresses"
SRS_RE = re.compile(r"^SRS0=([a-z2-7]{4})=([a-z2-7]{2})=([^=]+)=([^@]+)@(.+)$", re.I)
B32 = "abcdefghijklmnopqrstuvwxyz234567"

DSN = """\
From: Mail Delivery System <MAILER-DAEMON@mx.remote.example>
To: {to}
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"
Auto-Submitted: auto-replied

--b1
Content-Type: text/plain

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<someone@remote.example>: mailbox full
--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.remote.example

Final-Recipient: rfc822; someone@remote.example
Action: failed
Status: 5.2.2
Diagnostic-Code: smtp; 552 5.2.2 mailbox full

--b1
Content-Type: text/rfc822-headers

From: alice@far.example
Subject: {subject}
--b1--
""".replace("\n", "\r\n")


def srs_hash(secret, day, domain, local):
    """What README's SRS paragraph promises: HMAC-MD5 of DAY=domain=local
    (lower-cased) keyed with the secret file's text, 4 base-32 characters."""
    mac = hmac.new(secret, f"{day}={domain}={local}".lower().encode(), hashlib.md5).digest()
    bits = int.from_bytes(mac[:4], "big")
    return "".join(B32[(bits >> (27 - 5 * i)) & 31] for i in range(4))


def day_stamp(t):
    d = (int(t) // 86400) % 1024
    return B32[d >> 5] + B32[d & 31]


def default_source(dest):
    """The address the kernel starts a connection to `dest` from."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((dest, 25))
        return s.getsockname()[0]
    finally:
        s.close()


@unittest.skipUnless(netfix.available(), "needs dnsmasq, python3-aiosmtpd and openssl")
class ForwardingSrs(mr.Case):
    def setUp(self):
        absent = sf.missing(sf.INETD, sf.SENDMAIL)
        if absent:
            self.skipTest(f"not installed: {' '.join(absent)}")
        super().setUp()
        sitefix.configure()
        with open(ALIASES, "a") as f:
            f.write(f"\nfwd: someone@{REMOTE}\n")
        with open(LOCAL_HOST_NAMES, "a") as f:
            f.write(f"\n{OTHER_LOCAL}\n")
        for p in (SOURCE_ADDRESSES, SOURCE_ADDRESSES + ".db"):
            if os.path.exists(p):
                os.unlink(p)
        p = mr.run(["newaliases"])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.bob = mr.ensure_user("bob")
        # shop.example, a sender's domain, has an MX too: remote.example's.
        site = sitefix.Site(self.addCleanup, remotes={REMOTE: REMOTE_MX, FAR: FAR_MX},
                            shared_mx={SHOP: REMOTE})
        self.mark, self.inetd = site.mark, site.inetd
        self.remote, self.far = site.sinks[REMOTE], site.sinks[FAR]

    # -- helpers -----------------------------------------------------------

    def log(self):
        return mr.log_since(self.mark)

    def raw(self):
        r = sf.Raw()
        self.addCleanup(r.close)
        self.assertTrue(r.greeting.startswith(b"220 "), r.greeting)
        self.assertTrue(r.cmd("EHLO mx.remote.example").startswith(b"250"))
        return r

    def smtp_send(self, sender, rcpt, body):
        """One message by SMTP on port 25 from the outside client; asserts
        every reply."""
        r = self.raw()
        self.assertTrue(r.cmd(f"MAIL FROM:<{sender}>").startswith(b"250 2.1.0"))
        reply = r.cmd(f"RCPT TO:<{rcpt}>")
        self.assertTrue(reply.startswith(b"250 2.1.5"), reply)
        self.assertTrue(r.cmd("DATA").startswith(b"354"))
        r.send(body.replace("\r\n", "\n").replace("\n", "\r\n").encode() + b".\r\n")
        reply = r.reply()
        self.assertTrue(reply.startswith(b"250 2.0.0"), reply)
        r.quit()

    def rcpt_reply(self, sender, rcpt):
        r = self.raw()
        self.assertTrue(r.cmd(f"MAIL FROM:<{sender}>").startswith(b"250"))
        reply = r.cmd(f"RCPT TO:<{rcpt}>").decode("latin-1")
        r.quit()
        return reply

    def wait(self, server, count=1):
        got = server.wait_for(count, timeout=20)
        self.assertEqual(len(got), count,
                         f"{server.host}: {server.transactions}\n"
                         f"queue:\n{sf.mailq()}\nlog:\n{self.log()}")
        return got

    def secret(self):
        with open(SECRET, "rb") as f:
            return f.read().strip()

    def forward_from_far(self, subject="Forward me"):
        """alice@far.example -> fwd (-> someone@remote.example); returns
        the SRS envelope sender remote.example's MX saw."""
        self.smtp_send(f"alice@{FAR}", f"fwd@{HOST}",
                       f"From: Alice <alice@{FAR}>\nTo: fwd@{HOST}\nSubject: {subject}\n\nhello\n")
        (m,) = self.wait(self.remote)
        self.assertEqual(m.rcpt_tos, [f"someone@{REMOTE}"])
        self.assertEqual(m.message["Subject"], subject)
        return m.mail_from

    # -- scenarios ---------------------------------------------------------

    def test_forwarded_mail_has_an_srs0_sender_and_its_bounce_returns_to_alice(self):
        t = time.time()
        srs = self.forward_from_far()
        m = SRS_RE.match(srs)
        self.assertIsNotNone(m, f"MAIL FROM:<{srs}> is not SRS0=HASH=DAY=far.example=alice@{HOST}")
        h, day, domain, local, host = m.groups()
        self.assertEqual((domain, local, host), (FAR, "alice", HOST), srs)
        self.assertIn(day, (day_stamp(t), day_stamp(time.time())), srs)
        # The secret: made on first use, root:mqueue 0640, and the hash is
        # the documented HMAC.
        st = os.stat(SECRET)
        self.assertEqual(st.st_mode & 0o777, 0o640, oct(st.st_mode))
        self.assertEqual(st.st_uid, 0)
        self.assertEqual(grp.getgrgid(st.st_gid).gr_name, "mqueue")
        self.assertEqual(h.lower(), srs_hash(self.secret(), day, domain, local), srs)
        self.assertEqual(self.far.messages, [])
        # remote.example bounces to the SRS address, by SMTP from <>.
        self.smtp_send("", srs, DSN.format(to=srs, subject="Forward me"))
        (b,) = self.wait(self.far)
        self.assertEqual(b.mail_from, "<>")
        self.assertEqual(b.rcpt_tos, [f"alice@{FAR}"])
        self.assertEqual(b.message["Subject"], "Undelivered Mail Returned to Sender")
        self.assertEqual(b.message.get_content_type(), "multipart/report")
        self.assertIn("mailbox full", b.data.decode("latin-1"))
        # The bounce itself is not bounced nor forwarded anywhere else.
        self.assertEqual(len(self.remote.messages), 1, self.remote.messages)
        self.assertTrue(sf.wait_until(lambda: mr.queue_ids() == [], 10), sf.mailq())

    def test_forged_and_expired_srs_addresses_are_refused_at_rcpt(self):
        srs = self.forward_from_far()
        h, day, domain, local, host = SRS_RE.match(srs).groups()
        # The hash changed.
        other = "".join(B32[(B32.index(c.lower()) + 1) % 32] for c in h)
        forged = f"SRS0={other}={day}={domain}={local}@{host}"
        # Another local part under alice's hash.
        mallory = f"SRS0={h}={day}={domain}=mallory@{host}"
        # A correct hash over a day 30 days ago (README: 21 days).
        old = day_stamp(time.time() - 30 * 86400)
        expired = f"SRS0={srs_hash(self.secret(), old, domain, local)}={old}={domain}={local}@{host}"
        for bad in (forged, mallory, expired):
            with self.subTest(bad=bad):
                reply = self.rcpt_reply("", bad)
                self.assertTrue(reply.startswith("550 5.1.1 "), reply)
                self.assertIn(f"<{bad}>", reply)
        # The genuine one is still taken (case changed, as servers may).
        self.assertTrue(self.rcpt_reply("", srs.upper()).startswith("250 2.1.5"))
        time.sleep(1)
        self.assertTrue(self.inetd.wait_idle())
        self.assertEqual(self.far.messages, [])
        self.assertEqual(mr.queue_ids(), [], sf.mailq())

    def test_mail_from_the_boxs_own_domains_keeps_its_sender_when_forwarded(self):
        # A user of the box, submitting locally.
        p = mr.sendmail(["-i", "fwd"], b"Subject: from bob\n\nhi\n", user="bob")
        self.assertEqual(p.returncode, 0, p.stderr)
        (m,) = self.wait(self.remote)
        self.assertEqual(m.mail_from, f"bob@{HOST}")
        # A second local domain's sender, arriving by SMTP.
        self.remote.clear()
        self.smtp_send(f"info@{OTHER_LOCAL}", f"fwd@{HOST}",
                       f"From: info@{OTHER_LOCAL}\nSubject: from hosted\n\nhi\n")
        (m,) = self.wait(self.remote)
        self.assertEqual(m.mail_from, f"info@{OTHER_LOCAL}")
        self.assertEqual(m.rcpt_tos, [f"someone@{REMOTE}"])

    def test_a_hosted_domain_sends_from_its_own_address(self):
        with open(SOURCE_ADDRESSES, "w") as f:
            f.write(f"# hosted domains with their own IP\n{SHOP} {SHOP_IP}\n")
        default = default_source(REMOTE_MX)
        self.assertNotEqual(default, SHOP_IP)
        for sender, expect in ((f"x@{SHOP}", SHOP_IP), (f"alice@{FAR}", default),
                               (f"bob@{HOST}", default)):
            with self.subTest(sender=sender):
                self.remote.clear()
                p = mr.sendmail(["-f", sender, "-i", f"someone@{REMOTE}"],
                                f"From: {sender}\nSubject: from {sender}\n\nhi\n".encode())
                self.assertEqual(p.returncode, 0, p.stderr)
                (m,) = self.wait(self.remote)
                self.assertEqual(m.mail_from, sender)
                self.assertEqual(m.peer[0], expect, f"{sender}: {m.peer}\nlog:\n{self.log()}")
        # Its bounces (the null sender) use the default address.
        self.remote.clear()
        p = mr.sendmail(["-f", "<>", "-i", f"someone@{REMOTE}"], b"Subject: a bounce\n\nb\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        (m,) = self.wait(self.remote)
        self.assertEqual(m.peer[0], default)


if __name__ == "__main__":
    unittest.main()
