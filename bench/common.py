"""Grids, data loading and the result table of the benchmark (no peer library imported here).

Every grid runs the reference rule (``rebalancer.backtest.reference``) with equal target
weights over the assets *and* the USDT cash leg (``1 / (n + 1)`` each), capital 10,000 USDT.
"""

from __future__ import annotations

import json
import math
import platform
import resource
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CAPITAL = 10_000.0
BANDS = tuple(round(0.01 * i, 2) for i in range(1, 26))
FEES = (0.0, 0.0005, 0.001, 0.0025)
#: G4's calendar gates (in 5-minute bars): every bar, 10 min, 15 min, 30 min, 1 h, 4 h,
#: 12 h, 1 day, 1 week, 30 days -- "check only every N bars, act when out of band"
G4_EVERY = (1, 2, 3, 6, 12, 48, 144, 288, 2016, 8640)


@dataclass(frozen=True)
class Grid:
    name: str
    folder: str
    assets: tuple[str, ...]
    timeframe: str
    start: str | None
    end: str | None
    every: tuple[int, ...] = (1,)
    description: str = ""

    @property
    def n_combos(self) -> int:
        return len(BANDS) * len(FEES) * len(self.every)


GRIDS: dict[str, Grid] = {
    "G1": Grid(
        "G1",
        "binance_spot_2017_2022",
        ("BTC", "ETH", "BNB", "XRP", "LTC"),
        "1d",
        "2018-05-04",
        "2022-10-10",
        description="daily, BTC ETH BNB XRP LTC + USDT, 2018-05-04..2022-10-10",
    ),
    "G2": Grid(
        "G2",
        "binance_spot_2017_2022",
        ("BTC", "ETH", "BNB", "ADA", "XRP", "DOGE", "LTC", "TRX", "LINK", "MATIC"),
        "1h",
        "2019-07-05",
        "2022-10-11 23:00",
        description="hourly, 10 symbols + USDT, 2019-07-05..2022-10-11, common hours only",
    ),
    "G3": Grid(
        "G3",
        "binance_spot_2024_2026",
        ("BTC", "ETH", "BNB", "SOL", "ADA", "XRP", "DOGE", "LTC"),
        "5m",
        None,
        None,
        description="5-minute, 8 symbols + USDT, 2024-12-31..2026-02-19",
    ),
    "G4": Grid(
        "G4",
        "binance_spot_2024_2026",
        ("BTC", "ETH", "BNB", "SOL", "ADA", "XRP", "DOGE", "LTC"),
        "5m",
        None,
        None,
        every=G4_EVERY,
        description="G3 x 10 calendar gates (every 1 bar .. 30 days, then the band) = 1,000",
    ),
}


@dataclass(frozen=True)
class Panel:
    closes: Any  # pandas DataFrame, index UTC candle open times
    prices: np.ndarray[Any, np.dtype[np.float64]]
    targets: np.ndarray[Any, np.dtype[np.float64]]
    cash_target: float
    skipped: int  # bars of the regular axis that some asset lacks (skipped, never filled)
    step_seconds: float


def load(grid: Grid) -> Panel:
    """The grid's closes on the common candles (inner join; gaps skipped, never filled)."""
    from rebalancer.data.panel import load_panel

    panel = load_panel(
        DATA / grid.folder,
        list(grid.assets),
        grid.timeframe,
        start=grid.start,
        end=grid.end,
        align="inner",
    )
    closes = panel.closes
    step = panel.step
    expected = int((closes.index[-1] - closes.index[0]) / step) + 1
    n = closes.shape[1]
    targets = np.full(n, 1.0 / (n + 1))
    return Panel(
        closes=closes,
        prices=np.ascontiguousarray(closes.to_numpy(dtype=np.float64)),
        targets=targets,
        cash_target=max(0.0, 1.0 - float(targets.sum())),
        skipped=expected - len(closes),
        step_seconds=step.total_seconds(),
    )


def combos(grid: Grid) -> list[tuple[float, float, int]]:
    """(band, fee rate, every) for every combination, gate-major then band-major."""
    return [(b, f, e) for e in grid.every for b in BANDS for f in FEES]


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = math.nan
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = int(line.split()[1]) / 2**20
                break
    except OSError:
        pass
    import os

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(ram, 1),
        "python": platform.python_version(),
    }


# -- the table ---------------------------------------------------------------------------------

COLUMNS = ("grid", "measure", "ours", "vectorbt", "bt", "result")


def fmt_seconds(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    if s < 1:
        return f"{s * 1000:.1f} ms"
    return f"{s:.2f} s" if s < 100 else f"{s:.0f} s"


def fmt_mb(mb: float | None) -> str:
    return "-" if mb is None or not math.isfinite(mb) else f"{mb:.0f} MB"


def fmt_rel(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.1e}"


def render(rows: Sequence[dict[str, str]]) -> str:
    """A plain-text (Markdown pipe) table of ``rows`` (each a dict over :data:`COLUMNS`)."""
    cells = [[str(r.get(c, "")) for c in COLUMNS] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(COLUMNS)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    return "\n".join(lines)


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(payload), indent=1) + "\n")
