"""Overfitting: PBO by CSCV, the deflated Sharpe ratio, and a band's neighbours.

**PBO** (:func:`pbo_cscv`; Bailey, Borwein, López de Prado and Zhu, "The probability of
backtest overfitting", J. Computational Finance 2017 / SSRN 2015). The per-bar returns of
``N`` configurations (``(bars, N)``) are cut into ``S`` (even) contiguous blocks of equal
length (the last ``bars mod S`` bars are dropped). For each of the ``C(S, S/2)`` ways to
pick half the blocks as in-sample (the rest out-of-sample), the configuration with the best
in-sample performance (Sharpe ratio of the per-bar returns, or their mean) is ranked among
all ``N`` out of sample: relative rank ``w = rank / (N + 1)`` (1 = worst, ties averaged),
logit ``l = ln(w / (1 - w))``. PBO is the share of splits with ``l <= 0``: the in-sample
winner did no better than the median out of sample. Near 0: the choice holds out of sample;
0.5 or above: picking the in-sample best is no better than picking at random.

**Deflated Sharpe ratio** (:func:`deflated_sharpe`; Bailey and López de Prado, "The deflated
Sharpe ratio", J. Portfolio Management 2014): the probability that the true Sharpe ratio of
the selected configuration exceeds ``SR0``, the expected maximum of ``N`` Sharpe ratios
drawn with the observed cross-trial variance when every true Sharpe ratio is zero:
``SR0 = sqrt(V) ((1 - g) Z(1 - 1/N) + g Z(1 - 1/(N e)))`` (``g`` Euler-Mascheroni),
``DSR = Phi((SR - SR0) sqrt(T - 1) / sqrt(1 - skew SR + (kurt - 1) / 4 SR^2))``, all Sharpe
ratios per bar (not annualised), ``kurt`` the plain (not excess) kurtosis.

**Robustness** (:func:`robustness`): each band's premium next to the mean of its
neighbours' (``radius`` bands either side, same kind and fee): a *plateau* when within
``tolerance``, a *spike* when above it by more, a *dip* when below.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

from rebalancer.backtest.reference import FloatArray
from rebalancer.core.errors import ConfigError

EULER_GAMMA = 0.5772156649015329
#: each of the S blocks must hold at least this many bars
MIN_BLOCK_BARS = 4
#: above this many splits the combinations are too many to enumerate
MAX_SPLITS = 20

Metric = Literal["sharpe", "mean"]


@dataclass(frozen=True)
class PboResult:
    """``pbo`` in [0, 1]; ``logits`` one per split combination; ``splits`` S."""

    pbo: float
    logits: FloatArray
    splits: int
    configurations: int

    @property
    def combinations(self) -> int:
        return int(self.logits.size)


def check_pbo(n_bars: int, n_configs: int, splits: int) -> None:
    if n_configs < 2:
        raise ConfigError(
            f"PBO compares configurations: the sweep has {n_configs} row(s), at least 2 are "
            "needed: give more bands (--bands 0.01:0.25:0.01)"
        )
    if splits < 2 or splits % 2 or splits > MAX_SPLITS:
        raise ConfigError(
            f"--splits must be an even number from 2 to {MAX_SPLITS} (16 is usual), got {splits}"
        )
    need = splits * MIN_BLOCK_BARS
    if n_bars < need:
        raise ConfigError(
            f"the panel has {n_bars} bars of returns; PBO with {splits} splits needs at least "
            f"{need} ({MIN_BLOCK_BARS} per block): widen --start/--end or give fewer --splits"
        )


def _performance(sums: FloatArray, sq: FloatArray, n: float, metric: Metric) -> FloatArray:
    mean = sums / n
    if metric == "mean":
        return mean
    var = np.maximum(sq / n - mean * mean, 0.0) * n / max(n - 1, 1)
    std = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = np.where(std > 0, mean / np.where(std > 0, std, 1.0), 0.0)
    return out


def _ranks(values: FloatArray) -> FloatArray:
    """Ranks 1..N along the last axis (1 = lowest), ties given their average rank."""
    from scipy.stats import rankdata  # type: ignore[import-untyped]

    out: FloatArray = np.asarray(rankdata(values, method="average", axis=-1), dtype=np.float64)
    return out


def pbo_cscv(returns: FloatArray, splits: int = 16, metric: Metric = "sharpe") -> PboResult:
    """PBO of choosing the best of ``returns``' columns (see the module docstring)."""
    m = np.asarray(returns, dtype=np.float64)
    if m.ndim != 2:
        raise ConfigError(f"returns must be (bars, configurations), got shape {m.shape}")
    check_pbo(m.shape[0], m.shape[1], splits)
    size = m.shape[0] // splits
    blocks = m[: size * splits].reshape(splits, size, m.shape[1])
    sums, sq = blocks.sum(axis=1), (blocks * blocks).sum(axis=1)  # (S, N)
    combos = list(itertools.combinations(range(splits), splits // 2))
    member = np.zeros((len(combos), splits))
    for i, c in enumerate(combos):
        member[i, list(c)] = 1.0
    n_half = float(size * splits // 2)
    perf_in = _performance(member @ sums, member @ sq, n_half, metric)
    perf_out = _performance((1 - member) @ sums, (1 - member) @ sq, n_half, metric)
    best = np.argmax(perf_in, axis=1)
    ranks = _ranks(perf_out)[np.arange(len(combos)), best]
    w = ranks / (m.shape[1] + 1)
    logits = np.log(w / (1 - w))
    return PboResult(
        pbo=float(np.mean(logits <= 0)), logits=logits, splits=splits, configurations=m.shape[1]
    )


@dataclass(frozen=True)
class DeflatedSharpe:
    """``dsr`` in [0, 1]; ``sr`` and ``sr0`` per bar; ``trials`` N; ``bars`` T."""

    dsr: float
    sr: float
    sr0: float
    trials: int
    bars: int
    skew: float
    kurtosis: float


def expected_max_sharpe(sr_variance: float, trials: int) -> float:
    """``SR0``: the expected maximum Sharpe ratio of ``trials`` unskilled trials."""
    if trials < 2:
        raise ConfigError(f"the deflated Sharpe ratio needs at least 2 trials, got {trials}")
    z = NormalDist().inv_cdf
    return math.sqrt(sr_variance) * (
        (1 - EULER_GAMMA) * z(1 - 1 / trials) + EULER_GAMMA * z(1 - 1 / (trials * math.e))
    )


def deflated_sharpe(
    sr: float, sr_variance: float, trials: int, bars: int, skew: float, kurtosis: float
) -> DeflatedSharpe:
    """The deflated Sharpe ratio of a per-bar Sharpe ``sr`` (see the module docstring)."""
    if bars < 3:
        raise ConfigError(f"the deflated Sharpe ratio needs at least 3 returns, got {bars}")
    sr0 = expected_max_sharpe(sr_variance, trials)
    denom = 1 - skew * sr + (kurtosis - 1) / 4 * sr * sr
    if not denom > 0:
        raise ConfigError(
            f"skewness {skew:.3g} and kurtosis {kurtosis:.3g} leave no valid Sharpe variance "
            f"for SR {sr:.3g}: the return series is too short or degenerate"
        )
    dsr = NormalDist().cdf((sr - sr0) * math.sqrt(bars - 1) / math.sqrt(denom))
    return DeflatedSharpe(dsr, sr, sr0, trials, bars, skew, kurtosis)


def deflated_sharpe_of_best(returns: FloatArray) -> tuple[int, DeflatedSharpe]:
    """The column with the highest per-bar Sharpe ratio of ``returns`` (bars, N) and its DSR
    with ``N`` trials and the variance of the ``N`` Sharpe ratios."""
    m = np.asarray(returns, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] < 2:
        raise ConfigError(
            f"the deflated Sharpe ratio compares at least 2 rows, got shape {m.shape}: give "
            "more bands (--bands 0.01:0.25:0.01)"
        )
    std = m.std(axis=0, ddof=1)
    srs = np.where(std > 0, m.mean(axis=0) / np.where(std > 0, std, 1), 0.0)
    best = int(np.argmax(srs))
    x = m[:, best]
    z = (x - x.mean()) / x.std(ddof=0) if x.std(ddof=0) > 0 else np.zeros_like(x)
    skew, kurt = float(np.mean(z**3)), float(np.mean(z**4))
    return best, deflated_sharpe(
        float(srs[best]), float(srs.var(ddof=1)), m.shape[1], m.shape[0], skew, kurt
    )


def robustness(
    bands: Sequence[float], premiums: Sequence[float], *, radius: int = 1, tolerance: float = 0.02
) -> list[dict[str, Any]]:
    """Per band (sorted): its premium, its neighbours' mean premium and the shape there."""
    order = np.argsort(np.asarray(bands, dtype=np.float64))
    b = np.asarray(bands, dtype=np.float64)[order]
    p = np.asarray(premiums, dtype=np.float64)[order]
    rows: list[dict[str, Any]] = []
    for i in range(b.size):
        near = [j for j in range(i - radius, i + radius + 1) if j != i and 0 <= j < b.size]
        if not near:
            rows.append(
                {
                    "band": float(b[i]),
                    "premium": float(p[i]),
                    "neighbours": math.nan,
                    "shape": "alone (one band: nothing to compare)",
                }
            )
            continue
        mean = float(np.mean(p[near]))
        gap = float(p[i]) - mean
        shape = "plateau" if abs(gap) <= tolerance else ("spike" if gap > 0 else "dip")
        rows.append(
            {"band": float(b[i]), "premium": float(p[i]), "neighbours": mean, "shape": shape}
        )
    return rows
