"""The CLI starts light: `--help` and `config check` import none of the heavy libraries, the
bot's own commands run without any extra installed, and a command that needs a missing
extra names the `pip install` that adds it.

Each case runs in a fresh interpreter; a missing extra is simulated by putting None in
``sys.modules`` for its modules (then ``import numba`` raises ModuleNotFoundError).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("ccxt", "numba", "matplotlib", "scipy", "pandas", "fastapi", "sqlalchemy", "pyarrow")
EXTRAS_MODULES = (
    "numba", "llvmlite", "matplotlib", "scipy", "pyarrow", "fastapi", "starlette", "uvicorn",
    "psycopg", "dask", "distributed",
)  # fmt: skip

PRELUDE = """
import atexit, json, sys
for name in {blocked!r}:
    sys.modules[name] = None
def loaded():
    return sorted(m for m in {heavy!r} if sys.modules.get(m) is not None)
atexit.register(lambda: sys.stderr.write("\\nLOADED=" + json.dumps(loaded()) + "\\n"))
sys.argv = ["rebalancer", *{argv!r}]
from rebalancer.cli.app import main
main()
"""


def cli(*argv: str, cwd: Path, blocked: tuple[str, ...] = ()) -> tuple[int, str, list[str]]:
    """Exit code, stdout + stderr (without the probe line), heavy modules loaded."""
    code = PRELUDE.format(blocked=blocked, heavy=HEAVY, argv=list(argv))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200"}
    env.pop("REBALANCER_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    probe = [line for line in done.stderr.splitlines() if line.startswith("LOADED=")]
    assert probe, done.stderr
    err = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("LOADED="))
    return done.returncode, done.stdout + err, json.loads(probe[-1].removeprefix("LOADED="))


def test_importing_the_cli_loads_no_heavy_library(tmp_path: Path) -> None:
    code = "import json, sys, rebalancer.cli.app; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    loaded = set(json.loads(out.stdout))
    assert "rebalancer.cli.app" in loaded
    assert not loaded & {"ccxt", "numba", "matplotlib", "scipy", "pandas", "fastapi", "pydantic"}


@pytest.mark.parametrize("argv", [["--help"], ["config", "check"], ["status", "--help"]])
def test_help_and_config_check_stay_light(argv: list[str], tmp_path: Path) -> None:
    code, out, loaded = cli(*argv, cwd=tmp_path)
    assert code == 0, out
    assert loaded == []


PAPER = """
state_dir = "{state}"
[targets]
BTC = 0.5
ETH = 0.3
USDT = 0.2
[paper]
initial_balances = {{ BTC = 0.05, USDT = 1000 }}
"""


def test_the_bot_runs_without_any_extra(tmp_path: Path) -> None:
    (tmp_path / "rebalancer.toml").write_text(PAPER.format(state=tmp_path / "state"))
    for argv in (["status"], ["plan"], ["rebalance", "--json"], ["run", "--once"]):
        code, out, loaded = cli(*argv, cwd=tmp_path, blocked=EXTRAS_MODULES)
        assert code == 0, (argv, out)
        assert "Traceback" not in out
        assert not {"numba", "matplotlib", "scipy", "fastapi"} & set(loaded)
    code, out, _ = cli("demo", "--json", cwd=tmp_path, blocked=EXTRAS_MODULES)
    assert code == 0, out
    assert json.loads(out)["bars"] > 400


@pytest.mark.parametrize(
    ("argv", "blocked", "extra"),
    [
        (["serve"], ("fastapi", "starlette", "uvicorn"), "web"),
        (["backtest", "--json"], ("matplotlib",), "backtest"),
        (["sweep", "--json"], ("numba", "llvmlite"), "backtest"),
        (["targets", "suggest", "--method", "min_variance"], ("scipy",), "backtest"),
    ],
)
def test_a_missing_extra_names_the_install(
    argv: list[str], blocked: tuple[str, ...], extra: str, tmp_path: Path
) -> None:
    code, out, _ = cli(*argv, cwd=tmp_path, blocked=blocked)
    assert code == 1, out
    assert f"pip install 'rebalancer[{extra}]'" in out and "Traceback" not in out
