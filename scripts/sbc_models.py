r"""SBC at 1000 simulations for each built-in model beyond the conjugate case (the README's table).

The settings are those of ``tests/test_models_beyond.py::sbc_setups`` (shared with the slow tests).
Stores are resumable: rerun the same command after an interruption.

    python scripts/sbc_models.py --out out/sbc_models \
        student_t_nu4 student_t_learn_nu bernoulli poisson horseshoe_poly10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_models_beyond import sbc_setups

from bayeslin_jax.workflows.sbc import summarize
from bayeslin_jax.workflows.sbc.run import run_sbc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", choices=sorted(sbc_setups()))
    parser.add_argument("--out", required=True, help="directory for <model>.zarr stores and <model>.json verdicts")
    parser.add_argument("--simulations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        model, config = sbc_setups()[name]
        start = time.time()
        ds = run_sbc(args.simulations, sim_spec=model, seed=args.seed, config=config, chunk_size=250,
                           store=out / f"{name}.zarr")
        report = summarize(ds)
        print(f"=== {name}: {args.simulations} simulations in {time.time() - start:.0f} s (store {out / name}.zarr)")
        print(report.table())
        print(f"divergent simulations: {int((ds['divergences'] > 0).sum())}, "
              f"total divergences {int(ds['divergences'].sum())}", flush=True)
        report.to_json(out / f"{name}.json")


if __name__ == "__main__":
    main()
