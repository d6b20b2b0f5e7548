"""The web control panel's security, request by request (issue 22), over
https with Python's http.client against the installed panel under Apache
(CGI; compat/panelfix.py), and its headers on its own port 8443 too.

The box: shop.example (its domain admin postmaster@, the mailboxes
support@, orders@ and the mailbox user clerk@, an alias, a forward, the
catch-all, an autoresponder, a list and filter rules, all made with the
`mailroom` command), other.example (its own postmaster), and a box admin
named in /etc/mail/panel-admins.

* CSRF: a change posted without the form's token, with another user's
  token, or with the token of another session of the same user changes
  nothing; the same post with the right token does (the control).
* Who may touch what: EVERY page of src/panel/mod.rs's table that names
  an object, and EVERY operation of src/panel/protocol.rs's table (both
  tables are read from the source, so a page or operation added there
  without a case here fails the test), tried on shop.example's objects
  with other.example's admin session and with clerk's session, gets the
  very answer the same request gets for a name that does not exist, and
  changes nothing: /etc/mail, the accounts files, /var/mail and the queue
  are compared before and after each request.  The pages they may see
  (home, domains, me) name nothing of shop.example's they may not manage.
* XSS: a payload in every text field of every form is never sent back
  as markup: the answer and the object's page show it escaped (or not at
  all).
* Sessions: a cookie from before login (the pre-login cookie, or one an
  attacker planted) is not a session after login; logout ends the
  session; a password change ends the old session.
* Login failures are slowed as POP3's are: the pause doubles from
  pop3_auth_fail_delay, the same for a known and an unknown name, with
  the same answer.
* Every response carries Content-Security-Policy with frame-ancestors,
  X-Frame-Options, X-Content-Type-Options: nosniff, Cache-Control:
  no-store, and every cookie is HttpOnly; Secure; SameSite=Strict.

Needs the installed panel and panel-helper, apache2, openbsd-inetd, curl,
dnsmasq and python3-aiosmtpd; runs as root in the compat sandbox.
"""

import os
import re
import time
import unittest
import urllib.parse

import mr
import netfix
import panelfix as px
import pop3fix as pf

BOXADMIN, BOXADMIN_PW = "paneladmin", "Box-Admin-Pw-9"
GHOST = "nosuch.example"
SALES, TEAM = f"sales@{px.SHOP}", f"team@{px.SHOP}"
EVIL = f"evil@{px.MOBILE}"
MARK = "xss7c1"
PAYLOAD = f"<script>{MARK}()</script>\"'><img src=x onerror={MARK}()><svg onload={MARK}()>"
# What must never come back: the payload's markup, unescaped.
RAW = [f"<script>{MARK}", f"<img src=x onerror={MARK}", f"<svg onload={MARK}"]
WATCHED = ("/etc/mail", "/etc/passwd", "/etc/shadow", "/etc/group", pf.SPOOL, mr.QUEUE)

