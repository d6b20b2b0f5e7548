"""Differential: the resolution table (tests/resolution/*.case) through real
sendmail 8 and through the installed mailroom, side by side.

An admin's existing aliases, virtusertable and domain lists must send mail
exactly where sendmail 8 sent it.  Both programs run `sendmail -bv` on
every address; the verdict lines (in any order) and the exit codes must be
the same, and must still be what tests/resolution/*.expected recorded.

Then real mail: messages to quoted aliases names (`"john smith": john`),
submitted on the command line and over SMTP (`sendmail -bs` on a pipe, as
a local program talks to it), must land in the mailboxes sendmail 8 puts
them in, and RCPT must get the same replies.
"""

import os
import subprocess
import unittest

import mr
import resolution_cases as rc

LISTS = "/etc/mail/lists"


def install_case(case):
    os.makedirs(LISTS, exist_ok=True)
    for key in ("aliases", "virtusertable", "local-host-names", "virtuser-domains"):
        with open(f"/etc/mail/{key}", "w") as f:
            f.write(case[key].replace("@DIR@", LISTS))
    for name, text in case["includes"].items():
        with open(os.path.join(LISTS, name), "w") as f:
            f.write(text.replace("@DIR@", LISTS))
    for u in case["users"]:
        mr.ensure_user(u, home=False)
    # The oracle's settings: $j = oracle.test, no interface probing, no
    # .forward files.
    mr.write_config("hostname = oracle.test\nlog = /var/log/mail.log\nprobe_interfaces = no\n"
                    "forward_files = no\ndelivery_mode = queue\n")


def ours(addr):
    p = mr.run(["/usr/sbin/sendmail", "-bv", "--", addr])
    text = (p.stdout + p.stderr).decode("latin-1").replace(LISTS, "@DIR@")
    return {"lines": [l for l in text.split("\n") if l], "exit": p.returncode}


@unittest.skipUnless(mr.oracle_available(), "sendmail 8 oracle not built (compat/oracle/setup.sh)")
class ResolutionDifferential(mr.Case):
    def test_every_case_resolves_the_same_in_both(self):
        checked = 0
        for path in rc.case_files():
            case = rc.parse_case(path)
            expected = rc.parse_expected(path[:-len(".case")] + ".expected")
            theirs = rc.oracle_verdicts(case, mr.ORACLE, mr.SM_ORACLE)
            install_case(case)
            for addr in case["verify"]:
                with self.subTest(case=os.path.basename(path), address=addr):
                    t = theirs[addr]
                    o = ours(addr)
                    self.assertEqual(sorted(t["lines"]), sorted(expected[addr]["lines"]),
                                     "sendmail 8 no longer gives the recorded verdict")
                    self.assertEqual(t["exit"], expected[addr]["exit"])
                    self.assertEqual(sorted(o["lines"]), sorted(t["lines"]))
                    self.assertEqual(o["exit"], t["exit"])
                    checked += 1
        self.assertGreater(checked, 40)


QUOTED_ALIASES = ('"john smith": john\n"sales.team": anna\n"Jane.Doe": carol\n'
                  '"Mixed Case": dave\n')
QUOTED_USERS = ("john", "anna", "carol", "dave")
# subject -> recipients on the command line
BY_ARGV = {
    "argv-1": ['"John Smith"'],
    "argv-2": ["sales.team", '"Jane.Doe"@example.com'],
    "argv-3": ['"mixed case"@oracle.test', "jane.doe"],
}
# subject -> RCPT TO arguments (sendmail also takes a path without <>)
BY_SMTP = {
    "smtp-1": ['<"john smith"@example.com>', '<"john  smith"@example.com>'],
    "smtp-2": ['<"Sales.Team"@example.com>', '<"JANE.DOE"@oracle.test>'],
    "smtp-3": ['"MIXED CASE"@example.com NOTIFY=NEVER'],
}
# Where sendmail 8 delivered each (pinned, so a changed oracle cannot make
# the comparison vacuous).
SENDMAIL8_DELIVERED = {
    "argv-1": ["john"], "argv-2": ["anna", "carol"], "argv-3": ["carol", "dave"],
    "smtp-1": ["john"], "smtp-2": ["anna", "carol"], "smtp-3": ["dave"],
}


