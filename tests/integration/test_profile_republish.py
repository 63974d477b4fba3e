"""Profiles are never forgotten: a broadcaster away for longer than the state TTL comes back with its profile.

The real enrichment job runs with a state TTL of a few seconds (``TWITCH_PIPELINE_STATE_TTL_S``), fed by the
real Helix poller (against the local Helix server of test_helix_producer) through the real publisher. The
TTL is measured in processing time, so the broadcasters really stay away for several TTLs of wall-clock time.
A control broadcaster comes back through a producer that does not republish (its snapshot is sent by hand):
it gets NULL profile columns, which shows the job did forget the profile, and that the poller's republished
profile is what the returning broadcaster was joined with.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import pytest

from connectors.topics import ensure_topics
from producers.contracts import iso_ms
from producers.helix import HelixPoller, connect_helix, stream_event
from producers.run import RunOptions, make_publisher
from tests.integration.test_helix_producer import LocalHelix, helix_settings
from tests.integration.test_produce_cli import ServerThread
from tests.kafka_io import read_committed
from twitch_pipeline.jobs import cancel, submit
from twitch_pipeline.platform.lifecycle import running

pytestmark = pytest.mark.integration

TTL_S = 4.0  # Flink clears a key's idle join state between 1 and 1.5 TTLs after its last record
AWAY_S = 5 * TTL_S
LATENESS_S = 1.0


def test_a_broadcaster_away_longer_than_the_ttl_comes_back_with_its_profile(make_settings):
    helix = LocalHelix(bucket=100)
    returning, control, staying = (dict(s) for s in helix.streams[:3])
    server = ServerThread(helix.app())
    try:
        with running(make_settings(state_ttl_s=TTL_S, watermark_lateness_s=LATENESS_S, checkpoint_interval_s=1.0)) as platform:
            ensure_topics(platform)
            settings = helix_settings(platform, server, helix.client_id, helix.client_secret, twitch_top_games=5)
            submit(settings, "enrich_streams")
            try:
                back_ms, enriched = asyncio.run(_scenario(settings, helix, returning, control, staying))
            finally:
                cancel(settings, "enrich_streams")
    finally:
        server.stop()

    back = _split(enriched, returning, back_ms)[1]
    user = next(u for u in helix.users if u["id"] == returning["user_id"])
    assert [(r["broadcaster_type"], r["user_description"]) for r in back] == [(user["broadcaster_type"], user["description"])], \
        "the returning broadcaster was joined with its republished profile"
    control_back = _split(enriched, control, back_ms)[1]
    assert [r["user_description"] for r in control_back] == [None], "without republishing, the job forgot the profile (the TTL did expire)"
    assert all(r["user_description"] is not None for r in _split(enriched, staying, back_ms)[1])


async def _scenario(settings, helix: LocalHelix, returning: dict, control: dict, staying: dict) -> list[dict]:
    publisher = make_publisher(settings, RunOptions(source="twitch"))
    twitch = await connect_helix(settings)
    poller = HelixPoller(twitch, publisher, settings)

    async def poll(streams: list[dict]) -> None:
        helix.streams[:] = streams  # in place: the server's routes hold this list
        await poller.poll_once()
        publisher.heartbeats(int(time.time() * 1000) - 1000)  # as the producer does: every topic's event time moves on
        publisher.flush()

    async def read(until) -> list[dict]:
        return await asyncio.to_thread(read_committed, settings, "game_streams_enriched", until, 180)

    async def polling(streams: list[dict], until) -> list[dict]:
        """Poll every second (the job's watermark moves on with the heartbeats) until ``until`` holds of the output."""
        reading = asyncio.ensure_future(read(until))
        while not reading.done():
            await poll(streams)
            await asyncio.wait([reading], timeout=1.0)
        return reading.result()

    try:
        # the clock of the TTL starts once the job has joined snapshots of both with their profiles (while it
        # starts, it can emit a few snapshots before it has read the profiles: those have NULL profile columns)
        await polling([returning, control, staying],
                      lambda rows: {returning["id"], control["id"]} <= {r["stream_id"] for r in rows if r["user_description"]})
        gone_at = time.monotonic()
        while time.monotonic() - gone_at < AWAY_S:
            await poll([staying])
            await asyncio.sleep(1.0)
        republished_before, back_ms = poller.stats.republished, int(time.time() * 1000)
        await poll([returning, staying])
        assert poller.stats.republished > republished_before
        now_ms = int(time.time() * 1000)  # the control comes back through a producer that never republishes
        publisher.publish("game_streams", stream_event(_stream(control), iso_ms(now_ms)), now_ms)
        publisher.heartbeats(now_ms + 60_000)  # the end: everything up to now leaves the job
        publisher.flush()
        return back_ms, await read(lambda rows: all(_split(rows, s, back_ms)[1] for s in (returning, control)))
    finally:
        await twitch.close()


def _stream(raw: dict):
    """A Helix stream as twitchAPI hands it over."""
    from twitchAPI.object.api import Stream

    return Stream(**raw)


def _split(rows: list[dict], stream: dict, at_ms: int) -> tuple[list[dict], list[dict]]:
    """The enriched rows of ``stream`` before and after ``at_ms``."""
    mine = [(datetime.fromisoformat(r["data_retrieved_at"].replace("Z", "+00:00")).timestamp() * 1000, r) for r in rows if r["stream_id"] == stream["id"]]
    return [r for t, r in mine if t < at_ms], [r for t, r in mine if t >= at_ms]
