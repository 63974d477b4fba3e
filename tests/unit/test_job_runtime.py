"""SQL parameters shared by the job drivers."""

import pytest

from flink_jobs.runtime import interval_literal, sql_params
from twitch_pipeline.settings import Settings


@pytest.mark.parametrize(("seconds", "literal"), [
    (0, "INTERVAL '0 00:00:00.000' DAY TO SECOND(3)"),
    (30, "INTERVAL '0 00:00:30.000' DAY TO SECOND(3)"),
    (300, "INTERVAL '0 00:05:00.000' DAY TO SECOND(3)"),  # three digits of seconds: SECOND(2) would reject it
    (2.5, "INTERVAL '0 00:00:02.500' DAY TO SECOND(3)"),
    (90061.001, "INTERVAL '1 01:01:01.001' DAY TO SECOND(3)"),
])
def test_interval_literal(seconds, literal):
    assert interval_literal(seconds) == literal


def test_watermark_lateness_is_passed_as_an_interval():
    assert sql_params(Settings(watermark_lateness_s=120), "job", bounded=False)["lateness"] == "INTERVAL '0 00:02:00.000' DAY TO SECOND(3)"


def test_bounded_runs_neither_share_offsets_nor_transactions_with_the_streaming_job():
    streaming, bounded = (sql_params(Settings(), "job", bounded=b) for b in (False, True))
    assert streaming["group_id"] != bounded["group_id"]
    assert streaming["txn_prefix"] != bounded["txn_prefix"]
