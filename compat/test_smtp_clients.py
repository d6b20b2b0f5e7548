"""The SMTP server (`sendmail -bs`) with the SMTP clients people use.

Local submission: PHP sites send through /usr/sbin/sendmail as www-data
with Debian's Symfony Mailer (`SendmailTransport('/usr/sbin/sendmail
-bs')`), Swiftmailer (`Swift_SendmailTransport`, -bs) and PHPMailer
(`isSendmail()`: `sendmail -oi -f... -t`).

Over the network: Debian's openbsd-inetd (private configuration, the
smtp and submission lines of etc/inetd/) starts `sendmail -bs` on
127.0.0.1:25 and 127.0.0.1:587.  Clients connect from 192.0.2.10, an
address on the sandbox's loopback interface that is not loopback to the
server, so they are outside clients: swaks, Python's smtplib and curl
deliver to local users on port 25, are refused relaying there, and relay
after STARTTLS and AUTH on 587.  Misbehaving clients: an early talker
(greet pause) and bare LF in DATA (SMTP smuggling).

Every message must arrive intact in the recipient's /var/mail mbox
(delivered in the background by the queue runner), or, for a remote
domain, at that domain's MX host: an aiosmtpd sink on 127.0.0.2 found
through dnsmasq (compat/netfix.py).

Replies are checked against the texts of sendmail 8 that the server
promises (RFC 5321 codes, RFC 3463 enhanced codes).

Needs openbsd-inetd, swaks (with libnet-ssleay-perl for TLS), curl, php-cli
with php-symfony-mailer, php-swiftmailer and libphp-phpmailer, dnsmasq and
python3-aiosmtpd (.ci/run installs them); a scenario whose program is
missing is skipped.  Runs as root in the compat sandbox (lib/sandbox.sh).
"""

import base64
import email
import email.policy
import os
import re
import smtplib
import time
import unittest

import mr
import netfix
import sitefix
import smtpfix as sf

HOST = mr.HOST
PASSWORD = "Sm7p-s3cret-pw"
REMOTE = "remote.example"
REMOTE_MX = "127.0.0.2"

SENDER_OK = "250 2.1.0 <{}>... Sender ok\r\n"
RCPT_OK = "250 2.1.5 <{}>... Recipient ok\r\n"
USER_UNKNOWN = "550 5.1.1 <{}>... User unknown\r\n"
RELAY_DENIED = "550 5.7.1 <{}>... Relaying denied\r\n"
AUTH_REQUIRED = b"530 5.7.0 Authentication required\r\n"
AUTH_OK = b"235 2.0.0 OK Authenticated\r\n"
AUTH_FAILED = b"535 5.7.8 Authentication failed\r\n"
ENCRYPTION_REQUIRED = b"538 5.7.11 Encryption required for requested authentication mechanism\r\n"
GO_AHEAD = b"354 End data with <CR><LF>.<CR><LF>\r\n"
ACCEPTED = re.compile(rb"^250 2\.0\.0 (\S+) Message accepted for delivery\r\n$")
GREETING = re.compile(rb"^220 " + re.escape(HOST.encode()) + rb" ESMTP mailroom \S+; .+\r\n$")
CLOSING = f"221 2.0.0 {HOST} closing connection\r\n".encode()
TLS_READY = b"220 2.0.0 Ready to start TLS\r\n"
PROTOCOL_ERROR = b"554 5.5.0 SMTP protocol error\r\n"
REJECTED = b"550 5.0.0 Command rejected\r\n"
BARE_LF = b"421 4.5.0 Bare linefeed (LF) not allowed\r\n"
BARE_CR = b"421 4.5.0 Bare carriage return (CR) not allowed\r\n"

# Text that trips up SMTP clients and servers: UTF-8 in 8 bits, a lone dot
# and leading dots (dot-stuffing), a "From " line (mbox quoting).
SUBJECT = "Grüße aus Köln — Bestellung №42"
BODY = ("Hallo Bob,\n"
        "\n"
        "Grüße aus Köln: ÄÖÜ äöü ß — 10 €\n"
        ".\n"
        "..two leading dots\n"
        "From the shop, with love\n"
        "Ende.\n")


def lf(data):
    return data.replace(b"\r\n", b"\n")


def dot_stuffed(text):
    return re.sub(r"(?m)^\.", "..", text)


