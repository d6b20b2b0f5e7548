"""Fixtures for the web control panel's scenarios (src/panel: the page
map in src/panel/mod.rs, the operations in src/panel/protocol.rs).

* Where the panel is served, each as an admin sets it up from the shipped
  files, with a private configuration in the sandbox and the self-signed
  certificate of pop3fix (for localhost):
  - `Apache`: apache2 with mod_cgid and mod_ssl, the site's https
    VirtualHost on 127.0.0.1:443 including
    /usr/share/mailroom/web/apache-mailroom-panel.conf as installed
    (`ScriptAlias /mail ...`); everything else denied, as Debian's
    apache2.conf has it.
  - `Nginx`: nginx on 127.0.0.1:443 including nginx-mailroom-panel.conf,
    and fcgiwrap as www-data on /run/fcgiwrap.socket (the socket made
    here, 0660 www-data, as Debian's fcgiwrap.socket unit makes it).
  - `OwnPort`: `mailroom setup panel on --inetd` with the sandbox's real
    openbsd-inetd running (test_services.InetdRunning): `panel --inetd`
    on 8443, one process per connection; `off` afterwards.
  Each has `base`, the URL of the panel's `/` (https://localhost/mail or
  https://localhost:8443), and `log()`, its error log.
* `Shop`: the box the scenarios share: shop.example and other.example
  (virtual domains, `mailroom domain add --virtual`), their postmasters and a few
  mailboxes made with the `mailroom` command, mobile.example's and
  customer.example's MX hosts (aiosmtpd sinks found through dnsmasq),
  pop3d under inetd (sitefix.Site); /etc/mail, the accounts files, the
  mailboxes and the panel's state put back afterwards.
* `Client`: one browser's cookies over http.client (each request a new
  connection), with the pages' forms parsed (`Page.form(ID)`), for the
  security scenarios' exact requests.
* `Browser`: headless Chromium through Selenium and chromedriver (the
  recipe of Debian 12: --headless=new, --no-sandbox as root), a screenshot
  of every page it shows into an artifacts directory (mr.artifact_dir).

Everything runs as root inside the compat sandbox (lib/sandbox.sh).
"""

import html.parser
import http.client
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse

import mr
import pop3fix as pf
import sitefix

MAILROOM = "/usr/sbin/mailroom"
PANEL = "/usr/libexec/mailroom/panel"
HELPER = "/usr/libexec/mailroom/panel-helper"
WEB = "/usr/share/mailroom/web"
APACHE = "/usr/sbin/apache2"
APACHE_MODULES = "/usr/lib/apache2/modules"
NGINX = "/usr/sbin/nginx"
FCGIWRAP = "/usr/sbin/fcgiwrap"
FCGI_SOCKET = "/run/fcgiwrap.socket"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
STATE = "/var/spool/mailroom/panel"
ROLES = "/etc/mail/panel-admins"
SESSION_COOKIE = "__Host-mailroom"
PRE_COOKIE = "__Host-mailroom-pre"

# The box's domains and their people (passwords as typed into the forms).
SHOP, OTHER = "shop.example", "other.example"
POSTMASTER, POSTMASTER_PW = f"postmaster@{SHOP}", "Shop-Post-4711"
OTHER_POSTMASTER, OTHER_POSTMASTER_PW = f"postmaster@{OTHER}", "Other-Post-0815"
# Mail for the catch-all, the forwarded and answered address, a clerk
# (a mailbox user of shop.example), a mailbox of other.example.
ORDERS, SUPPORT = f"orders@{SHOP}", f"support@{SHOP}"
CLERK, CLERK_PW = f"clerk@{SHOP}", "Clerk-Pass-31"
OTHER_BOX = f"desk@{OTHER}"
BOX_PW = "Box-Pass-27"
# Out on the internet: the forward's target and the customer who writes.
MOBILE, MOBILE_MX = "mobile.example", "127.0.0.2"
CUSTOMER, CUSTOMER_MX = "customer.example", "127.0.0.3"


def missing():
    """What the panel's scenarios lack here, or None."""
    absent = [p for p in (MAILROOM, PANEL, HELPER, pf.INETD, pf.CURL) if not os.access(p, os.X_OK)]
    if absent:
        return f"not installed: {' '.join(absent)}"
    return None


