"""Mail from the internet judged at the door (issue 19): DNS blocklists at
connect, SPF at MAIL, DKIM and DMARC at the end of DATA, and the one
Authentication-Results field the box writes on what it accepts.

The internet is another machine: a second network namespace joined to the
sandbox by a veth pair (compat/netfix.py OutsideHost).  Senders' servers
connect from there -- 198.51.100.7, and more addresses of 198.51.100.0/24
for a forwarder, a mailing list and clients on blocklists -- to the box at
198.51.100.1, where Debian's openbsd-inetd starts the installed
`sendmail -bs` on 25 and 587 (compat/sitefix.py).  Neither loopback nor
trusted: exactly the clients the checks are for.  The SMTP dialogues are
raw (netfix.OutsideHost.converse_all), so every reply is seen as sent.

dnsmasq serves the senders' zones (`ZONE` below): SPF records for each
SPF result, DKIM keys (RSA 2048 and Ed25519, made here; signatures made by
dkimpy), DMARC policies, a blocklist's A and TXT records, and a zone,
void.example, whose name server takes every query and never answers
(netfix.SilentDNS).  The box hosts shop.example (local-host-names); its
authserv-id is its host name, mx.example.test.

What a user sees, one scenario each:

* a client on a listed address gets `554 5.7.1` with the list's own text
  after the greet pause, logged with the list's name; an unlisted one is
  served; a 127.255.255.254 answer ("query refused") is no listing; the
  submission port and a `Connect:` OK client are never looked up; weights
  and an allow list add up; a list that never answers stops nobody;
* SPF pass, fail, softfail, neutral, none, permerror and temperror at MAIL
  FROM (and the HELO name for `<>`): `550 5.7.1` for fail, `451 4.7.0` for
  temperror, the rest accepted and marked -- and fail and temperror
  accepted and marked when the admin says so;
* a message signed by dkimpy with rsa-sha256 and with ed25519-sha256 is
  `dkim=pass`; the same with one body byte changed is `dkim=fail`;
* a DMARC p=reject failure is refused at the end of DATA; p=quarantine is
  filed into Spam (mbox ~/mail/Spam, Maildir ~/Maildir/.Spam);
* From: ceo@shop.example sent from outside is refused (filed into Spam
  with own_domain_forgery = quarantine); the CEO logged in on 587 from
  the same outside machine gets through;
* an Authentication-Results field claiming our authserv-id is removed
  (any case, trailing dot), a foreign one kept;
* `if auth dmarc is fail then folder Suspicious` files into that folder;
* DNS that never answers gives 451 at MAIL (SPF) and at the end of DATA
  (DMARC), never 250.

And, its own class: for 29 messages (signed, unsigned, forwarded, broken)
our Authentication-Results agrees with authheaders (python3-authheaders),
pyspf (python3-spf) and dkimpy (python3-dkim) run on the same message as
sent, the same connection facts and the same DNS (IndependentVerifiers).

Needs openbsd-inetd, dnsmasq, python3-aiosmtpd, openssl, util-linux
(nsenter, unshare), iproute2, python3-dkim, python3-nacl,
python3-dnspython, python3-authheaders, python3-authres, python3-spf
(.ci/run installs them).  Runs as root inside the compat sandbox.
"""

import base64
import email.utils
import mailbox
import os
import re
import shutil
import subprocess
import unittest
import uuid
import warnings

import mr
import netfix
import pop3fix as pf
import sitefix
import smtpfix as sf

try:
    import dkim
    import dns.resolver
    import nacl.signing
except ImportError:
    dkim = None
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # authheaders imports pkg_resources
        import authheaders
        import authheaders.findpsl
        import authres
        import authres.dmarc
        import spf  # noqa: F401  (authheaders' SPF check)
except ImportError:
    authheaders = None

HOST = mr.HOST                 # the box, and its authserv-id
SHOP = "shop.example"          # a domain the box hosts
O = netfix.OutsideHost
SERVER = O.SERVER4             # the box, seen from outside
SENDER_IP = O.CLIENT4          # the senders' mail server (198.51.100.7)
FORWARDER_IP = "198.51.100.8"  # a forwarder's and a mailing list's server
LISTED_IP = "198.51.100.66"    # on bl.example
REFUSED_IP = "198.51.100.67"   # bl.example answers 127.255.255.254 for it
MINOR_IP = "198.51.100.68"     # on spam.example only (weight 1)
VOUCHED_IP = "198.51.100.69"   # on bl.example and on the allow list
ELSEWHERE = "203.0.113.5"      # the only server some domains allow
PASSWORD = "Ceo-inbound-pw"
LISTING_TEXT = "Listed by bl.example: see http://bl.example/query?ip=198.51.100.66"
FILTER = "if auth dmarc is fail then folder Suspicious\n"
SIGNED_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id"]


# ---------------------------------------------------------------------------
# Keys and zones


class Key:
    """A DKIM key made here: `private` as dkimpy signs with it, `record`
    the TXT record that publishes it."""

    def __init__(self, kind):
        self.kind = kind
        if kind == "rsa":
            self.private = subprocess.run(
                ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                capture_output=True, check=True).stdout
            der = subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"],
                                 input=self.private, capture_output=True, check=True).stdout
            self.algorithm = b"rsa-sha256"
            self.record = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
        else:
            sk = nacl.signing.SigningKey.generate()
            self.private = base64.b64encode(bytes(sk))
            self.algorithm = b"ed25519-sha256"
            self.record = "v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(sk.verify_key)).decode()


_keys = {}


def keys():
    """The keys, made once per process: signed.example's RSA (also
    strict.example's) and Ed25519, and esp.example's RSA."""
    if not _keys:
        _keys.update(rsa=Key("rsa"), ed=Key("ed25519"), esp=Key("rsa"))
    return _keys


