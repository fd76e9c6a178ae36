"""Drive a real client library, matrix-nio (asyncio), from trial tests, and the chat scenario it plays.

Trial runs on a Twisted reactor; matrix-nio's ``AsyncClient`` runs on an
asyncio loop. Rather than marrying the two loops, :func:`run_asyncio` runs a
coroutine function on a fresh asyncio loop in a thread of its own and hands
back its result (:func:`run_asyncio_deferred` does the same from the reactor's
thread pool and returns a Deferred). A scenario therefore talks to the server
over real sockets exactly as a client application would.

:func:`chat_scenario` is the two-user conversation used as an interop check
against any homeserver: registration and login, ``createRoom``, invite, join,
messages, an edit (Client-Server API, "Event replacements",
https://spec.matrix.org/v1.19/client-server-api/#event-replacements), ``/sync``
and ``/messages`` paging ("Syncing" and "Getting events for a room",
https://spec.matrix.org/v1.19/client-server-api/#syncing). It returns what each
user observed; the test decides what must hold.
"""

import asyncio
import threading
import time

from twisted.internet.threads import deferToThreadPool


class NioScenarioError(Exception):
    """A step of a nio scenario got an error response (the message names the step)."""


def run_asyncio(coroutine_function, *args, timeout: float = 120.0, **kwargs):
    """Run ``coroutine_function(*args, **kwargs)`` on a new asyncio loop in a new thread; blocking.

    :param timeout: seconds before the coroutine is cancelled (``asyncio.TimeoutError``).
    :returns: the coroutine's result.
    :raises: whatever the coroutine raised.
    """
    outcome = {}

    def in_thread():
        try:
            outcome["result"] = asyncio.run(
                asyncio.wait_for(coroutine_function(*args, **kwargs), timeout)
            )
        except BaseException as e:
            outcome["error"] = e

    thread = threading.Thread(
        target=in_thread, name=f"asyncio-{coroutine_function.__name__}", daemon=True
    )
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def run_asyncio_deferred(reactor, coroutine_function, *args, timeout: float = 120.0, **kwargs):
    """:func:`run_asyncio` from the reactor's thread pool; returns a Deferred with the result."""
    return deferToThreadPool(
        reactor,
        reactor.getThreadPool(),
        run_asyncio,
        coroutine_function,
        *args,
        timeout=timeout,
        **kwargs,
    )


def _expect(step: str, response, expected_type):
    """Return ``response`` if it is an ``expected_type``; raise NioScenarioError naming ``step``."""
    if not isinstance(response, expected_type):
        raise NioScenarioError(f"{step}: {response!r}")
    return response


def _new_client(homeserver_url: str, user: str = ""):
    from nio import AsyncClient, AsyncClientConfig

    config = AsyncClientConfig(encryption_enabled=False, store_sync_tokens=False, max_timeouts=3)
    return AsyncClient(homeserver_url, user, config=config)


async def register_with_nio(client, username: str, password: str):
    """Register ``username`` through ``client``, following the server's UIA session if it asks.

    matrix-nio sends ``auth: {type: m.login.dummy}`` directly; a server that first wants a
    session answers 401 with one, and the request is repeated inside that session.

    :returns: nio's ``RegisterResponse``.
    :raises NioScenarioError: if registration fails.
    """
    from nio import RegisterResponse

    response = await client.register(username, password, device_name=f"{username} nio")
    if isinstance(response, RegisterResponse):
        return response
    session = None
    source = getattr(response, "source", None) or {}
    if isinstance(source, dict):
        session = source.get("session")
    if session is None:
        raise NioScenarioError(f"register {username}: {response!r}")
    response = await client.register(
        username, password, device_name=f"{username} nio", session_token=session
    )
    return _expect(f"register {username} (session {session})", response, RegisterResponse)


async def _sync_until(
    client, predicate, step: str, deadline_s: float = 30.0, sync_filter: dict | None = None
):
    """Sync repeatedly (long-polling) until ``predicate(sync_response)``; returns that response."""
    from nio import SyncResponse

    end = time.monotonic() + deadline_s
    while True:
        response = _expect(
            step, await client.sync(timeout=3000, sync_filter=sync_filter), SyncResponse
        )
        if predicate(response):
            return response
        if time.monotonic() > end:
            raise NioScenarioError(f"{step}: not seen within {deadline_s}s")


