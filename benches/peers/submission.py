"""Submission (target 1): PHP's mail() through each system's sendmail.

The caller (caller.py, running as www-data as PHP does) popen()s
"/bin/sh -c 'CMD -t -i'" and writes a 2 KB message To: a local user, whose
mbox gets it after sendmail has returned.  CMD is, for each system:
  floor     "cat >/dev/null #" (the options fall in the comment): the cost of
            the shell, one program start and the pipe, which no sendmail
            can beat;
  mailroom  /usr/sbin/sendmail;   dma /usr/sbin/dma;
  postfix   /usr/sbin/sendmail.postfix (postdrop, then pickup, cleanup,
            qmgr and local deliver).

Figures: with 1 caller, the median time of a call over CALLS_1 calls; with
8 callers making CALLS_8 calls in all, messages per second accepted (the
last call returned) and delivered (the last message in the mbox); and over
that 8-caller run, whole-sandbox costs per message: CPU (every process of
the PID namespace but the driver, including each system's daemons), tasks
started (PIDs the namespace allocated: processes and threads) and disk
flush requests (/proc/diskstats: the fsyncs as the disk saw them, after
the journal grouped concurrent ones).  Every run checks that each message
reached the mbox exactly once.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import systems
from common import Accounting, Row, median, rounds

CALLS_1 = 300
CALLS_8 = 800
WARMUP = 20
FLOOR_CMD = "cat >/dev/null #"


def run(ctx) -> list[Row]:
    user = ctx.users("bench", 1)[0]
    bin_dir = ctx.work / "bin"
    bin_dir.mkdir(exist_ok=True)
    here = Path(__file__).resolve().parent
    for f in ("caller.py", "common.py"):
        shutil.copy(here / f, bin_dir / f)
    mbox = systems.MAIL_SPOOL / user
    postfix = systems.Postfix()
    systems.mailroom_configure()
    systems.dma_configure()
    acc = Accounting()
    serial = iter(range(1_000_000))

    def call(cmd: str, count: int, callers: int, prefix: str) -> dict:
        job = {
            "cmd": cmd,
            "count": count,
            "callers": callers,
            "recipients": [f"{user}@{systems.DOMAIN}"],
            "prefix": prefix,
        }
        p = subprocess.run(
            [sys.executable, str(bin_dir / "caller.py"), json.dumps(job)],
            capture_output=True,
            text=True,
            user="www-data",
            group="www-data",
            extra_groups=[],
        )
        if p.returncode != 0:
            raise RuntimeError(f"caller: {p.stderr.strip()}")
        out = json.loads(p.stdout)
        if out["failed"]:
            raise RuntimeError(f"{cmd}: {len(out['failed'])} of {count} calls failed ({out['failed'][0]})")
        return out

    def one(name: str) -> dict:
        cmd = FLOOR_CMD if name == "floor" else systems.SENDMAIL[name]
        delivers = name != "floor"
        if name == "postfix":
            postfix.start()
        try:
            systems.clear_mailboxes()
            result = {}
            for count, callers in ((WARMUP, 1), (CALLS_1, 1), (CALLS_8, 8)):
                prefix = f"s{next(serial)}"
                watch = systems.Delivered([mbox], prefix)
                measured = count != WARMUP
                if callers == 8:
                    acc.start()
                out = call(cmd, count, callers, prefix)
                if delivers:
                    delivered_at = watch.wait(count, 300, f"{name}, {callers} caller(s)")
                systems.settle()
                if callers == 8:
                    use = acc.stop()
                if delivers:
                    watch.check([f"{prefix}.{i}" for i in range(count)], name)
                systems.clear_mailboxes()
                if not measured:
                    continue
                if callers == 1:
                    result["ms"] = median(out["seconds"]) * 1000
                else:
                    span = out["end"] - out["start"]
                    result["accepted"] = count / span
                    if delivers:
                        result["delivered"] = count / (delivered_at - out["start"])
                    result["cpu"] = (use.cpu_seconds - out["cpu"]) * 1000 / count
                    result["tasks"] = use.tasks / count
                    result["flushes"] = use.flushes / count
            return result
        finally:
            postfix.stop()

    res = rounds(ctx, {name: (lambda n=name: one(n)) for name in ("floor", "mailroom", "dma", "postfix")})
    floor = res.pop("floor")
    peers = list(res)

    def values(key: str) -> dict[str, list[float]]:
        return {n: [r[key] for r in res[n]] for n in peers}

    above = {n: [r["ms"] - f["ms"] for r, f in zip(res[n], floor)] for n in peers}
    return [
        Row(
            "1 caller: time per mail() call",
            "ms",
            False,
            values("ms"),
            floor=[f["ms"] for f in floor],
            target="1 caller ≤ 1.0 ms above floor",
            note=f"median of {CALLS_1} calls per round; floor: {FLOOR_CMD!r}",
        ),
        Row("1 caller: time above the floor", "ms", False, above, note="each round's median less that round's floor"),
        Row(
            "8 callers: accepted (the last call returned)",
            "messages/s",
            True,
            values("accepted"),
            floor=[f["accepted"] for f in floor],
            note=f"{CALLS_8} calls in all",
        ),
        Row(
            "8 callers: delivered (the last message in the mbox)",
            "messages/s",
            True,
            values("delivered"),
            target="8 callers ≥ 1.25× dma msg/s",
        ),
        Row(
            "CPU per message, whole sandbox, call to mailbox",
            "ms",
            False,
            values("cpu"),
            floor=[f["cpu"] for f in floor],
            note="8-caller run; every process in the PID namespace (daemons included) but the driver's own",
        ),
        Row(
            "tasks started per message (processes and threads)",
            "tasks",
            False,
            values("tasks"),
            floor=[f["tasks"] for f in floor],
            note="PIDs allocated in the namespace during the 8-caller run",
        ),
        Row(
            "disk flushes per message",
            "flushes",
            False,
            values("flushes"),
            floor=[f["flushes"] for f in floor],
            note="flush requests completed by the disk (/proc/diskstats) during the 8-caller run",
        ),
    ]
