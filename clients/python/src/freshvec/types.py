"""Plain result types: frozen dataclasses over numpy arrays (no model layer to pay for)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple, Optional, Union

import numpy as np
import numpy.typing as npt


class Hit(NamedTuple):
    id: int
    distance: float


@dataclass(frozen=True)
class SearchPlan:
    """How a filtered search ran: `strategy` "exact" (the matching points scanned exactly),
    "postings" (the posting scan, widened for the filter, checking membership), "fallback"
    (a shard's posting scan came up short and finished exactly), "mixed" (shards chose
    differently) or "empty"; `matched` the exact number of matching points; postings probed
    and members scanned over all shards; `unindexed` when a condition had no field index."""

    strategy: str
    matched: int
    exact_shards: int
    fallback_shards: int
    postings: int
    scanned: int
    unindexed: bool


@dataclass(frozen=True)
class SearchResult:
    """The hits of one query, nearest first: `ids` (uint64) and `distances` (float32, under the
    collection's metric), and the log index the answering node had applied. With
    `with_payload`, `payloads` (a dict per hit); with `with_vectors`, `vectors` ((n, d)
    float32); with a filter, `plan`."""

    ids: npt.NDArray[np.uint64]
    distances: npt.NDArray[np.float32]
    applied_index: int
    payloads: Optional[list[dict[str, Any]]] = None
    vectors: Optional[npt.NDArray[np.float32]] = None
    plan: Optional[SearchPlan] = None

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[Hit]:
        return (Hit(int(i), float(d)) for i, d in zip(self.ids, self.distances))


@dataclass(frozen=True)
class Points:
    """Points found by `get` (in request order; ids not found are absent) or a `scroll` page
    (in id order); `vectors` is an (n, dimension) float32 array and `payloads` a dict per point
    when asked for, else None."""

    ids: npt.NDArray[np.uint64]
    vectors: Optional[npt.NDArray[np.float32]]
    payloads: Optional[list[dict[str, Any]]] = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Page:
    """One page of `scroll`: its `points`, where the next page starts (`next_page_offset`,
    None on the last page), and the log index the answering node had applied."""

    points: Points
    next_page_offset: Optional[int]
    applied_index: int

    def __len__(self) -> int:
        return len(self.points)


@dataclass(frozen=True)
class WriteResult:
    """A write's log index (pass it as `consistency=AtLeast(index)` to read it anywhere), and
    how many points it carried."""

    index: int
    count: int = 0


@dataclass(frozen=True)
class AtLeast:
    """Read consistency: wait until the answering node applied this log index."""

    index: int


FilterLike = Optional[Any]
"""A filter: a dict in Qdrant's JSON shape or a `freshvec.v1.freshvec_pb2.Filter` (see the
README); None for no filter."""

WithPayload = Union[bool, list, dict, None]
"""Which payload keys a read returns: False (none), True (all), a list of keys, or
{"include": [...]} / {"exclude": [...]}."""

Consistency = Union[None, str, int, AtLeast]
"""None (the client's default: local, or the last write with read_your_writes), "local",
"linearizable", or a log index (an int or AtLeast) the answering node must have applied."""


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    dimension: int
    metric: str
    shards: int
    encoding: str
    vectors: int
    postings: int
    splits: int
    merges: int
    reassigned: int
    pending_jobs: int
    memory_bytes: int
    applied_index: int
    # Recall calibration (see DescribeCollectionResponse in the proto).
    calibrated_shards: int = 0
    default_nprobe: int = 0
    estimated_recall: float = 0.0
    calibration: list[tuple[int, float]] = field(default_factory=list)
    # Payload field indexes in key order, and the heap bytes of payloads and their indexes.
    field_indexes: list["FieldIndexInfo"] = field(default_factory=list)
    payload_memory_bytes: int = 0
    raw: Any = field(repr=False, compare=False, default=None)


@dataclass(frozen=True)
class FieldIndexInfo:
    """A payload field index: its key path, type ("keyword", "integer", "float", "bool",
    "datetime"), the points with a value it holds, distinct values, and heap bytes."""

    key: str
    type: str
    points: int
    values: int
    memory_bytes: int


@dataclass(frozen=True)
class CollectionDigest:
    name: str
    digest: int
    vectors: int


@dataclass(frozen=True)
class PeerStatus:
    node_id: int
    address: str
    matched_index: int
    lag: int
    voter: bool


@dataclass(frozen=True)
class ClusterStatus:
    node_id: int
    role: str
    leader_id: int
    term: int
    last_log_index: int
    committed_index: int
    applied_index: int
    purged_index: int
    snapshot_index: int
    first_log_index: int
    snapshots_installed: int
    snapshot_transfers_in_progress: int
    address: str
    voters: list[int]
    peers: list[PeerStatus]
    collections: list[CollectionDigest]
    raw: Any = field(repr=False, compare=False, default=None)
