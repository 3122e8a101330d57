#!/usr/bin/env python3
"""Black-box benchmarks of freshvec's persistence: write stalls during snapshots, restart time,
write amplification, memory, and snapshot transfer to a wiped follower.

Every subcommand starts its own `freshvec serve` processes (temp data dirs under /tmp, deleted
afterwards; every process killed on exit, Ctrl-C or error, and by the kernel if this script
dies: they run under `setpriv --pdeathsig KILL`), talks to them only through the public gRPC
API, /metrics and /proc, prints one JSON summary line (prefixed `RESULT `) and a table, and
writes the full record (per-write samples included) to --out when given.

Setup (Python 3.10+; a venv outside the repository):

    python3 -m venv ~/.venvs/statebench
    ~/.venvs/statebench/bin/pip install numpy -e clients/python
    ~/.venvs/statebench/bin/python /work/shared/bench/gen_dataset.py --preset medium \\
        --dist clustered --out target/bench-data/medium-clustered

Run (from the repository root; the script lowers its own priority to nice 10 by default,
and the servers inherit it):

    PY=~/.venvs/statebench/bin/python; BIN=target/release/freshvec
    D=target/bench-data/medium-clustered
    $PY scripts/state_bench.py stall     --bin $BIN --data $D [--nodes 3] [--rate 50] [--snapshots 5]
    $PY scripts/state_bench.py restart   --bin $BIN --data $D [--tail 20000] [--tail-batch 10]
    $PY scripts/state_bench.py write-amp --bin $BIN --data $D
    $PY scripts/state_bench.py memory    --bin $BIN --dataset medium|large [--generate]
    $PY scripts/state_bench.py transfer  --bin $BIN --data $D

Common options: --seed N (printed, drives every random choice), --out FILE.json, --shards S
(collection shards, default 1), --load-batch 1000, --load-parallel 2, --keep (keep the temp
dir and server logs), --server-arg=--flag=value (repeatable, passed to every `serve`).

What each one measures:

  stall      Bulk-loads the base vectors, then one client thread writes batches of 100
             overwrites (fresh vectors near random base vectors, ids from the loaded range) at
             --rate batches/s on a fixed schedule (a late write goes at once, so `sched_ms`
             latencies include the queueing an open-loop client would see), while the leader
             takes --snapshots Cluster/TriggerSnapshot calls --gap seconds apart. A snapshot
             window runs from the trigger's start until Status shows the new snapshot index;
             a write overlapping any window is "during", the rest "idle". Reports p50/p99/max
             of both, p99 ratio, the worst write, per-window figures, and the server's
             Upsert latency histogram split the same way (scraped at each window's edges).
             Automatic snapshots are pushed out of the way (--snapshot-entries/-mib huge).
  restart    Loads the base (build_s = wall time of the load), triggers a snapshot, writes
             --tail log entries of --tail-batch points (automatic snapshots off), the last
             one a sentinel point, then kill -9 and restarts, timing from spawn until Status
             answers, until health is SERVING, and until a Get of the sentinel returns its
             value (the log was replayed); then checks sampled tail points. Then (unless
             --no-baseline) snapshots, kill -9 and restarts again: the restart with no tail.
  write-amp  /proc/PID/io write_bytes over the load and over a churn overwriting every id
             once (batches of 100), each divided by the vector bytes upserted (n * dim * 4),
             then over one TriggerSnapshot (divided by the live vector bytes; skip with
             --no-snapshot-phase); also wchar, the data dir size (allocated, by part) and
             the snapshot/log indexes per phase. Server flags are the defaults (automatic
             snapshots included) unless --server-arg says otherwise.
  memory     Loads a dataset, waits for background jobs, reads /proc/PID/status and
             smaps_rollup, and reports them against the raw vector bytes.
  transfer   Three nodes; load, snapshot and purge the leader's log, kill -9 a follower, wipe
             its data dir, restart it and time until it applied the leader's index with a
             snapshot installed, sampling its (and the leader's) VmRSS every 100 ms; reports
             the peak (and the kernel's VmHWM) against the follower's steady RSS after the
             catch-up.

Every JSON record also has `machine`: load average and the share of CPU used by processes
other than this script and its servers while it ran (a shared 2-core box: rerun when high).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

try:
    import grpc
    import freshvec
    from freshvec.v1 import freshvec_pb2 as pb
    from freshvec.v1 import freshvec_pb2_grpc as rpc
except ImportError as e:  # pragma: no cover - environment problem
    sys.exit(f"state_bench: {e}; install the client: pip install numpy -e clients/python")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_GENERATOR = "/work/shared/bench/gen_dataset.py"
COLL = "bench"
HUGE_ENTRIES = 1_000_000_000  # --snapshot-entries that never triggers
HUGE_MIB = 1_000_000  # --snapshot-mib that never triggers
MIB = 1 << 20
UPSERT_LABEL = 'Points/Upsert"'  # freshvec_request_seconds{method="freshvec.v1.Points/Upsert"}


class BenchError(Exception):
    """A failure with a message meant for the user (no traceback)."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Data


def read_vecs(path: str, dtype=np.float32) -> np.ndarray:
    """A TEXMEX .fvecs/.ivecs file as an (n, d) array (copied out of a memory map)."""
    raw = np.memmap(path, dtype=np.int32, mode="r")
    if raw.size == 0:
        raise BenchError(f"{path} is empty")
    d = int(raw[0])
    if d <= 0 or raw.size % (d + 1):
        raise BenchError(f"{path} is not a TEXMEX file (dimension {d}, {raw.size} words)")
    rows = raw.reshape(-1, d + 1)
    return np.ascontiguousarray(rows[:, 1:]).view(dtype)


def load_base(folder: str, limit: int = 0) -> np.ndarray:
    path = os.path.join(folder, "base.fvecs")
    if not os.path.exists(path):
        raise BenchError(f"{path} not found: generate the dataset first (see --help)")
    base = read_vecs(path)
    if limit and limit < len(base):
        base = base[:limit]
    return base


class VectorSource:
    """Fresh vectors shaped like the dataset: a random base vector plus N(0, noise) noise."""

    def __init__(self, base: np.ndarray, rng: np.random.Generator, noise: float = 0.5):
        self.base, self.rng, self.noise = base, rng, noise

    def draw(self, n: int) -> np.ndarray:
        rows = self.base[self.rng.integers(0, len(self.base), n)]
        return (rows + self.rng.normal(0.0, self.noise, rows.shape)).astype(np.float32)


def dataset_folder(name: str) -> str:
    return os.path.join(REPO, "target", "bench-data", f"{name}-clustered")


def ensure_dataset(args) -> str:
    """The TEXMEX folder to use (--data, else the --dataset preset's default folder), made with
    the shared generator when --generate is given and it is missing."""
    folder = args.data or dataset_folder(getattr(args, "dataset", "medium") or "medium")
    if os.path.exists(os.path.join(folder, "base.fvecs")):
        return folder
    preset = getattr(args, "dataset", None) or "medium"
    gen = getattr(args, "generator", DEFAULT_GENERATOR)
    cmd = [sys.executable, gen, "--preset", preset, "--dist", "clustered", "--out", folder]
    if not getattr(args, "generate", False):
        raise BenchError(f"no dataset at {folder}; make it with: {' '.join(cmd)} (or pass --generate)")
    need = {"seed": 10 << 20, "medium": 120 << 20, "large": 600 << 20}.get(preset, 600 << 20)
    os.makedirs(os.path.dirname(folder) or ".", exist_ok=True)
    free = shutil.disk_usage(os.path.dirname(folder) or ".").free
    if free < 4 * need:
        raise BenchError(f"only {free >> 20} MiB free for the {preset} dataset (~{need >> 20} MiB)")
    log(f"generating the {preset} dataset: {' '.join(cmd)}")
    subprocess.run(cmd, check=True)
    return folder


