"""The cells of the printed tables: a figure as its median and range, which server a row
is, a table laid out in columns."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Row = dict[str, Any]


def fig(cell: Any, digits: int = 1) -> str:
    """A summarised figure as: median (min-max)."""
    if not isinstance(cell, dict) or cell.get("median") is None:
        return "-"
    median, low, high = cell["median"], cell["min"], cell["max"]
    if low == high:
        return f"{median:,.{digits}f}"
    return f"{median:,.{digits}f} ({low:,.{digits}f}–{high:,.{digits}f})"


def med(row: Row | None, *path: str) -> float | None:
    cell: Any = row
    for key in path:
        cell = cell.get(key) if isinstance(cell, dict) else None
    return cell.get("median") if isinstance(cell, dict) else None


# What each row's server is, printed once above the tables.
ROW_NAMES: dict[tuple[str, str], tuple[str, str]] = {
    ("teaser", "shipped"): (
        "teaser shipped",
        "Teaser as users start it: `teaser serve` (its uvicorn options, its default logging)",
    ),
    ("teaser", "tuned"): (
        "teaser tuned",
        "Teaser on `uvicorn api.app:create_app --no-access-log --log-level warning`",
    ),
    ("socketio", "same-wire"): (
        "socketio same-wire",
        "python-socketio emitting Teaser's whole message, and receiving the clients' acks",
    ),
    ("socketio-emit", "emit-and-forget"): (
        "socketio emit-and-forget",
        'python-socketio emitting {"id", "message"}: no acks, nothing kept',
    ),
    ("starlette", "bare"): ("starlette bare", "a Starlette WebSocket endpoint, sockets in a dict"),
}


def name(row: Row) -> str:
    known = ROW_NAMES.get((row["peer"], row.get("variant", "")))
    return known[0] if known else row["peer"]


def where(row: Row) -> str:
    return f"{name(row)} [{row['storage']}, {row['topology']}]"


def label(row: Row) -> str:
    if row.get("launch") == "teaser serve":
        return f"{where(row)}, teaser serve"
    return f"{where(row)}, ws={row['ws']} loop={row['loop']} http={row['http']}"


def table(title: str, headers: list[str], lines: Iterable[list[str]]) -> str:
    lines = list(lines)
    widths = [max([len(h), *(len(line[i]) for line in lines)]) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [title, fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


def cpu(load: Row) -> str:
    """Median CPU % of each side, and which side ran out first."""

    def pct(key: str) -> str:
        value = med(load, key)
        return "-" if value is None else f"{value:.0f}%"

    return (
        f"srv {pct('server_cpu_pct')} / cli {pct('client_cpu_pct')} / "
        f"other {pct('other_cpu_pct')} → {load.get('bottleneck', '-')}"
    )
