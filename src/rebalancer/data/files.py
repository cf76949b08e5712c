"""Finding candle files: ``{BASE}_{QUOTE}-{timeframe}.csv``, ``.csv.gz`` or ``.parquet``.

When the file is not there, the error lists what the folder holds and the nearest names
(same asset in another timeframe or quote, other capitalisation, sub-folders that have it).
"""

from __future__ import annotations

import difflib
from pathlib import Path

from rebalancer.core.errors import DataError

EXTENSIONS = (".csv", ".csv.gz", ".parquet")
_MAX_LISTED = 30


def candle_file_stem(asset: str, quote: str, timeframe: str) -> str:
    """``("BTC", "USDT", "1h")`` -> ``"BTC_USDT-1h"`` (freqtrade's naming)."""
    return f"{asset}_{quote}-{timeframe}"


def find_candle_file(directory: Path, asset: str, timeframe: str, quote: str = "USDT") -> Path:
    """The one file holding ``asset``/``quote`` candles of ``timeframe`` in ``directory``.

    Raises :class:`DataError` if the folder is missing, if no such file exists (listing the
    folder and near matches), or if several formats of the same series are present.
    """
    directory = Path(directory)
    if not directory.is_dir():
        what = "is a file, not a folder" if directory.exists() else "does not exist"
        raise DataError(
            f"candle folder {directory} {what}. Fix: pass the folder that holds files named "
            f"like {candle_file_stem(asset, quote, timeframe)}.csv."
        )
    stem = candle_file_stem(asset, quote, timeframe)
    found = [directory / (stem + ext) for ext in EXTENSIONS if (directory / (stem + ext)).is_file()]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DataError(
            f"{directory} holds the {asset}/{quote} {timeframe} candles in several files "
            f"({names}); it is ambiguous which one to use. Fix: keep only one of them."
        )
    if not found:
        raise DataError(_missing_file_message(directory, asset, quote, timeframe))
    return found[0]


def _missing_file_message(directory: Path, asset: str, quote: str, timeframe: str) -> str:
    stem = candle_file_stem(asset, quote, timeframe)
    expected = [stem + ext for ext in EXTENSIONS]
    names = sorted(p.name for p in directory.iterdir() if p.is_file())
    lines = [
        f"no candle file for {asset}/{quote} {timeframe} in {directory}: expected one of "
        + ", ".join(expected)
        + "."
    ]
    near = _near_matches(names, asset, stem)
    if near:
        lines.append("Near matches: " + ", ".join(near) + ".")
    elsewhere = [
        f"{sub.name}/{name}"
        for sub in sorted(p for p in directory.iterdir() if p.is_dir())
        for name in expected
        if (sub / name).is_file()
    ]
    if elsewhere:
        lines.append("Found in sub-folders: " + ", ".join(elsewhere) + ".")
    candles = [n for n in names if n.endswith(EXTENSIONS)]
    if candles:
        shown = ", ".join(candles[:_MAX_LISTED])
        more = f" ... and {len(candles) - _MAX_LISTED} more" if len(candles) > _MAX_LISTED else ""
        lines.append(f"Candle files in the folder ({len(candles)}): {shown}{more}.")
    else:
        lines.append("The folder holds no candle files (.csv, .csv.gz, .parquet).")
    lines.append(
        "Fix: check the asset, quote and timeframe, point to the folder that has the file, "
        "or download it: rebalancer data download --exchange binance "
        f"--assets {asset} --quote {quote} --timeframe {timeframe} --since 2024-01-01 "
        "--dir DIR (then --data-dir DIR)."
    )
    return "\n".join(lines)


def _near_matches(names: list[str], asset: str, stem: str) -> list[str]:
    prefix = f"{asset}_".upper()
    same_asset = [n for n in names if n.upper().startswith(prefix)]
    by_name = difflib.get_close_matches(stem + ".csv", names, n=5, cutoff=0.75)
    return list(dict.fromkeys(same_asset + by_name))
