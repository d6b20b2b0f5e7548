"""The submission section's caller: what PHP's mail() does, many times.

    caller.py JSON

mail() runs popen("/bin/sh -c 'CMD -t -i'", "w"), writes the message and
pclose()s; this does the same with each of `callers` threads making its
share of `count` calls, one after another, each a 2 KB message To: the
next of `recipients`, Message-ID <PREFIX.I@bench.example>.  It runs as the
web server's user (run.py starts it so) and prints one JSON object: each
call's seconds, the first start and last end (time.monotonic()), the
calls that failed, and its own CPU seconds (not its children's), which
the section leaves out of the systems' CPU.
"""

import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import message_2k  # noqa: E402


def main() -> None:
    job = json.loads(sys.argv[1])
    cmd, count, callers = job["cmd"], job["count"], job["callers"]
    recipients, prefix = job["recipients"], job["prefix"]
    messages = [
        message_2k(recipients[i % len(recipients)], ident=f"{prefix}.{i}") for i in range(count)
    ]
    seconds = [0.0] * count
    failed: list[str] = []
    go = threading.Barrier(callers)

    def caller(k: int) -> None:
        go.wait()
        for i in range(k, count, callers):
            t0 = time.monotonic()
            p = subprocess.Popen(["/bin/sh", "-c", f"{cmd} -t -i"], stdin=subprocess.PIPE)
            try:
                p.stdin.write(messages[i])
                p.stdin.close()
            except BrokenPipeError:
                pass
            status = p.wait()
            seconds[i] = time.monotonic() - t0
            if status != 0:
                failed.append(f"call {i}: exit {status}")

    start = time.monotonic()
    threads = [threading.Thread(target=caller, args=(k,)) for k in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    end = time.monotonic()
    own = os.times()
    json.dump(
        {"seconds": seconds, "start": start, "end": end, "failed": failed, "cpu": own.user + own.system},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
