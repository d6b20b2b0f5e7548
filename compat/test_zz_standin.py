"""TEMPORARY (not committed): the panel fixtures with a stand-in CGI."""
import os, unittest, urllib.parse
import mr, panelfix as px, pop3fix as pf

STANDIN = """#!/bin/sh
printf 'Status: 200 OK\\r\\nContent-Type: text/html\\r\\nSet-Cookie: __Host-mailroom=abc; Path=/; Secure; HttpOnly; SameSite=Strict\\r\\n\\r\\n'
echo "<html><body><form id=login method=post action=login><input name=name><input type=password name=password><button type=submit>Log in</button></form><pre>"
echo "USER=$(id -un) PATH_INFO=[$PATH_INFO] SCRIPT_NAME=[$SCRIPT_NAME] HTTPS=[$HTTPS] METHOD=[$REQUEST_METHOD] QS=[$QUERY_STRING] GI=[$GATEWAY_INTERFACE] RA=[$REMOTE_ADDR] COOKIE=[$HTTP_COOKIE]"
[ "$REQUEST_METHOD" = POST ] && echo "BODY=[$(head -c "$CONTENT_LENGTH")]"
echo "</pre></body></html>"
"""

class Standin(unittest.TestCase):
    def setUp(self):
        os.makedirs("/usr/libexec/mailroom", exist_ok=True)
        with open(px.PANEL, "w") as f: f.write(STANDIN)
        os.chmod(px.PANEL, 0o755)
        with open(px.HELPER, "w") as f: f.write("#!/bin/sh\n")
        os.chmod(px.HELPER, 0o755)
        self.ca = pf.install_certificate()
        self.shots = mr.artifact_dir("standin")

    def check(self, server):
        w = server().start()
        self.addCleanup(w.stop)
        c = px.Client(w.base, self.ca)
        p = c.get("d/shop.example/m/a@shop.example?x=1")
        print(w.name, p.status, p.body, p.headers, w.log())
        p2 = c.submit(c.get(""), "login", {"name": "a b&c", "password": "p"}, follow=False)
        print(w.name, p2.status, p2.body)
        b = px.Browser(self.shots, ["--ignore-certificate-errors"])
        try:
            b.get(w.base + "/", f"{w.name}-root")
            print(b.source[:500])
            b.fill("login", {"name": "x@y", "password": "z"}, f"{w.name}-posted")
            print(b.source[:800])
        finally:
            b.quit()

    def test_apache(self): self.check(px.Apache)
    def test_nginx(self): self.check(px.Nginx)
    def test_ownport(self):
        w = px.OwnPort().start()
        print(w.setup_out)
        w.stop()
        print(w.off_out)