# Every operation of src/panel/protocol.rs: the fields that name
# shop.example's objects (what the attacker tries), and the same request
# for names that do not exist ({} where the operation names no object:
# the acting user comes from the session).
CHANGES = {
    "domain.add": ({"domain": f"annex.{px.SHOP}"}, {"domain": f"annex.{GHOST}"}),
    "domain.remove": ({"domain": px.SHOP}, {"domain": GHOST}),
    "mailbox.add": ({"address": f"intruder@{px.SHOP}", "password": "Intruder-Pw-1", "quota": ""},
                    {"address": f"intruder@{GHOST}", "password": "Intruder-Pw-1", "quota": ""}),
    "mailbox.remove": ({"address": px.SUPPORT}, {"address": f"support@{GHOST}"}),
    "mailbox.password": ({"address": px.SUPPORT, "password": "Owned-Pw-123"},
                         {"address": f"support@{GHOST}", "password": "Owned-Pw-123"}),
    "mailbox.quota": ({"address": px.SUPPORT, "quota": "1K"}, {"address": f"support@{GHOST}", "quota": "1K"}),
    "import": ({"domain": px.SHOP, "text": f"intruder@{px.SHOP} Intruder-Pw-1\n"},
               {"domain": GHOST, "text": f"intruder@{GHOST} Intruder-Pw-1\n"}),
    "alias.set": ({"address": SALES, "target": EVIL}, {"address": f"sales@{GHOST}", "target": EVIL}),
    "alias.remove": ({"address": SALES, "target": px.ORDERS},
                     {"address": f"sales@{GHOST}", "target": f"orders@{GHOST}"}),
    "forward.set": ({"address": px.SUPPORT, "target": EVIL, "keep": "yes"},
                    {"address": f"support@{GHOST}", "target": EVIL, "keep": "yes"}),
    "forward.clear": ({"address": px.SUPPORT}, {"address": f"support@{GHOST}"}),
    "catchall.set": ({"domain": px.SHOP, "target": EVIL}, {"domain": GHOST, "target": EVIL}),
    "catchall.clear": ({"domain": px.SHOP}, {"domain": GHOST}),
    "autoreply.set": ({"address": px.SUPPORT, "subject": "owned", "text": "owned", "from": "", "until": ""},
                      {"address": f"support@{GHOST}", "subject": "owned", "text": "owned", "from": "",
                       "until": ""}),
    "autoreply.clear": ({"address": px.SUPPORT}, {"address": f"support@{GHOST}"}),
    "list.create": ({"address": f"evil-list@{px.SHOP}", "member": EVIL},
                    {"address": f"evil-list@{GHOST}", "member": EVIL}),
    "list.delete": ({"address": TEAM}, {"address": f"team@{GHOST}"}),
    "list.add": ({"address": TEAM, "member": EVIL}, {"address": f"team@{GHOST}", "member": EVIL}),
    "list.drop": ({"address": TEAM, "member": px.ORDERS},
                  {"address": f"team@{GHOST}", "member": f"orders@{GHOST}"}),
    "filter.set": ({"address": px.SUPPORT, "rules": "if always then discard"},
                   {"address": f"support@{GHOST}", "rules": "if always then discard"}),
    "filter.clear": ({"address": px.SUPPORT}, {"address": f"support@{GHOST}"}),
    # Names no object: tried with support@'s own password as `old` and
    # support@ slipped in as the login, it must change nobody's.
    "password.change": ({"old": px.BOX_PW, "new": "Owned-Pw-123", "address": px.SUPPORT,
                         "login": px.SUPPORT}, {}),
}
# The operations that are no `do/OP` form: where the pages use them.
READS = {
    "login": "POST login", "logout": "POST logout", "whoami": "every page",
    "domains": "GET domains", "domain.show": "GET d/DOMAIN", "queue": "GET d/DOMAIN/queue",
    "me": "GET me",
}

# Every page of src/panel/mod.rs that names an object: shop.example's,
# and the same for names that do not exist.  Those that name none are
# checked for what they show (see test_pages_without_a_name_show_only_ones_own).
CONFIRMS = [op for op in CHANGES if op.split(".")[-1] in ("remove", "delete", "clear", "drop")]
NAMED_PAGES = {
    "GET d/DOMAIN": [(f"d/{px.SHOP}", f"d/{GHOST}")],
    # Their own domain's page, asked to show shop.example's alias or list.
    "GET d/DOMAIN?alias=ADDRESS": [(f"d/{px.SHOP}?alias={SALES}", f"d/{GHOST}?alias=sales@{GHOST}"),
                                   (f"d/{px.OTHER}?alias={SALES}", f"d/{px.OTHER}?alias=sales@{GHOST}")],
    "GET d/DOMAIN?list=ADDRESS": [(f"d/{px.SHOP}?list={TEAM}", f"d/{GHOST}?list=team@{GHOST}"),
                                  (f"d/{px.OTHER}?list={TEAM}", f"d/{px.OTHER}?list=team@{GHOST}")],
    "GET d/DOMAIN/m/ADDRESS": [(f"d/{px.SHOP}/m/{px.SUPPORT}", f"d/{GHOST}/m/support@{GHOST}"),
                               (f"d/{px.OTHER}/m/{px.SUPPORT}", f"d/{px.OTHER}/m/support@{GHOST}")],
    "GET d/DOMAIN/queue": [(f"d/{px.SHOP}/queue", f"d/{GHOST}/queue")],
    "GET d/DOMAIN/import": [(f"d/{px.SHOP}/import", f"d/{GHOST}/import")],
    "GET confirm/OP?FIELDS": [(f"confirm/{op}?" + "&".join(f"{k}={v}" for k, v in CHANGES[op][0].items()),
                          f"confirm/{op}?" + "&".join(f"{k}={v}" for k, v in CHANGES[op][1].items()))
                         for op in CONFIRMS],
    "POST do/OP": "every operation of CHANGES",
}
UNNAMED_PAGES = ("GET /", "POST login", "POST logout", "GET home", "GET domains", "GET me", "GET style.css")


