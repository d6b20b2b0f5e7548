"""Remote flush (target 3): a queue of N 2 KB messages for remote
recipients, sent by each system's own queue run to an SMTP sink on
loopback, with 1 destination domain and with 50.

The sink is Postfix's smtp-sink (PIPELINING, 250 to everything), the same
for all three, listening on every address of lo and appending each
message to a dump file, in which every run checks that each message
arrived exactly once.  Routing, recipient I going to rcptI@destD.example
(D = I mod the number of domains):
  mailroom  /etc/mail/mailertable: destD.example smtp:[127.0.0.(D+1)]:PORT,
            its defaults otherwise (queue_workers 8, max_per_destination 4);
  postfix   transport map, the same next hops, its defaults otherwise
            (up to 100 smtp processes, 20 per destination);
  dma       SMARTHOST 127.0.0.1, PORT: dma has no per-domain routing, and
            it sends every message from a process of its own, so with 50
            domains it does just what it does with one.
Queues are filled once and put back before each round (systems.Queues);
timed from the start of the queue run ("sendmail -q", "dma -q",
"postsuper -H ALL; postqueue -f") until the sink has the last message.
"""

import resource
import subprocess

import systems
from common import Accounting, Row, rounds, wait_until

N = 5000
DOMAINS = [1, 50]
PORT = 2525


def routes(domains: int) -> dict[str, str]:
    return {f"dest{d}.example": f"smtp:[127.0.0.{d + 1}]:{PORT}" for d in range(domains)}


def run(ctx) -> list[Row]:
    postfix = systems.Postfix()
    systems.dma_configure(smarthost="127.0.0.1", port=PORT)
    queues = systems.Queues(ctx.work, postfix)
    acc = Accounting()
    sink_dir = ctx.work / "sink"
    sink_dir.mkdir(exist_ok=True)
    subprocess.run(["chown", "postfix", str(sink_dir)], check=True)
    dump = sink_dir / "dump"

    def many_files() -> None:
        # A descriptor for every connection dma opens at once, and one
        # dump file for each of those transactions.
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    sink = subprocess.Popen(
        ["smtp-sink", "-u", "postfix", "-D", str(dump), f":{PORT}", "4096"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=many_files,
    )
    try:
        wait_until(lambda: listening(PORT) or sink.poll() is not None, 10, "smtp-sink to listen")
        if sink.poll() is not None:
            raise RuntimeError(f"smtp-sink: {sink.stderr.read().decode().strip()}")

        def one(name: str) -> dict:
            result = {}
            try:
                for domains in DOMAINS:
                    systems.mailroom_configure(mailertable=routes(domains))
                    postfix.configure(routes(domains))
                    rcpts = [f"rcpt{i}@dest{i % domains}.example" for i in range(N)]
                    prefix = queues.load(name, f"flush{domains}", rcpts)
                    dump.unlink(missing_ok=True)
                    watch = systems.Delivered([dump], prefix)
                    what = f"{name}, flush to {domains} domain(s)"
                    acc.start()
                    systems.run_queue(name, postfix)
                    done = watch.wait(N, 600, what)
                    systems.settle()
                    use = acc.stop()
                    systems.wait_queue_empty(name, postfix, what)
                    watch.check([f"{prefix}.{i}" for i in range(N)], what)
                    result[domains] = N / (done - acc.t0)
                    result[f"cpu {domains}"] = use.cpu_seconds * 1000 / N
            finally:
                postfix.stop()
            return result

        res = rounds(ctx, {name: (lambda n=name: one(n)) for name in ("mailroom", "dma", "postfix")})
    finally:
        sink.terminate()
        sink.wait()
    rows = []
    for domains in DOMAINS:
        rows.append(
            Row(
                f"flush {N:,} queued messages to {domains} destination domain{'s' if domains > 1 else ''}",
                "messages/s",
                True,
                {n: [r[domains] for r in rs] for n, rs in res.items()},
                target="flush ≥ 2× postfix",
                note="from the start of the queue run to the last message at the sink"
                + ("; dma: all through its one SMARTHOST" if domains > 1 else ""),
            )
        )
    for domains in DOMAINS:
        rows.append(
            Row(
                f"CPU per message, flush to {domains} domain{'s' if domains > 1 else ''}",
                "ms",
                False,
                {n: [r[f"cpu {domains}"] for r in rs] for n, rs in res.items()},
                note="every process in the PID namespace, the sink's included",
            )
        )
    return rows


def listening(port: int) -> bool:
    """Something listens on 0.0.0.0:port."""
    want = f"00000000:{port:04X}"
    with open("/proc/net/tcp") as f:
        return any(line.split()[1] == want and line.split()[3] == "0A" for line in f.readlines()[1:])
