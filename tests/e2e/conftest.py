"""The whole pipeline as `start` runs it, but the sink as its only service: each test produces its own run."""

from __future__ import annotations

from typing import Iterator

import pytest

from twitch_pipeline.jobs import start_all, stop_all
from twitch_pipeline.platform.lifecycle import down, start_services, stop_services, up
from twitch_pipeline.settings import Settings


@pytest.fixture(scope="module")
def pipeline(make_settings) -> Iterator[Settings]:
    """A platform of its own per test module, with every streaming job and the sink running."""
    settings = make_settings()
    try:
        up(settings, echo=lambda _: None)
        start_all(settings, echo=lambda _: None)
        start_services(settings, echo=lambda _: None, only=["sink"])  # no continuous producer: tests produce bounded runs
        yield settings
    finally:
        stop_services(settings, echo=lambda _: None)
        try:
            stop_all(settings, echo=lambda _: None)
        finally:
            down(settings, echo=lambda _: None)
