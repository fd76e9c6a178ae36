"""Client-Server API benchmark: the same workload against Synapse and/or mxref, side by side.

Each run starts a fresh homeserver process on loopback (mxref.testing.processes),
on SQLite or on a throwaway PostgreSQL cluster, and measures through the
Client-Server API (mxref.testing.csclient):

1. sequential sends: one client sends N messages into one room, one after the other (events/s);
2. concurrent sends: 16 clients in 16 threads send N messages in total into one room (events/s);
3. send-to-sync latency: a client sends a message, a second client long-polling ``/sync``
   (``timeout=30000``) records when it arrives; the time from just before the send request
   to the arrival of the sync response carrying the message, p50 and p95 (ms);
4. room creation: one client makes M ``POST /createRoom`` calls in a row (rooms/s);
5. resident memory of the server process (``VmRSS``) when idle after start and after the load.

Every figure is reported as the median of the runs and the spread (min-max), as a
Markdown table on stdout. Usage (from the repository root)::

    .venv/bin/python benchmarks/client.py --server synapse --db sqlite
    .venv/bin/python benchmarks/client.py --server both --db postgres --runs 3

``--synapse-python`` (or ``MXREF_SYNAPSE_PYTHON``) names the interpreter with
``matrix-synapse`` installed; see ``.ci/synapse.sh``.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxref.testing.csclient import CSClient, timeline_events  # noqa: E402
from mxref.testing.processes import MxrefProcess, SynapseProcess, ThrowawayPostgres  # noqa: E402

#: (key, label, unit, format) for each reported figure, in table order.
METRICS = [
    ("sequential_eps", "Sequential sends, 1 client", "events/s", "{:.1f}"),
    ("concurrent_eps", "Concurrent sends, {concurrency} clients", "events/s", "{:.1f}"),
    ("latency_p50_ms", "Send-to-sync latency p50", "ms", "{:.1f}"),
    ("latency_p95_ms", "Send-to-sync latency p95", "ms", "{:.1f}"),
    ("create_room_rps", "createRoom, 1 client", "rooms/s", "{:.2f}"),
    ("rss_idle_mib", "RSS idle (after start)", "MiB", "{:.0f}"),
    ("rss_after_mib", "RSS after the load", "MiB", "{:.0f}"),
]


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


def measure_sequential(client: CSClient, room_id: str, count: int) -> float:
    """Send ``count`` messages one after another; returns events per second."""
    started = time.perf_counter()
    for i in range(count):
        client.send_message(room_id, f"sequential {i}")
    return count / (time.perf_counter() - started)


def measure_concurrent(clients: list, room_id: str, count: int) -> float:
    """Send ``count`` messages in total from ``clients``, one thread each; returns events/s."""
    shares = [
        count // len(clients) + (1 if i < count % len(clients) else 0) for i in range(len(clients))
    ]
    barrier = threading.Barrier(len(clients) + 1)
    errors = []

    def send_share(client, share, index):
        barrier.wait()
        try:
            for i in range(share):
                client.send_message(room_id, f"concurrent {index}.{i}")
        except Exception as e:
            errors.append(e)

    threads = [
        threading.Thread(target=send_share, args=(client, share, i))
        for i, (client, share) in enumerate(zip(clients, shares))
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return count / elapsed


def measure_latency(sender: CSClient, receiver: CSClient, room_id: str, samples: int) -> list:
    """Send ``samples`` messages one at a time and time each one's arrival in the receiver's
    long-polling ``/sync``; returns the latencies in milliseconds."""
    room_filter = {
        "room": {
            "rooms": [room_id],
            "timeline": {"limit": 50},
            "state": {"lazy_load_members": True},
        },
        "presence": {"types": []},
        "account_data": {"types": []},
    }
    since = receiver.sync(filter=room_filter)["next_batch"]
    arrived = {}
    signals = [threading.Event() for _ in range(samples)]
    stop = threading.Event()
    failure = []

    def receive():
        nonlocal since
        try:
            while not stop.is_set():
                response = receiver.sync(since=since, timeout_ms=30000, filter=room_filter)
                now = time.perf_counter()
                since = response["next_batch"]
                for event in timeline_events(response, room_id):
                    sample = event.get("content", {}).get("sample")
                    if isinstance(sample, int) and 0 <= sample < samples and sample not in arrived:
                        arrived[sample] = now
                        signals[sample].set()
        except Exception as e:
            failure.append(e)
            for signal in signals:
                signal.set()

    receiver_thread = threading.Thread(target=receive, daemon=True)
    receiver_thread.start()
    latencies = []
    try:
        for sample in range(samples):
            started = time.perf_counter()
            sender.send_event(
                room_id,
                "m.room.message",
                {"msgtype": "m.text", "body": f"ping {sample}", "sample": sample},
            )
            if not signals[sample].wait(30):
                raise TimeoutError(f"sample {sample} did not arrive in /sync within 30 s")
            if failure:
                raise failure[0]
            latencies.append((arrived[sample] - started) * 1000)
    finally:
        stop.set()
        sender.send_message(room_id, "stop")
        receiver_thread.join(35)
    return latencies


def measure_create_room(client: CSClient, count: int) -> float:
    """Create ``count`` rooms one after another; returns rooms per second."""
    started = time.perf_counter()
    for i in range(count):
        client.create_room(preset="private_chat", name=f"bench room {i}")
    return count / (time.perf_counter() - started)


def make_server(kind: str, workdir: str, database: dict | None, synapse_python: str | None):
    """A not yet started :class:`SynapseProcess` or :class:`MxrefProcess`."""
    if kind == "synapse":
        return SynapseProcess(workdir, python=synapse_python, database=database)
    return MxrefProcess(workdir, database=database)


class WorkloadError(Exception):
    """A step of the workload failed; the message names the step and the server's answer."""


