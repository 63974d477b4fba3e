"""Chat ingestion end to end: a local server speaking Twitch chat (IRC over websocket) -> twitchAPI -> Kafka.

The Twitch CLI has no chat mock, so the server here implements the part of the protocol the client
uses: capability negotiation, PASS/NICK, the 001 welcome, JOIN with ROOMSTATE, PING/PONG, tagged
PRIVMSG, RECONNECT. It then breaks the connection the three ways Twitch does (a RECONNECT notice, a
clean close, an abrupt drop) and checks that ingestion comes back each time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from itertools import count

import pytest
from aiohttp import WSMsgType, web

from producers.chat import ChatIngestor
from producers.contracts import violations
from producers.heartbeat import HEARTBEAT_KEY
from producers.run import RunOptions, make_publisher
from tests.integration.test_produce_cli import ServerThread, end_offsets, read_since
from twitch_pipeline.errors import wait_until

pytestmark = pytest.mark.integration

BOT = "ingestbot"
ROOMS = {"bigstreamer": "1001", "smallstreamer": "1002"}


class ChatServer:
    def __init__(self):
        self.connections: list[web.WebSocketResponse] = []
        self.joined: dict[int, set[str]] = {}  # connection index -> channels
        self.passwords: list[str] = []
        self._ids = count(1)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws", self._socket)
        app.router.add_get("/helix/users", self._users)
        app.router.add_get("/auth/validate", self._validate)
        return app

    async def _users(self, request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "777", "login": BOT, "display_name": "IngestBot", "type": "", "broadcaster_type": "",
                                            "description": "", "profile_image_url": "", "offline_image_url": "", "view_count": 0,
                                            "created_at": "2020-01-01T00:00:00Z"}]})

    async def _validate(self, request: web.Request) -> web.Response:
        return web.json_response({"client_id": "chat-client", "login": BOT, "scopes": ["chat:read"], "user_id": "777", "expires_in": 3600})

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        index = len(self.connections)
        self.connections.append(ws)
        self.joined[index] = set()
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            for line in filter(None, msg.data.split("\r\n")):
                await self._command(ws, index, line)
        return ws

    async def _command(self, ws, index: int, line: str) -> None:
        if line.startswith("CAP REQ"):
            await ws.send_str(":tmi.twitch.tv CAP * ACK :twitch.tv/membership twitch.tv/tags twitch.tv/commands")
        elif line.startswith("PASS "):
            self.passwords.append(line[5:])
        elif line.startswith("NICK "):
            await ws.send_str(f":tmi.twitch.tv 001 {BOT} :Welcome, GLHF!")
        elif line.startswith("JOIN "):
            for channel in line[5:].split(","):
                name = channel.strip().lstrip("#")
                await ws.send_str(f":{BOT}!{BOT}@{BOT}.tmi.twitch.tv JOIN #{name}")
                await ws.send_str(f"@emote-only=0;followers-only=-1;r9k=0;room-id={ROOMS[name]};slow=0;subs-only=0 :tmi.twitch.tv ROOMSTATE #{name}")
                self.joined[index].add(name)
        elif line.startswith("PING"):
            await ws.send_str("PONG :tmi.twitch.tv")

    # -- driven by the test ---------------------------------------------------------------------------
    def live(self) -> int | None:
        """Index of the newest open connection that has joined every channel, if any."""
        for index in reversed(range(len(self.connections))):
            if not self.connections[index].closed and self.joined[index] == set(ROOMS):
                return index
        return None

    async def say(self, channel: str, text: str, tags: str = "") -> str:
        n = next(self._ids)
        message_id = f"00000000-0000-4000-8000-{n:012d}"
        line = (f"@badge-info=;badges=subscriber/6,premium/1;color=;display-name=Viewer{n};emotes={tags};id={message_id};"
                f"mod=0;room-id={ROOMS[channel]};subscriber=1;tmi-sent-ts={1795000000000 + n};turbo=0;user-id={9000 + n};user-type= "
                f":viewer{n}!viewer{n}@viewer{n}.tmi.twitch.tv PRIVMSG #{channel} :{text}")
        await self.connections[self.live()].send_str(line)
        return message_id

    async def reconnect_notice(self) -> None:
        await self.connections[self.live()].send_str(":tmi.twitch.tv RECONNECT")

    async def close_cleanly(self) -> None:
        await self.connections[self.live()].close()

    async def drop(self, index: int) -> None:
        self.connections[index]._req.transport.close()  # no close frame: the TCP connection just ends


@pytest.fixture
def chat_setup(kafka):
    server = ChatServer()
    thread = ServerThread(server.app())
    settings = dataclasses.replace(kafka, twitch_client_id="chat-client", twitch_chat_token="user-token-123",
                                   twitch_chat_url=thread.url("/ws"), twitch_api_url=thread.url("/helix/"),
                                   twitch_auth_url=thread.url("/auth/"), twitch_chat_channels=",".join(ROOMS))
    publisher = make_publisher(settings, RunOptions(source="twitch"))
    ingestor = ChatIngestor(settings, publisher, reconnect_steps=(0, 0.2, 0.5), grace_s=0.5)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    runner = threading.Thread(target=loop.run_until_complete, args=(ingestor.run(stop),), daemon=True)
    runner.start()
    try:
        yield settings, server, thread, ingestor, publisher
    finally:
        loop.call_soon_threadsafe(stop.set)
        runner.join(30)
        publisher.flush()
        thread.stop()


def test_chat_messages_arrive_in_kafka_across_reconnects(chat_setup):
    settings, server, thread, ingestor, publisher = chat_setup
    before = end_offsets(settings, ["chat_messages"])
    sent: list[str] = []

    def exchange(*messages: tuple[str, str, str]) -> None:
        wait_until(lambda: server.live() is not None, 30, "the chat client (re)joining its channels")
        for channel, text, emotes in messages:
            sent.append(thread.call(server.say(channel, text, emotes)))
        wait_until(lambda: ingestor.received == len(sent), 30, "the chat messages reaching the ingestor")

    exchange(("bigstreamer", "Kappa hello Kappa @SmallStreamer what rank is this?", "25:0-4,12-16"),
             ("smallstreamer", "first time here", ""))
    assert server.passwords[0] == "oauth:user-token-123"

    first = server.live()
    thread.call(server.reconnect_notice())  # Twitch's "please reconnect" before maintenance
    wait_until(lambda: (server.live() or 0) > first, 30, "a reconnect after RECONNECT")
    exchange(("bigstreamer", "back again PogChamp", "305954156:11-18"))

    before_close = server.live()
    thread.call(server.close_cleanly())  # twitchAPI does not come back from this one by itself
    wait_until(lambda: (server.live() or 0) > before_close, 30, "a new client after a clean close")
    assert ingestor.restarts >= 1
    exchange(("smallstreamer", "still here", ""))

    before_drop = server.live()
    thread.call(server.drop(before_drop))
    wait_until(lambda: (server.live() or 0) > before_drop, 30, "a reconnect after a dropped connection")
    exchange(("bigstreamer", "ResidentSleeper", "245:0-14"))

    publisher.flush()
    records = [m for m in read_since(settings, before) if m.key() != HEARTBEAT_KEY]
    events = [json.loads(m.value()) for m in records]
    assert [e["message_id"] for e in events if e["channel"] == "bigstreamer"] == [i for i in sent if int(i[-12:]) in (1, 3, 5)]
    assert sorted(e["message_id"] for e in events) == sorted(sent)
    assert all(not violations("chat_messages", e) for e in events)
    assert {m.key().decode() for m in records} == set(ROOMS)
    hello = next(e for e in events if e["message_id"] == sent[0])
    assert hello["channel_id"] == "1001" and hello["chatter_login"] == "viewer1" and hello["chatter_name"] == "Viewer1"
    assert [(e["name"], e["begin"], e["end"]) for e in hello["emotes"]] == [("Kappa", 0, 4), ("Kappa", 12, 16)]
    assert hello["mentions"] == ["smallstreamer"] and hello["badges"] == [{"set_id": "subscriber", "id": "6"}, {"set_id": "premium", "id": "1"}]
    assert hello["sent_at"] == "2026-11-18T11:06:40.001Z"
    assert publisher.summary()["chat_messages"]["unique"] == len(sent)
