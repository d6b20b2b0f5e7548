"""Outbound limits on the installed suite: a hacked web site and a stolen
password cannot make the box send a flood.

A real PHP script, run by php-cli as www-data from a WordPress-like
plugin directory, calls mail() (that is, /usr/sbin/sendmail -t -i) a
thousand times for customers of an outside domain.  The domain's MX is an
aiosmtpd sink found through dnsmasq (compat/netfix.py).  Every call must
return true; the messages up to the limit reach the sink, the rest are
held (mailq shows them) and never sent; the postmaster gets one alert
naming www-data and the script; and one command releases them (each
reaches the sink once) or deletes them.

Over the network, openbsd-inetd starts `sendmail -bs` on 587: a login
over its limit gets `451 4.7.0` naming the limit, other logins and local
users go on as before, and an /etc/mail/limits entry lifts the limit for
that one login.

Runs as root in the compat sandbox (lib/sandbox.sh).
"""

import os
import smtplib
import time
import unittest

import mr
import smtpfix as sf
from test_smtp_clients import PASSWORD, REMOTE, SmtpCase

SITE = "/var/www/shop"
PLUGIN = SITE + "/wp-content/plugins/contact-form-x"
SCRIPT = PLUGIN + "/mailer.php"
COUNTERS_DIR = "/var/spool/mailroom/limits"
LIMITS = "/etc/mail/limits"


def held_ids():
    return sorted(f[2:] for f in os.listdir(mr.QUEUE) if f.startswith("hf"))


def root_mail():
    path = "/var/mail/root"
    if not os.path.exists(path):
        return b""
    with open(path, "rb") as f:
        return f.read()


def fresh_counters():
    """Each scenario starts with nobody counted (the counters are state
    under /var/spool/mailroom, kept between scenarios otherwise).  The
    directory itself is make install's (root:mqueue 2770): only its file
    goes."""
    st = os.stat(COUNTERS_DIR)
    assert oct(st.st_mode & 0o7777) == oct(0o2770), oct(st.st_mode)
    for name in os.listdir(COUNTERS_DIR):
        os.unlink(os.path.join(COUNTERS_DIR, name))
    try:
        os.unlink(LIMITS)
    except FileNotFoundError:
        pass


class LimitsCase(SmtpCase):
    def setUp(self):
        if not mr.have(sf.PHP, "php-cli"):
            self.skipTest("needs php-cli")
        fresh_counters()
        super().setUp()
        self.need_sink()
        for f in ("/var/mail/root", "/var/mail/root.lock"):
            if os.path.exists(f):
                os.unlink(f)

    def config(self, extra=""):
        # Queue only: the test runs the queue when it wants the sink to
        # see what may leave.  No pacing: the sink is one domain.
        super().config("delivery_mode = queue\ndestination_rate = unlimited\n" + extra)

    def run_queue_fully(self):
        p = mr.run(["sendmail", "-qf"], timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)

    def hacked_plugin_sends(self, count):
        """The plugin's script, as PHP runs it for a web request: as
        www-data, in the site's directory, with PHP's X-PHP-Originating-
        Script header on (as many php.ini files have it)."""
        os.makedirs(PLUGIN, exist_ok=True)
        with open(SCRIPT, "w") as f:
            f.write(f"""<?php
$ok = 0;
for ($i = 0; $i < {count}; $i++) {{
    if (mail("customer$i@{REMOTE}", "Cheap pills $i", "Buy now!\\n",
             "From: promo@{mr.HOST}")) {{
        $ok++;
    }}
}}
echo $ok;
""")
        os.chmod(SCRIPT, 0o644)
        started = time.monotonic()
        p = mr.run([sf.PHP, "-d", "display_errors=stderr", "-d", "mail.add_x_header=On", SCRIPT],
                   user="www-data", cwd=SITE, timeout=900)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode().strip(), str(count),
                         f"mail() returned false for some calls: {p.stderr[-2000:]}")
        return time.monotonic() - started