def parsed(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def b64(text):
    return base64.b64encode(text.encode()).decode()


class SmtpCase(mr.Case):
    """Per test: background delivery, the certificate installed, DNS and
    a remote MX sink, 192.0.2.10 on lo, a fresh inetd (sitefix.Site)."""

    def setUp(self):
        absent = sf.missing(sf.INETD, sf.SENDMAIL)
        if absent:
            self.skipTest(f"not installed: {' '.join(absent)}")
        super().setUp()
        self.config()
        # Without dnsmasq or aiosmtpd only the scenarios that need the
        # remote MX are skipped (need_sink).
        remotes = {REMOTE: REMOTE_MX} if netfix.available() else {}
        site = sitefix.Site(self.addCleanup, remotes=remotes, tls=True)
        self.ca, self.mark, self.inetd = site.ca, site.mark, site.inetd
        self.sink = site.sinks.get(REMOTE)

    # -- helpers -----------------------------------------------------------

    def config(self, extra=""):
        """Delivery in the background (the default), as a server runs."""
        # failed logins answered at once
        sitefix.configure("smtp_auth_fail_delay = 0\n" + extra)

    def user(self, name):
        return sf.fresh_user(name, PASSWORD)

    def raw(self, port=sf.SMTP_PORT, **kw):
        r = sf.Raw(port, **kw)
        self.addCleanup(r.close)
        return r

    def smtp(self, port=sf.SMTP_PORT, source=sf.CLIENT_ADDR):
        s = smtplib.SMTP(sf.ADDR, port, local_hostname="client.example.org",
                         source_address=(source, 0) if source else None, timeout=15)
        self.addCleanup(s.close)
        return s

    def tls(self):
        return sf.client_tls_context(self.ca)

    def log(self):
        return mr.log_since(self.mark)

    def need(self, *paths):
        absent = sf.missing(*paths)
        if absent:
            self.skipTest(f"not installed: {' '.join(absent)}")

    def need_swaks_tls(self):
        self.need(sf.SWAKS)
        if not sf.have_swaks_tls():
            self.skipTest("swaks's TLS (package libnet-ssleay-perl)")

    def need_sink(self):
        if self.sink is None:
            self.skipTest("needs dnsmasq, python3-aiosmtpd and openssl (compat/netfix.py)")

    def delivered(self, user, count=1):
        """The messages in /var/mail/USER once `count` have arrived."""
        got = sf.wait_for_messages(user, count)
        self.assertEqual(len(got), count,
                         f"/var/mail/{user} holds {len(got)} of {count} messages after 15 s; "
                         f"queue:\n{sf.mailq()}\nlog:\n{self.log()}")
        return got

    def by_subject(self, msgs):
        out = {}
        for m in msgs:
            out[parsed(m)["Subject"]] = m
        return out

    def assert_nothing_queued(self, users=()):
        """After the sessions ended: the queue is empty, nothing reached
        the users or the remote MX."""
        self.assertTrue(self.inetd.wait_idle(), "sendmail sessions still running")
        time.sleep(0.3)
        self.assertEqual(mr.queue_ids(), [], sf.mailq())
        for u in users:
            self.assertEqual(sf.messages(u), [], f"/var/mail/{u}")
        if self.sink is not None:
            self.assertEqual(self.sink.messages, [], self.sink.transactions)

    def assert_received(self, msg, proto, client=sf.CLIENT_ADDR):
        """The newest Received: field names the client's address and the
        protocol (ESMTP, ESMTPS, ESMTPSA, ...)."""
        rcvd = sf.all_headers(msg, "Received")
        self.assertTrue(rcvd, msg[:500])
        self.assertRegex(rcvd[0], rf"^from \S+ .*\[{re.escape(client)}\].* by {re.escape(HOST)} "
                                  rf"\(mailroom/[^)]*\)\s+with {proto} id \S+", rcvd[0])

    def assert_body(self, msg, body):
        """The message's body is exactly `body` (LF; a final line end
        added by a client does not count)."""
        got = lf(sf.split(msg)[1])
        self.assertEqual(got.rstrip(b"\n"), body.encode().rstrip(b"\n"), msg)

    def dialogue(self, r, rcpt, sender="alice@example.org", body=b"Subject: hi\r\n\r\nhello\r\n"):
        """MAIL, RCPT, DATA and the message on an EHLO'd Raw session;
        returns the reply to the final dot."""
        self.assertEqual(r.cmd(f"MAIL FROM:<{sender}>"), SENDER_OK.format(sender).encode())
        self.assertEqual(r.cmd(f"RCPT TO:<{rcpt}>"), RCPT_OK.format(rcpt).encode())
        self.assertEqual(r.cmd("DATA"), GO_AHEAD)
        r.send(body + b".\r\n")
        return r.reply()


# ---------------------------------------------------------------------------
# PHP libraries: local submission through /usr/sbin/sendmail


SYMFONY = r"""<?php
require_once 'Symfony/Component/Mailer/autoload.php';
use Symfony\Component\Mailer\Mailer;
use Symfony\Component\Mailer\Transport\SendmailTransport;
use Symfony\Component\Mime\Address;
use Symfony\Component\Mime\Email;
use Symfony\Component\Mime\Message;
use Symfony\Component\Mime\Part\TextPart;

$mailer = new Mailer(new SendmailTransport('/usr/sbin/sendmail -bs'));
// What a site usually does: ->text() (quoted-printable for UTF-8).
$a = (new Email())
    ->from(new Address('shop@example.com', 'Web Shop'))
    ->to(TO)
    ->subject(SUBJECT)
    ->text(BODY);
$a->getHeaders()->addTextHeader('X-Serial', 'symfony-qp');
$mailer->send($a);
// The same text sent as 8-bit: a Message with a TextPart of its own.
// (An 8-bit part is sent as given: its lines must end in CRLF already.)
$b = new Message(null, new TextPart(str_replace("\n", "\r\n", BODY), 'utf-8', 'plain', '8bit'));
$b->getHeaders()
    ->addMailboxListHeader('From', [new Address('shop@example.com', 'Web Shop')])
    ->addMailboxListHeader('To', [TO])
    ->addTextHeader('Subject', SUBJECT . ' (8bit)')
    ->addTextHeader('X-Serial', 'symfony-8bit');
$mailer->send($b);
echo "sent\n";
"""

SWIFT = r"""<?php
require_once 'Swift/autoload.php';
$mailer = new Swift_Mailer(new Swift_SendmailTransport('/usr/sbin/sendmail -bs'));
$failed = [];
$a = (new Swift_Message(SUBJECT))
    ->setFrom(['shop@example.com' => 'Web Shop'])
    ->setTo([TO])
    ->setBody(BODY, 'text/plain', 'utf-8');
$a->getHeaders()->addTextHeader('X-Serial', 'swift-qp');
$n = $mailer->send($a, $failed);
$b = (new Swift_Message(SUBJECT . ' (8bit)'))
    ->setFrom(['shop@example.com' => 'Web Shop'])
    ->setTo([TO])
    ->setBody(BODY, 'text/plain', 'utf-8');
// (canonical: line ends made CRLF, as SMTP needs)
$b->setEncoder(new Swift_Mime_ContentEncoder_PlainContentEncoder('8bit', true));
$b->getHeaders()->addTextHeader('X-Serial', 'swift-8bit');
$n += $mailer->send($b, $failed);
echo "sent $n failed " . json_encode($failed) . "\n";
"""

PHPMAILER = r"""<?php
require_once 'libphp-phpmailer/autoload.php';
use PHPMailer\PHPMailer\PHPMailer;

$m = new PHPMailer(true);
$m->isSendmail();
$m->CharSet = PHPMailer::CHARSET_UTF8;
$m->Encoding = PHPMailer::ENCODING_8BIT;
$m->setFrom('shop@example.com', 'Web Shop');
$m->addAddress(TO);
$m->Subject = SUBJECT;
$m->Body = BODY;
$m->addCustomHeader('X-Serial', 'phpmailer-8bit');
$m->send();
echo "sent " . $m->Sendmail . "\n";
"""


def php_script(template, to):
    return (template.replace("TO", sf.php_string(to)).replace("SUBJECT", sf.php_string(SUBJECT))
            .replace("BODY", sf.php_string(BODY)))


class PhpLibraries(SmtpCase):
    def run_php(self, lib, template, to):
        self.need(sf.PHP, sf.PHP_LIBS[lib])
        p = sf.php(php_script(template, to))
        self.assertEqual(p.returncode, 0, (p.stdout + p.stderr).decode(errors="replace"))
        self.assertEqual(p.stderr, b"")
        return p.stdout.decode()

    def check_pair(self, user, serial_prefix):
        """The quoted-printable and the 8-bit message, both intact."""
        got = {sf.header(m, "X-Serial"): m for m in self.delivered(user, 2)}
        self.assertEqual(sorted(got), [serial_prefix + "-8bit", serial_prefix + "-qp"])
        qp, eight = got[serial_prefix + "-qp"], got[serial_prefix + "-8bit"]
        self.assertEqual(parsed(qp)["Subject"], SUBJECT)
        self.assertEqual(parsed(qp).get_content().replace("\r\n", "\n").rstrip("\n"), BODY.rstrip("\n"))
        self.assertEqual(parsed(eight)["Subject"], SUBJECT + " (8bit)")
        self.assertEqual(sf.header(eight, "Content-Transfer-Encoding"), "8bit")
        self.assertIn("charset=utf-8", sf.header(eight, "Content-Type").lower())
        self.assert_body(eight, BODY)
        for m in (qp, eight):
            self.assertIn("shop@example.com", sf.header(m, "From"))
            self.assertEqual(sf.header(m, "To"), f"{user}@{HOST}")
            self.assertTrue(sf.header(m, "Message-ID"), m)
            self.assertTrue(sf.header(m, "Date"), m)
        self.assertEqual(mr.queue_ids(), [])

    def test_symfony_mailer_sends_through_sendmail_bs(self):
        self.user("smsymfony")
        out = self.run_php("symfony", SYMFONY, f"smsymfony@{HOST}")
        self.assertEqual(out, "sent\n")
        self.check_pair("smsymfony", "symfony")

    def test_swiftmailer_sends_through_sendmail_bs(self):
        self.user("smswift")
        out = self.run_php("swift", SWIFT, f"smswift@{HOST}")
        self.assertEqual(out, "sent 2 failed []\n")
        self.check_pair("smswift", "swift")

    def test_phpmailer_issendmail_sends_with_sendmail_t(self):
        self.user("smphpmailer")
        out = self.run_php("phpmailer", PHPMAILER, f"smphpmailer@{HOST}")
        # isSendmail() takes PHP's sendmail_path, which is ours.
        self.assertEqual(out, "sent /usr/sbin/sendmail -t -i\n")
        (m,) = self.delivered("smphpmailer", 1)
        self.assertEqual(sf.header(m, "X-Serial"), "phpmailer-8bit")
        self.assertEqual(parsed(m)["Subject"], SUBJECT)
        self.assertEqual(sf.header(m, "Content-Transfer-Encoding"), "8bit")
        self.assert_body(m, BODY)
        self.assertEqual(sf.header(m, "To"), f"smphpmailer@{HOST}")
        # -f names the envelope sender: the From_ line and Return-Path.
        self.assertTrue(sf.from_lines("smphpmailer")[0].startswith(b"From shop@example.com "),
                        sf.from_lines("smphpmailer"))
        self.assertEqual(mr.queue_ids(), [])

    def test_a_script_speaking_smtp_to_sendmail_bs_with_bare_lf_is_served(self):
        # A local pipe is not the network: bare LF ends lines (sendmail 8
        # would answer 421; mailroom trusts a local program as with -t, see
        # README), any recipient is taken, no AUTH offered.
        self.user("smpipe")
        dialogue = (f"EHLO localhost\nMAIL FROM:<shop@example.com>\nRCPT TO:<smpipe@{HOST}>\n"
                    f"DATA\nSubject: pipe\n\n{dot_stuffed(BODY)}.\nQUIT\n").encode()
        p = mr.run([sf.SENDMAIL, "-bs"], input=dialogue, user="www-data")
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, out + p.stderr.decode())
        codes = re.findall(r"(?m)^(\d{3})[ -]", out)
        self.assertEqual(codes[0], "220", out)
        self.assertNotIn("AUTH", out)
        self.assertEqual([c for c in codes if not c.startswith(("2", "3"))], [], out)
        self.assertRegex(out, r"\r\n250 2\.0\.0 \S+ Message accepted for delivery\r\n")
        self.assertTrue(out.endswith(CLOSING.decode()), out)
        (m,) = self.delivered("smpipe")
        self.assertEqual(sf.header(m, "Subject"), "pipe")
        self.assert_body(m, BODY)


