"""The LangChain VectorStore (freshvec.langchain) against a real server (address in
FRESHVEC_SERVER, started by crates/server/tests/python_client.rs): LangChain's own standard
vector-store tests, then what they do not cover (filters, scores, MMR, from_texts). Run with
pytest; every store gets a collection of its own, dropped afterwards."""
import itertools
import os

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests.vectorstores import VectorStoreIntegrationTests

from freshvec import Client
from freshvec.langchain import FreshvecVectorStore, point_id

URL = os.environ.get("FRESHVEC_SERVER", "localhost:7867")
_names = itertools.count()


def _client() -> Client:
    c = Client(URL, timeout=20)
    c.wait_ready(60)
    return c


def _store(embedding, **kw) -> FreshvecVectorStore:
    return FreshvecVectorStore(f"lc_{os.getpid()}_{next(_names)}", embedding, client=_client(), **kw)


class TestFreshvecStandard(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self):
        store = _store(self.get_embeddings())
        try:
            yield store
        finally:
            store.delete_collection()


class TestFreshvecBeyondTheStandard:
    embeddings = VectorStoreIntegrationTests.get_embeddings()

    @pytest.fixture()
    def store(self):
        store = _store(self.embeddings, search_options={"exact": True})
        try:
            yield store
        finally:
            store.delete_collection()

    def test_filters_scores_and_mmr(self, store):
        texts = [f"text {i}" for i in range(60)]
        metas = [{"source": ["wiki", "news", "blog"][i % 3], "year": 2000 + i % 5,
                  "tags": ["a", "b"] if i % 2 else ["c"]} for i in range(60)]
        ids = store.add_texts(texts, metas)
        assert len(ids) == 60 and len(set(ids)) == 60
        docs = store.similarity_search("text 7", k=5, filter={"source": "news"})
        assert len(docs) == 5 and all(d.metadata["source"] == "news" for d in docs)
        docs = store.similarity_search("text 7", k=100, filter={"source": ["wiki", "blog"], "year": 2003})
        want = {t for t, m in zip(texts, metas) if m["source"] != "news" and m["year"] == 2003}
        assert {d.page_content for d in docs} == want
        native = {"must": [{"key": "metadata.tags", "match": "c"}],
                  "must_not": [{"key": "metadata.year", "range": {"gte": 2002}}]}
        docs = store.similarity_search("text 1", k=100, filter=native)
        assert {d.page_content for d in docs} == \
            {t for t, m in zip(texts, metas) if "c" in m["tags"] and m["year"] < 2002}
        hits = store.similarity_search_with_score("text 7", k=3)
        assert hits[0][0].page_content == "text 7" and abs(hits[0][1]) < 1e-5
        assert [s for _, s in hits] == sorted(s for _, s in hits)
        rel = store.similarity_search_with_relevance_scores("text 7", k=3)
        assert abs(rel[0][1] - 1.0) < 1e-5 and all(0.0 <= s <= 1.0 for _, s in rel)
        mmr = store.max_marginal_relevance_search("text 7", k=4, fetch_k=20)
        assert len(mmr) == 4 and mmr[0].page_content == "text 7"
        assert len({d.id for d in mmr}) == 4
        store.delete(filter={"source": "blog"})
        assert store.client.count(store.collection_name) == 40
        store.delete()
        assert store.client.count(store.collection_name) == 0

    def test_from_texts_and_ids(self, store):
        name = store.collection_name
        made = FreshvecVectorStore.from_texts(["x", "y", "x again"], self.embeddings,
                                              metadatas=[{"n": 1}, {"n": 2}, {"n": 3}],
                                              ids=["id-x", "42", "id-x"], client=store.client,
                                              collection_name=name)
        # A repeated id in one write: the last one wins.
        assert made.client.count(name) == 2
        assert made.get_by_ids(["id-x", "42", "missing"]) == [
            Document(page_content="x again", metadata={"n": 3}, id="id-x"),
            Document(page_content="y", metadata={"n": 2}, id="42")]
        assert made.client.get(name, [point_id("42")]).ids.tolist() == [point_id("42")]
        vec = np.asarray(self.embeddings.embed_query("y"), dtype=np.float32)
        assert made.similarity_search_by_vector(vec.tolist(), k=1)[0].id == "42"
        with pytest.raises(ValueError):
            made.add_texts(["a", "b"], [{}])
        with pytest.raises(TypeError):
            made.add_texts(["a"], [{"bad": object()}])
        assert made.client.count(name) == 2
