"""Read-your-writes on a follower of a three-node cluster (FRESHVEC_CLUSTER: the nodes'
addresses, the leader first; started by crates/server/tests/python_client.rs). Seed printed."""
import os

import numpy as np

from freshvec import Client

SEED = int(os.environ.get("FRESHVEC_TEST_SEED", "20240612"))


def test_read_your_writes_on_a_follower():
    leader, *followers = os.environ["FRESHVEC_CLUSTER"].split(",")
    rng = np.random.default_rng(SEED)
    setup = Client(leader, timeout=20)
    setup.wait_ready(60)
    setup.create_collection("ryw", dimension=8, metric="l2", shards=2)
    for url in followers:
        # Every write goes through the follower (forwarded to the leader) and every read is
        # answered by the follower, after it applied this client's last write.
        c = Client(url, timeout=20, read_your_writes=True)
        c.wait_ready(60)
        assert c.status().role == "follower"
        for i in range(40):
            v = rng.standard_normal(8).astype(np.float32)
            pid = 1_000 * (followers.index(url) + 1) + i
            w = c.upsert("ryw", [pid], [v])
            got = c.get("ryw", [pid], with_vectors=True)
            assert got.ids.tolist() == [pid] and np.array_equal(got.vectors[0], v), (i, got)
            r = c.search("ryw", v, k=1, exact=True)
            assert r.ids[0] == pid and r.applied_index >= w.index, (i, r, w)
            d = c.delete("ryw", [pid]) if i % 4 == 0 else None
            if d is not None:
                assert c.get("ryw", [pid]).ids.tolist() == [], i
        print(f"ok: 40 writes through {url}, each read back there at once")


if __name__ == "__main__":
    print(f"seed {SEED}")
    test_read_your_writes_on_a_follower()
