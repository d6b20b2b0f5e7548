"""Local drain (target 3): a queue of N 2 KB messages for local users,
delivered into their mboxes by each system's own queue run.

Filled once without delivering (systems.fill_queue: mailroom's sendmail
-odq, dma's -bq, Postfix holding every message) and put back before each
round (systems.Queues), synced to disk, then timed from
the start of the run (mailroom's "sendmail -q", dma's "dma -q" -- one
process per message, as dma always delivers -- Postfix's "postsuper -H
ALL; postqueue -f") until the last message is in its mbox: messages per
second, into 100 users' mboxes and into one user's.  Every system keeps
its fsyncs and its mbox locking (defaults); every run checks that each
message is in its mbox exactly once and that the queue is empty.
"""

import systems
from common import Accounting, Row, rounds

N = 2000
CASES = [(100, "100 mboxes"), (1, "one mbox")]


def run(ctx) -> list[Row]:
    users = ctx.users("bench", max(m for m, _ in CASES))
    postfix = systems.Postfix()
    systems.mailroom_configure()
    systems.dma_configure()
    acc = Accounting()
    queues = systems.Queues(ctx.work, postfix)

    def one(name: str) -> dict:
        result = {}
        try:
            for mboxes, label in CASES:
                systems.clear_mailboxes()
                rcpts = [f"{users[i % mboxes]}@{systems.DOMAIN}" for i in range(N)]
                prefix = queues.load(name, f"drain{mboxes}", rcpts)
                watch = systems.Delivered([systems.MAIL_SPOOL / u for u in users[:mboxes]], prefix)
                acc.start()
                systems.run_queue(name, postfix)
                done = watch.wait(N, 600, f"{name}, drain into {label}")
                systems.settle()
                use = acc.stop()
                watch.check([f"{prefix}.{i}" for i in range(N)], f"{name}, drain into {label}")
                systems.wait_queue_empty(name, postfix, f"{name}, drain into {label}")
                result[label] = N / (done - acc.t0)
                result[f"cpu {label}"] = use.cpu_seconds * 1000 / N
            return result
        finally:
            postfix.stop()
            systems.clear_mailboxes()

    res = rounds(ctx, {name: (lambda n=name: one(n)) for name in ("mailroom", "dma", "postfix")})
    rows = []
    for _mboxes, label in CASES:
        rows.append(
            Row(
                f"drain {N:,} queued messages into {label}",
                "messages/s",
                True,
                {n: [r[label] for r in rs] for n, rs in res.items()},
                target="drain above dma",
                note="from the start of the queue run to the last message in its mbox",
            )
        )
    for _mboxes, label in CASES:
        rows.append(
            Row(
                f"CPU per message, drain into {label}",
                "ms",
                False,
                {n: [r[f"cpu {label}"] for r in rs] for n, rs in res.items()},
                note="every process in the PID namespace, from the start of the run until its last process ended",
            )
        )
    return rows
