"""CPU-bound stage work moves from threads to one process per core once a job is large enough, with
the same results."""
import os

from conftest import make_config

from tasks.build_shards import build_shards
from tasks.data import parallel
from tasks.data.shards import read_shard_index
from tasks.encode_labels import encode_labels
from tasks.ingest import ingest
from tasks.store import LocalStore


def test_the_cpu_pool_moves_to_worker_processes_past_the_threshold(monkeypatch):
    monkeypatch.setattr(parallel, "PROCESSES_FROM", 3)
    with parallel.CpuPool() as pool:
        pids = [pool.submit(os.getpid).result() for _ in range(6)]
    assert pids[:3] == [os.getpid()] * 3
    assert all(pid != os.getpid() for pid in pids[3:])


def test_ingest_and_build_shards_give_the_same_results_on_processes(tiny_folder, tmp_path, monkeypatch):
    def run(root, processes_from):
        monkeypatch.setattr(parallel, "PROCESSES_FROM", processes_from)
        store = LocalStore(root)
        cfg = make_config(store, source=str(tiny_folder))
        ingested = ingest(cfg, store)
        encode_labels(cfg, store)
        built = build_shards(cfg, store)
        return ingested, read_shard_index(store, built["cache_key"])

    threads, processes = run(tmp_path / "threads", 10_000), run(tmp_path / "processes", 0)
    assert threads[0]["data_version"] == processes[0]["data_version"]
    assert threads[0]["stored"] == processes[0]["stored"] == 48
    assert threads[1]["files"] == processes[1]["files"]  # shard files are named by content: same bytes
