"""The web control panel in a real browser (issue 22): headless Chromium,
driven through Selenium and chromedriver, against the installed panel as
an admin puts it on a site -- Apache with CGI (the shipped
apache-mailroom-panel.conf), nginx with fcgiwrap (nginx-mailroom-panel.conf)
-- and on its own TLS port 8443 started per connection by inetd
(`mailroom setup panel on`).  compat/panelfix.py has the servers and the
box.

The flow, on each of the three:

* the domain admin postmaster@shop.example logs in, adds the mailbox
  anna@shop.example, points the catch-all of shop.example at
  orders@shop.example, forwards support@shop.example to
  boss@mobile.example keeping a copy, and gives support@ an
  autoresponder;
* anna logs in with the password the admin gave her, changes it, and sets
  a vacation reply with an end date;
* then, by mail and POP3 from outside the panel: curl logs into POP3 with
  anna's new password (the old one is refused); mail by SMTP to an unknown
  address of shop.example lands in orders' mailbox; mail to support@
  reaches mobile.example's MX (a sink) and stays in support's mailbox, and
  its sender (at customer.example, another sink) gets one autoreply even
  after writing twice; anna's vacation reply answers too.

Every page the browser shows is kept as a PNG in
target/compat-artifacts/panel-browser-SERVER/ (mr.artifact_dir), in the
order shown.

And a change made with the `mailroom` command while a page is open: the
admin has support@'s page open, the shell sets support@'s forward, the
admin submits the page's forward form: the panel says the forward changed
meanwhile, and the shell's forward stays.

Needs the installed panel and panel-helper, chromium, chromium-driver,
python3-selenium, apache2, nginx-light, fcgiwrap, openbsd-inetd, curl,
dnsmasq and python3-aiosmtpd; runs as root in the compat sandbox.
"""

import datetime
import os
import smtplib
import time
import unittest

import mr
import netfix
import panelfix as px
import smtpfix as sf

ANNA, ANNA_PW, ANNA_NEW_PW = f"anna@{px.SHOP}", "Anna-First-19", "Anna-Second-20"
BOSS = f"boss@{px.MOBILE}"
BUYER = f"buyer@{px.CUSTOMER}"
TRAVELLER = f"traveller@{px.CUSTOMER}"
SUPPORT_SUBJECT = "Thank you for writing to Shop"
SUPPORT_TEXT = "We answer within two working days."
VACATION_SUBJECT = "Anna is on holiday"
VACATION_TEXT = "Back on Monday; orders@shop.example helps meanwhile."


def smtp_in(rcpt, sender, subject):
    """One message by SMTP on port 25 from the outside client, To: rcpt."""
    s = smtplib.SMTP(sf.ADDR, sf.SMTP_PORT, timeout=30, source_address=(sf.CLIENT_ADDR, 0))
    try:
        s.ehlo(f"mx.{sender.split('@')[1]}")
        mid = f"<{time.time_ns()}@{sender.split('@')[1]}>"
        s.sendmail(sender, [rcpt], (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n"
                                    f"Message-ID: {mid}\r\n\r\nhello\r\n").encode())
    finally:
        s.quit()
    return mid


def settled():
    """Background delivery done: the queue is empty."""
    return px.wait_until(lambda: mr.queue_ids() == [], 30)


