"""Security checks (issue 9, item 5): nobody gains access.

* The set-group-id /usr/sbin/sendmail run by an unprivileged local user
  with a hostile environment, -C / -X / -oQ / -O QueueDirectory= / -d,
  100 KB arguments and program, file and :include: addresses: nothing is
  written outside /var/spool/mqueue (a listing of every writable place,
  /tmp included, before and after), no program runs (marker files never
  appear), every exit status is a sysexits code, and such recipients are
  refused or bounced, never delivered.
* Unsafe .forward and :include: files are ignored (and logged); a user
  cannot make delivery follow a symlink to a file that is not theirs.
* pop3d opens a mailbox only after setresuid to its owner (strace).
* POP3 and SMTP AUTH brute force: failures are slowed by the configured
  delays and logged; an unknown user gets the same reply, in the same
  time, as a wrong password (medians printed).
* The open-relay battery on ports 25 and 587 through the real inetd, from
  an outside address, with a sink MX recording anything relayed; prints
  "relay: N attempts, 0 relayed".

Runs as root in the compat sandbox (lib/sandbox.sh); needs gcc for the
LD_PRELOAD probe, strace, openbsd-inetd, dnsmasq and python3-aiosmtpd
(.ci/run installs them); a scenario whose program is missing is skipped.
"""

import base64
import os
import pwd
import re
import shutil
import stat
import statistics
import subprocess
import tempfile
import time
import unittest

import mr
import netfix
import pop3fix as pf
import sitefix
import smtpfix as sf

HOST = mr.HOST
PASSWORD = "S3c-checks-pw"
LOG = mr.LOG
SYSEXITS = {0} | set(range(64, 79))
REMOTE = "remote.example"
REMOTE_MX = "127.0.0.2"
# Where a hostile invocation might try to write.
# (/root is the host's own in the sandbox, where other programs write.)
WATCHED = ["/tmp", "/var", "/etc", "/home", "/run"]
# What sendmail may legitimately change.
ALLOWED = ["/var/spool/mqueue/", LOG]
MARKERS = "/tmp/pwned"


def log_text():
    try:
        with open(LOG, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def listing(skip=()):
    """path -> (type and mode, owner, group, size, mtime) of everything
    under WATCHED (not following symlinks)."""
    out = {}
    for top in WATCHED:
        for root, dirs, files in os.walk(top):
            if any(root == s or root.startswith(s + "/") for s in skip):
                dirs[:] = []
                continue
            for n in dirs + files:
                p = os.path.join(root, n)
                try:
                    st = os.lstat(p)
                except FileNotFoundError:
                    continue
                out[p] = (st.st_mode, st.st_uid, st.st_gid, st.st_size,
                          st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) else 0)
    return out


def changes(before, after, own):
    """Paths created, removed or changed, except where sendmail may write
    and files that are the caller's own (uid and primary group `own`):
    what a user could write without any privilege, e.g. a queue of her
    own after -oQ, which gives the privilege up."""
    diff = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    return [p for p in diff if not any(p == a or p.startswith(a) for a in ALLOWED)
            and p != "/var/spool/mqueue"
            and not (p in after and after[p][1:3] == own and p not in before)]


def markers():
    return sorted(f for f in os.listdir("/tmp") if f.startswith("pwned"))