def zone():
    """The records the senders and the box publish: keyword arguments of
    sitefix.Site (mx, hosts, txt, addresses)."""
    k = keys()
    txt = {
        # SPF, one domain per result.
        "spfpass.example": f"v=spf1 ip4:{SENDER_IP} -all",
        "mail.spfpass.example": "v=spf1 a -all",  # the HELO name (for <>)
        "spffail.example": f"v=spf1 ip4:{ELSEWHERE} exp=why.spffail.example -all",
        "why.spffail.example": "%{d} sends mail only from its own servers",
        "spfsoftfail.example": f"v=spf1 ip4:{ELSEWHERE} ~all",
        "spfneutral.example": "v=spf1 ?all",
        "spfnone.example": "site-verification=4f2c9a17",  # a TXT record, not SPF
        "spfpermerror.example": [f"v=spf1 ip4:{SENDER_IP} -all", "v=spf1 -all"],  # two: permerror
        "spfinclude.example": "v=spf1 include:_spf.esp.example -all",
        "spfbadinclude.example": "v=spf1 include:nospf.example -all",  # include of nothing
        # signed.example: SPF, DKIM keys (one revoked), DMARC reject.
        "signed.example": f"v=spf1 ip4:{SENDER_IP} -all",
        "rsa2026._domainkey.signed.example": k["rsa"].record,
        "ed2026._domainkey.signed.example": k["ed"].record,
        "old._domainkey.signed.example": "v=DKIM1; k=rsa; p=",
        "_dmarc.signed.example": "v=DMARC1; p=reject",
        # An email service provider: sends from its servers, signs as itself.
        "esp.example": f"v=spf1 ip4:{SENDER_IP} -all",
        "_spf.esp.example": "v=spf1 ip4:198.51.100.0/24 -all",
        "esp1._domainkey.esp.example": k["esp"].record,
        # DMARC policies of domains that send nothing from here.
        "bank.example": f"v=spf1 ip4:{ELSEWHERE} -all",
        "_dmarc.bank.example": "v=DMARC1; p=reject",
        "_dmarc.news.example": "v=DMARC1; p=quarantine",
        "_dmarc.monitor.example": "v=DMARC1; p=none",
        "_dmarc.strict.example": "v=DMARC1; p=reject; adkim=s; aspf=s",
        "s1._domainkey.strict.example": k["rsa"].record,
        # A mailing list's server.
        "list.example": f"v=spf1 ip4:{FORWARDER_IP} -all",
        # Blocklists and an allow list.
        "66.100.51.198.bl.example": LISTING_TEXT,
        "67.100.51.198.bl.example": "Query refused: use your own resolver",
    }
    addresses = {
        "mail.spfpass.example": SENDER_IP,
        "66.100.51.198.bl.example": "127.0.0.2",
        "67.100.51.198.bl.example": "127.255.255.254",
        "69.100.51.198.bl.example": "127.0.0.4",
        "68.100.51.198.spam.example": "127.0.0.2",
        "69.100.51.198.wl.example": "127.0.10.3",
    }
    # The box: its name (its SRS addresses are under it) and its domain
    # exist, as a sender's domain must (553 5.1.8 otherwise).
    return dict(mx={SHOP: HOST, HOST: HOST}, hosts={HOST: SERVER}, txt=txt, addresses=addresses)


# ---------------------------------------------------------------------------
# Messages


def message(sender, to, subject, body="Hello from the internet.\r\n", extra=()):
    """A message as a mail program writes it (CRLF line ends), with a
    Message-ID of its own (how its delivered copy is found)."""
    domain = email.utils.parseaddr(sender)[1].rpartition("@")[2] or "nowhere.example"
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}",
             f"Date: {email.utils.formatdate()}", f"Message-ID: <{uuid.uuid4().hex}@{domain}>",
             *extra, "", ""]
    return "\r\n".join(lines).encode() + body.encode()


def message_id(data):
    m = re.search(rb"(?mi)^Message-ID:\s*(<[^>]+>)", sf.split(data)[0])
    return m.group(1).decode() if m else None


def sign(data, key, domain, selector, canonicalize=(b"relaxed", b"relaxed"), length=False):
    """`data` with a DKIM-Signature by dkimpy on top."""
    sig = dkim.sign(data, selector.encode(), domain.encode(), key.private,
                    canonicalize=canonicalize, signature_algorithm=key.algorithm,
                    include_headers=list(SIGNED_HEADERS), length=length)
    return sig + data


def change_body_byte(data):
    """One byte of the body changed (its first letter)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    i = re.search(rb"[A-Za-z]", body).start()
    return head + sep + body[:i] + (b"X" if body[i:i + 1] != b"X" else b"Y") + body[i + 1:]


def break_signature(data):
    """The top signature's b= with its first character changed."""
    m = re.search(rb"[;\s]b=\s*([A-Za-z0-9+/])", data)
    i = m.start(1)
    return data[:i] + (b"A" if data[i:i + 1] != b"A" else b"B") + data[i + 1:]


def signature_tags(data):
    """The tags of each DKIM-Signature, top first."""
    out = []
    for v in sf.all_headers(data, "DKIM-Signature"):
        tags = {}
        for part in v.split(";"):
            if "=" in part:
                name, _, value = part.partition("=")
                tags[name.strip()] = re.sub(r"\s+", "", value)
        out.append(tags)
    return out


# ---------------------------------------------------------------------------
# Authentication-Results


def authserv_id(value):
    """The authserv-id of a field value (comments around it dropped)."""
    words = re.sub(r"\([^()]*\)", " ", value.split(";", 1)[0]).split()
    return words[0] if words else ""


def is_ours(value):
    """Does this field value carry our authserv-id (RFC 8601 §5: compared
    case-insensitively, a trailing dot ignored)?"""
    return authserv_id(value).rstrip(".").lower() == HOST


class Results:
    """One Authentication-Results field, parsed by authres (Debian
    python3-authres, an RFC 8601 parser of its own): `methods` is
    [(method, result, {"ptype.property": value}, reason)]."""

    def __init__(self, value):
        self.raw = value
        parsed = authres.FeatureContext(authres.dmarc).parse("Authentication-Results: " + value)
        self.authserv_id = parsed.authserv_id
        self.methods = [(r.method, r.result, {f"{p.type}.{p.name}": p.value for p in r.properties},
                         r.reason) for r in parsed.results]

    def all(self, method):
        return [(r, props) for m, r, props, _ in self.methods if m == method]

    def one(self, method):
        got = self.all(method)
        if len(got) != 1:
            raise AssertionError(f"{len(got)} {method} results in: {self.raw}")
        return got[0]

    def __repr__(self):
        return self.raw


# ---------------------------------------------------------------------------
# The world