def source(path):
    with open(os.path.join(mr.REPO, path)) as f:
        return f.read()


def contract_ops():
    """The operations of protocol.rs's table (`a` / `b` rows split)."""
    ops, inside = [], False
    for line in source("src/panel/protocol.rs").splitlines():
        if line.startswith("/// | op |"):
            inside = True
            continue
        if inside and not line.startswith("/// |"):
            break
        m = re.match(r"^/// \| (`[a-z.]+`(?: / `[a-z.]+`)*) \|", line)
        if inside and m:
            ops += re.findall(r"`([a-z.]+)`", m.group(1))
    return ops


def contract_pages():
    """The pages of mod.rs's table, as "METHOD path" ("POST login, POST
    logout" rows split)."""
    pages = []
    for line in source("src/panel/mod.rs").splitlines():
        m = re.match(r"^//! \| (`(?:GET|POST) [^|]*) \|", line)
        if m:
            pages += re.findall(r"`((?:GET|POST) [^`]+)`", m.group(1))
    return pages


def snapshot():
    out = {}
    for top in WATCHED:
        out.update(mr.snapshot_tree(top))
    return out


def changed(before, after):
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


def normalized(page, names=()):
    """A page as compared across names: each of the names given (whole,
    not inside a longer name or address) replaced by its place in the
    list, tokens (CSRF, stamps) by TOKEN."""
    def norm(text):
        for i, n in sorted(enumerate(names), key=lambda x: -len(x[1])):
            text = re.sub(rf"(?<![\w.@%-]){re.escape(n)}(?![\w.-])", f"NAME{i}", text)
            if urllib.parse.quote(n, safe="") != n:
                text = text.replace(urllib.parse.quote(n, safe=""), f"NAME{i}")
        return re.sub(r"[A-Za-z0-9_+/=-]{20,}", "TOKEN", text)
    return page.status, norm(page.header("location") or ""), norm(page.body)


