"""After `make install` the box works without hand steps, and one command
turns the network services on.

* The periodic queue run is in place: /etc/cron.d/mailroom and the
  systemd timer with its service (systemd-analyze verify checks every
  shipped unit).  A message to a remote MX that is down is deferred by the
  installed cron line's command, run as cron runs it, and delivered by a
  later run once the MX is up; the same through the timer's ExecStart.
* The socket units are real: systemd-socket-activate, with the Accept=yes
  semantics of the units (one process per connection, the connection as
  its standard input and output), starts the ExecStart of each unit on
  the unit's port, and real clients talk to it: poplib and curl to pop3d
  (110, and 995 over TLS), smtplib and swaks to `sendmail -bs` (25, and
  587 where AUTH comes first).  Port 465 runs `sendmail -bs --tls`; this
  checks that the connection is taken and that program started (the TLS
  dialogue itself belongs to the SMTP server's own scenarios).
* `mailroom setup services`, with the sandbox's real inetd running (the
  sandbox has no systemd as PID 1): through Debian's update-inetd, and
  without it by editing /etc/inetd.conf itself, it brings up 25, 465, 587,
  110 and 995 (each is connected to), says what it did, changes nothing
  when run again, leaves another program's line or port alone, and
  `--remove` takes exactly its lines away and the ports down.
"""

import os
import poplib
import shlex
import signal
import smtplib
import socket
import ssl
import stat
import subprocess
import time
import unittest

import mr
import netfix
import pop3fix as pf
import smtpfix as sf

UNITS = "/usr/lib/systemd/system"
CRON = "/etc/cron.d/mailroom"
INETD_CONF = "/etc/inetd.conf"
UPDATE_INETD = "/usr/sbin/update-inetd"
SOCKETS = ["mailroom-smtp", "mailroom-submission", "mailroom-submissions", "mailroom-pop3", "mailroom-pop3s",
           "mailroom-panel"]
PORTS = {"smtp": 25, "submission": 587, "submissions": 465, "pop3": 110, "pop3s": 995}
PASSWORD = "Svc-pass-42"


def unit_value(path, key):
    """The value of `key=` in a unit file."""
    with open(path) as f:
        for line in f:
            k, sep, v = line.strip().partition("=")
            if sep and k == key:
                return v
    raise AssertionError(f"{path} has no {key}=")


def cron_command():
    """The command of the installed cron line (crontab(5): five time
    fields, the user, the command)."""
    with open(CRON) as f:
        lines = [l for l in f.read().splitlines() if l.strip() and not l.lstrip().startswith("#")]
    assert len(lines) == 1, lines
    fields = lines[0].split(None, 6)
    assert fields[5] == "root", fields
    assert "%" not in fields[6], "a % in a cron command is a newline"
    return fields[0:5], fields[6]


def as_cron_runs(command):
    """Run a cron.d command as cron does: /bin/sh -c, cron's environment."""
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "HOME": "/root",
                               "LOGNAME": "root"})


