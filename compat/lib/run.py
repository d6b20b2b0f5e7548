"""Runs the compat scenarios (unittest discovery over compat/test_*.py,
with unittest's own options such as -k) inside the sandbox; run-all.sh
starts it.

A skipped scenario is a missing prerequisite: under CI (mr.under_ci) it is
reported as a failure naming it, since .ci/run installs every one;
elsewhere it is listed for make test's summary (mr.record_skip).  The last
line counts what ran and what was skipped.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mr  # noqa: E402


class Result(unittest.TextTestResult):
    def startTest(self, test):
        mr.CURRENT_TEST = test.id()
        super().startTest(test)

    def addSkip(self, test, reason):
        if mr.under_ci():
            try:
                raise AssertionError(f"prerequisite missing under CI: {reason} [.ci/run installs every one]")
            except AssertionError:
                self.addFailure(test, sys.exc_info())
            return
        super().addSkip(test, reason)
        mr.record_skip(test.id(), reason)


class Runner(unittest.TextTestRunner):
    resultclass = Result

    def run(self, test):
        result = super().run(test)
        print(f"compat: {result.testsRun} scenarios run, {len(result.skipped)} skipped, "
              f"{len(result.failures) + len(result.errors)} failed", file=sys.stderr)
        return result


if __name__ == "__main__":
    compat = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    unittest.main(module=None, testRunner=Runner,
                  argv=[sys.argv[0], "discover", "-s", compat, "-p", "test_*.py", "-v"] + sys.argv[1:])