def admin(*args, input=None, check=True):
    """`mailroom ARGS` as root (the shell's admin)."""
    p = mr.run([MAILROOM] + list(args), input=input)
    if check and p.returncode != 0:
        raise AssertionError(f"mailroom {' '.join(args)} exited {p.returncode}: "
                             f"{(p.stdout + p.stderr).decode(errors='replace')}")
    return p


def add_mailbox(address, password):
    admin("mailbox", "add", address, "--password-stdin", input=f"{password}\n".encode())


def user_of(address):
    """The system user `mailroom mailbox add` made for `address`."""
    import json
    rows = json.loads(admin("mailbox", "list", "--json").stdout.decode())
    for r in rows:
        if r["address"] == address:
            return r["user"]
    raise AssertionError(f"{address} is not a mailbox: {[r['address'] for r in rows]}")


def wait_until(cond, timeout=10.0, step=0.05):
    return pf.wait_until(cond, timeout, step=step)


def listening(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), 0.5):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------
# The box


class Shop:
    """The box the panel scenarios share (see the module's text).  Made in
    setUpClass with the class's addClassCleanup; `site` is the sitefix.Site
    (sinks: `mobile`, `customer`)."""

    def __init__(self, cleanup, config=""):
        snaps = [(mr.restore_etc_mail, mr.snapshot_etc_mail()),
                 (mr.restore_files, mr.snapshot_files(mr.PASSWD_FILES))]
        for top in (pf.SPOOL, "/var/spool/mailroom"):
            snaps.append((lambda snap, top=top: mr.restore_tree(top, snap), mr.snapshot_tree(top)))
        for restore, snap in snaps:
            cleanup(restore, snap)
        cleanup(mr.clear_queue)
        mr.clear_queue()
        # Quick POP3 refusals; the panel's own slowing is its scenario's.
        sitefix.configure("pop3_auth_fail_delay = 0\nsmtp_auth_fail_delay = 0\n" + config)
        self.ca = pf.install_certificate()
        self.site = sitefix.Site(cleanup, remotes={MOBILE: MOBILE_MX, CUSTOMER: CUSTOMER_MX},
                                 pop3=True)
        self.mobile = self.site.sinks[MOBILE]
        self.customer = self.site.sinks[CUSTOMER]
        # Virtual domains, as hosted customers' are: there postmaster@ is
        # no alias of root's (aliases serve only the local names), so each
        # domain has its own, its admin.
        for d in (SHOP, OTHER):
            admin("domain", "add", d, "--virtual")
        for a, pw in ((POSTMASTER, POSTMASTER_PW), (OTHER_POSTMASTER, OTHER_POSTMASTER_PW),
                      (ORDERS, BOX_PW), (SUPPORT, BOX_PW), (CLERK, CLERK_PW), (OTHER_BOX, BOX_PW)):
            add_mailbox(a, pw)

    def log(self):
        return self.site.log()


def pop3_count(login, password):
    """curl pop3:// as LOGIN: the number of messages, or None when the
    login is refused."""
    p = pf.curl(["--user", f"{login}:{password}", f"pop3://127.0.0.1:{pf.PORT}/"])
    if p.returncode != 0:
        return None
    return len([l for l in p.stdout.decode().splitlines() if l.strip()])


def deliver(rcpt, message, sender):
    """Mail from outside (`sendmail -odi -f SENDER`), then a queue run for
    what it made: forwards, autoreplies."""
    pf.submit(rcpt, message, sender=sender)
    mr.run(["/usr/sbin/sendmail", "-q"], timeout=120)


# ---------------------------------------------------------------------------
# Where the panel is served


def _self_signed():
    """(cert, key) of the box's certificate (pop3fix's, for localhost)."""
    return pf.certificate()


