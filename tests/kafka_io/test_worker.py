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


def test_a_quiet_readings_partition_gets_one_idle_notice_until_it_speaks_again() -> None:
    import json

    from kafka_io.schema import IDLE, control_type
    from kafka_io.worker import QuietPartitions

    quiet = QuietPartitions("r", idle_after_s=60.0)
    quiet.assigned({0, 1}, now=0.0)
    quiet.taken("r", 0, 41, now=30.0)
    quiet.taken("routed", 1, 7, now=30.0)  # forwards and announcements do not count
    assert quiet.notices(now=59.0) == []

    ((p, msg),) = quiet.notices(now=61.0)
    assert (p, control_type(msg)) == (1, IDLE)
    assert json.loads(msg)["next_offset"] == {"r": 0} and json.loads(msg)["partition"] == 1
    assert quiet.notices(now=80.0) == []  # once
    # The restored core had read further: that notice is void, so a new one.
    quiet.positions({1: {"r": 12, "routed": 3}})
    ((p, msg),) = quiet.notices(now=81.0)
    assert (p, json.loads(msg)["next_offset"]) == (1, {"r": 12})

    ((p, msg),) = quiet.notices(now=91.0)  # partition 0: 60 s after its reading
    assert (p, json.loads(msg)["next_offset"]) == (0, {"r": 42})
    quiet.taken("r", 0, 42, now=95.0)  # it speaks again: a fresh quiet period
    assert quiet.notices(now=150.0) == []
    assert [p for p, _ in quiet.notices(now=156.0)] == [0]
    quiet.revoked({0, 1})
    assert quiet.notices(now=1000.0) == []
