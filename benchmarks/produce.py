"""Synthetic events/s into a real local Kafka broker, with and without JSON Schema validation.

Starts its own single-node broker on free ports (a temporary run directory), creates the topics,
warms the producer up, then times bounded runs (10 % duplicates, 1 % malformed, as a load test would).
"""

from __future__ import annotations

import dataclasses
import os
import time

from benchmarks._scratch import run_dir

EVENTS = int(os.environ.get("BENCH_PRODUCE_EVENTS", "200000"))


def main() -> dict:
    from connectors.topics import ensure_topics
    from producers.run import RunOptions, run
    from twitch_pipeline.platform.lifecycle import isolated, running
    from twitch_pipeline.settings import load_settings

    # the user's producer settings, on a broker of its own (no external bootstrap)
    with run_dir("produce") as path, running(isolated(dataclasses.replace(load_settings(), kafka_bootstrap=""), path), ["kafka"]) as settings:
        ensure_topics(settings)
        start_ms = int(time.time() * 1000)
        run(settings, RunOptions(events=5000, seed=99, start_ms=start_ms), out=None)  # producer id, metadata, caches
        results = {}
        for label, validate in (("validated", True), ("unvalidated", False)):
            result = run(settings, RunOptions(events=EVENTS, duplicates=0.1, malformed=0.01, seed=7, start_ms=start_ms,
                                              validate=validate), out=None)
            assert result.ok, result.summary
            results[label] = {"events": result.sent, "seconds": round(result.elapsed_s, 2),
                              "events_per_s": round(result.sent / result.elapsed_s),
                              "per_topic_sent": {t: s["sent"] for t, s in result.summary.items()}}
        results["settings"] = {"compression": settings.producer_compression, "linger_ms": settings.producer_linger_ms,
                               "batch_size": settings.producer_batch_size, "partitions": settings.kafka_partitions,
                               "cores": os.cpu_count()}
        return results