class PanelSecurity(unittest.TestCase):
    """Apache serving the panel at /mail, and the box."""

    @classmethod
    def setUpClass(cls):
        why = px.missing()
        if why:
            raise unittest.SkipTest(why)
        if not netfix.available():
            raise unittest.SkipTest("needs dnsmasq, python3-aiosmtpd and openssl")
        if not px.Apache.available():
            raise unittest.SkipTest("apache2 is not installed")
        cls.shop = px.Shop(cls.addClassCleanup)
        # Every kind of object, on shop.example, made by the shell.
        px.admin("alias", "add", SALES, px.ORDERS)
        px.admin("forward", "set", px.SUPPORT, f"boss@{px.MOBILE}", "--keep-copy")
        px.admin("catchall", "set", px.SHOP, px.ORDERS)
        work = pf.workdir()
        with open(os.path.join(work, "reply.txt"), "w") as f:
            f.write("We got it.\n")
        px.admin("autoreply", "set", px.SUPPORT, "--subject", "Got it", "--body-file",
                 os.path.join(work, "reply.txt"))
        px.admin("list", "create", TEAM, "--owner", px.POSTMASTER)
        px.admin("list", "add", TEAM, px.ORDERS)
        with open(os.path.join(work, "rules"), "w") as f:
            f.write("if from contains newsletter then folder News\n")
        px.admin("filter", "set", px.SUPPORT, "--file", os.path.join(work, "rules"))
        pf.fresh_user(BOXADMIN, BOXADMIN_PW)
        with open(px.ROLES, "w") as f:
            f.write(f"# the box's admins\n{BOXADMIN}\n")
        cls.web = px.Apache().start()
        cls.addClassCleanup(cls.web.stop)

    def setUp(self):
        self.etc = mr.snapshot_etc_mail()
        self.accounts = mr.snapshot_files(mr.PASSWD_FILES)
        self.spool = mr.snapshot_tree(pf.SPOOL)
        self.clients = []

    def tearDown(self):
        mr.restore_etc_mail(self.etc)
        mr.restore_files(self.accounts)
        mr.restore_tree(pf.SPOOL, self.spool)

    def client(self):
        c = px.Client(self.web.base, self.shop.ca)
        self.clients.append(c)
        return c

    def logged_in(self, name, password):
        c = self.client()
        page = c.login(name, password)
        self.assertFalse(page.has_form("login"), f"{name} could not log in: {page.status}\n{page.body[:2000]}"
                         f"\n{self.web.log()}")
        return c

    def post(self, c, op, fields, csrf=True):
        """POST do/OP as a form would, with the session's token (csrf=True),
        none (False), or the token given (a string)."""
        data = list(fields.items())
        if csrf is True:
            data.append(("csrf", c.csrf()))
        elif csrf:
            data.append(("csrf", csrf))
        return c.request("POST", f"do/{op}", fields=data)

    # -- the contract, enumerated ------------------------------------------

    def test_every_operation_and_page_of_the_contract_has_a_case_here(self):
        ops = contract_ops()
        self.assertGreater(len(ops), 20, ops)
        self.assertEqual(sorted(set(ops)), sorted(set(CHANGES) | set(READS)),
                         "src/panel/protocol.rs and this test's CHANGES/READS differ")
        pages = contract_pages()
        self.assertGreater(len(pages), 10, pages)
        self.assertEqual(sorted(set(pages)), sorted(set(NAMED_PAGES) | set(UNNAMED_PAGES)),
                         "src/panel/mod.rs's pages and this test's NAMED_PAGES/UNNAMED_PAGES differ")

    # -- CSRF --------------------------------------------------------------

    def test_a_change_without_its_token_or_with_another_sessions_changes_nothing(self):
        admin = self.logged_in(px.POSTMASTER, px.POSTMASTER_PW)
        again = self.logged_in(px.POSTMASTER, px.POSTMASTER_PW)
        other = self.logged_in(px.OTHER_POSTMASTER, px.OTHER_POSTMASTER_PW)
        self.assertNotEqual(admin.csrf(), again.csrf(), "two sessions share one CSRF token")
        fields = {"address": f"forged@{px.SHOP}", "password": "Forged-Pw-123", "quota": ""}
        before = snapshot()
        for how, token in (("no token", False), ("an empty token", ""),
                           ("another user's session's token", other.csrf()),
                           ("another session's token of the same user", again.csrf()),
                           ("a made-up token", "A" * 43)):
            with self.subTest(how):
                self.post(admin, "mailbox.add", fields, csrf=token)
                self.assertEqual(changed(before, snapshot()), [], f"{how} changed something")
        # The control: the same post with the session's own token.
        page = self.post(admin, "mailbox.add", fields)
        self.assertIn(page.status, (200, 303), page.body[:2000])
        self.assertIn(f"forged@{px.SHOP}", px.admin("mailbox", "list").stdout.decode())

    # -- who may touch what -------------------------------------------------

    def attackers(self):
        return [("other.example's admin", self.logged_in(px.OTHER_POSTMASTER, px.OTHER_POSTMASTER_PW)),
                ("clerk, a mailbox user of shop.example", self.logged_in(px.CLERK, px.CLERK_PW))]

    def test_every_operation_on_shop_example_by_the_others_is_missing_and_changes_nothing(self):
        owner = self.logged_in(px.POSTMASTER, px.POSTMASTER_PW)
        for who, c in self.attackers():
            for op, (theirs, ghost) in CHANGES.items():
                with self.subTest(who=who, op=op):
                    before = snapshot()
                    attack = self.post(c, op, theirs)
                    self.assertEqual(changed(before, snapshot()), [], f"{who}: do/{op} changed files")
                    # Past the CSRF and origin checks, to the helper's own
                    # refusal: else this would prove nothing.
                    self.assertNotIn(attack.status, (403, 415), f"{who}: do/{op}: {attack.body[:1500]}")
                    if ghost:
                        missing = self.post(c, op, ghost)
                        self.assertEqual(normalized(attack, list(theirs.values())),
                                         normalized(missing, list(ghost.values())),
                                         f"{who}: do/{op} on shop.example's object answers otherwise "
                                         f"than on a name that does not exist")
        # The owner still sees everything as it was.
        page = owner.get(f"d/{px.SHOP}")
        for name in (px.SUPPORT, px.ORDERS, TEAM, SALES):
            self.assertIn(name, page.body)

    def test_every_page_naming_shop_example_is_missing_for_the_others(self):
        for who, c in self.attackers():
            for pattern, pairs in NAMED_PAGES.items():
                if isinstance(pairs, str):
                    continue
                for theirs, ghost in pairs:
                    with self.subTest(who=who, page=theirs):
                        before = snapshot()
                        a = c.get(theirs)
                        g = c.get(ghost)
                        self.assertEqual(changed(before, snapshot()), [])
                        names_a = re.findall(r"[\w.-]+@[\w.-]+|[\w-]+\.example", theirs)
                        names_g = re.findall(r"[\w.-]+@[\w.-]+|[\w-]+\.example", ghost)
                        self.assertEqual(normalized(a, names_a), normalized(g, names_g),
                                         f"{who}: {theirs} answers otherwise than {ghost}")
                        for secret in (px.SUPPORT, px.ORDERS, TEAM, SALES):
                            if secret not in theirs:
                                self.assertNotIn(secret, a.body, f"{who}: {theirs} shows {secret}")

    def test_pages_without_a_name_show_only_ones_own(self):
        for who, c, own in ((f"{px.OTHER}'s admin", self.logged_in(px.OTHER_POSTMASTER, px.OTHER_POSTMASTER_PW),
                             (px.OTHER,)),
                            ("clerk", self.logged_in(px.CLERK, px.CLERK_PW), (px.CLERK,))):
            for path in ("", "home", "domains", "me"):
                with self.subTest(who=who, page=path or "/"):
                    page = c.follow(c.get(path))
                    for secret in (px.SUPPORT, px.ORDERS, TEAM, SALES, px.POSTMASTER):
                        self.assertNotIn(secret, page.body, f"{who} sees {secret} at /{path}")
                    if who.startswith(px.OTHER):
                        self.assertNotIn(px.SHOP, page.body, f"{who} sees shop.example at /{path}")
        # The box admin sees both domains; a domain admin only theirs.
        box = self.logged_in(BOXADMIN, BOXADMIN_PW)
        page = box.get("domains")
        self.assertIn(px.SHOP, page.body)
        self.assertIn(px.OTHER, page.body)
        self.assertTrue(page.has_form("domain-add"))

    # -- XSS ----------------------------------------------------------------

    def assert_inert(self, page, where):
        low = page.body.lower()
        for raw in RAW:
            self.assertNotIn(raw.lower(), low, f"{where}: the payload came back as markup")

    def test_a_payload_in_every_text_field_comes_back_escaped(self):
        admin = self.logged_in(px.POSTMASTER, px.POSTMASTER_PW)
        box = self.logged_in(BOXADMIN, BOXADMIN_PW)
        clerk = self.logged_in(px.CLERK, px.CLERK_PW)
        # What a form's empty fields get when another field holds the
        # payload: values the CLI would take.
        fills = {"address": f"xss@{px.SHOP}", "password": "Xss-Pass-1234", "target": px.ORDERS,
                 "member": px.ORDERS, "quota": "10M", "subject": "hello", "text": "hello",
                 "rules": "if from contains x then keep", "domain": "xss.example",
                 "from": "", "until": "", "old": px.CLERK_PW, "new": "Xss-Pass-1234"}
        pages = [(admin, f"d/{px.SHOP}"), (admin, f"d/{px.SHOP}/m/{px.SUPPORT}"), (admin, f"d/{px.SHOP}/import"),
                 (box, "domains"), (clerk, "me")]
        tried = stored = 0
        for c, path in pages:
            page = c.get(path)
            for form in page.forms:
                if form.method != "post" or form.id in ("logout",):
                    continue
                for field in form.text_fields():
                    with self.subTest(page=path, form=form.id, field=field):
                        fresh = c.get(path)
                        f = fresh.form(form.id)
                        values = {n: fills[n] for n, v in f.values()
                                  if n in fills and (v == "" or v.startswith("@"))}
                        values[field] = PAYLOAD
                        before = mr.snapshot_etc_mail()
                        answer = c.post_form(fresh, f, values)
                        tried += 1
                        self.assert_inert(answer, f"answer to form#{form.id} {field}")
                        after = c.get(path)
                        self.assert_inert(after, f"{path} after form#{form.id} {field}")
                        now = mr.snapshot_etc_mail()
                        if any(f"<script>{MARK}".encode() in v for p, v in now.items() if before.get(p) != v):
                            # Taken as text: then it is shown, escaped.
                            stored += 1
                            self.assertRegex(after.body, rf"&lt;script&gt;{MARK}|&#x3C;script&#x3E;{MARK}")
                        # Each field on its own: what the post changed goes.
                        mr.restore_etc_mail(before)
        self.assertGreaterEqual(tried, 10)
        self.assertGreaterEqual(stored, 2, "no payload was taken as text: nothing was shown escaped")
        # The login form's name, too.
        c = self.client()
        page = c.submit(c.get(""), "login", {"name": PAYLOAD, "password": "x"})
        self.assert_inert(page, "the login form's answer")

    # -- sessions ------------------------------------------------------------

    def test_a_cookie_from_before_login_is_no_session_after_it(self):
        c = self.client()
        first = c.get("")
        self.assertTrue(first.has_form("login"))
        c.cookies[px.SESSION_COOKIE] = "planted-by-an-attacker-0123456789abcdef"
        before = dict(c.cookies)
        page = c.submit(first, "login", {"name": px.CLERK, "password": px.CLERK_PW})
        self.assertFalse(page.has_form("login"), page.body[:2000])
        session = c.cookies.get(px.SESSION_COOKIE)
        self.assertTrue(session)
        self.assertNotIn(session, before.values(), "the session kept a value from before login")
        for name, value in before.items():
            with self.subTest(cookie=name):
                jar = {px.SESSION_COOKIE: value}
                old = c.follow(c.get("home", cookies=jar), cookies=jar)
                self.assertTrue(old.has_form("login"), f"{name}={value} is a session:\n{old.body[:1500]}")
        self.assertFalse(c.follow(c.get("home")).has_form("login"))
        # Logout ends it on the server, not only in the browser.
        home = c.follow(c.get("home"))
        if home.has_form("logout"):
            c.submit(home, "logout")
        else:
            c.request("POST", "logout", fields=[("csrf", c.csrf(home))])
        jar = {px.SESSION_COOKIE: session}
        gone = c.follow(c.get("home", cookies=jar), cookies=jar)
        self.assertTrue(gone.has_form("login"), "the session outlived logout")

    def test_a_password_change_ends_the_old_session(self):
        c = self.logged_in(px.CLERK, px.CLERK_PW)
        old = c.cookies[px.SESSION_COOKIE]
        me = c.get("me")
        page = c.submit(me, "password-change", {"old": px.CLERK_PW, "new": "Clerk-Renewed-77"})
        self.assertFalse(page.has_form("login"), page.body[:2000])
        self.assertNotEqual(c.cookies.get(px.SESSION_COOKIE), old)
        jar = {px.SESSION_COOKIE: old}
        stale = c.follow(c.get("me", cookies=jar), cookies=jar)
        self.assertTrue(stale.has_form("login"), "the session from before the password change lives on")
        self.assertEqual(px.pop3_count(px.CLERK, "Clerk-Renewed-77"), 0)

    def test_login_failures_slow_down_as_pop3s_do(self):
        px.add_mailbox(f"slow@{px.SHOP}", "Slow-Pass-55")
        with open("/etc/mail/mailroom.conf", "a") as f:
            f.write("pop3_auth_fail_delay = 1s\n")
        times, answers = {}, {}
        # (An unknown name: not of shop.example, whose catch-all takes any.)
        for who, name in (("known", f"slow@{px.SHOP}"), ("unknown", f"nobody@{GHOST}")):
            c = self.client()
            times[who] = []
            for _ in range(2):
                page = c.get("")
                t = time.monotonic()
                answer = c.submit(page, "login", {"name": name, "password": "wrong-password"})
                times[who].append(time.monotonic() - t)
            self.assertTrue(answer.has_form("login"))
            answers[who] = normalized(answer, [name])
        for who, (first, second) in times.items():
            self.assertGreaterEqual(first, 0.95, (who, times))
            self.assertGreaterEqual(second, 1.95, (who, times))
            self.assertLess(second, 8, (who, times))
        self.assertLess(abs(times["known"][0] - times["unknown"][0]), 0.5, times)
        self.assertEqual(answers["known"], answers["unknown"], "a wrong password and an unknown name differ")
        # The right password still lets them in.
        self.logged_in(f"slow@{px.SHOP}", "Slow-Pass-55")

    # -- headers -------------------------------------------------------------

    def assert_headers(self, page):
        where = f"{page.status} {page.url}"
        csp = page.header("content-security-policy") or ""
        self.assertIn("frame-ancestors", csp, where)
        self.assertIn((page.header("x-frame-options") or "").upper(), ("DENY", "SAMEORIGIN"), where)
        self.assertEqual((page.header("x-content-type-options") or "").lower(), "nosniff", where)
        self.assertIn("no-store", (page.header("cache-control") or "").lower(), where)
        for v in page.all_headers("set-cookie"):
            name, _, attrs = px.parse_set_cookie(v)
            self.assertTrue(name.startswith("__Host-"), v)
            for a, want in (("httponly", True), ("secure", True), ("samesite", "Strict"), ("path", "/")):
                self.assertEqual(attrs.get(a), want, f"{where}: {v}")
            self.assertNotIn("domain", attrs, v)

    def every_kind_of_answer(self, base):
        """Requests that bring every kind of answer: the login form, a
        refused login, a login, each page, a change, an error, a page that
        does not exist, no session."""
        c = px.Client(base, self.shop.ca)
        pages = [c.get("")]
        pages.append(c.submit(pages[0], "login", {"name": px.POSTMASTER, "password": "wrong"}, follow=False))
        pages.append(c.submit(c.get(""), "login", {"name": px.POSTMASTER, "password": px.POSTMASTER_PW},
                              follow=False))
        for path in ("home", "domains", f"d/{px.SHOP}", f"d/{px.SHOP}/m/{px.SUPPORT}", f"d/{px.SHOP}/queue",
                     f"d/{px.SHOP}/import", "me", f"confirm/mailbox.remove?address={px.ORDERS}",
                     f"d/{GHOST}", "no/such/page"):
            pages.append(c.get(path))
        pages.append(self.post(c, "mailbox.quota", {"address": px.ORDERS, "quota": "not-a-size"}))
        pages.append(self.post(c, "mailbox.quota", {"address": px.ORDERS, "quota": "20M"}))
        pages.append(c.get("home", cookies={}))
        return pages

    def test_every_answer_carries_the_security_headers(self):
        for page in self.every_kind_of_answer(self.web.base):
            with self.subTest(page=f"{page.status} {page.url}"):
                self.assert_headers(page)

    def test_every_answer_on_the_own_port_carries_them_too(self):
        own = px.OwnPort().start()
        self.addCleanup(own.stop)
        for page in self.every_kind_of_answer(own.base):
            with self.subTest(page=f"{page.status} {page.url}"):
                self.assert_headers(page)

    def test_the_systemd_socket_unit_serves_it_too(self):
        if not mr.have("systemd-socket-activate", "systemd"):
            return
        import test_services
        unit = test_services.Activated("mailroom-panel")
        self.addCleanup(unit.stop)
        self.assertEqual((unit.port, unit.argv), (8443, [px.PANEL, "--inetd"]))
        c = px.Client("https://localhost:8443", self.shop.ca)
        page = c.get("")
        self.assertTrue(page.has_form("login"), f"{page.status} {page.body[:1000]}\n{unit.log()}")
        self.assert_headers(page)
        home = c.login(px.CLERK, px.CLERK_PW)
        self.assertIn(px.CLERK, home.body)


if __name__ == "__main__":
    unittest.main()
