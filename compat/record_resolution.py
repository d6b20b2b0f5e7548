#!/usr/bin/env python3
"""Record the expected verdicts of tests/resolution/*.case from real
sendmail 8 (the oracle): writes the matching *.expected files.  Needs root
and the oracle (compat/oracle/setup.sh).  Run after adding cases:

    python3 compat/record_resolution.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resolution_cases as rc  # noqa: E402

ORACLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "oracle")
SM_ORACLE = os.environ.get("SM_ORACLE", "/opt/sm-oracle")

for path in rc.case_files():
    case = rc.parse_case(path)
    verdicts = rc.oracle_verdicts(case, ORACLE, SM_ORACLE)
    out = path[:-len(".case")] + ".expected"
    rc.write_expected(out, verdicts, case["verify"])
    print(f"{out}: {len(verdicts)} addresses")