class Hostile(mr.Case):
    """The setgid sendmail in the hands of a hostile local user."""

    def setUp(self):
        super().setUp()
        self.pw = mr.ensure_user("mallory")
        self.uid, self.gid = self.pw.pw_uid, self.pw.pw_gid
        mr.ensure_user("victim")
        for f in markers():
            os.unlink(os.path.join("/tmp", f))
        # A place only the queue group may write: where a sendmail that
        # kept its privilege after -C / -oQ / -X would manage to write.
        self.trap = "/tmp/trap"
        shutil.rmtree(self.trap, ignore_errors=True)
        os.mkdir(self.trap)
        os.chown(self.trap, 0, grp_id("mqueue"))
        os.chmod(self.trap, 0o2770)
        # Programs that leave a marker if anything runs them.
        self.bin = "/tmp/evbin"
        shutil.rmtree(self.bin, ignore_errors=True)
        os.mkdir(self.bin, 0o755)
        for name in ("sh", "bash", "cat", "mail", "procmail", "deliver", "qrun", "hostname",
                     "id", "uname", "sendmail", "ls", "cc", "env"):
            path = os.path.join(self.bin, name)
            with open(path, "w") as f:
                f.write(f"#!/bin/dash\n/usr/bin/touch {MARKERS}-path-{name}\n")
            os.chmod(path, 0o755)
        with open("/tmp/evil.conf", "w") as f:
            f.write(f"queue_directory = {self.trap}\nlog = {self.trap}/log\n"
                    f"delivery_mode = interactive\n")
        self.preload = None
        if mr.have("gcc", "gcc"):
            src = "/tmp/evil.c"
            with open(src, "w") as f:
                f.write('#include <fcntl.h>\n#include <unistd.h>\n'
                        '__attribute__((constructor)) static void pwn(void) {\n'
                        f'  int fd = open("{MARKERS}-preload", O_CREAT | O_WRONLY, 0666);\n'
                        '  if (fd >= 0) close(fd);\n}\n')
            self.preload = "/tmp/evil.so"
            mr.run(["gcc", "-shared", "-fPIC", "-o", self.preload, src], check=True)
            os.chmod(self.preload, 0o755)
        self.rcpt = f"mallory@{HOST}"

    def tearDown(self):
        for f in markers():
            os.unlink(os.path.join("/tmp", f))
        super().tearDown()

    def as_mallory(self, args, message=b"Subject: hi\n\nhello\n", env=None):
        """sendmail ARGS as mallory, with exactly `env` as the environment."""
        e = {"PATH": "/usr/bin:/bin", "HOME": self.pw.pw_dir, "USER": "mallory", "LOGNAME": "mallory"}
        if env is not None:
            e = env
        # setpriv and env run with a clean environment; only sendmail
        # gets the hostile one.
        cmd = (["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--",
                "/usr/bin/env", "-i"] + [f"{k}={v}" for k, v in e.items()]
               + ["/usr/sbin/sendmail"] + list(args))
        return subprocess.run(cmd, input=message, capture_output=True,
                              env={"PATH": "/usr/bin:/bin"}, timeout=60)

    def assert_contained(self, runs):
        """Run each (label, args, env, message); nothing outside the queue
        changes, no marker appears, every exit status is a sysexits code."""
        skip = [os.environ.get("COMPAT_WORK", "/nonexistent"), self.bin]
        before = listing(skip)
        results = []
        for label, args, env, message in runs:
            p = self.as_mallory(args, message, env)
            results.append((label, p.returncode, p.stderr.decode(errors="replace")[:300]))
            self.assertIn(p.returncode, SYSEXITS, f"{label}: exit {p.returncode}: {p.stderr[:300]!r}")
            # One line, or one per refused recipient (as sendmail 8).
            self.assertLessEqual(len(p.stderr.splitlines()), 2 + len(args), f"{label}: {p.stderr[:500]!r}")
            self.assertNotIn(b"root:", p.stderr + p.stdout, f"{label} leaked a file")
        after = listing(skip)
        self.assertEqual(changes(before, after, (self.uid, self.gid)), [], results)
        self.assertEqual(markers(), [], results)
        self.assertEqual(os.listdir(self.trap), [], results)
        for qf in (f for f in os.listdir(mr.QUEUE) if f[:2] in ("qf", "df")):
            st = os.stat(os.path.join(mr.QUEUE, qf))
            self.assertEqual(stat.S_IMODE(st.st_mode) & 0o007, 0, f"{qf} readable by others")
        return results

    def test_hostile_environment_changes_nothing_outside_the_queue(self):
        long_value = "A" * 100_000
        base = {"PATH": "/usr/bin:/bin", "HOME": self.pw.pw_dir, "USER": "mallory"}
        envs = {
            "LD_PRELOAD": {"LD_PRELOAD": self.preload or "/tmp/evil.so"},
            "LD_LIBRARY_PATH": {"LD_LIBRARY_PATH": "/tmp:/tmp/evbin"},
            # Ignored (with a warning): only root may redirect sendmail.
            "MAILROOM_ROOT": {"MAILROOM_ROOT": self.trap},
            "TMPDIR": {"TMPDIR": self.trap},
            "HOME": {"HOME": self.trap},
            "IFS": {"IFS": "/ \t\n"},
            "PATH": {"PATH": self.bin},
            "long values": {"HOME": long_value, "TMPDIR": long_value, "NAME": long_value,
                            "TZ": long_value, "LOGNAME": long_value},
            "everything": {"LD_PRELOAD": self.preload or "/tmp/evil.so", "PATH": self.bin,
                           "IFS": "/", "TMPDIR": self.trap, "HOME": self.trap,
                           "LD_AUDIT": self.preload or "/tmp/evil.so",
                           "GCONV_PATH": "/tmp", "HOSTALIASES": "/etc/shadow",
                           "RES_OPTIONS": "ndots:15", "LOCALDOMAIN": "evil.test",
                           "MALLOC_CHECK_": "3", "LANG": long_value},
        }
        runs = []
        for label, extra in envs.items():
            env = dict(base)
            env.update(extra)
            runs.append((label, ["-i", self.rcpt], env, b"Subject: env\n\nx\n"))
        # The same with -bs: the SMTP dialogue reads the environment too.
        env = dict(base)
        env.update(envs["everything"])
        runs.append(("-bs", ["-bs"], env,
                     f"EHLO x\r\nMAIL FROM:<mallory@{HOST}>\r\nRCPT TO:<{self.rcpt}>\r\nDATA\r\n"
                     "Subject: bs\r\n\r\nx\r\n.\r\nQUIT\r\n".encode()))
        results = self.assert_contained(runs)
        for label, rc, err in results:
            self.assertEqual(rc, 0, f"{label}: the message must still be queued: {err}")
        self.assertIn("warning: MAILROOM_ROOT ignored", dict((l, e) for l, _, e in results)["MAILROOM_ROOT"])
        # Every job is in the real queue, none in the trap.
        self.assertEqual(len(mr.queue_ids()), len(runs))

    def test_redirecting_options_are_ignored_and_the_mail_still_delivered(self):
        # Any user may start a queue run (as with sendmail 8): on an empty
        # queue and a current aliases index it changes nothing.
        mr.run(["newaliases"], check=True)
        runs = [("-q", ["-q"], None, b""), ("-qf", ["-qf"], None, b""),
                ("-q -C", ["-qf", "-C", "/tmp/evil.conf"], None, b""),
                ("-q -oQ", ["-qf", f"-oQ{self.trap}"], None, b"")]
        for label, args in (
            ("-C", ["-C", "/tmp/evil.conf", "-i", self.rcpt]),
            ("-C/etc/shadow", ["-C/etc/shadow", "-i", self.rcpt]),
            ("-C /etc/mail", ["-C", "/etc/mail", "-i", self.rcpt]),
            ("-X", ["-X", f"{self.trap}/traffic", "-i", self.rcpt]),
            ("-X /etc", ["-X", "/etc/evil.log", "-i", self.rcpt]),
            ("-oQ", [f"-oQ{self.trap}", "-i", self.rcpt]),
            ("-oQ/tmp", ["-oQ/tmp", "-i", self.rcpt]),
            ("-O QueueDirectory", ["-O", f"QueueDirectory={self.trap}", "-i", self.rcpt]),
            ("-O QueueDirectory=/tmp", ["-O", "QueueDirectory=/tmp", "-i", self.rcpt]),
            ("-oA", [f"-oA{self.trap}/aliases", "-bi"]),
            ("-d", ["-d0-99.127", "-i", self.rcpt]),
            ("-d bare", ["-d", "-i", self.rcpt]),
            ("-bi", ["-bi"]),
            ("-bp", ["-bp"]),
            ("100 KB argument", ["-i", "a" * 100_000 + "@" + HOST]),
            ("100 KB -f", ["-f", "b" * 100_000, "-i", self.rcpt]),
            ("100 KB -F", ["-F", "c" * 100_000, "-i", self.rcpt]),
            ("100 KB -O", ["-O", "QueueDirectory=" + "/tmp" * 25_000, "-i", self.rcpt]),
            ("many arguments", ["-i"] + [f"r{i}@{HOST}" for i in range(5000)]),
        ):
            runs.append((label, args, None, b"Subject: opts\n\nx\n"))
        results = dict((l, (rc, err)) for l, rc, err in self.assert_contained(runs))
        for l, (rc, err) in results.items():
            print(f"  {l}: {rc} {err.strip()[:150]}")
        # -C, -oQ and -O QueueDirectory= are ignored with a warning: the
        # message goes into the system queue (sendmail 8 would give its
        # privilege up and queue where no runner ever looks).
        redirected = ["-C", "-C/etc/shadow", "-C /etc/mail", "-oQ", "-oQ/tmp",
                      "-O QueueDirectory", "-O QueueDirectory=/tmp"]
        for label in redirected:
            rc, err = results[label]
            self.assertEqual(rc, 0, f"{label}: {err}")
            self.assertIn("ignored: only root may redirect", err, label)
            self.assertNotIn("root:", err, label)
        self.assertEqual(results["100 KB -O"][0], 0, results["100 KB -O"])
        self.assertLess(len(results["100 KB -O"][1]), 300)
        for label in ("100 KB argument", "100 KB -f"):
            rc, err = results[label]
            self.assertEqual(rc, 64, err)
            self.assertIn("Address too long", err)
            self.assertLess(len(err), 400, label)
        # Nothing was queued anywhere else, and the root queue runner
        # delivers every redirected message to mallory.
        self.assertEqual([f for f in os.listdir("/tmp") if f.startswith(("qf", "df", "tf"))], [])
        self.run_queue()
        with open("/var/mail/mallory", "rb") as f:
            delivered = f.read().count(b"\nSubject: opts\n")
        self.assertGreaterEqual(delivered, len(redirected))
        print(f"\nredirecting options: {len(runs)} runs, exit codes "
              f"{ {l: rc for l, (rc, _) in results.items()} }, {delivered} delivered to mallory")

    def test_program_file_and_include_addresses_are_never_delivered(self):
        mr.default_config("delivery_mode = queue\n")
        hostile = [
            f'"|/bin/sh -c id>{MARKERS}-pipe1"@{HOST}',
            f'"|/usr/bin/touch {MARKERS}-pipe2"',
            f"|/usr/bin/touch {MARKERS}-pipe3",
            f'"|/usr/bin/touch {MARKERS}-pipe4"@localhost',
            f"/tmp/pwned-file1",
            f'"/tmp/pwned-file2"@{HOST}',
            ":include:/etc/shadow",
            f'":include:/etc/shadow"@{HOST}',
            f"\\\"|/usr/bin/touch {MARKERS}-pipe5\\\"",
            f"mallory+|touch {MARKERS}-pipe6@{HOST}",
        ]
        runs = [(f"rcpt {a}", ["-i", a], None, b"Subject: hostile\n\nx\n") for a in hostile]
        runs += [(f"-t {a}", ["-t", "-i"], None, f"To: {a}\nSubject: hostile -t\n\nx\n".encode())
                 for a in hostile]
        runs.append(("-bs", ["-bs"], None,
                     (f"EHLO x\r\nMAIL FROM:<mallory@{HOST}>\r\n"
                      + "".join(f"RCPT TO:<{a}>\r\n" for a in hostile)
                      + "DATA\r\nSubject: bs\r\n\r\nx\r\n.\r\nQUIT\r\n").encode()))
        results = self.assert_contained(runs)
        # What was queued is delivered by the root queue runner: still no
        # program, no file, no shadow, and each such recipient bounces.
        p = mr.run(["/usr/sbin/sendmail", "-qf"], timeout=120)
        self.assertIn(p.returncode, SYSEXITS)
        self.assertEqual(markers(), [], results)
        with open("/etc/shadow") as f:
            secret = [l.split(":")[1] for l in f if len(l.split(":")) > 1 and len(l.split(":")[1]) > 2]
        mbox = ""
        for u in ("mallory", "victim", "root"):
            try:
                with open(f"/var/mail/{u}", errors="replace") as f:
                    mbox += f.read()
            except FileNotFoundError:
                pass
        for s in secret:
            self.assertNotIn(s, mbox, "a shadow hash reached a mailbox")
        self.assertEqual(mr.queue_ids(), [], "everything queued is delivered or bounced")
        print(f"\nhostile addresses: {len(runs)} submissions, exit codes "
              f"{sorted(set(rc for _, rc, _ in results))}, 0 programs run, 0 files written")


