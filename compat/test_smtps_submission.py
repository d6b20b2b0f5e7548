"""Users send on port 465: submission with implicit TLS (RFC 8314), which
mail programs are told to prefer over STARTTLS on 587.

Debian's openbsd-inetd (private configuration) starts the installed
`sendmail -bs --tls` for 127.0.0.1:465 -- the `submissions` line of
etc/inetd/inetd.conf, or `sendmail -bs --tls` where it has none -- and
plain `sendmail -bs` for 127.0.0.2:465, which must serve implicit TLS all
the same because its local port is 465.  Clients connect from 192.0.2.10
(an outside address on the sandbox's loopback, compat/smtpfix.py):

* real clients in TLS from the first byte -- Python's smtplib.SMTP_SSL,
  swaks --tlsc, msmtp with `tls_starttls off` -- log in and send to a
  remote domain (an aiosmtpd MX found through dnsmasq) and to a local
  user; the copies say ESMTPSA in Received:;
* without AUTH nothing is accepted (530), relaying or not;
* a plain-text client hears nothing at all: no greeting, and its first
  line ends the connection;
* with no certificate installed the server closes unanswered and logs why.

Needs openbsd-inetd, swaks with libnet-ssleay-perl, msmtp, dnsmasq and
python3-aiosmtpd (.ci/run installs them).  Runs as root in the compat
sandbox.
"""

import os
import smtplib
import ssl
import time

import mr
import smtpfix as sf
from test_smtp_clients import (AUTH_OK, AUTH_REQUIRED, BODY, HOST, PASSWORD, REMOTE,
                               SmtpCase, b64)

MSMTP = "/usr/bin/msmtp"
# Port 465 by its port alone: no --tls on this line.
BY_PORT = "127.0.0.2"
BY_PORT_LINE = f"{BY_PORT}:465\tstream\ttcp\tnowait\troot\t/usr/sbin/sendmail\tsendmail -bs"


