"""An admin reads the manual: on a box with no other MTA, `man sendmail`
(and mailq, newaliases) shows mailroom's page; every page `make install`
put in place renders with man -l without a warning; the configuration
page names every key of the sample file; `make uninstall` takes the pages
away again."""

import os
import re
import tempfile

import mr

GENERATED = os.path.join(mr.REPO, "target", "generated", "man")
MAN = "/usr/share/man"


def installed_pages():
    """The pages make install put under /usr/share/man: those mailroom
    generate wrote, and the mailq/newaliases links."""
    pages = []
    for name in sorted(os.listdir(GENERATED)):
        section = name.rsplit(".", 1)[1]
        pages.append(os.path.join(MAN, f"man{section}", name))
    return pages + [os.path.join(MAN, "man8", n) for n in ("mailq.8", "newaliases.8")]


class ManualPages(mr.Case):
    def setUp(self):
        super().setUp()
        if not mr.have("man", "man-db") or not mr.have("groff", "groff-base"):
            self.skipTest("man (package man-db) and groff (groff-base)")

    def man(self, *args):
        return mr.run(["man"] + list(args), env={"MANWIDTH": "80", "LANG": "C.UTF-8", "MANPAGER": "cat"})

    def test_man_sendmail_mailq_and_newaliases_show_mailrooms_page(self):
        # The sandbox's /usr is the host's, which has no MTA (.ci/run never
        # installs one): the only sendmail page is ours.
        for name in ("sendmail", "mailq", "newaliases"):
            p = self.man(name)
            self.assertEqual(p.returncode, 0, p.stderr)
            out = p.stdout.decode()
            words = " ".join(out.split())
            self.assertRegex(out, r"^sendmail\(8\) +System Manager's Manual", name)
            self.assertIn("sendmail, mailq, newaliases - submit mail", words, name)
            self.assertIn("/var/spool/mqueue", out, name)
            self.assertRegex(out, r"mailroom \S+ +sendmail\(8\)\s*$", name)
        self.assertEqual(os.path.realpath(f"{MAN}/man8/mailq.8"), f"{MAN}/man8/sendmail.8")

    def test_the_other_pages_are_found_by_name(self):
        for args, want in ((["8", "qrun"], "qrun - the queue runner"),
                           (["8", "deliver"], "deliver - the local delivery agent"),
                           (["8", "pop3d"], "pop3d - the POP3 server"),
                           (["5", "mailroom.conf"], "mailroom.conf - mailroom's own settings"),
                           (["5", "mailroom-filter"], "mailroom-filter - rules that file"),
                           (["5", "mailroom-log"], "mailroom-log - the lines mailroom's programs write"),
                           (["mailroom"], "mailroom")):
            p = self.man(*args)
            self.assertEqual(p.returncode, 0, (args, p.stderr))
            self.assertIn(want, " ".join(p.stdout.decode().split()), args)

    def test_every_installed_page_renders_without_warnings(self):
        pages = installed_pages()
        self.assertGreater(len(pages), 20)
        for path in pages:
            with self.subTest(page=path):
                self.assertTrue(os.path.exists(path), path)
                p = self.man("--warnings", "-l", path)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(p.stderr.decode(), "", path)
                self.assertGreater(len(p.stdout.splitlines()), 5, path)

    def test_the_configuration_page_names_every_key_of_the_sample_file(self):
        with open(os.path.join(mr.REPO, "etc", "mailroom.conf")) as f:
            keys = re.findall(r"^#([a-z0-9_]+) = ", f.read(), re.M)
        self.assertGreater(len(keys), 40)
        out = self.man("5", "mailroom.conf").stdout.decode()
        for key in keys:
            self.assertRegex(out, rf"\n +{key} = ", key)

    def test_the_log_page_explains_the_lines_the_log_holds(self):
        out = self.man("5", "mailroom-log").stdout.decode()
        for line in ("QID: from=SENDER, size=N, class=N, nrcpts=N[, msgid=MSGID]",
                     "login failed: LOGIN from ADDRESS",
                     "ruleset=check_rcpt, arg1=<RCPT>, relay=RELAY, reject=REPLY"):
            self.assertIn(line, out)

    def test_uninstall_takes_the_pages_away(self):
        with tempfile.TemporaryDirectory() as d:
            env = {"PATH": os.environ["PATH"]}
            p = mr.run(["make", "-s", "install", f"DESTDIR={d}"], cwd=mr.REPO, env=env)
            self.assertEqual(p.returncode, 0, p.stderr)
            pages = [d + path for path in installed_pages()]
            self.assertEqual([p for p in pages if not os.path.lexists(p)], [])
            p = mr.run(["make", "-s", "uninstall", f"DESTDIR={d}"], cwd=mr.REPO, env=env)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual([p for p in pages if os.path.lexists(p)], [])
