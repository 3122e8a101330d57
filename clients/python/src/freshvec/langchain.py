"""A LangChain `VectorStore` over a freshvec collection (`pip install 'freshvec[langchain]'`).

    from freshvec.langchain import FreshvecVectorStore
    store = FreshvecVectorStore.from_texts(["a text", "another"], embedding, url="localhost:7867",
                                           collection_name="docs")
    store.similarity_search("a query", k=4, filter={"source": "wiki"})

Each document is one point: its vector, and the payload `{"page_content": text, "metadata":
{...}, "doc_id": id}`. LangChain ids are strings; a point's u64 id is the first 8 bytes of
the BLAKE2b hash of its string id (the string is kept in `doc_id`, and a read checks it). The
collection is created on the first write, with the embedding's dimension, when it does not
exist.

A `filter` is a freshvec filter (a dict in Qdrant's JSON shape, keys such as
`metadata.source`; see the package README) or, for convenience, a plain dict of metadata keys
to values (`{"source": "wiki", "year": [2023, 2024]}`: every key must match; a list matches
any of its values). Scores from `similarity_search_with_score` are the collection's distances
(lower is nearer); relevance scores map them to [0, 1] for unit-norm embeddings."""
from __future__ import annotations

import hashlib
import math
import uuid
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from . import errors
from ._client import Client
from ._convert import MAX_BATCH

TEXT_KEY = "page_content"
METADATA_KEY = "metadata"
ID_KEY = "doc_id"
_FILTER_FIELDS = {"must", "should", "must_not", "min_should"}