class PanelBrowserCase(unittest.TestCase):
    """The box (panelfix.Shop) and one browser per test."""

    server = None

    def setUp(self):
        why = px.missing()
        if why:
            self.skipTest(why)
        if not netfix.available():
            self.skipTest("needs dnsmasq, python3-aiosmtpd and openssl")
        if not px.selenium_available():
            self.skipTest("chromium, chromium-driver, python3-selenium")
        if not self.server.available():
            self.skipTest(f"{self.server.name} is not installed")
        self.shop = px.Shop(self.addCleanup)
        self.web = self.server()
        self.web.start()
        self.addCleanup(self.web.stop)
        self.shots = mr.artifact_dir(f"panel-browser-{self.web.name}-{self._testMethodName[5:]}")
        # A self-signed certificate for localhost (pop3fix's).
        self.b = px.Browser(self.shots, ["--ignore-certificate-errors"])
        self.addCleanup(self.b.quit)

    def url(self, path=""):
        return self.web.base + "/" + path

    def context(self):
        return (f"\n--- page {self.b.url}\n{self.b.source[:3000]}\n--- {self.web.name}\n{self.web.log()}"
                f"\n--- mail log\n{self.shop.log()[-3000:]}")

    def login(self, name, password, shot):
        self.b.get(self.url(), f"{shot}-login-form")
        self.assertTrue(self.b.has_form("login"), self.context())
        self.b.fill("login", {"name": name, "password": password}, f"{shot}-logged-in")
        self.assertFalse(self.b.has_form("login"), f"still at the login form{self.context()}")

    def logout(self, shot):
        if self.b.has_form("logout"):
            self.b.fill("logout", {}, f"{shot}-logged-out")
        self.b.driver.delete_all_cookies()

    def assert_shown(self, text):
        self.assertIn(text, self.b.source, self.context())


class Flow(PanelBrowserCase):
    """The domain admin's and the mailbox user's whole visit, then mail."""

    server = None

    def the_flow(self):
        # The domain admin: their domain, a new mailbox, the catch-all.
        self.login(px.POSTMASTER, px.POSTMASTER_PW, "admin")
        self.assert_shown(px.SHOP)
        self.b.get(self.url(f"d/{px.SHOP}"), "domain")
        self.b.fill("mailbox-add", {"address": ANNA, "password": ANNA_PW}, "mailbox-added")
        self.b.get(self.url(f"d/{px.SHOP}"), "domain-with-anna")
        self.assert_shown(ANNA)
        self.b.fill("catchall-set", {"target": px.ORDERS}, "catchall-set")
        self.b.get(self.url(f"d/{px.SHOP}"), "domain-with-catchall")
        # support@: a forward with a copy kept, and an autoresponder.
        self.b.get(self.url(f"d/{px.SHOP}/m/{px.SUPPORT}"), "support")
        self.b.fill("forward-set", {"target": BOSS, "keep": True}, "forward-set")
        self.b.get(self.url(f"d/{px.SHOP}/m/{px.SUPPORT}"), "support-forwarded")
        self.assert_shown(BOSS)
        self.b.fill("autoreply-set", {"subject": SUPPORT_SUBJECT, "text": SUPPORT_TEXT}, "autoreply-set")
        self.b.get(self.url(f"d/{px.SHOP}/m/{px.SUPPORT}"), "support-answering")
        self.assert_shown(SUPPORT_SUBJECT)
        self.b.get(self.url(f"d/{px.SHOP}/queue"), "queue")
        self.logout("admin")

        # anna: her own page, a new password, a vacation reply.
        self.login(ANNA, ANNA_PW, "anna")
        self.b.get(self.url("me"), "me")
        self.assert_shown(ANNA)
        self.b.fill("password-change", {"old": ANNA_PW, "new": ANNA_NEW_PW}, "password-changed")
        self.b.get(self.url("me"), "me-after-password")
        self.assertFalse(self.b.has_form("login"), f"the password change ended the session{self.context()}")
        until = (datetime.date.today() + datetime.timedelta(days=14)).isoformat()
        self.b.fill("autoreply-set", {"subject": VACATION_SUBJECT, "text": VACATION_TEXT, "until": until},
                    "vacation-set")
        self.b.get(self.url("me"), "me-on-holiday")
        self.assert_shown(VACATION_SUBJECT)
        self.logout("anna")

        # The same changes as the shell sees them.
        explain = px.admin("explain", f"nobody-known@{px.SHOP}", check=False).stdout.decode()
        self.assertIn(px.user_of(px.ORDERS), explain, explain)

        # POP3: the new password, not the old one.
        self.assertEqual(px.pop3_count(ANNA, ANNA_NEW_PW), 0, self.context())
        self.assertIsNone(px.pop3_count(ANNA, ANNA_PW))

        # Mail from outside: the catch-all, the forward with its copy, one
        # autoreply for two messages, the vacation reply.
        orders = px.user_of(px.ORDERS)
        smtp_in(f"nobody-known@{px.SHOP}", BUYER, "to the catch-all")
        got = sf.wait_for_messages(orders, 1, timeout=20)
        self.assertEqual(len(got), 1, self.context())
        self.assertIn(b"Subject: to the catch-all", got[0])
        support = px.user_of(px.SUPPORT)
        for n in (1, 2):
            smtp_in(px.SUPPORT, BUYER, f"question {n}")
            self.assertTrue(settled(), f"queue:\n{sf.mailq()}{self.context()}")
        kept = sf.wait_for_messages(support, 2, timeout=20)
        self.assertEqual([b"Subject: question 1" in kept[0], b"Subject: question 2" in kept[1]],
                         [True, True], self.context())
        forwarded = self.shop.mobile.wait_for(2, timeout=20)
        self.assertEqual([m.rcpt_tos for m in forwarded], [[BOSS], [BOSS]], self.context())
        self.assertEqual([m.message["Subject"] for m in forwarded], ["question 1", "question 2"])
        replies = self.shop.customer.wait_for(1, timeout=20)
        self.assertEqual(len(replies), 1, self.context())
        time.sleep(1)
        self.assertTrue(settled())
        self.assertEqual(len(self.shop.customer.messages), 1, "the second message was answered again")
        reply = self.shop.customer.messages[0]
        self.assertEqual((reply.mail_from, reply.rcpt_tos), ("<>", [BUYER]))
        self.assertEqual(reply.message["Subject"], SUPPORT_SUBJECT)
        self.assertIn(SUPPORT_TEXT, reply.message.get_content())
        smtp_in(ANNA, TRAVELLER, "are you there?")
        self.assertTrue(settled())
        replies = self.shop.customer.wait_for(2, timeout=20)
        self.assertEqual(len(replies), 2, self.context())
        self.assertEqual((replies[1].rcpt_tos, replies[1].message["Subject"]),
                         ([TRAVELLER], VACATION_SUBJECT))
        self.assertEqual(px.pop3_count(ANNA, ANNA_NEW_PW), 1)
        shots = sorted(os.listdir(self.shots))
        self.assertGreaterEqual(len(shots), 18, shots)


