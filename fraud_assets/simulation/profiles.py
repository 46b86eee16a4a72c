"""Customer and terminal profiles and who can use which terminal."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from fraud_assets.simulation.params import SimulationParams


@dataclass(frozen=True)
class Profiles:
    customer_xy: np.ndarray  # (C, 2)
    mean_amount: np.ndarray  # (C,)
    std_amount: np.ndarray  # (C,)
    tx_per_day: np.ndarray  # (C,) Poisson mean
    terminal_xy: np.ndarray  # (T, 2)
    # Terminals within the radius of each customer, in CSR form: customer c may use
    # reachable[offsets[c]:offsets[c + 1]]. A flat array keeps memory at one int per pair.
    offsets: np.ndarray  # (C + 1,)
    reachable: np.ndarray  # (sum of degrees,)

    @property
    def degree(self) -> np.ndarray:
        return np.diff(self.offsets)


def make_profiles(params: SimulationParams, rng: np.random.Generator) -> Profiles:
    c, t = params.customers, params.terminals
    customer_xy = rng.uniform(0, params.grid_size, size=(c, 2))
    lo, hi = params.mean_amount_range
    mean_amount = rng.uniform(lo, hi, size=c)
    std_amount = mean_amount / 2
    tx_lo, tx_hi = params.tx_per_day_range
    tx_per_day = rng.uniform(tx_lo, tx_hi, size=c)
    terminal_xy = rng.uniform(0, params.grid_size, size=(t, 2))

    neighbours = cKDTree(terminal_xy).query_ball_point(customer_xy, r=params.radius)
    degree = np.fromiter((len(n) for n in neighbours), dtype=np.int64, count=c)
    offsets = np.zeros(c + 1, dtype=np.int64)
    np.cumsum(degree, out=offsets[1:])
    reachable = np.empty(offsets[-1], dtype=np.int32)
    for i, n in enumerate(neighbours):
        reachable[offsets[i] : offsets[i + 1]] = sorted(n)
    return Profiles(
        customer_xy, mean_amount, std_amount, tx_per_day, terminal_xy, offsets, reachable
    )