# --------------------------------------------------------------------------------------------
# /proc


def proc_kv(pid: int, name: str) -> dict[str, int]:
    """/proc/PID/{status,io,smaps_rollup} as {key: int} (kB values converted to bytes)."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/{name}") as f:
        for line in f:
            if ":" not in line:
                continue
            k, _, v = line.partition(":")
            parts = v.split()
            if not parts or not parts[0].isdigit():
                continue
            n = int(parts[0])
            if len(parts) > 1 and parts[1] == "kB":
                n *= 1024
            out[k.strip()] = n
    return out


def rss_bytes(pid: int) -> Optional[int]:
    try:
        return proc_kv(pid, "status").get("VmRSS")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def disk_usage(path: str) -> dict[str, Any]:
    """Allocated and apparent bytes under `path`, in all and per entry two levels down."""

    def walk(p: str) -> tuple[int, int, int]:
        alloc = apparent = files = 0
        for root, _dirs, names in os.walk(p):
            for n in names:
                try:
                    st = os.lstat(os.path.join(root, n))
                except FileNotFoundError:
                    continue
                alloc += st.st_blocks * 512
                apparent += st.st_size
                files += 1
        return alloc, apparent, files

    total = walk(path)
    parts: dict[str, int] = {}
    if os.path.isdir(path):
        for top in sorted(os.listdir(path)):
            tp = os.path.join(path, top)
            if os.path.isdir(tp):
                subs = sorted(os.listdir(tp))
                for sub in subs:
                    sp = os.path.join(tp, sub)
                    parts[f"{top}/{sub}"] = walk(sp)[0] if os.path.isdir(sp) else os.lstat(sp).st_blocks * 512
            else:
                parts[top] = os.lstat(tp).st_blocks * 512
    return {"allocated_bytes": total[0], "apparent_bytes": total[1], "files": total[2],
            "allocated_by_part": parts}


class CpuWatch:
    """Share of the machine's CPU used by other processes than us and our children."""

    def __init__(self, pids: Callable[[], list[int]]):
        self.pids = pids
        self.hz = os.sysconf("SC_CLK_TCK")
        self.ours: dict[int, int] = {}
        self.start = self._total()
        self.load_start = os.getloadavg()

    @staticmethod
    def _total() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v[:8]), idle

    def sample(self) -> None:
        """Records our processes' CPU ticks (call before a process exits to count it)."""
        for pid in [os.getpid()] + self.pids():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                self.ours[pid] = int(fields[11]) + int(fields[12])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass

    def result(self) -> dict[str, Any]:
        self.sample()
        total, idle = self._total()
        busy = (total - self.start[0]) - (idle - self.start[1])
        ours = sum(self.ours.values())
        all_ticks = max(1, total - self.start[0])
        return {"loadavg_start": [round(x, 2) for x in self.load_start],
                "loadavg_end": [round(x, 2) for x in os.getloadavg()],
                "cpus": os.cpu_count(),
                "other_cpu_frac": round(max(0, busy - ours) / all_ticks, 3),
                "our_cpu_frac": round(ours / all_ticks, 3)}