def point_id(doc_id: str) -> int:
    """The u64 point id of a LangChain document id."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "little")


class FreshvecVectorStore(VectorStore):
    """Documents in one freshvec collection. `client` is a `freshvec.Client` (or give `url`
    and the client's keyword arguments in `client_options`); `metric` and `shards` are used
    when the collection is created. Searches use the index's default recall target unless
    `search_options` says otherwise (for example `{"target_recall": 0.99}` or
    `{"exact": True}`)."""

    def __init__(self, collection_name: str, embedding: Embeddings, *,
                 client: Optional[Client] = None, url: str = "localhost:7867",
                 client_options: Optional[dict[str, Any]] = None, metric: str = "cosine",
                 shards: int = 1, search_options: Optional[dict[str, Any]] = None) -> None:
        self.client = client if client is not None else Client(url, **(client_options or {}))
        self.collection_name = collection_name
        self._embedding = embedding
        self.metric = metric
        self.shards = shards
        self.search_options = dict(search_options or {})

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    # --- writes --------------------------------------------------------------------------

    def add_texts(self, texts: Iterable[str], metadatas: Optional[list[dict]] = None, *,
                  ids: Optional[Sequence[Optional[str]]] = None, batch_size: int = 1_000,
                  **kwargs: Any) -> list[str]:
        """Embeds and upserts the texts; returns their ids (generated where not given). A
        document with an id already stored replaces it."""
        texts = list(texts)
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"{len(metadatas)} metadatas for {len(texts)} texts")
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        doc_ids = [i if i else str(uuid.uuid4()) for i in (ids or [None] * len(texts))]
        if not texts:
            return []
        vectors = np.asarray(self._embedding.embed_documents(texts), dtype=np.float32)
        # Within one write ids are distinct: the last of a repeated id wins, as separate
        # writes would.
        last = {d: i for i, d in enumerate(doc_ids)}
        keep = sorted(last.values())
        payloads = [{TEXT_KEY: texts[i], METADATA_KEY: dict((metadatas or [{}] * len(texts))[i]
                                                           or {}),
                     ID_KEY: doc_ids[i]} for i in keep]
        self._ensure_collection(vectors.shape[1])
        self.client.upload(self.collection_name, vectors[keep],
                           ids=[point_id(doc_ids[i]) for i in keep], payloads=payloads,
                           batch_size=min(batch_size, MAX_BATCH), parallel=1)
        return doc_ids

    def delete(self, ids: Optional[list[str]] = None, *, filter: Any = None,
               **kwargs: Any) -> Optional[bool]:
        """Deletes documents by id (unknown ids are ignored), by `filter`, or, with neither,
        every document of the collection."""
        if not self._exists():
            return True
        if ids is not None:
            pids = list(dict.fromkeys(point_id(i) for i in ids))
            for s in range(0, len(pids), MAX_BATCH):
                self.client.delete(self.collection_name, pids[s:s + MAX_BATCH])
        else:
            self.client.delete(self.collection_name, filter=self._filter(filter) or {})
        return True

    def delete_collection(self) -> None:
        """Drops the collection (it is created again by the next write)."""
        if self._exists():
            self.client.drop_collection(self.collection_name)

    # --- reads ---------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents with these ids, in the order given; ids not found are
        absent."""
        if not ids or not self._exists():
            return []
        found: dict[str, Document] = {}
        pids = [point_id(i) for i in ids]
        for s in range(0, len(pids), MAX_BATCH):
            got = self.client.get(self.collection_name, pids[s:s + MAX_BATCH], with_payload=True)
            for p in got.payloads or []:
                doc = _document(p)
                found[doc.id] = doc
        return [found[i] for i in dict.fromkeys(ids) if i in found]

    def similarity_search(self, query: str, k: int = 4, filter: Any = None,
                          **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4, filter: Any = None,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        """The k nearest documents with their distances under the collection's metric."""
        vector = self._embedding.embed_query(query)
        return self.similarity_search_with_score_by_vector(vector, k, filter, **kwargs)

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4,
                                    filter: Any = None, **kwargs: Any) -> list[Document]:
        return [d for d, _ in
                self.similarity_search_with_score_by_vector(embedding, k, filter, **kwargs)]

    def similarity_search_with_score_by_vector(self, embedding: list[float], k: int = 4,
                                               filter: Any = None, **kwargs: Any
                                               ) -> list[tuple[Document, float]]:
        r = self._search(embedding, k, filter, False, kwargs)
        if r is None:
            return []
        return [(_document(p), float(d)) for p, d in zip(r.payloads or [], r.distances)]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                      lambda_mult: float = 0.5, filter: Any = None,
                                      **kwargs: Any) -> list[Document]:
        vector = self._embedding.embed_query(query)
        return self.max_marginal_relevance_search_by_vector(vector, k, fetch_k, lambda_mult,
                                                            filter, **kwargs)

    def max_marginal_relevance_search_by_vector(self, embedding: list[float], k: int = 4,
                                                fetch_k: int = 20, lambda_mult: float = 0.5,
                                                filter: Any = None, **kwargs: Any
                                                ) -> list[Document]:
        """Fetches the `fetch_k` nearest (with their vectors), then picks k of them that are
        near the query and far from each other."""
        r = self._search(embedding, max(k, fetch_k), filter, True, kwargs)
        if r is None or not len(r):
            return []
        picked = maximal_marginal_relevance(np.asarray(embedding, dtype=np.float32), r.vectors,
                                            lambda_mult=lambda_mult, k=k)
        return [_document(r.payloads[i]) for i in picked]

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings,
                   metadatas: Optional[list[dict]] = None, *, ids: Optional[list[str]] = None,
                   collection_name: str = "langchain", **kwargs: Any) -> "FreshvecVectorStore":
        """A store over `collection_name` (created when absent) holding `texts`; the other
        keyword arguments are the constructor's."""
        store = cls(collection_name, embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        if self.metric == "cosine":
            return lambda d: 1.0 - d / 2.0  # d = 1 - cos in [0, 2]
        if self.metric == "dot":
            return lambda d: (1.0 - d) / 2.0  # d = -dot in [-1, 1] for unit vectors
        return lambda d: 1.0 - math.sqrt(max(d, 0.0)) / 2.0  # squared L2, at most 4

    # --- plumbing ------------------------------------------------------------------------

    def _search(self, embedding: Any, k: int, filter: Any, with_vectors: bool,
                kwargs: dict[str, Any]):
        options = {**self.search_options, **kwargs}
        try:
            return self.client.search(self.collection_name, embedding, k,
                                      filter=self._filter(filter), with_payload=True,
                                      with_vectors=with_vectors, **options)
        except errors.NotFound:
            return None  # no collection yet: nothing was written

    def _exists(self) -> bool:
        return self.client.collection_exists(self.collection_name)

    def _ensure_collection(self, dimension: int) -> None:
        if self._exists():
            return
        try:
            self.client.create_collection(self.collection_name, dimension, metric=self.metric,
                                          shards=self.shards)
        except errors.AlreadyExists:
            pass  # created meanwhile

    @staticmethod
    def _filter(f: Any) -> Any:
        """A freshvec filter as it is; a plain dict of metadata keys as `must` matches."""
        if f is None or not isinstance(f, dict) or set(f) & _FILTER_FIELDS or not f:
            return f
        must = []
        for key, value in f.items():
            match = {"any": list(value)} if isinstance(value, (list, tuple)) else {"value": value}
            must.append({"key": f"{METADATA_KEY}.{key}", "match": match})
        return {"must": must}


def _document(payload: dict[str, Any]) -> Document:
    return Document(page_content=payload.get(TEXT_KEY, ""),
                    metadata=payload.get(METADATA_KEY) or {}, id=payload.get(ID_KEY))
