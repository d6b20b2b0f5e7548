"""What every section of make bench-peers shares: the rows it prints, the
rounds it runs, and the whole-sandbox accounting (CPU, tasks, disk flushes).

A section measures each system once per round and hands back Rows; each
Row holds one value per round for each system, and print_rows() prints,
for each Row, the median and min-max of every system, the ratio of
mailroom to each peer (oriented so that above 1 means mailroom does
better), the target and whether the medians meet it, and "noisy" beside a
system whose rounds spread by more than NOISY of their median.
"""

import dataclasses
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

# A system whose (max - min) / median exceeds this is flagged "noisy".
NOISY = 0.15
# The name of the system the ratios are taken for.
OURS = "mailroom"


@dataclasses.dataclass
class Row:
    """One measure, one value per round for each system.

    target is free text printed as is; whether it is met is decided by
    meets(medians) when given, else read from the text in one of these
    forms (SYSTEM a key of values):
      "... >= K× SYSTEM" / "≥ K× SYSTEM"  mailroom's ratio to SYSTEM >= K
      "... above SYSTEM"                   mailroom's ratio to SYSTEM > 1
      "... <= X UNIT above floor"          mailroom's median - floor's <= X
    """

    measure: str
    unit: str
    higher_is_better: bool
    values: dict[str, list[float]]
    floor: list[float] | None = None
    target: str = ""
    meets: Callable[[dict[str, float]], bool] | None = None
    note: str = ""


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def spread(xs: list[float]) -> float:
    """(max - min) / median: how far apart the rounds are."""
    m = median(xs)
    if not xs or not m:
        return 0.0
    return (max(xs) - min(xs)) / abs(m)


def ratio(row: Row, peer: str) -> float | None:
    """mailroom against peer, above 1 when mailroom does better."""
    ours, theirs = median(row.values.get(OURS, [])), median(row.values.get(peer, []))
    if not (ours > 0 and theirs > 0):
        return None
    return ours / theirs if row.higher_is_better else theirs / ours


def target_met(row: Row) -> bool | None:
    """Whether the medians meet row.target (None: no target, or unreadable)."""
    medians = {name: median(v) for name, v in row.values.items()}
    if row.floor:
        medians["floor"] = median(row.floor)
    if row.meets is not None:
        return row.meets(medians)
    text = row.target.replace("≥", ">=").replace("≤", "<=")
    if m := re.search(r">=\s*([\d.]+)\s*[×x]\s*(\w+)", text):
        r = ratio(row, m.group(2))
        return None if r is None else r >= float(m.group(1))
    if m := re.search(r"<=\s*([\d.]+)\s*\S*\s+above floor", text):
        if "floor" not in medians or OURS not in medians:
            return None
        return medians[OURS] - medians["floor"] <= float(m.group(1))
    if m := re.search(r"above (\w+)", text):
        r = ratio(row, m.group(1))
        return None if r is None else r > 1
    return None


def fmt(x: float) -> str:
    if x != x:
        return "-"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def print_rows(title: str, rows: list[Row]) -> None:
    print(f"\n== {title}")
    for row in rows:
        better = "higher" if row.higher_is_better else "lower"
        print(f"  {row.measure} ({row.unit}; {better} is better)")
        lines = ([("floor", row.floor)] if row.floor else []) + list(row.values.items())
        for name, xs in lines:
            low, high = (fmt(min(xs)), fmt(max(xs))) if xs else ("-", "-")
            plural = "s" if len(xs) != 1 else ""
            text = f"    {name:<9} {fmt(median(xs)):>8}  ({low}–{high}, {len(xs)} round{plural})"
            if name not in ("floor", OURS) and (r := ratio(row, name)) is not None:
                verdict = "level" if abs(r - 1) < 0.005 else "better" if r > 1 else "worse"
                text += f"   mailroom {r:.2f}× {verdict}"
            if spread(xs) > NOISY:
                text += f"   noisy (spread {spread(xs) * 100:.0f}%)"
            print(text)
        if row.note:
            print(f"    ({row.note})")
        if row.target:
            met = target_met(row)
            verdict = {True: "met", False: "NOT met", None: "not judged"}[met]
            print(f"    target: {row.target}: {verdict}")
    sys.stdout.flush()


