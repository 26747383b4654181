"""The SBC diagnostics gate on a user's hierarchical model: how many simulations each check gates, and the verdicts.

The varying-intercept model of ``scripts/user_models/varying_intercept.py`` (J = 8 groups, 40 points,
non-centred) is SBC'd with the engine's NUTS at ``target_accept`` 0.8 and 0.95 (4 chains x 1000 + 1000);
the stored per-simulation R-hat, ESS and divergences are then re-gated under several gate settings
(R-hat threshold, divergences allowed), and each is summarised: share gated by each check, verdict.
Results: ``scripts/results/sbc_gate_hierarchical.json`` (the README's gate table).

Run: ``.venv/bin/python scripts/sbc_gate_table.py [--num 200]`` (about 15 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "user_models"))
OUT = ROOT / "scripts" / "results" / "sbc_gate_hierarchical.json"
GATES = [(1.01, 0), (1.01, 10), (1.02, 0), (1.02, 10), (1.05, 50)]  # (R-hat max, divergences allowed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=200, help="simulations per target_accept")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from varying_intercept import MODEL, NUM_POINTS

    from bayeslin_jax.engine import NutsConfig
    from bayeslin_jax.workflows.sbc import run as sbc
    from bayeslin_jax.workflows.sbc import stats as sbc_stats

    out = {"command": " ".join(["python", *sys.argv]), "machine": platform.platform(), "cores": os.cpu_count(),
           "load_average_start": os.getloadavg(), "num_simulations": args.num, "rows": []}
    for target in (0.8, 0.95):
        config = sbc.SbcConfig(num_points=NUM_POINTS, nuts=NutsConfig(target_accept=target))
        start = time.perf_counter()
        ds = sbc.run_sbc(args.num, seed=args.seed, sim_spec=MODEL, config=config, chunk_size=50)
        seconds = time.perf_counter() - start
        meta = json.loads(ds.attrs["meta"])
        for rhat_max, max_div in GATES:
            ess_min = np.minimum(ds["ess_bulk"].values, ds["ess_tail"].values).min(-1)
            gate_ok = ((ds["rhat"].values.max(-1) <= rhat_max) & (ess_min >= config.num_ranks)
                       & (ds["divergences"].values <= max_div))
            regated = ds.assign(gate_ok=("dataset", gate_ok))
            meta["config"].update(rhat_max=rhat_max, max_divergences=max_div)
            regated.attrs["meta"] = json.dumps(meta)
            report = sbc_stats.summarize(regated)
            row = {"target_accept": target, "rhat_max": rhat_max, "max_divergences": max_div,
                   "gated_fraction": report.gates["fraction_failed"],
                   "gated_by": {k: v / args.num for k, v in report.gates["by_check"].items()},
                   "verdict": report.verdict, "reasons": report.reasons, "holm_min_p": float(np.nanmin(
                       report.holm_min())), "sampling_s": round(seconds, 1)}
            out["rows"].append(row)
            print(json.dumps(row), flush=True)
    out["load_average_end"] = os.getloadavg()
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