class Submissions465(SmtpCase):
    def setUp(self):
        super().setUp()
        self.inetd465 = sf.Inetd(services=("submissions",), extra_lines=[BY_PORT_LINE])
        self.inetd465.start()
        self.addCleanup(self.inetd465.stop)
        self.assertIn("--tls", self.inetd465.lines[0], "the 465 line runs sendmail -bs --tls")

    def smtps(self, host=sf.ADDR, context=None):
        s = smtplib.SMTP_SSL(host, sf.SUBMISSIONS_PORT, local_hostname="laptop.example.org",
                             source_address=(sf.CLIENT_ADDR, 0), timeout=15,
                             context=context or self.tls())
        self.addCleanup(s.close)
        return s

    def message(self, subject, sender, to):
        return (f"From: {sender}\r\nTo: {', '.join(to)}\r\nSubject: {subject}\r\n"
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                ).encode() + BODY.replace("\n", "\r\n").encode()

    def assert_arrived(self, subjects, local_user):
        """Each subject at the remote MX and in the local mbox, sent as
        ESMTPSA (TLS and AUTH)."""
        got = self.sink.wait_for(len(subjects), timeout=20)
        self.assertEqual(sorted(m.message["Subject"] for m in got), sorted(subjects), sf.mailq())
        for m in got:
            self.assert_body(m.data, BODY)
            self.assert_received(m.data, "ESMTPSA")
        local = self.by_subject(self.delivered(local_user, len(subjects)))
        self.assertEqual(sorted(local), sorted(subjects))
        for m in local.values():
            self.assert_received(m, "ESMTPSA")
        self.assertEqual(mr.queue_ids(), [])

    def test_smtplib_smtp_ssl_logs_in_and_sends_on_465(self):
        self.need_sink()
        self.user("sslsub")
        self.user("ssllocal")
        sent = []
        for host, context in ((sf.ADDR, None), (BY_PORT, self.tls_any_name())):
            s = self.smtps(host, context)
            s.ehlo()
            self.assertEqual(s.esmtp_features.get("auth", "").split(), ["PLAIN", "LOGIN"])
            self.assertFalse(s.has_extn("starttls"), "STARTTLS offered inside TLS")
            self.assertIsNotNone(s.sock.version())
            self.assertEqual(s.login("sslsub", PASSWORD), (235, b"2.0.0 OK Authenticated"))
            subject = f"smtplib SMTP_SSL via {host}"
            to = [f"friend@{REMOTE}", f"ssllocal@{HOST}"]
            self.assertEqual(s.sendmail(f"sslsub@{HOST}", to, self.message(subject, f"sslsub@{HOST}", to),
                                        mail_options=["BODY=8BITMIME"]), {})
            s.quit()
            sent.append(subject)
        self.assert_arrived(sent, "ssllocal")

    def tls_any_name(self):
        """Our CA, without the host-name check (the certificate names
        127.0.0.1, and 127.0.0.2 serves it too)."""
        ctx = self.tls()
        ctx.check_hostname = False
        return ctx

    def test_swaks_tlsc_logs_in_and_sends_on_465(self):
        self.need_swaks_tls()
        self.need_sink()
        self.user("swakssub")
        self.user("swakslocal")
        sent = []
        for mech in ("PLAIN", "LOGIN"):
            subject = f"swaks --tlsc {mech}"
            p = sf.swaks(["--tlsc", "-a", mech, "--auth-user", "swakssub", "--auth-password", PASSWORD,
                          "--from", f"swakssub@{HOST}", "--to", f"friend@{REMOTE},swakslocal@{HOST}",
                          "--header", f"Subject: {subject}", "--body", BODY],
                         port=sf.SUBMISSIONS_PORT)
            self.assertEqual(p.returncode, 0, p.trace)
            replies = sf.swaks_replies(p.trace)
            self.assertRegex(replies[0], rf"^220 {HOST} ESMTP mailroom ")
            self.assertNotIn("250-STARTTLS", replies)
            self.assertIn(AUTH_OK.decode().strip(), replies)
            sent.append(subject)
        self.assert_arrived(sent, "swakslocal")

    def test_msmtp_with_tls_starttls_off_logs_in_and_sends_on_465(self):
        self.need(MSMTP)
        self.need_sink()
        self.user("msmtpsub")
        self.user("msmtplocal")
        d = sf.tempdir("msmtp.")
        conf = os.path.join(d, "msmtprc")
        with open(conf, "w") as f:
            f.write(f"account default\nhost {sf.ADDR}\nport {sf.SUBMISSIONS_PORT}\n"
                    f"source_ip {sf.CLIENT_ADDR}\ntls on\ntls_starttls off\ntls_trust_file {self.ca}\n"
                    f"auth on\nuser msmtpsub\npassword {PASSWORD}\nfrom msmtpsub@{HOST}\n"
                    f"domain laptop.example.org\ntimeout 15\n")
        os.chmod(conf, 0o600)
        to = [f"friend@{REMOTE}", f"msmtplocal@{HOST}"]
        p = mr.run([MSMTP, "-C", conf, "-v"] + to, input=self.message("msmtp 465", f"msmtpsub@{HOST}", to))
        trace = (p.stdout + p.stderr).decode(errors="replace")
        self.assertEqual(p.returncode, 0, trace)
        self.assertIn("<-- 235 2.0.0 OK Authenticated", trace)
        self.assertNotIn("STARTTLS", trace)
        self.assert_arrived(["msmtp 465"], "msmtplocal")

    def test_without_auth_nothing_is_accepted_on_465(self):
        self.user("sslnoauth")
        s = self.smtps()
        s.ehlo()
        # Not even mail for a local user: 465 is for users who log in.
        self.assertEqual(s.mail(f"sslnoauth@{HOST}"), (530, b"5.7.0 Authentication required"))
        self.assertEqual(s.rcpt(f"friend@{REMOTE}")[0], 503)
        self.assertEqual(s.docmd("AUTH", "PLAIN " + b64("\0sslnoauth\0not-the-password")),
                         (535, b"5.7.8 Authentication failed"))
        self.assertEqual(s.mail(f"sslnoauth@{HOST}"), (530, b"5.7.0 Authentication required"))
        s.quit()
        if sf.have_swaks_tls():
            p = sf.swaks(["--tlsc", "--from", f"sslnoauth@{HOST}", "--to", f"friend@{REMOTE}"],
                         port=sf.SUBMISSIONS_PORT)
            self.assertNotEqual(p.returncode, 0, p.trace)
            self.assertIn(AUTH_REQUIRED.decode().strip(), sf.swaks_replies(p.trace))
        self.assert_nothing_queued(["sslnoauth"])

    def test_a_plain_text_client_gets_nothing_on_465(self):
        for host in (sf.ADDR, BY_PORT):
            r = sf.Raw(sf.SUBMISSIONS_PORT, read_greeting=False, timeout=10, host=host)
            self.addCleanup(r.close)
            self.assertEqual(r.pending(1.5), [], "a greeting in plain text")
            r.send(b"EHLO plain.example.org\r\n")
            self.assertTrue(r.eof(), "the connection stays open after a plain-text line")
            self.assertNotIn(b"220", r.buf)
            self.assertIn(f"TLS handshake with [{sf.CLIENT_ADDR}] failed", self.log())
        # smtplib's plain SMTP class waits for a greeting that never comes.
        t = time.monotonic()
        with self.assertRaises((OSError, smtplib.SMTPException)):
            smtplib.SMTP(sf.ADDR, sf.SUBMISSIONS_PORT, source_address=(sf.CLIENT_ADDR, 0), timeout=3)
        self.assertGreater(time.monotonic() - t, 2.5, "the server answered in plain text")
        self.assert_nothing_queued()

    def test_without_a_certificate_465_closes_unanswered(self):
        os.unlink("/etc/mail/tls/mail.crt")
        r = sf.Raw(sf.SUBMISSIONS_PORT, read_greeting=False, timeout=10)
        self.addCleanup(r.close)
        self.assertTrue(r.eof(), "still open without a certificate")
        self.assertEqual(r.buf, b"", "something was said in plain text")
        self.assertIn(f"implicit TLS (port 465) needs /etc/mail/tls/mail.crt and /etc/mail/tls/mail.key: "
                      f"connection from [{sf.CLIENT_ADDR}] closed", self.log())
        with self.assertRaises((OSError, ssl.SSLError, smtplib.SMTPException)):
            smtplib.SMTP_SSL(sf.ADDR, sf.SUBMISSIONS_PORT, source_address=(sf.CLIENT_ADDR, 0),
                             timeout=10, context=self.tls())
