"""Incremental checkpoints (kafka_io.pieces): a partition's state as pieces named by
their content, sent once, deleted two manifests after their last use."""

from __future__ import annotations

import numpy as np
import pytest
from factories import DAY0
from one_area import CONFIG, PARTITIONS, SHARDS, TOPO, quarter_hours

from kafka_io.core import PartitionCore
from kafka_io.detection import split_checkpoint
from kafka_io.pieces import (
    DETECTION,
    PIECE_BYTES,
    PieceWriter,
    array_bytes,
    assemble,
    balance_blobs,
    decode_manifest,
    digest,
    encode_manifest,
)
from kafka_io.schema import Origin, ReadingRow, encode_reading


def checkpoint(core: PartitionCore, detection: bytes, bal: PieceWriter, det: PieceWriter):
    b = bal.split_arrays(core.state())
    d = det.split({DETECTION: detection})
    return b, d, encode_manifest(b, d)


def test_a_partition_restored_from_its_pieces_is_the_partition() -> None:
    core = PartitionCore(TOPO, CONFIG, 0, PARTITIONS, shards=SHARDS)
    messages = quarter_hours(200)
    core.process(messages[:150])
    b, d, manifest = checkpoint(core, b"detection state", PieceWriter(), PieceWriter())
    decoded = decode_manifest(manifest)
    assert decoded is not None
    balance, detection = split_checkpoint(assemble(decoded, b.new, d.new))
    again = PartitionCore.restore(TOPO, CONFIG, balance, shards=SHARDS)
    assert detection == b"detection state"
    assert again.next_offset == core.next_offset and again.position == core.position
    for name, a in core.state().items():
        np.testing.assert_array_equal(again.state()[name], a, err_msg=name)
    # and it goes on exactly as the original does
    more = messages[150:]
    went_on = [repr(b) for b in again.process(more).balances]  # (repr: NaN == NaN)
    assert went_on and went_on == [repr(b) for b in core.process(more).balances]


def test_a_checkpoint_sends_only_what_changed() -> None:
    core = PartitionCore(TOPO, CONFIG, 0, PARTITIONS, shards=SHARDS)
    messages = quarter_hours(300)
    bal, det = PieceWriter(), PieceWriter()
    core.process(messages[:280])
    first, _, _ = checkpoint(core, b"x" * 1000, bal, det)
    # the first time, every piece (equal arrays, e.g. empty ones, share theirs)
    assert set(first.new) == {d for ds in first.parts.values() for d in ds}
    again, again_d, _ = checkpoint(core, b"x" * 1000, bal, det)
    assert again.new == {} and again_d.new == {}  # nothing changed, nothing sent
    # Live, a checkpoint follows every few messages: most of the state is as it was.
    full = sent = 0
    for k in range(280, 300):
        core.process(messages[k : k + 1])
        step, _, _ = checkpoint(core, b"x" * 1000, bal, det)
        full += sum(len(b) for b in balance_blobs(core.state()).values())
        sent += step.new_bytes
    # (a tiny area: most of its few bytes change; on a generated grid of 338 meters
    # it is 1/39 of the full snapshots, docs/benchmarks.md)
    assert 0 < sent < full / 2


def test_large_blobs_are_cut_into_pieces() -> None:
    rng = np.random.default_rng(1)
    data = rng.bytes(2 * PIECE_BYTES + 5)
    split = PieceWriter().split({DETECTION: data})
    assert [len(split.new[d]) for d in split.parts[DETECTION]] == [PIECE_BYTES, PIECE_BYTES, 5]
    balance = PieceWriter().split({})
    manifest = decode_manifest(encode_manifest(balance, split))
    assert manifest is not None
    assert split_checkpoint(assemble(manifest, {}, split.new))[1] == data


def test_a_piece_is_deleted_two_manifests_after_its_last_use() -> None:
    w = PieceWriter()
    a, b, c = b"a" * 10, b"b" * 10, b"c" * 10
    first = w.split({"x": a, "y": b})
    assert sorted(first.new.values()) == [a, b] and first.tombstones == []
    second = w.split({"x": a, "y": c})  # b no longer used: kept for this manifest's sake
    assert list(second.new.values()) == [c] and second.tombstones == []
    third = w.split({"x": a, "y": c})
    assert third.new == {} and third.tombstones == [digest(b)]
    back = w.split({"x": a, "y": b})  # b again, after its tombstone: sent again
    assert list(back.new.values()) == [b] and back.tombstones == []


def test_a_piece_used_again_before_its_deletion_is_kept() -> None:
    w = PieceWriter()
    a, b = b"a" * 10, b"b" * 10
    w.split({"x": a})
    w.split({"x": b})  # a dropped
    again = w.split({"x": a})  # used again before it was deleted: neither sent nor deleted
    assert again.new == {} and again.tombstones == []
    later = w.split({"x": a})
    assert later.tombstones == [digest(b)]


def test_a_manifest_with_a_missing_piece_cannot_be_assembled() -> None:
    split = PieceWriter().split({DETECTION: b"abc"})
    manifest = decode_manifest(encode_manifest(PieceWriter().split({}), split))
    assert manifest is not None
    with pytest.raises(KeyError):
        assemble(manifest, {}, {})
    assert decode_manifest(b"LLCP1\n...") is None


def test_equal_states_give_equal_pieces() -> None:
    cores = [PartitionCore(TOPO, CONFIG, 0, PARTITIONS, shards=SHARDS) for _ in range(2)]
    row = ReadingRow("C1", DAY0 + 900, 12.5)
    for core in cores:
        core.process([(Origin("r", 0, 0), encode_reading(row))])
    a, b = (PieceWriter().split_arrays(c.state()) for c in cores)
    assert a.parts == b.parts


def test_a_read_only_array_seen_before_is_not_read_again() -> None:
    """Runs of readings never change once made (read-only arrays): the writer keeps
    their digests; any other array is read every time, so a change in place shows."""
    w = PieceWriter()
    run = np.arange(10.0)
    run.flags.writeable = False
    counts = np.zeros(4)
    first = w.split_arrays({"run": run, "counts": counts})
    assert set(first.new) == first.used
    counts[2] = 7.0  # changed in place
    second = w.split_arrays({"run": run, "counts": counts})
    assert second.parts["run"] == first.parts["run"]
    assert list(second.new.values()) == [array_bytes(counts)]
    other = np.arange(10.0) + 1  # a new run under the same name
    other.flags.writeable = False
    third = w.split_arrays({"run": other, "counts": counts})
    assert list(third.new.values()) == [array_bytes(other)]


def test_pieces_adopted_from_a_restore_are_not_sent_again() -> None:
    """After a restore the writer holds the restored manifest's pieces: the next
    checkpoint sends only what they lack, and the ones it no longer uses go two
    manifests later, like any other."""
    before = PieceWriter()
    old = before.split({"x": b"a" * 10, "y": b"b" * 10})
    restored = PieceWriter()
    restored.adopt(old.used)
    first = restored.split({"x": b"a" * 10, "y": b"c" * 10})
    assert list(first.new.values()) == [b"c" * 10] and first.tombstones == []
    second = restored.split({"x": b"a" * 10, "y": b"c" * 10})
    assert second.new == {} and second.tombstones == [digest(b"b" * 10)]
