"""Remote delivery: what a user sees when mail leaves the machine.

Each scenario puts "the internet" on loopback (compat/netfix.py): dnsmasq
answers the MX and A records, aiosmtpd servers on 127.0.0.N play the
remote MX hosts or the ISP's smarthost and do what the scenario needs
(accept, defer, reject, drop, STARTTLS, AUTH).  mailroom is configured
queue-only with short SMTP timeouts; the queue is run by hand with
`sendmail -qf` (as an admin does) or `sendmail -q`.  Bounces are delivered
locally, so they are read from the sender's /var/mail mbox.
"""

import email
import email.policy
import mailbox
import os
import time
import unittest

import mr
import netfix

MAILLOG = "/var/log/mail.log"
SMARTHOST_AUTH = "/etc/mail/smarthost-auth"


def mbox(user):
    """The messages in /var/mail/USER, parsed (compat32 Message objects)."""
    path = f"/var/mail/{user}"
    if not os.path.exists(path):
        return []
    box = mailbox.mbox(path, create=False)
    try:
        return [email.message_from_bytes(box.get_bytes(k)) for k in box.keys()]
    finally:
        box.close()


def from_lines(user):
    path = f"/var/mail/{user}"
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        return [l for l in f.read().split(b"\n") if l.startswith(b"From ")]


def dsn(msg):
    """Split a DSN into (human text, per-message fields, [per-recipient
    fields], returned message) and check its RFC 3464 structure."""
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status", msg["Content-Type"]
    parts = msg.get_payload()
    assert len(parts) == 3, [p.get_content_type() for p in parts]
    text, status, original = parts
    assert text.get_content_type() == "text/plain", text.get_content_type()
    assert status.get_content_type() == "message/delivery-status", status.get_content_type()
    blocks = status.get_payload()
    assert len(blocks) >= 2, blocks
    assert original.get_content_type() in ("message/rfc822", "text/rfc822-headers")
    if original.get_content_type() == "message/rfc822":
        returned = original.get_payload()[0]
    else:
        returned = email.message_from_string(original.get_payload())
    return text.get_payload(decode=True).decode("utf-8", "replace"), blocks[0], blocks[1:], returned


def mailq(*args):
    p = mr.run(["mailq"] + list(args))
    assert p.returncode == 0, p.stderr
    return p.stdout.decode("latin-1")