class _Server:
    name = "?"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix=f"{self.name}.", dir=pf.workdir())
        self.proc = None

    def log(self):
        out = []
        for f in sorted(os.listdir(self.dir)):
            if f.endswith(".log"):
                with open(os.path.join(self.dir, f), errors="replace") as fh:
                    out.append(f"--- {f}\n{fh.read()[-6000:]}")
        return "\n".join(out)

    def wait_listening(self, port):
        if not wait_until(lambda: listening(port) or self.proc.poll() is not None, 15):
            raise AssertionError(f"{self.name}: nothing listens on {port}:\n{self.log()}")
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.log()}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Apache(_Server):
    """apache2 with the shipped snippet in an https VirtualHost."""

    name = "apache"
    base = "https://localhost/mail"

    @staticmethod
    def available():
        return mr.have(APACHE, "apache2")

    def start(self):
        cert, key = _self_signed()
        # The web server's user reaches the CGI daemon's socket and the
        # site's files; the fixtures' own directories are root's alone.
        run = "/run/apache2-compat"
        os.makedirs(run, 0o755, exist_ok=True)
        docs = os.path.join(run, "htdocs")
        os.makedirs(docs, 0o755, exist_ok=True)
        mods = ["mpm_event", "authz_core", "alias", "cgid", "ssl", "socache_shmcb"]
        conf = os.path.join(self.dir, "apache2.conf")
        with open(conf, "w") as f:
            f.write("# compat/panelfix.py: a site served over https, the panel at /mail\n")
            for m in mods:
                f.write(f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so\n")
            f.write(f"""ServerRoot {self.dir}
ServerName localhost
Listen 127.0.0.1:443
User www-data
Group www-data
PidFile {self.dir}/apache2.pid
ErrorLog {self.dir}/error.log
LogLevel warn cgid:info
ScriptSock {run}/cgisock
DefaultRuntimeDir {self.dir}
# As Debian's apache2.conf: nothing of the file system is served unless
# a section says so.
<Directory />
    Options FollowSymLinks
    AllowOverride None
    Require all denied
</Directory>
<VirtualHost 127.0.0.1:443>
    ServerName localhost
    DocumentRoot {docs}
    <Directory {docs}>
        Require all granted
    </Directory>
    SSLEngine on
    SSLCertificateFile {cert}
    SSLCertificateKeyFile {key}
    Include {WEB}/apache-mailroom-panel.conf
</VirtualHost>
""")
        err = open(os.path.join(self.dir, "stderr.log"), "ab")
        self.proc = subprocess.Popen([APACHE, "-f", conf, "-DFOREGROUND"], stdin=subprocess.DEVNULL,
                                     stdout=err, stderr=subprocess.STDOUT)
        err.close()
        self.wait_listening(443)
        return self


class Nginx(_Server):
    """nginx with the shipped location, and fcgiwrap behind it."""

    name = "nginx"
    base = "https://localhost/mail"

    @staticmethod
    def available():
        return mr.have(NGINX, "nginx-light") and mr.have(FCGIWRAP, "fcgiwrap")

    def __init__(self):
        super().__init__()
        self.fcgi = None
        self.sock = None

    def start(self):
        cert, key = _self_signed()
        # fcgiwrap takes its listening socket as standard input (FastCGI's
        # convention), so the socket is made here as Debian's unit makes it.
        if os.path.lexists(FCGI_SOCKET):
            os.unlink(FCGI_SOCKET)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(FCGI_SOCKET)
        www = __import__("pwd").getpwnam("www-data")
        os.chown(FCGI_SOCKET, www.pw_uid, www.pw_gid)
        os.chmod(FCGI_SOCKET, 0o660)
        self.sock.listen(64)
        flog = open(os.path.join(self.dir, "fcgiwrap.log"), "ab")
        self.fcgi = subprocess.Popen(["setpriv", f"--reuid={www.pw_uid}", f"--regid={www.pw_gid}",
                                      "--init-groups", "--", FCGIWRAP, "-f", "-c", "2"],
                                     stdin=self.sock.fileno(), stdout=flog, stderr=subprocess.STDOUT,
                                     env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        flog.close()
        # Stock fastcgi_params: the snippet includes it by its relative name.
        shutil.copy("/etc/nginx/fastcgi_params", os.path.join(self.dir, "fastcgi_params"))
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""# compat/panelfix.py: a site served over https, the panel at /mail
daemon off;
user www-data;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {self.dir}/access.log;
    client_body_temp_path {self.dir}/body;
    fastcgi_temp_path {self.dir}/fastcgi;
    proxy_temp_path {self.dir}/proxy;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    server {{
        listen 127.0.0.1:443 ssl;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        include {WEB}/nginx-mailroom-panel.conf;
    }}
}}
""")
        err = open(os.path.join(self.dir, "stderr.log"), "ab")
        self.proc = subprocess.Popen([NGINX, "-c", conf, "-p", self.dir], stdin=subprocess.DEVNULL,
                                     stdout=err, stderr=subprocess.STDOUT)
        err.close()
        self.wait_listening(443)
        return self

    def stop(self):
        super().stop()
        if self.fcgi is not None:
            self.fcgi.terminate()
            try:
                self.fcgi.wait(10)
            except subprocess.TimeoutExpired:
                self.fcgi.kill()
                self.fcgi.wait()
            self.fcgi = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if os.path.lexists(FCGI_SOCKET):
            os.unlink(FCGI_SOCKET)


class OwnPort(_Server):
    """The panel on its own TLS port: `mailroom setup panel on --inetd`
    with the system's inetd running, as on a box without a web server."""

    name = "ownport"
    base = "https://localhost:8443"

    @staticmethod
    def available():
        return mr.have(pf.INETD, "openbsd-inetd")

    def start(self):
        import test_services
        with open(test_services.INETD_CONF, "rb") as f:
            self.pristine = f.read()
        self.inetd = test_services.InetdRunning()
        p = admin("setup", "panel", "on", "--inetd", check=False)
        self.setup_out = (p.stdout + p.stderr).decode(errors="replace")
        if p.returncode != 0:
            self.stop()
            raise AssertionError(f"mailroom setup panel on exited {p.returncode}:\n{self.setup_out}")
        if not wait_until(lambda: listening(8443), 10):
            raise AssertionError(f"nothing listens on 8443:\n{self.setup_out}")
        return self

    def log(self):
        return self.setup_out

    def stop(self):
        import test_services
        p = admin("setup", "panel", "off", "--inetd", check=False)
        self.off_out = (p.stdout + p.stderr).decode(errors="replace")
        self.inetd.stop()
        with open(test_services.INETD_CONF, "wb") as f:
            f.write(self.pristine)


