"""The benchmarks run: each one, with tiny counts, exits 0 and prints its `name=value` line last.

A test of the scripts (they start, drive Ava's real processes, check their own results and report), not of speed.
They use AVA_TEST_DATABASE_URL (a temporary database each) and AVA_TEST_REDIS_URL, like the other tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SMOKE_RUNS = {
    "postprocess": (["--runs", "2", "--warmup", "1"], "postprocess_ratio"),
    "photo_job": (["--jobs", "2", "--warmup", "1"], "photo_job_overhead_ratio"),
    "ingest": (["--requests", "20", "--users", "5", "--concurrency", "4"], "ingest_ratio"),
    "turn": (
        [
            "--overhead-turns",
            "3",
            "--warmup",
            "1",
            "--users",
            "2",
            "--turns-per-user",
            "2",
            "--rounds",
            "1",
            "--floor-rounds",
            "5",
        ],
        "turn_overhead_p50_ms",
    ),
    "memory": (["--turns", "6", "--photos", "1", "--users", "2", "--batch", "3"], "peak_rss_mb"),
    "memory --all-services": (
        ["--all-services", "--turns", "6", "--photos", "1", "--users", "2", "--batch", "3"],
        "peak_rss_mb",
    ),
}


@pytest.mark.parametrize("name", sorted(SMOKE_RUNS))
def test_benchmark_runs_and_ends_with_its_figure(name: str) -> None:
    """`python -m bench.<name>` with tiny counts exits 0 and its last line is `<figure>=<number>`."""
    args, figure = SMOKE_RUNS[name]
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name.split()[0]}", *args],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=110,  # under pytest-timeout's 120 s
    )
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(rf"{figure}=\d+(\.\d+)?", last), done.stdout
