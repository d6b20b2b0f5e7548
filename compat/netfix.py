"""Fixtures for a private network inside the compat sandbox.

The compat scenarios run in a network namespace where only loopback
exists (compat/lib/sandbox.sh); every 127.x.y.z address works there.  This
module puts "the internet" on it:

* DNS: dnsmasq in the foreground on 127.0.0.1:53, answering only the MX,
  A and TXT records a test gives it (`--no-resolv --no-hosts`), and
  authoritative NXDOMAIN for every other name under the test's top-level
  domains (`--local=/example/`).  /etc/resolv.conf (the sandbox's /etc is
  private) is replaced by `nameserver 127.0.0.1` with a short timeout, so
  mailroom's resolver (hickory, which reads resolv.conf) asks it.  Stop it
  to make "DNS is down"; forward a zone to a `SilentDNS` to make "DNS that
  never answers" for that zone alone.
* SMTP servers: aiosmtpd, each in its own thread with its own event loop,
  on a chosen 127.0.0.N address and port.  The test decides per recipient
  what the server answers (accept, 4xx, 5xx), can make it drop the
  connection after the message data, offer STARTTLS (a self-signed
  certificate made with openssl), offer or require AUTH PLAIN/LOGIN with a
  given user and password, and leave 8BITMIME out of its EHLO.  Every
  message the server accepts is recorded (`server.messages`): envelope,
  whether the session was under TLS, the authenticated user, the raw
  message.  Every transaction, accepted or not, is in `server.transactions`.
* `Network`: starts these and stops them all (`stop_all`, for addCleanup).
* `OutsideHost`: another machine on the network -- a second network
  namespace joined to the sandbox's by a veth pair, with an IPv4 and an
  IPv6 address of its own (neither loopback nor ours), where a test runs
  real clients (curl, python3's smtplib) with `run`.

Usage in a test:

    net = netfix.Network()
    self.addCleanup(net.stop_all)
    net.dns(mx={"gmail.example": [(10, "mx1.gmail.example")]},
            hosts={"mx1.gmail.example": "127.0.0.2"})
    mx = net.smtp("127.0.0.2", rcpt={"gone@gmail.example": "550 5.1.1 gone"})
    ... run the queue ...
    mx.wait_for(1)
    self.assertEqual(mx.messages[0].rcpt_tos, ["customer@gmail.example"])

Needs /usr/sbin/dnsmasq (Debian dnsmasq-base), aiosmtpd for the python3
running the tests (Debian python3-aiosmtpd) and openssl.  Everything runs
as root inside the sandbox; nothing here is meant for a real host.
"""

import asyncio
import email
import email.policy
import ipaddress
import json
import logging
import os
import random
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

DNSMASQ = "/usr/sbin/dnsmasq"
RESOLV_CONF = "/etc/resolv.conf"

# aiosmtpd logs every exception of a dropped session at ERROR level; the
# scenarios drop sessions on purpose.
logging.getLogger("mail.log").setLevel(logging.CRITICAL)

_workdir = None


def workdir():
    """A private directory for certificates and logs (one per process)."""
    global _workdir
    if _workdir is None:
        base = os.environ.get("COMPAT_WORK") or None
        _workdir = tempfile.mkdtemp(prefix="netfix.", dir=base)
    return _workdir


def available():
    """True when the fixtures can run here (dnsmasq, aiosmtpd, openssl)."""
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        return False
    return os.access(DNSMASQ, os.X_OK) and shutil.which("openssl") is not None


# ---------------------------------------------------------------------------
# The resolver configuration

_saved_resolv = None