class FromTheInternet(mr.Case):
    """The box, its DNS and the outside machine, made per scenario; users
    and mailboxes read back."""

    CONFIG = ""
    REMOTES = {}

    @classmethod
    def setUpClass(cls):
        absent = sf.missing(sf.INETD, sf.SENDMAIL, "/usr/bin/nsenter", "/usr/bin/unshare")
        if absent:
            raise unittest.SkipTest(f"not installed: {' '.join(absent)}")
        if not netfix.available():
            raise unittest.SkipTest("needs dnsmasq, python3-aiosmtpd and openssl")
        if dkim is None:
            raise unittest.SkipTest("needs python3-dkim, python3-nacl and python3-dnspython")
        keys()

    def setUp(self):
        super().setUp()
        # Debian's dkimpy calls dnspython's old query().
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        self.configure(self.CONFIG)
        with open("/etc/mail/local-host-names", "a") as f:
            f.write(f"\n{SHOP}\n")
        self.site = sitefix.Site(self.addCleanup, remotes=self.REMOTES, silent_zones=("void.example",),
                                 outside=True, tls=True, **zone())
        self.outside = self.site.outside
        for a in (FORWARDER_IP, LISTED_IP, REFUSED_IP, MINOR_IP, VOUCHED_IP):
            self.outside.add_address(a)
        # dnspython (dkimpy, pyspf, authheaders) reads resolv.conf afresh.
        dns.resolver.reset_default_resolver()
        self.dns_mark = len(self.site.dns.log())

    def dns_queries(self):
        """dnsmasq's log of the queries asked in this scenario."""
        return self.site.dns.log()[self.dns_mark:]

    def configure(self, extra):
        """mailroom.conf: the network scenarios' lines, the checks on (as
        they are by default; sitefix turns them off for the scenarios
        about other things), then `extra`."""
        sitefix.configure("inbound_checks = yes\nsmtp_auth_fail_delay = 0\n" + extra)

    def log(self):
        return self.site.log()

    # -- users and mailboxes ---------------------------------------------------

    def user(self, name, maildir=False, rules=None):
        """A user with an empty mailbox and no folders; `rules`: the text
        of ~/.mailroom-filter."""
        pw = pf.fresh_user(name, PASSWORD, maildir=maildir)
        for p in (".mailroom-filter", "mail"):
            path = os.path.join(pw.pw_dir, p)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.unlink(path)
        if rules is not None:
            path = os.path.join(pw.pw_dir, ".mailroom-filter")
            with open(path, "w") as f:
                f.write(rules)
            os.chown(path, pw.pw_uid, pw.pw_gid)
        return pw

    def mailbox(self, user, folder=None):
        """The messages in a user's inbox or folder, wherever they are
        kept: the spool mbox or ~/Maildir/ for the inbox, ~/mail/FOLDER or
        ~/Maildir/.FOLDER/ for a folder (compat/test_filters.py)."""
        home = os.path.expanduser(f"~{user}")
        md = os.path.join(home, "Maildir")
        if os.path.isdir(md):
            d = md if folder is None else os.path.join(md, "." + folder)
            out = []
            for sub in ("new", "cur"):
                p = os.path.join(d, sub)
                for f in sorted(os.listdir(p)) if os.path.isdir(p) else []:
                    with open(os.path.join(p, f), "rb") as fh:
                        out.append(fh.read())
            return out
        if folder is None:
            return sf.messages(user)
        path = os.path.join(home, "mail", folder)
        if not os.path.exists(path):
            return []
        box = mailbox.mbox(path, create=False)
        try:
            return [pf.mbox_unquote(box.get_bytes(k)) for k in box.keys()]
        finally:
            box.close()

    def wait_for(self, user, data, folder=None, timeout=60):
        """The delivered copy of `data` (found by its Message-ID and its
        body: a copy with one body byte changed is another message) in the
        user's inbox or folder, once it is there."""
        mid = message_id(data).encode()
        body = sf.split(data)[1].replace(b"\r\n", b"\n").rstrip(b"\n")

        def find():
            return [m for m in self.mailbox(user, folder)
                    if mid in sf.split(m)[0] and sf.split(m)[1].rstrip(b"\n") == body]
        got = sf.wait_until(find, timeout, step=0.1)
        self.assertTrue(got, f"{mid!r} not in {user}'s {folder or 'inbox'}\n"
                             f"queue:\n{sf.mailq()}\nlog:\n{self.log()}")
        return got[0]

    def assert_nowhere(self, user, data, folders=("Spam",)):
        """Not in the queue, the user's inbox or its folders."""
        mid = message_id(data).encode()
        for folder in (None,) + tuple(folders):
            self.assertFalse([m for m in self.mailbox(user, folder) if mid in m],
                             f"{mid!r} reached {user}'s {folder or 'inbox'}")
        for f in os.listdir(mr.QUEUE):
            try:
                with open(os.path.join(mr.QUEUE, f), "rb") as fh:
                    queued = f.startswith("df") and mid in fh.read()
            except (FileNotFoundError, IsADirectoryError):
                continue  # delivered meanwhile
            self.assertFalse(queued, f"{mid!r} is queued")

    def ours(self, delivered):
        """Our Authentication-Results in a delivered copy: there is
        exactly one field with our authserv-id, and it is the first
        Authentication-Results field."""
        fields = sf.all_headers(delivered, "Authentication-Results")
        mine = [v for v in fields if is_ours(v)]
        self.assertEqual(len(mine), 1, f"fields with our authserv-id: {mine}\n"
                                       f"{delivered.decode(errors='replace')}")
        self.assertEqual(fields[0], mine[0], "ours is not the topmost Authentication-Results")
        return Results(mine[0])

    # -- SMTP from outside -----------------------------------------------------

    def converse(self, steps, source=SENDER_IP, port=25):
        """One SMTP session from outside: the greeting, then the reply to
        each step."""
        return self.outside.converse_all([{"steps": steps, "source": source, "port": port,
                                           "cafile": self.site.ca}])[0]

    def send_all(self, mails):
        """Sessions from outside, one message each, one after another:
        `mails` are dicts of data, mail_from, rcpts (default
        alice@shop.example), source (default SENDER_IP), helo (default
        mail.spfpass.example), port (25), login (user: AUTH PLAIN after
        STARTTLS).  Returns per session a dict of the replies: greeting,
        mail, rcpt (a list), data (to DATA), end (to the message), quit."""
        sessions, labels = [], []
        for m in mails:
            helo = m.get("helo", "mail.spfpass.example")
            steps = [("ehlo", f"EHLO {helo}")]
            if m.get("login"):
                plain = base64.b64encode(f"\0{m['login']}\0{PASSWORD}".encode()).decode()
                steps += [("starttls", "STARTTLS"), ("ehlo", f"EHLO {helo}"),
                          ("auth", f"AUTH PLAIN {plain}")]
            steps += [("mail", f"MAIL FROM:<{m['mail_from']}>")]
            steps += [("rcpt", f"RCPT TO:<{r}>") for r in m.get("rcpts", [f"alice@{SHOP}"])]
            steps += [("data", "DATA"), ("end", "DATA:" + base64.b64encode(m["data"]).decode()),
                      ("quit", "QUIT")]
            sessions.append({"steps": [c for _, c in steps], "source": m.get("source", SENDER_IP),
                             "port": m.get("port", 25), "cafile": self.site.ca})
            labels.append(["greeting"] + [label for label, _ in steps])
        out = []
        for names, replies in zip(labels, self.outside.converse_all(sessions)):
            r = {"auth": None, "rcpt": []}
            for name, reply in zip(names, replies):
                if name == "rcpt":
                    r["rcpt"].append(reply)
                else:
                    r[name] = reply
            out.append(r)
        return out

    def send(self, data, mail_from, **kw):
        return self.send_all([dict(kw, data=data, mail_from=mail_from)])[0]

    def assert_accepted(self, replies):
        self.assertTrue((replies["end"] or "").startswith("250 "),
                        f"{replies}\nlog:\n{self.log()}")