def maillog():
    try:
        with open(MAILLOG, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def qrun_running():
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "qrun":
                        return True
            except OSError:
                pass
    return False


def wait_until(cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


@unittest.skipUnless(netfix.available(), "needs dnsmasq, python3-aiosmtpd and openssl")
class RemoteDelivery(mr.Case):
    def setUp(self):
        super().setUp()
        self.net = netfix.Network()
        self.addCleanup(self.net.stop_all)
        mr.ensure_user("alice")
        for u in ("alice", "root", "www-data"):
            try:
                os.unlink(f"/var/mail/{u}")
            except FileNotFoundError:
                pass
        try:
            os.unlink(SMARTHOST_AUTH)
        except FileNotFoundError:
            pass
        self.log_start = len(maillog())
        self.configure()

    def configure(self, extra=""):
        mr.default_config("smtp_timeout_cap = 3s\nsmtp_connect_timeout = 3s\n" + extra)

    def log(self):
        return maillog()[self.log_start:]

    def send(self, args, message, user=None):
        p = mr.sendmail(args, message, user=user)
        self.assertEqual(p.returncode, 0, p.stderr)
        return mr.only_id(self)

    def run_queue(self, *extra):
        p = super().run_queue(*extra, timeout=60)
        self.assertLess(p.seconds, 20, "a queue run must not hang")
        return p

    def assert_no_bounce(self, user="alice"):
        self.assertEqual(mbox(user), [], f"unexpected mail for {user}")

    # -- a web site's mail reaches the customer ------------------------------

    def test_php_mail_to_a_gmail_customer_goes_out_through_the_mx(self):
        self.net.dns(mx={"gmail.example": [(5, "gmail-smtp-in.l.gmail.example")]},
                     hosts={"gmail-smtp-in.l.gmail.example": "127.0.0.2"})
        mx = self.net.smtp("127.0.0.2")
        qid = self.send(["-t", "-i"], b"To: customer@gmail.example\nSubject: Your order #1001\n"
                        b"Content-Type: text/plain; charset=UTF-8\n\nThank you for your order.\n",
                        user="www-data")
        self.run_queue()
        got = mx.wait_for(1)
        self.assertEqual(len(got), 1, mx.transactions)
        m = got[0]
        self.assertEqual(m.rcpt_tos, ["customer@gmail.example"])
        msg = m.message
        self.assertEqual(msg["Subject"], "Your order #1001")
        self.assertIn(f"<www-data@{mr.HOST}>", msg["From"])
        self.assertIn(qid, msg["Received"])
        self.assertTrue(msg["Message-Id"])
        self.assertIn("Thank you for your order.", msg.get_content())
        self.assertEqual(mr.queue_ids(), [])
        log = self.log()
        self.assertIn(f"{qid}: to=customer@gmail.example,", log)
        self.assertIn("relay=gmail-smtp-in.l.gmail.example. [127.0.0.2]", log)
        self.assertIn("stat=Sent (", log)
        # The envelope sender goes out qualified (RFC 5321 4.1.2: a
        # reverse-path has a domain; real MX hosts refuse MAIL FROM:<www-data>).
        self.assertEqual(m.mail_from, f"www-data@{mr.HOST}")

    def test_the_second_mx_takes_the_mail_when_the_first_refuses_connections(self):
        self.net.dns(mx={"shop.example": [(10, "mx1.shop.example"), (20, "mx2.shop.example")]},
                     hosts={"mx1.shop.example": "127.0.0.2", "mx2.shop.example": "127.0.0.3"})
        # nothing listens on 127.0.0.2: connection refused
        backup = self.net.smtp("127.0.0.3")
        qid = self.send(["-i", "orders@shop.example"], b"Subject: stock report\n\nall good\n")
        self.run_queue()
        got = backup.wait_for(1)
        self.assertEqual([m.rcpt_tos for m in got], [["orders@shop.example"]])
        self.assertEqual(mr.queue_ids(), [])
        self.assertIn("relay=mx2.shop.example. [127.0.0.3]", self.log())
        self.assertIn(f"{qid}: done", self.log())

    def test_a_domain_without_mx_gets_its_mail_at_its_own_address(self):
        self.net.dns(hosts={"smallbiz.example": "127.0.0.3"})
        host = self.net.smtp("127.0.0.3")
        self.send(["-i", "owner@smallbiz.example"], b"Subject: implicit MX\n\nhi\n")
        self.run_queue()
        self.assertEqual([m.rcpt_tos for m in host.wait_for(1)], [["owner@smallbiz.example"]])
        self.assertEqual(mr.queue_ids(), [])

    # -- one message, three fates ---------------------------------------------

    def test_one_message_accepted_deferred_and_rejected_per_recipient(self):
        self.net.dns(mx={"shop.example": [(10, "mx.shop.example")]},
                     hosts={"mx.shop.example": "127.0.0.2"})
        later_reply = "451 4.2.0 <later@shop.example>... Mailbox busy, try again later"
        gone_reply = "550 5.1.1 <gone@shop.example>... User unknown"
        mx = self.net.smtp("127.0.0.2", rcpt={"later@shop.example": later_reply,
                                              "gone@shop.example": gone_reply})
        qid = self.send(["-i", "ok@shop.example", "later@shop.example", "gone@shop.example"],
                        b"From: Alice <alice@mx.example.test>\nSubject: team lunch\n\nFriday?\n",
                        user="alice")
        self.run_queue()
        # one transaction, three RCPTs
        self.assertEqual(len(mx.transactions), 1, mx.transactions)
        self.assertEqual([r for r, _ in mx.transactions[0].rcpts],
                         ["ok@shop.example", "later@shop.example", "gone@shop.example"])
        self.assertEqual([m.rcpt_tos for m in mx.messages], [["ok@shop.example"]])
        # only the deferred recipient stays queued, with the remote reason
        self.assertEqual(mr.queue_ids(), [qid])
        self.assertEqual(mr.qf_recipients(qid), ["later@shop.example"])
        q = mailq()
        self.assertIn("(Deferred: 451 4.2.0 <later@shop.example>", q)
        self.assertIn("\t\t\t\t\t later@shop.example\n", q)
        self.assertNotIn("ok@shop.example", q)
        self.assertNotIn("gone@shop.example", q)
        self.assertIn(later_reply, mailq("-v"))
        # one bounce, for the rejected recipient only
        box = mbox("alice")
        self.assertEqual(len(box), 1, [m["Subject"] for m in box])
        b = box[0]
        self.assertEqual(b["Subject"], "Returned mail: see transcript for details")
        self.assertIn("MAILER-DAEMON", b["From"])
        self.assertTrue(from_lines("alice")[0].startswith(b"From MAILER-DAEMON "), from_lines("alice"))
        text, per_msg, rcpts, returned = dsn(b)
        self.assertEqual(per_msg["Reporting-MTA"], f"dns; {mr.HOST}")
        self.assertTrue(per_msg["Arrival-Date"])
        self.assertEqual(len(rcpts), 1, [str(r) for r in rcpts])
        r = rcpts[0]
        self.assertEqual(r["Final-Recipient"], "RFC822; gone@shop.example")
        self.assertEqual(r["Action"], "failed")
        self.assertEqual(r["Status"], "5.1.1")
        self.assertEqual(r["Remote-MTA"], "DNS; mx.shop.example")
        self.assertEqual(r["Diagnostic-Code"], "SMTP; " + gone_reply)
        self.assertIn("gone@shop.example", text)
        self.assertIn(gone_reply, text)
        self.assertNotIn("later@shop.example", text)
        self.assertEqual(returned["Subject"], "team lunch")
        self.assertIn("Friday?", returned.get_payload())
        self.assertIn(f"{qid}: ", self.log())
        self.assertRegex(self.log(), rf"{qid}: \w+: DSN: ")

    # -- TLS and the smarthost --------------------------------------------------

    def test_starttls_is_used_when_the_mx_offers_it(self):
        self.net.dns(mx={"bank.example": [(10, "mx.bank.example")]},
                     hosts={"mx.bank.example": "127.0.0.4"})
        mx = self.net.smtp("127.0.0.4", starttls=True, name="mx.bank.example")
        self.send(["-i", "support@bank.example"], b"Subject: statement\n\nplease\n")
        self.run_queue()
        got = mx.wait_for(1)
        self.assertEqual(len(got), 1, mx.transactions)
        self.assertTrue(got[0].tls, "the message went in the clear although STARTTLS was offered")
        self.assertEqual(mr.queue_ids(), [])

    def smarthost_config(self, password):
        self.configure("smarthost = [smtp.isp.example]:587\nsmarthost_tls = encrypt\n")
        with open(SMARTHOST_AUTH, "w") as f:
            f.write(f"webmaster@isp.example {password}\n")
        os.chmod(SMARTHOST_AUTH, 0o600)
        self.net.dns(hosts={"smtp.isp.example": "127.0.0.5"})
        return self.net.smtp("127.0.0.5", 587, name="smtp.isp.example", starttls=True,
                             auth=("webmaster@isp.example", "S3cret-pass"), require_auth=True)

    def test_smarthost_on_port_587_with_starttls_and_auth(self):
        relay = self.smarthost_config("S3cret-pass")
        # two domains without any MX: the smarthost takes both
        self.send(["-i", "friend@elsewhere.example", "boss@corp.example"],
                  b"Subject: via the ISP\n\nhello\n", user="alice")
        self.run_queue()
        got = relay.wait_for(2)
        self.assertEqual(sorted(r for m in got for r in m.rcpt_tos),
                         ["boss@corp.example", "friend@elsewhere.example"], relay.transactions)
        for m in got:
            self.assertTrue(m.tls, m)
            self.assertEqual(m.auth_user, "webmaster@isp.example")
        self.assertEqual(relay.auth_failures, [])
        # one login per connection, not one per message
        self.assertEqual(len(relay.logins), 1, relay.logins)
        self.assertEqual(mr.queue_ids(), [])
        self.assert_no_bounce()
        for m in got:
            self.assertEqual(m.mail_from, f"alice@{mr.HOST}")

    def test_smarthost_refusing_the_login_defers_without_bouncing(self):
        relay = self.smarthost_config("an-old-password")
        qid = self.send(["-i", "friend@elsewhere.example"], b"Subject: x\n\ny\n", user="alice")
        self.run_queue()
        self.assertEqual(relay.auth_failures[:1], ["webmaster@isp.example"])
        self.assertEqual(relay.messages, [])
        self.assertEqual(mr.queue_ids(), [qid])
        self.assertIn("(Deferred:", mailq())
        self.assertIn("535", mailq("-v"))
        self.assert_no_bounce()

    # -- the network misbehaves ---------------------------------------------------

    def test_dns_down_keeps_the_message_queued_without_bounce(self):
        dns = self.net.dns(mx={"gmail.example": [(5, "mx.gmail.example")]},
                           hosts={"mx.gmail.example": "127.0.0.2"})
        dns.stop()
        mx = self.net.smtp("127.0.0.2")
        qid = self.send(["-t", "-i"], b"To: customer@gmail.example\nSubject: s\n\nb\n", user="alice")
        self.run_queue()
        self.assertEqual(mx.transactions, [])
        self.assertEqual(mr.queue_ids(), [qid])
        q = mailq()
        self.assertIn("(Deferred: ", q)
        self.assertIn("gmail.example", q)
        self.assertIn("customer@gmail.example", q)
        self.assertEqual(mr.qf_records(qid, "N"), ["1"])
        self.assert_no_bounce()
        self.assertNotRegex(self.log(), r"DSN: ")

    def test_a_connection_dropped_after_data_is_deferred(self):
        self.net.dns(mx={"flaky.example": [(10, "mx.flaky.example")]},
                     hosts={"mx.flaky.example": "127.0.0.6"})
        mx = self.net.smtp("127.0.0.6", drop_after_data=True)
        qid = self.send(["-i", "someone@flaky.example"], b"Subject: s\n\nb\n", user="alice")
        self.run_queue()
        self.assertEqual(len(mx.dropped), 1, mx.transactions)
        self.assertEqual(mr.queue_ids(), [qid])
        self.assertIn("(Deferred: ", mailq())
        self.assertIn("someone@flaky.example", mailq())
        self.assert_no_bounce()

    def test_sendmail_q_delivers_a_deferred_message_once_the_network_is_fixed(self):
        self.net.dns(mx={"fixme.example": [(10, "mx.fixme.example")]},
                     hosts={"mx.fixme.example": "127.0.0.8"})
        qid = self.send(["-i", "user@fixme.example"], b"Subject: patience\n\nb\n", user="alice")
        self.run_queue()
        self.assertEqual(mr.queue_ids(), [qid])
        self.assertIn("(Deferred: Connection refused by mx.fixme.example.)", mailq())
        # the admin fixes the network, then asks for a queue run
        mx = self.net.smtp("127.0.0.8")
        p = mr.run(["/usr/sbin/sendmail", "-q"])
        self.assertEqual(p.returncode, 0, p.stderr)
        got = mx.wait_for(1, timeout=15)
        self.assertEqual([m.rcpt_tos for m in got], [["user@fixme.example"]])
        self.assertTrue(wait_until(lambda: mr.queue_ids() == [] and not qrun_running()),
                        os.listdir(mr.QUEUE))
        self.assert_no_bounce()

    # -- content --------------------------------------------------------------

    def test_8bit_message_to_a_server_without_8bitmime_arrives_quoted_printable(self):
        self.net.dns(mx={"old.example": [(10, "mx.old.example")]},
                     hosts={"mx.old.example": "127.0.0.2"})
        mx = self.net.smtp("127.0.0.2", eight_bit_mime=False)
        text = "Grüße aus Köln – naïve café, 100 €\n"
        self.send(["-t", "-i"], ("To: hans@old.example\nSubject: Gruesse\nMIME-Version: 1.0\n"
                                 "Content-Type: text/plain; charset=UTF-8\n"
                                 "Content-Transfer-Encoding: 8bit\n\n" + text).encode(), user="alice")
        self.run_queue()
        got = mx.wait_for(1)
        self.assertEqual(len(got), 1, mx.transactions)
        raw = got[0].data.replace(b"\r\n", b"\n")
        self.assertTrue(all(b < 0x80 for b in raw), "8-bit bytes sent to a 7-bit server")
        self.assertNotIn("BODY=8BITMIME", " ".join(got[0].mail_options).upper())
        msg = email.message_from_bytes(raw)
        self.assertEqual(msg.get_all("Content-Transfer-Encoding"), ["quoted-printable"])
        self.assertEqual(msg.get_payload(decode=True).decode("utf-8"), text)
        self.assertEqual(msg["Subject"], "Gruesse")

    # -- bounces --------------------------------------------------------------

    def test_the_remote_rejection_text_is_quoted_in_the_bounce(self):
        self.net.dns(mx={"gmail.example": [(5, "mx.gmail.example")]},
                     hosts={"mx.gmail.example": "127.0.0.2"})
        lines = ["550-5.1.1 The email account that you tried to reach does not exist. Please try",
                 "550-5.1.1 double-checking the recipient's email address for typos or",
                 "550 5.1.1 unnecessary spaces. ref-7Qx2 - gsmtp"]
        self.net.smtp("127.0.0.2", rcpt={"no.such.person@gmail.example": "\r\n".join(lines)})
        self.send(["-i", "no.such.person@gmail.example"], b"Subject: hello\n\nb\n", user="alice")
        self.run_queue()
        self.assertEqual(mr.queue_ids(), [])
        box = mbox("alice")
        self.assertEqual(len(box), 1)
        text, _, rcpts, returned = dsn(box[0])
        self.assertEqual(rcpts[0]["Status"], "5.1.1")
        diag = " ".join(rcpts[0]["Diagnostic-Code"].split())
        self.assertTrue(diag.startswith("SMTP; 550"), diag)
        for words in ("does not exist", "double-checking the recipient's email address",
                      "unnecessary spaces. ref-7Qx2 - gsmtp"):
            self.assertIn(words, diag)
            self.assertIn(words, " ".join(text.split()))
        self.assertEqual(returned["Subject"], "hello")

    def test_a_message_refused_after_data_bounces_for_every_recipient(self):
        self.net.dns(mx={"corp.example": [(10, "mx.corp.example")]},
                     hosts={"mx.corp.example": "127.0.0.2"})
        reply = "554 5.7.1 Message rejected: content policy violation (ref ABC-4711)"
        self.net.smtp("127.0.0.2", data_reply=reply)
        self.send(["-i", "a@corp.example", "b@corp.example"], b"Subject: offer\n\nb\n", user="alice")
        self.run_queue()
        self.assertEqual(mr.queue_ids(), [])
        box = mbox("alice")
        self.assertEqual(len(box), 1, "one bounce per message")
        text, _, rcpts, _ = dsn(box[0])
        self.assertEqual(sorted(r["Final-Recipient"] for r in rcpts),
                         ["RFC822; a@corp.example", "RFC822; b@corp.example"])
        for r in rcpts:
            self.assertEqual(r["Action"], "failed")
            self.assertEqual(r["Status"], "5.7.1")
            self.assertEqual(r["Diagnostic-Code"], "SMTP; " + reply)
        self.assertIn("ref ABC-4711", text)

    def test_a_domain_that_does_not_exist_bounces_at_once(self):
        self.net.dns(mx={"gmail.example": [(5, "mx.gmail.example")]},
                     hosts={"mx.gmail.example": "127.0.0.2"})
        self.send(["-i", "customer@gmial.example"], b"Subject: typo\n\nb\n", user="alice")
        self.run_queue()
        self.assertEqual(mr.queue_ids(), [])
        box = mbox("alice")
        self.assertEqual(len(box), 1)
        _, _, rcpts, _ = dsn(box[0])
        self.assertEqual(rcpts[0]["Final-Recipient"], "RFC822; customer@gmial.example")
        self.assertEqual(rcpts[0]["Action"], "failed")
        self.assertEqual(rcpts[0]["Status"], "5.1.2")

    def test_delay_warning_is_sent_once_then_the_bounce_after_queue_return(self):
        self.configure("queue_warn = 2s\nqueue_return = 4s\n")
        self.net.dns(mx={"slow.example": [(10, "mx.slow.example")]},
                     hosts={"mx.slow.example": "127.0.0.7"})   # refuses connections
        t0 = time.time()
        qid = self.send(["-i", "partner@slow.example"], b"Subject: contract\n\nsee attached\n",
                        user="alice")
        self.run_queue()
        self.assertEqual(mr.queue_ids(), [qid])
        self.assert_no_bounce()
        time.sleep(max(0.0, t0 + 2.6 - time.time()))
        self.run_queue()
        self.run_queue()        # a second run after the warning sends no other
        self.assertEqual(mr.queue_ids(), [qid])
        box = mbox("alice")
        self.assertEqual(len(box), 1, [m["Subject"] for m in box])
        warning = box[0]
        self.assertTrue(warning["Subject"].startswith("Warning: could not send message for past"),
                        warning["Subject"])
        text, _, rcpts, returned = dsn(warning)
        self.assertIn("THIS IS A WARNING MESSAGE ONLY", text)
        self.assertEqual(rcpts[0]["Final-Recipient"], "RFC822; partner@slow.example")
        self.assertEqual(rcpts[0]["Action"], "delayed")
        self.assertTrue(rcpts[0]["Status"].startswith("4."), rcpts[0]["Status"])
        self.assertTrue(rcpts[0]["Will-Retry-Until"])
        self.assertEqual(returned["Subject"], "contract")
        self.assertIn("+", mailq("-v").split("\n")[2], "mailq -v marks a sent delay warning")
        time.sleep(max(0.0, t0 + 4.6 - time.time()))
        self.run_queue()
        self.assertEqual(mr.queue_ids(), [])
        box = mbox("alice")
        self.assertEqual(len(box), 2, [m["Subject"] for m in box])
        final = box[1]
        self.assertEqual(final["Subject"], "Returned mail: see transcript for details")
        _, _, rcpts, _ = dsn(final)
        self.assertEqual(rcpts[0]["Final-Recipient"], "RFC822; partner@slow.example")
        self.assertEqual(rcpts[0]["Action"], "failed")
        self.assertEqual(rcpts[0]["Status"], "4.4.7")
        self.assertIn("Connection refused by mx.slow.example.", rcpts[0]["Diagnostic-Code"])

    def test_a_refused_message_from_the_null_sender_never_bounces_to_it(self):
        self.net.dns(mx={"shop.example": [(10, "mx.shop.example")]},
                     hosts={"mx.shop.example": "127.0.0.2"})
        mx = self.net.smtp("127.0.0.2", rcpt={"gone@shop.example": "550 5.1.1 User unknown"})
        self.send(["-f", "<>", "-i", "gone@shop.example"],
                  b"From: MAILER-DAEMON\nSubject: Returned mail\n\nyour message\n")
        self.run_queue()
        self.run_queue()
        # the remote host saw only the original attempt, from <> (which
        # aiosmtpd records as "<>")
        self.assertEqual([t.mail_from for t in mx.transactions], ["<>"])
        self.assertEqual(mx.messages, [])
        self.assertEqual(mr.queue_ids(), [])
        # at most one notice, to the postmaster (root here), never to <>
        box = mbox("root")
        self.assertLessEqual(len(box), 1, [m["Subject"] for m in box])
        if box:
            _, _, rcpts, _ = dsn(box[0])
            self.assertEqual(rcpts[0]["Final-Recipient"], "RFC822; gone@shop.example")
        self.assertNotIn("to=<>", self.log())
        self.assertNotIn("to=, ", self.log())


if __name__ == "__main__":
    unittest.main()
