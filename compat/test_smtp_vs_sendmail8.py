"""Differential: the same SMTP dialogues against real sendmail 8 and ours.

A mail server that replaces sendmail 8 must answer an SMTP client the way
sendmail 8 did: same reply codes, same enhanced status codes, same
`<addr>... text`.  Both programs run as inetd would run them (`sendmail
-bs` with an accepted TCP connection as stdin and stdout) on one fixture
(aliases, virtusertable with both `error:` forms, local-host-names, users),
and the client talks from 192.0.2.10 (an address on lo that is not
loopback, so both see an untrusted peer that may not relay).  Each
dialogue is run line by line (the client waits for every reply) and the
replies are compared line by line: code, enhanced code and text, after
blanking only the parts that differ on purpose (table below) or by nature
(queue ids, dates).  Both have the same message size limit (sendmail 8:
`-OMaxMessageSize=`, ours: message_size_limit), so EHLO's `SIZE` is
compared exactly.  Error replies to malformed ESMTP parameters and to
STARTTLS without TLS are compared by code and enhanced code only (their
wording is free).

Deliberate differences (each one is checked by a test of its own, so the
table stays true):

| where            | sendmail 8 says                          | we say                                 | why |
|------------------|------------------------------------------|----------------------------------------|-----|
| 220 greeting     | `ESMTP Sendmail 8.17.1.9/8.17.1.9; DATE` | `ESMTP mailroom VERSION; DATE`         | our own name and version; only `220 HOST ESMTP` is compared |
| EHLO keywords    | EXPN, VERB, ETRN, DELIVERBY              | (not offered)                          | we do not implement them (EXPN and VRFY would reveal users, VERB/ETRN/DELIVERBY are unused) |
| EHLO AUTH        | `AUTH DIGEST-MD5 CRAM-MD5`               | no AUTH to a non-loopback peer without TLS | we only offer PLAIN/LOGIN, and only where the password cannot be sniffed (TLS or loopback) |
| VRFY user        | `250 2.1.5 eve <eve@HOST>`               | `252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery (or try finger)` | we never reveal which users exist; exactly sendmail 8 with `PrivacyOptions=novrfy` (compared against that) |
| EXPN alias       | `250-2.1.5 ...` (the alias members)      | `502 5.7.0 Sorry, we do not allow this operation` | we never reveal alias members; exactly sendmail 8 with `PrivacyOptions=noexpn` (compared against that) |
| RCPT of a second address for a mailbox already given (eve@, then info@ -> eve) | `250 2.1.5 <eve@example.com>... Recipient ok` (names the earlier recipient: its duplicate suppression hands back the first entry) | `250 2.1.5 <info@example.com>... Recipient ok` | found by this test, not in the spec: every other RCPT reply echoes the address the client sent, and clients match replies by order, not text; code and enhanced code are compared |
| MAIL before HELO/EHLO | `250 2.1.0 ... Sender ok`            | `503 5.0.0 Polite people say HELO first` | exactly sendmail 8 with `PrivacyOptions=needmailhelo` (Debian's stock sendmail.mc sets it; compared against that) |
| AUTH PLAIN, no TLS, non-loopback peer | `504 5.3.3 AUTH mechanism PLAIN not available` | `538 5.7.11 Encryption required for requested authentication mechanism` | we never take a password in clear text from the network (RFC 4954 538) |
| VERB, ETRN       | `250 2.0.0 ...`                          | `500 5.5.1 Command unrecognized: "VERB"` | not implemented; answered as sendmail 8 answers any unknown command |
| one command sent before the 220 (e.g. `NOOP`, then `QUIT` after it) | answered normally (`250 2.0.0 OK`) | `554 5.5.0 SMTP protocol error`, then `550 5.0.0 Command rejected` | the spec: anything before the greeting (smtp_greet_pause) marks a spam bot; sendmail 8 only catches a first command with more behind it (see below) |
| HELP             | sendmail's helpfile (214-2.0.0 lines)    | our own 214 text                       | only the 214 code is compared |
| DATA accepted    | `250 2.0.0 QID Message accepted ...`     | same with our queue id                 | queue ids differ by nature |

How sendmail 8 is made to say 554 to an early talker: this oracle has no
greet_pause, so its 220 goes out at once; Debian's 8.17.1.9 then rejects a
client whose first command arrives with more commands already behind it
(pipelining before anything allowed it): `554 5.5.0 SMTP protocol error`
as the reply to that first command, `550 5.0.0 Command rejected` to every
later one except QUIT.  (A single early EHLO is answered normally by it.)
So the early-talker dialogue sends every command at once right after
connecting, before the 220; we detect it during smtp_greet_pause, set to
1s there so the outcome cannot depend on timing.  (For the record: the same
sendmail 8 built with FEATURE(`greet_pause', `1000') answers such a client
with `554 HOST ESMTP not accepting messages` *instead of* the 220, then
`554 5.5.0 SMTP protocol error`, `550 5.0.0 Command rejected`...; the
oracle here is built without it, like Debian's stock sendmail.mc.)
"""