def grp_id(name):
    import grp
    return grp.getgrnam(name).gr_gid


class UnsafeFiles(mr.Case):
    """.forward, :include: and mailbox links under a hostile user's control."""

    def setUp(self):
        super().setUp()
        mr.default_config("delivery_mode = background\n")
        self.mallory = pf.fresh_user("mallory", PASSWORD)
        self.victim = pf.fresh_user("victim", PASSWORD)
        self.postie = pf.fresh_user("postie", PASSWORD)
        for f in markers():
            os.unlink(os.path.join("/tmp", f))
        self.mark = mr.log_mark()
        self.spool_mode = stat.S_IMODE(os.stat(pf.SPOOL).st_mode)
        self.addCleanup(os.chmod, pf.SPOOL, self.spool_mode)

    def tearDown(self):
        for f in markers():
            os.unlink(os.path.join("/tmp", f))
        for u in (self.mallory, self.victim):
            shutil.rmtree(os.path.join(u.pw_dir, "Maildir"), ignore_errors=True)
        super().tearDown()

    def deliver(self, rcpt, subject):
        p = mr.sendmail(["-odi", "-i", "-f", f"postie@{HOST}", rcpt],
                        f"Subject: {subject}\n\nbody\n")
        return p

    def as_user(self, pw, fn):
        pid = os.fork()
        if pid == 0:
            try:
                os.setgroups([])
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
                fn()
                os._exit(0)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(status, 0)

    def write_forward(self, pw, text, mode, owner=None):
        path = os.path.join(pw.pw_dir, ".forward")
        with open(path, "w") as f:
            f.write(text)
        owner = owner or pw
        os.chown(path, owner.pw_uid, owner.pw_gid)
        os.chmod(path, mode)
        self.addCleanup(lambda: os.path.lexists(path) and os.unlink(path))
        return path

    def mbox(self, pw):
        try:
            with open(os.path.join(pf.SPOOL, pw.pw_name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def assert_kept_or_bounced(self, subject):
        """Nothing lost: the message waits in the queue (a temporary
        failure) or its sender has a bounce with the reason."""
        queued = b"".join(mr.df(i) + mr.qf(i) for i in mr.queue_ids())
        bounced = self.mbox(self.postie)
        self.assertTrue(subject.encode() in queued or subject.encode() in bounced,
                        f"{subject!r} neither queued nor bounced: {os.listdir(mr.QUEUE)}")
        if subject.encode() in queued:
            self.assertIn(b"Deferred", mr.run(["mailq"]).stdout)
        print(f"\n{subject}: {'deferred' if subject.encode() in queued else 'bounced'}")

    def test_unsafe_forward_files_are_ignored_and_logged(self):
        for label, mode, owner in (("group-writable", 0o664, None), ("world-writable", 0o646, None),
                                   ("owned by victim", 0o644, self.victim)):
            with self.subTest(label):
                self.write_forward(self.mallory, f"victim, \"|/usr/bin/touch {MARKERS}-fwd\"\n",
                                   mode, owner)
                mark = mr.log_mark()
                p = self.deliver(f"mallory@{HOST}", f"forward {label}")
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn(f"forward {label}".encode(), self.mbox(self.mallory))
                self.assertNotIn(f"forward {label}".encode(), self.mbox(self.victim))
                self.assertEqual(markers(), [])
                self.assertIn(".forward: unsafe, ignored", mr.log_since(mark))
        # The control: a safe one is honoured.
        self.write_forward(self.mallory, "victim\n", 0o644)
        p = self.deliver(f"mallory@{HOST}", "forward safe")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"forward safe", self.mbox(self.victim))

    def test_unsafe_include_files_run_no_program_and_write_no_file(self):
        lst = "/home/mallory/list"
        for label, mode, path in (("world-writable", 0o666, lst), ("group-writable", 0o664, lst),
                                  ("in a world-writable directory", 0o644, "/tmp/inc/list")):
            with self.subTest(label):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                if path.startswith("/tmp/inc"):
                    os.chmod("/tmp/inc", 0o777)
                with open(path, "w") as f:
                    f.write(f"\"|/usr/bin/touch {MARKERS}-inc\"\n/tmp/pwned-incfile\n")
                os.chown(path, self.mallory.pw_uid, self.mallory.pw_gid)
                os.chmod(path, mode)
                with open("/etc/mail/aliases", "w") as f:
                    f.write(f"team: :include:{path}\n")
                self.assertEqual(mr.run(["newaliases"]).returncode, 0)
                mark = mr.log_mark()
                self.deliver(f"team@{HOST}", f"include {label}")
                self.assertEqual(markers(), [])
                self.assertIn("is unsafe for mailing to", mr.log_since(mark))
                # Nothing lost: the refused recipients bounce to the sender.
                self.assertEqual(mr.queue_ids(), [], os.listdir(mr.QUEUE))
        # The control: a safe include of mallory's runs its program as her.
        os.chmod(lst, 0o644)
        with open(lst, "w") as f:
            f.write(f"\"|/bin/sh -c 'id -u > {MARKERS}-uid'\"\n")
        with open("/etc/mail/aliases", "w") as f:
            f.write(f"team: :include:{lst}\n")
        mr.run(["newaliases"], check=True)
        self.deliver(f"team@{HOST}", "include safe")
        self.assertTrue(pf.wait_until(lambda: os.path.exists(f"{MARKERS}-uid"), 10))
        with open(f"{MARKERS}-uid") as f:
            self.assertEqual(f.read().strip(), str(self.mallory.pw_uid))

    def test_an_mbox_replaced_by_a_symlink_to_another_users_mbox_is_refused(self):
        pf.submit("victim", "Subject: victim's own\n\nprivate\n")
        before = self.mbox(self.victim)
        # On a spool that users may write (sticky, as some systems have it).
        os.chmod(pf.SPOOL, 0o1777)
        own = os.path.join(pf.SPOOL, "mallory")
        if os.path.lexists(own):
            os.unlink(own)

        def link():
            os.symlink(os.path.join(pf.SPOOL, "victim"), own)

        self.as_user(self.mallory, link)
        p = self.deliver(f"mallory@{HOST}", "through the link")
        self.assertIn(p.returncode, SYSEXITS)
        self.assertEqual(self.mbox(self.victim), before, "victim's mbox changed")
        self.assertTrue(os.path.islink(own))
        self.assert_kept_or_bounced("through the link")
        os.unlink(own)

    def test_an_mbox_hard_linked_to_another_users_mbox_is_refused(self):
        pf.submit("victim", "Subject: victim's own\n\nprivate\n")
        before = self.mbox(self.victim)
        own = os.path.join(pf.SPOOL, "mallory")
        if os.path.lexists(own):
            os.unlink(own)
        # Made by root here: fs.protected_hardlinks stops mallory on this
        # kernel, not on every system.
        os.link(os.path.join(pf.SPOOL, "victim"), own)
        p = self.deliver(f"mallory@{HOST}", "through the hard link")
        self.assertIn(p.returncode, SYSEXITS)
        self.assertEqual(self.mbox(self.victim), before, "victim's mbox changed")
        self.assertEqual(os.stat(own).st_nlink, 2)
        self.assert_kept_or_bounced("through the hard link")
        os.unlink(own)

    def test_a_maildir_new_that_is_a_symlink_is_not_followed(self):
        for u in (self.mallory, self.victim):
            md = os.path.join(u.pw_dir, "Maildir")
            shutil.rmtree(md, ignore_errors=True)
            for sub in ("", "cur", "new", "tmp"):
                os.mkdir(os.path.join(md, sub), 0o700)
                os.chown(os.path.join(md, sub), u.pw_uid, u.pw_gid)
        os.chmod(self.victim.pw_dir, 0o755)
        # A directory only root may write (in the sandbox's private /var).
        target = "/var/lib/evil-new"
        shutil.rmtree(target, ignore_errors=True)
        os.mkdir(target, 0o700)
        victim_new = os.path.join(self.victim.pw_dir, "Maildir", "new")
        for label, dest in (("root's directory", target), ("victim's new", victim_new)):
            with self.subTest(label):
                new = os.path.join(self.mallory.pw_dir, "Maildir", "new")

                def relink():
                    if os.path.islink(new):
                        os.unlink(new)
                    else:
                        os.rmdir(new)
                    os.symlink(dest, new)

                self.as_user(self.mallory, relink)
                mr.clear_queue()
                p = self.deliver(f"mallory@{HOST}", f"maildir {label}")
                self.assertIn(p.returncode, SYSEXITS)
                self.assertEqual(os.listdir(target), [])
                self.assertEqual(os.listdir(victim_new), [])
                self.assert_kept_or_bounced(f"maildir {label}")


@unittest.skipUnless(shutil.which("strace") and os.access(pf.INETD, os.X_OK), "needs strace and inetd")
class Pop3dPrivileges(mr.Case):
    def test_the_mailbox_is_opened_only_after_dropping_to_its_owner(self):
        for maildir in (False, True):
            with self.subTest(maildir=maildir):
                self.check(maildir)

    def check(self, maildir):
        name = "popmd" if maildir else "popmb"
        pw = pf.fresh_user(name, PASSWORD, maildir=maildir)
        pf.submit(name, "Subject: one\n\nx\n")
        d = tempfile.mkdtemp(prefix="strace.", dir=pf.workdir())
        trace = os.path.join(d, "trace")
        inetd = pf.Inetd([f"{pf.ADDR}:{pf.PORT}\tstream\ttcp\tnowait\troot\t/usr/bin/strace\t"
                          f"strace -f -qq -o {trace} -e trace=openat,open,setresuid,setuid,setreuid,"
                          f"clone,clone3,fork,vfork {pf.POP3D}"])
        inetd.start()
        self.addCleanup(inetd.stop)
        r = pf.Raw()
        self.assertTrue(r.greeting.startswith(b"+OK"), r.greeting)
        self.assertTrue(r.cmd(f"USER {name}").startswith(b"+OK"))
        self.assertTrue(r.cmd(f"PASS {PASSWORD}").startswith(b"+OK"))
        self.assertTrue(r.cmd("STAT").startswith(b"+OK 1 "))
        r.cmd("QUIT")
        r.close()
        self.assertTrue(pf.wait_until(lambda: not inetd.sessions(), 10))
        time.sleep(0.3)
        inetd.stop()
        with open(trace) as f:
            lines = f.read().splitlines()
        box = os.path.join(pw.pw_dir, "Maildir") if maildir else os.path.join(pf.SPOOL, name)
        uid = {}          # pid -> effective uid as far as the trace shows
        first = None
        opened = []
        pending = {}
        for line in lines:
            m = re.match(r"^(\d+)\s+(.*)$", line)
            if not m:
                continue
            pid, rest = int(m.group(1)), m.group(2)
            if first is None:
                first = pid
                uid[pid] = 0
            uid.setdefault(pid, 0)
            c = re.match(r"^(?:<\.\.\. )?(\w+)", rest)
            if c is None:
                continue  # +++ exited, --- signal
            call = c.group(1)
            if "<unfinished ...>" in rest:
                pending[pid] = rest
                continue
            if rest.startswith("<..."):
                rest = pending.pop(pid, "") + rest
            result = re.search(r"= (-?\d+)", rest)
            ok = result is not None and int(result.group(1)) >= 0
            if call in ("clone", "clone3", "fork", "vfork") and ok:
                uid[int(result.group(1))] = uid[pid]
            elif call == "setresuid" and ok:
                e = re.match(r"setresuid\((-?\d+), (-?\d+),", rest)
                if e and e.group(2) != "-1":
                    uid[pid] = int(e.group(2))
            elif call in ("setuid",) and ok:
                e = re.match(r"setuid\((\d+)\)", rest)
                uid[pid] = int(e.group(1))
            elif call == "setreuid" and ok:
                e = re.match(r"setreuid\((-?\d+), (-?\d+)\)", rest)
                if e.group(2) != "-1":
                    uid[pid] = int(e.group(2))
            elif call in ("openat", "open"):
                path = re.search(r'"([^"]*)"', rest)
                if path and path.group(1).startswith(box):
                    opened.append((pid, uid[pid], path.group(1), ok))
        self.assertTrue(opened, f"the trace shows no open of {box}:\n" + "\n".join(lines[-40:]))
        for pid, who, path, ok in opened:
            self.assertEqual(who, pw.pw_uid, f"pid {pid} opened {path} as uid {who}")
        print(f"\npop3d {'Maildir' if maildir else 'mbox'}: {len(opened)} opens of the mailbox, "
              f"all as uid {pw.pw_uid}")


class BruteForce(mr.Case):
    """Failed logins are slowed and logged; unknown users look like wrong
    passwords."""

    SAMPLES = 5

    def setUp(self):
        super().setUp()
        if sf.missing(sf.INETD, sf.SENDMAIL):
            self.skipTest("needs openbsd-inetd")
        self.user = pf.fresh_user("brute", PASSWORD)

    def test_pop3_failures_are_slowed_logged_and_alike(self):
        mr.default_config("pop3_auth_fail_delay = 1s\npop3_max_auth_failures = 3\n")
        inetd = pf.Inetd().start()
        self.addCleanup(inetd.stop)
        mark = mr.log_mark()
        # One session, three wrong passwords: 1 s, 2 s, then 4 s and bye.
        r = pf.Raw()
        took = []
        for i in range(3):
            r.cmd("USER brute")
            t = time.monotonic()
            reply = r.cmd(f"PASS wrong{i}")
            took.append(time.monotonic() - t)
            self.assertTrue(reply.startswith(b"-ERR"), reply)
        self.assertTrue(r.eof(), "the session ends after the last failure")
        print(f"\npop3 brute force: delays {[round(x, 2) for x in took]} s")
        for got, want in zip(took, (1, 2, 4)):
            self.assertGreaterEqual(got, want * 0.9, took)
        log = mr.log_since(mark)
        self.assertEqual(len(re.findall(r"login failed: brute from", log)), 3, log)

        def once(user, password):
            r = pf.Raw()
            r.cmd(f"USER {user}")
            t = time.monotonic()
            reply = r.cmd(f"PASS {password}")
            dt = time.monotonic() - t
            r.close()
            return reply, dt

        wrong, unknown = [], []
        for i in range(self.SAMPLES):
            wrong.append(once("brute", f"bad{i}"))
            unknown.append(once(f"nosuchuser{i}", f"bad{i}"))
        self.compare("pop3", wrong, unknown)

    def test_smtp_auth_failures_are_slowed_logged_and_alike(self):
        mr.write_config(f"hostname = {HOST}\nlog = {LOG}\nsmtp_auth_fail_delay = 500ms\n"
                        "smtp_max_auth_failures = 3\n" + mr.NO_SENDER_CHECKS)
        inetd = sf.Inetd().start()
        self.addCleanup(inetd.stop)
        mark = mr.log_mark()

        def plain(user, password):
            return base64.b64encode(f"\0{user}\0{password}".encode()).decode()

        # From loopback, where AUTH is offered without TLS.
        r = sf.Raw(sf.SUBMISSION_PORT, source=None)
        r.cmd("EHLO client.example.org")
        took = []
        replies = []
        for i in range(3):
            t = time.monotonic()
            replies.append(r.cmd(f"AUTH PLAIN {plain('brute', f'wrong{i}')}"))
            took.append(time.monotonic() - t)
        print(f"\nsmtp brute force: delays {[round(x, 2) for x in took]} s, last reply {replies[-1]!r}")
        self.assertTrue(all(x.startswith(b"535 ") for x in replies[:2]), replies)
        self.assertTrue(replies[2].startswith(b"535 ") or replies[2].startswith(b"421 "), replies)
        for got, want in zip(took, (0.5, 1.0, 2.0)):
            self.assertGreaterEqual(got, want * 0.9, took)
        self.assertTrue(r.eof(), "the session ends after the last failure")
        log = mr.log_since(mark)
        self.assertEqual(len(re.findall(r"AUTH failure \(PLAIN\): .*relay=\[127\.0\.0\.1\]", log)), 3, log)

        def once(user, password):
            r = sf.Raw(sf.SUBMISSION_PORT, source=None)
            r.cmd("EHLO client.example.org")
            t = time.monotonic()
            reply = r.cmd(f"AUTH PLAIN {plain(user, password)}")
            dt = time.monotonic() - t
            r.close()
            return reply, dt

        wrong, unknown = [], []
        for i in range(self.SAMPLES):
            wrong.append(once("brute", f"bad{i}"))
            unknown.append(once(f"nosuchuser{i}", f"bad{i}"))
        self.compare("smtp", wrong, unknown)

    def compare(self, what, wrong, unknown):
        self.assertEqual({r for r, _ in wrong}, {r for r, _ in unknown})
        self.assertEqual(len({r for r, _ in wrong}), 1, wrong)
        mw = statistics.median(t for _, t in wrong)
        mu = statistics.median(t for _, t in unknown)
        print(f"\n{what}: wrong password median {mw * 1000:.0f} ms, unknown user median {mu * 1000:.0f} ms")
        # Generous: 40% of the slower or 300 ms, whichever is more.
        self.assertLess(abs(mw - mu), max(0.3, 0.4 * max(mw, mu)), (wrong, unknown))


@unittest.skipUnless(netfix.available(), "needs dnsmasq, python3-aiosmtpd and openssl")
class OpenRelay(mr.Case):
    """Every relay trick, from an outside address, on ports 25 and 587."""

    def setUp(self):
        if sf.missing(sf.INETD, sf.SENDMAIL):
            self.skipTest("needs openbsd-inetd")
        super().setUp()
        sitefix.configure("smtp_greet_pause = 0\n")
        site = sitefix.Site(self.addCleanup, remotes={REMOTE: REMOTE_MX})
        self.sink, self.inetd = site.sinks[REMOTE], site.inetd
        pf.fresh_user("relayuser", PASSWORD)

    def tricks(self):
        r, h = REMOTE, HOST
        return [
            f"user@{r}", f"USER@{r.upper()}", f"user@{r}.", f"user@{r.title()}",
            f"user%{r}@{h}", f"user%{r}@{h.upper()}", f"user%{r}@localhost", f"user%{r}@[127.0.0.1]",
            f"user%{r}%{h}@{h}", f"relayuser%{r}@{h}", f"user%{r}.@{h}",
            f'"user@{r}"@{h}', f'"user%{r}"@{h}', f'"user@{r}"', f'"user@{r}"@localhost',
            f"@{h}:user@{r}", f"@{h},@localhost:user@{r}", f"@localhost:user@{r}",
            f"user@{r}@{h}", f"user@{r}@localhost",
            f"{r}!user", f"{r}!user@{h}", f"{h}!{r}!user", f"{r.upper()}!USER@{h.upper()}",
            f"localhost!{r}!user",
            f"user@[{REMOTE_MX}]", f"user@[IPv6:::ffff:{REMOTE_MX}]", f"user@{REMOTE_MX}",
            f"user%[{REMOTE_MX}]@{h}", f"user@[{REMOTE_MX}].", f"user@[127.0.0.1]",
            f"user@localhost.{r}", f"user@{r}.localhost", f"user@{h}.{r}",
            f"user@{r}\\@{h}", f"user@{r} ", f" user@{r}", f"user@{r}>@{h}",
            f"user@{r}:25", f"<user@{r}>", f"user@{r}%{h}",
        ]

    def session(self, port, helo):
        r = sf.Raw(port)
        self.addCleanup(r.close)
        r.cmd(f"EHLO {helo}")
        return r

    def attempt(self, r, sender, rcpt):
        """One transaction on session r; the message is sent when RCPT is
        accepted.  Returns (accepted, whether the session is still open)."""
        reply = r.cmd("RSET")
        if not reply.startswith(b"250"):
            return False, False
        if not r.cmd(f"MAIL FROM:<{sender}>").startswith(b"250"):
            return False, not r.closed
        reply = r.cmd(f"RCPT TO:<{rcpt}>")
        if reply.startswith(b"25"):
            if r.cmd("DATA").startswith(b"354"):
                r.cmd(f"Subject: relay test\r\nX-Rcpt: {rcpt}\r\n\r\nrelayed?\r\n.")
            return True, not r.closed
        return False, not r.closed and not reply.startswith(b"421")

    def test_relay_battery_on_ports_25_and_587_relays_nothing(self):
        attempts = accepted = 0
        taken = []
        for port in (sf.SMTP_PORT, sf.SUBMISSION_PORT):
            for helo in ("client.example.org", "localhost", "[127.0.0.1]", HOST):
                r = self.session(port, helo)
                for sender in ("spammer@example.net", f"relayuser@{HOST}", ""):
                    for rcpt in self.tricks():
                        attempts += 1
                        ok, open_ = self.attempt(r, sender, rcpt)
                        if ok:
                            accepted += 1
                            taken.append((port, helo, sender, rcpt))
                        if not open_:
                            # Too many bad recipients: a new connection.
                            r.close()
                            r = self.session(port, helo)
                r.cmd("QUIT")
                r.close()
        self.assertTrue(self.inetd.wait_idle(30))
        # Whatever was taken is delivered (or bounced) now.
        mr.run(["/usr/sbin/sendmail", "-qf"], timeout=300)
        time.sleep(0.5)
        relayed = self.sink.messages + self.sink.refused + self.sink.dropped
        print(f"\nrelay: {attempts} attempts, {len(relayed)} relayed "
              f"({accepted} accepted for local delivery)")
        self.assertEqual([m.rcpt_tos for m in relayed], [], taken)
        self.assertEqual(self.sink.transactions, [])
        for port, helo, sender, rcpt in taken:
            self.assertEqual(port, sf.SMTP_PORT, f"accepted on 587 without AUTH: {rcpt}")
        # The control: a client on loopback may relay, and the sink sees it.
        r = sf.Raw(sf.SMTP_PORT, source=None)
        r.cmd("EHLO localhost")
        self.assertTrue(self.attempt(r, "shop@" + HOST, f"user@{REMOTE}")[0])
        r.cmd("QUIT")
        self.assertEqual(len(self.sink.wait_for(1, timeout=20)), 1, "the sink must see a real relay")


if __name__ == "__main__":
    unittest.main()
