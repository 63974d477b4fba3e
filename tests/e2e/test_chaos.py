"""The short chaos run (`make chaos` is the long one): exactly-once under kill -9 of every component.

100k events with 10% duplicates and some malformed ones through the whole pipeline, on a platform of its own,
while the Kafka broker, the Flink JobManager (during a checkpoint) and TaskManager (during a checkpoint), the
ClickHouse sink, the embedded ClickHouse server and the producer are each killed -9 once, at seeded moments, and
brought back by the pipeline's own supervisor. Every store must then reconcile with what the producer sent (see
twitch_pipeline/chaos.py: reconcile).
"""

from __future__ import annotations

import pytest

from twitch_pipeline.chaos import TARGETS, Chaos, ChaosOptions

pytestmark = pytest.mark.e2e


# Four job submissions at the start and four more after the JobManager kill dominate: 404 s at load ~20, 19 min at
# load ~55; the run's own waits are bounded (settle_timeout_s, stall_s).
@pytest.mark.timeout(3600)
def test_exactly_once_under_kill_9_of_every_component(make_settings, tmp_path):
    # Paced so that the producer is still sending when its own kill comes, whatever the machine's load.
    opts = ChaosOptions(events=100_000, seed=14, kills_per_component=1, rate=1000, malformed=0.002, report=tmp_path / "chaos.json",
                        settle_timeout_s=900, stall_s=300)
    report = Chaos(make_settings(), opts, echo=print).run()
    failed = [c for c in report["checks"] if not c["passed"]]
    assert not failed, failed
    assert report["kills"] == {target: 1 for target in TARGETS}
    assert report["producer"]["resumes"] >= 1  # its kill -9 made it resume after its progress mark
