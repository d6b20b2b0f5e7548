"""DKIM signatures on outbound mail, checked by independent verifiers
against keys served by DNS (issue 8).

`mailroom dkim generate shop.example` makes an RSA and an Ed25519 key and
prints their TXT records; the records are published through the test
dnsmasq (compat/netfix.py) exactly as printed (the zone-file strings
joined), next to the MX of remote.example (an aiosmtpd sink on 127.0.0.2).
Mail from shop.example then leaves through the installed queue runner:

* from a PHP site (PHP's mail(), which runs `sendmail -t -i` as www-data)
  and from a script calling `sendmail -t` directly, with an 8-bit body and
  a line starting with a dot;
* by SMTP AUTH submission on port 587 after STARTTLS.

Each copy captured at the sink carries an rsa-sha256 and an ed25519-sha256
signature for d=shop.example, and dkimpy (python3-dkim, with python3-nacl
for Ed25519 and python3-dnspython asking the test DNS) verifies both; so
does OpenDKIM's opendkim-testmsg when installed.  One body byte changed,
both verifiers fail.  The local copy of the same message is not signed.
A key made unreadable keeps the mail queued with the reason, and
`mailroom check` names it.

Needs dnsmasq, python3-aiosmtpd, openssl, openbsd-inetd, python3-dkim,
python3-nacl, python3-dnspython; runs as root in the compat sandbox.
"""

import email
import os
import re
import shutil
import smtplib
import subprocess
import unittest
import warnings

import mr
import netfix
import sitefix
import smtpfix as sf

try:
    import dkim
    import dns.resolver  # noqa: F401  (dkimpy's key lookups)
    import nacl  # noqa: F401  (dkimpy's Ed25519)
except ImportError:
    dkim = None

HOST = mr.HOST
SHOP = "shop.example"
REMOTE = "remote.example"
REMOTE_MX = "127.0.0.2"
KEYS = f"/etc/mail/dkim/{SHOP}"
PASSWORD = "Dk1m-submit-pw"
TESTMSG = shutil.which("opendkim-testmsg", path="/usr/sbin:/usr/bin") or "opendkim-testmsg"
BODY = "Grüße aus dem Laden.\n.a line that starts with a dot\nTrailing spaces   \n\n"


def zone_records(text):
    """{DNS name: TXT text} from `mailroom dkim generate|show` output."""
    out = {}
    name = None
    for line in text.splitlines():
        if not line.startswith("\t"):
            name = line.split()[0].rstrip(".")
            out[name] = ""
        out[name] += "".join(line.split('"')[1::2])
    return out


def signatures(data):
    """The a= tags of the DKIM-Signature fields, top first."""
    msg = email.message_from_bytes(data)
    tags = []
    for v in msg.get_all("DKIM-Signature") or []:
        t = dict(p.strip().split("=", 1) for p in " ".join(v.split()).split(";") if "=" in p)
        tags.append((t.get("a"), t.get("d")))
    return tags


def dkimpy_results(data):
    """dkimpy's verdict for each signature (it checks one index at a time)."""
    d = dkim.DKIM(data)
    out = []
    for i in range(len(signatures(data))):
        try:
            out.append(d.verify(idx=i))
        except dkim.ValidationError:  # e.g. "body hash mismatch"
            out.append(False)
    return out


def testmsg(data):
    """opendkim-testmsg's exit status verifying `data` (LF line ends, as
    a milter hands it over)."""
    p = subprocess.run([TESTMSG], input=data.replace(b"\r\n", b"\n"), capture_output=True, timeout=30)
    return p.returncode, p.stderr.decode(errors="replace")


