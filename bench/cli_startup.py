"""How long the CLI takes to start: `rebalancer --help` and `rebalancer config check` against a
bare typer app of 20 commands rendering its own `--help`, on this machine.

    python bench/cli_startup.py            # hyperfine when installed (apt install hyperfine)
    python bench/cli_startup.py --runs 20  # more runs per command
    python bench/cli_startup.py --no-hyperfine
    python bench/cli_startup.py --src /tmp/old/src   # another checkout's tree, e.g. before

Each command runs in a fresh interpreter (the one running this script) from a script file,
as the `rebalancer` console script does, in a temporary folder (so `config check` validates
the built-in default, not a ./rebalancer.toml). Prints per command the wall time (mean ± sd),
the CPU time (user + system, steadier than wall time on a busy machine), the peak memory (max
RSS) and the ratio to the bare app; the target is a ratio of at most 2. Timing is never a
test: this is run by hand (see bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 2.0
SRC = [ROOT / "src"]  # the tree measured (--src)

BARE_APP = '''
import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode="markdown")


def make(i: int):
    def command(name: str = "x", count: int = 1, flag: bool = False) -> None:
        typer.echo(name)

    command.__doc__ = f"Do thing number {i}.\\n\\nExample: `bare cmd{i} --name y`"
    return command


for i in range(20):
    app.command(name=f"cmd{i}")(make(i))
app()
'''


# what pip's `rebalancer` console script runs (so both sides start from a script file)
ENTRY_POINT = """
import sys

from rebalancer.cli.app import main

sys.exit(main())
"""


@dataclass(frozen=True)
class Figure:
    """One command's timing: seconds (wall mean, wall sd, CPU mean) and peak RSS in MB."""

    name: str
    wall: float
    wall_sd: float
    cpu: float
    rss_mb: float


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC[0]), env.get("PYTHONPATH")]))
    env.pop("REBALANCER_CONFIG", None)
    return env


def _peak_rss_mb(argv: list[str], cwd: Path) -> float:
    """Max RSS of one run, measured in a wrapper so that no earlier child counts."""
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
        "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *argv], cwd=cwd, env=_env(), check=True,
        capture_output=True, text=True,
    )
    return int(out.stdout.strip()) / 1024


def _loop(argv: list[str], cwd: Path, runs: int) -> tuple[float, float, float]:
    walls, cpus = [], []
    for _ in range(runs + 1):  # the first run warms the file cache and is dropped
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=_env(), check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    walls, cpus = walls[1:], cpus[1:]
    return statistics.mean(walls), statistics.stdev(walls), statistics.mean(cpus)


def _hyperfine(argv: list[str], cwd: Path, runs: int) -> tuple[float, float, float]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            ["hyperfine", "-N", "--warmup", "2", "--runs", str(runs), "--export-json", out.name,
             "--style", "none", " ".join(argv)],
            cwd=cwd, env=_env(), check=True, stdout=subprocess.DEVNULL,
        )
        result = json.loads(Path(out.name).read_text())["results"][0]
    return result["mean"], result["stddev"] or 0.0, result["user"] + result["system"]


def measure(name: str, argv: list[str], cwd: Path, runs: int, hyperfine: bool) -> Figure:
    wall, sd, cpu = (_hyperfine if hyperfine else _loop)(argv, cwd, runs)
    return Figure(name, wall, sd, cpu, _peak_rss_mb(argv, cwd))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per command (default 10)")
    parser.add_argument("--no-hyperfine", action="store_true", help="time with subprocess")
    parser.add_argument("--src", type=Path, default=SRC[0], help="the src/ folder to measure")
    args = parser.parse_args()
    SRC[0] = args.src.resolve()
    use_hyperfine = shutil.which("hyperfine") is not None and not args.no_hyperfine
    py = sys.executable
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        (cwd / "bare.py").write_text(BARE_APP)
        (cwd / "rebalancer_cli.py").write_text(ENTRY_POINT)
        commands = {
            "bare typer app, 20 commands: --help": [py, "bare.py", "--help"],
            "rebalancer --help": [py, "rebalancer_cli.py", "--help"],
            "rebalancer config check": [py, "rebalancer_cli.py", "config", "check"],
        }
        figures = [measure(n, a, cwd, args.runs, use_hyperfine) for n, a in commands.items()]
    bare = figures[0]
    how = "hyperfine" if use_hyperfine else "subprocess loop"
    print(f"{how}, {args.runs} runs each, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(f"{'command':40} {'wall (s)':>16} {'cpu (s)':>8} {'RSS MB':>7} {'x wall':>7}", end="")
    print(f" {'x cpu':>6}")
    for f in figures:
        print(
            f"{f.name:40} {f.wall:8.3f} ± {f.wall_sd:5.3f} {f.cpu:8.3f} {f.rss_mb:7.0f} "
            f"{f.wall / bare.wall:7.2f} {f.cpu / bare.cpu:6.2f}"
        )
    worst = max(f.cpu / bare.cpu for f in figures[1:])
    verdict = "met" if worst <= TARGET_RATIO else "NOT met"
    print(f"target: at most {TARGET_RATIO:g}x the bare app (CPU time): {verdict} ({worst:.2f}x)")


if __name__ == "__main__":
    main()