class FlowUnderApache(Flow):
    server = px.Apache

    def test_admin_and_user_in_chromium_then_mail_and_pop3(self):
        self.the_flow()


class FlowUnderNginx(Flow):
    server = px.Nginx

    def test_admin_and_user_in_chromium_then_mail_and_pop3(self):
        self.the_flow()


class FlowOnItsOwnPort(Flow):
    server = px.OwnPort

    def test_admin_and_user_in_chromium_then_mail_and_pop3(self):
        self.assertIn("added", self.web.setup_out)
        self.the_flow()


class ShellChangeWhilePageOpen(PanelBrowserCase):
    server = px.Apache

    def test_a_forward_set_by_the_shell_is_not_overwritten_by_an_open_page(self):
        px.admin("forward", "set", px.SUPPORT, f"first@{px.MOBILE}")
        self.login(px.POSTMASTER, px.POSTMASTER_PW, "admin")
        self.b.get(self.url(f"d/{px.SHOP}/m/{px.SUPPORT}"), "support-open")
        self.assert_shown(f"first@{px.MOBILE}")
        # Meanwhile, in the shell:
        px.admin("forward", "set", px.SUPPORT, f"shell@{px.MOBILE}")
        before = mr.snapshot_etc_mail()
        self.b.fill("forward-set", {"target": f"page@{px.MOBILE}"}, "stale-forward-submitted")
        page = self.b.source
        self.assertRegex(page, r"(?i)changed", f"the page does not say it changed{self.context()}")
        self.assertIn(f"shell@{px.MOBILE}", page, "the page does not show what it is now")
        self.assertEqual(mr.snapshot_etc_mail(), before, "the stale change was written")
        self.assertIn(f"shell@{px.MOBILE}", px.admin("explain", px.SUPPORT).stdout.decode())


if __name__ == "__main__":
    unittest.main()
