"""The tables across scenarios: CPU per delivered message, local against crossing
workers, Teaser's ratios to python-socketio, and the targets met or missed."""

from __future__ import annotations

from bench.report.cells import ROW_NAMES, Row, fig, med, name, table, where


def _loads(row: Row) -> list[tuple[str, Row]]:
    kinds = (("one_per_request", "1/request"), ("bulk", "100/request"))
    return [(shown, row[kind]) for kind, shown in kinds if kind in row]


def cpu_per_message(sends: list[tuple[str, Row]]) -> str:
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


def local_vs_crossing(rows: list[Row]) -> str:
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


def ratios(scenarios: Row) -> str:
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


def targets(targets: list[Row]) -> str:
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
