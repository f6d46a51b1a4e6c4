"""One table per scenario: idle sockets, sends, polls, uvicorn options, long-polls, many
sockets."""

from __future__ import annotations

from bench.report.cells import Row, cpu, fig, med, name, table, where


def scenario_title(scenario: Row) -> str:
    return (
        f"{scenario['title']}  [load avg at start {scenario['load1_at_start']}, "
        f"{scenario['seconds']} s]"
    )


def idle(scenario: Row) -> str:
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
        scenario_title(scenario),
        ["server (ws)", "sockets", "KB/socket", "RSS MB", "opens/s"],
        lines,
    )


def sends(scenario: Row) -> str:
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
    return table(scenario_title(scenario), headers, lines)


def polls(scenario: Row) -> str:
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
    return table(scenario_title(scenario), headers, lines)


def options(scenario: Row) -> str:
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
    return table(scenario_title(scenario), headers, lines)


def _lost(cell: Row) -> str:
    return f"{int(med(cell, 'lost') or 0)}/{int(med(cell, 'errors') or 0)}"


def long_polls(scenario: Row) -> str:
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
    return table(scenario_title(scenario), headers, lines)


def many(scenario: Row) -> str:
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
    return "\n".join([table(scenario_title(scenario), headers, lines), *notes])
