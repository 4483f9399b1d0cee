"""The worker's own rules, apart from the broker: kafka_io.worker."""

from __future__ import annotations


def test_events_of_a_revoked_assignment_are_stale_until_the_next_generation() -> None:
    from kafka_io.worker import FetchGenerations

    generation = [3]
    g = FetchGenerations(lambda: generation[0])
    assert not g.stale(3) and not g.stale(None)
    assert g.stale(2)  # fetched before the latest rebalance
    g.revoked()  # faust still says 3 until the next assignment starts
    assert g.stale(3)  # fetched for the assignment just revoked
    generation[0] = 4
    assert g.stale(3) and not g.stale(4)
