"""The admin checks what receivers will see of the box before it goes
live: `mailroom check --dns` (issue 19), against zones served by dnsmasq.

The box is mx.example.test, hosting the virtual domain shop.example.  Its
way out is a second network namespace playing the internet
(netfix.OutsideHost): the default routes lead there, so the box sends from
198.51.100.1 and 2001:db8:51::1, and shop.example from its own
198.51.100.9 (/etc/mail/source-addresses).  Both domains have DKIM keys
made by `mailroom dkim generate`; the TLS certificate is issued by a test
CA that SSL_CERT_FILE makes the system's CA for the check.  The zones
start right: MX, SPF (an ip4/ip6 list for shop.example, `a` for the host
name), the DKIM records as `mailroom dkim` printed them, DMARC at
_dmarc.shop.example and, for the host name, at its parent example.test
(the tree walk), PTRs naming the host, and a blocklist zone that lists
nobody.  That box reports nothing and exits 0.

Then one fault at a time, each reported with what to publish, and each
fix pasted back into the zone (the lines as printed) makes the report
clean again:

* SPF that leaves the box out (an include: of a provider's record that
  does not cover it) -- evaluated by the real SPF evaluator;
* a DKIM record holding another key than the one on disk;
* no DMARC record;
* a PTR whose name does not resolve back to the address;
* a listed address (the blocklist zone answers 127.0.0.2 with a TXT
  reason), next to a list answering 127.255.255.254 (a warning about the
  resolver, not a listing);
* a certificate that expires in 5 days (a warning: exit 0);
* DNS that does not answer: everything "not checked", nothing blamed on
  the domains, exit 75.

Needs dnsmasq (dnsmasq-base), openssl, iproute2 and util-linux's
nsenter/unshare; runs as root inside the compat sandbox.
"""

import copy
import ipaddress
import json
import os
import shutil
import subprocess
import unittest

import mr
import netfix

O = netfix.OutsideHost
HOST = mr.HOST
SHOP = "shop.example"
BOX4, BOX6 = O.SERVER4, O.SERVER6
SHOP4 = "198.51.100.9"
TLS = "/etc/mail/tls"
LOCAL_ZONES = ("example", "test", "invalid", "in-addr.arpa", "ip6.arpa")
LIST = "dnsbl.example"
REFUSING = "refuse.example"


def openssl(*args):
    p = subprocess.run(["openssl"] + list(args), capture_output=True)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {args[0]}: {p.stderr.decode(errors='replace')}")


