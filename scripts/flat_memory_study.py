"""Peak memory and time of studies of increasing size: is host memory flat in the number of datasets?

Runs each study in its own subprocess (a fresh process, so its peak RSS is its own) with the CLI's
CPU layout (one XLA device per core), the tutorial model and short settings, and writes one JSON:

* per size: wall time, seconds per dataset, peak RSS (``getrusage``) of the child, the largest RSS
  seen in the first and in the second half of the chunks (sampled every 0.5 s: flat memory means
  they agree), the run record's timings and peak memory per dataset;
* at one size, the same study with the chunk pipeline off (``overlap=False``) and on, in turn.

Example (the numbers in the README)::

    .venv/bin/python scripts/flat_memory_study.py --sizes 1000 10000 100000 --overlap-size 2000 \\
        --out scripts/results/flat_memory_cpu.json

(``--merge`` adds sizes to an existing JSON, e.g. the largest one run on its own.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys, threading, time
args = json.loads(sys.argv[1])
from bayeslin_jax.engine import NutsConfig
from bayeslin_jax.core.priors import tutorial_spec
from bayeslin_jax.workflows.studies import run as study
from bayeslin_jax.workflows import store

PAGE = os.sysconf("SC_PAGE_SIZE")
samples = []  # (unix time, rss bytes)
stop = threading.Event()

def sample_rss():
    while not stop.is_set():
        with open("/proc/self/statm") as f:
            samples.append((time.time(), int(f.read().split()[1]) * PAGE))
        stop.wait(0.5)

threading.Thread(target=sample_rss, daemon=True).start()
nuts = NutsConfig(num_warmup=args["warmup"], num_draws=args["draws"], num_chains=args["chains"])
config = study.StudyConfig(num_datasets=args["datasets"], seed=0, nuts=nuts, simulator="tutorial",
                           chunk_size=args["chunk_size"])
t0 = time.perf_counter()
ds = study.run_study(args["path"], tutorial_spec(), config, progress=False, overlap=args["overlap"])
wall = time.perf_counter() - t0
stop.set()
log = store.chunk_log(args["path"])
finished = log["chunk_finished_at"].values
mid = finished[len(finished) // 2]
first = [rss for t, rss in samples if t <= mid]
second = [rss for t, rss in samples if t > mid]
record = ds.attrs["runs"][-1]
import resource
print(json.dumps({
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # KiB on Linux; the whole process
    "wall_s": wall,
    "datasets": int(ds.sizes["dataset"]),
    "chunks": int(len(finished)),
    "max_rss_first_half_bytes": max(first, default=None),
    "max_rss_second_half_bytes": max(second, default=None),
    "record": record,
}))
"""


def run_one(datasets: int, overlap: bool, settings: argparse.Namespace, workdir: Path) -> dict:
    """One study in a fresh subprocess; returns its measurements (the child's own peak RSS at its end)."""
    path = workdir / f"study-{datasets}-{'on' if overlap else 'off'}.zarr"
    shutil.rmtree(path, ignore_errors=True)
    child_args = {"datasets": datasets, "overlap": overlap, "path": str(path), "warmup": settings.warmup,
                  "draws": settings.draws, "chains": settings.chains, "chunk_size": settings.chunk_size}
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={settings.devices}")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(child_args)], env=env, capture_output=True,
                         text=True, check=False)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"error: study of {datasets} datasets failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    shutil.rmtree(path, ignore_errors=True)
    return {"datasets": datasets, "overlap": overlap, "process_wall_s": wall,
            "s_per_dataset": result["wall_s"] / datasets, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--overlap-size", type=int, default=2000, help="size run with the pipeline off and on")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--chunk-size", type=int, default=None, help="default: the study's own")
    parser.add_argument("--devices", type=int, default=os.cpu_count() or 1, help="XLA CPU devices (default cores)")
    parser.add_argument("--out", default=str(ROOT / "scripts" / "results" / "flat_memory_cpu.json"))
    parser.add_argument("--merge", action="store_true",
                        help="keep the sizes (and overlap runs) of an existing --out that this call does not rerun")
    parser.add_argument("--workdir", default=None, help="where the stores go (default a temporary folder)")
    settings = parser.parse_args(argv)
    workdir = Path(settings.workdir or tempfile.mkdtemp(prefix="flat-memory-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    overlap_runs = [] if not settings.overlap_size else [
        run_one(settings.overlap_size, overlap, settings, workdir) for overlap in (False, True)
    ]
    out = Path(settings.out)
    earlier = json.loads(out.read_text()) if settings.merge and out.is_file() else {}
    new = {n: run_one(n, True, settings, workdir) for n in sorted(settings.sizes)}
    kept = {r["datasets"]: r for r in earlier.get("sizes", []) if r["datasets"] not in new}
    sizes = [r for _, r in sorted({**kept, **new}.items())]
    peaks = [r["peak_rss_bytes"] for r in sizes]
    command = " ".join(["scripts/flat_memory_study.py", *(argv if argv is not None else sys.argv[1:])])
    summary = {
        "command": [*earlier.get("command", []), command] if isinstance(earlier.get("command"), list) else [command],
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "note": "2-core machine shared with other jobs: times are disturbed, ratios within one run"},
        "settings": {"model": "tutorial", "simulator": "tutorial", "chains": settings.chains,
                     "warmup": settings.warmup, "draws": settings.draws, "devices": settings.devices},
        "started": started,
        "sizes": sizes,
        "peak_rss_ratio_largest_to_smallest": peaks[-1] / peaks[0],
        "overlap": earlier.get("overlap") if not overlap_runs and earlier.get("overlap") else {
            "datasets": settings.overlap_size,
            "off_wall_s": overlap_runs[0]["wall_s"] if overlap_runs else None,
            "on_wall_s": overlap_runs[1]["wall_s"] if overlap_runs else None,
            "speedup": overlap_runs[0]["wall_s"] / overlap_runs[1]["wall_s"] if overlap_runs else None,
            "runs": overlap_runs,
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    for r in sizes:
        print(f"{r['datasets']:>7} datasets: {r['wall_s']:8.1f} s, {1e3 * r['s_per_dataset']:6.2f} ms/dataset, "
              f"peak RSS {r['peak_rss_bytes'] / 2**20:7.1f} MiB")
    if summary["overlap"].get("runs"):
        o = summary["overlap"]
        print(f"overlap at {o['datasets']} datasets: off {o['off_wall_s']:.1f} s, on {o['on_wall_s']:.1f} s "
              f"({o['speedup']:.2f}x)")
    print(f"wrote {settings.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
