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


def render(results: Row) -> str:
    scenarios = results["scenarios"]
    parts = [_header(results)]
    renderers: dict[str, Callable[[Row], str]] = {
        "idle_sockets": _idle,
        "targeted": _sends,
        "idle_polls": _polls,
        "scale_out": _sends,
        "options": _options,
        "longpoll": _long_polls,
        "many": _many,
    }
    for scenario_name, scenario in scenarios.items():
        ok = [row for row in scenario["rows"] if "error" not in row]
        parts.append(renderers[scenario_name]({**scenario, "rows": ok}))
        parts += [
            f"  FAILED {label(row)}: {row['error']}" for row in scenario["rows"] if "error" in row
        ]
    sends = [
        (scenario_name, row)
        for scenario_name in ("targeted", "scale_out")
        for row in scenarios.get(scenario_name, {}).get("rows", [])
        if "error" not in row
    ]
    if sends:
        parts.append(_cpu_per_message(sends))
        if "scale_out" in scenarios:
            parts.append(_local_vs_crossing(scenarios["scale_out"]["rows"]))
        parts.append(_ratios(scenarios))
    parts.append(_targets(results["targets"]))
    if results.get("best_options"):
        parts.append(
            "Best uvicorn options for Teaser (by measurement): "
            + ", ".join(f"{k}={v}" for k, v in results["best_options"].items())
        )
    return "\n\n".join(parts)


def _header(results: Row) -> str:
    meta = results["meta"]
    head = (
        f"Teaser benchmark ({'quick' if meta['quick'] else 'full'}): {meta['runs']} run(s) per "
        f"figure, shown as median (min–max); {meta['cpus']} cores shared by server and client; "
        f"CPU % is of one core."
    )
    width = max(len(short) for short, _ in ROW_NAMES.values())
    legend = [f"  {short:<{width}}  {long}" for short, long in ROW_NAMES.values()]
    return "\n".join([head, "Rows:", *legend])


def _scenario_title(scenario: Row) -> str:
    return (
        f"{scenario['title']}  [load avg at start {scenario['load1_at_start']}, "
        f"{scenario['seconds']} s]"
    )


def _idle(scenario: Row) -> str:
    def server(row: Row) -> str:
        served = "teaser serve" if row.get("launch") == "teaser serve" else row["ws"]
        return f"{name(row)} ({served})"

    order = {server(r): i for i, r in reversed(list(enumerate(scenario["rows"])))}
    rows = sorted(scenario["rows"], key=lambda r: (order[server(r)], r["sockets"]))
    lines = [
        [
            server(r),
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
                    where(r),
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
            where(r),
            fig(r["polls"]["requests_per_s"], 0),
            fig(r["polls"]["p50_ms"], 2),
            fig(r["polls"]["p99_ms"], 2),
            fig(r["polls"].get("cpu_us_per_request"), 0),
            str(int(med(r["polls"], "errors") or 0)),
            cpu(r["polls"]),
        ]
        for r in scenario["rows"]
    ]
    headers = ["server", "requests/s", "p50 ms", "p99 ms", "µs CPU/request", "non-2xx", "CPU"]
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


def _lost(cell: Row) -> str:
    return f"{int(med(cell, 'lost') or 0)}/{int(med(cell, 'errors') or 0)}"


def _long_polls(scenario: Row) -> str:
    lines = [
        [
            where(r),
            f"{r['held_polls']:,}",
            fig(r["held"]["kb_per_poll"]),
            fig(r["held"]["rss_mb"]),
            fig(r["held"]["holds_per_s"], 0),
            fig(r["latency"]["p50_ms"], 2),
            fig(r["latency"]["p99_ms"], 2),
            _lost(r["latency"]),
            fig(r["one_per_request"]["msgs_per_s"], 0),
            fig(r["one_per_request"]["p99_ms"], 1),
            _lost(r["one_per_request"]),
            cpu(r["one_per_request"]),
        ]
        for r in scenario["rows"]
    ]
    headers = [
        "server",
        "held",
        "KB/poll",
        "RSS MB",
        "holds/s",
        "lone p50 ms",
        "lone p99 ms",
        "lost/err",
        "msgs/s (32 senders)",
        "p99 ms loaded",
        "lost/err",
        "CPU (loaded)",
    ]
    return table(_scenario_title(scenario), headers, lines)


def _many(scenario: Row) -> str:
    rows = sorted(scenario["rows"], key=lambda r: r["sockets"])
    lines = [
        [
            where(r),
            f"{r['sockets']:,}",
            str(r["client_processes"]),
            fig(r["kb_per_socket"]),
            fig(r["rss_mb"]),
            fig(r["opens_per_s"], 0),
            fig(r["server_cpu_pct_opening"], 0),
            fig(r["latency"]["p50_ms"], 2),
            fig(r["latency"]["p99_ms"], 2),
            _lost(r["latency"]),
        ]
        for r in rows
        if "skipped" not in r
    ]
    headers = [
        "server",
        "sockets",
        "clients",
        "KB/socket",
        "RSS MB",
        "opens/s",
        "srv CPU % opening",
        "lone p50 ms",
        "lone p99 ms",
        "lost/err",
    ]
    notes = [f"  {r['sockets']:,} sockets {r['skipped']}" for r in rows if "skipped" in r]
    return "\n".join([table(_scenario_title(scenario), headers, lines), *notes])


