"""Federation benchmark: two homeservers of the same kind in one room, on loopback, mxref↔mxref
next to Synapse↔Synapse.

Each run starts two fresh homeserver processes (mxref.testing.processes, TLS federation with
self-signed certificates, SQLite), alice on server A creates a public room and bob on server B
joins it through A. Then, through the Client-Server API only (mxref.testing.csclient):

1. **delivery**: alice sends N messages (500 by default) one after the other; a thread of
   bob's long-polls ``/sync`` on B. Reported: the time from the first send to the sync response
   that completes the set on B (all N must arrive), and the send-to-remote-sync latency of each
   message (from just before its send request to the sync response carrying it on B), p50/p95;
2. **catch-up**: B is stopped, A keeps going for the outage (60 s by default) and alice sends
   K messages (20) into it; B is started again on the same database. Reported: seconds from B
   answering again to bob's ``/sync`` showing all K. Nothing else happens meanwhile: no
   client on B writes anything that would make B contact A, so the figure shows what each
   server's retry schedule gives on its own.

Usage (from the repository root)::

    .venv/bin/python benchmarks/federation.py --server both
    .venv/bin/python benchmarks/federation.py --server mxref --messages 100 --outage 10

``--synapse-python`` (or ``MXREF_SYNAPSE_PYTHON``, else ``/work/synapse-venv/bin/python``
when it exists) names the interpreter with ``matrix-synapse`` installed. Results go to stdout
as a Markdown table; progress to stderr.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxref.testing.csclient import timeline_events  # noqa: E402
from mxref.testing.processes import MxrefProcess, SynapseProcess  # noqa: E402

DEFAULT_SYNAPSE_PYTHON = "/work/synapse-venv/bin/python"

#: A sync filter that keeps the timeline of every sync response whole (no gaps to fill).
SYNC_FILTER = {"room": {"timeline": {"limit": 1000}}, "presence": {"types": []}}


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the table."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list, fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` by linear interpolation between closest ranks."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class SyncWatcher(threading.Thread):
    """Long-polls ``/sync`` for one client and records when each message body first arrives.

    :param client: a :class:`~mxref.testing.csclient.CSClient`.
    :param room_id: the room to watch.
    :param since: the ``next_batch`` to start from (``None``: an initial sync first).
    """

    def __init__(self, client, room_id, since=None):
        super().__init__(daemon=True)
        self.client = client
        self.room_id = room_id
        self.since = since
        self.arrivals = {}
        self.errors = 0
        self._stopping = threading.Event()
        self._changed = threading.Condition()

    def run(self):
        while not self._stopping.is_set():
            try:
                response = self.client.sync(since=self.since, timeout_ms=2000, filter=SYNC_FILTER)
            except Exception:  # the server is restarting, or a request timed out
                self.errors += 1
                time.sleep(0.05)
                continue
            now = time.perf_counter()
            self.since = response["next_batch"]
            with self._changed:
                for event in timeline_events(response, self.room_id):
                    body = event.get("content", {}).get("body")
                    if isinstance(body, str) and body not in self.arrivals:
                        self.arrivals[body] = now
                self._changed.notify_all()

    def wait_for(self, bodies, deadline_s):
        """Block until every body in ``bodies`` has arrived. :returns: whether they all did."""
        end = time.perf_counter() + deadline_s
        with self._changed:
            while not all(b in self.arrivals for b in bodies):
                left = end - time.perf_counter()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.5))
        return True

    def stop(self):
        self._stopping.set()


def start_pair(kind, workdir, synapse_python):
    """Two started servers of ``kind``; the caller stops them."""
    servers = []
    for name in ("a", "b"):
        directory = os.path.join(workdir, f"{kind}-{name}")
        if kind == "synapse":
            server = SynapseProcess(directory, python=synapse_python)
        else:
            server = MxrefProcess(directory)
        server.start()
        servers.append(server)
    return servers


def run_pair(kind, args, synapse_python):
    """Both measurements for one kind of server. :returns: a dict of figures."""
    workdir = tempfile.mkdtemp(prefix=f"mxref-fedbench-{kind}.")
    server_a = server_b = None
    result = {"kind": kind}
    try:
        log(f"{kind}: starting two servers")
        server_a, server_b = start_pair(kind, workdir, synapse_python)
        alice = server_a.client_for("alice")
        bob = server_b.client_for("bob")
        room_id = alice.create_room(preset="public_chat")
        bob.join(room_id, via=[server_a.server_name])
        first = bob.sync(filter=SYNC_FILTER)
        watcher = SyncWatcher(bob, room_id, first["next_batch"])
        watcher.start()
        # One message both ways first, so that keys are fetched and connections are up.
        bob.send_message(room_id, "warm-up from B")
        alice.sync_until(lambda r: any(e.get("content", {}).get("body") == "warm-up from B"
                                       for e in timeline_events(r, room_id)), deadline_s=60)
        alice.send_message(room_id, "warm-up")
        if not watcher.wait_for(["warm-up"], 60):
            raise RuntimeError(f"{kind}: the warm-up message never reached B")

        log(f"{kind}: sending {args.messages} messages on A")
        sent_at = {}
        started = time.perf_counter()
        for i in range(args.messages):
            body = f"delivery {i}"
            sent_at[body] = time.perf_counter()
            alice.send_message(room_id, body)
        sending_s = time.perf_counter() - started
        delivered = watcher.wait_for(list(sent_at), args.deadline)
        arrived = [b for b in sent_at if b in watcher.arrivals]
        result["delivered"] = len(arrived)
        result["sending_s"] = sending_s
        if arrived:
            result["all_visible_s"] = max(watcher.arrivals[b] for b in arrived) - started
            latencies = [(watcher.arrivals[b] - sent_at[b]) * 1000 for b in arrived]
            result["latency_p50_ms"] = percentile(latencies, 0.5)
            result["latency_p95_ms"] = percentile(latencies, 0.95)
        if not delivered:
            log(f"{kind}: only {len(arrived)} of {args.messages} delivered within {args.deadline} s")
        watcher.stop()
        watcher.join(10)

        if args.outage > 0:
            log(f"{kind}: stopping B for {args.outage} s")
            server_b.stop()
            outage_started = time.perf_counter()
            bodies = []
            for i in range(args.outage_messages):
                body = f"outage {i}"
                alice.send_message(room_id, body)
                bodies.append(body)
                time.sleep(max(0.0, args.outage / args.outage_messages / 2))
            time.sleep(max(0.0, args.outage - (time.perf_counter() - outage_started)))
            server_b.start()
            back = time.perf_counter()
            log(f"{kind}: B is back")
            watcher = SyncWatcher(bob, room_id, watcher.since)
            watcher.start()
            caught_up = watcher.wait_for(bodies, args.catch_up_deadline)
            arrived = [b for b in bodies if b in watcher.arrivals]
            result["outage_delivered"] = len(arrived)
            result["outage_sent"] = len(bodies)
            if caught_up:
                result["catch_up_s"] = max(watcher.arrivals[b] for b in bodies) - back
            else:
                log(f"{kind}: only {len(arrived)} of {len(bodies)} caught up within {args.catch_up_deadline} s")
            watcher.stop()
            watcher.join(10)
    finally:
        for server in (server_a, server_b):
            if server is not None:
                server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"{kind}: files kept in {workdir}")
    return result


def fmt(value, pattern):
    return "—" if value is None else pattern.format(value)


def table(results, args):
    """The Markdown table of the results."""
    rows = [
        ("Messages visible on B", "of {}".format(args.messages), "delivered", "{}"),
        ("Time until all visible via /sync on B (the last delivered, if not all)", "s", "all_visible_s", "{:.2f}"),
        ("Send-to-remote-sync latency p50", "ms", "latency_p50_ms", "{:.1f}"),
        ("Send-to-remote-sync latency p95", "ms", "latency_p95_ms", "{:.1f}"),
        (f"Caught up after a {args.outage:g} s outage", f"of {args.outage_messages}", "outage_delivered", "{}"),
        (f"Catch-up time after a {args.outage:g} s outage", "s after B is back", "catch_up_s", "{:.2f}"),
    ]
    kinds = [r["kind"] for r in results]
    lines = ["| | unit | " + " | ".join(kinds) + " |", "|---|---|" + "---|" * len(kinds)]
    for label, unit, key, pattern in rows:
        cells = [fmt(r.get(key), pattern) for r in results]
        lines.append(f"| {label} | {unit} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=("mxref", "synapse", "both"), default="both")
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--outage", type=float, default=60.0, help="seconds B is down (0: skip)")
    parser.add_argument("--outage-messages", type=int, default=20)
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds to wait for delivery")
    parser.add_argument("--catch-up-deadline", type=float, default=300.0)
    parser.add_argument("--synapse-python", default=os.environ.get("MXREF_SYNAPSE_PYTHON"))
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--keep", action="store_true", help="keep the servers' files")
    args = parser.parse_args(argv)
    synapse_python = args.synapse_python
    if synapse_python is None and os.path.exists(DEFAULT_SYNAPSE_PYTHON):
        synapse_python = DEFAULT_SYNAPSE_PYTHON
    kinds = ["mxref", "synapse"] if args.server == "both" else [args.server]
    if "synapse" in kinds and not synapse_python:
        log("no Synapse interpreter (--synapse-python / MXREF_SYNAPSE_PYTHON): mxref only")
        kinds = ["mxref"]
    results = [run_pair(kind, args, synapse_python) for kind in kinds]
    print(f"Federation benchmark, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}\n")
    print(table(results, args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