# ---------------------------------------------------------------------------
# Blocklists at connect


class BlocklistsAtConnect(FromTheInternet):
    CONFIG = "dnsbl = bl.example\n"

    def test_a_client_on_a_listed_address_is_refused_with_the_lists_text_and_others_are_served(self):
        self.user("alice")
        # Listed: 554 with the list's TXT text, after the greet pause;
        # QUIT is still answered.
        got = self.converse(["QUIT"], source=LISTED_IP)
        self.assertEqual(got[0], f"554 5.7.1 Service unavailable; client [{LISTED_IP}] "
                                 f"blocked using bl.example; {LISTING_TEXT}")
        self.assertTrue(got[1].startswith("221"), got)
        self.assertIn(f"rejecting connection from [{LISTED_IP}]: listed by bl.example "
                      f"(weight 1 of 1): {LISTING_TEXT}", self.log())
        # Not listed (NXDOMAIN): served, the message delivered.
        data = message("Alice <alice@spfpass.example>", f"alice@{SHOP}", "Not listed")
        self.assert_accepted(self.send(data, "alice@spfpass.example"))
        self.wait_for("alice", data)
        # 127.255.255.254 is the list saying "query refused", not "listed".
        # (spfinclude.example's servers are all of 198.51.100.0/24.)
        data = message("Alice <alice@spfinclude.example>", f"alice@{SHOP}", "Error code")
        r = self.send(data, "alice@spfinclude.example", source=REFUSED_IP)
        self.assertTrue(r["greeting"].startswith("220 "), r)
        self.assert_accepted(r)
        self.wait_for("alice", data)
        # Each was looked up (this is no test of a list nobody asked).
        queries = self.dns_queries()
        for ip in (LISTED_IP, SENDER_IP, REFUSED_IP):
            name = ".".join(reversed(ip.split("."))) + ".bl.example"
            self.assertIn(f"query[A] {name} from", queries)
        self.assertNotIn(f"rejecting connection from [{REFUSED_IP}]", self.log())

    def test_the_submission_port_and_a_connect_ok_client_are_never_looked_up(self):
        # 587: a customer on a dynamic address is on a PBL by design.
        got = self.converse(["QUIT"], source=LISTED_IP, port=587)
        self.assertTrue(got[0].startswith("220 "), got)
        # Connect: OK in /etc/mail/access (an admin vouching for a client).
        with open("/etc/mail/access", "a") as f:
            f.write(f"\nConnect:{LISTED_IP}\tOK\n")
        got = self.converse(["QUIT"], source=LISTED_IP)
        self.assertTrue(got[0].startswith("220 "), got)
        self.assertNotIn("66.100.51.198.bl.example", self.dns_queries())

    def test_weights_and_an_allow_list_add_up_to_the_threshold(self):
        self.configure("dnsbl = bl.example*2 spam.example\ndnswl = wl.example*2\n"
                       "dnsbl_threshold = 2\n")
        got = {ip: self.converse(["QUIT"], source=ip)[0]
               for ip in (LISTED_IP, MINOR_IP, VOUCHED_IP)}
        self.assertEqual(got[LISTED_IP], f"554 5.7.1 Service unavailable; client [{LISTED_IP}] "
                                         f"blocked using bl.example; {LISTING_TEXT}")
        self.assertTrue(got[MINOR_IP].startswith("220 "), f"weight 1 of 2: {got}")
        self.assertTrue(got[VOUCHED_IP].startswith("220 "), f"2 - 2 of 2: {got}")
        self.assertIn(f"rejecting connection from [{LISTED_IP}]: listed by bl.example "
                      f"(weight 2 of 2): {LISTING_TEXT}", self.log())

    def test_a_list_that_never_answers_stops_nobody(self):
        self.configure("dnsbl = bl.void.example\n")
        got = self.converse(["QUIT"], source=LISTED_IP)
        self.assertTrue(got[0].startswith("220 "), got)
        self.assertGreater(self.site.silent.queries, 0, "the list was never asked")


# ---------------------------------------------------------------------------
# SPF at MAIL


SPF_REFUSED = {
    "fail": "550 5.7.1 SPF: spffail.example does not allow 198.51.100.7 to send its mail: "
            "spffail.example sends mail only from its own servers",
    "temperror": "451 4.7.0 Temporary DNS failure checking the SPF record of spf.void.example; "
                 "try again later",
}
# result: (MAIL FROM, HELO); the null sender is checked by its HELO name.
SPF_SENDERS = {
    "pass": ("alice@spfpass.example", "mail.spfpass.example"),
    "fail": ("alice@spffail.example", "mail.spfpass.example"),
    "softfail": ("alice@spfsoftfail.example", "mail.spfpass.example"),
    "neutral": ("alice@spfneutral.example", "mail.spfpass.example"),
    "none": ("alice@spfnone.example", "mail.spfpass.example"),
    "permerror": ("alice@spfpermerror.example", "mail.spfpass.example"),
    "temperror": ("alice@spf.void.example", "mail.spfpass.example"),
    "pass for <>": ("", "mail.spfpass.example"),
}


