"""``--executor dask``: the same sweep on a Dask cluster (here a local one on loopback)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from rebalancer.backtest import executors
from rebalancer.backtest.executors import DaskExecutor, make_executor
from rebalancer.backtest.grid import run_grid
from rebalancer.cli.app import app
from rebalancer.core.errors import ConfigError
from rebalancer.core.planner import PlanPolicy
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.data.panel import load_panel

distributed = pytest.importorskip("distributed")

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
DATA = ROOT.parent / "shared" / "data" / "binance_spot_2017_2022"
D = Decimal
TARGETS = {"BTC": D("0.3"), "ETH": D("0.3"), "XRP": D("0.2"), "USDT": D("0.2")}
CONFIG = "[targets]\nBTC = 0.4\nETH = 0.3\nXRP = 0.1\nUSDT = 0.2\n"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two in-process workers on 127.0.0.1 (TCP), no dashboard: nothing leaves the host."""
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=2,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as local:
        yield local


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    panel = load_panel(DATA, ["BTC", "ETH", "XRP"], "1d", start="2020-01-01", end="2021-06-30")
    return panel.closes


def _strategy() -> Strategy:
    return Strategy("USDT", TARGETS, Threshold(), PlanPolicy(min_trade=D(10), slippage=D("0.001")))


def test_dask_sweep_equals_the_local_one(cluster: Any, closes: pd.DataFrame) -> None:
    kwargs: dict[str, Any] = {
        "bands": [0.01 * i for i in range(1, 26)],
        "fee_rates": [0.0, 0.0005, 0.001, 0.0025],
        "kinds": ("abs", "rel"),
        "styles": ("target", "band_edge"),
        "bar": timedelta(days=1),
        "capital": D(1000),
    }
    local = run_grid(closes, _strategy(), workers=1, engine="replay", **kwargs)
    done: list[int] = []
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    with DaskExecutor(cluster.scheduler_address, kernel_chunk=16, replay_chunk=8) as ex:
        assert ex.workers() == 2
        remote = run_grid(closes, _strategy(), executor=ex, progress=done.append, **kwargs)
        # the closes, strategy, capital, bar, market once for the replay rows: never once
        # per chunk
        assert ex.scattered == 5
        reference = {**kwargs, "kinds": ("abs",), "styles": ("target",)}
        ref_remote = run_grid(closes, _strategy(), executor=ex, semantics="reference", **reference)
        # the prices, targets, capital, bar, calendar span once for the kernel rows
        assert ex.scattered == 10
    assert remote.engines() == local.engines() == {"replay": 400}
    pd.testing.assert_frame_equal(remote.rows, local.rows, check_exact=True)
    pd.testing.assert_frame_equal(remote.break_even, local.break_even, check_exact=True)
    # chunks: 404 replay rows (400 + 4 buy-and-hold) by 8
    assert sum(done) == 404 and len(done) == 51
    ref_local = run_grid(closes, _strategy(), semantics="reference", **reference)
    assert ref_remote.engines() == {"reference": 100}
    pd.testing.assert_frame_equal(ref_remote.rows, ref_local.rows, check_exact=True)


def test_cli_sweep_on_a_dask_scheduler(cluster: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    base = ["sweep", "-c", str(cfg), "--data-dir", str(DATA), "--start", "2019-01-01"]
    base += ["--bands", "0.02:0.2:0.02", "--fee", "0,0.001", "--json"]
    t0 = time.perf_counter()
    local = CliRunner().invoke(
        app, [*base, "--engine", "replay", "--workers", "1", "--out", str(tmp_path / "local")]
    )
    t1 = time.perf_counter()
    remote = CliRunner().invoke(
        app,
        [
            *base,
            "--out",
            str(tmp_path / "dask"),
            "--executor",
            "dask",
            "--scheduler",
            cluster.scheduler_address,
        ],
    )
    t2 = time.perf_counter()
    assert local.exit_code == 0, local.output
    assert remote.exit_code == 0, remote.output
    a, b = json.loads(local.stdout), json.loads(remote.stdout)
    assert a["executor"] == "local" and b["executor"] == f"dask {cluster.scheduler_address}"
    assert a["rows"] == b["rows"] and len(b["rows"]) == 20  # the replay's rows, both
    assert a["break_even"] == b["break_even"]
    sys.stderr.write(f"sweep local {t1 - t0:.2f} s, dask {t2 - t1:.2f} s\n")


def test_executor_options_are_checked() -> None:
    assert make_executor("local", None) is None
    with pytest.raises(ConfigError, match="needs --scheduler ADDRESS"):
        make_executor("dask", None)
    with pytest.raises(ConfigError, match="only used with --executor dask"):
        make_executor("local", "tcp://127.0.0.1:1")
    with pytest.raises(ConfigError, match="must be one of local, dask"):
        make_executor("ray", None)


def test_unreachable_scheduler_is_named() -> None:
    with pytest.raises(ConfigError, match=r"tcp://127\.0\.0\.1:9: cannot reach a Dask scheduler"):
        DaskExecutor("tcp://127.0.0.1:9", timeout=1)


def test_missing_dask_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if absent
    with pytest.raises(ConfigError, match=r"pip install 'rebalancer\[cluster\]'"):
        executors.make_executor("dask", "tcp://127.0.0.1:8786")
