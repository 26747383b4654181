"""Static profile of the CPU gap to the floor: HLO instructions per loop trip, NUTS step vs bare leapfrog.

Compiles (XLA CPU, float32, tutorial model) one NUTS transition of NumPyro's kernel (the engine's per-chain
step: ``hmc(algo="NUTS").sample_kernel`` on the engine's ``potential_energy``) and the floor's bare leapfrog
loop (``scripts/benchmark.py``'s ``floor`` row), and counts the instructions of every ``while`` body in the
optimised HLO. A NUTS leapfrog is one trip of the tree builder's innermost body; the floor's trip is one
leapfrog. Writes JSON to stdout: ``python scripts/leapfrog_op_count.py > scripts/results/leapfrog_op_count_cpu.json``.
"""

from __future__ import annotations

import json
import re

import jax
import jax.numpy as jnp
from numpyro.infer.hmc import hmc
from numpyro.infer.util import potential_energy

from bayeslin_jax.core import priors, simulate
from bayeslin_jax.core.regressions import linear_regression


def while_bodies(hlo: str) -> dict[str, int]:
    """``{body computation name: instruction count}`` for every while loop of an HLO module's text."""
    computations, name, count = {}, None, 0
    for line in hlo.splitlines():
        head = re.match(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$", line)  # computations start at column 0
        if head:
            name, count = head.group(1), 0
        elif line.strip() == "}" and name is not None:
            computations[name] = count
            name = None
        elif name is not None and "=" in line:
            count += 1
    bodies = set(re.findall(r"body=%?([\w.\-]+)", hlo))
    return {body: computations.get(body, 0) for body in sorted(bodies)}


def main() -> None:
    spec = priors.tutorial_spec()
    data = simulate.tutorial_data(0, [0])
    phi, y = spec.basis(data.x)[0], data.y[0]
    args = (phi, y, spec.prior, spec.noise)

    def potential(*a):
        return lambda z: potential_energy(linear_regression, a, {}, z)

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential, algo="NUTS")
    state = init_kernel({"w": jnp.zeros(2)}, 10, model_args=args, rng_key=jax.random.key(0))
    nuts = jax.jit(lambda s: sample_kernel(s, model_args=args)).lower(state).compile().as_text()

    value_and_grad = jax.value_and_grad(lambda z: potential_energy(linear_regression, args, {}, {"w": z}))

    def leapfrogs(z, r):
        def step(_, carry):
            z, r, _, grad = carry
            r = r - 0.01 * grad
            z = z + 0.02 * r
            pe, grad = value_and_grad(z)
            return z, r - 0.01 * grad, pe, grad
        pe, grad = value_and_grad(z)
        return jax.lax.fori_loop(0, 1000, step, (z, r, pe, grad))

    floor = jax.jit(leapfrogs).lower(jnp.zeros(2), jnp.ones(2)).compile().as_text()
    nuts_bodies, floor_bodies = while_bodies(nuts), while_bodies(floor)
    print(json.dumps({
        "backend": jax.default_backend(), "jax": jax.__version__,
        "nuts_step_while_bodies": nuts_bodies, "floor_while_bodies": floor_bodies,
        "nuts_step_instructions": sum(1 for line in nuts.splitlines() if " = " in line),
        "floor_instructions": sum(1 for line in floor.splitlines() if " = " in line),
    }, indent=2))


if __name__ == "__main__":
    main()