class SpfAtMail(FromTheInternet):
    def send_each(self):
        """One message per SPF result; {result: (message, replies)}."""
        mails = []
        for result, (sender, helo) in SPF_SENDERS.items():
            author = sender or f"postmaster@{helo}"
            mails.append(dict(data=message(f"Alice <{author}>", f"alice@{SHOP}", f"SPF {result}"),
                              mail_from=sender, helo=helo))
        replies = self.send_all(mails)
        return {result: (m["data"], r) for result, m, r in zip(SPF_SENDERS, mails, replies)}

    def assert_marked(self, result, data):
        sender, helo = SPF_SENDERS[result]
        got = self.ours(self.wait_for("alice", data)).one("spf")
        want = ({"smtp.helo": helo} if not sender else {"smtp.mailfrom": sender})
        self.assertEqual(got, (result.split()[0], want), result)

    def test_each_spf_result_gets_its_reply_and_its_header(self):
        self.user("alice")
        sent = self.send_each()
        for result, (data, r) in sent.items():
            with self.subTest(result=result):
                if result in SPF_REFUSED:
                    self.assertEqual(r["mail"], SPF_REFUSED[result])
                    self.assertIsNone(r["end"], r)
                else:
                    self.assertTrue(r["mail"].startswith("250 "), r)
                    self.assert_accepted(r)
                    self.assert_marked(result, data)
        for result in SPF_REFUSED:
            self.assert_nowhere("alice", sent[result][0])

    def test_fail_and_temperror_are_accepted_and_marked_when_the_admin_says_so(self):
        self.configure("spf_fail = mark\ndns_failure = accept\n")
        self.user("alice")
        sent = self.send_each()
        for result, (data, r) in sent.items():
            with self.subTest(result=result):
                self.assert_accepted(r)
                self.assert_marked(result, data)


# ---------------------------------------------------------------------------
# DKIM and DMARC at the end of DATA


class DkimAndDmarcAtData(FromTheInternet):
    def test_dkimpy_signatures_rsa_and_ed25519_pass_and_one_changed_body_byte_fails(self):
        self.user("alice")
        k = keys()
        mails = []
        for key, selector in ((k["rsa"], "rsa2026"), (k["ed"], "ed2026")):
            signed = sign(message("Alice <alice@signed.example>", f"alice@{SHOP}",
                                  f"Signed {selector}"), key, "signed.example", selector)
            mails.append(dict(data=signed, mail_from="alice@signed.example", want="pass",
                              selector=selector, algorithm=key.algorithm.decode()))
            mails.append(dict(mails[-1], data=change_body_byte(signed), want="fail"))
        replies = self.send_all(mails)
        for m, r in zip(mails, replies):
            with self.subTest(selector=m["selector"], want=m["want"]):
                self.assert_accepted(r)
                got = self.ours(self.wait_for("alice", m["data"]))
                (result, props), = got.all("dkim")
                b = signature_tags(m["data"])[0]["b"]
                self.assertEqual((result, props.get("header.d"), props.get("header.s"),
                                  props.get("header.a"), props.get("header.b")),
                                 (m["want"], "signed.example", m["selector"], m["algorithm"], b[:8]),
                                 got)
                # SPF passes aligned: DMARC passes either way.
                self.assertEqual(got.one("dmarc")[0], "pass", got)

    def test_a_p_reject_failure_is_refused_at_the_end_of_data(self):
        self.user("alice")
        phish = message("Security <security@bank.example>", f"alice@{SHOP}",
                        "Your account is locked")
        fine = message("Alice <alice@spfpass.example>", f"alice@{SHOP}", "Lunch?")
        r, ok = self.send_all([dict(data=phish, mail_from="alice@spfpass.example"),
                               dict(data=fine, mail_from="alice@spfpass.example")])
        self.assertTrue(r["mail"].startswith("250 ") and r["rcpt"][0].startswith("250 "), r)
        self.assertTrue(r["data"].startswith("354"), r)
        self.assertEqual(r["end"], "550 5.7.1 Unauthenticated mail from bank.example is not "
                                   "accepted: its domain's DMARC policy is reject")
        self.assertTrue(r["quit"].startswith("221"), r)
        self.assert_accepted(ok)
        self.wait_for("alice", fine)
        self.assert_nowhere("alice", phish)

    def test_a_p_quarantine_failure_is_filed_in_spam(self):
        self.user("qmbox")
        self.user("qmaildir", maildir=True)
        offer = message("Offers <offers@news.example>", f"qmbox@{SHOP}", "Great offer")
        r = self.send(offer, "alice@spfpass.example", rcpts=[f"qmbox@{SHOP}", f"qmaildir@{SHOP}"])
        self.assert_accepted(r)
        for user in ("qmbox", "qmaildir"):
            with self.subTest(user=user):
                got = self.ours(self.wait_for(user, offer, folder="Spam"))
                self.assertEqual(got.one("dmarc"), ("fail", {"header.from": "news.example",
                                                             "policy.dmarc": "quarantine"}))
                self.assertIn("(p=quarantine)", got.raw)
                self.assertEqual(self.mailbox(user), [], "the inbox")
        self.assertTrue(os.path.isfile(os.path.expanduser("~qmaildir/Maildir/.Spam/maildirfolder")))

    def test_a_forged_ceo_from_outside_is_refused_and_the_ceo_logged_in_on_587_gets_through(self):
        self.user("accounts")
        self.user("ceo")
        text = "Please wire 48,000 EUR to the account below today.\r\n"
        forged = [message(f"CEO <ceo@{SHOP}>", f"accounts@{SHOP}", "Urgent transfer", text)
                  for _ in range(2)]
        real = message(f"CEO <ceo@{SHOP}>", f"accounts@{SHOP}", "Urgent transfer", text)
        rcpt = [f"accounts@{SHOP}"]
        replies = self.send_all([
            # The phisher's own domain passes SPF; the From: is ours.
            dict(data=forged[0], mail_from="billing@spfpass.example", rcpts=rcpt),
            # Or the envelope is ours too (shop.example publishes no SPF
            # and no DMARC record).
            dict(data=forged[1], mail_from=f"ceo@{SHOP}", rcpts=rcpt),
            # The CEO, logged in on 587, from the same outside machine.
            dict(data=real, mail_from=f"ceo@{SHOP}", rcpts=rcpt, port=587, login="ceo"),
        ])
        refusal = f"550 5.7.1 Mail from {SHOP} must come from this server's own users: log in to send it"
        for i, r in enumerate(replies[:2]):
            with self.subTest(forged=i):
                self.assertTrue(r["mail"].startswith("250 "), r)
                self.assertEqual(r["end"], refusal)
        r = replies[2]
        self.assertTrue(r["auth"].startswith("235"), r)
        self.assert_accepted(r)
        got = self.wait_for("accounts", real)
        for v in sf.all_headers(got, "Authentication-Results"):
            self.assertNotRegex(v, r"=(fail|softfail|permerror|temperror)\b", v)
        for data in forged:
            self.assert_nowhere("accounts", data)

    def test_with_own_domain_forgery_quarantine_the_forged_ceo_lands_in_spam(self):
        self.configure("own_domain_forgery = quarantine\n")
        self.user("accounts", maildir=True)
        forged = message(f"CEO <ceo@{SHOP}>", f"accounts@{SHOP}", "Urgent transfer")
        self.assert_accepted(self.send(forged, "billing@spfpass.example", rcpts=[f"accounts@{SHOP}"]))
        got = self.ours(self.wait_for("accounts", forged, folder="Spam"))
        # No DMARC record, yet a failure: this box's own domain.
        self.assertEqual(got.one("dmarc"), ("fail", {"header.from": SHOP, "policy.dmarc": "quarantine"}))
        self.assertEqual(got.one("spf"), ("pass", {"smtp.mailfrom": "billing@spfpass.example"}))
        self.assertEqual(self.mailbox("accounts"), [], "the inbox")

    def test_a_forged_authentication_results_with_our_id_is_removed_and_a_foreign_one_kept(self):
        self.user("alice")
        foreign = "mx.google.example; spf=pass smtp.mailfrom=alice@spfpass.example"
        data = message("Alice <alice@spfpass.example>", f"alice@{SHOP}", "Trust me", extra=[
            f"Authentication-Results: {HOST}; spf=pass smtp.mailfrom=ceo@bank.example;",
            "\tdkim=pass header.d=bank.example; dmarc=pass header.from=bank.example",
            f"Authentication-Results: {HOST.upper()}.; dmarc=pass header.from=bank.example",
            f"Authentication-Results: (a comment) {HOST} ; dkim=pass header.d=bank.example",
            f"Authentication-Results: {foreign}",
        ])
        self.assert_accepted(self.send(data, "alice@spfpass.example"))
        got = self.wait_for("alice", data)
        fields = sf.all_headers(got, "Authentication-Results")
        self.assertNotIn("bank.example", "\n".join(fields))
        self.assertIn(foreign, fields)
        ours = self.ours(got)
        self.assertEqual(ours.one("spf"), ("pass", {"smtp.mailfrom": "alice@spfpass.example"}))
        self.assertEqual(ours.one("dkim")[0], "none")
        self.assertEqual(ours.one("dmarc")[0], "none")

    def test_a_users_rule_if_auth_dmarc_is_fail_files_into_a_folder(self):
        self.user("fuser", maildir=True, rules=FILTER)
        # monitor.example says p=none: the box lets it through, the rule
        # does not.
        failing = message("Monitor <alerts@monitor.example>", f"fuser@{SHOP}", "Alert")
        passing = message("Alice <alice@signed.example>", f"fuser@{SHOP}", "Signed")
        passing = sign(passing, keys()["rsa"], "signed.example", "rsa2026")
        for r in self.send_all([dict(data=failing, mail_from="alice@spfpass.example",
                                     rcpts=[f"fuser@{SHOP}"]),
                                dict(data=passing, mail_from="alice@signed.example",
                                     rcpts=[f"fuser@{SHOP}"])]):
            self.assert_accepted(r)
        got = self.ours(self.wait_for("fuser", failing, folder="Suspicious"))
        self.assertEqual(got.one("dmarc"), ("fail", {"header.from": "monitor.example",
                                                     "policy.dmarc": "none"}))
        got = self.ours(self.wait_for("fuser", passing))
        self.assertEqual(got.one("dmarc")[0], "pass")
        self.assertEqual(len(self.mailbox("fuser", "Suspicious")), 1)


