"""Incremental checkpoints: a partition's state as pieces named by their content.

A full snapshot per checkpoint grows with the partition: about 4 MB per 1,200
meters for a day of open windows, plus the detectors' histories. At province scale
(100,000 meters and more per partition) that is hundreds of MB every checkpoint,
beyond any sensible message size, and almost all of it unchanged since the last
one: the readings of windows kept for re-collection, the large runs of the open
windows (merged size-tiered, ``streams.slots``), the detectors' state between two
window closes.

So a checkpoint is a *manifest* on the checkpoint topic (which pieces, in order,
make each array of the balance half, and the detection half) and the pieces
themselves, at most ``PIECE_BYTES`` each, on a compacted pieces topic keyed by the
partition, the half and the digest of their content. ``PieceWriter`` keeps which
pieces the topic holds for one half of one partition, so a checkpoint sends only
new pieces, and deletes (tombstones) a piece once the last two manifests no longer
use it: a restore that finds a piece missing falls back to an earlier manifest.
Only the partition's owner deletes pieces; reading a checkpoint changes nothing.

Pure: no Kafka client. The worker sends what a ``PieceWriter`` says and reads them
back with ``kafka_io.checkpoints.read_checkpoints``.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kafka_io.detection import checkpoint_bytes
from streams.snapshot import dumps

PIECE_BYTES = 256 * 1024  # small: a change re-sends only the pieces it touches
MANIFEST_MAGIC = b"LLCP2\n"


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def array_bytes(a: npt.NDArray[Any]) -> bytes:
    """An array as ``.npy`` bytes (no pickle): equal arrays give equal bytes."""
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def array_of(data: bytes) -> npt.NDArray[Any]:
    loaded: npt.NDArray[Any] = np.load(io.BytesIO(data), allow_pickle=False)
    return loaded


@dataclass
class Split:
    """One half of one checkpoint, as ``PieceWriter.split`` made it."""

    parts: dict[str, list[str]]  # blob name -> digests of its pieces, in order
    new: dict[str, bytes]  # digest -> piece: to send before the manifest
    tombstones: list[str]  # digests to delete once the manifest is written

    @property
    def new_bytes(self) -> int:
        return sum(len(b) for b in self.new.values())

    @property
    def used(self) -> set[str]:
        return {d for ds in self.parts.values() for d in ds}


class PieceWriter:
    """Which pieces the pieces topic holds for one half of one partition.

    Starts knowing none, or those of the manifest it was restored from (``adopt``).
    A piece the latest manifest dropped is deleted only after the next one, so the
    last two manifests always have all their pieces; a piece that comes back after
    its deletion is sent again (its tombstone is earlier in the topic than the
    re-sent piece)."""

    def __init__(self) -> None:
        self._held: set[str] = set()  # sent and not deleted
        self._dropped: set[str] = set()  # held, not used by the latest manifest
        # name -> (read-only array, its digests) of the latest split_arrays
        self._seen: dict[str, tuple[npt.NDArray[Any], list[str]]] = {}

    def adopt(self, digests: Iterable[str]) -> None:
        """Pieces the topic holds already: those of the manifest this partition was
        restored from. The next checkpoint sends only what they lack, and deletes
        those it no longer uses two manifests later, like any other."""
        self._held.update(digests)

    def split_arrays(self, state: Mapping[str, npt.NDArray[Any]]) -> Split:
        """``split`` of the balance half (named arrays, one blob each). A read-only
        array that is the very object of the last split (a run of readings: never
        changed once made, ``streams.slots.Run``) keeps its digests without being
        read again; at province scale reading every array at every checkpoint would
        cost seconds."""
        known: dict[str, list[str]] = {}
        blobs: dict[str, bytes] = {}
        seen: dict[str, tuple[npt.NDArray[Any], list[str]]] = {}
        for name in sorted(state):
            a = state[name]
            last = self._seen.get(name)
            if last is not None and last[0] is a and self._held.issuperset(last[1]):
                known[name] = last[1]
            else:
                blobs[name] = array_bytes(a)
        split = self.split(blobs, known)
        for name in sorted(state):
            if not state[name].flags.writeable:
                seen[name] = (state[name], split.parts[name])
        self._seen = seen
        return split

    def split(
        self, blobs: Mapping[str, bytes], known: Mapping[str, list[str]] | None = None
    ) -> Split:
        """Pieces of ``blobs`` (name -> bytes), plus blobs ``known`` by their digests
        (held, unchanged): what to send, the manifest's parts, what to delete."""
        parts: dict[str, list[str]] = dict(known or {})
        new: dict[str, bytes] = {}
        for name, data in blobs.items():
            digests = []
            for lo in range(0, max(len(data), 1), PIECE_BYTES):
                piece = data[lo : lo + PIECE_BYTES]
                d = digest(piece)
                digests.append(d)
                if d not in self._held:
                    new[d] = piece
            parts[name] = digests
        parts = {name: parts[name] for name in sorted(parts)}
        used = {d for ds in parts.values() for d in ds}
        self._held |= new.keys()
        tombstones = sorted(self._dropped - used)
        self._held.difference_update(tombstones)
        self._dropped = self._held - used
        return Split(parts, new, tombstones)


def balance_blobs(state: Mapping[str, npt.NDArray[Any]]) -> dict[str, bytes]:
    """The balance half (``PartitionCore.state``) as one blob per array."""
    return {name: array_bytes(a) for name, a in sorted(state.items())}


BALANCE, DETECTION = "balance", "detection"  # the halves; DETECTION is also its one blob


def encode_manifest(balance: Split, detection: Split) -> bytes:
    return (
        MANIFEST_MAGIC
        + json.dumps(
            {"balance": balance.parts, "detection": detection.parts[DETECTION]},
            separators=(",", ":"),
        ).encode()
    )


@dataclass(frozen=True)
class Manifest:
    balance: dict[str, list[str]]
    detection: list[str]

    def digests_of(self, half: str) -> set[str]:
        if half == BALANCE:
            return {d for ds in self.balance.values() for d in ds}
        return set(self.detection)


def decode_manifest(data: bytes) -> Manifest | None:
    """The manifest of an incremental checkpoint; None for any other checkpoint."""
    if not data.startswith(MANIFEST_MAGIC):
        return None
    raw = json.loads(data[len(MANIFEST_MAGIC) :])
    return Manifest({str(k): list(v) for k, v in raw["balance"].items()}, list(raw["detection"]))


def assemble(
    manifest: Manifest, balance: Mapping[str, bytes], detection: Mapping[str, bytes]
) -> bytes:
    """The checkpoint the manifest describes from each half's pieces (digest ->
    piece), in the one-message form (``kafka_io.detection.checkpoint_bytes``).
    Raises ``KeyError`` for a missing piece."""
    state = {
        name: array_of(b"".join(balance[d] for d in digests))
        for name, digests in manifest.balance.items()
    }
    detection_half = b"".join(detection[d] for d in manifest.detection)
    return checkpoint_bytes(dumps(state), detection_half)
