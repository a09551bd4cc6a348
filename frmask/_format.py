"""How rates are written for people: one formatter for the printed tables, report.md and the pages."""

from __future__ import annotations


def percent(rate, *, missing: str = "–", unit: str = " %", digits: int = 2) -> str:
    """``rate`` (a fraction) as a percentage with ``digits`` decimals: ``0.0321 -> '3.21 %'``.

    ``None`` and NaN give ``missing``; ``unit`` follows the number (``""`` in tables whose header says %).
    """
    if rate is None or rate != rate:
        return missing
    return f"{100 * rate:.{digits}f}{unit}"