async def chat_scenario(
    homeserver_url: str,
    alice: str = "nio_alice",
    bob: str = "nio_bob",
    password: str = "nio password 1",
    message_count: int = 12,
    page_size: int = 5,
) -> dict:
    """Two users talk through matrix-nio: a coroutine, run it with :func:`run_asyncio`.

    Alice registers; Bob registers, then logs in again on a second device; Alice creates a
    private room and invites Bob; Bob sees the invite in ``/sync`` and joins; Alice sends
    ``message_count`` text messages and then edits the first (``m.replace``); Bob
    long-polls ``/sync`` until the edit arrives and then pages ``/messages`` backwards
    ``page_size`` events at a time from his sync position to the start of the room.

    :param homeserver_url: the Client-Server API base URL.
    :param alice: Alice's localpart; :param bob: Bob's localpart (both must be unused).
    :returns: a dict of observations: ``alice_user_id``, ``bob_user_id``, ``bob_device_ids``
        (registration, login), ``room_id``, ``invite_seen``, ``sent_event_ids``,
        ``edit_event_id``, ``synced_message_ids`` (Bob's sync timeline, ``m.room.message``
        only, oldest first), ``paged_message_ids`` (``/messages``, newest first),
        ``page_chunk_sizes``, ``paged_types`` (every event type paged, newest first),
        ``original_as_paged`` and ``edit_as_synced`` (raw event JSON).
    :raises NioScenarioError: when any step gets an error response.
    """
    from nio import (
        JoinResponse,
        LoginResponse,
        MessageDirection,
        RoomCreateResponse,
        RoomInviteResponse,
        RoomMessagesResponse,
        RoomPreset,
        RoomSendResponse,
    )

    observed = {}
    alice_client = _new_client(homeserver_url)
    bob_registration_client = _new_client(homeserver_url)
    bob_client = _new_client(homeserver_url, bob)
    try:
        registered = await register_with_nio(alice_client, alice, password)
        observed["alice_user_id"] = registered.user_id
        bob_registered = await register_with_nio(bob_registration_client, bob, password)
        observed["bob_user_id"] = bob_registered.user_id
        login = _expect(
            "bob login",
            await bob_client.login(password, device_name="bob second device"),
            LoginResponse,
        )
        observed["bob_device_ids"] = [bob_registered.device_id, login.device_id]

        created = _expect(
            "createRoom",
            await alice_client.room_create(name="nio scenario", preset=RoomPreset.private_chat),
            RoomCreateResponse,
        )
        room_id = observed["room_id"] = created.room_id
        _expect(
            "invite",
            await alice_client.room_invite(room_id, bob_registered.user_id),
            RoomInviteResponse,
        )

        await _sync_until(bob_client, lambda r: room_id in r.rooms.invite, "bob sees the invite")
        observed["invite_seen"] = True
        _expect("join", await bob_client.join(room_id), JoinResponse)

        sent = []
        for i in range(message_count):
            response = await alice_client.room_send(
                room_id, "m.room.message", {"msgtype": "m.text", "body": f"nio {i}"}
            )
            sent.append(_expect(f"send {i}", response, RoomSendResponse).event_id)
        observed["sent_event_ids"] = sent
        edit_content = {
            "msgtype": "m.text",
            "body": "* nio 0 (edited)",
            "m.new_content": {"msgtype": "m.text", "body": "nio 0 (edited)"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": sent[0]},
        }
        edit = _expect(
            "edit",
            await alice_client.room_send(room_id, "m.room.message", edit_content),
            RoomSendResponse,
        )
        observed["edit_event_id"] = edit.event_id

        synced = []
        edit_as_synced = {}

        def collect(response):
            room = response.rooms.join.get(room_id)
            for event in room.timeline.events if room else ():
                if event.source.get("type") == "m.room.message":
                    synced.append(event.event_id)
                    if event.event_id == edit.event_id:
                        edit_as_synced.update(event.source)
            return edit.event_id in synced

        # A timeline limit above the number of events sent, so no sync leaves a gap.
        timeline_filter = {"room": {"timeline": {"limit": message_count + 10}}}
        await _sync_until(bob_client, collect, "bob sees the edit", sync_filter=timeline_filter)
        observed["synced_message_ids"] = synced
        observed["edit_as_synced"] = edit_as_synced

        paged, sizes, types, token = [], [], [], bob_client.next_batch
        original_as_paged = {}
        for _ in range(100):
            page = _expect(
                "messages",
                await bob_client.room_messages(
                    room_id, start=token, direction=MessageDirection.back, limit=page_size
                ),
                RoomMessagesResponse,
            )
            if not page.chunk:
                break
            sizes.append(len(page.chunk))
            for event in page.chunk:
                types.append(event.source.get("type"))
                if event.source.get("type") == "m.room.message":
                    paged.append(event.event_id)
                if event.event_id == sent[0]:
                    original_as_paged.update(event.source)
            if not page.end or page.end == token:
                break
            token = page.end
        observed["paged_message_ids"] = paged
        observed["page_chunk_sizes"] = sizes
        observed["paged_types"] = types
        observed["original_as_paged"] = original_as_paged
        return observed
    finally:
        for client in (alice_client, bob_registration_client, bob_client):
            await client.close()
