"""Benchmark: our sweep vs vectorbt and bt on real Binance candles -> one table + JSON.

    .venv/bin/python bench/run.py            # or: scripts/dev bench
    .venv/bin/python bench/run.py --quick    # G1 only (about a minute)

Every measurement runs in a fresh process (``--worker``), so each one's peak RSS is its own.
Needs the bench extra (``pip install -e '.[bench]'``: vectorbt, bt); without them only our
side is measured. Writes ``bench/results/latest.json``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    FEES,
    GRIDS,
    combos,
    fmt_mb,
    fmt_rel,
    fmt_seconds,
    machine,
    render,
    write_json,
)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "latest.json"
#: the G2 single full-fidelity run: 5-point band, 0.1 % taker fee
FULL = {"band": 0.05, "fee": 0.001}
TOL = 1e-9


def worker(name: str, grid: str, args: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Run one measurement in a fresh interpreter; None (and a note) if it failed."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--grid", grid]
        cmd += ["--args", json.dumps(args or {}), "--out", str(out)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            print(f"   {name} {grid}: FAILED ({' / '.join(tail)})", flush=True)
            return None
        res: dict[str, Any] = json.loads(out.read_text())
        res["wall_s"] = wall
        print(f"   {name} {grid}: done in {wall:.1f} s", flush=True)
        return res


def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# -- agreement -----------------------------------------------------------------------------------


def agreement(
    ours: dict[str, Any], final: list[float], bars: list[list[int]] | None, picked: list[int]
) -> dict[str, Any]:
    """Peer vs ours on the ``picked`` combinations, split at zero fee / with fees."""
    cs_fee = [FEES[i % len(FEES)] for i in picked]  # combos are band-major, fees inner
    out: dict[str, Any] = {}
    for label, want in (("zero_fee", True), ("with_fees", False)):
        idx = [j for j, f in enumerate(cs_fee) if (f == 0.0) == want]
        if not idx:
            continue
        rel = [abs(final[j] / ours["final_value"][picked[j]] - 1) for j in idx]
        same = None
        if bars is not None and "rebalance_bars" in ours:
            same = sum(bars[j] == ours["rebalance_bars"][picked[j]] for j in idx)
        entry: dict[str, Any] = {
            "n": len(idx),
            "max_rel": max(rel),
            "median_rel": statistics.median(rel),
            "same_bars": same,
        }
        if not want and bars is not None and "rebalance_bars" in ours:
            same_idx = [j for j in idx if bars[j] == ours["rebalance_bars"][picked[j]]]
            entry["max_rel_same_bars"] = (
                max(abs(final[j] / ours["final_value"][picked[j]] - 1) for j in same_idx)
                if same_idx
                else math.nan
            )
            by_fee = {}
            for f in FEES[1:]:
                sel = [j for j in idx if cs_fee[j] == f]
                signed = [final[j] / ours["final_value"][picked[j]] - 1 for j in sel]
                if signed:
                    by_fee[str(f)] = {
                        "n": len(sel),
                        "median_signed_rel": statistics.median(signed),
                        "max_abs_rel": max(abs(x) for x in signed),
                    }
            entry["by_fee"] = by_fee
        out[label] = entry
    return out


def agree_text(a: dict[str, Any] | None, key: str) -> str:
    if not a or key not in a:
        return "-"
    e = a[key]
    bars = "" if e["same_bars"] is None else f", same bars {e['same_bars']}/{e['n']}"
    if key == "zero_fee":
        return f"max rel {fmt_rel(e['max_rel'])}{bars}"
    return f"median {fmt_rel(e['median_rel'])}, max {fmt_rel(e['max_rel'])}{bars}"


# -- the run -------------------------------------------------------------------------------------


def measure(grids: list[str], peers: bool) -> dict[str, Any]:
    vbt_ok = peers and have("vectorbt")
    bt_ok = peers and have("bt")
    res: dict[str, Any] = {}
    for g in grids:
        grid = GRIDS[g]
        n = grid.n_combos
        print(f"== {g}: {grid.description}; {n} combos", flush=True)
        r: dict[str, Any] = {}
        reps = {"G1": 20, "G2": 20, "G3": 5}.get(g, 3)
        r["ours"] = worker("ours_sweep", g, {"record": g != "G4", "repeat": reps})
        if vbt_ok:
            if g in ("G1", "G2"):
                r["vbt"] = worker("vbt_sweep", g, {"orders": True, "repeat": 3 if g == "G1" else 2})
            else:  # too big for vectorbt's full grid here: every 5th / 50th combo, extrapolated
                step = 5 if g == "G3" else 50
                r["vbt"] = worker("vbt_sweep", g, {"subset": list(range(0, n, step))})
        if bt_ok:
            if g == "G1":
                r["bt"] = worker("bt_runs", g, {"subset": list(range(n))})
            elif g == "G2":
                fee0 = [i for i in range(n) if i % len(FEES) == 0]
                band5 = [16 + j for j in range(len(FEES))]  # band 5 %, every fee
                subset = sorted({*fee0[::6], *band5})
                r["bt"] = worker("bt_runs", g, {"subset": subset})
            elif g == "G3":  # one run on the first 10,000 bars, extrapolated
                r["bt"] = worker("bt_runs", g, {"subset": [16], "bars": 10_000})
        if g == "G2":
            r["ours_full"] = worker("ours_full", g, {**FULL, "repeat": 2})
            if vbt_ok:
                r["vbt_single"] = worker("vbt_single", g, {**FULL, "repeat": 3})
        res[g] = r
    return res


def summarise(res: dict[str, Any]) -> tuple[list[dict[str, str]], dict[str, Any]]:
    rows: list[dict[str, str]] = []
    verdicts: dict[str, Any] = {}
    for g, r in res.items():
        grid = GRIDS[g]
        n = grid.n_combos
        ours, vbt, btr = r.get("ours"), r.get("vbt"), r.get("bt")
        if ours is None:
            continue
        shape = f"{ours['bars']} bars x {ours['assets']} assets"
        vbt_s = bt_s = math.nan
        vbt_txt = bt_txt = "-"
        if vbt:
            k = vbt["combos_run"]
            vbt_s = vbt["seconds"] * n / k
            vbt_txt = fmt_seconds(vbt_s) + ("" if k == n else f" (extrap. from {k})")
        if btr:
            per = btr["seconds_per_run"] * btr["bars_grid"] / btr["bars_run"]
            bt_s = per * n
            part = "" if btr["bars_run"] == btr["bars_grid"] else f" on {btr['bars_run']} bars"
            bt_txt = f"{fmt_seconds(bt_s)} (extrap. from {len(btr['runs'])} run{part})"
            if len(btr["runs"]) == n and not part:
                bt_txt = fmt_seconds(sum(x["seconds"] for x in btr["runs"]))
                bt_s = sum(x["seconds"] for x in btr["runs"])
        ratio = [
            f"{peer_s / ours['seconds']:,.0f}x vs {name}"
            for name, peer_s in (("vectorbt", vbt_s), ("bt", bt_s))
            if math.isfinite(peer_s)
        ]
        vbt_cpu = math.nan
        if vbt and "cpu_s" in vbt and "cpu_s" in ours:
            vbt_cpu = vbt["cpu_s"] * n / vbt["combos_run"]
            ratio.append(f"CPU time {vbt_cpu / ours['cpu_s']:,.0f}x vs vectorbt")
            vbt_txt += f" (cpu {fmt_seconds(vbt_cpu)})"
        rows.append(
            {
                "grid": g,
                "measure": f"sweep, {n} combos ({shape})",
                "ours": fmt_seconds(ours["seconds"])
                + (f" (cpu {fmt_seconds(ours['cpu_s'])})" if "cpu_s" in ours else ""),
                "vectorbt": vbt_txt,
                "bt": bt_txt,
                "result": "ours faster: " + ", ".join(ratio) if ratio else "",
            }
        )
        v: dict[str, Any] = {"ours_s": ours["seconds"], "vbt_s": vbt_s, "bt_s": bt_s}
        if math.isfinite(vbt_s):
            v["ratio_vbt"] = vbt_s / ours["seconds"]
        if math.isfinite(vbt_cpu):
            v["ratio_vbt_cpu"] = vbt_cpu / ours["cpu_s"]
        rows.append(
            {
                "grid": g,
                "measure": "peak RSS of the process (traced heap)",
                "ours": f"{fmt_mb(ours['peak_rss_mb'])} ({ours['traced_mb']:.1f} MB)",
                "vectorbt": "-"
                if not vbt
                else fmt_mb(vbt["peak_rss_mb"])
                + ("" if vbt["combos_run"] == n else f" ({vbt['combos_run']} combos)"),
                "bt": "-" if not btr else fmt_mb(btr["peak_rss_mb"]) + " (1 run at a time)",
                "result": f"ours after loading data, before the sweep: "
                f"{fmt_mb(ours['rss_after_load_mb'])}",
            }
        )
        v["ours_rss_mb"] = ours["peak_rss_mb"]
        rows.append(
            {
                "grid": g,
                "measure": "first call: numba compile or cache load (not in the times)",
                "ours": fmt_seconds(ours["compile_s"]),
                "vectorbt": "-" if not vbt else fmt_seconds(vbt["compile_s"]),
                "bt": "-",
                "result": f"data load {fmt_seconds(ours['load_s'])}, "
                f"{ours['skipped_bars']} bars skipped (gaps)",
            }
        )
        agree: dict[str, Any] = {}
        if vbt:
            agree["vectorbt"] = agreement(
                ours, vbt["final_value"], vbt["rebalance_bars"], vbt["picked"]
            )
            if "from_orders" in vbt:
                agree["vectorbt_from_orders"] = agreement(
                    ours, vbt["from_orders"]["final_value"], None, vbt["picked"]
                )
        if btr:
            picked = [x["index"] for x in btr["runs"]]
            if btr["bars_run"] == btr["bars_grid"]:
                agree["bt"] = agreement(
                    ours,
                    [x["final_value"] for x in btr["runs"]],
                    [x["rebalance_bars"] for x in btr["runs"]],
                    picked,
                )
        if agree:
            fo = agree.get("vectorbt_from_orders", {}).get("zero_fee")
            rows.append(
                {
                    "grid": g,
                    "measure": "zero fee: final value vs ours",
                    "ours": "-",
                    "vectorbt": agree_text(agree.get("vectorbt"), "zero_fee"),
                    "bt": agree_text(agree.get("bt"), "zero_fee"),
                    "result": ""
                    if not fo
                    else f"vectorbt from_orders replay: max rel {fmt_rel(fo['max_rel'])}",
                }
            )
            rows.append(
                {
                    "grid": g,
                    "measure": "with fees: abs rel diff of final value",
                    "ours": "-",
                    "vectorbt": agree_text(agree.get("vectorbt"), "with_fees"),
                    "bt": agree_text(agree.get("bt"), "with_fees"),
                    "result": "fee models differ (see README)",
                }
            )
        v["agreement"] = agree
        full, single = r.get("ours_full"), r.get("vbt_single")
        if full:
            rows.append(
                {
                    "grid": g,
                    "measure": f"one full-fidelity run (band {FULL['band']:.0%}, "
                    f"fee {FULL['fee']:.1%})",
                    "ours": f"{fmt_seconds(full['seconds'])} ({full['rebalances']} reb.)",
                    "vectorbt": "-"
                    if not single
                    else f"{fmt_seconds(single['seconds'])} (one threshold run)",
                    "bt": "-",
                    "result": ""
                    if not single
                    else f"ours / vectorbt = {full['seconds'] / single['seconds']:.1f}",
                }
            )
            v["full_s"] = full["seconds"]
            v["vbt_single_s"] = single["seconds"] if single else math.nan
        verdicts[g] = v
    return rows, verdicts


def targets(verdicts: dict[str, Any]) -> list[dict[str, Any]]:
    def zero_fee_ok(g: str, peer: str) -> bool | None:
        a = verdicts.get(g, {}).get("agreement", {}).get(peer, {}).get("zero_fee")
        if not a:
            return None
        return bool(a["max_rel"] <= TOL and a["same_bars"] == a["n"])

    g2, g4 = verdicts.get("G2", {}), verdicts.get("G4", {})
    out = [
        ("G2 sweep >= 300x faster than vectorbt", g2.get("ratio_vbt", math.nan) >= 300),
        (
            "G2 sweep >= 300x less CPU time than vectorbt",
            g2.get("ratio_vbt_cpu", math.nan) >= 300,
        ),
        ("G2 sweep peak RSS < 500 MB", g2.get("ours_rss_mb", math.inf) < 500),
        ("G4 (1,000 combos) within 60 s", g4.get("ours_s", math.inf) <= 60),
        ("G4 peak RSS < 1 GB", g4.get("ours_rss_mb", math.inf) < 1024),
        (
            "G2 full-fidelity run no slower than one vectorbt run",
            g2.get("full_s", math.inf) <= g2.get("vbt_single_s", math.nan),
        ),
    ]
    measured = {"G2 sweep >= 300x faster than vectorbt": "ratio_vbt" in g2}
    measured["G2 sweep >= 300x less CPU time than vectorbt"] = "ratio_vbt_cpu" in g2
    measured["G2 sweep peak RSS < 500 MB"] = "ours_rss_mb" in g2
    measured["G4 (1,000 combos) within 60 s"] = "ours_s" in g4
    measured["G4 peak RSS < 1 GB"] = "ours_rss_mb" in g4
    measured["G2 full-fidelity run no slower than one vectorbt run"] = math.isfinite(
        g2.get("vbt_single_s", math.nan)
    )
    res = [{"target": t, "met": bool(ok) if measured[t] else None} for t, ok in out]
    for g in ("G1", "G2"):
        for peer in ("vectorbt", "bt"):
            ok = zero_fee_ok(g, peer)
            res.append(
                {
                    "target": f"{g} zero fee == {peer} (1e-9 rel, same bars)",
                    "met": ok,
                }
            )
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--grid", help=argparse.SUPPRESS)
    parser.add_argument("--args", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="G1 only")
    parser.add_argument("--grids", default="G1,G2,G3,G4", help="comma-separated subset")
    parser.add_argument("--no-peers", action="store_true", help="measure ours only")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the JSON")
    a = parser.parse_args()
    if a.worker:
        from workers import run_worker

        load_start = os.getloadavg()[0]
        out = run_worker(a.worker, a.grid, json.loads(a.args))
        out["loadavg_1min"] = [load_start, os.getloadavg()[0]]  # other work on the machine
        write_json(Path(a.out), out)
        return
    grids = ["G1"] if a.quick else [g.strip() for g in a.grids.split(",") if g.strip()]
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    res = measure(grids, peers=not a.no_peers)
    rows, verdicts = summarise(res)
    goals = targets(verdicts)
    print()
    print(render(rows))
    print()
    for t in goals:
        mark = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        print(f"  {t['target']}: {mark}")
    for per_grid in res.values():  # keep the JSON small: bar lists were compared above
        for part in per_grid.values():
            if isinstance(part, dict):
                part.pop("rebalance_bars", None)
                for run in part.get("runs", []):
                    run.pop("rebalance_bars", None)
    versions: dict[str, str] = {"numpy": np.__version__}
    for mod in ("numba", "pandas", "vectorbt", "bt"):
        if have(mod):
            versions[mod] = __import__(mod).__version__
    write_json(
        a.json,
        {
            "started": started.isoformat(timespec="seconds"),
            "seconds": time.perf_counter() - t0,
            "machine": machine(),
            "loadavg_1min_at_end": os.getloadavg()[0],
            "versions": versions,
            "grids": {g: {**GRIDS[g].__dict__, "combos": len(combos(GRIDS[g]))} for g in grids},
            "table": rows,
            "targets": goals,
            "raw": res,
        },
    )
    print(f"\nwrote {a.json}")


if __name__ == "__main__":
    main()