def use_local_resolver(address="127.0.0.1"):
    """Point /etc/resolv.conf at our DNS server.  It may be a symlink (to
    systemd-resolved's stub file): the link itself is replaced.  The
    original is kept for restore_resolver()."""
    global _saved_resolv
    if _saved_resolv is None:
        if os.path.islink(RESOLV_CONF):
            _saved_resolv = ("link", os.readlink(RESOLV_CONF))
        elif os.path.exists(RESOLV_CONF):
            with open(RESOLV_CONF, "rb") as f:
                _saved_resolv = ("file", f.read())
        else:
            _saved_resolv = ("none", None)
    if os.path.islink(RESOLV_CONF) or os.path.exists(RESOLV_CONF):
        os.unlink(RESOLV_CONF)
    with open(RESOLV_CONF, "w") as f:
        # One try, one second: "DNS is down" must not make a test wait.
        f.write(f"nameserver {address}\noptions timeout:1 attempts:1\n")
    os.chmod(RESOLV_CONF, 0o644)


def restore_resolver():
    global _saved_resolv
    if _saved_resolv is None:
        return
    kind, value = _saved_resolv
    if os.path.islink(RESOLV_CONF) or os.path.exists(RESOLV_CONF):
        os.unlink(RESOLV_CONF)
    if kind == "link":
        os.symlink(value, RESOLV_CONF)
    elif kind == "file":
        with open(RESOLV_CONF, "wb") as f:
            f.write(value)
    _saved_resolv = None


# ---------------------------------------------------------------------------
# DNS


def _dns_query(name, qtype=1):
    """A minimal DNS query packet (recursion desired)."""
    qid = random.randrange(65536)
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        packet += bytes([len(label)]) + label.encode("ascii")
    packet += b"\0" + struct.pack(">HH", qtype, 1)
    return qid, packet


def dns_rcode(name, qtype=1, server=("127.0.0.1", 53), timeout=1.0):
    """Ask `server` about `name`: the response code (0 = NOERROR, 3 =
    NXDOMAIN) and the number of answers, or None when nobody answers."""
    qid, packet = _dns_query(name, qtype)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(packet, server)
        while True:
            data, _ = s.recvfrom(4096)
            if len(data) >= 12 and struct.unpack(">H", data[:2])[0] == qid:
                flags, _, ancount = struct.unpack(">HHH", data[2:8])
                return flags & 0xF, ancount
    except OSError:
        return None
    finally:
        s.close()


