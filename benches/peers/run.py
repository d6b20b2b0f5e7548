"""make bench-peers, inside the sandbox benches/peers/enter.sh builds:
runs the sections asked for (default all) and prints their rows.

    run.py [SECTION...] [--rounds N]

Each section is benches/peers/<section>.py with run(ctx) -> list[Row];
ctx carries the number of rounds, a scratch directory on the same disk as
the queues, and the helpers below.
"""

import argparse
import importlib
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402

SECTIONS = ["submission", "drain", "flush", "pop3", "smtpd"]
TITLES = {
    "submission": "Submission: PHP mail() through each sendmail",
    "drain": "Local drain: a queue of 2 KB messages into mailboxes",
    "flush": "Remote flush: a queue of 2 KB messages to an SMTP sink on loopback",
    "pop3": "POP3: mailroom pop3d against Dovecot",
    "smtpd": "Inbound SMTP: mailroom against Postfix's smtpd",
}


class Context:
    """What a section gets: the rounds, a scratch directory, helpers."""

    def __init__(self, rounds: int):
        self.rounds = rounds
        # On the overlaid /var: the scratch disk, as the queues are.
        self.work = Path("/var/tmp/bench-peers")
        self.work.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()

    def log(self, msg: str) -> None:
        """Progress, to stderr (the rows go to stdout)."""
        print(f"[{time.monotonic() - self.started:6.0f} s] {msg}", file=sys.stderr, flush=True)

    def users(self, prefix: str, n: int) -> list[str]:
        """n local users prefix0..prefix{n-1} (made once; no home)."""
        names = [f"{prefix}{i}" for i in range(n)]
        for name in names:
            try:
                pwd.getpwnam(name)
            except KeyError:
                subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", name], check=True)
        return names


def main() -> int:
    parser = argparse.ArgumentParser(prog="make bench-peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=f"any of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (default 3)")
    args = parser.parse_args()
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)}; sections: {', '.join(SECTIONS)}")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    ctx = Context(args.rounds)
    versions = Path("/run/bench-peers/versions")
    if versions.exists():
        print("make bench-peers: " + "; ".join(versions.read_text().split("\n")).strip("; "))
    print(f"queues and mailboxes on disk {common.scratch_disk() or '?'}; {os.cpu_count()} CPUs")
    print(
        f"{args.rounds} rounds per figure; median (min–max); ratio = mailroom against the peer, "
        f"above 1 = mailroom better; 'noisy' = rounds spread over {common.NOISY * 100:.0f}% of the median"
    )
    failed = []
    for section in args.sections or SECTIONS:
        if not (HERE / f"{section}.py").exists():
            print(f"\n== {TITLES[section]}\n  (not in this checkout)")
            continue
        ctx.log(f"section {section}")
        try:
            rows = importlib.import_module(section).run(ctx)
        except Exception as e:  # a broken peer must not hide the other sections
            print(f"\n== {TITLES[section]}\n  FAILED: {e}")
            failed.append(section)
            continue
        common.print_rows(TITLES[section], rows)
    ctx.log("done")
    if failed:
        print(f"\nmake bench-peers: failed sections: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