# ---------------------------------------------------------------------------
# DNS that never answers


class DnsThatNeverAnswers(FromTheInternet):
    def test_a_lookup_that_never_answers_gives_451_never_250(self):
        self.user("alice")
        at_mail = message("Alice <alice@spf.void.example>", f"alice@{SHOP}", "SPF unanswered")
        at_data = message("Boss <boss@dmarc.void.example>", f"alice@{SHOP}", "DMARC unanswered")
        r1, r2 = self.send_all([dict(data=at_mail, mail_from="alice@spf.void.example"),
                                dict(data=at_data, mail_from="alice@spfpass.example")])
        self.assertEqual(r1["mail"], SPF_REFUSED["temperror"])
        self.assertIsNone(r1["end"], r1)
        self.assertTrue(r2["mail"].startswith("250 "), r2)
        self.assertTrue((r2["end"] or "").startswith("451 4.7.0 "), r2)
        self.assertIn("dmarc.void.example", r2["end"])
        self.assertGreater(self.site.silent.queries, 0)
        for data in (at_mail, at_data):
            self.assert_nowhere("alice", data)


# ---------------------------------------------------------------------------
# Independent verifiers


def dkimpy_verdicts(data):
    """[(d, s, result)] for each DKIM-Signature, by dkimpy, in RFC 8601's
    words: a key that is absent, revoked (`p=`) or unparsable is
    `permerror` (RFC 6376 §6.1.2: PERMFAIL, the key); a body hash or
    signature that does not verify is `fail` (§6.1.3: the signature
    failed verification); no DNS answer is `temperror`.  (authheaders
    calls all of these `fail`, and checks only the first signature.)"""
    out = []
    for idx, tags in enumerate(signature_tags(data)):
        d, s = tags.get("d", "").lower(), tags.get("s", "")
        try:
            dkim.load_pk_from_dns(f"{s}._domainkey.{d}.".encode())
        except dkim.KeyFormatError:
            out.append((d, s, "permerror"))
            continue
        except (dkim.DnsTimeoutError, dns.exception.DNSException):
            out.append((d, s, "temperror"))
            continue
        try:
            ok = dkim.DKIM(data).verify(idx=idx)
        except dkim.ValidationError as e:
            if "body hash mismatch" not in str(e):
                raise
            ok = False
        out.append((d, s, "pass" if ok else "fail"))
    return out


