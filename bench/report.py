"""The printed tables and the targets of issue 6, met or missed, from the results dict."""

from __future__ import annotations

from collections.abc import Callable, Iterable
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


def label(row: Row) -> str:
    base = f"{row['peer']} {row['storage']}, {row['topology']}"
    return f"{base}, ws={row['ws']} loop={row['loop']} http={row['http']}"


def table(title: str, headers: list[str], lines: Iterable[list[str]]) -> str:
    lines = list(lines)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
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


def render(results: Row) -> str:
    scenarios = results["scenarios"]
    parts = [_header(results)]
    renderers: dict[str, Callable[[Row], str]] = {
        "idle_sockets": _idle,
        "targeted": _sends,
        "idle_polls": _polls,
        "scale_out": _sends,
        "options": _options,
    }
    for name, scenario in scenarios.items():
        ok = [row for row in scenario["rows"] if "error" not in row]
        parts.append(renderers[name]({**scenario, "rows": ok}))
        parts += [
            f"  FAILED {label(row)}: {row['error']}" for row in scenario["rows"] if "error" in row
        ]
    parts.append(_targets(results["targets"]))
    if results.get("best_options"):
        parts.append(
            "Best uvicorn options for Teaser (by measurement): "
            + ", ".join(f"{k}={v}" for k, v in results["best_options"].items())
        )
    return "\n\n".join(parts)


def _header(results: Row) -> str:
    meta = results["meta"]
    return (
        f"Teaser benchmark ({'quick' if meta['quick'] else 'full'}): {meta['runs']} run(s) per "
        f"figure, shown as median (min–max); {meta['cpus']} cores shared by server and client; "
        f"CPU % is of one core."
    )


def _scenario_title(scenario: Row) -> str:
    return (
        f"{scenario['title']}  [load avg at start {scenario['load1_at_start']}, "
        f"{scenario['seconds']} s]"
    )


def _idle(scenario: Row) -> str:
    order = {(r["peer"], r["ws"]): i for i, r in reversed(list(enumerate(scenario["rows"])))}
    rows = sorted(scenario["rows"], key=lambda r: (order[r["peer"], r["ws"]], r["sockets"]))
    lines = [
        [
            f"{r['peer']} ({r['ws']})",
            f"{r['sockets']:,}",
            fig(r["kb_per_socket"]),
            fig(r["rss_mb"]),
            fig(r["opens_per_s"], 0),
        ]
        for r in rows
    ]
    return table(
        _scenario_title(scenario),
        ["server (ws)", "sockets", "KB/socket", "RSS MB", "opens/s"],
        lines,
    )


def _sends(scenario: Row) -> str:
    lines = []
    for r in scenario["rows"]:
        for kind in ("one_per_request", "bulk"):
            if kind not in r:
                continue
            load = r[kind]
            lines.append(
                [
                    f"{r['peer']} [{r['storage']}, {r['topology']}]",
                    "1/request" if kind == "one_per_request" else "100/request",
                    fig(r["latency"]["p50_ms"], 2) if kind == "one_per_request" else "",
                    fig(r["latency"]["p99_ms"], 2) if kind == "one_per_request" else "",
                    fig(load["msgs_per_s"], 0),
                    fig(load["p99_ms"], 1),
                    f"{int(med(load, 'lost') or 0)}/{int(med(load, 'errors') or 0)}",
                    cpu(load),
                ]
            )
    headers = [
        "server",
        "sends",
        "idle p50 ms",
        "idle p99 ms",
        "msgs/s (32 senders)",
        "p99 ms loaded",
        "lost/err",
        "CPU",
    ]
    return table(_scenario_title(scenario), headers, lines)


def _polls(scenario: Row) -> str:
    lines = [
        [
            f"{r['peer']} [{r['storage']}, {r['topology']}]",
            fig(r["polls"]["requests_per_s"], 0),
            fig(r["polls"]["p50_ms"], 2),
            fig(r["polls"]["p99_ms"], 2),
            str(int(med(r["polls"], "errors") or 0)),
            cpu(r["polls"]),
        ]
        for r in scenario["rows"]
    ]
    headers = ["server", "requests/s", "p50 ms", "p99 ms", "non-2xx", "CPU"]
    return table(_scenario_title(scenario), headers, lines)


def _options(scenario: Row) -> str:
    lines = [
        [
            f"ws={r['ws']} loop={r['loop']} http={r['http']}",
            fig(r["latency"]["p99_ms"], 2),
            fig(r["one_per_request"]["msgs_per_s"], 0),
            fig(r["one_per_request"]["p99_ms"], 1),
            fig(r["polls"]["requests_per_s"], 0),
            fig(r["polls"]["p99_ms"], 2),
        ]
        for r in scenario["rows"]
    ]
    headers = ["uvicorn options", "idle p99 ms", "msgs/s", "loaded p99 ms", "polls/s", "poll p99"]
    return table(_scenario_title(scenario), headers, lines)


def _targets(targets: list[Row]) -> str:
    lines = [
        [
            t["target"],
            "-" if t["value"] is None else f"{t['value']:,.2f}{t['unit']}",
            t["limit"],
            {True: "met", False: "MISSED", None: "n/a"}[t["met"]],
        ]
        for t in targets
    ]
    return table("Targets", ["target", "measured", "limit", "result"], lines)