class DNS:
    """dnsmasq answering for the test's domains.

    mx:    {domain: [(preference, exchange), ...]}
    hosts: {name: address or [addresses]}  (A / AAAA records, and the
           PTR records of the addresses)
    addresses: {name: IPv4 address}  (an A record without a PTR record,
           for this name and every name below it: a blocklist's answer)
    txt:   {name: text or [texts]}  (TXT records; dnsmasq cuts text longer
           than 255 characters into strings of 255, as a zone file would)
    ptr:   {address: name}  (a PTR record alone; `hosts` makes the PTR of
           each address it names too)
    local: top-level domains dnsmasq is authoritative for: a name there
           that is not configured is NXDOMAIN (a domain that does not
           exist).  Names elsewhere get REFUSED (no upstream).
    forward: {zone: server address}  (queries for the zone go there,
           e.g. to a SilentDNS: the zone's server never answers)
    """

    def __init__(self, mx=None, hosts=None, local=("example", "test", "invalid"),
                 address="127.0.0.1", port=53, txt=None, addresses=None, forward=None,
                 ptr=None):
        self.mx = dict(mx or {})
        self.hosts = dict(hosts or {})
        self.addresses = dict(addresses or {})
        self.txt = dict(txt or {})
        self.forward = dict(forward or {})
        self.ptr = dict(ptr or {})
        self.local = tuple(local)
        self.address = address
        self.port = port
        self.proc = None
        self.log_path = os.path.join(workdir(), f"dnsmasq-{address}-{port}.log")

    def args(self):
        a = [DNSMASQ, "--no-resolv", "--no-hosts", "--no-daemon", "--conf-file=/dev/null",
             f"--listen-address={self.address}", "--bind-interfaces", f"--port={self.port}",
             "--user=root", "--group=root", "--pid-file=", "--cache-size=0",
             "--log-queries", "--log-facility=-"]
        for d in self.local:
            a.append(f"--local=/{d}/")
        # More specific than --local: dnsmasq takes the longest match.
        for zone, server in self.forward.items():
            a.append(f"--server=/{zone}/{server}")
        for domain, records in self.mx.items():
            for pref, host in records:
                a.append(f"--mx-host={domain},{host},{pref}")
        for name, addrs in self.hosts.items():
            if isinstance(addrs, str):
                addrs = [addrs]
            # One record per address: a host record holds at most one
            # address of each family.
            for addr in addrs:
                a.append(f"--host-record={name},{addr}")
        for name, addr in self.addresses.items():
            a.append(f"--address=/{name}/{addr}")
        for name, texts in self.txt.items():
            for text in [texts] if isinstance(texts, str) else texts:
                # On the command line dnsmasq keeps quotes as text; a comma
                # would start a second string.
                assert "," not in text, text
                a.append(f"--txt-record={name},{text}")
        for address, name in self.ptr.items():
            a.append(f"--ptr-record={ipaddress.ip_address(address).reverse_pointer},{name}")
        return a

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=10.0):
        if self.running:
            return self
        use_local_resolver(self.address)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        probe = next(iter(self.hosts), None) or next(iter(self.mx), None) or "ready.invalid"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dnsmasq exited {self.proc.returncode}: {self.log()}")
            if dns_rcode(probe, server=(self.address, self.port), timeout=0.2) is not None:
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dnsmasq did not answer within {timeout}s: {self.log()}")

    def stop(self):
        """Stop answering ("DNS is down"); resolv.conf keeps pointing here."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None

    def restart(self, mx=None, hosts=None):
        """New records (replacing the old ones where given), same address."""
        self.stop()
        if mx is not None:
            self.mx = dict(mx)
        if hosts is not None:
            self.hosts = dict(hosts)
        return self.start()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class SilentDNS:
    """A name server that never answers: it reads every UDP query and
    drops it, and takes TCP connections it never reads (a firewall that
    drops packets, an overloaded server).  DNS(forward={zone: address})
    sends a zone's queries here."""

    def __init__(self, address="127.0.0.54", port=53):
        self.address = address
        self.port = port
        self.udp = self.tcp = None
        self.thread = None
        self.queries = 0

    @property
    def running(self):
        return self.udp is not None

    def start(self):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((self.address, self.port))
        self.udp.settimeout(0.2)
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((self.address, self.port))
        self.tcp.listen(16)
        udp = self.udp

        def drop():
            while self.udp is udp:
                try:
                    udp.recvfrom(4096)
                    self.queries += 1
                except OSError:
                    pass

        self.thread = threading.Thread(target=drop, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        udp, tcp = self.udp, self.tcp
        self.udp = self.tcp = None
        if self.thread is not None:
            self.thread.join(2)
            self.thread = None
        for s in (udp, tcp):
            if s is not None:
                s.close()


# ---------------------------------------------------------------------------
# TLS certificates

_certs = {}


def certificate(cn):
    """(certfile, keyfile) of a self-signed RSA certificate for `cn`, made
    once per process with openssl."""
    if cn in _certs:
        return _certs[cn]
    d = os.path.join(workdir(), "certs")
    os.makedirs(d, exist_ok=True)
    cert = os.path.join(d, f"{cn}.crt")
    key = os.path.join(d, f"{cn}.key")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-subj", f"/CN={cn}", "-days", "2", "-keyout", key, "-out", cert],
                       capture_output=True)
    if p.returncode != 0:
        raise RuntimeError(f"openssl req failed: {p.stderr.decode(errors='replace')}")
    _certs[cn] = (cert, key)
    return _certs[cn]


def server_tls_context(cn):
    cert, key = certificate(cn)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


# ---------------------------------------------------------------------------
# SMTP servers


