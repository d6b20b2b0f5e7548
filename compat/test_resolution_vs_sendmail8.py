"""Differential: the resolution table (tests/resolution/*.case) through real
sendmail 8 and through the installed mailroom, side by side.

An admin's existing aliases, virtusertable and domain lists must send mail
exactly where sendmail 8 sent it.  Both programs run `sendmail -bv` on
every address; the verdict lines (in any order) and the exit codes must be
the same, and must still be what tests/resolution/*.expected recorded.
"""

import os
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


if __name__ == "__main__":
    unittest.main()