def rounds(ctx, systems: dict[str, Callable[[], object]]) -> dict[str, list]:
    """Runs each system once per round, ctx.rounds rounds, the order
    reversed every other round (A B C, C B A, ...) so that a drift of the
    machine (another build starting, caches warming) falls on all alike.
    Returns each system's results, one per round."""
    names = list(systems)
    results: dict[str, list] = {name: [] for name in names}
    for r in range(ctx.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            ctx.log(f"round {r + 1}/{ctx.rounds}: {name}")
            results[name].append(systems[name]())
    return results


# ---- accounting over the whole sandbox (the PID namespace).


def sandbox_cpu_seconds() -> float:
    """CPU time (user + system) of every task the sandbox ever ran.

    From the sandbox's own cgroup (enter.sh makes one when it can): every
    task is counted there, to the nanosecond, alive or gone.  Without it,
    from /proc: each live or zombie process's own time plus its reaped
    descendants' (cutime, cstime), PID 1 (the entry script's shell)
    reaping every orphan -- which misses the children of a parent that
    ignores SIGCHLD (their times are collected by no one)."""
    cgroup = os.environ.get("BENCH_PEERS_CGROUP")
    if cgroup:
        for line in Path(cgroup, "cpu.stat").read_text().splitlines():
            key, value = line.split()
            if key == "usage_usec":
                return int(value) / 1e6
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # fields[0] is state (field 3); utime..cstime are fields 14-17.
        total += sum(int(f) for f in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """This driver's own CPU (its threads', not its children's)."""
    t = os.times()
    return t.user + t.system


def tasks_started_mark() -> int:
    """The PID namespace's last allocated PID: every process and thread
    started in it takes the next one."""
    return int(Path("/proc/sys/kernel/ns_last_pid").read_text())


def tasks_between(before: int, after: int) -> int:
    if after >= before:
        return after - before
    # Wrapped past pid_max (back to 300, the reserved low PIDs skipped).
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    return (pid_max - before) + (after - 300)


def scratch_disk() -> str | None:
    """The whole disk (vda, sda, nvme0n1) under the overlays' writable
    layers, where every queue and mailbox of the sandbox lives: enter.sh
    passes its major:minor (inside, /var is an overlay with a device number
    of its own)."""
    dev = os.environ.get("BENCH_PEERS_DEVICE")
    if not dev:
        return None
    try:
        real = Path(f"/sys/dev/block/{dev}").resolve(strict=True)
    except OSError:
        return None
    # A partition's directory sits inside its disk's.
    if (real / "partition").exists():
        real = real.parent
    return real.name


def disk_flushes(disk: str | None) -> int:
    """Flush requests the disk has completed (/proc/diskstats, field 16
    after the name): what fsync and fdatasync cost the disk once the
    journal has grouped them.  0 when the kernel does not count them."""
    if not disk:
        return 0
    for line in Path("/proc/diskstats").read_text().splitlines():
        f = line.split()
        if len(f) > 2 and f[2] == disk:
            return int(f[19]) if len(f) >= 20 else 0
    return 0


@dataclasses.dataclass
class Usage:
    seconds: float
    cpu_seconds: float
    tasks: int
    flushes: float  # nan when the disk does not count them


class Accounting:
    """Wall time, CPU of the whole sandbox (but this driver's own), tasks
    started and disk flushes between start() and stop()."""

    def __init__(self):
        self.disk = scratch_disk()

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.cpu0 = sandbox_cpu_seconds() - own_cpu_seconds()
        self.pid0 = tasks_started_mark()
        self.fl0 = disk_flushes(self.disk)

    def stop(self) -> Usage:
        t1 = time.monotonic()
        fl1 = disk_flushes(self.disk)
        pid1 = tasks_started_mark()
        cpu1 = sandbox_cpu_seconds() - own_cpu_seconds()
        return Usage(
            seconds=t1 - self.t0,
            cpu_seconds=cpu1 - self.cpu0,
            tasks=tasks_between(self.pid0, pid1),
            flushes=fl1 - self.fl0 if self.disk else float("nan"),
        )


# ---- small shared helpers.


def sh(cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """A shell command, its output captured; a failure shows it."""
    p = subprocess.run(cmd, shell=True, text=True, capture_output=True, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{cmd!r} exited {p.returncode}:\n{p.stdout}{p.stderr}")
    return p


def wait_until(cond: Callable[[], bool], timeout: float, what: str, poll: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def message_2k(to: str, sender: str = "web@bench.example", subject: str = "Contact form", ident: str = "") -> bytes:
    """A 2 KB message as a PHP contact form writes it (LF line ends, as
    mail() hands it to sendmail): To, From, Subject, Date, Message-ID,
    then a body of Lorem lines, 2048 bytes in all."""
    ident = ident or f"{time.time_ns()}.{os.getpid()}"
    head = (
        f"To: {to}\nFrom: {sender}\nSubject: {subject}\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\n"
        f"Message-ID: <{ident}@bench.example>\n"
        "Content-Type: text/plain; charset=UTF-8\n\n"
    )
    line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n"
    body = line * (2048 // len(line) + 1)
    return (head + body).encode()[:2047] + b"\n"