# --------------------------------------------------------------------------------------------
# Processes


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Polls `check` until it returns something truthy (returned); BenchError after `timeout`."""
    deadline = time.monotonic() + timeout
    last_err: Optional[BaseException] = None
    while True:
        try:
            v = check()
            if v:
                return v
        except (freshvec.FreshvecError, grpc.RpcError, OSError) as e:
            last_err = e
        if time.monotonic() > deadline:
            extra = f" (last error: {last_err})" if last_err else ""
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}{extra}")
        time.sleep(interval)


@dataclass
class Node:
    id: int
    ip: str
    data_dir: str
    log_path: str
    api: int = 0
    peer: int = 0
    metrics: int = 0
    proc: Optional[subprocess.Popen] = None
    spawned_at: float = 0.0
    _client: Optional[Any] = None
    _cluster: Optional[Any] = None
    _channel: Optional[Any] = None

    def __post_init__(self):
        self.api, self.peer, self.metrics = (free_port(self.ip) for _ in range(3))

    @property
    def addr(self) -> str:
        return f"{self.ip}:{self.api}"

    @property
    def peer_addr(self) -> str:
        return f"{self.ip}:{self.peer}"

    @property
    def pid(self) -> int:
        if not self.proc:
            raise BenchError(f"node {self.id} is not running")
        return self.proc.pid

    def client(self, timeout: float = 30.0) -> "freshvec.Client":
        if self._client is None:
            self._client = freshvec.Client(self.addr, timeout=timeout)
        return self._client

    def cluster(self):
        """The raw Cluster stub (PurgeLog and the full StatusResponse)."""
        if self._cluster is None:
            self._channel = grpc.insecure_channel(self.addr)
            self._cluster = rpc.ClusterStub(self._channel)
        return self._cluster

    def status(self, timeout: float = 2.0):
        """The raw StatusResponse, or None while the node does not answer."""
        try:
            return self.cluster().Status(pb.StatusRequest(), timeout=timeout)
        except grpc.RpcError:
            return None

    def close_clients(self) -> None:
        for c in (self._client, self._channel):
            try:
                if c is not None:
                    c.close()
            except Exception:
                pass
        self._client = self._cluster = self._channel = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


class Cluster:
    """1 or 3 `freshvec serve` processes under one temp dir; a context manager that kills them
    all and deletes the dir."""

    def __init__(self, args, n: int, extra: list[str]):
        self.bin = os.path.abspath(args.bin)
        if not os.access(self.bin, os.X_OK):
            raise BenchError(f"--bin {args.bin} is not an executable")
        self.keep = args.keep
        self.extra = list(extra) + list(args.server_arg or [])
        self.root = tempfile.mkdtemp(prefix="state-bench-", dir=os.environ.get("STATE_BENCH_TMP", "/tmp"))
        self.multi = n > 1
        ips = [f"127.0.0.{10 + i}" for i in range(1, n + 1)] if self.multi else [args.ip]
        self.nodes = [Node(i + 1, ip, os.path.join(self.root, f"node{i + 1}"),
                           os.path.join(self.root, f"node{i + 1}.log")) for i, ip in enumerate(ips)]
        self.pdeathsig = shutil.which("setpriv")
        self.failed = False

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not issubclass(exc_type, (SystemExit, KeyboardInterrupt)):
            self.failed = True
        self.close()

    def peers(self) -> str:
        return ",".join(f"{n.id}={n.peer_addr}" for n in self.nodes)

    def start(self, node: Node) -> None:
        if node.alive():
            raise BenchError(f"node {node.id} already running")
        node.close_clients()
        cmd = [self.bin, "serve", "--node-id", str(node.id), "--listen", node.addr,
               "--peer-listen", node.peer_addr, "--metrics-listen", f"{node.ip}:{node.metrics}",
               "--data-dir", node.data_dir]
        if self.multi:
            cmd += ["--peers", self.peers()]
        cmd += self.extra
        if self.pdeathsig:  # setpriv execs the server: the pid stays the server's
            cmd = [self.pdeathsig, "--pdeathsig", "KILL", "--"] + cmd
        logf = open(node.log_path, "ab")
        env = dict(os.environ, FRESHVEC_LOG=os.environ.get("FRESHVEC_LOG", "info,openraft=warn"))
        node.spawned_at = time.monotonic()
        node.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                     env=env, start_new_session=True)
        logf.close()

    def kill9(self, node: Node) -> None:
        if node.proc is not None:
            if node.proc.poll() is None:
                node.proc.kill()
            try:
                node.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                raise BenchError(f"node {node.id} (pid {node.proc.pid}) did not die after SIGKILL")
        node.proc = None
        node.close_clients()

    def close(self) -> None:
        for n in self.nodes:
            try:
                self.kill9(n)
            except Exception as e:  # keep killing the others
                log(f"cleanup: {e}")
        if self.failed:
            for n in self.nodes:
                log(f"--- node {n.id} log ({n.log_path}), last lines ---\n{n.log_tail()}")
        if self.keep:
            log(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def pids(self) -> list[int]:
        return [n.proc.pid for n in self.nodes if n.alive()]

    def check_alive(self) -> None:
        for n in self.nodes:
            if n.proc is not None and n.proc.poll() is not None:
                raise BenchError(f"node {n.id} exited with {n.proc.returncode}:\n{n.log_tail()}")

    def wait_serving(self, node: Node, timeout: float = 120.0) -> None:
        def ok():
            self.check_alive()
            try:
                return node.client().health() == "SERVING"
            except freshvec.FreshvecError as e:
                if e.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    return False
                raise

        wait_until(ok, timeout, f"node {node.id} to serve")

    def wait_leader(self, timeout: float = 60.0) -> Node:
        """The leader every node names, once it answers as leader."""

        def find():
            self.check_alive()
            sts = [n.status() for n in self.nodes if n.alive()]
            if not sts or any(s is None for s in sts):
                return None
            lid = sts[0].leader_id
            if lid == 0 or any(s.leader_id != lid for s in sts):
                return None
            leader = self.nodes[lid - 1]
            st = leader.status()
            return leader if st is not None and st.role == pb.ROLE_LEADER else None

        return wait_until(find, timeout, "a leader every node agrees on")

    def start_all(self, timeout: float = 120.0) -> Node:
        for n in self.nodes:
            self.start(n)
        leader = self.wait_leader(timeout)
        for n in self.nodes:
            self.wait_serving(n, timeout)
        return leader

    def wait_converged(self, timeout: float = 300.0) -> list:
        """Every node at the same applied index with the same digests."""

        def same():
            self.check_alive()
            sts = [n.status() for n in self.nodes]
            if any(s is None for s in sts):
                return None
            a = sts[0]
            if all(s.applied_index == a.applied_index and list(s.collections) == list(a.collections)
                   for s in sts):
                return sts
            return None

        return wait_until(same, timeout, "the replicas to converge", 0.2)


# --------------------------------------------------------------------------------------------
# Metrics


def scrape(node: Node, timeout: float = 5.0) -> dict[str, Any]:
    """GET /metrics: {"types": {family: type}, "samples": {"name{labels}": value}}."""
    url = f"http://{node.ip}:{node.metrics}/metrics"
    with urllib.request.urlopen(url, timeout=timeout) as r:
        text = r.read().decode()
    types: dict[str, str] = {}
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            types[name] = kind.strip()
        elif line and not line.startswith("#"):
            key, _, val = line.rpartition(" ")
            try:
                samples[key] = float(val)
            except ValueError:
                pass
    return {"types": types, "samples": samples}


def histogram(m: dict[str, Any], family: str, label: str = "") -> dict[str, Any]:
    """One histogram out of a scrape: {"buckets": [(le, cumulative)], "count", "sum"}."""
    buckets = []
    count = total = 0.0
    for key, v in m["samples"].items():
        name, _, labels = key.partition("{")
        labels = labels.rstrip("}")
        if label and label not in labels:
            continue
        if name == f"{family}_bucket":
            le = [p for p in labels.split(",") if p.startswith("le=")][0][4:-1]
            buckets.append((float("inf") if le == "+Inf" else float(le), v))
        elif name == f"{family}_count":
            count = v
        elif name == f"{family}_sum":
            total = v
    buckets.sort()
    return {"buckets": buckets, "count": count, "sum": total}


def hist_sub(a: dict, b: dict) -> dict:
    """a - b (b the earlier scrape)."""
    bb = dict(b["buckets"])
    return {"buckets": [(le, v - bb.get(le, 0.0)) for le, v in a["buckets"]],
            "count": a["count"] - b["count"], "sum": a["sum"] - b["sum"]}


def hist_add(a: Optional[dict], b: dict) -> dict:
    if a is None:
        return b
    aa = dict(a["buckets"])
    return {"buckets": [(le, v + aa.get(le, 0.0)) for le, v in b["buckets"]],
            "count": a["count"] + b["count"], "sum": a["sum"] + b["sum"]}


def hist_summary(h: Optional[dict]) -> Optional[dict]:
    """Count, mean and the bucket upper bounds holding p50/p99 (ms; an upper bound)."""
    if h is None or h["count"] <= 0:
        return None

    def q(p: float) -> Optional[float]:
        need = p * h["count"]
        for le, c in h["buckets"]:
            if c >= need:
                return None if le == float("inf") else round(le * 1000, 3)
        return None

    return {"count": int(h["count"]), "mean_ms": round(h["sum"] / h["count"] * 1000, 3),
            "p50_le_ms": q(0.5), "p99_le_ms": q(0.99),
            "buckets_le_s": [[le if le != float("inf") else "+Inf", int(c)] for le, c in h["buckets"]]}


def interesting_families(m: dict[str, Any]) -> dict[str, Any]:
    """Histogram families and any family naming apply, snapshot, build or install."""
    hists = sorted(n for n, t in m["types"].items() if t == "histogram")
    state = sorted(n for n in m["types"] if any(w in n for w in ("apply", "applied", "snapshot", "build", "install")))
    return {"histograms": hists, "state_families": state,
            "apply_or_snapshot_histograms": [n for n in hists if any(w in n for w in ("apply", "snapshot", "build", "install"))]}


# --------------------------------------------------------------------------------------------
# Workload helpers

RETRY = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


def upsert_retry(client, ids: np.ndarray, vecs: np.ndarray, deadline_s: float = 120.0) -> int:
    delay, deadline = 0.05, time.monotonic() + deadline_s
    while True:
        try:
            return client.upsert(COLL, ids, vecs).index
        except freshvec.FreshvecError as e:
            if e.code not in RETRY or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def create_collection(node: Node, dim: int, shards: int) -> None:
    node.client().create_collection(COLL, dimension=dim, metric="l2", shards=shards)


def bulk_load(node: Node, base: np.ndarray, batch: int, parallel: int) -> float:
    """Upserts ids 0..n-1 in batches, `parallel` in flight; returns the wall seconds."""
    n = len(base)
    client = node.client()
    t0 = time.monotonic()
    starts = range(0, n, batch)
    done = [0]
    lock = threading.Lock()

    def one(s: int) -> None:
        e = min(n, s + batch)
        upsert_retry(client, np.arange(s, e, dtype=np.uint64), base[s:e])
        with lock:
            done[0] += e - s
            if done[0] % (batch * 50) == 0:
                log(f"  loaded {done[0]}/{n} ({done[0] / (time.monotonic() - t0):.0f} vectors/s)")

    with cf.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for f in [pool.submit(one, s) for s in starts]:
            f.result()
    return time.monotonic() - t0


def wait_idle(node: Node, timeout: float = 600.0) -> float:
    """Waits until the collection has no background jobs; returns the seconds waited."""
    t0 = time.monotonic()
    wait_until(lambda: node.client().describe_collection(COLL).pending_jobs == 0, timeout,
               f"node {node.id}'s background jobs to drain", 0.2)
    return time.monotonic() - t0


def load_phase(cl: Cluster, leader: Node, base: np.ndarray, args) -> dict[str, Any]:
    create_collection(leader, base.shape[1], args.shards)
    log(f"loading {len(base)} x {base.shape[1]} in batches of {args.load_batch} ({args.load_parallel} in flight)")
    load_s = bulk_load(leader, base, args.load_batch, args.load_parallel)
    idle_s = wait_idle(leader)
    log(f"  loaded in {load_s:.1f} s (+{idle_s:.1f} s until background jobs drained)")
    return {"n": len(base), "dim": int(base.shape[1]), "load_s": round(load_s, 3),
            "drain_s": round(idle_s, 3), "vectors_per_s": round(len(base) / load_s, 1)}


def lat_stats(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    a = np.asarray(xs) * 1000
    return {"count": len(xs), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "max_ms": round(float(a.max()), 3),
            "mean_ms": round(float(a.mean()), 3)}


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(title: str, rows: list[tuple[str, Any]]) -> None:
    print(f"\n{title}")
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k.ljust(w)}  {fmt(v)}")


def mib(b: Optional[float]) -> Optional[float]:
    return None if b is None else round(b / MIB, 1)


# --------------------------------------------------------------------------------------------
# stall


@dataclass
class Write:
    sched: float
    start: float
    end: float = 0.0
    ok: bool = True
    error: str = ""

    @property
    def lat(self) -> float:
        return self.end - self.start

    @property
    def sched_lat(self) -> float:
        return self.end - self.sched


@dataclass
class Window:
    start: float
    seen: float = 0.0
    rpc_end: float = 0.0
    before_index: int = 0
    applied_at_trigger: int = 0
    snapshot_index: int = 0
    rpc_snapshot_index: int = 0
    rpc_error: str = ""
    server_upsert: Optional[dict] = None


class Writer(threading.Thread):
    """One client thread: a batch of overwrites every 1/rate s, on a fixed schedule."""

    def __init__(self, node: Node, src: VectorSource, n_ids: int, batch: int, rate: float,
                 rng: np.random.Generator, timeout: float):
        super().__init__(daemon=True)
        self.client = freshvec.Client(node.addr, timeout=timeout)
        self.src, self.n_ids, self.batch, self.rate, self.rng = src, n_ids, batch, rate, rng
        self.stop = threading.Event()
        self.writes: list[Write] = []
        self.t0 = 0.0
        self.fatal: Optional[BaseException] = None

    def run(self) -> None:
        try:
            # Requests are prepared ahead of their slot so that the timed part is the RPC.
            self.t0 = time.monotonic()
            i = 0
            while not self.stop.is_set():
                ids = self.rng.choice(self.n_ids, self.batch, replace=False).astype(np.uint64)
                vecs = self.src.draw(self.batch)
                sched = self.t0 + i / self.rate
                now = time.monotonic()
                if sched > now:
                    time.sleep(sched - now)  # deliberate pacing
                w = Write(sched=sched, start=time.monotonic())
                try:
                    self.client.upsert(COLL, ids, vecs)
                except freshvec.FreshvecError as e:
                    w.ok, w.error = False, f"{e.code_name}: {e.message}"[:200]
                w.end = time.monotonic()
                self.writes.append(w)
                i += 1
        except BaseException as e:  # reported by the main thread
            self.fatal = e
        finally:
            self.client.close()


def cmd_stall(args) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    folder = ensure_dataset(args)
    base = load_base(folder, args.n)
    extra = ["--snapshot-entries", str(HUGE_ENTRIES), "--snapshot-mib", str(HUGE_MIB)]
    with Cluster(args, args.nodes, extra) as cl:
        cpu = CpuWatch(cl.pids)
        leader = cl.start_all()
        log(f"{args.nodes} node(s) up, leader {leader.id} at {leader.addr}")
        load = load_phase(cl, leader, base, args)
        if args.nodes > 1:
            cl.wait_converged()
        families = interesting_families(scrape(leader))
        m_begin = scrape(leader)

        writer = Writer(leader, VectorSource(base, np.random.default_rng(args.seed + 1)), len(base),
                        args.write_batch, args.rate, np.random.default_rng(args.seed + 2), args.write_timeout)
        windows: list[Window] = []
        writer.start()
        log(f"write stream: {args.write_batch} points x {args.rate}/s; warm-up {args.warmup} s")
        try:
            time.sleep(args.warmup)  # deliberate: idle writes before the first snapshot
            for k in range(args.snapshots):
                cl.check_alive()
                if writer.fatal:
                    raise writer.fatal
                st = wait_until(leader.status, 10, "the leader's status")
                win = Window(start=0.0, before_index=st.snapshot_index, applied_at_trigger=st.applied_index)
                m0 = scrape(leader)
                result: dict[str, Any] = {}

                def trigger():
                    try:
                        r = leader.cluster().TriggerSnapshot(pb.TriggerSnapshotRequest(), timeout=args.snapshot_timeout)
                        result["index"] = r.snapshot_index
                    except grpc.RpcError as e:
                        result["error"] = f"{e.code().name}: {e.details()}"
                    result["end"] = time.monotonic()

                th = threading.Thread(target=trigger, daemon=True)
                win.start = time.monotonic()
                th.start()

                def seen():
                    s = leader.status(timeout=5)
                    ok = s is not None and s.snapshot_index > win.before_index and s.snapshot_index >= win.applied_at_trigger
                    return s if ok else None

                s = wait_until(seen, args.snapshot_timeout, f"snapshot {k + 1} to show in Status", 0.01)
                win.seen = time.monotonic()
                win.snapshot_index = s.snapshot_index
                th.join(args.snapshot_timeout)
                win.rpc_end = result.get("end", 0.0)
                win.rpc_snapshot_index = result.get("index", 0)
                win.rpc_error = result.get("error", "")
                m1 = scrape(leader)
                win.server_upsert = hist_sub(histogram(m1, "freshvec_request_seconds", UPSERT_LABEL),
                                             histogram(m0, "freshvec_request_seconds", UPSERT_LABEL))
                windows.append(win)
                log(f"  snapshot {k + 1}/{args.snapshots}: index {win.snapshot_index}, "
                    f"{(win.seen - win.start) * 1000:.0f} ms to Status, RPC {(win.rpc_end - win.start) * 1000:.0f} ms")
                time.sleep(args.gap)  # deliberate spacing between snapshots
        finally:
            writer.stop.set()
            writer.join(args.write_timeout + 5)
            cpu.sample()
        if writer.fatal:
            raise writer.fatal
        m_end = scrape(leader)
        machine = cpu.result()

    t0 = writer.t0
    ws = writer.writes
    failed = [w for w in ws if not w.ok]
    ok = [w for w in ws if w.ok]

    def overlaps(w: Write) -> Optional[int]:
        for i, win in enumerate(windows):
            if w.start < win.seen and w.end > win.start:
                return i
        return None

    during = [w for w in ok if overlaps(w) is not None]
    idle = [w for w in ok if overlaps(w) is None]
    idle_s, during_s = lat_stats([w.lat for w in idle]), lat_stats([w.lat for w in during])
    idle_o, during_o = lat_stats([w.sched_lat for w in idle]), lat_stats([w.sched_lat for w in during])
    worst = max(ok, key=lambda w: w.lat) if ok else None
    per_window = []
    for i, win in enumerate(windows):
        mine = [w for w in ok if overlaps(w) == i]
        mx = max(mine, key=lambda w: w.lat) if mine else None
        dur = win.seen - win.start
        per_window.append({
            "start_s": round(win.start - t0, 3), "to_status_ms": round(dur * 1000, 1),
            "rpc_ms": round((win.rpc_end - win.start) * 1000, 1) if win.rpc_end else None,
            "rpc_error": win.rpc_error or None, "snapshot_index": win.snapshot_index,
            "writes": len(mine), "max_write_ms": round(mx.lat * 1000, 1) if mx else None,
            "max_write_started_after_trigger_ms": round((mx.start - win.start) * 1000, 1) if mx else None,
            "max_write_over_window": round(mx.lat / dur, 3) if mx and dur > 0 else None,
            "server_upsert": hist_summary(win.server_upsert)})
    # The server's Upsert histogram: all of the stream, in windows, and the rest.
    h_all = hist_sub(histogram(m_end, "freshvec_request_seconds", UPSERT_LABEL),
                     histogram(m_begin, "freshvec_request_seconds", UPSERT_LABEL))
    h_during = None
    for win in windows:
        h_during = hist_add(h_during, win.server_upsert)
    h_idle = hist_sub(h_all, h_during) if h_during else h_all
    fs = hist_sub(histogram(m_end, "freshvec_journal_fsync_seconds"), histogram(m_begin, "freshvec_journal_fsync_seconds"))
    ratio = (during_s["p99_ms"] / idle_s["p99_ms"]) if during_s["p99_ms"] and idle_s["p99_ms"] else None
    summary = {
        "bench": "stall", "seed": args.seed, "nodes": args.nodes, "rate": args.rate,
        "write_batch": args.write_batch, "snapshots": len(windows), "writes": len(ws), "failed": len(failed),
        "idle": idle_s, "during": during_s,
        "p99_ratio": round(ratio, 2) if ratio else None,
        "idle_sched": idle_o, "during_sched": during_o,
        "worst": None if worst is None else {
            "ms": round(worst.lat * 1000, 1), "at_s": round(worst.start - t0, 3),
            "window": overlaps(worst),
            "window_ms": round((windows[overlaps(worst)].seen - windows[overlaps(worst)].start) * 1000, 1)
            if overlaps(worst) is not None else None},
        "window_ms": lat_stats([w.seen - w.start for w in windows]),
        # Per window: its slowest overlapping write over the window's length (~1: it waited
        # for the whole snapshot).
        "max_write_over_window": [w["max_write_over_window"] for w in per_window],
        "late_writes": sum(1 for w in ws if w.start - w.sched > 1.0 / args.rate),
        "achieved_rate": round(len(ws) / max(1e-9, (ws[-1].end - t0)), 2) if ws else 0,
    }
    if ws and summary["late_writes"] > 0.1 * len(ws):
        summary["warning"] = (f"{summary['late_writes']} of {len(ws)} writes started over one interval late: "
                              "the stream fell behind its schedule (sched-relative figures include the "
                              "backlog); lower --rate")
        log(f"warning: {summary['warning']}")
    detail = {
        "summary": summary, "load": load, "windows": per_window, "machine": machine,
        "server": {"families": families, "upsert_all": hist_summary(h_all),
                   "upsert_during": hist_summary(h_during), "upsert_idle": hist_summary(h_idle),
                   "fsync": hist_summary(fs)},
        "failed_samples": [w.error for w in failed[:5]],
        "writes": [[round(w.sched - t0, 4), round(w.start - t0, 4), round(w.lat * 1000, 3), int(w.ok)] for w in ws],
        "writes_columns": ["sched_s", "start_s", "latency_ms", "ok"],
    }
    rows = [("nodes / rate / batch", f"{args.nodes} / {args.rate}/s / {args.write_batch}"),
            ("writes (failed)", f"{len(ws)} ({len(failed)})"),
            ("idle p50 / p99 / max ms", f"{fmt(idle_s['p50_ms'])} / {fmt(idle_s['p99_ms'])} / {fmt(idle_s['max_ms'])}  (n={idle_s['count']})"),
            ("during p50 / p99 / max ms", f"{fmt(during_s['p50_ms'])} / {fmt(during_s['p99_ms'])} / {fmt(during_s['max_ms'])}  (n={during_s['count']})"),
            ("p99 during / idle", summary["p99_ratio"]),
            ("sched-relative p99 idle / during ms", f"{fmt(idle_o['p99_ms'])} / {fmt(during_o['p99_ms'])}"),
            ("worst write", summary["worst"]),
            ("server Upsert p99 (bucket <=) idle / during ms",
             f"{fmt((hist_summary(h_idle) or {}).get('p99_le_ms'))} / {fmt((hist_summary(h_during) or {}).get('p99_le_ms'))}"),
            ("apply/snapshot histograms in /metrics", families["apply_or_snapshot_histograms"] or "none"),
            ("other CPU share", machine["other_cpu_frac"])]
    for i, w in enumerate(per_window):
        rows.append((f"snapshot {i + 1}: to Status / RPC / max write ms",
                     f"{fmt(w['to_status_ms'])} / {fmt(w['rpc_ms'])} / {fmt(w['max_write_ms'])} ({w['writes']} writes)"))
    table("stall", rows)
    return detail


# --------------------------------------------------------------------------------------------
# restart


def cmd_restart(args) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    base = load_base(ensure_dataset(args), args.n)
    n, dim = base.shape
    extra = ["--snapshot-entries", str(HUGE_ENTRIES), "--snapshot-mib", str(HUGE_MIB)]
    with Cluster(args, 1, extra) as cl:
        cpu = CpuWatch(cl.pids)
        node = cl.start_all()
        load = load_phase(cl, node, base, args)
        snap = node.cluster().TriggerSnapshot(pb.TriggerSnapshotRequest(), timeout=args.snapshot_timeout).snapshot_index
        log(f"snapshot at {snap}; writing a tail of {args.tail} entries x {args.tail_batch} points")

        # Tail ids: a random permutation walked in order, so an id is written once as long as
        # tail x tail_batch <= n; a sample of ids written exactly once is kept for checking.
        if args.tail < 2:
            raise BenchError("--tail must be at least 2 (the last entry is the sentinel)")
        total = (args.tail - 1) * args.tail_batch
        order = np.resize(rng.permutation(n).astype(np.uint64), total)
        counts = np.bincount(order.astype(np.int64), minlength=n)
        once = np.flatnonzero(counts == 1)
        sample = set(rng.choice(once, min(args.check, len(once)), replace=False).tolist()) if len(once) else set()
        expect: dict[int, np.ndarray] = {}
        src = VectorSource(base, np.random.default_rng(args.seed + 1))
        lock = threading.Lock()
        client = node.client()
        t0 = time.monotonic()

        def one(j: int) -> None:
            ids = order[j * args.tail_batch:(j + 1) * args.tail_batch]
            with lock:
                vecs = src.draw(len(ids))
            upsert_retry(client, ids, vecs)
            hit = [k for k, i in enumerate(ids.tolist()) if i in sample]
            if hit:
                with lock:
                    for k in hit:
                        expect[int(ids[k])] = vecs[k].copy()
            if j and j % 5000 == 0:
                log(f"  tail {j}/{args.tail} ({j / (time.monotonic() - t0):.0f} entries/s)")

        with cf.ThreadPoolExecutor(max_workers=args.parallel) as pool:
            for f in [pool.submit(one, j) for j in range(args.tail - 1)]:
                f.result()
        # The sentinel: the last entry, written after every other one was acknowledged.
        sentinel_id = np.asarray([n + 7], dtype=np.uint64)
        sentinel = src.draw(1)
        last_index = upsert_retry(client, sentinel_id, sentinel)
        tail_s = time.monotonic() - t0
        st = node.status()
        entries_after = st.last_log_index - st.snapshot_index
        log(f"  tail written in {tail_s:.1f} s; log {st.last_log_index}, snapshot {st.snapshot_index}: "
            f"{entries_after} entries to replay")
        du_before = disk_usage(node.data_dir)
        cpu.sample()

        def restart(label: str, want_id: np.ndarray, want: np.ndarray) -> dict[str, Any]:
            cl.kill9(node)
            log(f"{label}: killed -9; restarting")
            cl.start(node)
            t_start = node.spawned_at
            marks: dict[str, float] = {}

            def serves():
                cl.check_alive()
                if "status" not in marks and node.status(timeout=1) is not None:
                    marks["status"] = time.monotonic()
                if "status" not in marks:
                    return False
                c = node.client(timeout=5)
                if "serving" not in marks:
                    try:
                        if c.health() == "SERVING":
                            marks["serving"] = time.monotonic()
                    except freshvec.FreshvecError:
                        pass
                try:
                    got = c.get(COLL, want_id, with_vectors=True)
                except freshvec.FreshvecError as e:
                    if e.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND,
                                  grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.DEADLINE_EXCEEDED):
                        return False
                    raise
                if len(got) == 1 and got.vectors is not None and np.allclose(got.vectors[0], want[0]):
                    marks["replayed"] = time.monotonic()
                    return True
                return False

            wait_until(serves, args.restart_timeout, f"{label}: the restarted node to serve the last write", 0.02)
            cpu.sample()
            if "serving" not in marks:
                cl.wait_serving(node)
                marks["serving"] = time.monotonic()
            rel = {k: round(v - t_start, 3) for k, v in marks.items()}
            return {"status_s": rel.get("status"), "serving_s": rel.get("serving"), "replayed_s": rel.get("replayed")}

        r1 = restart("restart with tail", sentinel_id, sentinel)
        # Check the sampled tail points.
        ids = np.asarray(sorted(expect), dtype=np.uint64)
        bad = 0
        for s in range(0, len(ids), 1000):
            got = node.client().get(COLL, ids[s:s + 1000], with_vectors=True)
            gm = {int(i): v for i, v in zip(got.ids, got.vectors if got.vectors is not None else [])}
            bad += sum(1 for i in ids[s:s + 1000].tolist() if i not in gm or not np.allclose(gm[i], expect[i]))
        st2 = node.status()
        base_r = None
        if not args.no_baseline:
            snap2 = node.cluster().TriggerSnapshot(pb.TriggerSnapshotRequest(), timeout=args.snapshot_timeout).snapshot_index
            log(f"baseline: snapshot at {snap2} (no tail)")
            base_r = restart("restart without tail", sentinel_id, sentinel)
            base_r["snapshot_index"] = snap2
        du_after = disk_usage(node.data_dir)
        machine = cpu.result()

    build_s = load["load_s"]
    summary = {
        "bench": "restart", "seed": args.seed, "n": n, "dim": dim,
        "tail_entries": args.tail, "tail_batch": args.tail_batch, "entries_after_snapshot": entries_after,
        "restart_s": r1["replayed_s"], "status_s": r1["status_s"], "serving_s": r1["serving_s"],
        "build_s": build_s,
        "restart_over_build": round(r1["replayed_s"] / build_s, 3) if r1["replayed_s"] else None,
        "restart_no_tail_s": base_r["replayed_s"] if base_r else None,
        "replay_s_est": round(r1["replayed_s"] - base_r["replayed_s"], 3) if base_r else None,
        "checked": len(ids), "mismatched": bad,
    }
    detail = {"summary": summary, "load": load, "tail_s": round(tail_s, 3), "snapshot_index": snap,
              "last_write_index": last_index, "status_after_restart": {
                  "applied_index": st2.applied_index, "snapshot_index": st2.snapshot_index,
                  "last_log_index": st2.last_log_index},
              "restart": r1, "restart_no_tail": base_r, "disk_before_kill": du_before,
              "disk_end": du_after, "machine": machine}
    table("restart", [
        ("vectors loaded / build_s", f"{n:,} / {build_s:.2f} s"),
        ("entries after snapshot", entries_after),
        ("restart: Status answers s", r1["status_s"]), ("restart: SERVING s", r1["serving_s"]),
        ("restart: last write readable s", r1["replayed_s"]),
        ("restart / build", summary["restart_over_build"]),
        ("restart without tail s", summary["restart_no_tail_s"]),
        ("tail points checked / mismatched", f"{len(ids)} / {bad}"),
        ("data dir before kill (MiB)", mib(du_before["allocated_bytes"])),
        ("other CPU share", machine["other_cpu_frac"])])
    return detail


# --------------------------------------------------------------------------------------------
# write-amp


def cmd_write_amp(args) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    base = load_base(ensure_dataset(args), args.n)
    n, dim = base.shape
    vec_bytes = n * dim * 4
    with Cluster(args, 1, []) as cl:
        cpu = CpuWatch(cl.pids)
        node = cl.start_all()
        pid = node.pid

        def snap() -> dict[str, Any]:
            io = proc_kv(pid, "io")
            st = node.status()
            return {"io": io, "t": time.monotonic(), "snapshot_index": st.snapshot_index,
                    "last_log_index": st.last_log_index, "purged_index": st.purged_index}

        s0 = snap()
        load = load_phase(cl, node, base, args)
        s1 = snap()
        du_load = disk_usage(node.data_dir)
        log(f"churn: every id once in batches of {args.write_batch} ({args.parallel} in flight)")
        perm = rng.permutation(n).astype(np.uint64)
        src = VectorSource(base, np.random.default_rng(args.seed + 1))
        lock = threading.Lock()
        client = node.client()
        t0 = time.monotonic()

        def one(s: int) -> None:
            ids = perm[s:s + args.write_batch]
            with lock:
                vecs = src.draw(len(ids))
            upsert_retry(client, ids, vecs)

        with cf.ThreadPoolExecutor(max_workers=args.parallel) as pool:
            for f in [pool.submit(one, s) for s in range(0, n, args.write_batch)]:
                f.result()
        churn_s = time.monotonic() - t0
        drain_s = wait_idle(node)
        s2 = snap()
        du_churn = disk_usage(node.data_dir)
        s3 = None
        if not args.no_snapshot_phase:
            log("snapshot phase: Cluster/TriggerSnapshot")
            node.cluster().TriggerSnapshot(pb.TriggerSnapshotRequest(), timeout=args.snapshot_timeout)
            s3 = snap()
        du_end = disk_usage(node.data_dir)
        machine = cpu.result()

    def phase(a, b, payload: int) -> dict[str, Any]:
        d = {k: b["io"].get(k, 0) - a["io"].get(k, 0) for k in ("write_bytes", "wchar", "cancelled_write_bytes", "read_bytes", "syscw")}
        return {**d, "vector_bytes": payload,
                "write_amp": round(d["write_bytes"] / payload, 3),
                "wchar_amp": round(d["wchar"] / payload, 3),
                "snapshots_taken": b["snapshot_index"] != a["snapshot_index"],
                "log_entries": b["last_log_index"] - a["last_log_index"]}

    load_p, churn_p = phase(s0, s1, vec_bytes), phase(s1, s2, vec_bytes)
    snap_p = phase(s2, s3, vec_bytes) if s3 else None
    summary = {"bench": "write-amp", "seed": args.seed, "n": n, "dim": dim, "vector_bytes": vec_bytes,
               "load_write_amp": load_p["write_amp"], "churn_write_amp": churn_p["write_amp"],
               "total_write_amp": round((load_p["write_bytes"] + churn_p["write_bytes"]) / (2 * vec_bytes), 3),
               "load_write_mib": mib(load_p["write_bytes"]), "churn_write_mib": mib(churn_p["write_bytes"]),
               "snapshot_write_mib": mib(snap_p["write_bytes"]) if snap_p else None,
               "snapshot_write_over_live_vectors": snap_p["write_amp"] if snap_p else None,
               "disk_after_churn_mib": mib(du_churn["allocated_bytes"]),
               "disk_end_mib": mib(du_end["allocated_bytes"]),
               "disk_end_over_vectors": round(du_end["allocated_bytes"] / vec_bytes, 3)}
    detail = {"summary": summary, "load": load, "load_phase": load_p, "churn_phase": churn_p,
              "snapshot_phase": snap_p,
              "churn_s": round(churn_s, 3), "churn_drain_s": round(drain_s, 3),
              "indexes": {"start": {k: s0[k] for k in ("snapshot_index", "last_log_index", "purged_index")},
                          "after_load": {k: s1[k] for k in ("snapshot_index", "last_log_index", "purged_index")},
                          "after_churn": {k: s2[k] for k in ("snapshot_index", "last_log_index", "purged_index")},
                          "after_snapshot": {k: s3[k] for k in ("snapshot_index", "last_log_index", "purged_index")} if s3 else None},
              "disk_after_load": du_load, "disk_after_churn": du_churn, "disk_end": du_end, "machine": machine}
    rows = [("vectors / vector MiB", f"{n:,} / {mib(vec_bytes)}"),
            ("load: write MiB / amp", f"{mib(load_p['write_bytes'])} / {load_p['write_amp']}"),
            ("load: wchar amp", load_p["wchar_amp"]),
            ("churn: write MiB / amp", f"{mib(churn_p['write_bytes'])} / {churn_p['write_amp']}"),
            ("churn: wchar amp", churn_p["wchar_amp"]),
            ("churn seconds", round(churn_s, 2)),
            ("snapshot during load / churn", f"{load_p['snapshots_taken']} / {churn_p['snapshots_taken']}"),
            ("snapshot phase: write MiB (x live vector bytes)",
             f"{mib(snap_p['write_bytes'])} ({snap_p['write_amp']})" if snap_p else "skipped"),
            ("data dir after load / churn / end MiB",
             f"{mib(du_load['allocated_bytes'])} / {mib(du_churn['allocated_bytes'])} / {mib(du_end['allocated_bytes'])}")]
    rows += [(f"  {k}", mib(v)) for k, v in du_end["allocated_by_part"].items()]
    rows.append(("other CPU share", machine["other_cpu_frac"]))
    table("write-amp", rows)
    return detail


# --------------------------------------------------------------------------------------------
# memory


MEM_KEYS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "VmSize", "VmData")
ROLLUP_KEYS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Shared_Clean", "Private_Clean", "Private_Dirty",
               "Anonymous", "Referenced")


def cmd_memory(args) -> dict[str, Any]:
    base = load_base(ensure_dataset(args), args.n)
    n, dim = base.shape
    raw = n * dim * 4
    with Cluster(args, 1, []) as cl:
        cpu = CpuWatch(cl.pids)
        node = cl.start_all()
        empty = proc_kv(node.pid, "status")
        load = load_phase(cl, node, base, args)
        del base
        st = proc_kv(node.pid, "status")
        roll = proc_kv(node.pid, "smaps_rollup")
        info = node.client().describe_collection(COLL)
        disk = disk_usage(node.data_dir)
        machine = cpu.result()
    status = {k: st.get(k) for k in MEM_KEYS}
    rollup = {k: roll.get(k) for k in ROLLUP_KEYS}
    summary = {"bench": "memory", "seed": args.seed, "dataset": os.path.basename(os.path.normpath(args.data or dataset_folder(args.dataset))),
               "n": n, "dim": dim, "raw_vector_mib": mib(raw),
               **{f"{k}_mib": mib(v) for k, v in status.items() if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile")},
               "rss_over_raw": round(status["VmRSS"] / raw, 3),
               "anon_over_raw": round(status["RssAnon"] / raw, 3),
               "file_over_raw": round(status["RssFile"] / raw, 3),
               "hwm_over_raw": round(status["VmHWM"] / raw, 3),
               "index_memory_bytes_over_raw": round(info.memory_bytes / raw, 3)}
    detail = {"summary": summary, "load": load, "status": status, "smaps_rollup": rollup,
              "empty_server_rss": empty.get("VmRSS"), "index_memory_bytes": info.memory_bytes,
              "postings": info.postings, "disk": disk, "machine": machine}
    rows = [("vectors / raw MiB", f"{n:,} x {dim} / {mib(raw)}")]
    rows += [(f"{k} MiB (x raw)", f"{mib(v)} ({v / raw:.2f}x)") for k, v in status.items() if v is not None]
    rows += [(f"smaps {k} MiB", mib(v)) for k, v in rollup.items() if v is not None]
    rows += [("Describe memory_bytes MiB", mib(info.memory_bytes)), ("empty server RSS MiB", mib(empty.get("VmRSS"))),
             ("other CPU share", machine["other_cpu_frac"])]
    table("memory", rows)
    return detail


# --------------------------------------------------------------------------------------------
# transfer


class RssSampler(threading.Thread):
    def __init__(self, pids: dict[str, int], interval: float):
        super().__init__(daemon=True)
        self.pids, self.interval = pids, interval
        self.samples: list[tuple[float, dict[str, Optional[int]]]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), {k: rss_bytes(p) for k, p in self.pids.items()}))
            self.stop.wait(self.interval)  # the sampling interval


def cmd_transfer(args) -> dict[str, Any]:
    base = load_base(ensure_dataset(args), args.n)
    n, dim = base.shape
    extra = ["--snapshot-entries", str(HUGE_ENTRIES), "--snapshot-mib", str(HUGE_MIB)]
    with Cluster(args, 3, extra) as cl:
        cpu = CpuWatch(cl.pids)
        leader = cl.start_all()
        log(f"3 nodes up, leader {leader.id}")
        load = load_phase(cl, leader, base, args)
        del base
        cl.wait_converged()
        for nd in cl.nodes:
            wait_idle(nd)
        snap = leader.cluster().TriggerSnapshot(pb.TriggerSnapshotRequest(), timeout=args.snapshot_timeout).snapshot_index
        purged = leader.cluster().PurgeLog(pb.PurgeLogRequest(upto=0), timeout=60).purged_index
        lst = leader.status()
        log(f"leader snapshot {snap}, purged to {purged}, applied {lst.applied_index}")
        if purged < snap:
            raise BenchError(f"the leader purged only to {purged}, its snapshot is at {snap}")
        follower = max((nd for nd in cl.nodes if nd.id != leader.id), key=lambda nd: nd.id)
        rss_before = proc_kv(follower.pid, "status")
        target = lst.applied_index
        cpu.sample()
        cl.kill9(follower)
        shutil.rmtree(follower.data_dir)
        log(f"follower {follower.id}: killed -9, data dir wiped; restarting")
        cl.start(follower)
        t_start = follower.spawned_at
        sampler = RssSampler({"follower": follower.pid, "leader": leader.pid}, args.sample_ms / 1000)
        sampler.start()
        marks: dict[str, float] = {}
        try:
            def caught():
                cl.check_alive()
                s = follower.status(timeout=2)
                if s is None:
                    return None
                now = time.monotonic()
                marks.setdefault("status", now)
                if s.snapshot_transfers_in_progress > 0:
                    marks.setdefault("transfer_seen", now)
                if s.snapshots_installed >= 1:
                    marks.setdefault("installed_seen", now)
                return s if s.applied_index >= target and s.snapshots_installed >= 1 else None

            fst = wait_until(caught, args.transfer_timeout, f"follower {follower.id} to install the snapshot and reach {target}", 0.05)
            marks["caught_up"] = time.monotonic()
            cl.wait_serving(follower)
            marks["serving"] = time.monotonic()
            cl.wait_converged(120)
            wait_idle(follower)
            marks["settle_from"] = time.monotonic()
            time.sleep(args.settle)  # deliberate: the steady-state RSS samples
        finally:
            sampler.stop.set()
            sampler.join(5)
            cpu.sample()
        hwm = proc_kv(follower.pid, "status")
        leader_mem = proc_kv(leader.pid, "status")
        machine = cpu.result()

    def series(who: str, t_from: float, t_to: float) -> list[int]:
        return [s[who] for t, s in sampler.samples if t_from <= t <= t_to and s.get(who)]

    during = series("follower", t_start, marks["caught_up"])
    steady = series("follower", marks["settle_from"], float("inf"))
    leader_during = series("leader", t_start, marks["caught_up"])
    peak = max(during) if during else None
    steady_rss = int(np.median(steady)) if steady else None
    rel = {k: round(v - t_start, 3) for k, v in marks.items()}
    summary = {
        "bench": "transfer", "seed": args.seed, "n": n, "dim": dim, "snapshot_index": snap,
        "catch_up_s": rel["caught_up"], "status_s": rel.get("status"), "serving_s": rel["serving"],
        "last_snapshot_install_ms": fst.last_snapshot_install_ms, "snapshots_installed": fst.snapshots_installed,
        "follower_peak_rss_mib": mib(peak), "follower_steady_rss_mib": mib(steady_rss),
        "peak_over_steady": round(peak / steady_rss, 3) if peak and steady_rss else None,
        "follower_vmhwm_mib": mib(hwm.get("VmHWM")),
        "vmhwm_over_steady": round(hwm["VmHWM"] / steady_rss, 3) if steady_rss else None,
        "follower_rss_before_kill_mib": mib(rss_before.get("VmRSS")),
        "leader_peak_rss_mib": mib(max(leader_during) if leader_during else None),
        "leader_rss_before_mib": mib(leader_during[0] if leader_during else None),
    }
    detail = {"summary": summary, "load": load, "marks_s": rel, "target_index": target, "purged_index": purged,
              "samples_ms": args.sample_ms, "leader_vmhwm": leader_mem.get("VmHWM"),
              "rss_series": [[round(t - t_start, 2), s.get("follower"), s.get("leader")] for t, s in sampler.samples],
              "rss_series_columns": ["t_s", "follower_rss", "leader_rss"], "machine": machine}
    table("transfer", [
        ("vectors", f"{n:,} x {dim}"), ("snapshot index / purged", f"{snap} / {purged}"),
        ("follower: Status answers s", rel.get("status")),
        ("follower: transfer seen / installed seen s", f"{fmt(rel.get('transfer_seen'))} / {fmt(rel.get('installed_seen'))}"),
        ("follower: caught up s", rel["caught_up"]),
        ("last_snapshot_install_ms", fst.last_snapshot_install_ms),
        ("follower RSS peak / steady MiB", f"{mib(peak)} / {mib(steady_rss)}"),
        ("peak / steady", summary["peak_over_steady"]),
        ("follower VmHWM MiB (x steady)", f"{mib(hwm.get('VmHWM'))} ({fmt(summary['vmhwm_over_steady'])})"),
        ("follower RSS before kill MiB", summary["follower_rss_before_kill_mib"]),
        ("leader RSS before / peak MiB", f"{summary['leader_rss_before_mib']} / {summary['leader_peak_rss_mib']}"),
        ("other CPU share", machine["other_cpu_frac"])])
    return detail


# --------------------------------------------------------------------------------------------
# CLI


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p: argparse.ArgumentParser, nodes: bool = False) -> None:
        p.add_argument("--bin", required=True, help="the freshvec binary to run")
        p.add_argument("--data", help="TEXMEX folder (default target/bench-data/<dataset>-clustered)")
        p.add_argument("--dataset", default="medium", choices=["seed", "medium", "large"],
                       help="preset naming the default --data folder (and what --generate makes)")
        p.add_argument("--generate", action="store_true", help="generate the dataset when missing")
        p.add_argument("--generator", default=DEFAULT_GENERATOR, help="the dataset generator script")
        p.add_argument("--n", type=int, default=0, help="load only the first N base vectors (0: all)")
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--out", help="write the full JSON record here")
        p.add_argument("--shards", type=int, default=1)
        p.add_argument("--load-batch", type=int, default=1000)
        p.add_argument("--load-parallel", type=int, default=2)
        p.add_argument("--ip", default="127.0.0.1", help="single-node address (three nodes use 127.0.0.11-13)")
        p.add_argument("--server-arg", action="append", default=[],
                       help="extra `serve` argument, repeatable (use --server-arg=--flag=value)")
        p.add_argument("--snapshot-timeout", type=float, default=300.0)
        p.add_argument("--keep", action="store_true", help="keep the temp dir and server logs")
        p.add_argument("--nice", type=int, default=10, help="run at least this nice (servers inherit it)")
        if nodes:
            p.add_argument("--nodes", type=int, default=1, choices=[1, 3])

    p = sub.add_parser("stall", help="write latency while snapshots are taken")
    common(p, nodes=True)
    p.add_argument("--rate", type=float, default=50.0, help="write batches per second")
    p.add_argument("--write-batch", type=int, default=100)
    p.add_argument("--snapshots", type=int, default=5)
    p.add_argument("--gap", type=float, default=4.0, help="seconds between a snapshot's end and the next trigger")
    p.add_argument("--warmup", type=float, default=4.0, help="idle stream seconds before the first snapshot")
    p.add_argument("--write-timeout", type=float, default=120.0)

    p = sub.add_parser("restart", help="restart time with a log tail after the snapshot")
    common(p)
    p.add_argument("--tail", type=int, default=20000, help="log entries written after the snapshot")
    p.add_argument("--tail-batch", type=int, default=10, help="points per tail entry")
    p.add_argument("--parallel", type=int, default=4, help="tail writes in flight")
    p.add_argument("--check", type=int, default=500, help="tail points checked after the restart")
    p.add_argument("--restart-timeout", type=float, default=600.0)
    p.add_argument("--no-baseline", action="store_true", help="skip the restart without tail")

    p = sub.add_parser("write-amp", help="bytes written per vector byte upserted")
    common(p)
    p.add_argument("--write-batch", type=int, default=100)
    p.add_argument("--parallel", type=int, default=1, help="churn writes in flight")
    p.add_argument("--no-snapshot-phase", action="store_true",
                   help="skip the final TriggerSnapshot phase (its bytes are reported apart)")

    p = sub.add_parser("memory", help="RSS against the raw vector bytes")
    common(p)

    p = sub.add_parser("transfer", help="snapshot install on a wiped follower")
    common(p)
    p.add_argument("--sample-ms", type=float, default=100.0)
    p.add_argument("--settle", type=float, default=5.0, help="seconds of steady-state RSS after the catch-up")
    p.add_argument("--transfer-timeout", type=float, default=600.0)
    return ap


COMMANDS = {"stall": cmd_stall, "restart": cmd_restart, "write-amp": cmd_write_amp,
            "memory": cmd_memory, "transfer": cmd_transfer}


def main(argv: Optional[list[str]] = None) -> int:
    args = parser().parse_args(argv)
    cur = os.nice(0)
    if args.nice > cur:
        os.nice(args.nice - cur)

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    # Explicit, so that a run started in the background (SIGINT ignored) still cleans up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    log(f"{args.cmd}: seed {args.seed}, bin {args.bin}, nice {os.nice(0)}")
    started = time.time()
    try:
        detail = COMMANDS[args.cmd](args)
    except BenchError as e:
        log(f"error: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; servers killed, temp dirs removed")
        return 130
    detail["argv"] = sys.argv[1:]
    detail["binary"] = os.path.abspath(args.bin)
    detail["started"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started))
    detail["wall_s"] = round(time.time() - started, 1)
    print("RESULT " + json.dumps(detail["summary"], separators=(",", ":")), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(detail, f, indent=1)
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