def _loads(row: Row) -> list[tuple[str, Row]]:
    kinds = (("one_per_request", "1/request"), ("bulk", "100/request"))
    return [(shown, row[kind]) for kind, shown in kinds if kind in row]


def _cpu_per_message(sends: list[tuple[str, Row]]) -> str:
    lines = []
    for scenario_name, r in sends:
        for shown, load in _loads(r):
            parts = "/".join(
                f"{med(load, f'{part}_cpu_s') or 0:.2f}" for part in ("server", "redis", "postgres")
            )
            lines.append(
                [
                    {"targeted": "2+3", "scale_out": "5"}[scenario_name],
                    where(r),
                    shown,
                    fig(load.get("received"), 0),
                    parts,
                    fig(load.get("cpu_us_per_msg"), 0),
                    fig(load.get("late"), 0),
                    fig(load.get("last_after_end_s"), 2),
                ]
            )
    headers = [
        "scn",
        "server",
        "sends",
        "received",
        "CPU s srv/redis/pg",
        "µs CPU/msg",
        "late >1 s",
        "last after end s",
    ]
    title = (
        "CPU per delivered message: server-side CPU (every server process, redis-server, "
        "PostgreSQL) from the first send until the last message arrived, ÷ messages "
        "received. Backlog: messages arriving > 1 s after the senders stopped, and when the "
        "last one arrived"
    )
    return table(title, headers, lines)


def _local_vs_crossing(rows: list[Row]) -> str:
    lines = []
    for (peer, variant), (short, _) in ROW_NAMES.items():
        mine = [r for r in rows if (r["peer"], r.get("variant")) == (peer, variant)]
        local = next((r for r in mine if r["topology"] == "1 worker" and "error" not in r), None)
        crossing = next((r for r in mine if r["topology"] == "A→B" and "error" not in r), None)
        if local is None and crossing is None:
            continue
        storage = (local or crossing or {}).get("storage", "-")
        for kind, shown in (("one_per_request", "1/request"), ("bulk", "100/request")):
            local_us = med(local, kind, "cpu_us_per_msg")
            crossing_us = med(crossing, kind, "cpu_us_per_msg")
            if local_us is None and crossing_us is None:
                continue
            times = f"{crossing_us / local_us:.2f}×" if local_us and crossing_us else "-"
            lines.append(
                [
                    f"{short} [{storage}]",
                    shown,
                    "-" if local_us is None else f"{local_us:,.0f}",
                    "-" if crossing_us is None else f"{crossing_us:,.0f}",
                    times,
                ]
            )
    headers = [
        "server",
        "sends",
        "local µs/msg (1 worker)",
        "crossing µs/msg (A→B)",
        "crossing ÷ local",
    ]
    return table(
        "Scale-out: server-side CPU per delivered message, local and crossing", headers, lines
    )


def _ratios(scenarios: Row) -> str:
    """Teaser's medians over each python-socketio row's, within one scenario."""

    def rows_of(scenario_name: str) -> list[Row]:
        found = scenarios.get(scenario_name, {}).get("rows", [])
        return [r for r in found if "error" not in r]

    def ratio(a: Row, b: Row, *path: str) -> str:
        top, bottom = med(a, *path), med(b, *path)
        return f"{top / bottom:.2f}×" if top is not None and bottom else "-"

    pairs = []
    for scenario_name, topology in (("targeted", "1 worker"), ("scale_out", "A→B")):
        found = [r for r in rows_of(scenario_name) if r["topology"] == topology]
        teasers = [r for r in found if r["peer"] == "teaser"]
        peers = [r for r in found if r["peer"] in ("socketio", "socketio-emit")]
        pairs += [(scenario_name, t, p) for t in teasers for p in peers]
    lines = [
        [
            f"{where(t)} ÷ {name(p)}",
            ratio(t, p, "one_per_request", "msgs_per_s"),
            ratio(t, p, "bulk", "msgs_per_s"),
            ratio(t, p, "latency", "p99_ms"),
            ratio(t, p, "one_per_request", "cpu_us_per_msg"),
            ratio(t, p, "bulk", "cpu_us_per_msg"),
        ]
        for _, t, p in pairs
    ]
    headers = [
        "Teaser ÷ python-socketio",
        "msgs/s 1/req",
        "msgs/s bulk",
        "idle p99",
        "µs CPU/msg 1/req",
        "µs CPU/msg bulk",
    ]
    title = (
        "Ratios of medians (msgs/s: higher is better for Teaser; idle p99 and CPU/msg: "
        "lower is better)"
    )
    return table(title, headers, lines)


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
