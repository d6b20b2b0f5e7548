"""Issue 7's story, end to end on the installed suite: a VPS owner moves
three domains from a shared host with nothing but `mailroom` commands.

While inetd already serves SMTP (`sendmail -bs` on 127.0.0.1:25) and POP3
(pop3d on 127.0.0.1:11110) -- nothing is restarted afterwards -- the owner:

* adds example.com and shop.example (local domains) and third.example (a
  virtual domain);
* imports 40 mailboxes from a hosting panel's export (`ADDRESS PASSWORD`
  lines, a quoted password with spaces among them, comments, and one `alias`
  record: billing@example.com goes to accounts@example.com);
* gives sales@example.com two aliases (sales@shop.example and
  vertrieb@example.com);
* forwards ceo@example.com to a phone address on a remote domain, keeping a
  copy;
* has info@shop.example and info@example.com as two different people;
* points the catch-all of shop.example at orders@shop.example;
* sets a 200M quota on intern@example.com (and, for a while, 20K: the
  filling mailbox warns its owner at 80% and 95%, once each);
* resets a forgotten POP3 password;
* asks `mailroom explain billing@example.com`.

Then mail is sent by SMTP from an outside client (192.0.2.10) and read
back through POP3 logins as the address with the imported password; the
phone's copy arrives at mobile.example's MX (an aiosmtpd sink on 127.0.0.2
found through dnsmasq, compat/netfix.py).  The catch-all takes only the
unknown addresses of shop.example; unknown addresses of the other two
domains are refused at RCPT (550 5.1.1).  The quota is shown with a 2K
limit so that one message fills it: the next (SIZE= declared) is refused
`452 4.2.2` at RCPT.

Differential: real sendmail 8 (compat/oracle), given the aliases,
virtusertable, local-host-names, virtuser-domains and the users that
`mailroom` wrote, must resolve every address of the scenario (`-bv`) exactly
as the installed `sendmail -bv` does; its makemap and newaliases must take
those files without a complaint.

The scenario is set up once for the class; each test sends its own tagged
messages (X-Serial) and looks only at those, and puts back what it changes
(a password, the quota).  /etc/mail, /etc/passwd, /etc/shadow, /etc/group,
the mailboxes and the POP-before-SMTP stamps are restored at the end.

Needs openbsd-inetd, dnsmasq, python3-aiosmtpd, openssl and, for the
differential, the sendmail 8 oracle.  Runs as root in the compat sandbox
(lib/sandbox.sh).
"""

import json
import os
import poplib
import re
import shutil
import smtplib
import tempfile
import unittest

import mr
import netfix
import pop3fix as pf
import sitefix
import smtpfix as sf

MAILROOM = "/usr/sbin/mailroom"
HOST = mr.HOST
SENDER = "alice@example.org"
PHONE = "ceo.phone@mobile.example"
PHONE_MX = "127.0.0.2"
DOMAINS = ("example.com", "shop.example", "third.example")
VIRTUAL_DOMAINS = ("third.example",)

# The hosting panel's export: 40 mailboxes.
LOCALS = {
    "example.com": ["info", "sales", "ceo", "intern", "accounts", "support", "hr", "press",
                    "anna", "ben", "carla", "david", "emma", "felix"],
    "shop.example": ["info", "orders", "returns", "shipping", "service", "marketing", "greta",
                     "hannah", "ivan", "julia", "karl", "lena", "max"],
    "third.example": ["admin", "office", "nina", "oscar", "paula", "quentin", "rosa", "stefan",
                      "tina", "uwe", "vera", "walter", "xenia"],
}
MAILBOXES = [f"{l}@{d}" for d in DOMAINS for l in LOCALS[d]]
PASSWORDS = {a: f"{a.split('@')[0].capitalize()}-{a.split('@')[1].split('.')[0]}-{i:02d}!"
             for i, a in enumerate(MAILBOXES)}
# What exports hold too: a passphrase, punctuation.
PASSWORDS["vera@third.example"] = "correct horse battery staple"
PASSWORDS["press@example.com"] = "p@ss:w0rd#1;x"

SALES_ALIASES = ("sales@shop.example", "vertrieb@example.com")
FORGETFUL = "tina@third.example"
NEW_PASSWORD = "Fresh-Start-2024"
QUOTA_TEST = "2K"
CATCHALL_TARGET = "orders@shop.example"


