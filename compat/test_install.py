"""An admin installs mailroom with `make install` and sends a first mail."""

import grp
import os
import stat
import subprocess
import tempfile
import unittest

import mr


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def owner(path):
    st = os.lstat(path)
    return (st.st_uid, grp.getgrgid(st.st_gid).gr_name)


class InstallLayout(mr.Case):
    def test_destdir_install_lays_out_the_files_with_their_modes(self):
        with tempfile.TemporaryDirectory() as d:
            p = mr.run(["make", "-s", "install", f"DESTDIR={d}"], cwd=mr.REPO, env={"PATH": os.environ["PATH"]})
            self.assertEqual(p.returncode, 0, p.stderr.decode())
            sm = f"{d}/usr/sbin/sendmail"
            self.assertEqual(mode(sm), 0o2755)
            self.assertEqual(owner(sm), (0, "mqueue"))
            for link in ("usr/bin/mailq", "usr/bin/newaliases", "usr/lib/sendmail"):
                self.assertTrue(os.path.islink(f"{d}/{link}"), link)
                self.assertEqual(os.path.realpath(f"{d}/{link}"), os.path.realpath(sm))
            self.assertTrue(os.path.isdir(f"{d}/usr/libexec/mailroom"))
            q = f"{d}/var/spool/mqueue"
            # new/: where sendmail announces new mail to the express run.
            for qd in (q, f"{q}/new"):
                self.assertEqual(mode(qd), 0o2770, qd)
                self.assertEqual(owner(qd), (0, "mqueue"), qd)
            self.assertEqual(mode(f"{d}/var/mail"), 0o2775)
            self.assertEqual(owner(f"{d}/var/mail"), (0, "mail"))
            self.assertEqual(mode(f"{d}/etc/mail/mailroom.conf"), 0o644)
            self.assertTrue(os.path.isfile(f"{d}/etc/mail/aliases"))
            for helper in ("qrun", "deliver", "pop3d"):
                path = f"{d}/usr/libexec/mailroom/{helper}"
                if os.path.exists(path):
                    self.assertTrue(os.access(path, os.X_OK), path)
            if os.path.exists(f"{d}/usr/libexec/mailroom/qrun"):
                self.assertEqual(mode(f"{d}/usr/libexec/mailroom/qrun"), 0o4750)
                self.assertEqual(owner(f"{d}/usr/libexec/mailroom/qrun"), (0, "mqueue"))
            # Dovecot's login check: set-uid root, for group dovecot only
            # (where Dovecot is installed; else the program refuses others).
            cp = f"{d}/usr/libexec/mailroom/checkpassword"
            if os.path.exists(cp):
                try:
                    grp.getgrnam("dovecot")
                    self.assertEqual((mode(cp), owner(cp)), (0o4750, (0, "dovecot")))
                except KeyError:
                    self.assertEqual((mode(cp), owner(cp)), (0o4755, (0, "root")))
            # Dovecot's configuration, to copy (nothing reads it there).
            with open(f"{d}/usr/share/mailroom/dovecot/99-mailroom.conf") as f:
                self.assertIn("args = /usr/libexec/mailroom/checkpassword\n", f.read())
            # Completions and manual pages, generated from mailroom's --help.
            bash = f"{d}/usr/share/bash-completion/completions/mailroom"
            self.assertEqual(mode(bash), 0o644)
            with open(bash) as f:
                self.assertIn("catchall", f.read())
            self.assertTrue(os.path.isfile(f"{d}/usr/share/zsh/site-functions/_mailroom"))
            for page in ("mailroom.8", "mailroom-alias-add.8", "mailroom-check.8", "mailroom-domain.8"):
                self.assertTrue(os.path.isfile(f"{d}/usr/share/man/man8/{page}"), page)
            man = subprocess.run(["man", "-l", f"{d}/usr/share/man/man8/mailroom-alias-add.8"],
                                 capture_output=True, env={"PATH": os.environ["PATH"], "MANWIDTH": "80"})
            if man.returncode == 0:
                self.assertIn(b"sales@shop.example", man.stdout)

    def test_prefix_is_honoured(self):
        with tempfile.TemporaryDirectory() as d:
            p = mr.run(["make", "-s", "install", f"DESTDIR={d}", "PREFIX=/usr/local"], cwd=mr.REPO, env={"PATH": os.environ["PATH"]})
            self.assertEqual(p.returncode, 0, p.stderr.decode())
            self.assertTrue(os.path.isfile(f"{d}/usr/local/sbin/sendmail"))
            self.assertTrue(os.path.islink(f"{d}/usr/local/bin/mailq"))
            self.assertFalse(os.path.exists(f"{d}/usr/sbin/sendmail"))
            self.assertTrue(os.path.isfile(f"{d}/usr/local/share/man/man8/mailroom.8"))
            self.assertTrue(os.path.isfile(f"{d}/usr/local/share/bash-completion/completions/mailroom"))
            with open(f"{d}/usr/local/share/mailroom/dovecot/99-mailroom.conf") as f:
                self.assertIn("args = /usr/local/libexec/mailroom/checkpassword\n", f.read())

    def test_reinstall_keeps_the_admins_configuration(self):
        mr.write_config("# edited by the admin\nhostname = keep.example.test\n")
        p = mr.run(["make", "-s", "install"], cwd=mr.REPO, env={"PATH": os.environ["PATH"]})
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        with open("/etc/mail/mailroom.conf") as f:
            self.assertIn("edited by the admin", f.read())

    def test_the_installed_layout_is_the_real_one(self):
        self.assertEqual(mode("/usr/sbin/sendmail"), 0o2755)
        self.assertEqual(owner("/usr/sbin/sendmail"), (0, "mqueue"))
        for qd in (mr.QUEUE, os.path.join(mr.QUEUE, "new")):
            self.assertEqual(mode(qd), 0o2770, qd)
            self.assertEqual(owner(qd), (0, "mqueue"), qd)