class HackedSite(LimitsCase):
    LIMIT = 200  # the default limit_per_hour for a local user

    def flood(self):
        self.hacked_plugin_sends(1000)
        queued, held = mr.queue_ids(), held_ids()
        self.assertEqual(len(queued), self.LIMIT + 1,
                         f"the allowed mail and the alert; log: {self.log()[-3000:]}")
        self.assertEqual(len(held), 1000 - self.LIMIT)
        # (The held: log lines are www-data's sendmail's, which logs to
        # syslog: no syslogd in the sandbox.  mailq shows the reasons.)
        # mailq lists the held ones, each with its reason.
        q = sf.mailq()
        self.assertEqual(q.count("held: user www-data over 200 messages/hour"), 1000 - self.LIMIT, q[-3000:])
        # What may leave leaves; the held mail does not.
        self.run_queue_fully()
        got = self.sink.wait_for(self.LIMIT, timeout=60)
        time.sleep(1)
        self.assertEqual(len(self.sink.messages), self.LIMIT)
        self.assertEqual(len(got), self.LIMIT)
        self.assertEqual(len(held_ids()), 1000 - self.LIMIT)
        # One alert, to the postmaster (root's mailbox), naming the user,
        # the script and the clean-up commands.
        box = root_mail()
        self.assertEqual(box.count(b"\nFrom ") + box.startswith(b"From "), 1, box[:4000])
        text = box.decode("utf-8", "replace")
        self.assertIn("www-data", text)
        self.assertIn("mailer.php", text)
        self.assertIn("mailroom queue release --held --user www-data", text)
        self.assertIn("mailroom queue delete --held --user www-data", text)
        # More mail from the script: still held, still no second alert.
        self.hacked_plugin_sends(5)
        self.assertEqual(len(held_ids()), 1000 - self.LIMIT + 5)
        self.run_queue_fully()
        self.assertEqual(root_mail().count(b"Subject: "), box.count(b"Subject: "))
        self.assertEqual(len(self.sink.messages), self.LIMIT)

    def subjects(self):
        return [m.message["Subject"] for m in self.sink.messages]

    def test_a_hacked_plugin_is_held_at_the_limit_and_released_in_one_command(self):
        self.flood()
        p = mr.run(["mailroom", "queue", "release", "--user", "www-data"], timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"{1000 - self.LIMIT + 5} messages match", p.stdout.decode())
        self.assertEqual(held_ids(), [])
        # The release started a queue run; another one by hand finishes
        # whatever it had not reached yet.
        self.sink.wait_for(1005, timeout=120)
        self.run_queue_fully()
        subjects = self.subjects()
        self.assertEqual(len(subjects), 1005)
        # Each message exactly once (the five later ones repeat the first
        # five subjects: the script was run twice).
        self.assertEqual(len(set(subjects)), 1000)
        self.assertEqual(sorted(s for s in subjects if subjects.count(s) == 2),
                         sorted([f"Cheap pills {i}" for i in range(5)] * 2))
        self.assertEqual(mr.queue_ids(), [])

    def test_a_hacked_plugins_held_mail_is_deleted_in_one_command(self):
        self.flood()
        p = mr.run(["mailroom", "queue", "delete", "--held", "--user", "www-data"], timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"deleted {1000 - self.LIMIT + 5}", p.stdout.decode())
        self.assertEqual(held_ids(), [])
        self.run_queue_fully()
        time.sleep(1)
        self.assertEqual(len(self.sink.messages), self.LIMIT)
        self.assertNotIn("held: user www-data", sf.mailq())


class StolenPassword(LimitsCase):
    def config(self, extra=""):
        super().config("limit_per_hour = 3 messages, 100 recipients\n" + extra)

    def submit(self, login, n):
        """One message over 587 (STARTTLS, AUTH PLAIN); the reply to DATA's end."""
        s = self.smtp(sf.SUBMISSION_PORT)
        s.ehlo()
        s.starttls(context=self.tls())
        s.ehlo()
        s.login(login, PASSWORD)
        msg = f"From: {login}@{mr.HOST}\r\nTo: friend@{REMOTE}\r\nSubject: {login} {n}\r\n\r\nhello\r\n"
        try:
            s.sendmail(f"{login}@{mr.HOST}", [f"friend@{REMOTE}"], msg.encode())
            return (250, b"")
        except smtplib.SMTPDataError as e:
            return (e.smtp_code, e.smtp_error)
        finally:
            try:
                s.quit()
            except smtplib.SMTPException:
                pass

    def test_a_login_over_its_limit_gets_451_and_an_override_lifts_it(self):
        self.user("stolen")
        self.user("honest")
        for n in range(3):
            self.assertEqual(self.submit("stolen", n), (250, b""))
        code, text = self.submit("stolen", 3)
        self.assertEqual(code, 451, self.log()[-3000:])
        self.assertIn(b"4.7.0", text)
        self.assertIn(b"3 messages/hour", text)
        self.assertIn(": refused: login stolen over 3 messages/hour", self.log())
        # Nothing of it was queued (the client keeps it and retries).
        self.assertEqual(held_ids(), [])
        self.assertEqual(len([q for q in mr.queue_ids() if b"Subject: stolen 3\n" in mr.df(q)]), 0)
        # Another login, and a local user, are not affected.
        self.assertEqual(self.submit("honest", 0), (250, b""))
        p = mr.sendmail(["-i", f"friend@{REMOTE}"], b"Subject: cron report\n\nok\n", user="www-data")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(held_ids(), [])
        # The admin lifts the limit for this one login.
        with open(LIMITS, "w") as f:
            f.write("Login:stolen  unlimited\n")
        self.assertEqual(self.submit("stolen", 4), (250, b""))
        self.run_queue_fully()
        got = sorted(m.message["Subject"] for m in self.sink.wait_for(6, timeout=30))
        self.assertEqual(got, sorted(["stolen 0", "stolen 1", "stolen 2", "stolen 4", "honest 0",
                                      "cron report"]))
        # The alert about the refusal reached the postmaster.
        self.assertIn(b"login stolen", root_mail())


if __name__ == "__main__":
    unittest.main()