class Received:
    """One message a server accepted (or took the data of, then dropped)."""

    def __init__(self, **kw):
        self.peer = kw["peer"]
        self.helo = kw["helo"]
        self.mail_from = kw["mail_from"]
        self.mail_options = kw["mail_options"]
        self.rcpt_tos = kw["rcpt_tos"]
        self.rcpt_options = kw["rcpt_options"]
        self.data = kw["data"]
        self.tls = kw["tls"]
        self.auth_user = kw["auth_user"]
        self.reply = kw["reply"]
        self.dropped = kw["dropped"]
        self.time = time.time()

    @property
    def message(self):
        """The message, parsed (email.message.EmailMessage)."""
        return email.message_from_bytes(self.data, policy=email.policy.default)

    def __repr__(self):
        return (f"<Received from={self.mail_from!r} to={self.rcpt_tos!r} tls={self.tls} "
                f"auth={self.auth_user!r} dropped={self.dropped} {len(self.data)} bytes>")


class Transaction:
    """One MAIL transaction as the server saw it: each RCPT and its reply."""

    def __init__(self, peer, mail_from, tls, auth_user):
        self.peer = peer
        self.mail_from = mail_from
        self.tls = tls
        self.auth_user = auth_user
        self.rcpts = []          # [(address, reply)]
        self.data_reply = None   # the reply to the final dot, "dropped", or None

    def __repr__(self):
        return f"<Transaction from={self.mail_from!r} rcpts={self.rcpts!r} data={self.data_reply!r}>"


def _reply_for(rule, address):
    if rule is None:
        return None
    if callable(rule):
        return rule(address)
    return rule.get(address.lower()) or rule.get(address)


class _Handler:
    def __init__(self, server):
        self.s = server

    # 5 arguments: aiosmtpd's "new" EHLO hook, which may edit the reply list.
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        out = []
        for r in responses:
            word = r[4:].split(" ", 1)[0].upper()
            if word == "8BITMIME" and not self.s.eight_bit_mime:
                continue
            if word == "AUTH" and self.s.auth is None:
                continue
            out.append(r)
        if self.s.pipelining:
            out.insert(len(out) - 1, "250-PIPELINING")
        return out

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        reply = _reply_for(self.s.mail_rule, address) or "250 2.1.0 OK"
        t = Transaction(session.peer, address, session.ssl is not None,
                        self.s._user_of(session))
        session.netfix_transaction = t
        with self.s.lock:
            self.s.transactions.append(t)
        if reply.startswith("2"):
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
        return reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = _reply_for(self.s.rcpt_rule, address) or "250 2.1.5 OK"
        t = getattr(session, "netfix_transaction", None)
        if t is not None:
            with self.s.lock:
                t.rcpts.append((address, reply))
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.append(list(rcpt_options))
        return reply

    async def handle_DATA(self, server, session, envelope):
        s = self.s
        drop = s.drop_after_data
        reply = s.data_reply or "250 2.0.0 Ok: queued as %d" % (len(s.messages) + 1)
        if drop:
            reply = "dropped"
        rec = Received(peer=session.peer, helo=session.host_name, mail_from=envelope.mail_from,
                       mail_options=list(envelope.mail_options), rcpt_tos=list(envelope.rcpt_tos),
                       rcpt_options=list(envelope.rcpt_options),
                       data=bytes(envelope.original_content or b""),
                       tls=session.ssl is not None, auth_user=s._user_of(session),
                       reply=reply, dropped=drop)
        with s.lock:
            t = getattr(session, "netfix_transaction", None)
            if t is not None:
                t.data_reply = reply
            if drop:
                s.dropped.append(rec)
            elif reply.startswith("2"):
                s.messages.append(rec)
            else:
                s.refused.append(rec)
        if drop:
            # The client has sent the final dot; it never hears back.
            server.transport.close()
            return "421 4.4.2 connection dropped"
        if s.stall_after_data:
            # The final dot is in; the answer takes this long (a stalled
            # server: the client gives up first).
            await asyncio.sleep(s.stall_after_data)
        return reply

    async def handle_exception(self, error):
        return "421 4.3.0 test server: %s" % error.__class__.__name__


