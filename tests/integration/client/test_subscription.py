"""One consumer per partition (issue 9, hole 12), against the real mock and the real client."""

from __future__ import annotations

import signal

from helpers import MockSource, kill, poll, start_cli
from lazyshift.client.source import Partition, SourceConnection, SubscriptionRefused


def _try_subscribe(port: int, partition: Partition) -> str | None:
    """None if the source accepts a subscription to `partition`, else its refusal."""
    try:
        SourceConnection("127.0.0.1", port, partition, 0).close()
    except SubscriptionRefused as exc:
        return str(exc)
    return None


def test_a_second_consumer_of_a_partition_is_refused_until_the_first_is_gone(
    settings, mongo_db
) -> None:
    source = MockSource("--seed", "5", "--count", "0", "--rate", "100").start()
    client = None
    try:
        client = start_cli(
            "client", "run", "--http-port", "-1", "--source-port", str(source.port),
            settings=settings,
        )  # fmt: skip
        poll(lambda: mongo_db.shipments.count_documents({}) > 20, "the first client storing")
        refusal = _try_subscribe(source.port, Partition(0, 1))
        assert refusal is not None and "already has a consumer" in refusal
        # Another partitioning overlaps the same keys: refused too.
        assert "already has a consumer" in (_try_subscribe(source.port, Partition(1, 2)) or "")
        kill(client, signal.SIGKILL)
        poll(
            lambda: _try_subscribe(source.port, Partition(0, 1)) is None,
            "the partition to be free once its consumer died",
        )
    finally:
        if client is not None and client.poll() is None:
            kill(client, signal.SIGKILL)
        source.stop()


def test_the_acknowledgement_names_the_offset_asked_for() -> None:
    source = MockSource("--seed", "6", "--count", "300", "--rate", "0").start()
    try:
        with SourceConnection("127.0.0.1", source.port, Partition(0, 1), 250) as conn:
            assert conn.ack["from_seq"] == 250
    finally:
        source.stop()