# ---------------------------------------------------------------------------
# A browser's requests, one by one


class Form:
    def __init__(self, attrs):
        self.id = attrs.get("id")
        self.action = attrs.get("action") or ""
        self.method = (attrs.get("method") or "get").lower()
        # [(name, type, value, checked)] in document order; textareas are
        # type "textarea", selects "select" with the selected value.
        self.fields = []

    def names(self):
        return [f[0] for f in self.fields]

    def kind(self, name):
        for n, t, _, _ in self.fields:
            if n == name:
                return t
        return None

    def values(self):
        """What the browser would send as it stands: (name, value) pairs."""
        out = []
        for n, t, v, checked in self.fields:
            if t in ("checkbox", "radio") and not checked:
                continue
            if t in ("submit", "button", "reset", "image"):
                continue
            out.append((n, v))
        return out

    def text_fields(self):
        """The fields a person types text into."""
        return [n for n, t, _, _ in self.fields
                if t in ("text", "textarea", "email", "search", "url", "tel", "date", "")]

    def __repr__(self):
        return f"<form#{self.id} {self.method} {self.action} {self.fields}>"


class _PageParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms = []
        self.links = []
        self.form = None
        self.textarea = None
        self.select = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self.form = Form(a)
            self.forms.append(self.form)
        elif tag == "a" and "href" in a:
            self.links.append(a["href"])
        elif self.form is None:
            return
        elif tag == "input" and a.get("name"):
            t = a.get("type", "text").lower()
            self.form.fields.append((a["name"], t, a.get("value", "on" if t == "checkbox" else ""),
                                     "checked" in a))
        elif tag == "button" and a.get("name"):
            self.form.fields.append((a["name"], "submit", a.get("value", ""), False))
        elif tag == "textarea" and a.get("name"):
            self.textarea = [a["name"], ""]
        elif tag == "select" and a.get("name"):
            self.select = [a["name"], None, None]
        elif tag == "option" and self.select is not None:
            v = a.get("value", "")
            if self.select[2] is None:
                self.select[2] = v
            if "selected" in a:
                self.select[1] = v

    def handle_data(self, data):
        if self.textarea is not None:
            self.textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "textarea" and self.textarea is not None and self.form is not None:
            self.form.fields.append((self.textarea[0], "textarea", self.textarea[1], False))
            self.textarea = None
        elif tag == "select" and self.select is not None and self.form is not None:
            n, sel, first = self.select
            self.form.fields.append((n, "select", sel if sel is not None else (first or ""), False))
            self.select = None
        elif tag == "form":
            self.form = None