# ---------------------------------------------------------------------------
# Port 25: mail from the internet for local users


class InboundPort25(SmtpCase):
    def test_swaks_delivers_to_local_user_on_port_25(self):
        self.need(sf.SWAKS)
        self.user("smbob")
        p = sf.swaks(["--from", "alice@example.org", "--to", f"smbob@{HOST}",
                      "--header", "Subject: swaks test", "--body", "Hello Bob,\nvia swaks.\n"])
        self.assertEqual(p.returncode, 0, p.trace)
        replies = sf.swaks_replies(p.trace)
        self.assertRegex(replies[0], rf"^220 {re.escape(HOST)} ESMTP mailroom \S+; ", p.trace)
        self.assertRegex(replies[1], rf"^250-{re.escape(HOST)} Hello (\S+ )?\[192\.0\.2\.10\], "
                                     r"pleased to meet you$", p.trace)
        self.assertIn("250 2.1.0 <alice@example.org>... Sender ok", replies)
        self.assertIn(f"250 2.1.5 <smbob@{HOST}>... Recipient ok", replies)
        self.assertTrue(any(re.match(r"^250 2\.0\.0 \S+ Message accepted for delivery$", l)
                            for l in replies), p.trace)
        self.assertEqual(replies[-1], CLOSING.decode().strip())
        (m,) = self.delivered("smbob")
        self.assertEqual(sf.header(m, "Subject"), "swaks test")
        self.assert_body(m, "Hello Bob,\nvia swaks.\n")
        self.assert_received(m, "ESMTP")
        self.assertTrue(sf.from_lines("smbob")[0].startswith(b"From alice@example.org "))

    def test_smtplib_delivers_8bit_mail_with_dots_to_local_user_on_port_25(self):
        self.user("smcarol")
        s = self.smtp()
        code, _ = s.ehlo()
        self.assertEqual(code, 250)
        self.assertTrue(s.has_extn("8bitmime"))
        self.assertTrue(s.has_extn("starttls"))
        self.assertFalse(s.has_extn("auth"), "AUTH offered in the clear to a non-loopback client")
        msg = (f"From: Alice <alice@example.org>\r\nTo: smcarol@{HOST}\r\nSubject: smtplib 8bit\r\n"
               "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + BODY.replace("\n", "\r\n").encode()
        refused = s.sendmail("alice@example.org", [f"smcarol@{HOST}"], msg, mail_options=["BODY=8BITMIME"])
        self.assertEqual(refused, {})
        self.assertEqual(s.quit(), (221, f"2.0.0 {HOST} closing connection".encode()))
        (m,) = self.delivered("smcarol")
        self.assert_body(m, BODY)
        self.assertEqual(parsed(m)["Subject"], "smtplib 8bit")
        self.assert_received(m, "ESMTP")

    def test_the_ehlo_reply_to_an_outside_client(self):
        r = self.raw()
        self.assertRegex(r.greeting, GREETING)
        e = r.cmd("EHLO client.example.org")
        first = e.split(b"\r\n")[0]
        self.assertRegex(first, rb"^250-" + re.escape(HOST.encode()) +
                         rb" Hello (\S+ )?\[192\.0\.2\.10\], pleased to meet you$")
        kw = sf.ehlo_keywords(e)
        self.assertEqual(sorted(kw), sorted(["ENHANCEDSTATUSCODES", "PIPELINING", "8BITMIME", "SIZE",
                                             "DSN", "STARTTLS", "HELP"]), e)
        self.assertRegex(" ".join(kw["SIZE"]), r"^\d+$")
        self.assertEqual(r.starttls(self.ca), TLS_READY)
        kw = sf.ehlo_keywords(r.cmd("EHLO client.example.org"))
        self.assertNotIn("STARTTLS", kw)
        self.assertEqual(kw.get("AUTH"), ["PLAIN", "LOGIN"])
        self.assertEqual(r.cmd("NOOP"), b"250 2.0.0 OK\r\n")
        self.assertEqual(r.quit(), CLOSING)

    def test_unknown_local_user_refused_550_5_1_1(self):
        self.user("smknown")
        bad = f"nosuchuser7q@{HOST}"
        # The exact reply.
        r = self.raw()
        r.cmd("EHLO client.example.org")
        self.assertEqual(r.cmd("MAIL FROM:<alice@example.org>"), SENDER_OK.format("alice@example.org").encode())
        self.assertEqual(r.cmd(f"RCPT TO:<{bad}>"), USER_UNKNOWN.format(bad).encode())
        # A known user in the same transaction still gets the message.
        self.assertEqual(r.cmd(f"RCPT TO:<smknown@{HOST}>"), RCPT_OK.format(f"smknown@{HOST}").encode())
        self.assertEqual(r.cmd("DATA"), GO_AHEAD)
        r.send(b"Subject: one of two\r\n\r\nhi\r\n.\r\n")
        self.assertRegex(r.reply(), ACCEPTED)
        self.assertEqual(r.quit(), CLOSING)
        # smtplib: the refusal reaches the program.
        s = self.smtp()
        with self.assertRaises(smtplib.SMTPRecipientsRefused) as e:
            s.sendmail("alice@example.org", [bad], b"Subject: x\r\n\r\nx\r\n")
        self.assertEqual(e.exception.recipients, {bad: (550, f"5.1.1 <{bad}>... User unknown".encode())})
        s.quit()
        # swaks: fails, and shows the reply.
        if mr.have(sf.SWAKS, "swaks"):
            p = sf.swaks(["--from", "alice@example.org", "--to", bad])
            self.assertNotEqual(p.returncode, 0, p.trace)
            self.assertIn(f"550 5.1.1 <{bad}>... User unknown", sf.swaks_replies(p.trace))
        (m,) = self.delivered("smknown")
        self.assertEqual(sf.header(m, "Subject"), "one of two")
        self.assertTrue(self.inetd.wait_idle())
        self.assertEqual(mr.queue_ids(), [])

    def test_relay_refused_without_auth(self):
        self.need(sf.SWAKS)
        rcpt = f"someone@{REMOTE}"
        # Port 25 from outside: RCPT for another domain is refused.
        r = self.raw()
        r.cmd("EHLO client.example.org")
        self.assertEqual(r.cmd("MAIL FROM:<spammer@example.net>"),
                         SENDER_OK.format("spammer@example.net").encode())
        self.assertEqual(r.cmd(f"RCPT TO:<{rcpt}>"), RELAY_DENIED.format(rcpt).encode())
        # No valid recipient: DATA is refused (RFC 5321 3.3: 503 or 554).
        self.assertRegex(r.cmd("DATA"), rb"^(503|554) 5\.\d\.\d ")
        self.assertEqual(r.quit(), CLOSING)
        s = self.smtp()
        with self.assertRaises(smtplib.SMTPRecipientsRefused) as e:
            s.sendmail("spammer@example.net", [rcpt], b"Subject: relay?\r\n\r\nx\r\n")
        self.assertEqual(e.exception.recipients, {rcpt: (550, f"5.7.1 <{rcpt}>... Relaying denied".encode())})
        s.quit()
        p = sf.swaks(["--from", "spammer@example.net", "--to", rcpt])
        self.assertNotEqual(p.returncode, 0, p.trace)
        self.assertIn(f"550 5.7.1 <{rcpt}>... Relaying denied", sf.swaks_replies(p.trace))
        # Port 587 from outside: no MAIL without AUTH, with or without TLS.
        s = self.smtp(sf.SUBMISSION_PORT)
        s.ehlo()
        self.assertEqual(s.mail("spammer@example.net"), (530, b"5.7.0 Authentication required"))
        s.rset()
        s.starttls(context=self.tls())
        s.ehlo()
        self.assertEqual(s.mail("spammer@example.net"), (530, b"5.7.0 Authentication required"))
        s.quit()
        p = sf.swaks(["--from", "spammer@example.net", "--to", rcpt], port=sf.SUBMISSION_PORT)
        self.assertNotEqual(p.returncode, 0, p.trace)
        self.assertIn("530 5.7.0 Authentication required", sf.swaks_replies(p.trace))
        self.assert_nothing_queued()
        self.assertRegex(self.log(), rf"arg1=<{re.escape(rcpt)}>, relay=[^,]*\[192\.0\.2\.10\][^,]*, "
                                     rf"reject=550 5\.7\.1 <{re.escape(rcpt)}>\.\.\. Relaying denied")

    def test_relaying_through_a_local_domain_by_address_tricks_is_refused(self):
        self.user("smtrick")
        r = self.raw()
        r.cmd("EHLO client.example.org")
        r.cmd("MAIL FROM:<spammer@example.net>")
        for rcpt in (f"smtrick%{REMOTE}@{HOST}", f'"smtrick@{REMOTE}"@{HOST}',
                     f"@{HOST}:smtrick@{REMOTE}", f"{REMOTE}!smtrick"):
            with self.subTest(rcpt=rcpt):
                self.assertEqual(r.cmd(f"RCPT TO:<{rcpt}>"), RELAY_DENIED.format(rcpt).encode())
        rcpt = f"smtrick@{REMOTE}@{HOST}"
        self.assertEqual(r.cmd(f"RCPT TO:<{rcpt}>"),
                         f"553 5.1.3 <{rcpt}>... Invalid route address\r\n".encode())
        self.assertEqual(r.quit(), CLOSING)
        self.assert_nothing_queued(["smtrick"])

    def test_loopback_clients_may_relay_on_port_25(self):
        # A web application on the host itself talking SMTP to localhost.
        self.need_sink()
        s = self.smtp(source=None)
        self.assertEqual(s.sendmail("shop@example.com", [f"buyer@{REMOTE}"],
                                    b"Subject: from localhost\r\n\r\nyour order\r\n"), {})
        s.quit()
        got = self.sink.wait_for(1, timeout=15)
        self.assertEqual([m.rcpt_tos for m in got], [[f"buyer@{REMOTE}"]], sf.mailq())
        self.assert_received(got[0].data, "ESMTP", client="127.0.0.1")

    def test_curl_smtp_client_sends(self):
        self.need(sf.CURL)
        self.user("smcurl")
        d = sf.tempdir("curl.")
        crlf_file = os.path.join(d, "crlf.eml")
        with open(crlf_file, "wb") as f:
            f.write((f"From: Alice <alice@example.org>\r\nTo: smcurl@{HOST}\r\nSubject: curl crlf\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n\r\n").encode()
                    + BODY.replace("\n", "\r\n").encode())
        c = sf.curl([f"smtp://{sf.ADDR}:25", "--interface", sf.CLIENT_ADDR,
                     "--mail-from", "alice@example.org", "--mail-rcpt", f"smcurl@{HOST}",
                     "--upload-file", crlf_file])
        self.assertEqual(c.returncode, 0, "\n".join(c.trace) + c.stderr.decode(errors="replace"))
        self.assertIn("< 354 End data with <CR><LF>.<CR><LF>", c.trace)
        self.assertTrue(any(re.match(r"^< 250 2\.0\.0 \S+ Message accepted for delivery$", l)
                            for l in c.trace), c.trace)
        # A file with LF line ends, converted by curl --crlf.
        lf_file = os.path.join(d, "lf.eml")
        with open(lf_file, "wb") as f:
            f.write(f"From: alice@example.org\nTo: smcurl@{HOST}\nSubject: curl lf\n\n".encode()
                    + BODY.encode())
        c = sf.curl([f"smtp://{sf.ADDR}:25", "--interface", sf.CLIENT_ADDR, "--crlf",
                     "--mail-from", "alice@example.org", "--mail-rcpt", f"smcurl@{HOST}",
                     "--upload-file", lf_file])
        self.assertEqual(c.returncode, 0, "\n".join(c.trace) + c.stderr.decode(errors="replace"))
        got = self.by_subject(self.delivered("smcurl", 2))
        self.assertEqual(sorted(got), ["curl crlf", "curl lf"])
        for m in got.values():
            self.assert_body(m, BODY)
            self.assert_received(m, "ESMTP")


# ---------------------------------------------------------------------------
# Port 587: submission by the users, from anywhere


class Submission587(SmtpCase):
    def test_submission_587_starttls_auth_plain_and_login_relays(self):
        self.need_sink()
        self.user("smsubmit")
        self.user("smlocal")
        sent = []
        # smtplib, AUTH PLAIN and AUTH LOGIN, each after STARTTLS.
        for mech in ("PLAIN", "LOGIN"):
            s = self.smtp(sf.SUBMISSION_PORT)
            s.ehlo()
            self.assertFalse(s.has_extn("auth"), "AUTH offered in the clear to a non-loopback client")
            self.assertEqual(s.starttls(context=self.tls())[0], 220)
            s.ehlo()
            self.assertEqual(s.esmtp_features.get("auth", "").split(), ["PLAIN", "LOGIN"])
            s.user, s.password = "smsubmit", PASSWORD
            method = s.auth_plain if mech == "PLAIN" else s.auth_login
            self.assertEqual(s.auth(mech, method), (235, b"2.0.0 OK Authenticated"))
            subject = f"smtplib {mech}"
            msg = (f"From: smsubmit@{HOST}\r\nTo: friend@{REMOTE}, smlocal@{HOST}\r\n"
                   f"Subject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + BODY.replace("\n", "\r\n").encode()
            self.assertEqual(s.sendmail(f"smsubmit@{HOST}", [f"friend@{REMOTE}", f"smlocal@{HOST}"], msg,
                                        mail_options=["BODY=8BITMIME"]), {})
            s.quit()
            sent.append(subject)
        # swaks -tls -a PLAIN / LOGIN.
        if sf.have_swaks_tls():
            for mech in ("PLAIN", "LOGIN"):
                subject = f"swaks {mech}"
                p = sf.swaks(["-tls", "-a", mech, "--auth-user", "smsubmit", "--auth-password", PASSWORD,
                              "--from", f"smsubmit@{HOST}", "--to", f"friend@{REMOTE},smlocal@{HOST}",
                              "--header", f"Subject: {subject}", "--body", BODY],
                             port=sf.SUBMISSION_PORT)
                self.assertEqual(p.returncode, 0, p.trace)
                replies = sf.swaks_replies(p.trace)
                self.assertIn(TLS_READY.decode().strip(), replies)
                self.assertIn(AUTH_OK.decode().strip(), replies)
                self.assertIn(f"250 2.1.5 <friend@{REMOTE}>... Recipient ok", replies)
                sent.append(subject)
        # The remote copies reach the MX of remote.example, the local ones
        # the user's mbox, each marked as authenticated over TLS.
        got = self.sink.wait_for(len(sent), timeout=20)
        self.assertEqual(sorted(m.message["Subject"] for m in got), sorted(sent), sf.mailq())
        for m in got:
            self.assertEqual(m.rcpt_tos, [f"friend@{REMOTE}"])
            self.assertEqual(m.mail_from, f"smsubmit@{HOST}")
            self.assert_body(m.data, BODY)
            self.assert_received(m.data, "ESMTPSA")
        local = self.by_subject(self.delivered("smlocal", len(sent)))
        self.assertEqual(sorted(local), sorted(sent))
        for m in local.values():
            self.assert_body(m, BODY)
        self.assertEqual(mr.queue_ids(), [])

    def test_curl_submits_over_587_with_starttls_and_login(self):
        self.need(sf.CURL)
        self.need_sink()
        self.user("smcurlsub")
        d = sf.tempdir("curlsub.")
        path = os.path.join(d, "msg.eml")
        with open(path, "wb") as f:
            f.write(f"From: smcurlsub@{HOST}\r\nTo: pal@{REMOTE}\r\nSubject: curl 587\r\n\r\n".encode()
                    + BODY.replace("\n", "\r\n").encode())
        c = sf.curl([f"smtp://{sf.ADDR}:587", "--interface", sf.CLIENT_ADDR, "--ssl-reqd",
                     "--cacert", self.ca, "--user", f"smcurlsub:{PASSWORD}",
                     "--mail-from", f"smcurlsub@{HOST}", "--mail-rcpt", f"pal@{REMOTE}",
                     "--upload-file", path])
        self.assertEqual(c.returncode, 0, "\n".join(c.trace) + c.stderr.decode(errors="replace"))
        self.assertIn("< " + AUTH_OK.decode().strip(), c.trace)
        got = self.sink.wait_for(1, timeout=15)
        self.assertEqual([m.message["Subject"] for m in got], ["curl 587"], sf.mailq())
        self.assert_body(got[0].data, BODY)
        self.assert_received(got[0].data, "ESMTPSA")

    def test_submission_without_auth_530(self):
        self.user("smnoauth")
        # Without TLS from outside: no AUTH offered, MAIL refused, AUTH
        # refused until the session is encrypted.
        r = self.raw(sf.SUBMISSION_PORT)
        self.assertRegex(r.greeting, GREETING)
        kw = sf.ehlo_keywords(r.cmd("EHLO client.example.org"))
        self.assertIn("STARTTLS", kw)
        self.assertNotIn("AUTH", kw)
        self.assertEqual(r.cmd("MAIL FROM:<smnoauth@mx.example.test>"), AUTH_REQUIRED)
        self.assertEqual(r.cmd("AUTH PLAIN " + b64(f"\0smnoauth\0{PASSWORD}")), ENCRYPTION_REQUIRED)
        self.assertRegex(r.cmd(f"RCPT TO:<smnoauth@{HOST}>"), rb"^503 5\.\d\.\d ")
        # After STARTTLS, still nothing without AUTH, even for a local user.
        self.assertEqual(r.starttls(self.ca), TLS_READY)
        kw = sf.ehlo_keywords(r.cmd("EHLO client.example.org"))
        self.assertEqual(kw.get("AUTH"), ["PLAIN", "LOGIN"])
        self.assertEqual(r.cmd("MAIL FROM:<smnoauth@mx.example.test>"), AUTH_REQUIRED)
        self.assertEqual(r.quit(), CLOSING)
        # From loopback too: port 587 is for authenticated users only.
        s = self.smtp(sf.SUBMISSION_PORT, source=None)
        s.ehlo()
        self.assertEqual(s.mail("smnoauth@mx.example.test"), (530, b"5.7.0 Authentication required"))
        s.quit()
        if mr.have(sf.SWAKS, "swaks"):
            p = sf.swaks(["--from", f"smnoauth@{HOST}", "--to", f"smnoauth@{HOST}"],
                         port=sf.SUBMISSION_PORT)
            self.assertNotEqual(p.returncode, 0, p.trace)
            self.assertIn(AUTH_REQUIRED.decode().strip(), sf.swaks_replies(p.trace))
        self.assert_nothing_queued(["smnoauth"])

    def test_wrong_password_535(self):
        self.user("smwrong")
        bad = "Wr0ng-P4ss-71f3"
        r = self.raw(sf.SUBMISSION_PORT)
        r.cmd("EHLO client.example.org")
        self.assertEqual(r.starttls(self.ca), TLS_READY)
        r.cmd("EHLO client.example.org")
        self.assertEqual(r.cmd("AUTH PLAIN " + b64(f"\0smwrong\0{bad}")), AUTH_FAILED)
        self.assertEqual(r.cmd("AUTH LOGIN"), b"334 VXNlcm5hbWU6\r\n")
        self.assertEqual(r.cmd(b64("smwrong")), b"334 UGFzc3dvcmQ6\r\n")
        self.assertEqual(r.cmd(b64(bad)), AUTH_FAILED)
        self.assertEqual(r.cmd("MAIL FROM:<smwrong@mx.example.test>"), AUTH_REQUIRED)
        # The right password still works in the same session.
        self.assertEqual(r.cmd("AUTH PLAIN " + b64(f"\0smwrong\0{PASSWORD}")), AUTH_OK)
        self.assertEqual(r.cmd("MAIL FROM:<smwrong@mx.example.test>"),
                         SENDER_OK.format("smwrong@mx.example.test").encode())
        self.assertEqual(r.quit(), CLOSING)
        # An unknown user gets the same reply as a wrong password.
        r = self.raw(sf.SUBMISSION_PORT)
        r.cmd("EHLO client.example.org")
        self.assertEqual(r.starttls(self.ca), TLS_READY)
        r.cmd("EHLO client.example.org")
        self.assertEqual(r.cmd("AUTH PLAIN " + b64(f"\0nosuchuser7q\0{bad}")), AUTH_FAILED)
        self.assertEqual(r.quit(), CLOSING)
        # A password guesser is cut off (smtp_max_auth_failures = 3).
        r = self.raw(sf.SUBMISSION_PORT)
        r.cmd("EHLO client.example.org")
        self.assertEqual(r.starttls(self.ca), TLS_READY)
        r.cmd("EHLO client.example.org")
        replies = [r.cmd("AUTH PLAIN " + b64(f"\0smwrong\0guess{i}")) for i in range(3)]
        self.assertEqual(replies, [AUTH_FAILED] * 3)
        # The 421 comes at once or as the answer to the next command.
        closing = r.pending(0.5) or [r.cmd("NOOP")]
        self.assertEqual(len(closing), 1, closing)
        self.assertRegex(closing[0], rb"^421 4\.7\.0 ")
        self.assertTrue(r.eof(), "still connected after three failures")
        # smtplib.login raises, with the server's reply.
        s = self.smtp(sf.SUBMISSION_PORT)
        s.starttls(context=self.tls())
        with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
            s.login("smwrong", bad)
        self.assertEqual((e.exception.smtp_code, e.exception.smtp_error), (535, b"5.7.8 Authentication failed"))
        s.close()
        if sf.have_swaks_tls():
            p = sf.swaks(["-tls", "-a", "LOGIN", "--auth-user", "smwrong", "--auth-password", bad,
                          "--from", f"smwrong@{HOST}", "--to", f"friend@{REMOTE}"], port=sf.SUBMISSION_PORT)
            self.assertNotEqual(p.returncode, 0, p.trace)
            self.assertIn(AUTH_FAILED.decode().strip(), sf.swaks_replies(p.trace))
        self.assert_nothing_queued(["smwrong"])
        log = self.log() + self.inetd.log()
        for secret in (bad, PASSWORD, b64(bad), b64(PASSWORD), b64(f"\0smwrong\0{bad}")):
            self.assertNotIn(secret, log)


# ---------------------------------------------------------------------------
# Misbehaving clients


class Misbehaving(SmtpCase):
    def test_early_talker_gets_554(self):
        self.user("smearly")
        # A polite client waits for the greeting, which comes after the pause.
        t = time.monotonic()
        r = self.raw()
        self.assertGreaterEqual(time.monotonic() - t, 0.25, "no greet pause")
        self.assertRegex(r.greeting, GREETING)
        r.quit()
        # A spam bot talks first: EHLO and MAIL before the greeting.
        r = self.raw(read_greeting=False)
        r.send(f"EHLO bot.example\r\nMAIL FROM:<bot@example.net>\r\n".encode())
        self.assertRegex(r.reply(), GREETING)
        self.assertEqual(r.reply(), PROTOCOL_ERROR)
        # The early commands are refused (the 554 may have answered the
        # EHLO or come by itself), and so is everything else but QUIT.
        early = r.pending()
        self.assertIn(len(early), (1, 2), early)
        self.assertEqual(set(early), {REJECTED}, early)
        self.assertEqual(r.cmd(f"RCPT TO:<smearly@{HOST}>"), REJECTED)
        self.assertEqual(r.cmd("DATA"), REJECTED)
        self.assertEqual(r.cmd("EHLO bot.example"), REJECTED)
        self.assertEqual(r.quit(), CLOSING)
        self.assert_nothing_queued(["smearly"])

    def test_bare_lf_in_data_refused_421_nothing_queued(self):
        self.user("smbare")
        rcpt = f"smbare@{HOST}"
        cases = [
            ("bare LF", b"Subject: bare lf\r\n\r\nfirst\nsecond\r\n.\r\n", BARE_LF),
            ("bare CR", b"Subject: bare cr\r\n\r\nfirst\rsecond\r\n.\r\n", BARE_CR),
            # SMTP smuggling: a second message hidden behind "<LF>.<CR><LF>".
            ("smuggling", b"Subject: outer\r\n\r\nouter\n.\r\nMAIL FROM:<admin@example.org>\r\n"
                          b"RCPT TO:<" + rcpt.encode() + b">\r\nDATA\r\nSubject: smuggled\r\n\r\n"
                          b"smuggled\r\n.\r\n", BARE_LF),
        ]
        for name, data, reply in cases:
            with self.subTest(name):
                r = self.raw()
                r.cmd("EHLO client.example.org")
                self.assertEqual(r.cmd("MAIL FROM:<alice@example.org>"),
                                 SENDER_OK.format("alice@example.org").encode())
                self.assertEqual(r.cmd(f"RCPT TO:<{rcpt}>"), RCPT_OK.format(rcpt).encode())
                self.assertEqual(r.cmd("DATA"), GO_AHEAD)
                r.send(data)
                self.assertEqual(r.reply(), reply)
                self.assertTrue(r.eof(), "the connection stayed open")
                self.assert_nothing_queued(["smbare"])
        # curl uploading an LF file without --crlf fails the same way.
        if mr.have(sf.CURL, "curl"):
            path = os.path.join(sf.tempdir("curllf."), "lf.eml")
            with open(path, "wb") as f:
                f.write(b"Subject: lf file\n\nline one\nline two\n")
            c = sf.curl([f"smtp://{sf.ADDR}:25", "--interface", sf.CLIENT_ADDR,
                         "--mail-from", "alice@example.org", "--mail-rcpt", rcpt, "--upload-file", path])
            self.assertNotEqual(c.returncode, 0, c.trace)
            self.assertIn("< " + BARE_LF.decode().strip(), c.trace)
            self.assert_nothing_queued(["smbare"])
        # A well-formed message afterwards is delivered.
        r = self.raw()
        r.cmd("EHLO client.example.org")
        self.assertRegex(self.dialogue(r, rcpt, body=b"Subject: clean\r\n\r\nclean\r\n"), ACCEPTED)
        r.quit()
        (m,) = self.delivered("smbare")
        self.assertEqual(sf.header(m, "Subject"), "clean")


if __name__ == "__main__":
    unittest.main()