def import_password(pw):
    """A password as an import line holds it: one word, or in double quotes
    (with \\" and \\\\) when it has spaces."""
    if any(c.isspace() for c in pw) or pw.startswith('"'):
        return '"' + pw.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return pw


def import_file_text():
    lines = ["# exported from the old host's control panel", "# address password", ""]
    for d in DOMAINS:
        lines.append(f"# {d}")
        lines += [f"{a} {import_password(PASSWORDS[a])}" for a in MAILBOXES if a.endswith("@" + d)]
        lines.append("")
    lines.append("alias billing@example.com accounts@example.com")
    return "\n".join(lines) + "\n"


def message(to, serial, body="hello\r\n"):
    return (f"From: Alice <{SENDER}>\r\nTo: <{to}>\r\nSubject: {serial}\r\n"
            f"X-Serial: {serial}\r\n\r\n{body}").encode()


# ---------------------------------------------------------------------------
# Files to put back afterwards (shared with the panel's scenarios)

from mr import PASSWD_FILES, restore_files, restore_tree, snapshot_files, snapshot_tree  # noqa: E402


# ---------------------------------------------------------------------------


def prerequisites():
    absent = sf.missing(sf.INETD, sf.SENDMAIL, MAILROOM, pf.POP3D)
    if absent:
        return f"not installed: {' '.join(absent)}"
    if not netfix.available():
        return "needs dnsmasq, python3-aiosmtpd and openssl (compat/netfix.py)"
    return None