class Page:
    """One response: `status`, `headers` ([(name, value)], names lower
    case), `body` (text), `url` (where it was asked), its forms and links."""

    def __init__(self, url, status, headers, body):
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body
        p = _PageParser()
        try:
            p.feed(body)
            p.close()
        except Exception:
            pass
        self.forms = p.forms
        self.links = p.links

    def header(self, name):
        name = name.lower()
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def all_headers(self, name):
        return [v for n, v in self.headers if n == name.lower()]

    def form(self, form_id):
        for f in self.forms:
            if f.id == form_id:
                return f
        raise AssertionError(f"no form#{form_id} at {self.url} ({self.status}); forms: "
                             f"{[f.id for f in self.forms]}\n{self.body[:3000]}")

    def has_form(self, form_id):
        return any(f.id == form_id for f in self.forms)

    def __repr__(self):
        return f"<Page {self.status} {self.url}>"


def parse_set_cookie(value):
    """(name, value, {attribute lower: value or True})."""
    parts = [p.strip() for p in value.split(";")]
    name, _, val = parts[0].partition("=")
    attrs = {}
    for p in parts[1:]:
        k, sep, v = p.partition("=")
        attrs[k.strip().lower()] = v.strip() if sep else True
    return name.strip(), val.strip(), attrs