def one_run(kind: str, workdir: str, database: dict | None, options) -> dict:
    """Start a fresh server, run the whole workload once, stop it; returns the figures.

    :raises WorkloadError: naming the step that failed.
    """
    server = make_server(kind, workdir, database, options.synapse_python)
    step = "start"
    log(f"{kind}: starting in {workdir}")
    try:
        server.start()
        time.sleep(options.settle)
        figures = {"rss_idle_mib": server.rss_kib() / 1024}
        step = "register users"
        sender = server.client_for("sender")
        receiver = server.client_for("receiver")
        senders = [server.client_for(f"user{i}") for i in range(options.concurrency)]
        step = "set up rooms"
        room_id = sender.create_room(preset="public_chat", name="bench")
        latency_room = sender.create_room(preset="public_chat", name="latency")
        for client in senders:
            client.join(room_id)
        receiver.join(latency_room)

        step = "sequential sends"
        log(f"{kind}: {options.messages} sequential sends")
        figures["sequential_eps"] = measure_sequential(sender, room_id, options.messages)
        step = "concurrent sends"
        log(f"{kind}: {options.messages} sends from {options.concurrency} clients")
        figures["concurrent_eps"] = measure_concurrent(senders, room_id, options.messages)
        step = "send-to-sync latency"
        log(f"{kind}: {options.latency_samples} send-to-sync samples")
        latencies = measure_latency(sender, receiver, latency_room, options.latency_samples)
        figures["latency_p50_ms"] = percentile(latencies, 0.50)
        figures["latency_p95_ms"] = percentile(latencies, 0.95)
        step = "createRoom"
        log(f"{kind}: {options.rooms} createRoom calls")
        figures["create_room_rps"] = measure_create_room(sender, options.rooms)
        figures["rss_after_mib"] = server.rss_kib() / 1024
        log(f"{kind}: {json.dumps({k: round(v, 2) for k, v in figures.items()})}")
        return figures
    except Exception as e:
        raise WorkloadError(
            f"{step}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from e
    finally:
        server.stop()


def summarise(runs: list) -> dict:
    """``{metric: (median, min, max)}`` over the runs' figures."""
    return {
        key: (
            statistics.median(r[key] for r in runs),
            min(r[key] for r in runs),
            max(r[key] for r in runs),
        )
        for key, *_ in METRICS
    }


def markdown_table(columns: dict, options) -> str:
    """One row per metric, one column per server: ``median (min-max)``; failures listed below."""
    header = "| Metric | Unit | " + " | ".join(columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 2)]
    notes = [f"- {label}: {result}" for label, result in columns.items() if isinstance(result, str)]
    for key, label, unit, number in METRICS:
        cells = []
        for result in columns.values():
            if isinstance(result, str):
                cells.append("failed")
                continue
            median, low, high = result[key]
            cells.append(f"{number.format(median)} ({number.format(low)}–{number.format(high)})")
        lines.append(
            f"| {label.format(concurrency=options.concurrency)} | {unit} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines + ([""] + notes if notes else []))


def machine_description() -> str:
    """CPU model and core count (from lscpu), Python version and today's date."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {datetime.date.today().isoformat()}"


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=["synapse", "mxref", "both"], default="both")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=1000, help="messages per send test")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="clients in the concurrent send test"
    )
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--rooms", type=int, default=100, help="createRoom calls")
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds idle after start before the idle RSS"
    )
    parser.add_argument("--synapse-python", default=os.environ.get("MXREF_SYNAPSE_PYTHON"))
    parser.add_argument("--json", help="also write every run's raw figures to this file")
    options = parser.parse_args(argv)
    if options.server in ("synapse", "both") and not options.synapse_python:
        parser.error("Synapse needs --synapse-python or MXREF_SYNAPSE_PYTHON (see .ci/synapse.sh)")
    return options


def main(argv=None) -> int:
    options = parse_arguments(argv)
    load_before = os.getloadavg()
    kinds = ["synapse", "mxref"] if options.server == "both" else [options.server]
    scratch = tempfile.mkdtemp(prefix="mxref-bench.")
    postgres = None
    columns, raw = {}, {}
    try:
        if options.db == "postgres":
            postgres = ThrowawayPostgres()
            postgres.start()
            log(f"PostgreSQL on 127.0.0.1:{postgres.port}")
        for kind in kinds:
            label = f"{'Synapse' if kind == 'synapse' else 'mxref'} ({options.db})"
            runs = []
            try:
                for run in range(options.runs):
                    database = postgres.create_database(f"bench_{kind}_{run}") if postgres else None
                    runs.append(
                        one_run(kind, os.path.join(scratch, f"{kind}-{run}"), database, options)
                    )
            except Exception as e:
                log(f"{kind}: failed: {e}")
                columns[label] = f"failed at {e}"
                raw[label] = {"error": str(e), "runs": runs}
                continue
            columns[label] = summarise(runs)
            raw[label] = runs
    finally:
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    load_after = os.getloadavg()
    print(f"Machine: {machine_description()}")
    print(
        f"Load average (1, 5, 15 min) before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
        f"after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}\n"
    )
    print(
        f"Workload: {options.messages} messages sequentially, {options.messages} from {options.concurrency} "
        f"concurrent clients, {options.latency_samples} send-to-sync samples, {options.rooms} createRoom; "
        f"{options.runs} runs, median (min–max).\n"
    )
    print(markdown_table(columns, options))
    if options.json:
        with open(options.json, "w") as f:
            json.dump({"machine": machine_description(), "results": raw}, f, indent=2)
    return 0 if all(not isinstance(c, str) for c in columns.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