class AdminScenario(unittest.TestCase):
    """The owner's commands run once, with SMTP and POP3 already served."""

    transcript = []

    # -- the scenario --------------------------------------------------------

    @classmethod
    def setUpClass(cls):
        why = prerequisites()
        if why:
            raise unittest.SkipTest(why)
        etc_mail = mr.snapshot_etc_mail()
        cls.addClassCleanup(mr.restore_etc_mail, etc_mail)
        passwd = snapshot_files(PASSWD_FILES)
        cls.addClassCleanup(restore_files, passwd)
        for top in (pf.SPOOL, pf.STAMPS):
            snap = snapshot_tree(top)
            cls.addClassCleanup(restore_tree, top, snap)
        cls.addClassCleanup(mr.clear_queue)
        mr.clear_queue()
        sitefix.configure("smtp_auth_fail_delay = 0\npop3_auth_fail_delay = 0\n")
        # SMTP and POP3 are served before anything is set up: the changes
        # must work without restarting anything.
        site = sitefix.Site(cls.addClassCleanup, remotes={"mobile.example": PHONE_MX}, pop3=True)
        cls.mark, cls.inetd = site.mark, site.inetd
        cls.sink = site.sinks["mobile.example"]
        cls.work = tempfile.mkdtemp(prefix="admin-scenario.", dir=pf.workdir())

        for d in DOMAINS:
            cls.admin("domain", "add", d, *(["--virtual"] if d in VIRTUAL_DOMAINS else []))
        export = os.path.join(cls.work, "export.txt")
        fd = os.open(export, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(import_file_text())
        cls.admin("import", export)
        for a in SALES_ALIASES:
            cls.admin("alias", "add", a, "sales@example.com")
        cls.admin("forward", "set", "ceo@example.com", PHONE, "--keep-copy")
        cls.admin("catchall", "set", "shop.example", CATCHALL_TARGET)
        cls.admin("mailbox", "quota", "intern@example.com", "200M")
        p = cls.admin("mailbox", "list", "--json")
        cls.mailboxes = {r["address"]: r for r in json.loads(p.stdout.decode())}

    @classmethod
    def admin(cls, *args, input=None, check=True):
        """`mailroom ARGS`; the command and its output go into the
        transcript shown with every failure."""
        p = mr.run([MAILROOM] + list(args), input=input)
        out = (p.stdout + p.stderr).decode(errors="replace")
        cls.transcript.append(f"$ mailroom {' '.join(args)}\n{out}[exit {p.returncode}]")
        if check and p.returncode != 0:
            raise AssertionError(f"mailroom {' '.join(args)} exited {p.returncode}:\n{out}")
        return p

    def history(self):
        return ("\n--- admin commands ---\n" + "\n".join(self.transcript[-12:])
                + f"\n--- queue ---\n{sf.mailq()}\n--- log ---\n{mr.log_since(self.mark)[-4000:]}")

    def user_of(self, address):
        row = self.mailboxes.get(address)
        self.assertIsNotNone(row, f"{address} not in 'mailroom mailbox list --json': "
                                  f"{sorted(self.mailboxes)}")
        return row["user"]

    # -- SMTP ------------------------------------------------------------------

    def smtp(self):
        s = smtplib.SMTP(sf.ADDR, sf.SMTP_PORT, local_hostname="client.example.org",
                         source_address=(sf.CLIENT_ADDR, 0), timeout=15)
        self.addCleanup(s.close)
        return s

    def send(self, pairs, body="hello\r\n"):
        """One SMTP session from the outside client: one message per
        (address, serial); every recipient must be accepted."""
        s = self.smtp()
        for to, serial in pairs:
            refused = s.sendmail(SENDER, [to], message(to, serial, body))
            self.assertEqual(refused, {}, to)
        s.quit()

    def rcpt_reply(self, to, size=None):
        """MAIL (declaring SIZE= when given) and RCPT TO:<to> from the
        outside client, then RSET: the RCPT reply (code, text).  Nothing is
        queued, whatever the answer."""
        s = self.smtp()
        s.ehlo()
        code, text = s.mail(SENDER, [f"SIZE={size}"] if size else [])
        self.assertEqual(code, 250, text)
        reply = s.rcpt(to)
        s.rset()
        s.quit()
        return reply

    def settle(self):
        """Every session over and the queue empty: all delivered."""
        self.assertTrue(self.inetd.wait_idle(15), "sendmail sessions still running")
        done = pf.wait_until(lambda: not mr.queue_ids(), 30, step=0.1)
        self.assertTrue(done, "mail still queued after 30 s" + self.history())

    # -- POP3 ------------------------------------------------------------------

    def pop_login(self, login, password):
        p = poplib.POP3(pf.ADDR, pf.PORT, timeout=15)
        try:
            p.user(login)
            p.pass_(password)
        except Exception:
            p.close()
            raise
        return p

    def pop_refused(self, login, password):
        """Whether POP3 refuses this login and password (-ERR)."""
        try:
            p = self.pop_login(login, password)
        except poplib.error_proto:
            return True
        p.quit()
        return False

    def pop_messages(self, login, password, delete=False):
        """Every message of the mailbox `login` opens (raw bytes)."""
        try:
            p = self.pop_login(login, password)
        except poplib.error_proto as e:
            self.fail(f"POP3 login as {login} refused: {e}" + self.history())
        try:
            n = len(p.list()[1])
            out = [b"\r\n".join(p.retr(i)[1]) for i in range(1, n + 1)]
            if delete:
                for i in range(1, n + 1):
                    p.dele(i)
            p.quit()
        finally:
            p.close()
        return out

    def pop_serials(self, login, password, prefix):
        """The X-Serial values starting with `prefix` in the mailbox."""
        out = []
        for m in self.pop_messages(login, password):
            s = pf.header(m, "X-Serial")
            if s and s.startswith(prefix):
                out.append(s)
        return sorted(out)

    # -- the tests -------------------------------------------------------------

    def test_the_import_created_every_mailbox_with_its_user_and_mbox(self):
        for a in MAILBOXES:
            with self.subTest(address=a):
                row = self.mailboxes.get(a)
                self.assertIsNotNone(row, f"not listed by 'mailroom mailbox list --json'" + self.history())
                self.assertFalse(row["virtual"], row)
                self.assertEqual(row["mailbox"], f"/var/mail/{row['user']}", row)
                self.assertTrue(os.path.isfile(row["mailbox"]), row)
        users = [self.mailboxes[a]["user"] for a in MAILBOXES if a in self.mailboxes]
        self.assertEqual(len(set(users)), len(users), "two addresses share a user")
        self.assertNotEqual(self.user_of("info@example.com"), self.user_of("info@shop.example"))

    def test_mail_to_each_imported_address_is_read_by_pop3_login_as_the_address(self):
        tag = "each-"
        serial = {a: f"{tag}{i:02d}" for i, a in enumerate(MAILBOXES)}
        self.send([(a, serial[a]) for a in MAILBOXES])
        self.settle()
        for a in MAILBOXES:
            with self.subTest(address=a):
                self.assertEqual(self.pop_serials(a, PASSWORDS[a], tag), [serial[a]], self.history())

    def test_both_aliases_of_sales_deliver_to_the_sales_mailbox(self):
        pairs = [("sales@example.com", "sales-direct")] + [(a, f"sales-via-{a}") for a in SALES_ALIASES]
        self.send(pairs)
        self.settle()
        self.assertEqual(self.pop_serials("sales@example.com", PASSWORDS["sales@example.com"], "sales-"),
                         sorted(s for _, s in pairs), self.history())

    def test_ceo_forward_to_the_phone_delivers_both_copies(self):
        self.sink.clear()
        self.send([("ceo@example.com", "ceo-forward")])
        self.settle()
        got = [m for m in self.sink.wait_for(1, timeout=15)
               if pf.header(m.data, "X-Serial") == "ceo-forward"]
        self.assertEqual(len(got), 1, f"the phone's MX got {self.sink.transactions}" + self.history())
        self.assertEqual(got[0].rcpt_tos, [PHONE])
        self.assertEqual(self.pop_serials("ceo@example.com", PASSWORDS["ceo@example.com"], "ceo-forward"),
                         ["ceo-forward"], "no copy kept in the ceo's mailbox" + self.history())

    def test_info_at_shop_and_info_at_example_com_are_different_people(self):
        self.send([("info@example.com", "info-com"), ("info@shop.example", "info-shop")])
        self.settle()
        self.assertEqual(self.pop_serials("info@example.com", PASSWORDS["info@example.com"], "info-"),
                         ["info-com"], self.history())
        self.assertEqual(self.pop_serials("info@shop.example", PASSWORDS["info@shop.example"], "info-"),
                         ["info-shop"], self.history())
        self.assertTrue(self.pop_refused("info@shop.example", PASSWORDS["info@example.com"]),
                        "info@example.com's password opens info@shop.example")
        self.assertTrue(self.pop_refused("info@example.com", PASSWORDS["info@shop.example"]),
                        "info@shop.example's password opens info@example.com")

    def test_the_catchall_of_shop_example_takes_only_unknown_addresses(self):
        known = ["info@shop.example", "returns@shop.example", "max@shop.example"]
        unknown = ["no.such.person@shop.example", "Made.Up+tag@shop.example"]
        self.send([(a, f"catch-{a}") for a in known + unknown])
        self.settle()
        orders = self.pop_serials(CATCHALL_TARGET, PASSWORDS[CATCHALL_TARGET], "catch-")
        self.assertEqual(orders, sorted(f"catch-{a}" for a in unknown), self.history())
        for a in known:
            with self.subTest(address=a):
                self.assertEqual(self.pop_serials(a, PASSWORDS[a], "catch-"), [f"catch-{a}"], self.history())

    def test_unknown_addresses_of_the_domains_without_catchall_are_refused(self):
        # ("nobody" would not do: the system user nobody takes
        # nobody@example.com, in sendmail 8 too.)
        for a in ("no.such.person@example.com", "no.such.person@third.example"):
            with self.subTest(address=a):
                code, text = self.rcpt_reply(a)
                self.assertEqual(
                    (code, text[:5]), (550, b"5.1.1"),
                    f"RCPT TO:<{a}> from an outside client: {code} {text.decode(errors='replace')}. "
                    "An accepted unknown address of a virtual domain is relayed to the domain's MX "
                    "(this host: a loop, or a bounce to a forged sender); 'mailroom domain add "
                    "--virtual' promises that only the addresses created exist.  sendmail 8 accepts "
                    "it too from a virtuser-domains entry alone: a virtusertable line "
                    "'@DOMAIN error:nouser 550 5.1.1 User unknown' is what makes both refuse.")

    def test_intern_quota_refuses_mail_past_the_limit(self):
        intern = "intern@example.com"
        pw = PASSWORDS[intern]
        self.addCleanup(self.admin, "mailbox", "quota", intern, "200M")
        # Start from an empty mailbox (the intern reads and deletes).
        self.pop_messages(intern, pw, delete=True)
        mbox = self.mailboxes[intern]["mailbox"] if intern in self.mailboxes else None
        self.admin("mailbox", "quota", intern, QUOTA_TEST)
        body = ("x" * 68 + "\r\n") * 14                   # about 1000 bytes
        self.send([(intern, "quota-1")], body=body)
        self.settle()
        self.assertEqual(self.pop_serials(intern, pw, "quota-"), ["quota-1"], self.history())
        if mbox:
            self.assertLess(os.path.getsize(mbox), 2048, "the first message alone is over 2K")
        # The next one (its SIZE= declared, as smtplib and most clients
        # do) does not fit any more: refused at RCPT, nothing queued.
        code, text = self.rcpt_reply(intern, size=len(message(intern, "quota-2", body)))
        self.assertEqual((code, text[:5]), (452, b"4.2.2"), text)
        self.assertEqual(mr.queue_ids(), [])
        self.assertEqual(self.pop_serials(intern, pw, "quota-"), ["quota-1"], self.history())
        # The 200M of the scenario takes it again.
        self.admin("mailbox", "quota", intern, "200M")
        self.send([(intern, "quota-3")], body=body)
        self.settle()
        self.assertEqual(self.pop_serials(intern, pw, "quota-"), ["quota-1", "quota-3"], self.history())

    def test_a_filling_mailbox_warns_its_owner_once_per_threshold(self):
        intern = "intern@example.com"
        pw = PASSWORDS[intern]
        self.addCleanup(self.admin, "mailbox", "quota", intern, "200M")
        self.pop_messages(intern, pw, delete=True)
        self.admin("mailbox", "quota", intern, "20K")
        body = "short\r\n"
        # Each message is offered declaring 800 bytes more than it has (the
        # header lines delivery adds): whatever RCPT takes fits at delivery,
        # and RCPT refuses only past 95.5%: both thresholds are crossed.
        for i in range(80):
            size = len(message(intern, f"fill-{i:02d}", body)) + 800
            code, _ = self.rcpt_reply(intern, size=size)
            if code != 250:
                break
            self.send([(intern, f"fill-{i:02d}")], body=body)
            self.settle()
        else:
            self.fail("80 messages and the 20K mailbox never full" + self.history())
        warnings = [m for m in self.pop_messages(intern, pw) if b"\r\nSubject: Your mailbox is " in m]
        texts = b"\n".join(warnings).decode(errors="replace")
        # 80% and 95% each crossed once: one warning each, from postmaster,
        # with the null envelope sender, in the mailbox itself.
        self.assertEqual(texts.count("passed 80% of its size"), 1, texts + self.history())
        self.assertEqual(texts.count("passed 95% of its size"), 1, texts + self.history())
        for m in warnings:
            self.assertTrue(m.startswith(b"Return-Path: <>\r\n"), m)
            self.assertIn(b"\r\nFrom: Mail System <postmaster@", m)
            # Named as its owner knows it, not by its system user.
            self.assertIn(f"\r\nTo: <{intern}>\r\n".encode(), m)
            self.assertIn(f"Your mailbox {intern} is ".encode(), m)
        # `mailbox list` shows the usage against the quota; `check` warns
        # about the mailbox exactly when it holds 95% or more, and still
        # exits 0.
        rows = {r["address"]: r for r in json.loads(self.admin("mailbox", "list", "--json").stdout)}
        row = rows[intern]
        self.assertEqual(row["quota"], 20480, row)
        self.assertEqual(row["percent"], row["size"] * 100 // 20480, row)
        table = self.admin("mailbox", "list").stdout.decode()
        self.assertRegex(table, rf"(?m)^{re.escape(intern)} .* / 20K \(\d+%\)", table)
        p = self.admin("check", check=False)
        out = p.stdout.decode(errors="replace")
        self.assertEqual(p.returncode, 0, out)
        flagged = re.search(rf"warning: {re.escape(intern)}: (nearly full|over its quota), ", out)
        self.assertEqual(bool(flagged), row["percent"] >= 95, out)
        self.pop_messages(intern, pw, delete=True)

    def test_password_reset_takes_effect_at_the_next_login(self):
        old = PASSWORDS[FORGETFUL]
        before = self.pop_login(FORGETFUL, old)
        self.addCleanup(before.close)
        self.addCleanup(self.admin, "mailbox", "passwd", FORGETFUL, "--password-stdin",
                        input=(old + "\n").encode())
        self.admin("mailbox", "passwd", FORGETFUL, "--password-stdin", input=(NEW_PASSWORD + "\n").encode())
        # The session opened before goes on.
        self.assertTrue(before.stat(), "the open session broke")
        before.quit()
        self.assertTrue(self.pop_refused(FORGETFUL, old), "the old password still logs in" + self.history())
        p = self.pop_login(FORGETFUL, NEW_PASSWORD)
        p.quit()
        # Nobody else's password changed.
        p = self.pop_login("uwe@third.example", PASSWORDS["uwe@third.example"])
        p.quit()

    def test_explain_billing_says_where_its_mail_goes_with_file_and_line(self):
        p = self.admin("explain", "billing@example.com")
        out = p.stdout.decode()
        vut = "/etc/mail/virtusertable"
        with open(vut) as f:
            lines = f.read().split("\n")
        n = next((i + 1 for i, l in enumerate(lines) if l.split()[:1] == ["billing@example.com"]), None)
        self.assertIsNotNone(n, f"no billing@example.com line in {vut}")
        self.assertIn(f"({vut}:{n})", out)
        user = self.user_of("accounts@example.com")
        self.assertRegex(out, rf"(?m)^result:\n\s+\S+\s+mbox /var/mail/{re.escape(user)} \(user {re.escape(user)}\b",
                         out)
        # And mail for it does land there.
        self.send([("billing@example.com", "billing-1")])
        self.settle()
        self.assertEqual(self.pop_serials("accounts@example.com", PASSWORDS["accounts@example.com"], "billing-"),
                         ["billing-1"], self.history())

    def test_check_passes_and_warns_about_the_catchall(self):
        p = self.admin("check", check=False)
        out = (p.stdout + p.stderr).decode(errors="replace")
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("catch-all on for shop.example", out)

    # -- the differential --------------------------------------------------------

    DIFF_ADDRESSES = MAILBOXES + list(SALES_ALIASES) + [
        "billing@example.com",
        "no.such.person@shop.example", "no.such.person@example.com", "no.such.person@third.example",
        "nobody@example.com", "nobody@third.example", "root@shop.example",
        "Info@Shop.Example", "SALES@example.com",
    ]

    def test_sendmail8_resolves_every_address_of_the_scenario_the_same_way(self):
        if not mr.oracle_available():
            self.skipTest("sendmail 8 oracle not built (compat/oracle/setup.sh)")
        addresses = list(self.DIFF_ADDRESSES)
        # The users mailroom made, at the local domains and a virtual one.
        for a in ("info@shop.example", "ceo@example.com"):
            u = self.user_of(a)
            addresses += [f"{u}@example.com", f"{u}@shop.example", f"{u}@third.example", u]
        src = tempfile.mkdtemp(prefix="oracle-src.", dir=self.work)
        files = {}
        for name in ("aliases", "virtusertable", "local-host-names", "virtuser-domains"):
            files[name] = os.path.join(src, name)
            try:
                shutil.copyfile(f"/etc/mail/{name}", files[name])
            except FileNotFoundError:
                open(files[name], "w").close()
        users = []
        with open("/etc/passwd") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) == 7 and 1000 <= int(fields[2]) <= 59999:
                    users.append(line.rstrip("\n"))
        files["users"] = os.path.join(src, "users")
        with open(files["users"], "w") as f:
            f.write("\n".join(users) + "\n")
        inst = os.path.join(mr.SM_ORACLE, "run", "admin-scenario")
        shutil.rmtree(inst, ignore_errors=True)
        self.addCleanup(shutil.rmtree, inst, True)
        p = mr.run([os.path.join(mr.ORACLE, "mkinst.sh"), inst, files["aliases"], files["virtusertable"],
                    files["local-host-names"], files["users"]],
                   env={"SM_ORACLE": mr.SM_ORACLE, "VIRTHOSTS": files["virtuser-domains"]})
        report = (p.stdout + p.stderr).decode(errors="replace")
        # makemap and newaliases take mailroom's files without a word but
        # newaliases' summary.
        self.assertEqual(p.returncode, 0, report)
        complaints = [l for l in report.splitlines()
                      if l.strip() and not re.search(r"aliases: \d+ aliases, longest \d+ bytes, \d+ bytes total$", l)]
        self.assertEqual(complaints, [], report)
        for a in addresses:
            with self.subTest(address=a):
                t = mr.oracle(inst, ["-bv", "--", a])
                theirs = (t.stdout + t.stderr).decode("latin-1")
                o = mr.run([sf.SENDMAIL, "-bv", "--", a])
                ours = (o.stdout + o.stderr).decode("latin-1")
                self.assertEqual(sorted(l for l in ours.split("\n") if l),
                                 sorted(l for l in theirs.split("\n") if l),
                                 f"\nours (exit {o.returncode}):\n{ours}\nsendmail 8 (exit {t.returncode}):\n{theirs}")
                self.assertEqual(o.returncode, t.returncode, f"\nours:\n{ours}\nsendmail 8:\n{theirs}")


if __name__ == "__main__":
    unittest.main()
