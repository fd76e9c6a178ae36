"""Core benchmarks, mxref side by side with Synapse: hashing + signing, signature checks, and
state resolution on a large synthetic room. Results and how to read them: benchmarks/README.md.

Usage::

    .venv/bin/python benchmarks/core.py [--synapse-python PATH] [--members 10000] [--conflicts 200]
                                        [--room-versions 11,12] [--quick] [--json OUT.json]

Synapse runs in its own virtualenv (its dependencies must not mix with mxref's): give its
interpreter with ``--synapse-python`` or the ``MXREF_SYNAPSE_PYTHON`` environment variable
(``.ci/synapse.sh`` sets it up). Without it only mxref's figures are printed.

The script plays two roles. Run normally, it is the driver: it builds every event with mxref,
times mxref, and hands the *same* events (as JSON) to a copy of itself started with the
Synapse interpreter and ``--synapse-worker TASK.json``. The worker imports nothing from mxref.
Both processes pin themselves to one CPU, and run one after the other, never at once.

Measured:

1. events hashed + signed per second: ``mxref.events.signing.sign_event`` (and the whole
   ``mxref.events.builder.build_event`` path) vs ``synapse.crypto.event_signing.
   add_hashes_and_signatures`` on identical event dicts. Both must produce byte-identical
   hashes and signatures (ed25519 is deterministic); the script checks that.
2. event signature checks per second: ``mxref.events.signing.verify_event_signatures`` vs
   Synapse's path (redact, then ``signedjson.sign.verify_signed_json``), against PyNaCl's
   bare ``VerifyKey.verify`` on a 1 KiB message (libsodium, the ceiling).
3. state resolution of two forks of a room with ``--members`` joined users, each fork adding
   ``--conflicts`` conflicting state events (topics, power level changes, kicks, profile
   changes): ``mxref.events.stateres.resolve_state`` vs ``synapse.state.v2.
   resolve_events_with_store``. Both results must be identical; the script checks that.
"""

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

#: Fixed key material so that both implementations sign with the same key and the results
#: can be compared byte for byte.
SEED = bytes(range(32))
KEY_VERSION = "bench"
SERVER = "hs0.example"

# ---------------------------------------------------------------------------------------------
# Shared helpers (used by both roles; standard library only)
# ---------------------------------------------------------------------------------------------


def pin_to_one_cpu() -> int:
    """Run this process on a single CPU (the lowest one allowed); return its number."""
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def summary(durations: list, operations: int = 1) -> dict:
    """Best and median time of a set of runs, and the rate they give for ``operations``."""
    best = min(durations)
    median = statistics.median(durations)
    return {
        "best_s": best,
        "median_s": median,
        "runs": len(durations),
        "per_second_best": operations / best,
        "per_second_median": operations / median,
    }


def b64decode_unpadded(text: str) -> bytes:
    import base64

    return base64.b64decode(text + "=" * (-len(text) % 4))