def make_ca(d):
    """A test CA (key and certificate) in `d`; its certificate's path."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", "/CN=mailroom test CA", "-days", "3650",
            "-keyout", os.path.join(d, "ca.key"), "-out", os.path.join(d, "ca.crt"))
    return os.path.join(d, "ca.crt")


def install_certificate(d, days, names=(HOST,)):
    """A server certificate from the test CA for `names`, valid `days`,
    put where the SMTP server and pop3d read it."""
    key, csr, crt = (os.path.join(d, f"mail-{days}.{x}") for x in ("key", "csr", "crt"))
    ext = os.path.join(d, f"mail-{days}.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n"
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", f"/CN={names[0]}", "-keyout", key, "-out", csr)
    openssl("x509", "-req", "-in", csr, "-CA", os.path.join(d, "ca.crt"),
            "-CAkey", os.path.join(d, "ca.key"), "-CAcreateserial", "-days", str(days),
            "-extfile", ext, "-out", crt)
    os.makedirs(TLS, mode=0o755, exist_ok=True)
    shutil.copyfile(crt, os.path.join(TLS, "mail.crt"))
    shutil.copyfile(key, os.path.join(TLS, "mail.key"))
    os.chmod(os.path.join(TLS, "mail.key"), 0o600)


def zone_entries(text):
    """{DNS name: TXT text} from `mailroom dkim generate|show` output."""
    out = {}
    name = None
    for line in text.splitlines():
        if not line.startswith("\t"):
            name = line.split()[0].rstrip(".")
            out[name] = ""
        out[name] += "".join(line.split('"')[1::2])
    return out


def paste(zones, line):
    """Publish one zone-file line as the check printed it (TXT, A, AAAA,
    PTR, MX) in `zones`: a TXT, PTR or MX replaces the name's record of
    that type, an address is added."""
    name, _, kind, rest = line.split(None, 3)
    name = name.rstrip(".")
    if kind == "TXT":
        zones["txt"][name] = "".join(rest.split('"')[1::2])
    elif kind in ("A", "AAAA"):
        addresses = zones["hosts"].setdefault(name, [])
        if rest not in addresses:
            addresses.append(rest)
    elif kind == "PTR":
        address = next(a for a in (BOX4, SHOP4, BOX6)
                       if ipaddress.ip_address(a).reverse_pointer == name)
        zones["ptr"][address] = rest.rstrip(".")
    elif kind == "MX":
        pref, host = rest.split()
        zones["mx"][name] = [(int(pref), host.rstrip("."))]
    else:
        raise ValueError(line)


@unittest.skipUnless(netfix.available(), "needs dnsmasq, python3-aiosmtpd and openssl")
class AdminChecksDeliverability(mr.Case):
    @classmethod
    def setUpClass(cls):
        absent = [p for p in ("/usr/bin/nsenter", "/usr/bin/unshare", "/usr/bin/openssl")
                  if not os.access(p, os.X_OK)]
        if absent:
            raise unittest.SkipTest(f"not installed: {' '.join(absent)}")
        cls.outside = O().start()
        cls.addClassCleanup(cls.outside.stop)
        for argv in (["ip", "addr", "add", f"{SHOP4}/24", "dev", O.HERE],
                     ["ip", "route", "add", "default", "via", O.CLIENT4],
                     ["ip", "-6", "route", "add", "default", "via", O.CLIENT6]):
            p = subprocess.run(argv, capture_output=True)
            if p.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)}: {p.stderr.decode(errors='replace')}")
        cls.certs = os.path.join(netfix.workdir(), "check-dns-certs")
        os.makedirs(cls.certs, exist_ok=True)
        cls.ca = make_ca(cls.certs)

    def setUp(self):
        super().setUp()
        mr.default_config(f"dnsbl = {LIST}=127.0.0.[2..11]\n")
        self.assertEqual(mr.run(["mailroom", "domain", "add", SHOP, "--virtual"]).returncode, 0)
        with open("/etc/mail/source-addresses", "w") as f:
            f.write(f"{SHOP}\t{SHOP4}\n")
        shutil.rmtree("/etc/mail/dkim", ignore_errors=True)
        self.dkim = {}
        for argv in (["mailroom", "dkim", "generate", SHOP],
                     ["mailroom", "dkim", "generate", HOST, "--algorithm", "ed25519"]):
            p = mr.run(argv)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.dkim.update(zone_entries(p.stdout.decode()))
        self.assertEqual(len(self.dkim), 3, self.dkim)
        install_certificate(self.certs, 90)
        self.dns = None
        self.addCleanup(self.stop_dns)
        self.addCleanup(netfix.restore_resolver)

    def zones(self):
        """The zones as they should be."""
        txt = {
            SHOP: f"v=spf1 ip4:{SHOP4} ip6:{BOX6} -all",
            HOST: "v=spf1 a -all",
            f"_dmarc.{SHOP}": f"v=DMARC1; p=reject; rua=mailto:postmaster@{SHOP}",
            "_dmarc.example.test": "v=DMARC1; p=none",
        }
        txt.update(self.dkim)
        return {"mx": {SHOP: [(10, HOST)]},
                "hosts": {HOST: [BOX4, SHOP4, BOX6]},
                "txt": txt,
                "ptr": {}}

    def serve(self, zones):
        self.stop_dns()
        self.dns = netfix.DNS(local=LOCAL_ZONES, **copy.deepcopy(zones)).start()

    def stop_dns(self):
        if self.dns is not None:
            self.dns.stop()
            self.dns = None

    def check(self, *args, text=False):
        """`mailroom check --dns [--json] ARGS` with the test CA as the
        system's; (exit status, the JSON report or the text)."""
        argv = ["mailroom", "check", "--dns"] + ([] if text else ["--json"]) + list(args)
        p = mr.run(argv, env={"SSL_CERT_FILE": self.ca}, timeout=120)
        out = p.stdout.decode()
        self.assertEqual(p.stderr, b"", out)
        return p.returncode, (out if text else json.loads(out))

    def assert_clean(self, zones, why):
        self.serve(zones)
        code, report = self.check()
        self.assertEqual((code, report["findings"]), (0, []), why)

    def only(self, report, check, level):
        hits = [f for f in report["findings"] if f["check"] == check]
        self.assertEqual(len(hits), 1, json.dumps(report, indent=1))
        self.assertEqual(hits[0]["level"], level, hits[0])
        return hits[0]

    def fixed(self, zones, finding):
        """The zones with the finding's lines pasted in: clean."""
        zones = copy.deepcopy(zones)
        self.assertTrue(finding["publish"], finding)
        for line in finding["publish"]:
            paste(zones, line)
        self.assert_clean(zones, f"after publishing {finding['publish']}")

    def test_a_box_with_its_records_right_reports_nothing(self):
        self.serve(self.zones())
        code, report = self.check()
        self.assertEqual(code, 0, json.dumps(report, indent=1))
        self.assertEqual(report["findings"], [])
        self.assertEqual(report["domains"], [HOST, SHOP])
        self.assertEqual(report["senders"], [BOX4, SHOP4, BOX6])
        self.assertEqual(report["ehlo"], HOST)
        code, text = self.check(text=True)
        self.assertEqual((code, text.splitlines()), (0, [
            f"checked 2 domains ({HOST}, {SHOP}), sending from {BOX4}, {SHOP4}, {BOX6} "
            f"as {HOST}: 0 errors, 0 warnings, 0 not checked"]))
        # Named: only that domain.
        code, report = self.check(SHOP)
        self.assertEqual((code, report["domains"], report["findings"]), (0, [SHOP], []))

    def test_spf_without_the_box_is_an_error_with_the_record_to_publish(self):
        zones = self.zones()
        zones["txt"][SHOP] = "v=spf1 include:_spf.provider.example -all"
        zones["txt"]["_spf.provider.example"] = "v=spf1 ip4:203.0.113.0/24 -all"
        self.serve(zones)
        code, report = self.check()
        self.assertEqual(code, 78)
        spf = self.only(report, "spf", "error")
        self.assertEqual(spf["subject"], SHOP)
        self.assertIn(f"sends its mail from: {SHOP4} (fail), {BOX6} (fail);", spf["message"])
        self.assertEqual(spf["publish"], [
            f'{SHOP}. IN TXT "v=spf1 ip4:{SHOP4} ip6:{BOX6} include:_spf.provider.example -all"'])
        self.fixed(zones, spf)

    def test_a_dkim_record_of_another_key_is_an_error(self):
        p = mr.run(["mailroom", "dkim", "generate", "other.example", "--algorithm", "rsa",
                    "--selector", "x"])
        self.assertEqual(p.returncode, 0, p.stderr)
        other = zone_entries(p.stdout.decode())["x._domainkey.other.example"]
        shutil.rmtree("/etc/mail/dkim/other.example")
        zones = self.zones()
        selector = next(n for n in self.dkim if n.endswith(f"-rsa._domainkey.{SHOP}"))
        zones["txt"][selector] = other
        self.serve(zones)
        code, report = self.check()
        self.assertEqual(code, 78)
        dkim = self.only(report, "dkim", "error")
        self.assertEqual(dkim["subject"], selector)
        self.assertIn("another key", dkim["message"])
        shown = mr.run(["mailroom", "dkim", "show", SHOP]).stdout.decode()
        self.assertIn(dkim["publish"][0], shown)
        self.fixed(zones, dkim)

    def test_no_dmarc_record_is_an_error(self):
        zones = self.zones()
        del zones["txt"][f"_dmarc.{SHOP}"]
        self.serve(zones)
        code, report = self.check()
        self.assertEqual(code, 78)
        dmarc = self.only(report, "dmarc", "error")
        self.assertEqual(dmarc["subject"], f"_dmarc.{SHOP}")
        self.assertEqual(dmarc["publish"], [
            f'_dmarc.{SHOP}. IN TXT "v=DMARC1; p=none; rua=mailto:postmaster@{SHOP}"'])
        self.fixed(zones, dmarc)

    def test_a_ptr_that_does_not_resolve_back_is_an_error(self):
        zones = self.zones()
        zones["hosts"][HOST] = [BOX4, BOX6]
        zones["ptr"][SHOP4] = "vps-9.provider.example"
        self.serve(zones)
        code, report = self.check()
        self.assertEqual(code, 78)
        ptr = self.only(report, "ptr", "error")
        self.assertEqual(ptr["subject"], SHOP4)
        self.assertIn("vps-9.provider.example, does not resolve back", ptr["message"])
        self.assertEqual(ptr["publish"], [f"9.100.51.198.in-addr.arpa. IN PTR {HOST}.",
                                          f"{HOST}. IN A {SHOP4}"])
        self.fixed(zones, ptr)

    def test_a_listed_address_is_an_error_and_a_refusing_list_a_warning(self):
        mr.default_config(f"dnsbl = {LIST}=127.0.0.[2..11] {REFUSING}\n")
        zones = self.zones()
        listed = f"1.100.51.198.{LIST}"
        zones["hosts"][listed] = ["127.0.0.2"]
        zones["txt"][listed] = "Listed: see https://dnsbl.example/lookup?198.51.100.1"
        zones["hosts"][f"9.100.51.198.{REFUSING}"] = ["127.255.255.254"]
        self.serve(zones)
        code, report = self.check()
        self.assertEqual(code, 78)
        hits = [f for f in report["findings"] if f["check"] == "dnsbl"]
        self.assertEqual([(f["subject"], f["level"]) for f in hits],
                         [(BOX4, "error"), (SHOP4, "warning")], json.dumps(report, indent=1))
        self.assertIn(f"listed on {LIST} (127.0.0.2: Listed: see https://dnsbl.example/lookup?198.51.100.1)",
                      hits[0]["message"])
        self.assertIn(f"{REFUSING} answered 127.255.255.254", hits[1]["message"])
        self.assertIn("not a listing", hits[1]["message"])
        self.assertEqual(len(report["findings"]), 2, json.dumps(report, indent=1))

    def test_a_certificate_that_expires_in_5_days_warns(self):
        install_certificate(self.certs, 5)
        self.serve(self.zones())
        code, report = self.check()
        self.assertEqual(code, 0, "a warning: it still works")
        tls = self.only(report, "tls", "warning")
        self.assertEqual(tls["subject"], f"{TLS}/mail.crt")
        self.assertIn("in 5 days", tls["message"])
        self.assertEqual(len(report["findings"]), 1, json.dumps(report, indent=1))
        code, text = self.check(text=True)
        self.assertRegex(text, rf"^{TLS}/mail.crt: warning: expires on \d{{4}}-\d\d-\d\d, in 5 days")

    def test_dns_that_does_not_answer_blames_no_domain(self):
        self.serve(self.zones())
        self.stop_dns()
        code, report = self.check()
        self.assertEqual(code, 75, json.dumps(report, indent=1))
        levels = {f["level"] for f in report["findings"]}
        self.assertEqual(levels, {"unchecked"}, json.dumps(report, indent=1))
        checks = {f["check"] for f in report["findings"]}
        self.assertTrue({"mx", "ptr", "dnsbl"} <= checks, checks)
        for f in report["findings"]:
            self.assertIn("DNS did not answer", f["message"])


if __name__ == "__main__":
    unittest.main()
