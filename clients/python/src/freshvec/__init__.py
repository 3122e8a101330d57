"""freshvec: a thin, typed Python client for the freshvec vector database.

    import numpy as np, freshvec
    client = freshvec.Client("localhost:7867")
    client.create_collection("docs", dimension=4, metric="l2")
    client.upsert("docs", ids=[1, 2], vectors=np.eye(2, 4, dtype=np.float32))
    client.search("docs", [1, 0, 0, 0], k=1).ids   # array([1], dtype=uint64)
    client.upsert("docs", ids=[3], vectors=[[0, 0, 1, 0]], payloads=[{"lang": "en"}])
    client.search("docs", [1, 0, 0, 0], k=1, filter={"must": [{"key": "lang", "match": "en"}]},
                  with_payload=True).payloads   # [{'lang': 'en'}]

Vectors travel as packed little-endian f32 bytes; results are numpy arrays in frozen
dataclasses. `AsyncClient` has the same methods as coroutines."""
from ._aio import AsyncClient
from ._client import Client
from .errors import (AlreadyExists, DeadlineExceeded, FailedPrecondition, FreshvecError,
                     InvalidArgument, NotFound, ResourceExhausted,
                     Unauthenticated, Unavailable)
from .types import (AtLeast, ClusterStatus, CollectionDigest, CollectionInfo, Consistency,
                    FieldIndexInfo, FilterLike, Hit, Page, PeerStatus, Points, SearchPlan,
                    SearchResult, WithPayload, WriteResult)

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists", "AsyncClient", "AtLeast", "Client", "ClusterStatus", "CollectionDigest",
    "CollectionInfo", "Consistency", "DeadlineExceeded", "FailedPrecondition", "FieldIndexInfo",
    "FilterLike", "FreshvecError", "Hit", "InvalidArgument", "NotFound", "Page", "PeerStatus",
    "Points", "ResourceExhausted", "SearchPlan", "SearchResult", "Unauthenticated",
    "Unavailable", "WithPayload", "WriteResult",
]