def b64encode_unpadded(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii").rstrip("=")


# ---------------------------------------------------------------------------------------------
# The Synapse worker (runs with Synapse's interpreter; imports nothing from mxref)
# ---------------------------------------------------------------------------------------------


def synapse_worker() -> None:
    """Serve the driver's requests with Synapse: one JSON request per line on stdin, one JSON
    reply per line on stdout.

    Requests: ``{"op": "prepare", "name": N, "kind": K, ...}`` sets up task N (untimed);
    ``{"op": "run", "name": N, "variant": V}`` runs it once and replies with the seconds it
    took (timed here, so the pipe is not counted); ``{"op": "result", "name": N}`` replies
    with the task's output for the driver's cross-checks; ``{"op": "quit"}`` ends.
    """
    import logging

    logging.disable(logging.CRITICAL)
    cpu = pin_to_one_cpu()
    replies = sys.stdout
    sys.stdout = sys.stderr  # nothing else may write to the reply stream
    import synapse

    preparers = {"sign": _synapse_sign, "verify": _synapse_verify, "stateres": _synapse_stateres}
    tasks = {}
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        if op == "quit":
            break
        if op == "prepare":
            tasks[request["name"]] = preparers[request["kind"]](request)
            reply = {"synapse_version": synapse.__version__, "cpu": cpu}
        elif op == "run":
            run = tasks[request["name"]]["runs"][request["variant"]]
            gc.collect()
            start = time.perf_counter()
            extra = run() or {}
            reply = dict(extra, seconds=time.perf_counter() - start)
        elif op == "result":
            reply = tasks[request["name"]]["finish"]()
        else:
            reply = {"error": f"unknown op {op!r}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def _synapse_key():
    import signedjson.key

    return signedjson.key.decode_signing_key_base64("ed25519", KEY_VERSION, b64encode_unpadded(SEED))


def _synapse_sign(task: dict) -> dict:
    from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
    from synapse.crypto.event_signing import add_hashes_and_signatures

    room_version = KNOWN_ROOM_VERSIONS[task["room_version"]]
    events = task["events"]
    key = _synapse_key()
    outputs = []

    def run():
        outputs.clear()
        for event in events:
            event_dict = dict(event)
            add_hashes_and_signatures(room_version, event_dict, SERVER, key)
            outputs.append(event_dict)

    def finish():
        return {"hashes_and_signatures": [[e["hashes"], e["signatures"]] for e in outputs]}

    return {"runs": {"add_hashes_and_signatures": run}, "finish": finish}


def _synapse_verify(task: dict) -> dict:
    import signedjson.key
    from signedjson.sign import verify_signed_json
    from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
    from synapse.events import make_event_from_dict
    from synapse.events.utils import prune_event
    from synapse.synapse_rust.events import redact_event_dict

    room_version = KNOWN_ROOM_VERSIONS[task["room_version"]]
    events = task["events"]
    verify_key = signedjson.key.get_verify_key(_synapse_key())

    def run_on_dicts():
        for event in events:
            verify_signed_json(redact_event_dict(room_version, event), SERVER, verify_key)

    frozen = [make_event_from_dict(event, room_version) for event in events]

    def run_on_events():
        # What Keyring.verify_event_for_server does for a received, parsed event.
        for event in frozen:
            verify_signed_json(prune_event(event).get_pdu_json(), SERVER, verify_key)

    def parse_and_verify():
        for event in events:
            parsed = make_event_from_dict(event, room_version)
            verify_signed_json(prune_event(parsed).get_pdu_json(), SERVER, verify_key)

    runs = {
        "redact_dict_and_verify": run_on_dicts,
        "parsed_event_verify": run_on_events,
        "parse_and_verify": parse_and_verify,
    }
    return {"runs": runs, "finish": dict}


def _synapse_stateres(task: dict) -> dict:
    from twisted.internet import defer

    import synapse.event_auth  # noqa: F401  (first: synapse.state imports cyclically through it)
    from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
    from synapse.events import make_event_from_dict
    from synapse.state.v2 import resolve_events_with_store
    from synapse.storage.databases.main.event_federation import StateDifference

    room_version = KNOWN_ROOM_VERSIONS[task["room_version"]]
    event_map = {}
    for pdu, event_id in zip(task["events"], task["event_ids"]):
        event = make_event_from_dict(pdu, room_version)
        if event.event_id != event_id:
            raise SystemExit(f"Synapse computes {event.event_id} where mxref has {event_id}")
        event_map[event_id] = event
    state_sets = [{(t, k): e for t, k, e in state_set} for state_set in task["state_sets"]]

    class FakeClock:
        async def sleep(self, duration):
            return None

    class InMemoryStore:
        """Stands in for Synapse's database. The database answers auth chain questions from
        its chain cover index, built when events are persisted; likewise the auth chains
        here are worked out once, before any timing (``chains``), and shared by every run.
        The time spent in these methods is reported apart from Synapse's own."""

        def __init__(self, chains):
            self.seconds = 0.0
            self._chains = chains

        def get_events(self, event_ids, allow_rejected=False):
            start = time.perf_counter()
            found = {e: event_map[e] for e in event_ids if e in event_map}
            self.seconds += time.perf_counter() - start
            return defer.succeed(found)

        def _chain(self, event_id):
            """The event and its whole auth chain (memoised, iterative)."""
            chains = self._chains
            if event_id in chains:
                return chains[event_id]
            stack = [event_id]
            while stack:
                top = stack[-1]
                if top in chains:
                    stack.pop()
                    continue
                parents = [a for a in event_map[top].auth_event_ids() if a not in chains]
                if parents:
                    stack.extend(parents)
                    continue
                chain = {top}
                for parent in event_map[top].auth_event_ids():
                    chain |= chains[parent]
                chains[top] = frozenset(chain)
                stack.pop()
            return chains[event_id]

        def get_auth_chain_difference(self, room_id, auth_sets, conflicted_state, additional):
            start = time.perf_counter()
            # Whatever lies in the chain of an event present in every set is in every
            # chain, so it cannot be in the difference: walk only the other events.
            shared = set.intersection(*map(set, auth_sets))
            unions = []
            for auth_set in auth_sets:
                union = set()
                for event_id in auth_set:
                    if event_id not in shared:
                        union |= self._chain(event_id)
                unions.append(union)
            in_every_chain = set()
            for event_id in shared:
                in_every_chain |= self._chain(event_id)
            difference = (set.union(*unions) - set.intersection(*unions)) - in_every_chain
            subgraph = None
            if conflicted_state is not None:
                # Events reachable from a conflicted event that also reach one.
                below = set()
                for event_id in conflicted_state:
                    below |= self._chain(event_id)
                reaches = {}

                def reaches_conflict(event_id):
                    stack = [event_id]
                    while stack:
                        top = stack[-1]
                        if top in reaches:
                            stack.pop()
                            continue
                        parents = [a for a in event_map[top].auth_event_ids() if a not in reaches]
                        if parents:
                            stack.extend(parents)
                            continue
                        reaches[top] = top in conflicted_state or any(
                            reaches[a] for a in event_map[top].auth_event_ids()
                        )
                        stack.pop()
                    return reaches[event_id]

                # An event is in the subgraph if it is below a conflicted event and one of
                # its auth-chain ancestors (or itself) is conflicted.
                subgraph = {e for e in below if reaches_conflict(e)}
            self.seconds += time.perf_counter() - start
            return defer.succeed(StateDifference(auth_difference=difference, conflicted_subgraph=subgraph))

    chain_index = {}
    indexer = InMemoryStore(chain_index)
    index_start = time.perf_counter()
    for event_id in event_map:
        indexer._chain(event_id)
    index_seconds = time.perf_counter() - index_start
    results = []

    def run():
        store = InMemoryStore(chain_index)
        deferred = defer.ensureDeferred(
            resolve_events_with_store(
                FakeClock(), task["room_id"], room_version, state_sets, None, store
            )
        )
        resolved = []
        deferred.addBoth(resolved.append)
        if not resolved:
            raise SystemExit("Synapse state resolution did not complete synchronously")
        if not hasattr(resolved[0], "items"):
            resolved[0].raiseException()
        results.append(dict(resolved[0]))
        return {"store_seconds": store.seconds}

    def finish():
        return {
            "chain_index_seconds": index_seconds,
            "resolved": [[t, k, e] for (t, k), e in sorted(results[-1].items())],
        }

    return {"runs": {"resolve_events_with_store": run}, "finish": finish}


# ---------------------------------------------------------------------------------------------
# The driver (runs with mxref's interpreter)
# ---------------------------------------------------------------------------------------------


class SynapseWorker:
    """The driver's end of the Synapse worker process (see :func:`synapse_worker`)."""

    def __init__(self, synapse_python: str):
        self._stderr = tempfile.TemporaryFile("w+")
        self._process = subprocess.Popen(
            [synapse_python, os.path.abspath(__file__), "--synapse-worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.version = None

    def _ask(self, request: dict) -> dict:
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            self._stderr.seek(0)
            raise SystemExit(f"Synapse worker failed:\n{self._stderr.read()}")
        return json.loads(line)

    def prepare(self, name: str, kind: str, **task) -> None:
        self.version = self._ask(dict(task, op="prepare", name=name, kind=kind))["synapse_version"]

    def run(self, name: str, variant: str) -> dict:
        return self._ask({"op": "run", "name": name, "variant": variant})

    def result(self, name: str) -> dict:
        return self._ask({"op": "result", "name": name})

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self._process.stdin.close()
            self._process.wait(timeout=60)
        self._stderr.close()


def timed(function):
    """A contender for :func:`alternate`: runs ``function`` once, returns ``{"seconds": ...}``."""

    def run():
        gc.collect()
        start = time.perf_counter()
        function()
        return {"seconds": time.perf_counter() - start}

    return run


def alternate(contenders: dict, repeats: int) -> dict:
    """Run every contender once per round, ``repeats`` rounds, rotating who goes first, so
    that all of them see the same machine conditions (the other core's load, clock changes).

    :param contenders: label -> callable returning a dict with ``seconds`` (and extras).
    :return: label -> list of the returned dicts, one per round.
    """
    labels = list(contenders)
    results = {label: [] for label in labels}
    for round_number in range(repeats):
        shift = round_number % len(labels)
        for label in labels[shift:] + labels[:shift]:
            results[label].append(contenders[label]())
    return results


def seconds_of(runs: list) -> list:
    return [run["seconds"] for run in runs]


def machine_description() -> dict:
    """The CPU model, core count, Python version and date of this run."""
    model = platform.processor() or "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return {
        "cpu_model": model,
        "cpus_available": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def mxref_key():
    from mxref.events.signing import decode_signing_key_base64

    return decode_signing_key_base64("ed25519", KEY_VERSION, b64encode_unpadded(SEED))


class SyntheticRoom:
    """A room grown with mxref's builder: forks share history, each keeps its own state."""

    def __init__(self, room_version, key):
        from mxref.events.room_versions import get_room_version

        self.version = get_room_version(room_version)
        self.key = key
        self.clock = 1_700_000_000_000
        self.events = {}  # event ID -> stored event (PDU + event_id)
        self.pdus = {}  # event ID -> PDU as sent
        self.order = []

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def record(self, pdu) -> str:
        from mxref.events.hashing import compute_event_id

        event_id = compute_event_id(pdu, self.version)
        self.pdus[event_id] = pdu
        self.events[event_id] = dict(pdu, event_id=event_id)
        self.order.append(event_id)
        return event_id


class Fork:
    """One line of history: its state and its forward extremity."""

    def __init__(self, room, state, tip, check=True):
        self.room = room
        self.state = dict(state)
        self.tip = tip
        self.check = check

    def copy(self):
        return Fork(self.room, self.state, self.tip, self.check)

    def send(self, sender, event_type, content, state_key=None):
        from mxref.events.authrules import check_auth
        from mxref.events.builder import build_event

        room = self.room
        pdu = build_event(
            room_version=room.version,
            room_id=room.room_id,
            sender=sender,
            event_type=event_type,
            content=content,
            state_key=state_key,
            prev_events=[(self.tip, room.events[self.tip]["depth"], None)]
            if room.version.is_event_id_computed
            else [(self.tip, room.events[self.tip]["depth"], _v1_hashes(room, self.tip))],
            current_state=self.state,
            origin_server_ts=room.tick(),
            server_name=sender.split(":", 1)[1],
            signing_key=room.key,
        )
        if self.check:
            auth_state = dict(self.state)
            auth_state[("m.room.create", "")] = room.create
            check_auth(pdu, auth_state, room.version)
        event_id = room.record(pdu)
        if state_key is not None:
            self.state[(event_type, state_key)] = room.events[event_id]
        self.tip = event_id
        return event_id


def _v1_hashes(room, event_id):
    from mxref.events.hashing import compute_reference_hash, encode_unpadded_base64

    return {"sha256": encode_unpadded_base64(compute_reference_hash(room.pdus[event_id], room.version))}


def user(index: int) -> str:
    return f"@u{index}:hs{index % 50}.example"


CREATOR = "@creator:hs0.example"
MODERATORS = [user(i) for i in range(10)]


def build_room(room_version, members: int, conflicts: int, key):
    """The synthetic room: create, power levels, join rules, ``members`` joins, then two forks
    of ``conflicts`` state events each. Returns (room, [state of fork A, state of fork B])."""
    from mxref.events.builder import build_create_event

    room = SyntheticRoom(room_version, key)
    version = room.version
    create, room_id = build_create_event(
        room_version=version,
        creator=CREATOR,
        content={},
        origin_server_ts=room.tick(),
        server_name=SERVER,
        signing_key=key,
        room_id=None if version.room_id_from_create_event else "!bench:hs0.example",
    )
    room.room_id = room_id
    create_id = room.record(create)
    room.create = room.events[create_id]
    trunk = Fork(room, {("m.room.create", ""): room.create}, create_id)
    trunk.send(CREATOR, "m.room.member", {"membership": "join"}, state_key=CREATOR)
    base_users = {} if version.privileged_creators else {CREATOR: 100}
    base_users.update({moderator: 50 for moderator in MODERATORS})
    power_levels = {
        "users": base_users, "users_default": 0, "events_default": 0, "state_default": 50,
        "ban": 50, "kick": 50, "redact": 50, "invite": 0,
        "events": {"m.room.power_levels": 100, "m.room.history_visibility": 100},
    }
    trunk.send(CREATOR, "m.room.power_levels", power_levels, state_key="")
    trunk.send(CREATOR, "m.room.join_rules", {"join_rule": "public"}, state_key="")
    trunk.send(CREATOR, "m.room.history_visibility", {"history_visibility": "shared"}, state_key="")
    for index in range(members):
        trunk.send(user(index), "m.room.member", {"membership": "join"}, state_key=user(index))
    states = []
    for fork_name, shift in (("A", 0), ("B", 2)):
        fork = trunk.copy()
        promoted = dict(base_users)
        for i in range(conflicts):
            slot = i % 5
            if slot == 0:
                fork.send(CREATOR, "m.room.topic", {"topic": f"{fork_name} topic {i}"}, state_key="")
            elif slot == 1:
                promoted[user(100 + i + 300 * shift)] = 50
                if fork_name == "B" and i > conflicts // 2:
                    promoted[MODERATORS[9]] = 0
                content = dict(power_levels, users=dict(promoted))
                fork.send(CREATOR, "m.room.power_levels", content, state_key="")
            elif slot == 2:
                kicker = MODERATORS[i % 9] if fork_name == "B" else MODERATORS[i % 10]
                target = user(1000 + i + shift)
                if ("m.room.member", target) in fork.state and fork.state[("m.room.member", target)]["content"].get("membership") == "join":
                    fork.send(kicker, "m.room.member", {"membership": "leave", "reason": fork_name}, state_key=target)
                else:
                    fork.send(kicker, "m.room.topic", {"topic": f"{fork_name} mod topic {i}"}, state_key="")
            elif slot == 3:
                kicker = MODERATORS[(i + 1) % 9]
                fork.send(kicker, "m.room.topic", {"topic": f"{fork_name} mod topic {i}"}, state_key="")
            else:
                target = user(5000 + i)
                fork.send(target, "m.room.member", {"membership": "join", "displayname": f"{fork_name}{i}"}, state_key=target)
        states.append({key: event["event_id"] for key, event in fork.state.items()})
    return room, states


def sample_events(room_version, key, count: int):
    """``count`` realistic events (messages, with a few state events) built by mxref, and the
    same events stripped of hashes and signatures, ready to be signed again."""
    room, _ = build_room(room_version, members=0, conflicts=0, key=key)
    fork = Fork(room, {}, room.order[-1], check=False)
    fork.state = {
        (e["type"], e["state_key"]): e for e in (room.events[i] for i in room.order) if "state_key" in e
    }
    # Senders on our own server, so that every event is signed by SERVER.
    senders = [user(50 * j) for j in range(20)]
    for sender in senders:
        fork.send(sender, "m.room.member", {"membership": "join"}, state_key=sender)
    built = []
    for i in range(count):
        sender = senders[i % 20]
        if i % 10 == 9:
            fork.send(sender, "m.room.member", {"membership": "join", "displayname": f"User {i}", "avatar_url": "mxc://hs0.example/abcdefghijklmnop"}, state_key=sender)
        else:
            body = f"Message {i}: " + "the quick brown fox jumps over the lazy dog " * (1 + i % 4)
            fork.send(sender, "m.room.message", {"msgtype": "m.text", "body": body, "m.mentions": {}})
        built.append(room.pdus[fork.tip])
    unsigned = [{k: v for k, v in pdu.items() if k not in ("hashes", "signatures")} for pdu in built]
    return room, built, unsigned


def bench_signing(args, worker, report):
    """Part 1: hash + sign the same event dicts with mxref and Synapse, rounds interleaved."""
    from mxref.events.builder import build_event
    from mxref.events.signing import sign_event

    key = mxref_key()
    room_version = args.sign_room_version
    room, built, unsigned = sample_events(room_version, key, args.sign_events)
    sizes = [len(json.dumps(pdu, separators=(",", ":"))) for pdu in built]
    outputs = []

    def run_sign():
        outputs.clear()
        for event in unsigned:
            outputs.append(sign_event(event, SERVER, key, room_version))

    # The whole builder path: choose auth events from a state map, lay out, hash and sign.
    state = {(e["type"], e["state_key"]): e for e in room.events.values() if "state_key" in e}
    tip = room.order[-1]
    prev = [(tip, room.events[tip]["depth"])]

    def run_build():
        for event in unsigned:
            build_event(
                room_version=room_version, room_id=event["room_id"], sender=event["sender"],
                event_type=event["type"], content=event["content"], state_key=event.get("state_key"),
                prev_events=prev, current_state=state, origin_server_ts=event["origin_server_ts"],
                server_name=SERVER, signing_key=key,
            )

    contenders = {"mxref_sign_event": timed(run_sign), "mxref_build_event": timed(run_build)}
    if worker:
        worker.prepare("sign", "sign", room_version=room_version, events=unsigned)
        contenders["synapse_add_hashes_and_signatures"] = lambda: worker.run("sign", "add_hashes_and_signatures")
    runs = alternate(contenders, args.repeats)
    result = {"room_version": room_version, "events": len(unsigned), "mean_event_bytes": statistics.mean(sizes)}
    for label, label_runs in runs.items():
        result[label] = summary(seconds_of(label_runs), len(unsigned))
    result["mxref_deterministic"] = all(
        produced["signatures"] == expected["signatures"] for produced, expected in zip(outputs, built)
    )
    if worker:
        pairs = worker.result("sign")["hashes_and_signatures"]
        result["identical_hashes_and_signatures"] = all(
            [pdu["hashes"], pdu["signatures"]] == pair for pdu, pair in zip(built, pairs)
        )
        report["synapse_version"] = worker.version
    report["signing"] = result
    return built


def bench_verification(args, worker, report, built):
    """Part 2: check the signatures of the same signed events; libsodium alone as the ceiling."""
    import nacl.signing

    from mxref.events.signing import get_verify_key, verify_event_signatures

    key = mxref_key()
    room_version = args.sign_room_version
    verify_key = get_verify_key(key)
    key_id = f"ed25519:{KEY_VERSION}"

    def lookup(server_name, wanted_key_id):
        return verify_key if wanted_key_id == key_id else None

    def run_verify():
        for event in built:
            verify_event_signatures(event, room_version, lookup)

    # The ceiling: libsodium's ed25519 verification through PyNaCl, nothing else.
    raw_key = nacl.signing.SigningKey(SEED)
    signed = raw_key.sign(bytes(range(256)) * 4)  # a 1 KiB message
    raw_verify_key = raw_key.verify_key
    iterations = len(built)

    def run_raw():
        for _ in range(iterations):
            raw_verify_key.verify(signed)

    contenders = {"mxref_verify_event_signatures": timed(run_verify), "libsodium_verify_1KiB": timed(run_raw)}
    if worker:
        worker.prepare("verify", "verify", room_version=room_version, events=built)
        for variant in ("redact_dict_and_verify", "parsed_event_verify", "parse_and_verify"):
            contenders[f"synapse_{variant}"] = (lambda v: lambda: worker.run("verify", v))(variant)
    runs = alternate(contenders, args.repeats)
    result = {"room_version": room_version, "events": len(built)}
    for label, label_runs in runs.items():
        result[label] = summary(seconds_of(label_runs), len(built))
    # Round by round, so that both sides of each ratio saw the same conditions.
    ratios = [
        raw_run["seconds"] / mx_run["seconds"]
        for mx_run, raw_run in zip(runs["mxref_verify_event_signatures"], runs["libsodium_verify_1KiB"])
    ]
    result["mxref_fraction_of_ceiling"] = statistics.median(ratios)
    result["mxref_fraction_of_ceiling_best_vs_best"] = (
        result["mxref_verify_event_signatures"]["per_second_best"] / result["libsodium_verify_1KiB"]["per_second_best"]
    )
    result["mxref_fraction_of_ceiling_per_round"] = ratios
    report["verification"] = result


def bench_state_resolution(args, worker, report):
    """Part 3: resolve the two forks of the synthetic room with mxref and with Synapse."""
    from mxref.events.stateres import auth_difference, resolve_state, unconflicted_and_conflicted

    key = mxref_key()
    report.setdefault("state_resolution", [])
    for room_version in args.room_versions:
        start = time.perf_counter()
        room, state_sets = build_room(room_version, args.members, args.conflicts, key)
        built_in = time.perf_counter() - start
        conflicted_keys = [
            k for k in set(state_sets[0]) | set(state_sets[1]) if state_sets[0].get(k) != state_sets[1].get(k)
        ]
        _, conflicted_ids = unconflicted_and_conflicted(state_sets)
        full_conflicted = conflicted_ids | auth_difference(state_sets, room.events)
        outputs = []

        def run():
            outputs.append(resolve_state(room.version, state_sets, room.events))

        name = f"stateres-v{room_version}"
        contenders = {"mxref_resolve_state": timed(run)}
        if worker:
            worker.prepare(
                name, "stateres", room_version=room_version, room_id=room.room_id,
                events=[room.pdus[event_id] for event_id in room.order], event_ids=list(room.order),
                state_sets=[[[t, k, e] for (t, k), e in s.items()] for s in state_sets],
            )
            contenders["synapse_resolve_events_with_store"] = lambda: worker.run(name, "resolve_events_with_store")
        runs = alternate(contenders, args.stateres_repeats)
        mx_resolved = outputs[-1]
        result = {
            "room_version": room_version,
            "events": len(room.events),
            "state_entries": [len(s) for s in state_sets],
            "conflicted_keys": len(conflicted_keys),
            "conflicted_events": len(conflicted_ids),
            "full_conflicted_set": len(full_conflicted),
            "room_build_seconds": built_in,
            "mxref_resolve_state": summary(seconds_of(runs["mxref_resolve_state"])),
            "mxref_durations": seconds_of(runs["mxref_resolve_state"]),
            "resolved_entries": len(mx_resolved),
            "resolved_digest": _state_digest(mx_resolved),
            "resolved_changes": _describe_resolution(room, state_sets, mx_resolved),
        }
        if worker:
            syn_runs = runs["synapse_resolve_events_with_store"]
            syn_durations = seconds_of(syn_runs)
            store = [r["store_seconds"] for r in syn_runs]
            finish = worker.result(name)
            syn_resolved = {(t, k): e for t, k, e in finish["resolved"]}
            result["synapse_resolve_events_with_store"] = summary(syn_durations)
            result["synapse_durations"] = syn_durations
            result["synapse_in_memory_store_seconds"] = store
            result["synapse_excluding_store"] = summary([d - s for d, s in zip(syn_durations, store)])
            result["synapse_chain_index_build_seconds_untimed"] = finish["chain_index_seconds"]
            result["speedup_best_vs_best"] = min(syn_durations) / min(result["mxref_durations"])
            result["speedup_median_of_rounds"] = statistics.median(
                syn_run["seconds"] / mx_run["seconds"] for syn_run, mx_run in zip(syn_runs, runs["mxref_resolve_state"])
            )
            result["speedup_vs_synapse_excluding_store"] = statistics.median(
                (syn_run["seconds"] - syn_run["store_seconds"]) / mx_run["seconds"]
                for syn_run, mx_run in zip(syn_runs, runs["mxref_resolve_state"])
            )
            result["identical_resolved_state"] = syn_resolved == mx_resolved
            if syn_resolved != mx_resolved:
                result["differences"] = [
                    [list(k), mx_resolved.get(k), syn_resolved.get(k)]
                    for k in sorted(set(mx_resolved) | set(syn_resolved))
                    if mx_resolved.get(k) != syn_resolved.get(k)
                ][:20]
            report["synapse_version"] = worker.version
        report["state_resolution"].append(result)


def _state_digest(state: dict) -> str:
    import hashlib

    text = json.dumps(sorted([t, k, e] for (t, k), e in state.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _describe_resolution(room, state_sets, resolved) -> dict:
    """Which fork won each conflicted key, in a few numbers."""
    from_a = from_b = other = 0
    for key in set(state_sets[0]) | set(state_sets[1]):
        if state_sets[0].get(key) == state_sets[1].get(key):
            continue
        value = resolved.get(key)
        if value == state_sets[0].get(key):
            from_a += 1
        elif value == state_sets[1].get(key):
            from_b += 1
        else:
            other += 1
    topic = resolved.get(("m.room.topic", ""))
    return {
        "conflicted_keys_from_fork_A": from_a,
        "conflicted_keys_from_fork_B": from_b,
        "conflicted_keys_from_elsewhere": other,
        "topic": room.events[topic]["content"]["topic"] if topic else None,
    }


def _print_rate(label: str, timing: dict) -> None:
    print(f"   {label:<36}{timing['per_second_best']:>10,.0f}{timing['per_second_median']:>10,.0f}")


def print_report(report: dict) -> None:
    machine = report["machine"]
    print(f"Machine: {machine['cpu_model']}, {machine['cpus_available']} CPUs (pinned to CPU {machine['pinned_cpu']}), "
          f"Python {machine['python']}, {machine['date_utc']}")
    print(f"Synapse: {report.get('synapse_version', 'not run')}")
    if report.get("note"):
        print(f"NOTE: {report['note']}")
    signing = report.get("signing")
    if signing:
        print(f"\n1. Hash + sign, room v{signing['room_version']}, {signing['events']} events "
              f"(mean {signing['mean_event_bytes']:.0f} bytes); events/s, best and median of rounds:")
        for label in ("mxref_sign_event", "mxref_build_event", "synapse_add_hashes_and_signatures"):
            if label in signing:
                _print_rate(label, signing[label])
        if "identical_hashes_and_signatures" in signing:
            print(f"   identical hashes and signatures from both: {signing['identical_hashes_and_signatures']}")
    verification = report.get("verification")
    if verification:
        print(f"\n2. Signature checks, room v{verification['room_version']}, {verification['events']} events; "
              f"checks/s, best and median of rounds:")
        for label in ("mxref_verify_event_signatures", "synapse_redact_dict_and_verify",
                      "synapse_parsed_event_verify", "synapse_parse_and_verify", "libsodium_verify_1KiB"):
            if label in verification:
                _print_rate(label, verification[label])
        print(f"   mxref reaches {verification['mxref_fraction_of_ceiling_best_vs_best']:.0%} of the libsodium "
              f"ceiling (best vs best; median of per-round ratios {verification['mxref_fraction_of_ceiling']:.0%})")
    for result in report.get("state_resolution", []):
        print(f"\n3. State resolution, room v{result['room_version']}: {result['events']} events, "
              f"{result['state_entries']} state entries, {result['conflicted_keys']} conflicted keys, "
              f"{result['conflicted_events']} conflicted events, full conflicted set {result['full_conflicted_set']}")
        print(f"   mxref resolve_state best {result['mxref_resolve_state']['best_s']:.3f} s, "
              f"median {result['mxref_resolve_state']['median_s']:.3f} s")
        if "synapse_resolve_events_with_store" in result:
            syn = result["synapse_resolve_events_with_store"]
            print(f"   Synapse resolve_events_with_store best {syn['best_s']:.3f} s, median {syn['median_s']:.3f} s "
                  f"(in-memory store {statistics.median(result['synapse_in_memory_store_seconds']):.3f} s of it; "
                  f"without the store: median {result['synapse_excluding_store']['median_s']:.3f} s)")
            print(f"   speed-up: {result['speedup_best_vs_best']:.2f}x best vs best, "
                  f"{result['speedup_median_of_rounds']:.2f}x median of rounds, "
                  f"{result['speedup_vs_synapse_excluding_store']:.2f}x against Synapse without its store; "
                  f"identical resolved state: {result['identical_resolved_state']}")
        print(f"   resolved: {result['resolved_entries']} entries, digest {result['resolved_digest']}, "
              f"{result['resolved_changes']}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synapse-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--synapse-python", default=os.environ.get("MXREF_SYNAPSE_PYTHON"),
                        help="Synapse's interpreter (default: $MXREF_SYNAPSE_PYTHON)")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--conflicts", type=int, default=200)
    parser.add_argument("--room-versions", default="11,12")
    parser.add_argument("--sign-room-version", default="11")
    parser.add_argument("--sign-events", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--stateres-repeats", type=int, default=15)
    parser.add_argument("--only", default="sign,verify,stateres", help="comma-separated parts to run")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--json", help="also write the full report to this file")
    args = parser.parse_args(argv)
    if args.synapse_worker:
        synapse_worker()
        return
    if args.quick:
        args.members, args.conflicts, args.sign_events, args.repeats, args.stateres_repeats = 300, 20, 200, 2, 2
    args.room_versions = [v for v in args.room_versions.split(",") if v]
    parts = set(args.only.split(","))

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    machine = machine_description()
    cpu = pin_to_one_cpu()
    report = {"machine": dict(machine, pinned_cpu=cpu)}
    worker = SynapseWorker(args.synapse_python) if args.synapse_python else None
    if worker is None:
        report["note"] = ("Synapse not available (no --synapse-python, MXREF_SYNAPSE_PYTHON unset): "
                          "mxref figures only, no comparison.")
    try:
        if parts & {"sign", "verify"}:
            built = bench_signing(args, worker, report) if "sign" in parts else None
            if "verify" in parts:
                if built is None:
                    _, built, _ = sample_events(args.sign_room_version, mxref_key(), args.sign_events)
                bench_verification(args, worker, report, built)
        if "stateres" in parts:
            bench_state_resolution(args, worker, report)
    finally:
        if worker is not None:
            worker.close()
    print_report(report)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=1, default=str)


if __name__ == "__main__":
    main()