def independent(data, ip, mail_from, helo):
    """What the independent verifiers say about a message as sent:
    {"spf": (result, domain), "dkim": sorted [(d, s, result)], "dmarc":
    (result, header.from or "")}.

    authheaders.authenticate_message runs pyspf and dkimpy and judges
    DMARC (RFC 7489, its organizational domain from the public suffix
    list).  For the null sender it is given postmaster@HELO, the identity
    RFC 7208 §2.4 checks (authheaders cannot align an empty MAIL FROM).
    It verifies the first signature only: each signature is verified by
    dkimpy, and where the first does not make DMARC pass, every other
    passing signature is tried through authheaders' own DMARC check
    (RFC 7489 §4.2: any aligned pass will do)."""
    sender = mail_from or f"postmaster@{helo}"
    field = authheaders.authenticate_message(data, HOST, spf=True, dkim=True, dmarc=True,
                                             ip=ip, mail_from=sender, helo=helo)
    theirs = Results(field.split(":", 1)[1].strip())
    spf_result, _ = theirs.one("spf")
    verdicts = dkimpy_verdicts(data)
    dkim_first = theirs.one("dkim")[0] if verdicts else None
    if verdicts and (dkim_first == "pass") != (verdicts[0][2] == "pass"):
        raise AssertionError(f"authheaders says dkim={dkim_first}, dkimpy {verdicts[0]}")
    dmarc, props = theirs.one("dmarc")
    header_from = props.get("header.from", "")
    if dmarc == "fail":
        for d, _, result in verdicts[1:]:
            if result == "pass":
                other = authheaders.check_dmarc(
                    data, authheaders.check_spf(ip, sender, helo),
                    authres.DKIMAuthenticationResult(result="pass", header_d=d))
                if other.result == "pass":
                    dmarc = "pass"
    return {"spf": (spf_result, sender.rpartition("@")[2].lower()),
            "dkim": sorted(verdicts),
            "dmarc": (dmarc, header_from if dmarc != "none" else "")}


def summary(results):
    """Ours, in the same shape as independent()'s."""
    spf_result, props = results.one("spf")
    identity = props.get("smtp.mailfrom") or props.get("smtp.helo") or ""
    dkims = sorted((props.get("header.d", "").lower(), props.get("header.s", ""), r)
                   for r, props in results.all("dkim") if props.get("header.d"))
    dmarc, props = results.one("dmarc")
    return {"spf": (spf_result, identity.rpartition("@")[2].lower()),
            "dkim": dkims,
            "dmarc": (dmarc, props.get("header.from", "") if dmarc != "none" else "")}


PSL = "/usr/share/publicsuffix/public_suffix_list.dat"


def public_suffix_list():
    """Debian's public suffix list with the test's top-level domains
    added.  python3-publicsuffix2 (2.20191221), which authheaders finds
    organizational domains with, answers the bare TLD for any name under
    a TLD the list does not have (get_sld looks the TLD up strictly):
    every name under .example would be one organization, "example".  The
    list's own rule for an unlisted TLD is "*" (publicsuffix.org,
    "Algorithm": a.b.example -> b.example); listing the TLDs gives
    exactly that."""
    path = os.path.join(netfix.workdir(), "public_suffix_list.dat")
    if not os.path.exists(path):
        shutil.copyfile(PSL, path)
        with open(path, "a") as f:
            f.write("\n// compat: the test zones' TLDs (RFC 2606), as the rule \"*\" has them\n"
                    "example\ntest\ninvalid\n")
    return path


