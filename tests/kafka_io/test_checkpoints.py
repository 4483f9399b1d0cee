"""Which checkpoint a partition restores, and where it lives: kafka_io.checkpoints."""

from __future__ import annotations

from kafka_io.checkpoints import checkpoint_headers, checkpoint_rank


def headers(position: int, offsets: dict[str, int]) -> list[tuple[str, bytes]]:
    return list(checkpoint_headers(position, offsets).items())


def test_a_checkpoint_behind_a_committed_offset_loses_to_one_that_covers_them() -> None:
    committed = {"r": 100, "routed": 40}
    owner = headers(150, {"r": 105, "routed": 45})
    # A zombie's late checkpoint: further on the readings, behind on the forwards
    # the new owner has committed, and further in sum.
    zombie = headers(170, {"r": 135, "routed": 35})
    assert checkpoint_rank(zombie, committed) < checkpoint_rank(owner, committed)
    assert checkpoint_rank(owner, committed) == (True, 150)
    assert checkpoint_rank(zombie, committed) == (False, 170)


def test_among_checkpoints_that_cover_the_further_wins() -> None:
    committed = {"r": 100}
    a = headers(120, {"r": 110, "routed": 10})
    b = headers(130, {"r": 100, "routed": 30})
    assert checkpoint_rank(b, committed) > checkpoint_rank(a, committed)


def test_checkpoints_of_older_workers_and_fresh_groups() -> None:
    old = [("position", b"77")]
    assert checkpoint_rank(old, {"r": 10**6}) == (True, 77)
    assert checkpoint_rank(None, {}) == (True, -1)
    assert checkpoint_rank(headers(5, {"r": 3}), {}) == (True, 5)  # nothing committed yet


def test_checkpoints_go_to_their_own_partition_or_fold_onto_fewer() -> None:
    from kafka_io.checkpoints import checkpoint_partition

    assert [checkpoint_partition(p, 4) for p in range(4)] == [0, 1, 2, 3]
    assert {checkpoint_partition(p, 1) for p in range(4)} == {0}  # a topic made before
    assert [checkpoint_partition(p, 2) for p in range(4)] == [0, 1, 0, 1]