class CheckoutAnywhere(mr.Case):
    """A newcomer clones wherever they like.  The sandbox lays fresh tmpfs
    over /tmp, /home and /run (lib/sandbox.sh); a checkout there must stay
    visible to its `make install` and to the scenarios.  Here the real
    checkout is bound under /tmp and under /home, and compat/run-all.sh is
    run from there for a scenario that installs from the checkout."""

    def test_run_all_works_from_a_checkout_under_tmp_and_under_home(self):
        for where in ("/tmp/newcomer/mailroom", "/home/newcomer/src/mailroom"):
            with self.subTest(where=where):
                os.makedirs(where, exist_ok=True)
                mr.run(["mount", "--bind", mr.REPO, where], check=True)
                try:
                    p = mr.run(["compat/run-all.sh", "-k", "test_reinstall_keeps_the_admins_configuration"],
                               cwd=where, timeout=900,
                               env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
                                    "SM_ORACLE": mr.SM_ORACLE})
                finally:
                    mr.run(["umount", where], check=True)
                out = (p.stdout + p.stderr).decode(errors="replace")
                self.assertEqual(p.returncode, 0, out[-3000:])
                self.assertNotIn("could not find Cargo.toml", out)
                self.assertRegex(out, r"Ran 1 test in .*\n\nOK\n", out[-3000:])


class FirstMail(mr.Case):
    def test_echo_hi_pipe_sendmail_root(self):
        p = subprocess.run("echo hi | sendmail root", shell=True, capture_output=True,
                           env={"PATH": "/usr/sbin:/usr/bin:/bin"})
        self.assertEqual(p.returncode, 0, p.stderr)
        qid = mr.only_id(self)
        self.assertEqual(mr.df(qid), b"hi\n")
        self.assertEqual(mr.qf_recipients(qid), ["root"])

    def test_an_ordinary_user_submits_through_the_setgid_binary(self):
        mr.ensure_user("alice")
        p = mr.sendmail(["bob@example.org"], b"Subject: from alice\n\nhello\n", user="alice")
        self.assertEqual(p.returncode, 0, p.stderr)
        qid = mr.only_id(self)
        self.assertEqual(mr.qf_records(qid, "S"), ["alice"])
        st = os.stat(os.path.join(mr.QUEUE, "qf" + qid))
        self.assertEqual(grp.getgrgid(st.st_gid).gr_name, "mqueue")
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
        # alice cannot look into the queue herself ...
        p = mr.run(["ls", mr.QUEUE], user="alice")
        self.assertNotEqual(p.returncode, 0)
        # ... but mailq (set-group-id) shows it.
        p = mr.run(["mailq"], user="alice")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(qid.encode(), p.stdout)

    def test_newaliases_checks_the_installed_aliases(self):
        p = mr.run(["newaliases"])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout.decode(), r"^/etc/mail/aliases: \d+ aliases, longest \d+ bytes, \d+ bytes total\n$")


if __name__ == "__main__":
    unittest.main()
