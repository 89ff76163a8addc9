"""Progress lines of long stages: at most one per interval, with done / total, rate and time left."""
import logging

from conftest import make_config, write_synthetic

from tasks.build_shards import build_shards
from tasks.encode_labels import encode_labels
from tasks.ingest import ingest
from tasks.reporting import progress
from tasks.reporting.progress import Progress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_every_interval_with_rate_and_time_left(caplog):
    clock = Clock()
    counter = Progress("encoding", total=100, every=10, clock=clock, logger=logging.getLogger("test"))
    with caplog.at_level(logging.INFO, logger="test"):
        for _ in range(20):
            clock.now += 0.5  # 2 items a second
            counter.step()
    assert [r.getMessage() for r in caplog.records] == ["encoding: 20 / 100 (20%), 2.0/s, 0m40s left"]
    assert Progress("reading", clock=clock).line() == "reading: 0 done, 0.0/s"


def test_without_a_total_it_says_how_many_and_how_fast():
    clock = Clock()
    counter = Progress("reading", clock=clock)
    for _ in counter.track(range(30)):
        clock.now += 0.1
    assert counter.line() == "reading: 30 done, 10.0/s"


def test_ingest_and_build_shards_log_progress_on_the_way(tmp_path, local_store, monkeypatch, caplog):
    monkeypatch.setattr(progress, "EVERY", 0.0)  # a line per item, so tiny data shows them
    folder = tmp_path / "images"
    write_synthetic(folder, "synthetic://?count=12&length=4&seed=2")
    cfg = make_config(local_store, source=str(folder))
    with caplog.at_level(logging.INFO):
        ingest(cfg, local_store)
        encode_labels(cfg, local_store)
        build_shards(cfg, local_store)
    lines = [r.getMessage() for r in caplog.records]
    assert "ingest: images checked: 12 done" in " ".join(lines)
    assert any(line.startswith("build_shards: images encoded: 12 / 12 (100%)") for line in lines), lines