def as_systemd_runs(unit):
    """Run a oneshot service's ExecStart as systemd would: the argv of the
    line, no shell, systemd's default PATH."""
    argv = shlex.split(unit_value(os.path.join(UNITS, unit), "ExecStart"))
    return subprocess.run(argv, capture_output=True, timeout=120,
                          env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"})


def port_listening(port):
    return bool(mr.run(["ss", "-Htln", f"sport = :{port}"]).stdout.strip())


def wait_until(cond, timeout=10.0):
    return pf.wait_until(cond, timeout)


class PeriodicQueueRun(mr.Case):
    """make install (run by the sandbox) put the periodic run in place."""

    def test_the_cron_file_and_the_units_are_installed(self):
        st = os.stat(CRON)
        # cron ignores a file others may write, or not owned by root.
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (0, 0o644))
        times, command = cron_command()
        self.assertEqual(times, ["*/5", "*", "*", "*", "*"])
        self.assertIn("/usr/libexec/mailroom/qrun -q --periodic", command)
        for unit in ["mailroom-qrun.service", "mailroom-qrun.timer"] + \
                [f"{s}.socket" for s in SOCKETS] + [f"{s}@.service" for s in SOCKETS]:
            self.assertTrue(os.path.isfile(os.path.join(UNITS, unit)), unit)
        self.assertEqual(unit_value(os.path.join(UNITS, "mailroom-qrun.timer"), "WantedBy"), "timers.target")

    def test_systemd_analyze_verify_accepts_every_shipped_unit(self):
        if not mr.have("systemd-analyze", "systemd"):
            return
        units = [os.path.join(UNITS, u) for u in
                 ["mailroom-qrun.service", "mailroom-qrun.timer"] + [f"{s}.socket" for s in SOCKETS]]
        # Verifying a socket loads its @.service template too; --man
        # (the default) checks that each Documentation= page is installed.
        p = mr.run(["systemd-analyze", "verify"] + units, env={"SYSTEMD_LOG_LEVEL": "notice"})
        out = (p.stdout + p.stderr).decode(errors="replace")
        self.assertEqual(p.returncode, 0, out)
        mine = [l for l in out.splitlines() if "mailroom" in l or "sendmail" in l or "pop3d" in l]
        self.assertEqual(mine, [], out)

    def test_the_timer_can_be_enabled_as_its_install_section_says(self):
        if not mr.have("systemctl", "systemd"):
            return
        # Offline (--root): what enable does where systemd runs, without a
        # running systemd.
        wants = "/etc/systemd/system/timers.target.wants/mailroom-qrun.timer"
        self.addCleanup(lambda: os.path.lexists(wants) and os.unlink(wants))
        p = mr.run(["systemctl", "--root=/", "enable", "mailroom-qrun.timer"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(os.path.realpath(wants), os.path.join(UNITS, "mailroom-qrun.timer"))


@unittest.skipUnless(netfix.available(), "needs dnsmasq, python3-aiosmtpd and openssl")
class PeriodicRunDeliversDeferredMail(mr.Case):
    """A message to a remote MX that is down, then up: the periodic run
    alone (as cron, or as the timer, starts it) defers it, then delivers
    it once its retry time has come."""

    def setUp(self):
        super().setUp()
        self.net = netfix.Network()
        self.addCleanup(self.net.stop_all)
        # A short first retry, so that the second run finds the message due.
        mr.default_config("smtp_timeout_cap = 3s\nsmtp_connect_timeout = 3s\nqueue_retry_min = 1s\n")
        self.net.dns(mx={"customer.example": [(10, "mx.customer.example")]},
                     hosts={"mx.customer.example": "127.0.0.2"})

    def deferred_then_delivered(self, run):
        p = mr.sendmail(["-i", "buyer@customer.example"], b"Subject: your invoice\n\nattached\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        qid = mr.only_id(self)
        mark = mr.log_mark()
        # The MX is down: nothing listens on 127.0.0.2:25.
        p = run()
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(mr.queue_ids(), [qid])
        self.assertIn(f"{qid}: to=buyer@customer.example,", mr.log_since(mark))
        self.assertIn("stat=Deferred", mr.log_since(mark))
        # The MX comes up; the next periodic run, once the retry is due.
        mx = self.net.smtp("127.0.0.2")
        time.sleep(1.5)
        p = run()
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        got = mx.wait_for(1)
        self.assertEqual([m.rcpt_tos for m in got], [["buyer@customer.example"]])
        self.assertEqual(got[0].message["Subject"], "your invoice")
        self.assertEqual(mr.queue_ids(), [])
        self.assertIn(f"{qid}: done", mr.log_since(mark))

    def test_the_installed_cron_line_defers_then_delivers(self):
        _, command = cron_command()
        self.deferred_then_delivered(lambda: as_cron_runs(command))

    def test_the_timers_service_defers_then_delivers(self):
        self.deferred_then_delivered(lambda: as_systemd_runs("mailroom-qrun.service"))


class Activated:
    """systemd-socket-activate running a socket unit as systemd would:
    its ListenStream=, Accept=yes (one process per connection, --accept),
    the connection as standard input and output (StandardInput=socket:
    --inetd), and the ExecStart= of its @.service."""

    def __init__(self, unit):
        self.unit = unit
        self.listen = unit_value(os.path.join(UNITS, f"{unit}.socket"), "ListenStream")
        assert unit_value(os.path.join(UNITS, f"{unit}.socket"), "Accept") == "yes"
        service = os.path.join(UNITS, f"{unit}@.service")
        assert unit_value(service, "StandardInput") == "socket"
        self.argv = shlex.split(unit_value(service, "ExecStart"))
        self.err = open(os.path.join(pf.workdir(), f"{unit}.activate.log"), "wb+")
        self.proc = subprocess.Popen(["systemd-socket-activate", "--listen", self.listen, "--accept",
                                      "--inetd"] + self.argv,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err)
        self.port = int(self.listen.rsplit(":", 1)[-1])
        if not wait_until(lambda: port_listening(self.port) or self.proc.poll() is not None):
            raise AssertionError(f"{unit}: nothing listens on {self.listen}: {self.log()}")

    def log(self):
        self.err.flush()
        with open(self.err.name, errors="replace") as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.err.close()


class SocketActivation(mr.Case):
    """The shipped socket units, run by systemd-socket-activate."""

    def setUp(self):
        super().setUp()
        if not mr.have("systemd-socket-activate", "systemd"):
            self.skipTest("systemd-socket-activate (package systemd)")
        self.ca = pf.install_certificate()
        self.user = "svcact"
        pf.fresh_user(self.user, PASSWORD)

    def activate(self, unit):
        a = Activated(unit)
        self.addCleanup(a.stop)
        return a

    def started(self, a, argv):
        """systemd-socket-activate started `argv` for a connection."""
        want = f"Execing {argv[0]} ({' '.join(argv)})"
        self.assertTrue(wait_until(lambda: want in a.log()), a.log())

    def test_pop3_on_110_with_poplib_and_curl(self):
        pf.submit(self.user, b"Subject: activated\n\nvia the socket unit\n")
        a = self.activate("mailroom-pop3")
        self.assertEqual(a.argv, ["/usr/libexec/mailroom/pop3d"])
        c = poplib.POP3("::1", a.port, timeout=10)
        self.assertTrue(c.getwelcome().startswith(b"+OK"))
        c.user(self.user)
        c.pass_(PASSWORD)
        self.assertEqual(c.stat()[0], 1)
        self.assertIn(b"Subject: activated", b"\n".join(c.retr(1)[1]))
        c.quit()
        # A second connection gets a process of its own (Accept=yes).
        p = pf.curl(["-s", "--user", f"{self.user}:{PASSWORD}", f"pop3://[::1]:{a.port}/"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout.decode(), r"^1 \d+\r?\n$")
        self.started(a, a.argv)
        self.assertEqual(a.log().count("Execing "), 2, a.log())

    def test_pop3s_on_995_with_poplib_over_tls(self):
        pf.submit(self.user, b"Subject: tls\n\nsecret\n")
        a = self.activate("mailroom-pop3s")
        self.assertEqual(a.argv, ["/usr/libexec/mailroom/pop3d", "--tls"])
        ctx = ssl.create_default_context(cafile=self.ca)
        c = poplib.POP3_SSL("localhost", a.port, context=ctx, timeout=10)
        self.assertTrue(c.getwelcome().startswith(b"+OK"))
        c.user(self.user)
        c.pass_(PASSWORD)
        self.assertEqual(c.stat()[0], 1)
        c.quit()

    def test_smtp_on_25_with_smtplib_and_swaks(self):
        a = self.activate("mailroom-smtp")
        self.assertEqual(a.argv, ["/usr/sbin/sendmail", "-bs"])
        s = smtplib.SMTP("::1", a.port, timeout=20)
        code, _ = s.ehlo("client.example")
        self.assertEqual(code, 250)
        self.assertEqual(s.sendmail("friend@example.org", [f"{self.user}@{mr.HOST}"],
                                    b"Subject: over the socket unit\r\n\r\nhello\r\n"), {})
        s.quit()
        qid = mr.only_id(self)
        self.assertEqual(mr.qf_recipients(qid), [f"<{self.user}@{mr.HOST}>"])
        if mr.have(sf.SWAKS, "swaks"):
            # (swaks speaks IPv4 only without IO::Socket::INET6; the
            # unit's socket takes both families.)
            p = subprocess.run([sf.SWAKS, "--server", "127.0.0.1", "--port", str(a.port), "--from",
                                "friend@example.org", "--to", f"{self.user}@{mr.HOST}",
                                "--header", "Subject: swaks"], capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertEqual(len(mr.queue_ids()), 2)

    def test_submission_on_587_wants_auth_first(self):
        a = self.activate("mailroom-submission")
        s = smtplib.SMTP("::1", a.port, timeout=20)
        s.ehlo("laptop.example")
        self.assertTrue(s.has_extn("auth"), s.esmtp_features)
        code, text = s.mail(f"{self.user}@{mr.HOST}")
        self.assertEqual((code, text), (530, b"5.7.0 Authentication required"))
        s.rset()
        s.login(self.user, PASSWORD)
        self.assertEqual(s.sendmail(f"{self.user}@{mr.HOST}", ["someone@far.example"],
                                    b"Subject: sent from a laptop\r\n\r\nhi\r\n"), {})
        s.quit()
        self.assertEqual(mr.qf_recipients(mr.only_id(self)), ["<someone@far.example>"])

    def test_submissions_on_465_starts_sendmail_bs_tls(self):
        a = self.activate("mailroom-submissions")
        self.assertEqual(a.argv, ["/usr/sbin/sendmail", "-bs", "--tls"])
        with socket.create_connection(("::1", a.port), timeout=10) as c:
            ctx = ssl.create_default_context(cafile=self.ca)
            try:
                with ctx.wrap_socket(c, server_hostname="localhost") as t:
                    greeting = t.recv(200)
                    self.assertTrue(greeting.startswith(b"220 "), greeting)
            except (ssl.SSLError, ConnectionError, OSError):
                # A server without implicit TLS yet: the connection was
                # taken and the program started, which is all the unit
                # promises; its TLS dialogue is the SMTP server's to test.
                pass
        self.started(a, a.argv)


class InetdRunning:
    """The sandbox's own openbsd-inetd as a box runs it: a daemon reading
    /etc/inetd.conf, its pid in /run/inetd.pid (where update-inetd and
    mailroom look to tell it of a change)."""

    def __init__(self):
        if os.path.exists("/run/inetd.pid"):
            os.unlink("/run/inetd.pid")
        # It becomes a daemon: its parent returns at once.
        p = subprocess.run([pf.INETD], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
        assert p.returncode == 0, p.returncode
        assert wait_until(lambda: os.path.exists("/run/inetd.pid")), "inetd wrote no pid file"
        with open("/run/inetd.pid") as f:
            self.pid = int(f.read().strip())

    def alive(self):
        return os.path.exists(f"/proc/{self.pid}")

    def stop(self):
        """Stop inetd and whatever sessions it started."""
        left = [p for p, _ in pf.descendants(self.pid)]
        for pid in [self.pid] + left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until(lambda: not self.alive())
        for port in PORTS.values():
            wait_until(lambda: not port_listening(port))


class SetupServices(mr.Case):
    """`mailroom setup services` where inetd serves (no systemd)."""

    def setUp(self):
        super().setUp()
        if not mr.have(pf.INETD, "openbsd-inetd"):
            self.skipTest("inetd (package openbsd-inetd)")
        with open(INETD_CONF, "rb") as f:
            self.pristine = f.read()
        self.addCleanup(self.restore_conf)
        self.ca = pf.install_certificate()
        self.inetd = InetdRunning()
        self.addCleanup(self.inetd.stop)

    def restore_conf(self):
        with open(INETD_CONF, "wb") as f:
            f.write(self.pristine)

    def conf(self):
        with open(INETD_CONF) as f:
            return f.read()

    def setup(self, *args):
        p = mr.run(["mailroom", "setup", "services"] + list(args), timeout=120)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def says(self, out, service, what):
        self.assertRegex(out, rf"(?m)^  {service} +port {PORTS[service]} +{what}", out)

    def assert_all_serve(self):
        # 25: the world's port.
        with socket.create_connection(("127.0.0.1", 25), timeout=10) as c:
            self.assertRegex(c.recv(200), rb"^220 mx\.example\.test ESMTP mailroom")
        # 587: submission; AUTH offered (loopback).
        s = smtplib.SMTP("127.0.0.1", 587, timeout=20)
        s.ehlo("laptop.example")
        self.assertEqual(s.mail("x@example.org")[0], 530)
        s.quit()
        # 110 and 995: POP3, plain and TLS.
        c = poplib.POP3("127.0.0.1", 110, timeout=10)
        self.assertTrue(c.getwelcome().startswith(b"+OK"))
        c.quit()
        c = poplib.POP3_SSL("localhost", 995, context=ssl.create_default_context(cafile=self.ca), timeout=10)
        self.assertTrue(c.getwelcome().startswith(b"+OK"))
        c.quit()
        # 465: the connection is taken and `sendmail -bs --tls` started
        # (see SocketActivation for why no more is asked here): it runs,
        # or it has already answered or ended the connection.
        with socket.create_connection(("127.0.0.1", 465), timeout=10) as c:
            c.setblocking(False)

            def started():
                if any(pf.proc_cmdline(p)[:3] == [b"sendmail", b"-bs", b"--tls"]
                       for p, _ in pf.descendants(self.inetd.pid)):
                    return True
                try:
                    c.recv(1, socket.MSG_PEEK)
                    return True
                except BlockingIOError:
                    return False
            self.assertTrue(wait_until(started), "nothing started for port 465")

    def on_then_off(self):
        code, out, err = self.setup()
        self.assertEqual(code, 0, out + err)
        for service in PORTS:
            self.says(out, service, "added")
        self.assertIn("listening: 25 587 465 110 995", out)
        conf = self.conf()
        for line in ("smtp\tstream\ttcp\tnowait.1000\troot\t/usr/sbin/sendmail\tsendmail -bs",
                     "submissions\tstream\ttcp\tnowait.1000\troot\t/usr/sbin/sendmail\tsendmail -bs --tls",
                     "pop3s\tstream\ttcp\tnowait\troot\t/usr/libexec/mailroom/pop3d\tpop3d --tls"):
            self.assertIn(line, conf)
        self.assertTrue(conf.startswith(self.pristine.decode()[:200]), "the file's head changed")
        for port in PORTS.values():
            self.assertTrue(port_listening(port), port)
        self.assert_all_serve()
        # Again: nothing changes.
        code, out, err = self.setup()
        self.assertEqual(code, 0, out + err)
        for service in PORTS:
            self.says(out, service, "already there")
        self.assertEqual(self.conf(), conf)
        # Off: exactly our lines go, and the ports close.
        code, out, err = self.setup("--remove")
        self.assertEqual(code, 0, out + err)
        for service in PORTS:
            self.says(out, service, "removed")
        self.assertEqual(self.conf(), self.pristine.decode())
        self.assertTrue(wait_until(lambda: not any(port_listening(p) for p in PORTS.values())))
        self.assertTrue(self.inetd.alive())
        code, out, err = self.setup("--remove")
        self.assertEqual(code, 0, out + err)
        for service in PORTS:
            self.says(out, service, "was not there")

    def test_with_update_inetd(self):
        if not mr.have(UPDATE_INETD, "update-inetd"):
            return
        self.on_then_off()

    def test_without_update_inetd_the_file_is_rewritten_and_inetd_told(self):
        # The sandbox's /usr is a private layer: hide update-inetd in it.
        hidden = UPDATE_INETD + ".hidden-by-compat"
        if os.path.exists(UPDATE_INETD):
            os.rename(UPDATE_INETD, hidden)
            self.addCleanup(os.rename, hidden, UPDATE_INETD)
        mode = stat.S_IMODE(os.stat(INETD_CONF).st_mode)
        self.on_then_off()
        self.assertEqual(stat.S_IMODE(os.stat(INETD_CONF).st_mode), mode)

    def test_another_programs_line_and_a_taken_port_are_left_alone(self):
        theirs = "pop3s\tstream\ttcp\tnowait\troot\t/usr/sbin/other-pop3d\tother-pop3d --ssl\n"
        with open(INETD_CONF, "a") as f:
            f.write(theirs)
        os.kill(self.inetd.pid, signal.SIGHUP)
        # Something else (a Dovecot, say) listens on 110.
        squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("0.0.0.0", 110))
        squatter.listen()
        self.addCleanup(squatter.close)
        code, out, err = self.setup()
        self.assertEqual(code, 69, out + err)
        self.says(out, "pop3s", "left alone: /etc/inetd.conf has another line for it: pop3s")
        self.says(out, "pop3", r"left alone: port 110 is taken by python3 \(pid \d+\)")
        for service in ("smtp", "submission", "submissions"):
            self.says(out, service, "added")
        self.assertIn(theirs, self.conf())
        code, out, err = self.setup("--remove")
        self.assertEqual(code, 0, out + err)
        self.assertIn(theirs, self.conf())
        self.assertNotIn("/usr/sbin/sendmail", self.conf())

    def test_a_user_who_is_not_root_is_refused(self):
        mr.ensure_user("notadmin")
        p = mr.run(["/usr/sbin/mailroom", "setup", "services"], user="notadmin")
        self.assertEqual(p.returncode, 77, p.stderr)
        self.assertEqual(p.stderr.decode().count("\n"), 1, p.stderr)
        self.assertEqual(self.conf(), self.pristine.decode())


if __name__ == "__main__":
    unittest.main()