import os
import re
import socket
import subprocess
import time
import unittest

import mr

CLIENT_IP = "192.0.2.10"
PORT = 2525  # not a submission port; not 25, where compat/smtpfix.py's inetd listens
HOST = "oracle.test"  # $j of the oracle; our hostname in mailroom.conf

ALIASES = "postmaster: root\nsales: eve, frank@remote.test\n"
VIRTUSERTABLE = ("info@example.com eve\n"
                 "abuse@example.com error:5.7.1:550 Abuse desk closed\n"
                 "old@example.com error:nouser No such user here\n")
DOMAINS = "example.com\n"
USERS = ("eve",)
SIZE_LIMIT = 100000
# The oracle has no DNS (oracle.mc: accept_unresolvable_domains); nor do
# we here: the sender checks, which would answer 451 for want of DNS, are
# off (mr.NO_SENDER_CHECKS), as sendmail 8 has none built in.
OUR_CONFIG = (f"hostname = {HOST}\nlog = /var/log/mail.log\nprobe_interfaces = no\n"
              f"forward_files = no\ndelivery_mode = queue\nmessage_size_limit = {SIZE_LIMIT}\n"
              + mr.NO_SENDER_CHECKS)
ORACLE_OPTIONS = [f"-OMaxMessageSize={SIZE_LIMIT}"]

READ_TIMEOUT = 20
CLOSED = "<connection closed>"
TIMEOUT = "<no reply within %ds>" % READ_TIMEOUT

# EHLO keywords sendmail 8 offers and we deliberately do not (see the table).
NOT_OFFERED = {"EXPN", "VERB", "ETRN", "DELIVERBY", "AUTH"}


class Data:
    """Raw bytes sent as they are (a DATA block), then one reply read."""

    def __init__(self, raw):
        self.raw = raw

    def __repr__(self):
        raw = self.raw if len(self.raw) <= 60 else self.raw[:40] + b"..." + self.raw[-8:]
        return "<DATA block of %d bytes: %r>" % (len(self.raw), raw)


def label(step):
    """How a step shows in transcripts and failure messages."""
    return repr(step) if isinstance(step, Data) else step.decode("latin-1")


def hello(cmd="EHLO"):
    return f"{cmd} client.test".encode()


MAIL = b"MAIL FROM:<a@remote.test>"


def rcpt(addr):
    return b"RCPT TO:<" + addr.encode() + b">"


class Peer:
    """The client side: a listening socket on 127.0.0.1:PORT whose accepted
    connections are handed to the server program as stdin and stdout."""

    def __init__(self):
        subprocess.run(["ip", "addr", "add", f"{CLIENT_IP}/32", "dev", "lo"],
                       capture_output=True)
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", PORT))
        self.srv.listen(5)

    def close(self):
        self.srv.close()

    def connect(self, argv, env):
        c = socket.socket()
        c.bind((CLIENT_IP, 0))
        c.connect(("127.0.0.1", PORT))
        conn, _ = self.srv.accept()
        err = open(os.path.join(os.environ.get("COMPAT_WORK", "/tmp"), "smtp-server.stderr"), "w+b")
        p = subprocess.Popen(argv, stdin=conn, stdout=conn, stderr=err, env=env)
        conn.close()
        c.settimeout(READ_TIMEOUT)
        return c, p, err


def read_reply(f):
    """One (possibly multi-line) reply as a list of str lines."""
    lines = []
    while True:
        try:
            r = f.readline()
        except socket.timeout:
            lines.append(TIMEOUT)
            return lines
        except ConnectionResetError:
            r = b""
        if not r:
            lines.append(CLOSED)
            return lines
        line = r.decode("latin-1").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return lines


def finish(c, p, err, f):
    """Whatever the server still says before closing, and its stderr."""
    rest = []
    while True:
        r = read_reply(f)
        rest += r
        if r[-1] in (CLOSED, TIMEOUT):
            break
    f.close()  # the socket is really closed only when its file is too
    c.close()
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    err.seek(0)
    text = err.read().decode("latin-1", "replace")
    err.close()
    return rest, text


def converse(peer, argv, env, steps):
    """Run a dialogue line by line: send each step, read its reply.
    Returns [(step text, [reply lines])], the first entry being the
    greeting, the last the lines the server sent before closing."""
    c, p, err = peer.connect(argv, env)
    f = c.makefile("rb")
    out = [("<connect>", read_reply(f))]
    for step in steps:
        if out[-1][1][-1] in (CLOSED, TIMEOUT):
            break
        raw = step.raw if isinstance(step, Data) else step + b"\r\n"
        try:
            c.sendall(raw)
        except OSError:
            pass
        out.append((label(step), read_reply(f)))
    if out[-1][1][-1] not in (CLOSED, TIMEOUT):
        rest, stderr = finish(c, p, err, f)
        out.append(("<after the last command>", rest))
    else:
        _, stderr = finish(c, p, err, f)
    return out, stderr