def smtp_on_a_pipe(argv, env, subject, rcpts):
    """One transaction, line by line (sendmail 8 refuses a client that
    sends before its replies); the RCPT replies."""
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env) as p:
        return transaction(p, subject, rcpts)


def transaction(p, subject, rcpts):
    """The dialogue of smtp_on_a_pipe with the started server `p`."""
    def reply():
        lines = []
        while True:
            line = p.stdout.readline().decode("latin-1")
            lines.append(line.rstrip("\r\n"))
            if len(line) < 4 or line[3] != "-":
                return lines

    def say(text):
        p.stdin.write(text.encode() + b"\r\n")
        p.stdin.flush()
        return reply()

    reply()
    say("HELO client.test")
    say("MAIL FROM:<someone@remote.test>")
    replies = {r: say(f"RCPT TO:{r}")[0] for r in rcpts}
    say("DATA")
    say(f"Subject: {subject}\r\n\r\nbody\r\n.")
    say("QUIT")
    p.wait(timeout=60)
    return replies


def delivered(mail_dir, users):
    """subject (of this test's messages) -> sorted users whose mailbox
    holds it."""
    out = {}
    for u in users:
        try:
            with open(os.path.join(mail_dir, u), "rb") as f:
                text = f.read().decode("latin-1")
        except FileNotFoundError:
            continue
        for line in text.split("\n"):
            subject = line[len("Subject: "):]
            if line.startswith("Subject: ") and subject in SENDMAIL8_DELIVERED:
                out.setdefault(subject, []).append(u)
    return {k: sorted(v) for k, v in out.items()}


@unittest.skipUnless(mr.oracle_available(), "sendmail 8 oracle not built (compat/oracle/setup.sh)")
class MailToQuotedAliasNames(mr.Case):
    def test_delivered_where_sendmail8_delivers_it_from_the_command_line_and_smtp(self):
        inst = mr.oracle_instance("quoted-delivery", aliases=QUOTED_ALIASES, domains="example.com\n",
                                  users="".join(u + "\n" for u in QUOTED_USERS))
        install_case({"aliases": QUOTED_ALIASES, "virtusertable": "", "local-host-names": "example.com\n",
                      "virtuser-domains": "", "includes": {}, "users": QUOTED_USERS})
        oracle_env = {"SM_ORACLE": mr.SM_ORACLE, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        for subject, rcpts in BY_ARGV.items():
            msg = f"Subject: {subject}\n\nbody\n".encode()
            t = mr.oracle(inst, ["-odq", "-i"] + rcpts, input=msg)
            self.assertEqual(t.returncode, 0, t.stdout + t.stderr)
            o = mr.sendmail(["-i"] + rcpts, msg)
            self.assertEqual(o.returncode, 0, o.stdout + o.stderr)
        for subject, rcpts in BY_SMTP.items():
            theirs = smtp_on_a_pipe([os.path.join(mr.ORACLE, "sm.sh"), inst, "-bs"], oracle_env, subject, rcpts)
            ours = smtp_on_a_pipe(["/usr/sbin/sendmail", "-bs"], {"PATH": oracle_env["PATH"], "LANG": "C"},
                                  subject, rcpts)
            self.assertEqual(ours, theirs, f"RCPT replies for {subject}")
            for r in rcpts:
                self.assertTrue(theirs[r].startswith("250 " if "  " not in r else "550 "), theirs)
        t = mr.oracle(inst, ["-qf"])
        self.assertEqual(t.returncode, 0, t.stdout + t.stderr)
        self.run_queue()
        theirs = delivered(os.path.join(inst, "mail"), QUOTED_USERS)
        self.assertEqual(theirs, SENDMAIL8_DELIVERED, "sendmail 8 no longer delivers as recorded")
        self.assertEqual(delivered("/var/mail", QUOTED_USERS), theirs)


if __name__ == "__main__":
    unittest.main()