class Client:
    """One browser's cookie jar against the panel at `base`, over https
    checked against `cafile`; each request on a new connection."""

    def __init__(self, base, cafile, source=None):
        self.base = base.rstrip("/")
        u = urllib.parse.urlsplit(self.base)
        self.host, self.port = u.hostname, u.port or 443
        self.prefix = u.path
        self.ctx = ssl.create_default_context(cafile=cafile)
        self.source = source
        self.cookies = {}
        self.set_cookies = []  # every Set-Cookie value seen, in order

    def url(self, path):
        """The URL of a panel path ("home", "d/shop.example", or "/")."""
        return self.base + "/" + path.lstrip("/")

    def request(self, method, path_or_url, fields=None, headers=None, cookies=None):
        """One request.  path_or_url: a panel path or an absolute path/URL
        the panel gave.  fields: [(name, value)] sent as a form.  cookies:
        instead of the jar's."""
        if path_or_url.startswith("https://"):
            url = path_or_url
        elif path_or_url.startswith("/"):
            url = f"https://{self.host}:{self.port}{path_or_url}"
        else:
            url = self.url(path_or_url)
        u = urllib.parse.urlsplit(url)
        target = u.path + (f"?{u.query}" if u.query else "")
        h = {"Host": self.host if self.port == 443 else f"{self.host}:{self.port}",
             "User-Agent": "compat-panel/1", "Connection": "close"}
        jar = self.cookies if cookies is None else cookies
        if jar:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        body = None
        if fields is not None:
            body = urllib.parse.urlencode(list(fields)).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
            h["Origin"] = f"https://{h['Host']}"
        h.update(headers or {})
        kw = {"source_address": (self.source, 0)} if self.source else {}
        c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=60, **kw)
        try:
            c.request(method, target, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            hdrs = [(k.lower(), v) for k, v in r.getheaders()]
        finally:
            c.close()
        page = Page(url, r.status, hdrs, data.decode("utf-8", errors="replace"))
        if cookies is None:
            for v in page.all_headers("set-cookie"):
                self.set_cookies.append(v)
                name, val, attrs = parse_set_cookie(v)
                if val == "" or attrs.get("max-age") == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = val
        return page

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def follow(self, page, limit=5, cookies=None):
        """Follow redirects (303 and the like) with GETs (with `cookies`
        instead of the jar's, when given)."""
        while page.status in (301, 302, 303, 307, 308) and limit > 0:
            loc = page.header("location")
            page = self.get(urllib.parse.urljoin(page.url, loc), cookies=cookies)
            limit -= 1
        return page

    def submit(self, page, form_id, fields=None, drop=(), follow=True):
        """Post form#FORM_ID of `page` as a browser would: its values as
        they stand, `fields` ({name: value}; a list value repeats the name)
        replacing them, the names in `drop` left out."""
        form = page.form(form_id)
        return self.post_form(page, form, fields, drop, follow)

    def post_form(self, page, form, fields=None, drop=(), follow=True):
        fields = dict(fields or {})
        out = [(n, v) for n, v in form.values() if n not in fields and n not in drop]
        for n, v in fields.items():
            if v is None:
                continue
            for one in (v if isinstance(v, list) else [v]):
                out.append((n, one))
        action = urllib.parse.urljoin(page.url, form.action) if form.action else page.url
        r = self.request(form.method.upper() if form.method == "post" else "POST", action, fields=out)
        return self.follow(r) if follow else r

    def login(self, name, password):
        """The login form filled and posted; the page it leads to."""
        page = self.get("/" if self.prefix == "" else self.prefix + "/")
        return self.submit(page, "login", {"name": name, "password": password})

    def csrf(self, page=None):
        """The session's CSRF token, from any form of `page` (home by
        default)."""
        page = page or self.follow(self.get("home"))
        for f in page.forms:
            for n, v in f.values():
                if n == "csrf":
                    return v
        raise AssertionError(f"no csrf field at {page.url}:\n{page.body[:2000]}")


# ---------------------------------------------------------------------------
# A real browser


def selenium_available():
    try:
        import selenium  # noqa: F401
    except ImportError:
        mr.lacking("selenium for /usr/bin/python3 (package python3-selenium)")
        return False
    return mr.have(CHROMIUM, "chromium") and mr.have(CHROMEDRIVER, "chromium-driver")


class Browser:
    """Headless Chromium driven through chromedriver; `shot(name)` keeps a
    numbered PNG of the page in `shots`."""

    def __init__(self, shots, extra_args=()):
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
        self.shots = shots
        self.count = 0
        home = tempfile.mkdtemp(prefix="chromium.", dir=pf.workdir())
        opts = Options()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                  "--window-size=1024,900", f"--user-data-dir={home}/profile",
                  "--no-first-run", "--disable-background-networking", "--disable-sync",
                  "--disable-component-update", "--disable-default-apps") + tuple(extra_args):
            opts.add_argument(a)
        # The profile, caches and crash dumps stay in the sandbox's /tmp.
        env = {"HOME": home, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        service = Service(CHROMEDRIVER, log_path=os.path.join(home, "chromedriver.log"), env=env)
        self.driver = webdriver.Chrome(service=service, options=opts)
        self.driver.set_page_load_timeout(60)

    def quit(self):
        try:
            self.driver.quit()
        except Exception:
            pass

    def shot(self, name):
        self.count += 1
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")
        path = os.path.join(self.shots, f"{self.count:02d}-{safe}.png")
        # The whole page, not only what the window shows.
        height = self.driver.execute_script(
            "return Math.max(document.body ? document.body.scrollHeight : 0, 600)")
        self.driver.set_window_size(1024, min(height + 120, 6000))
        self.driver.save_screenshot(path)
        return path

    def get(self, url, name):
        self.driver.get(url)
        self.shot(name)

    @property
    def source(self):
        return self.driver.page_source

    @property
    def url(self):
        return self.driver.current_url

    def form(self, form_id):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, f"form#{form_id}")

    def has_form(self, form_id):
        from selenium.webdriver.common.by import By
        return bool(self.driver.find_elements(By.CSS_SELECTOR, f"form#{form_id}"))

    def fill(self, form_id, values, name, submit=True):
        """Type `values` ({field: text, or True/False for a checkbox}) into
        form#FORM_ID, as a person would, and press its submit button; then a
        screenshot called `name`."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select
        form = self.form(form_id)
        for field, value in values.items():
            els = form.find_elements(By.NAME, field)
            if not els:
                raise AssertionError(f"form#{form_id} has no field {field!r}:\n"
                                     f"{form.get_attribute('outerHTML')[:3000]}")
            el = els[0]
            kind = (el.get_attribute("type") or "").lower()
            tag = el.tag_name.lower()
            if kind == "checkbox":
                if el.is_selected() != bool(value):
                    el.click()
            elif tag == "select":
                Select(el).select_by_value(value)
            elif kind == "date":
                # A date input's keystrokes follow the locale: set its value.
                self.driver.execute_script("arguments[0].value = arguments[1]", el, value)
            else:
                el.clear()
                el.send_keys(value)
        if submit:
            buttons = form.find_elements(By.CSS_SELECTOR, "button[type=submit], input[type=submit], "
                                                          "button:not([type])")
            if not buttons:
                raise AssertionError(f"form#{form_id} has no submit button")
            before = self.driver.find_element(By.TAG_NAME, "html")
            buttons[0].click()
            self.loaded(before)
        self.shot(name)

    def loaded(self, before):
        """Wait until the page `before` (its html element) has been
        replaced by the answer, and that has loaded."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        def gone(_):
            # Stale, or (chromedriver, mid-navigation) no longer in the
            # document: either way the old page is gone.
            try:
                before.is_enabled()
                return False
            except WebDriverException:
                return True
        WebDriverWait(self.driver, 60).until(gone)
        WebDriverWait(self.driver, 60).until(
            lambda d: d.execute_script("return document.readyState") == "complete")
