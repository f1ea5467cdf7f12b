"""Small, dependency-free statistics (scipy is not installed): tests used by pattern detection."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclass(frozen=True)
class ProportionTest:
    rate_in: float
    rate_out: float
    ratio: float
    z: float
    p_value: float  # one-sided: the group's rate is higher than the rest's


def two_proportion_z(x_in: int, n_in: int, x_out: int, n_out: int) -> ProportionTest:
    """One-sided pooled two-proportion z-test of "rate inside the group > rate outside"."""
    if n_in <= 0 or n_out <= 0:
        return ProportionTest(0.0, 0.0, 1.0, 0.0, 1.0)
    p_in, p_out = x_in / n_in, x_out / n_out
    pooled = (x_in + x_out) / (n_in + n_out)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_in + 1 / n_out))
    z = 0.0 if se == 0 else (p_in - p_out) / se
    # Rate ratio with a half-count correction so a clean "rest" does not give infinity.
    ratio = p_in / p_out if p_out > 0 else (x_in + 0.5) / (n_in + 0.5) / (0.5 / (n_out + 0.5))
    return ProportionTest(p_in, p_out, ratio, z, normal_sf(z))


@dataclass(frozen=True)
class Correlation:
    n: int
    r: float
    p_value: float  # one-sided: r > 0
    slope: float
    intercept: float


def pearson(xs: Sequence[float], ys: Sequence[float]) -> Correlation:
    """Pearson r with a Fisher-z significance test, plus the least-squares line y = a + b x."""
    n = len(xs)
    if n < 4:
        return Correlation(n, 0.0, 1.0, 0.0, 0.0)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    if sxx == 0 or syy == 0:
        return Correlation(n, 0.0, 1.0, 0.0, my)
    r = max(-0.999999, min(0.999999, sxy / math.sqrt(sxx * syy)))
    z = math.atanh(r) * math.sqrt(n - 3)
    slope = sxy / sxx
    return Correlation(n, r, normal_sf(z), slope, my - slope * mx)