class SMTPServer:
    """An aiosmtpd server on host:port whose answers the test controls.

    rcpt:   {address: reply} (lower-case keys) or a function address ->
            reply or None; addresses not named are accepted.  A reply is a
            whole SMTP reply, e.g. "451 4.3.0 Try again later" or
            "550 5.1.1 <x@y>... User unknown"; multi-line replies use
            "\\r\\n" between lines ("550-5.7.1 one\\r\\n550 5.7.1 two").
    mail:   the same for MAIL FROM (by sender address).
    data_reply: the reply to the final dot (default 250).
    drop_after_data: close the connection after the final dot, unanswered.
    stall_after_data: seconds to wait before answering the final dot.
    starttls: offer STARTTLS with a self-signed certificate for `name`.
    auth:   (user, password): offer AUTH PLAIN and LOGIN (after STARTTLS
            when starttls is on); require_auth: refuse MAIL until then.
    eight_bit_mime: advertise 8BITMIME (aiosmtpd does by default).
    """

    def __init__(self, host, port=25, *, name=None, rcpt=None, mail=None, data_reply=None,
                 drop_after_data=False, stall_after_data=0, starttls=False, auth=None, require_auth=False,
                 eight_bit_mime=True, pipelining=False):
        self.host = host
        self.port = port
        self.name = name or f"smtp-{host.replace('.', '-')}.test"
        self.rcpt_rule = rcpt
        self.mail_rule = mail
        self.data_reply = data_reply
        self.drop_after_data = drop_after_data
        self.stall_after_data = stall_after_data
        self.starttls = starttls
        self.auth = auth
        self.require_auth = require_auth
        self.eight_bit_mime = eight_bit_mime
        self.pipelining = pipelining
        self.lock = threading.Lock()
        self.messages = []       # Received, accepted with 2xx
        self.refused = []        # Received, data refused
        self.dropped = []        # Received, connection dropped after the data
        self.transactions = []   # Transaction, every MAIL
        self.auth_failures = []  # user names refused
        self.logins = []         # (mechanism, user) of each successful AUTH
        self.controller = None

    def _user_of(self, session):
        data = getattr(session, "auth_data", None)
        if isinstance(data, bytes):
            return data.decode(errors="replace")
        return data

    def _authenticator(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword
        if isinstance(auth_data, LoginPassword) and self.auth is not None:
            user = auth_data.login.decode(errors="replace")
            if (user, auth_data.password.decode(errors="replace")) == tuple(self.auth):
                with self.lock:
                    self.logins.append((mechanism, user))
                return AuthResult(success=True, auth_data=user)
            with self.lock:
                self.auth_failures.append(user)
        return AuthResult(success=False, handled=False)

    def start(self):
        from aiosmtpd.controller import Controller
        kwargs = dict(hostname=self.host, port=self.port, server_hostname=self.name,
                      ident="netfix test server", ready_timeout=10.0)
        if self.starttls:
            kwargs["tls_context"] = server_tls_context(self.name)
        if self.auth is not None:
            kwargs["authenticator"] = self._authenticator
            kwargs["auth_required"] = self.require_auth
            # AUTH only under TLS when TLS is offered; in the clear otherwise.
            kwargs["auth_require_tls"] = bool(self.starttls)
        self.controller = Controller(_Handler(self), **kwargs)
        self.controller.start()
        return self

    def stop(self):
        if self.controller is not None:
            try:
                self.controller.stop()
            except Exception:
                pass
            self.controller = None

    @property
    def running(self):
        return self.controller is not None

    def wait_for(self, count=1, timeout=10.0, what="messages"):
        """Wait until `count` messages (or transactions, refused, dropped)
        have been recorded; returns the list."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                got = list(getattr(self, what))
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def clear(self):
        with self.lock:
            self.messages.clear()
            self.refused.clear()
            self.dropped.clear()
            self.transactions.clear()
            self.auth_failures.clear()
            self.logins.clear()


def port_open(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout):
            return True
    except OSError:
        return False


class Network:
    """Everything a test started, to stop in one call."""

    def __init__(self):
        self.fixtures = []

    def dns(self, mx=None, hosts=None, **kw):
        d = DNS(mx=mx, hosts=hosts, **kw)
        self.fixtures.append(d)
        return d.start()

    def smtp(self, host, port=25, **kw):
        s = SMTPServer(host, port, **kw)
        self.fixtures.append(s)
        return s.start()

    def silent_dns(self, address="127.0.0.54", port=53):
        s = SilentDNS(address, port)
        self.fixtures.append(s)
        return s.start()

    def stop_all(self):
        for f in reversed(self.fixtures):
            f.stop()
        self.fixtures.clear()
        restore_resolver()


# ---------------------------------------------------------------------------
# Another machine: a second network namespace


# OutsideHost.converse_all's client, run there: a plain socket, so that
# every reply (a 554 greeting included) is seen as it was sent.
_CONVERSE = r'''
import base64, json, re, socket, ssl, sys


def session(s):
    sock = socket.create_connection((s["server"], s["port"]), timeout=120,
                                    source_address=(s["source"], 0))
    f = sock.makefile("rb")

    def reply():
        lines = []
        while True:
            line = f.readline()
            if not line:
                return "\n".join(lines)
            lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(lines)

    out = [reply()]
    closed = out[0] == ""
    for step in s["steps"]:
        if closed:
            out.append(None)
            continue
        if step.startswith("DATA:"):
            if not (out[-1] or "").startswith("354"):
                out.append(None)
                continue
            data = base64.b64decode(step[5:])
            if not data.endswith(b"\r\n"):
                data += b"\r\n"
            data = re.sub(rb"(?m)^\.", b"..", data) + b".\r\n"
        else:
            data = step.encode() + b"\r\n"
        try:
            sock.sendall(data)
            r = reply()
        except OSError:  # the server hung up (reset)
            r = ""
        out.append(r)
        closed = r == ""
        if step.upper() == "STARTTLS" and r.startswith("220"):
            ctx = ssl.create_default_context(cafile=s["cafile"])
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
            f = sock.makefile("rb")
    sock.close()
    return out


print(json.dumps([session(s) for s in json.load(sys.stdin)]))
'''


class OutsideHost:
    """A client machine outside the box: a network namespace of its own
    (held open by a sleeping `unshare --net` process), joined to the
    sandbox's namespace by the veth pair `mr-out0` (here) / `mr-out1`
    (there).  Addresses from the documentation ranges:

        here (the server)   SERVER4 198.51.100.1/24   SERVER6 2001:db8:51::1/64
        there (the client)  CLIENT4 198.51.100.7/24   CLIENT6 2001:db8:51::7/64

    `add_address(a)` gives it another IPv4 address in 198.51.100.0/24
    (one more machine out there).  `run(argv)` runs a program there
    (nsenter --net), as root; the file system is the sandbox's.
    `converse_all(sessions)` holds SMTP dialogues from there, every reply
    kept.  Only ever inside the compat sandbox."""

    SERVER4, CLIENT4 = "198.51.100.1", "198.51.100.7"
    SERVER6, CLIENT6 = "2001:db8:51::1", "2001:db8:51::7"
    HERE, THERE = "mr-out0", "mr-out1"

    def __init__(self):
        if not os.environ.get("COMPAT_WORK"):
            raise RuntimeError("netfix.OutsideHost runs only inside the compat sandbox")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["unshare", "--net", "--", "sleep", "infinity"],
                                     stdin=subprocess.DEVNULL)
        ns = f"/proc/{self.proc.pid}/ns/net"
        deadline = time.monotonic() + 10
        while os.readlink(ns) == os.readlink("/proc/self/ns/net"):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("unshare --net did not start")
            time.sleep(0.02)
        here = [["ip", "link", "add", self.HERE, "type", "veth", "peer", "name", self.THERE,
                 "netns", str(self.proc.pid)],
                ["ip", "addr", "add", f"{self.SERVER4}/24", "dev", self.HERE],
                ["ip", "-6", "addr", "add", f"{self.SERVER6}/64", "dev", self.HERE, "nodad"],
                ["ip", "link", "set", self.HERE, "up"]]
        there = [["ip", "link", "set", "lo", "up"],
                 ["ip", "addr", "add", f"{self.CLIENT4}/24", "dev", self.THERE],
                 ["ip", "-6", "addr", "add", f"{self.CLIENT6}/64", "dev", self.THERE, "nodad"],
                 ["ip", "link", "set", self.THERE, "up"]]
        for argv in here:
            self._check(subprocess.run(argv, capture_output=True), argv)
        for argv in there:
            self._check(self.run(argv), argv)
        # Both ends carry traffic (LOWER_UP) and no address is still
        # tentative before a test connects.
        def ready(run, dev):
            link = run(["ip", "-o", "link", "show", "dev", dev]).stdout.decode()
            addrs = run(["ip", "-o", "addr", "show", "dev", dev]).stdout.decode()
            return "LOWER_UP" in link and "tentative" not in addrs

        def here(argv):
            return subprocess.run(argv, capture_output=True)

        deadline = time.monotonic() + 10
        while not (ready(here, self.HERE) and ready(self.run, self.THERE)):
            if time.monotonic() > deadline:
                raise RuntimeError("the veth pair to the outside host did not come up")
            time.sleep(0.05)
        return self

    def add_address(self, address):
        """Another IPv4 address on the outside host (198.51.100.0/24),
        usable as a client's source address once this returns."""
        argv = ["ip", "addr", "add", f"{address}/24", "dev", self.THERE]
        p = self.run(argv)
        if p.returncode != 0 and b"File exists" not in p.stderr:
            self._check(p, argv)
        return address

    @staticmethod
    def _check(p, argv):
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {p.stderr.decode(errors='replace')}")

    def run(self, argv, input=None, timeout=60):
        """Run `argv` on the outside host; a CompletedProcess (bytes)."""
        return subprocess.run(["nsenter", f"--net=/proc/{self.proc.pid}/ns/net", "--"] + list(argv),
                              input=input, capture_output=True, timeout=timeout)

    def python(self, code, timeout=60):
        """Run a python3 script there; its standard output as text (it
        must exit 0)."""
        p = self.run(["python3", "-c", code], timeout=timeout)
        if p.returncode != 0:
            raise AssertionError(f"python3 on the outside host exited {p.returncode}: "
                                 f"{(p.stdout + p.stderr).decode(errors='replace')}")
        return p.stdout.decode()

    def converse_all(self, sessions, timeout=300):
        """SMTP sessions from this host, one after another, each a dict:

            steps:  command lines; "STARTTLS" (on 220, TLS follows,
                    checked against `cafile` for the name "localhost");
                    "DATA:" + the base64 of a message with CRLF line ends
                    (sent dot-stuffed and ended with the dot, when the
                    reply before it was 354)
            source: the client's address (default CLIENT4)
            server, port: where to connect (default SERVER4, 25)
            cafile: for STARTTLS

        Returns per session the greeting and the reply to each step (its
        lines joined by newlines; "" when the server closed the connection
        instead; None for a step not sent: after the close, or a message
        whose DATA was not answered 354)."""
        script = os.path.join(workdir(), "converse.py")
        if not os.path.exists(script):
            with open(script, "w") as f:
                f.write(_CONVERSE)
        full = [dict({"source": self.CLIENT4, "server": self.SERVER4, "port": 25}, **s)
                for s in sessions]
        p = self.run([sys.executable, script], input=json.dumps(full).encode(), timeout=timeout)
        if p.returncode != 0:
            raise AssertionError(f"SMTP client on the outside host exited {p.returncode}: "
                                 f"{(p.stdout + p.stderr).decode(errors='replace')}")
        return json.loads(p.stdout)

    def stop(self):
        subprocess.run(["ip", "link", "del", self.HERE], capture_output=True)
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