class IndependentVerifiers(FromTheInternet):
    """Our Authentication-Results agrees with authheaders, pyspf and
    dkimpy, method by method, result and domain, on 29 messages.

    Every failure is only marked here (spf_fail, dmarc_reject,
    dmarc_quarantine = mark), so that each message is delivered and its
    field can be read; the refusals themselves are the scenarios above.

    Where the two sides differ by design, no message here goes:

    * The organizational domain: authheaders finds it in the public
      suffix list (RFC 7489 §3.2), mail-auth by RFC 9989's DNS tree walk.
      They part where the From: domain's parent publishes no DMARC record
      and a signature or envelope is at that parent: From:
      a@mail.corp.example with a record at _dmarc.mail.corp.example alone
      and d=corp.example aligns by the list (organizational domain
      corp.example) and not by the walk (whose organizational domain is
      mail.corp.example, the shortest name with a record).  Every
      relaxed alignment below is between names under a domain that
      publishes its own record (signed.example), where both agree.
    * The box's own domains: From: one of them without SPF or DKIM
      passing is written dmarc=fail by this box even where the domain has
      no DMARC record (its own-domain rule); a verifier says none.
    * A From: with several domains: DMARC is skipped (RFC 7489 §6.6.1 as
      mail-auth reads it) while authheaders judges each domain.
    * A signature with a body length (l=): mail-auth refuses it (RFC 6376
      §8.2: anyone may append to such a message what its reader sees;
      dkim=neutral), dkimpy verifies the signed length (pass).
    * authheaders reads a domain only up to its first hyphen
      (get_domain_part's `[a-z0-9.]+`): no domain here has a hyphen.

    And authheaders is given a public suffix list that has the test's
    TLDs (public_suffix_list()), so that signed.example and bank.example
    are two organizations to it as they are to the list's own rules.
    """

    CONFIG = ("spf_fail = mark\ndmarc_reject = mark\ndmarc_quarantine = mark\n"
              "own_domain_forgery = mark\n")
    REMOTES = {"remote.example": "127.0.0.2"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if authheaders is None:
            raise unittest.SkipTest("needs python3-authheaders, python3-authres and python3-spf")
        if not os.path.exists(PSL):
            raise unittest.SkipTest(f"needs {PSL} (publicsuffix)")
        saved = authheaders.findpsl.location
        authheaders.findpsl.location = public_suffix_list()
        cls.addClassCleanup(setattr, authheaders.findpsl, "location", saved)

    def messages(self):
        """[(what, mail)]: the messages and how they are sent."""
        k = keys()
        to = f"verify@{SHOP}"

        def msg(author, subject, body="Hello from the internet.\r\n", extra=()):
            return message(author, to, subject, body, extra)

        def signed(author, subject, *sigs, body="Quarterly figures attached.\r\n", **kw):
            data = msg(author, subject, body)
            for key, domain, selector in sigs:
                data = sign(data, k[key], domain, selector, **kw)
            return data

        rsa = ("rsa", "signed.example", "rsa2026")
        ed = ("ed", "signed.example", "ed2026")
        esp = ("esp", "esp.example", "esp1")
        author = "Alice <alice@signed.example>"
        out = []

        def add(what, data, mail_from, source=SENDER_IP, helo="mail.spfpass.example"):
            out.append((what, dict(data=data, mail_from=mail_from, source=source, helo=helo,
                                   rcpts=[to])))

        # Unsigned, one per SPF result.
        add("unsigned, spf pass", msg("alice@spfpass.example", "unsigned"), "alice@spfpass.example")
        add("spf fail", msg("alice@spffail.example", "spf fail"), "alice@spffail.example")
        add("spf softfail", msg("alice@spfsoftfail.example", "softfail"), "alice@spfsoftfail.example")
        add("spf neutral", msg("alice@spfneutral.example", "neutral"), "alice@spfneutral.example")
        add("spf none", msg("alice@spfnone.example", "none"), "alice@spfnone.example")
        add("spf permerror (two records)", msg("alice@spfpermerror.example", "permerror"),
            "alice@spfpermerror.example")
        add("spf permerror (include of nothing)", msg("alice@spfbadinclude.example", "badinclude"),
            "alice@spfbadinclude.example")
        add("spf pass by include", msg("alice@spfinclude.example", "include"),
            "alice@spfinclude.example")
        add("null sender, HELO passes", msg("MAILER-DAEMON@mail.spfpass.example", "bounce"), "")
        add("null sender, HELO fails", msg("MAILER-DAEMON@spffail.example", "bounce 2"), "",
            helo="spffail.example")
        # Signed.
        add("rsa-sha256", signed(author, "rsa", rsa), "alice@signed.example")
        add("ed25519-sha256", signed(author, "ed25519", ed), "alice@signed.example")
        add("rsa and ed25519", signed(author, "both", rsa, ed), "alice@signed.example")
        add("relaxed/relaxed, Subject refolded",
            signed(author, "Quarterly  figures", rsa).replace(
                b"Subject: Quarterly  figures", b"Subject:\r\n\tQuarterly figures"),
            "alice@signed.example")
        add("8-bit body", signed(author, "8-bit", rsa, body="Grüße, Zoë — 10 € net.\r\n"),
            "alice@signed.example")
        add("author's domain in a subdomain From:, relaxed",
            signed("Alice <alice@mail.signed.example>", "subdomain", rsa), "bounce@esp.example")
        add("strict alignment, subdomain From:",
            signed("Alice <alice@mail.strict.example>", "strict",
                   ("rsa", "strict.example", "s1")), "bounce@esp.example")
        add("only the ESP's signature", signed(author, "esp only", esp), "bounce@esp.example")
        add("the ESP's signature above the author's", signed(author, "esp and author", rsa, esp),
            "bounce@esp.example")
        # Broken.
        add("rsa, one body byte changed", change_body_byte(signed(author, "changed", rsa)),
            "alice@signed.example")
        add("both, one body byte changed, envelope elsewhere",
            change_body_byte(signed(author, "changed 2", rsa, ed)), "bounce@esp.example")
        add("rsa, b= changed", break_signature(signed(author, "bad b=", rsa)),
            "alice@signed.example")
        add("simple/simple, Subject refolded",
            signed(author, "Quarterly  figures", rsa, canonicalize=(b"simple", b"simple")).replace(
                b"Subject: Quarterly  figures", b"Subject:\r\n\tQuarterly figures"),
            "bounce@esp.example")
        add("selector not in DNS", signed(author, "no key", ("rsa", "signed.example", "gone")),
            "bounce@esp.example")
        add("revoked key (p=)", signed(author, "revoked", ("rsa", "signed.example", "old")),
            "bounce@esp.example")
        add("DMARC p=reject, nothing aligned", msg("Security <security@bank.example>", "reject"),
            "alice@spfpass.example")
        add("DMARC p=quarantine, nothing aligned", msg("Offers <offers@news.example>", "quar"),
            "alice@spfpass.example")
        # Forwarded: a forwarder that keeps the envelope (SPF fails, the
        # signature survives) and a mailing list (its envelope, a subject
        # tag and a footer: the signature breaks).
        add("forwarded, envelope kept", b"Received: from mail.signed.example by fwd.example\r\n"
            + signed(author, "forwarded", rsa), "alice@signed.example", source=FORWARDER_IP,
            helo="fwd.example")
        listed = signed(author, "Club news", rsa).replace(b"Subject: Club news",
                                                          b"Subject: [club] Club news")
        add("mailing list: tag and footer", listed + b"--\r\nclub mailing list\r\n",
            "club-bounces@list.example", source=FORWARDER_IP, helo="lists.list.example")
        return out

    def forwarded_by_our_alias(self):
        """A signed message to an alias of the box forwarding to
        remote.example: the copy that leaves the box (SRS envelope), as
        that domain's server has it."""
        with open("/etc/mail/aliases", "a") as f:
            f.write("\nforwardme: friend@remote.example\n")
        p = mr.run(["newaliases"])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        data = sign(message("Alice <alice@signed.example>", f"forwardme@{SHOP}", "via alias"),
                    keys()["rsa"], "signed.example", "rsa2026")
        self.assert_accepted(self.send(data, "alice@signed.example",
                                       rcpts=[f"forwardme@{SHOP}"]))
        sink = self.site.sinks["remote.example"]
        got = sink.wait_for(1, timeout=30)
        self.assertEqual(len(got), 1, f"{sink.transactions}\n{self.log()}")
        return got[0].data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), got[0].mail_from

    def test_our_authentication_results_agree_with_authheaders_pyspf_and_dkimpy(self):
        self.user("verify")
        cases = self.messages()
        copy, srs = self.forwarded_by_our_alias()
        # The forward, sent on by the server that got it (our field on
        # it goes at our door: its id is ours).
        cases.append(("forwarded by our alias, sent back", dict(
            data=copy, mail_from=srs, source=FORWARDER_IP, helo="mx.remote.example",
            rcpts=[f"verify@{SHOP}"])))
        self.assertGreaterEqual(len(cases), 20)
        replies = self.send_all([m for _, m in cases])
        for (what, m), r in zip(cases, replies):
            with self.subTest(what):
                theirs = independent(m["data"], m["source"], m["mail_from"], m["helo"])
                self.assert_accepted(r)
                field = self.ours(self.wait_for("verify", m["data"]))
                self.assertEqual(summary(field), theirs,
                                 f"ours (first) vs theirs\nours: {field}\n{m['data'][:2000]!r}")


if __name__ == "__main__":
    unittest.main()
