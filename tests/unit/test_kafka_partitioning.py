"""Kafka's default partitioner, reproduced so a job can address every partition of its output by key."""

import pytest

from connectors.kafka import default_partition, murmur2
from connectors.topics import heartbeat_keys, is_heartbeat_key


@pytest.mark.parametrize(("data", "expected"), [  # the vectors of Kafka's own UtilsTest.testMurmur2
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
])
def test_murmur2_matches_kafka(data, expected):
    assert murmur2(data) == expected


@pytest.mark.parametrize("partitions", [1, 2, 3, 6, 12])
def test_heartbeat_keys_address_every_partition_once(partitions):
    keys = heartbeat_keys(partitions)
    assert [default_partition(k.encode(), partitions) for k in keys] == list(range(partitions))
    assert all(is_heartbeat_key(k.encode()) for k in keys)
    assert not is_heartbeat_key(b"stream-1") and not is_heartbeat_key(None)