@unittest.skipUnless(netfix.available(), "needs dnsmasq, python3-aiosmtpd and openssl")
@unittest.skipUnless(dkim, "needs python3-dkim, python3-nacl and python3-dnspython")
class DkimSigning(mr.Case):
    def setUp(self):
        absent = sf.missing(sf.INETD, sf.SENDMAIL)
        if absent:
            self.skipTest(f"not installed: {' '.join(absent)}")
        super().setUp()
        # Debian's dkimpy calls dnspython's old query(): noise here.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="dkim")
        sitefix.configure("smtp_auth_fail_delay = 0\n")
        shutil.rmtree("/etc/mail/dkim", ignore_errors=True)
        p = mr.run(["mailroom", "dkim", "generate", SHOP])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.zone = p.stdout.decode()
        self.records = zone_records(self.zone)
        self.assertEqual(len(self.records), 2, self.zone)
        # The DNS serves the keys' records exactly as printed.
        site = sitefix.Site(self.addCleanup, remotes={REMOTE: REMOTE_MX}, txt=self.records, tls=True)
        self.ca, self.mark = site.ca, site.mark
        self.sink = site.sinks[REMOTE]

    def wait(self, count):
        got = self.sink.wait_for(count, timeout=20)
        self.assertEqual(len(got), count,
                         f"{self.sink.transactions}\nqueue:\n{sf.mailq()}\nlog:\n{mr.log_since(self.mark)}")
        return got

    def assert_verifies(self, data):
        self.assertEqual(sorted(signatures(data)), [("ed25519-sha256", SHOP), ("rsa-sha256", SHOP)],
                         data.decode(errors="replace"))
        self.assertEqual(dkimpy_results(data), [True, True], data.decode(errors="replace"))
        if mr.have(TESTMSG, "opendkim-tools"):
            code, err = testmsg(data)
            self.assertEqual(code, 0, err)
        # One byte of the body changed: every verifier says no.
        head, sep, body = data.partition(b"\r\n\r\n")
        i = body.index(b"Laden") if b"Laden" in body else body.index(b"submission")
        tampered = head + sep + body[:i] + b"l" + body[i + 1:]
        self.assertEqual(dkimpy_results(tampered), [False, False])
        if mr.have(TESTMSG, "opendkim-tools"):
            self.assertNotEqual(testmsg(tampered)[0], 0)

    # -- scenarios ---------------------------------------------------------

    def test_keys_records_and_files(self):
        # What DNS serves is what was printed (dnsmasq cut the RSA record
        # into 255-byte strings; dkimpy joins them).
        for name, text in self.records.items():
            got = dkim.dnsplug.get_txt(name.encode() + b".")
            self.assertEqual(got, text.encode(), name)
        # show prints the same records again; the keys are root's alone.
        p = mr.run(["mailroom", "dkim", "show", SHOP])
        self.assertEqual(zone_records(p.stdout.decode()), self.records)
        for f in os.listdir(KEYS):
            st = os.stat(os.path.join(KEYS, f))
            self.assertEqual((st.st_uid, st.st_mode & 0o777), (0, 0o600), f)
        self.assertEqual(mr.run(["mailroom", "dkim", "generate", "not a domain"]).returncode, 64)
        self.assertEqual(mr.run(["mailroom", "dkim", "generate", SHOP]).returncode, 73)
        # A key made by OpenDKIM's opendkim-genkey is copied in as it is;
        # the record we derive from it is the one opendkim-genkey printed.
        genkey = shutil.which("opendkim-genkey", path="/usr/sbin:/usr/bin")
        if mr.have("opendkim-genkey", "opendkim-tools"):
            tmp = sf.tempdir("dkim-genkey")
            p = mr.run([genkey, "-b", "2048", "-D", tmp, "-d", SHOP, "-s", "legacy"])
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(tmp, "legacy.txt")) as f:
                theirs = re.search(r"p=([A-Za-z0-9+/=]+)", "".join(f.read().split('"')[1::2])).group(1)
            shutil.copy(os.path.join(tmp, "legacy.private"), os.path.join(KEYS, "legacy.key"))
            os.chmod(os.path.join(KEYS, "legacy.key"), 0o600)
            p = mr.run(["mailroom", "dkim", "show", SHOP])
            self.assertEqual(p.returncode, 0, p.stderr)
            ours = zone_records(p.stdout.decode())[f"legacy._domainkey.{SHOP}"]
            self.assertEqual(ours, f"v=DKIM1; k=rsa; p={theirs}")
            p = mr.run(["mailroom", "check"])
            self.assertEqual(p.returncode, 0, p.stdout)

    def test_php_and_sendmail_t_mail_is_signed_with_both_keys_and_verifies(self):
        mr.ensure_user("bob")
        msg = (f"From: Shop <orders@{SHOP}>\nTo: customer@{REMOTE}, bob@{HOST}\n"
               "Subject: Your order\nContent-Type: text/plain; charset=utf-8\n\n" + BODY)
        p = mr.sendmail(["-t", "-i"], msg.encode(), user="www-data")
        self.assertEqual(p.returncode, 0, p.stderr)
        count = 1
        if os.path.exists(sf.PHP):
            code = ('<?php var_dump(mail("customer@remote.example", "PHP order", '
                    + sf.php_string(BODY) + ', "From: orders@shop.example"));')
            p = sf.php(code)
            self.assertEqual(p.stdout.decode().strip(), "bool(true)", p.stderr)
            count = 2
        got = self.wait(count)
        for m in got:
            with self.subTest(subject=m.message["Subject"]):
                self.assertEqual(m.rcpt_tos, [f"customer@{REMOTE}"])
                self.assert_verifies(m.data)
        # The local copy is not signed.
        (local,) = sf.wait_for_messages("bob", 1)
        self.assertIn(b"Subject: Your order", local)
        self.assertNotIn(b"DKIM-Signature", local)

    def test_smtp_auth_submission_is_signed_and_verifies(self):
        sf.fresh_user("dksubmit", PASSWORD)
        s = smtplib.SMTP(sf.ADDR, sf.SUBMISSION_PORT, local_hostname="client.example.org",
                         source_address=(sf.CLIENT_ADDR, 0), timeout=15)
        self.addCleanup(s.close)
        s.ehlo()
        self.assertEqual(s.starttls(context=sf.client_tls_context(self.ca))[0], 220)
        s.ehlo()
        s.login("dksubmit", PASSWORD)
        msg = (f"From: Sales <sales@{SHOP}>\r\nTo: customer@{REMOTE}\r\nSubject: Quote\r\n"
               f"Message-ID: <quote-1@{SHOP}>\r\n\r\nOur submission quote.\r\n")
        self.assertEqual(s.sendmail(f"sales@{SHOP}", [f"customer@{REMOTE}"], msg.encode()), {})
        s.quit()
        (m,) = self.wait(1)
        self.assert_verifies(m.data)

    def test_an_unreadable_key_keeps_the_mail_queued_and_check_names_it(self):
        bad = os.path.join(KEYS, "broken.key")
        with open(bad, "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        os.chmod(bad, 0o600)
        p = mr.run(["mailroom", "check"])
        self.assertEqual(p.returncode, 78, p.stdout)
        self.assertIn(bad, p.stdout.decode())
        p = mr.sendmail(["-t", "-i"], f"From: orders@{SHOP}\nTo: customer@{REMOTE}\nSubject: held\n\nx\n".encode())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(sf.wait_until(lambda: "DKIM key" in sf.mailq(), 15),
                        f"{sf.mailq()}\nlog:\n{mr.log_since(self.mark)}")
        self.assertEqual(self.sink.messages, [])
        # Removed, the next run sends it, signed with the good keys.
        os.unlink(bad)
        p = mr.sendmail(["-q"])
        self.assertEqual(p.returncode, 0, p.stderr)
        (m,) = self.wait(1)
        self.assertEqual(dkimpy_results(m.data), [True, True])


if __name__ == "__main__":
    unittest.main()