def converse_all_at_once(peer, argv, env, steps):
    """Send every command at once, before the greeting; all replies."""
    c, p, err = peer.connect(argv, env)
    c.sendall(b"".join(s + b"\r\n" for s in steps))
    f = c.makefile("rb")
    rest, stderr = finish(c, p, err, f)
    return [("<all commands at once before the greeting>", rest)], stderr


QID_ACCEPTED = re.compile(r"^250 2\.0\.0 (\S+) Message accepted for delivery$")


def normalize(step, lines):
    """Blank what differs by nature or on purpose (module docstring)."""
    out = []
    for i, line in enumerate(lines):
        if line.startswith("220 ") and step.startswith("<"):
            m = re.match(r"^(220 \S+ ESMTP) ", line)
            out.append(m.group(1) + " ..." if m else line)
        elif QID_ACCEPTED.match(line):
            out.append("250 2.0.0 QID Message accepted for delivery")
        elif step.upper().startswith("EHLO") and i > 0:
            continue  # the keywords: test_ehlo_*
        else:
            out.append(line)
    return out


def codes(lines):
    """Reply code and enhanced status code of each line."""
    return [" ".join(l.split(" ", 2)[:2]) if l[:3].isdigit() else l for l in lines]


@unittest.skipUnless(mr.oracle_available(), "sendmail 8 oracle not built (compat/oracle/setup.sh)")
class SmtpDifferential(mr.Case):
    @classmethod
    def setUpClass(cls):
        cls.inst = mr.oracle_instance(
            "smtp-diff", aliases=ALIASES, virtusertable=VIRTUSERTABLE, domains=DOMAINS,
            users="".join(u + "\n" for u in USERS))
        cls.peer = Peer()

    @classmethod
    def tearDownClass(cls):
        cls.peer.close()

    def setUp(self):
        super().setUp()
        for name, text in (("aliases", ALIASES), ("virtusertable", VIRTUSERTABLE),
                           ("local-host-names", DOMAINS), ("virtuser-domains", "")):
            with open(f"/etc/mail/{name}", "w") as f:
                f.write(text)
        for u in USERS:
            mr.ensure_user(u, home=False)
        mr.write_config(OUR_CONFIG)
        q = os.path.join(self.inst, "mqueue")
        for f in os.listdir(q):
            os.unlink(os.path.join(q, f))

    # -- running a dialogue on both --------------------------------------

    def theirs(self, steps, at_once=False, options=()):
        run = converse_all_at_once if at_once else converse
        return run(self.peer, [os.path.join(mr.ORACLE, "sm.sh"), self.inst, "-bs"] + ORACLE_OPTIONS + list(options),
                   {"SM_ORACLE": mr.SM_ORACLE, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, steps)[0]

    def ours(self, steps, at_once=False):
        run = converse_all_at_once if at_once else converse
        return run(self.peer, ["/usr/sbin/sendmail", "-bs"],
                   {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}, steps)

    def same_dialogue(self, steps, at_once=False, theirs_expected=None, codes_only=()):
        """Run `steps` on both; fail listing every line where the replies
        differ.  `theirs_expected`: {step: first reply line} that sendmail 8
        must give (so a changed oracle cannot make the test vacuous).
        `codes_only`: steps whose replies are compared by code and
        enhanced code only.  Returns (theirs, ours) raw transcripts."""
        theirs = self.theirs(steps, at_once)
        ours, stderr = self.ours(steps, at_once)
        for step, line in (theirs_expected or {}).items():
            got = [r for s, r in theirs if s == step]
            self.assertTrue(got, f"sendmail 8 never answered {step!r}: {theirs}")
            self.assertEqual(got[0][0], line, f"sendmail 8 changed its answer to {step!r}")
        problems = []
        for n in range(max(len(theirs), len(ours))):
            t = theirs[n] if n < len(theirs) else ("<nothing>", ["<nothing>"])
            o = ours[n] if n < len(ours) else ("<nothing>", ["<nothing>"])
            tl, ol = normalize(t[0], t[1]), normalize(o[0], o[1])
            if t[0] in [label(x) for x in codes_only]:
                tl, ol = codes(tl), codes(ol)
            if tl != ol:
                problems.append(f"  after {t[0]!r}:\n    sendmail 8 said {tl}\n    we said         {ol}")
        if problems:
            self.fail("replies differ from sendmail 8:\n" + "\n".join(problems)
                      + ("\n  our stderr: " + stderr.strip() if stderr.strip() else ""))
        return theirs, ours

    def same_rcpt_reply(self, addr, expected):
        """MAIL, then RCPT TO:<addr>: sendmail 8 must say `expected`, we the same."""
        self.same_dialogue([hello(), MAIL, rcpt(addr), b"QUIT"],
                           theirs_expected={rcpt(addr).decode(): expected})

    # -- greeting, EHLO, HELO ----------------------------------------------

    def test_ehlo_hello_line_and_shared_keywords_same_as_sendmail8(self):
        theirs, ours = self.same_dialogue([hello(), b"QUIT"],
                                          theirs_expected={"EHLO client.test": f"250-{HOST} Hello [{CLIENT_IP}], pleased to meet you"})

        def keywords(transcript):
            lines = [r for s, r in transcript if s == "EHLO client.test"][0]
            self.assertTrue(lines[-1].startswith("250 "), lines)
            self.assertTrue(all(l.startswith("250-") for l in lines[:-1]), lines)
            return {l[4:].split()[0].upper(): l[4:] for l in lines[1:]}

        t, o = keywords(theirs), keywords(ours)
        self.assertEqual(set(t) - NOT_OFFERED, {"ENHANCEDSTATUSCODES", "PIPELINING", "8BITMIME", "SIZE", "DSN", "HELP"})
        self.assertEqual(set(o), set(t) - NOT_OFFERED,
                         f"EHLO keywords: sendmail 8 {sorted(t)}, we {sorted(o)}")
        self.assertEqual(t["SIZE"], f"SIZE {SIZE_LIMIT}")
        for k in set(o):
            self.assertEqual(o[k], t[k], f"EHLO keyword {k}")

    def test_helo_same_reply_as_sendmail8(self):
        self.same_dialogue([hello("HELO"), MAIL, b"QUIT"],
                           theirs_expected={"HELO client.test": f"250 {HOST} Hello [{CLIENT_IP}], pleased to meet you",
                                            "QUIT": f"221 2.0.0 {HOST} closing connection"})

    def test_helo_and_ehlo_without_a_name_same_replies_as_sendmail8(self):
        self.same_dialogue([b"HELO", b"EHLO", hello(), b"EHLO again.test", b"HELO third.test", b"QUIT"],
                           theirs_expected={"HELO": "501 5.0.0 HELO requires domain address"})

    def test_unknown_command_same_reply_as_sendmail8(self):
        self.same_dialogue([hello(), b"FOO bar", b"QUIT"],
                           theirs_expected={"FOO bar": '500 5.5.1 Command unrecognized: "FOO bar"'})

    # -- recipients: local, aliases, virtusertable -------------------------

    def test_rcpt_plain_user_same_reply_as_sendmail8(self):
        self.same_rcpt_reply("eve@example.com", "250 2.1.5 <eve@example.com>... Recipient ok")

    def test_rcpt_user_at_own_hostname_same_reply_as_sendmail8(self):
        self.same_rcpt_reply(f"eve@{HOST}", f"250 2.1.5 <eve@{HOST}>... Recipient ok")

    def test_rcpt_alias_same_reply_as_sendmail8(self):
        self.same_rcpt_reply("sales@example.com", "250 2.1.5 <sales@example.com>... Recipient ok")

    def test_rcpt_postmaster_alias_same_reply_as_sendmail8(self):
        self.same_rcpt_reply("postmaster@example.com", "250 2.1.5 <postmaster@example.com>... Recipient ok")

    def test_rcpt_virtusertable_address_same_reply_as_sendmail8(self):
        self.same_rcpt_reply("info@example.com", "250 2.1.5 <info@example.com>... Recipient ok")

    def test_rcpt_unknown_user_same_code_as_sendmail8(self):
        self.same_rcpt_reply("nosuch@example.com", "550 5.1.1 <nosuch@example.com>... User unknown")

    def test_rcpt_virtusertable_error_with_status_same_code_as_sendmail8(self):
        # abuse@example.com  error:5.7.1:550 Abuse desk closed
        self.same_rcpt_reply("abuse@example.com", "550 5.7.1 <abuse@example.com>... Abuse desk closed")

    def test_rcpt_virtusertable_error_nouser_same_code_as_sendmail8(self):
        # old@example.com  error:nouser No such user here
        self.same_rcpt_reply("old@example.com", "553 5.3.0 <old@example.com>... No such user here")

    def test_rcpt_several_recipients_mixed_verdicts_same_as_sendmail8(self):
        verdicts = {
            "eve@example.com": "250 2.1.5 <eve@example.com>... Recipient ok",
            "nosuch@example.com": "550 5.1.1 <nosuch@example.com>... User unknown",
            "sales@example.com": "250 2.1.5 <sales@example.com>... Recipient ok",
            "abuse@example.com": "550 5.7.1 <abuse@example.com>... Abuse desk closed",
            "user@remote.test": "550 5.7.1 <user@remote.test>... Relaying denied",
            "old@example.com": "553 5.3.0 <old@example.com>... No such user here",
            "postmaster@example.com": "250 2.1.5 <postmaster@example.com>... Recipient ok",
        }
        self.same_dialogue([hello(), MAIL] + [rcpt(a) for a in verdicts] + [b"QUIT"],
                           theirs_expected={rcpt(a).decode(): v for a, v in verdicts.items()})

    def test_rcpt_second_address_for_the_same_mailbox_same_code_as_sendmail8(self):
        # info@example.com is eve by the virtusertable: sendmail 8 folds it
        # into the earlier recipient and names that one (see the table).
        steps = [hello(), MAIL, rcpt("eve@example.com"), rcpt("info@example.com"), b"QUIT"]
        theirs = self.theirs(steps)
        ours, _ = self.ours(steps)
        self.assertEqual(theirs[4], ("RCPT TO:<info@example.com>", ["250 2.1.5 <eve@example.com>... Recipient ok"]))
        self.assertEqual(ours[4], ("RCPT TO:<info@example.com>", ["250 2.1.5 <info@example.com>... Recipient ok"]))
        self.assertEqual([normalize(*t) for t in theirs[:4] + theirs[5:]],
                         [normalize(*o) for o in ours[:4] + ours[5:]])

    # -- relay tricks from an untrusted peer --------------------------------

    def test_rcpt_remote_address_relaying_denied_like_sendmail8(self):
        self.same_rcpt_reply("user@remote.test", "550 5.7.1 <user@remote.test>... Relaying denied")

    def test_rcpt_percent_hack_through_local_domain_relaying_denied_like_sendmail8(self):
        self.same_rcpt_reply("user%remote.test@example.com",
                             "550 5.7.1 <user%remote.test@example.com>... Relaying denied")

    def test_rcpt_quoted_remote_local_part_relaying_denied_like_sendmail8(self):
        self.same_rcpt_reply('"user@remote.test"@example.com',
                             '550 5.7.1 <"user@remote.test"@example.com>... Relaying denied')

    def test_rcpt_source_route_through_local_domain_relaying_denied_like_sendmail8(self):
        self.same_rcpt_reply("@example.com:user@remote.test",
                             "550 5.7.1 <@example.com:user@remote.test>... Relaying denied")

    def test_rcpt_double_at_address_invalid_route_like_sendmail8(self):
        self.same_rcpt_reply("user@remote.test@example.com",
                             "553 5.1.3 <user@remote.test@example.com>... Invalid route address")

    def test_rcpt_bang_path_relaying_denied_like_sendmail8(self):
        self.same_rcpt_reply("remote.test!user", "550 5.7.1 <remote.test!user>... Relaying denied")

    def test_rcpt_address_literal_relaying_denied_like_sendmail8(self):
        self.same_rcpt_reply("user@[192.0.2.99]", "550 5.7.1 <user@[192.0.2.99]>... Relaying denied")

    def test_rcpt_percent_hack_to_local_domain_accepted_like_sendmail8(self):
        self.same_rcpt_reply("eve%example.com@example.com",
                             "250 2.1.5 <eve%example.com@example.com>... Recipient ok")

    # -- command sequencing ------------------------------------------------

    def test_mail_twice_gets_503_like_sendmail8(self):
        self.same_dialogue([hello(), MAIL, rcpt("eve@example.com"), b"MAIL FROM:<x@remote.test>", b"QUIT"],
                           theirs_expected={"MAIL FROM:<x@remote.test>": "503 5.5.0 Sender already specified"})

    def test_rset_noop_quit_same_replies_as_sendmail8(self):
        self.same_dialogue(
            [hello(), b"NOOP", MAIL, rcpt("eve@example.com"), b"RSET", rcpt("eve@example.com"),
             b"DATA", b"MAIL FROM:<>", rcpt("eve@example.com"), b"RSET", b"NOOP", b"QUIT"],
            theirs_expected={"NOOP": "250 2.0.0 OK", "RSET": "250 2.0.0 Reset state",
                             "RCPT TO:<eve@example.com>": "250 2.1.5 <eve@example.com>... Recipient ok",
                             "DATA": "503 5.0.0 Need MAIL command",
                             "MAIL FROM:<>": "250 2.1.0 <>... Sender ok",
                             "QUIT": f"221 2.0.0 {HOST} closing connection"})

    def test_rcpt_after_rset_needs_mail_like_sendmail8(self):
        self.same_dialogue([hello(), MAIL, b"RSET", rcpt("eve@example.com"), b"QUIT"],
                           theirs_expected={"RCPT TO:<eve@example.com>": "503 5.0.0 Need MAIL before RCPT"})

    def test_quit_closes_the_connection_at_once_like_sendmail8(self):
        # A client that reads until the server closes (after the 221) must
        # not be kept waiting: sendmail 8 closes right after the 221.
        def seconds_from_221_to_close(argv, env):
            c, p, err = self.peer.connect(argv, env)
            f = c.makefile("rb")
            replies = [read_reply(f)]
            for line in (hello(), b"QUIT"):
                c.sendall(line + b"\r\n")
                replies.append(read_reply(f))
            t0 = time.monotonic()
            eof = read_reply(f)
            took = time.monotonic() - t0
            finish(c, p, err, f)
            self.assertEqual(replies[-1], [f"221 2.0.0 {HOST} closing connection"])
            self.assertEqual(eof, [CLOSED])
            return took

        theirs = seconds_from_221_to_close(
            [os.path.join(mr.ORACLE, "sm.sh"), self.inst, "-bs"],
            {"SM_ORACLE": mr.SM_ORACLE, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        ours = seconds_from_221_to_close(["/usr/sbin/sendmail", "-bs"],
                                         {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"})
        self.assertLess(theirs, 0.5)
        self.assertLess(ours, 1.0, f"our server closed {ours:.2f}s after its 221; sendmail 8 after {theirs:.2f}s")

    def test_data_without_recipient_gets_503_like_sendmail8(self):
        self.same_dialogue([hello(), MAIL, b"DATA", b"QUIT"],
                           theirs_expected={"DATA": "503 5.0.0 Need RCPT (recipient)"})

    # -- malformed addresses and ESMTP parameters -----------------------------

    def test_rcpt_empty_address_same_code_as_sendmail8(self):
        self.same_rcpt_reply("", "553 5.0.0 <>... User address required")

    def test_rcpt_unbalanced_angle_bracket_same_code_as_sendmail8(self):
        self.same_dialogue([hello(), MAIL, b"RCPT TO:<eve@example.com>>", b"QUIT"],
                           theirs_expected={"RCPT TO:<eve@example.com>>": "553 5.0.0 <eve@example.com>>... Unbalanced '>'"})

    def test_mail_unbalanced_angle_bracket_same_code_as_sendmail8(self):
        self.same_dialogue([hello(), b"MAIL FROM:<a@remote.test", b"QUIT"],
                           theirs_expected={"MAIL FROM:<a@remote.test": "553 5.0.0 <a@remote.test... Unbalanced '<'"})

    def test_mail_from_double_at_address_invalid_route_like_sendmail8(self):
        self.same_dialogue([hello(), b"MAIL FROM:<a@@remote.test>", b"QUIT"],
                           theirs_expected={"MAIL FROM:<a@@remote.test>": "553 5.1.3 <a@@remote.test>... Invalid route address"})

    def test_mail_and_rcpt_without_angle_brackets_same_replies_as_sendmail8(self):
        self.same_dialogue([hello(), b"MAIL FROM:a@remote.test", b"RCPT TO:eve@example.com", b"QUIT"],
                           theirs_expected={"MAIL FROM:a@remote.test": "250 2.1.0 a@remote.test... Sender ok",
                                            "RCPT TO:eve@example.com": "250 2.1.5 eve@example.com... Recipient ok"})

    def test_mail_with_size_over_the_limit_same_reply_as_sendmail8(self):
        self.same_dialogue([hello(), f"MAIL FROM:<a@remote.test> SIZE={SIZE_LIMIT + 1}".encode(),
                            f"MAIL FROM:<a@remote.test> SIZE={SIZE_LIMIT}".encode(), b"QUIT"],
                           theirs_expected={f"MAIL FROM:<a@remote.test> SIZE={SIZE_LIMIT + 1}":
                                            f"552 5.2.3 Message size exceeds fixed maximum message size ({SIZE_LIMIT})"})

    def test_data_over_the_size_limit_same_reply_as_sendmail8(self):
        body = b"".join(b"%06d " % i + b"x" * 72 + b"\r\n" for i in range(SIZE_LIMIT // 70))
        block = Data(b"Subject: big\r\n\r\n" + body + b".\r\n")
        self.same_dialogue([hello(), MAIL, rcpt("eve@example.com"), b"DATA", block, b"QUIT"],
                           theirs_expected={label(block): f"552 5.2.3 Message exceeds maximum fixed size ({SIZE_LIMIT})"})
        self.assertEqual([f for f in os.listdir(mr.QUEUE) if f[:2] in ("qf", "df")], [])

    def test_mail_and_rcpt_with_bad_esmtp_parameters_same_codes_as_sendmail8(self):
        bad = [b"MAIL FROM:<a@remote.test> FOO=bar", b"MAIL FROM:<a@remote.test> BODY=9BIT"]
        rbad = [b"RCPT TO:<eve@example.com> NOTIFY=BOGUS", b"RCPT TO:<eve@example.com> FOO=bar"]
        self.same_dialogue([hello()] + bad + [b"MAIL FROM:<a@remote.test> BODY=8BITMIME"] + rbad
                           + [b"RCPT TO:<eve@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;eve@example.com", b"QUIT"],
                           codes_only=bad + rbad,
                           theirs_expected={
                               "MAIL FROM:<a@remote.test> FOO=bar": "555 5.5.4 FOO parameter unrecognized",
                               "MAIL FROM:<a@remote.test> BODY=9BIT": "501 5.5.4 Unknown BODY type 9BIT",
                               "MAIL FROM:<a@remote.test> BODY=8BITMIME": "250 2.1.0 <a@remote.test>... Sender ok",
                               "RCPT TO:<eve@example.com> NOTIFY=BOGUS": '501 5.5.4 Bad argument "BOGUS"  to NOTIFY',
                               "RCPT TO:<eve@example.com> FOO=bar": "555 5.5.4 FOO parameter unrecognized",
                               "RCPT TO:<eve@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;eve@example.com": "250 2.1.5 <eve@example.com>... Recipient ok",
                           })

    def test_starttls_when_not_offered_same_code_as_sendmail8(self):
        self.same_dialogue([hello(), b"STARTTLS", b"QUIT"], codes_only=[b"STARTTLS"],
                           theirs_expected={"STARTTLS": "454 4.3.3 TLS not available after start"})

    # -- DATA ----------------------------------------------------------------

    def test_data_accepted_same_reply_as_sendmail8(self):
        theirs, ours = self.same_dialogue(
            [hello(), MAIL, rcpt("eve@example.com"), b"DATA",
             Data(b"Subject: hello\r\n\r\nbody\r\n.\r\n"), b"QUIT"],
            theirs_expected={"DATA": "354 End data with <CR><LF>.<CR><LF>"})
        self.assertRegex([r for s, r in theirs if s.startswith("<DATA")][0][0], QID_ACCEPTED)
        qid = QID_ACCEPTED.match([r for s, r in ours if s.startswith("<DATA")][0][0]).group(1)
        self.assertEqual(mr.queue_ids(), [qid], "the 250 names the queued message")

    def test_bare_lf_in_data_gets_421_like_sendmail8(self):
        self.same_dialogue(
            [hello(), MAIL, rcpt("eve@example.com"), b"DATA",
             Data(b"Subject: x\r\n\r\nbare\nlf\r\n.\r\n"), b"QUIT"],
            theirs_expected={label(Data(b"Subject: x\r\n\r\nbare\nlf\r\n.\r\n")): "421 4.5.0 Bare linefeed (LF) not allowed"})
        self.assertEqual(os.listdir(os.path.join(self.inst, "mqueue")), [])
        self.assertEqual([f for f in os.listdir(mr.QUEUE) if f[:2] in ("qf", "df")], [],
                         "nothing queued after the 421")

    def test_bare_cr_in_data_gets_421_like_sendmail8(self):
        block = Data(b"Subject: x\r\n\r\nbare\rcr\r\n.\r\n")
        self.same_dialogue(
            [hello(), MAIL, rcpt("eve@example.com"), b"DATA", block, b"QUIT"],
            theirs_expected={label(block): "421 4.5.0 Bare carriage return (CR) not allowed"})
        self.assertEqual([f for f in os.listdir(mr.QUEUE) if f[:2] in ("qf", "df")], [],
                         "nothing queued after the 421")

    # -- early talker --------------------------------------------------------

    def test_early_talker_gets_554_then_550_like_sendmail8(self):
        mr.write_config(OUR_CONFIG + "smtp_greet_pause = 1s\n")
        steps = [hello(), MAIL, rcpt("eve@example.com"), b"DATA", b"QUIT"]
        theirs, _ = self.same_dialogue(steps, at_once=True)
        self.assertEqual(normalize(*theirs[0]),
                         [f"220 {HOST} ESMTP ...", "554 5.5.0 SMTP protocol error",
                          "550 5.0.0 Command rejected", "550 5.0.0 Command rejected",
                          "550 5.0.0 Command rejected", f"221 2.0.0 {HOST} closing connection", CLOSED])
        self.assertEqual([f for f in os.listdir(mr.QUEUE) if f[:2] in ("qf", "df")], [])

    # -- the deliberate differences of the table -----------------------------

    def test_single_command_before_greeting_we_refuse_where_sendmail8_answers(self):
        mr.write_config(OUR_CONFIG + "smtp_greet_pause = 1s\n")
        steps = [b"NOOP", b"QUIT"]
        theirs = normalize(*self.theirs(steps, at_once=True)[0])
        ours = normalize(*self.ours(steps, at_once=True)[0][0])
        self.assertEqual(theirs, [f"220 {HOST} ESMTP ...", "250 2.0.0 OK",
                                  f"221 2.0.0 {HOST} closing connection", CLOSED])
        self.assertEqual(ours, [f"220 {HOST} ESMTP ...", "554 5.5.0 SMTP protocol error",
                                f"221 2.0.0 {HOST} closing connection", CLOSED])

    def test_greeting_we_name_ourselves_where_sendmail8_names_sendmail(self):
        theirs = self.theirs([b"QUIT"])
        ours, _ = self.ours([b"QUIT"])
        self.assertRegex(theirs[0][1][0], rf"^220 {re.escape(HOST)} ESMTP Sendmail 8\.[0-9.]+/8\.[0-9.]+; ")
        self.assertRegex(ours[0][1][0], rf"^220 {re.escape(HOST)} ESMTP mailroom \S+; ")

    def test_vrfy_we_answer_252_where_sendmail8_reveals_the_user(self):
        steps = [hello(), b"VRFY eve", b"VRFY nosuch", b"QUIT"]
        theirs = self.theirs(steps)
        self.assertEqual(theirs[2][1], [f"250 2.1.5 eve <eve@{HOST}>"])
        self.assertEqual(theirs[3][1], ["550 5.1.1 nosuch... User unknown"])
        novrfy = self.theirs(steps, options=["-OPrivacyOptions=novrfy"])
        ours, _ = self.ours(steps)
        self.assertEqual(novrfy[2][1], ["252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery (or try finger)"])
        self.assertEqual([normalize(*o) for o in ours], [normalize(*t) for t in novrfy],
                         "VRFY as sendmail 8 with PrivacyOptions=novrfy")

    def test_expn_we_refuse_where_sendmail8_lists_the_alias(self):
        steps = [hello(), b"EXPN sales", b"EXPN nosuch", b"QUIT"]
        theirs = self.theirs(steps)
        self.assertEqual(theirs[2][1], [f"250-2.1.5 eve <eve@{HOST}>", "250 2.1.5 <frank@remote.test>"])
        noexpn = self.theirs(steps, options=["-OPrivacyOptions=noexpn"])
        ours, _ = self.ours(steps)
        self.assertEqual(noexpn[2][1], ["502 5.7.0 Sorry, we do not allow this operation"])
        self.assertEqual([normalize(*o) for o in ours], [normalize(*t) for t in noexpn],
                         "EXPN as sendmail 8 with PrivacyOptions=noexpn")

    def test_mail_before_helo_we_refuse_like_sendmail8_with_needmailhelo(self):
        steps = [MAIL, rcpt("eve@example.com"), hello(), MAIL, b"QUIT"]
        self.assertEqual(self.theirs(steps)[1][1], ["250 2.1.0 <a@remote.test>... Sender ok"])
        needhelo = self.theirs(steps, options=["-OPrivacyOptions=needmailhelo"])
        self.assertEqual(needhelo[1][1], ["503 5.0.0 Polite people say HELO first"])
        ours, _ = self.ours(steps)
        self.assertEqual([normalize(*o) for o in ours], [normalize(*t) for t in needhelo],
                         "MAIL before HELO as sendmail 8 with PrivacyOptions=needmailhelo")

    def test_auth_plain_without_tls_we_answer_538_where_sendmail8_answers_504(self):
        steps = [hello(), b"AUTH PLAIN AGV2ZQBzZWNyZXQ=", MAIL, b"QUIT"]
        theirs = self.theirs(steps)
        ours, _ = self.ours(steps)
        self.assertEqual(theirs[2][1], ["504 5.3.3 AUTH mechanism PLAIN not available"])
        self.assertEqual(ours[2][1], ["538 5.7.11 Encryption required for requested authentication mechanism"])
        self.assertEqual([normalize(*o) for o in ours[3:]], [normalize(*t) for t in theirs[3:]])

    def test_verb_and_etrn_unrecognized_where_sendmail8_accepts(self):
        steps = [hello(), b"VERB", b"ETRN example.com", b"QUIT"]
        theirs = self.theirs(steps)
        ours, _ = self.ours(steps)
        self.assertEqual([r[0][:3] for s, r in theirs[2:4]], ["250", "250"])
        self.assertEqual(ours[2][1], ['500 5.5.1 Command unrecognized: "VERB"'])
        self.assertEqual(ours[3][1], ['500 5.5.1 Command unrecognized: "ETRN example.com"'])
        self.assertEqual([normalize(*o) for o in ours[4:]], [normalize(*t) for t in theirs[4:]])

    def test_help_both_answer_214(self):
        theirs = self.theirs([hello(), b"HELP", b"QUIT"])
        ours, _ = self.ours([hello(), b"HELP", b"QUIT"])
        self.assertTrue(all(l[:3] == "214" for l in theirs[2][1]), theirs[2][1])
        self.assertTrue(all(l[:3] == "214" for l in ours[2][1]), ours[2][1])
        self.assertEqual(ours[3][1], theirs[3][1])  # QUIT after HELP


if __name__ == "__main__":
    unittest.main()
