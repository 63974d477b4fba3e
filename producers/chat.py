"""Chat ingestion: the configured channels' messages into ``chat_messages``, through twitchAPI's Chat.

twitchAPI reconnects by itself when Twitch asks it to (``RECONNECT``) or the connection drops, but
not when the server closes the websocket cleanly, and it can give up for good after its retries.
:class:`ChatIngestor` therefore supervises it: a client that has stayed disconnected longer than
its own retries would take is torn down and a fresh one is started, with exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from typing import Any, Sequence

import aiohttp
from twitchAPI.chat import Chat, ChatMessage
from twitchAPI.helper import TWITCH_API_BASE_URL, TWITCH_AUTH_BASE_URL, TWITCH_CHAT_URL
from twitchAPI.twitch import Twitch
from twitchAPI.type import AuthScope, ChatEvent

from connectors.topics import CHAT_MESSAGES
from producers.contracts import iso_ms, mentions
from twitch_pipeline.errors import PlatformError
from twitch_pipeline.settings import Settings

_LOG = logging.getLogger("producers.chat")


def channel_list(settings: Settings) -> list[str]:
    return [c.strip().lstrip("#").lower() for c in settings.twitch_chat_channels.split(",") if c.strip()]


def chat_event(msg: ChatMessage, received_ms: int) -> dict[str, Any]:
    """A twitchAPI chat message as a ``chat_messages`` event (raw facts only; enrichment is downstream)."""
    raw_tags = msg._parsed["tags"]  # room-id and the channel name are only in the parsed IRC message
    user = msg.user
    text = msg.text or ""
    emotes = []
    for emote_id, positions in (msg.emotes or {}).items():
        for pos in positions:
            begin, end = int(pos["start_position"]), int(pos["end_position"])
            emotes.append({"id": emote_id, "name": text[begin : end + 1], "begin": begin, "end": end})
    emotes.sort(key=lambda e: e["begin"])
    return {
        "message_id": msg.id,
        "channel": msg._parsed["command"]["channel"].lstrip("#"),
        "channel_id": raw_tags.get("room-id") or "",
        "chatter_id": user.id or "",
        "chatter_login": user.name,
        "chatter_name": user.display_name or user.name,
        "text": text,
        "emotes": emotes,
        "badges": [{"set_id": k, "id": v or ""} for k, v in (user.badges or {}).items()],
        "reply_parent_message_id": msg.reply_parent_msg_id,
        "mentions": mentions(text),
        "sent_at": iso_ms(msg.sent_timestamp),
        "data_retrieved_at": iso_ms(received_ms),
    }


class ChatIngestor:
    def __init__(self, settings: Settings, publisher, channels: Sequence[str] | None = None, *,
                 reconnect_steps: Sequence[float] = (0, 1, 2, 4, 8, 16), grace_s: float = 5.0, backoff_cap_s: float = 120.0):
        self.settings = settings
        self.publisher = publisher
        self.channels = list(channels if channels is not None else channel_list(settings))
        if not self.channels:
            raise PlatformError("no chat channels: set TWITCH_PIPELINE_TWITCH_CHAT_CHANNELS")
        if not (settings.twitch_client_id and settings.twitch_chat_token):
            raise PlatformError("chat ingestion needs TWITCH_CLIENT_ID and a user token with chat:read in TWITCH_PIPELINE_TWITCH_CHAT_TOKEN")
        self.url = settings.twitch_chat_url or TWITCH_CHAT_URL
        self.reconnect_steps = list(reconnect_steps)
        # twitchAPI's own reconnect loop must have had its chance before the supervisor steps in
        self.dead_after_s = sum(self.reconnect_steps) + grace_s
        self.backoff_cap_s = backoff_cap_s
        self.restarts = 0
        self.received = 0
        self.stopped_by_budget = threading.Event()  # set from the chat client's thread

    async def run(self, stop: asyncio.Event) -> None:
        """Ingest until ``stop`` is set (or a bounded run has sent all its events)."""
        failures = 0
        while not stop.is_set():
            chat = None
            try:
                await self._probe()
                chat = await Chat(await self._user_client(), connection_url=self.url, initial_channel=self.channels)
                chat.reconnect_delay_steps = list(self.reconnect_steps)
                chat.register_event(ChatEvent.MESSAGE, self._on_message)
                await asyncio.wait_for(asyncio.to_thread(chat.start), timeout=30)
                _LOG.info("chat connected to %s, joining %d channels", urlsafe(self.url), len(self.channels))
                failures = 0
                await self._watch(chat, stop)
            except Exception as err:  # noqa: BLE001 - any failure of one client means: back off, start another
                _LOG.warning("chat client failed: %s", type(err).__name__)
            finally:
                if chat is not None:
                    await _stop_quietly(chat)
            if stop.is_set():
                break
            self.restarts += 1
            delay = min(self.backoff_cap_s, self.reconnect_steps[min(failures, len(self.reconnect_steps) - 1)] or 0.5) * random.uniform(0.8, 1.0)
            failures += 1
            _LOG.warning("chat disconnected; new client in %.1fs", delay)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass

    async def _watch(self, chat: Chat, stop: asyncio.Event) -> None:
        down_since = None
        while not stop.is_set():
            if chat.is_connected():
                down_since = None
            elif down_since is None:
                down_since = time.monotonic()
            elif time.monotonic() - down_since > self.dead_after_s:
                return
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.2)
            except asyncio.TimeoutError:
                pass

    async def _probe(self) -> None:
        """Fail fast while the chat server is unreachable: twitchAPI's start() would wait forever."""
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(self.url, timeout=aiohttp.ClientWSTimeout(ws_close=5.0)) as ws:
                await ws.close()

    async def _user_client(self) -> Twitch:
        s = self.settings
        twitch = Twitch(s.twitch_client_id, s.twitch_client_secret or None, authenticate_app=False,
                        base_url=(s.twitch_api_url or TWITCH_API_BASE_URL).rstrip("/") + "/",
                        auth_base_url=(s.twitch_auth_url or TWITCH_AUTH_BASE_URL).rstrip("/") + "/")
        twitch.auto_refresh_auth = bool(s.twitch_chat_refresh_token and s.twitch_client_secret)
        await twitch.set_user_authentication(s.twitch_chat_token, [AuthScope.CHAT_READ],
                                             s.twitch_chat_refresh_token or None, validate=False)
        return twitch

    async def _on_message(self, msg: ChatMessage) -> None:
        self.received += 1
        try:
            event = chat_event(msg, int(time.time() * 1000))
        except (KeyError, TypeError, ValueError) as err:  # a message we cannot read is logged, never fatal
            _LOG.warning("unreadable chat message in %s: %s", msg._parsed.get("command", {}).get("channel"), err)
            return
        if not self.publisher.publish(CHAT_MESSAGES.name, event, msg.sent_timestamp):
            self.stopped_by_budget.set()


def urlsafe(url: str) -> str:
    return url.split("?", 1)[0]


async def _stop_quietly(chat: Chat) -> None:
    try:
        await asyncio.wait_for(asyncio.to_thread(chat.stop), timeout=10)
    except Exception:  # noqa: BLE001 - it was not running, or its connection is already gone
        pass
