"""Markdown tables of the measurements in scripts/results/*.json, for the docs pages.

Run by ``scripts/docs.sh`` before Sphinx: writes one ``<name>.md`` per table into ``--out`` (default
``docs/_generated/tables``, gitignored), which ``docs/performance.md`` and ``docs/testing.md`` include. Each table
is followed by a line naming the JSON file, the command that wrote it and the machine and date recorded in it, so
that no number in the docs is typed by hand: rerun the command, commit the JSON, rebuild the docs.

    python scripts/docs_tables.py [--out DIR] [--check]

``--check`` fails (exit 1) when a table cannot be built from the JSON (a renamed field, a missing file).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "scripts" / "results"
NO_COMMAND = "see the page text"


# --- formatting -------------------------------------------------------------------------------------------------

def seconds(value: float | None) -> str:
    """A duration with 3 significant digits in a readable unit: ``0.11 ms``, ``16.1 ms``, ``1.30 s``."""
    if value is None or not math.isfinite(value):
        return ""
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
        if abs(value) >= scale or unit == "ns":
            return f"{_sig(value / scale)} {unit}"
    raise AssertionError("unreachable")


def _sig(x: float, digits: int = 3) -> str:
    if x == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


def count(x: float | None) -> str:
    """An integer with thousands separators (``32,609``)."""
    return "" if x is None else f"{round(x):,}"


def ratio(x: float | None, digits: int = 3) -> str:
    """A ratio with ``digits`` significant digits and a ``×`` (``189×``, ``3.9×``)."""
    return "" if x is None else f"{_sig(x, digits)}×"


def percent(x: float | None, decimals: int = 1) -> str:
    return "" if x is None else f"{100 * x:.{decimals}f} %"


def fixed(x: float | None, decimals: int = 3) -> str:
    return "" if x is None else f"{x:.{decimals}f}"


def gigabytes(x: float | None) -> str:
    return "" if x is None else f"{x / 1e9:.2f} GB"


def mebibytes(x: float | None) -> str:
    return "" if x is None else f"{x / 2**20:,.0f} MiB"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub/MyST pipe table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# --- provenance -------------------------------------------------------------------------------------------------

def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def command_of(data: dict) -> str:
    """The command line recorded in a results file, as one would type it from the repository root."""
    env = data.get("environment", {})
    if env.get("argv"):
        argv = list(env["argv"])
        return shlex.join(["python", *argv] if argv[0].endswith(".py") else argv)
    raw = env.get("command", data.get("command"))
    if isinstance(raw, list):
        return "; ".join(_python(c) for c in raw)
    return _python(raw) if raw else NO_COMMAND


def _python(command: str) -> str:
    command = command.replace("--chain-variants  ", "--chain-variants '' ")  # an empty argument, as typed
    if command.startswith("python"):
        return command
    if command.startswith("benchmark.py"):
        return f"python scripts/{command}"
    if command.startswith("scripts/"):
        return f"python {command}"
    return command


def machine_of(data: dict) -> str:
    """CPU model or accelerator, cores and load average, as far as the file records them."""
    env = data.get("environment", data)
    parts = []
    kind = env.get("device_kind")
    if kind and kind != "cpu":
        parts.append(f"{kind}, {env.get('cpu_count')} host CPUs" if env.get("cpu_count") else kind)
    elif env.get("cpu_model"):
        parts.append(f"{env['cpu_model']}, {env.get('cpu_count')} CPUs")
    elif isinstance(env.get("machine"), dict):  # sbc_false_alarms.json, sbc_power.json
        m = env["machine"]
        cores = f", {m['cpu_count']} CPUs" if m.get("cpu_count") else ""
        parts.append(f"{m.get('platform', 'unknown platform')}{cores}")
    elif env.get("device"):
        parts.append(str(env["device"]))
    elif env.get("cpu_count") or env.get("cores"):
        where = f"{env['machine']}, " if isinstance(env.get("machine"), str) else ""
        parts.append(f"{where}{env.get('cpu_count') or env.get('cores')} CPUs")
    else:
        parts.append("machine not recorded")
    start, end = env.get("load_average_start"), env.get("load_average_end")
    if start:
        load_text = f"load average {start[0]:.2f} at the start"
        if end:
            load_text += f", {end[0]:.2f} at the end"
        parts.append(load_text)
    versions = env.get("versions") or {k: env[k] for k in ("jax", "numpyro") if k in env}
    if versions.get("jax"):
        parts.append(f"jax {versions['jax']}" + (f", numpyro {versions['numpyro']}" if versions.get("numpyro") else ""))
    return "; ".join(parts)


def date_of(data: dict) -> str:
    env = data.get("environment", data)
    for key in ("started", "date"):
        value = env.get(key)
        if isinstance(value, str):
            return value[:10]
        if isinstance(value, int | float):
            return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d")
    return "date not recorded"


def source(*names: str) -> str:
    """The provenance line under a table: file, command, machine, date (one entry per file)."""
    entries = []
    for name in names:
        data = load(name)
        command = command_of(data)
        command = f"command: {command}" if command == NO_COMMAND else f"command `{command}`"
        entries.append(f"`scripts/results/{name}`: {command}; {machine_of(data)}; {date_of(data)}")
    return "\n\n" + "\n".join(f"*Source: {e}.*" if len(names) == 1 else f"- *Source: {e}.*" for e in entries) + "\n"


# --- performance tables -----------------------------------------------------------------------------------------

def _rows(data: dict, engine: str, **match) -> list[dict]:
    return [r for r in data["results"] if r.get("engine") == engine and all(r.get(k) == v for k, v in match.items())]


def _row(data: dict, engine: str, **match) -> dict:
    rows = _rows(data, engine, **match)
    if not rows:
        raise KeyError(f"no {engine} row {match}")
    return rows[0]


def engines() -> str:
    name = "benchmark_cpu.json"
    d = load(name)
    loop = _row(d, "mcmc_loop")["per_dataset_s"]
    study = d["summary"]["study_B1000"]
    lanes = _row(d, "engine_barrier_free", B=1000)["lane_utilization"]["lanes"]
    pymc = _row(d, "pymc")
    spec = [
        ("this engine (`lax.map`), B = 1000, 1 CPU device", _row(d, "engine", B=1000, cpu_devices=1), True),
        ("this engine, B = 1000, 2 CPU devices", _row(d, "engine", B=1000, cpu_devices=2), True),
        ("lock-step `vmap` of the same kernel, B = 1000, 1 device", _row(d, "engine_vmap", B=1000), True),
        (f"barrier-free NUTS (`method=\"barrier_free\"`, {lanes} lanes), B = 1000",
         _row(d, "engine_barrier_free", B=1000), True),
        ("full study (engine + host ArviZ diagnostics + exact posterior + zarr store), B = 1000",
         _row(d, "study", B=1000), False),
        ("loop of a jitted single-dataset kernel (chains vmapped)", _row(d, "jit_loop"), False),
        (f"PyMC {pymc.get('pymc_version', '')} `pm.sample` loop (`pm.set_data`, `cores=1`), "
         f"{pymc.get('datasets_timed', '?')} datasets", pymc, True),
        (f"`numpyro.infer.MCMC.run` loop, {_row(d, 'mcmc_loop').get('datasets_timed', '?')} datasets",
         _row(d, "mcmc_loop"), True),
        ("exact conjugate posterior + 4000 exact draws, B = 1000", _row(d, "exact", B=1000), False),
    ]
    rows = []
    for label, r, versus in spec:
        ess = r.get("slope_ess_per_s") if r["engine"] != "exact" else None
        rows.append([label, seconds(r["per_dataset_s"]), ratio(loop / r["per_dataset_s"]) if versus else "",
                     f"{ess:,.0f}" if ess else "", seconds(r.get("compile_s"))])
    text = table(["engine", "per dataset", "vs `MCMC.run` loop", "slope ESS per second", "compile"], rows)
    stages = study["stage_seconds"]
    text += ("\n\nThe study's stages: " + ", ".join(f"{k.removesuffix('_s')} {seconds(v)}" for k, v in stages.items())
             + " (summaries of chunk k overlap the sampling of chunk k + 1).")
    return text + source(name)


def floor() -> str:
    name = "benchmark_floor_cpu.json"
    d = load(name)
    engines_ = d["summary"]["floor"]["engines"]
    labels = {"engine": "`lax.map` (the CPU default)", "engine_vmap": "lock-step `vmap`",
              "engine_barrier_free": "barrier-free"}
    rows = []
    for key, e in engines_.items():
        engine = key.split(",")[0]
        rows.append([labels.get(engine, engine), seconds(e["per_dataset_s"]),
                     f"{count(e['leapfrogs_per_dataset'])} ({count(e['warmup_leapfrogs_per_dataset'])} + "
                     f"{count(e['sampling_leapfrogs_per_dataset'])})",
                     seconds(e["engine_s_per_leapfrog"]), f"**{ratio(e['engine_over_floor'])}**",
                     ratio(e["engine_over_floor_1_lane"])])
    fl = d["summary"]["floor"]
    lanes = fl["floor_lanes"]
    text = table(["layout (B = 1000, 4 chains × 2000 iterations)", "per dataset",
                  "leapfrogs per dataset (warm-up + sampling)", "per leapfrog", f"engine / floor ({lanes} lanes)",
                  "engine / floor (1 lane)"], rows)
    by_lanes = fl["s_per_leapfrog_by_lanes"]
    columns = [f"{k} lane{'s' if k != '1' else ''}" for k in by_lanes]
    text += "\n\n" + table(["floor: bare leapfrog, lanes vmapped", *columns],
                           [["wall time per leapfrog per lane", *[seconds(v) for v in by_lanes.values()]]])
    text += f"\n\nCPU time per leapfrog at {lanes} lanes: {seconds(fl['floor_cpu_s_per_leapfrog'])}."
    return text + source(name)


def peers() -> str:
    name = "benchmark_peers_cpu.json"
    d = load(name)
    eng = _row(d, "engine", B=1000)
    base = eng["per_dataset_s"]

    def ess_per_leapfrog(r: dict) -> str:
        lf = r.get("leapfrogs_per_dataset")
        return f"{1000 * r['slope_ess_bulk'] / lf:.0f}" if lf else ""

    def leapfrogs(r: dict) -> str:
        if not r.get("leapfrogs_per_dataset"):
            return ""
        text = count(r["leapfrogs_per_dataset"])
        if r.get("warmup_leapfrogs_per_dataset"):
            text += (f" ({count(r['warmup_leapfrogs_per_dataset'])} + "
                     f"{count(r['sampling_leapfrogs_per_dataset'])})")
        return text

    rows = [[f"this engine (`lax.map`, 1 CPU device), B = {eng['B']}", seconds(base), "", leapfrogs(eng),
             count(eng["slope_ess_bulk"]), ess_per_leapfrog(eng)]]
    for r in _rows(d, "nutpie"):
        raw = r.get("raw_trace_per_dataset_s")
        rows.append([f"nutpie {r.get('nutpie_version', '')}, `cores={r['cores']}`, {r['datasets_timed']} datasets",
                     seconds(r["per_dataset_s"]) + (f" ({seconds(raw)} without its DataTree)" if raw else ""),
                     ratio(r["per_dataset_s"] / base, 2) + (f" ({ratio(raw / base, 2)})" if raw else ""),
                     leapfrogs(r), count(r["slope_ess_bulk"]), ess_per_leapfrog(r)])
    for engine, label in (("blackjax_map", "`lax.map`"), ("blackjax_vmap", "`vmap`")):
        for r in _rows(d, engine):
            rows.append([f"BlackJAX {r.get('blackjax', '')} under {label}, B = {r['B']}", seconds(r["per_dataset_s"]),
                         ratio(r["per_dataset_s"] / base, 2), leapfrogs(r), count(r["slope_ess_bulk"]),
                         ess_per_leapfrog(r)])
    for engine, label in (("pymc", "PyMC {v} `pm.sample` loop"), ("mcmc_loop", "`numpyro.infer.MCMC.run` loop")):
        for r in _rows(d, engine):
            rows.append([label.format(v=r.get("pymc_version", "")) + f", {r['datasets_timed']} datasets",
                         seconds(r["per_dataset_s"]), ratio(r["per_dataset_s"] / base), "",
                         count(r["slope_ess_bulk"]), ""])
    text = table(["sampler", "per dataset", "engine faster by", "leapfrogs per dataset (warm-up + sampling)",
                  "slope ESS per dataset", "ESS per 1000 leapfrogs"], rows)
    fl = d["summary"]["floor"]
    text += (f"\n\nBare-leapfrog floor in the same run: {seconds(fl['floor_s_per_leapfrog'])} per leapfrog wall over "
             f"{fl['floor_lanes']} lanes, {seconds(fl['floor_cpu_s_per_leapfrog'])} of CPU time, "
             f"{seconds(fl['s_per_leapfrog_by_lanes']['1'])} for one lane; the engine: "
             f"{seconds(d['summary']['engine_B1000']['engine_s_per_leapfrog'])} per leapfrog.")
    return text + source(name)


def _accept_rows(d: dict, engines_: list[tuple[str, dict]], with_split: bool) -> list[list[str]]:
    rows = []
    for label, r in engines_:
        lf = count(r["leapfrogs_per_dataset"])
        if with_split:
            lf += f" ({count(r['warmup_leapfrogs_per_dataset'])} + {count(r['sampling_leapfrogs_per_dataset'])})"
        rows.append([label, fixed(r["mean_accept"]), fixed(r["mean_step_size"], 2), seconds(r["per_dataset_s"]), lf,
                     count(r["slope_ess_bulk"]), f"{1000 * r['slope_ess_bulk'] / r['leapfrogs_per_dataset']:.0f}"])
    return rows


def target_accept() -> str:
    name = "benchmark_target_accept_cpu.json"
    d = load(name)
    engines_ = [(f"`target_accept={d['environment']['settings']['target_accept']}` (default)",
                 _row(d, "engine", B=1000))]
    engines_ += [(f"`target_accept={r['target_accept']}`", r) for r in _rows(d, "engine_target_accept")]
    header = ["engine, B = 1000", "achieved acceptance", "step size", "per dataset", "leapfrogs per dataset",
              "slope ESS per dataset", "ESS per 1000 leapfrogs"]
    return table(header, _accept_rows(d, engines_, False)) + source(name)


def calibrated() -> str:
    name = "benchmark_calibrated_cpu.json"
    d = load(name)
    engines_ = [("NumPyro's warm-up (default)", _row(d, "engine", B=1000)),
                ("calibrated (`calibrate_step_size=True`)", _row(d, "engine_calibrated", B=1000))]
    header = ["engine, B = 1000, target 0.8", "achieved acceptance", "step size", "per dataset",
              "leapfrogs per dataset (warm-up + sampling)", "slope ESS per dataset", "ESS per 1000 leapfrogs"]
    s = d["summary"]["engine_B1000"]
    text = table(header, _accept_rows(d, engines_, True))
    text += (f"\n\nCalibrated against the default: {ratio(s['calibrated_speedup_vs_engine'])} faster per dataset, "
             f"{ratio(s['calibrated_slope_ess_per_s_over_engine'])} the slope ESS per second.")
    return text + source(name)


def calibration_check() -> str:
    name = "calibration_check_cpu.json"
    d = load(name)
    labels = {"tutorial": "tutorial", "poly5_mvn": "degree-5 polynomial, MVN prior",
              "unknown_noise": "learned noise (half-normal)", "hierarchical": "hierarchical (varying intercept)"}
    groups: dict[tuple[str, float], dict[bool, dict]] = {}
    for r in d["rows"]:
        groups.setdefault((r["setup"], r["target_accept"]), {})[r["calibrate_step_size"]] = r
    rows = []
    for (setup, target), pair in groups.items():
        a, b = pair[False], pair[True]
        size = f"{a['datasets']} datasets" if "datasets" in a else f"{a['simulations']} SBC simulations"

        def both(key: str, fmt: Callable[[float], str], a: dict = a, b: dict = b) -> str:
            return f"{fmt(a[key])} / {fmt(b[key])}" if key in a and key in b else ""

        if "divergences" in a:
            div = (f"{a['divergences']} / {b['divergences']} "
                   f"({percent(a['datasets_with_divergences'], 0)} / {percent(b['datasets_with_divergences'], 0)}"
                   " of datasets)")
            ess = both("min_ess_bulk_mean", count)
        else:
            div = (f"{a['divergences_per_simulation']:.2f} / {b['divergences_per_simulation']:.2f} per simulation "
                   f"({percent(a['simulations_with_divergences'], 0)} / "
                   f"{percent(b['simulations_with_divergences'], 0)} with any)")
            ess = both("min_ess_mean", count)
        rows.append([f"{labels.get(setup, setup)}, {size}, target {target}", both("mean_accept", fixed),
                     both("sampling_leapfrogs_per_dataset", count), div, ess,
                     both("rhat_above_1.01", lambda x: percent(x, 0)),
                     both("weights_mean_error_rms_in_mcse", lambda x: fixed(x, 2))])
    header = ["setup (NumPyro's warm-up / calibrated)", "achieved acceptance", "sampling leapfrogs per dataset",
              "divergences", "smallest ESS (mean)", "R-hat > 1.01", "mean error / MCSE (RMS)"]
    return table(header, rows) + source(name)


def fixed_cost() -> str:
    name = "benchmark_cpu.json"
    f = load(name)["summary"]["fixed_cost"]
    rows = [
        ["time per run, per iteration (slope)", seconds(f["slope_s_per_iteration"])],
        ["time per run, fixed (intercept)", seconds(f["intercept_s_per_run"])],
        ["the intercept in iterations", f"{f['intercept_in_iterations']:.0f}"],
        ["CPU-time fit: slope / intercept",
         f"{seconds(f['cpu_slope_s_per_iteration'])} / {seconds(f['cpu_intercept_s_per_run'])}"],
        ["leapfrogs per run: per iteration / fixed",
         f"{f['leapfrogs_per_iteration']:.2f} / {f['leapfrog_intercept_per_run']:.0f}"],
        ["the fixed leapfrogs' time", seconds(f["fixed_algorithmic_s_per_run"])],
        [f"a run of {f['fewest_iterations']} iterations", seconds(f["per_run_s_at_fewest_iterations"])],
        ["one call of one dataset (that run)", seconds(f["call_s_one_dataset_fewest_iterations"])],
    ]
    r = _row(load(name), "iterations")
    text = table([f"`iterations` row: B = {r['B']}, 4 chains, at {', '.join(map(str, r['iterations']))} iterations",
                  "value"], rows)
    return text + source(name)


def device_diagnostics() -> str:
    name = "benchmark_study_device_diagnostics_cpu.json"
    d = load(name)
    diag = d["summary"]["diagnostics_ms_per_dataset"]
    rows = []
    for key, v in diag.items():
        draws = key.removeprefix("draws_")
        rows.append([f"{draws} draws", f"{v['host_ms_per_dataset']:.2f} ms", f"{v['device_ms_per_dataset']:.2f} ms",
                     ratio(v["device_speedup"], 2), f"{v['max_rel_diff']:.0e}", seconds(v["device_compile_s"])])
    r = _row(d, "diagnostics")
    text = table([f"diagnostics per dataset (2 weights × {r['chains']} chains, {r['B']} datasets)", "ArviZ (host)",
                  "`diagnostics.device`", "speed-up", "largest relative difference", "compile (once per shape)"],
                 rows)
    study, engine = d["summary"]["study_B1000"], _row(d, "engine", B=1000)
    stages = ", ".join(f"{k.removesuffix('_s')} {seconds(v)}" for k, v in study["stage_seconds"].items())
    text += "\n\n" + table(["B = 1000, same run", "per dataset", "stages"],
                           [["engine alone", seconds(engine["per_dataset_s"]), ""],
                            ["study (device diagnostics)", seconds(study["per_dataset_s"]), stages]])
    return text + source(name)


def gpu() -> str:
    bench, probe, before = "benchmark_gpu_h200.json", "gpu_probe_h200.json", "benchmark_gpu_h200_before_host_pool.json"
    g, p, b = load(bench), load(probe), load(before)
    study = _row(g, "study", B=100000)
    st = study["stage_seconds"]
    prow = {(r["B"], r["method"], r["lanes"]): r for r in p["rows"]}
    big = prow[(100000, "barrier_free", 131072)]
    bf, vm = prow[(1000, "barrier_free", None)], prow[(1000, "vmap", None)]
    queued = _row(g, "engine_barrier_free", B=10000)
    alone = _row(g, "engine_barrier_free", B=1000)
    u_q, u_1 = queued["lane_utilization"], alone["lane_utilization"]
    before_study = _row(b, "study", B=100000)
    rows = [
        [f"study of {study['B']:,} datasets end to end (simulate, NUTS, exact posterior, host ArviZ diagnostics, "
         "zarr store)",
         f"**{seconds(study['wall_s'])}** wall: sampling {seconds(st['nuts_s'])}, host summaries "
         f"{seconds(st['summary_s'])} (overlapping the sampling), simulation {seconds(st['simulate_s'])}, exact "
         f"{seconds(st['exact_s'])}", "`benchmark_gpu_h200.json`"],
        ["its compile time (sum of JAX's compile events: an upper bound)", f"≤ {seconds(study['compile_s'])}",
         "`benchmark_gpu_h200.json`"],
        ["the same study before the host process pool and the vectorized blocks",
         f"{seconds(before_study['wall_s'])} wall (summaries {seconds(before_study['stage_seconds']['summary_s'])})",
         "`benchmark_gpu_h200_before_host_pool.json`"],
        [f"the engine alone, {big['B']:,} datasets ({big['util']['runs']:,} runs on {big['lanes']:,} lanes)",
         f"{seconds(big['wall_s'])} wall with compile (≤ {seconds(big['compile_s'])} of it)", "`gpu_probe_h200.json`"],
        [f"barrier-free vs lock-step `vmap`, B = {bf['B']}",
         f"run {bf['per_dataset_ms']:.2f} vs {vm['per_dataset_ms']:.2f} ms per dataset "
         f"(**{ratio(vm['per_dataset_ms'] / bf['per_dataset_ms'], 2)}**); wall with compile "
         f"{seconds(bf['wall_s'])} vs {seconds(vm['wall_s'])}", "`gpu_probe_h200.json`"],
        [f"lane utilization, {u_q['lanes']:,} lanes, {u_q['runs']:,} runs queued",
         f"**{u_q['overall']:.3f}** overall ({u_q['warmup']:.3f} warm-up, {u_q['sampling']:.3f} sampling)",
         "`benchmark_gpu_h200.json`"],
        [f"lane utilization, {u_1['lanes']:,} lanes, {u_1['runs']:,} runs (no queue)",
         f"{u_1['overall']:.2f}: the lanes idle while the slowest run finishes ({count(u_1['max_steps_per_run'])} "
         f"leapfrogs against a mean of {count(u_1['mean_steps_per_run'])})", "`benchmark_gpu_h200.json`"],
        ["slope ESS per second",
         f"{alone['slope_ess_per_s'] / 1e6:.1f} million (engine, B = {alone['B']:,}), "
         f"{study['slope_ess_per_s'] / 1e6:.1f} million (study, {study['B']:,})", "`benchmark_gpu_h200.json`"],
        ["peak device memory",
         f"{gigabytes(study['peak_device_bytes'])} for the {study['B']:,} study, "
         f"{gigabytes(queued['peak_device_bytes'])} for the engine at B = {queued['B']:,} with all draws",
         "`benchmark_gpu_h200.json`"],
    ]
    text = table(["what", "result", "file"], rows)
    return text + source(bench, probe, before)


def leapfrog_ops() -> str:
    name = "leapfrog_op_count_cpu.json"
    d = load(name)
    nuts = sorted(d["nuts_step_while_bodies"].values(), reverse=True)
    distinct: dict[int, int] = {}
    for n in nuts:
        distinct[n] = distinct.get(n, 0) + 1
    bodies = ", ".join(f"{n}" + (f" (× {k})" if k > 1 else "") for n, k in distinct.items())
    rows = [["one compiled NUTS transition", bodies, str(d["nuts_step_instructions"])],
            ["the floor's leapfrog loop", ", ".join(map(str, d["floor_while_bodies"].values())),
             str(d["floor_instructions"])]]
    text = table(["program (optimised CPU HLO)", "top-level instructions of each `while` body (fusions count once)",
                  "instructions in all"], rows)
    return text + source(name)


def models() -> str:
    name = "benchmark_models_cpu.json"
    d = load(name)
    rows = []
    for model, s in d["summary"].items():
        eng, pm = _row(d, "engine", model=model), _row(d, "pymc", model=model)
        rows.append([f"`{model}`", f"{eng['chains']} × ({eng['warmup']} + {eng['draws']}), target "
                     f"{eng['target_accept']}", seconds(s["engine_per_dataset_s"]), seconds(s["pymc_per_dataset_s"]),
                     ratio(s["speedup"]), f"{s['engine_ess_w1_per_s']:,.0f} / {s['pymc_ess_w1_per_s']:,.0f}",
                     f"{eng['divergences']} / {pm['divergences']}"])
    text = table(["model", "chains × (warm-up + draws)", "engine per dataset (B = 1000)",
                  f"PyMC per dataset ({_row(d, 'pymc')['datasets_timed']} datasets)", "engine faster by",
                  "ESS of w1 per second (engine / PyMC)", "divergences (engine / PyMC)"], rows)
    return text + source(name)


def flat_memory() -> str:
    name = "flat_memory_cpu.json"
    d = load(name)
    rows = [[f"{s['datasets']:,}", str(s["chunks"]), mebibytes(s["peak_rss_bytes"]), seconds(s["s_per_dataset"])]
            for s in sorted(d["sizes"], key=lambda s: s["datasets"])]
    text = table(["datasets", "chunks", "peak RSS", "per dataset"], rows)
    o = d["overlap"]
    text += (f"\n\nLargest over smallest peak RSS: {d['peak_rss_ratio_largest_to_smallest']:.2f}. Pipelining the "
             f"chunks, {o['datasets']:,} datasets: {seconds(o['off_wall_s'])} off, {seconds(o['on_wall_s'])} on.")
    if d.get("note"):
        text += f" ({d['note']}.)"
    return text + source(name)


# --- testing tables ---------------------------------------------------------------------------------------------

def mutation() -> str:
    name = "mutation.json"
    d = load(name)
    rows = []
    for label, m in d["mutations"].items():
        tests = ", ".join(f"`{t.split('::')[-1]}`" for t in m["failed"] or m["tests"])
        rows.append([label, f"`{m['file'].removeprefix('bayeslin_jax/')}`", tests, "yes" if m["caught"] else "**no**"])
    caught = sum(m["caught"] for m in d["mutations"].values())
    text = table(["planted bug", "file", "caught by (the tests that failed)", "caught"], rows)
    text += (f"\n\n{caught} of {len(d['mutations'])} planted bugs caught (`all_caught: "
             f"{str(d['all_caught']).lower()}`); the unmutated tests: {d['unmutated']['summary']}.")
    return text + source(name)


def sbc_false_alarms() -> str:
    name = "sbc_false_alarms.json"
    d = load(name)
    labels = {"tutorial": "tutorial, `run_sbc(engine=\"exact\")`", "poly3": "poly3, `run_sampler_sbc(ExactSampler)`"}
    rows = []
    for setup, sizes in d["setups"].items():
        for n, v in sizes.items():
            verdict = v["verdict"]
            lo, hi = verdict["ci95"]
            rows.append([labels.get(setup, setup), n,
                         f"{verdict['rejected']}/{verdict['seeds']} = {verdict['rate']:.3f} [{lo:.3f}, {hi:.3f}]",
                         f"{verdict['p_rate_above_alpha']:.2f}", f"{v['ranks']['rate']:.3f}",
                         f"{v['dap']['rate']:.3f}"])
    text = table(["setup", "N", "verdict: false alarms (rate, 95 % interval)", "P(rate > α)", "rank tests alone",
                  "DAP tests alone"], rows)
    text += f"\n\nα = {d['alpha']}; {seconds(d['seconds'])} for the whole run."
    return text + source(name)


def sbc_power() -> str:
    name = "sbc_power.json"
    d = load(name)
    rows = []
    for setup, v in d["exact"]["setups"].items():
        mins = v["min_n_90"]

        def at(key: str, mins: dict = mins) -> str:
            return "not within the grid" if mins.get(key) is None else str(mins[key])

        rows.append([setup, str(v["repeats"]), at("any"), at("ranks"), at("dap")])
    text = table(["setup (exact engine + the distortion)", "seeds",
                  "smallest N rejected in ≥ 90 % of seeds: verdict", "rank tests alone", "DAP tests alone"], rows)
    text += f"\n\nGrid of N: {', '.join(map(str, d['grid']))}; α = {d['alpha']}."
    return text + source(name)


def sbc_gate() -> str:
    name = "sbc_gate_hierarchical.json"
    d = load(name)
    rows = []
    for r in d["rows"]:
        g = r["gated_by"]
        rows.append([str(r["target_accept"]), f"{r['rhat_max']} / {r['max_divergences']}", percent(r["gated_fraction"]),
                     percent(g["R-hat"]), percent(g["ESS"]), percent(g["divergences"]), r["verdict"],
                     f"{r['holm_min_p']:.2f}"])
    text = table(["target_accept", "gate: R-hat ≤ / divergences ≤", "gated", "by R-hat", "by ESS", "by divergences",
                  "verdict", "smallest Holm p"], rows)
    text += f"\n\n{d['num_simulations']} simulations per target acceptance; every gate applied to the same draws."
    return text + source(name)


TABLES: dict[str, Callable[[], str]] = {
    "engines": engines,
    "floor": floor,
    "peers": peers,
    "target_accept": target_accept,
    "calibrated": calibrated,
    "calibration_check": calibration_check,
    "fixed_cost": fixed_cost,
    "device_diagnostics": device_diagnostics,
    "gpu": gpu,
    "leapfrog_ops": leapfrog_ops,
    "models": models,
    "flat_memory": flat_memory,
    "mutation": mutation,
    "sbc_false_alarms": sbc_false_alarms,
    "sbc_power": sbc_power,
    "sbc_gate": sbc_gate,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "_generated" / "tables")
    parser.add_argument("--check", action="store_true", help="only build the tables; write nothing")
    args = parser.parse_args(argv)
    if not args.check:
        args.out.mkdir(parents=True, exist_ok=True)
    for name, build in TABLES.items():
        try:
            text = build()
        except (KeyError, OSError, TypeError, ValueError) as exc:
            print(f"error: table {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        if not args.check:
            target = args.out / f"{name}.md"
            if not target.exists() or target.read_text() != text + "\n":
                target.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
