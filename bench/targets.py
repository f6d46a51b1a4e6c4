"""Issue 6's and issue 21's targets, checked against the medians of this run: Teaser as
shipped (`teaser serve`), and where a target is a ratio to python-socketio, against each of
its two rows. Where both issues set one for the same figure, issue 21's (the later) holds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.report import med

Row = dict[str, Any]
DEFAULT_WS = "websockets-sansio"
SHIPPED = {"peer": "teaser", "variant": "shipped"}
SOCKETIO_ROWS = (("socketio", "same-wire"), ("socketio-emit", "emit-and-forget"))
# Issue 21's ratios to each python-socketio row: 1/request sends, bulk sends.
SEND_RATIOS = {"same-wire": (1.3, 2.0), "emit-and-forget": (1.0, 1.5)}
MANY = 50_000  # issue 21's idle sockets on one worker


def find(results: Row, scenario: str, **match: Any) -> Row | None:
    rows = results["scenarios"].get(scenario, {}).get("rows", [])
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            found: Row = row
            return found
    return None


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def check(
    target: str, value: float | None, limit: str, ok: Callable[[float], bool], unit: str = ""
) -> Row:
    return {
        "target": target,
        "value": value,
        "unit": unit,
        "limit": limit,
        "met": None if value is None else ok(value),
    }


def evaluate(results: Row) -> list[Row]:
    checks = _idle(results) + _sends(results) + _polls(results) + _scaling(results)
    return checks + _crowd(results)


def _idle(results: Row) -> list[Row]:
    rows = results["scenarios"].get("idle_sockets", {}).get("rows", [])
    counts = [r["sockets"] for r in rows if r["peer"] == "teaser" and "error" not in r]
    if not counts:
        return []
    n = max(counts)
    teaser = find(results, "idle_sockets", **SHIPPED, sockets=n)
    peer = find(results, "idle_sockets", peer="socketio", ws=DEFAULT_WS, sockets=n)
    kb = med(teaser, "kb_per_socket")
    return [
        check(f"idle socket RSS at N={n:,}", kb, "≤ 25 KB", lambda v: v <= 25, " KB"),
        at_most(
            f"idle socket RSS vs python-socketio at N={n:,}",
            ratio(kb, med(peer, "kb_per_socket")),
            0.5,
            "×",
        ),
    ]


def _sends(results: Row) -> list[Row]:
    teaser = find(results, "targeted", **SHIPPED)
    a_to_b = find(results, "scale_out", **SHIPPED, topology="A→B")
    against = []
    for peer_name, variant in SOCKETIO_ROWS:
        peer = find(results, "targeted", peer=peer_name, variant=variant)
        single, bulk = SEND_RATIOS[variant]
        against += [
            at_least(
                f"targeted 1/request msgs/s vs python-socketio {variant}",
                ratio(
                    med(teaser, "one_per_request", "msgs_per_s"),
                    med(peer, "one_per_request", "msgs_per_s"),
                ),
                single,
            ),
            at_least(
                f"bulk 100/request msgs/s vs python-socketio {variant} 100/request",
                ratio(med(teaser, "bulk", "msgs_per_s"), med(peer, "bulk", "msgs_per_s")),
                bulk,
            ),
            at_most(
                f"lone send→receive p50 vs python-socketio {variant}, SQLite",
                ratio(med(teaser, "latency", "p50_ms"), med(peer, "latency", "p50_ms")),
                1.5,
                "×",
            ),
        ]
    return [
        *against,
        at_most(
            "targeted 1/request p99 under load (SQLite)",
            med(teaser, "one_per_request", "p99_ms"),
            25,
            " ms",
        ),
        at_most(
            "send→receive p99, N=1,000, one at a time, SQLite",
            med(teaser, "latency", "p99_ms"),
            5,
            " ms",
        ),
        at_most(
            "send→receive p99, N=1,000, one at a time, PostgreSQL+Redis A→B",
            med(a_to_b, "latency", "p99_ms"),
            8,
            " ms",
        ),
    ]


def at_least(target: str, value: float | None, times: float) -> Row:
    return check(target, value, f"≥ {times:g}×", lambda v: v >= times, "×")


def at_most(target: str, value: float | None, bound: float, unit: str) -> Row:
    return check(target, value, f"≤ {bound:g}{unit}", lambda v: v <= bound, unit)


def _polls(results: Row) -> list[Row]:
    checks = []
    for workers in ("1 worker", "2 workers"):
        teaser = find(results, "idle_polls", **SHIPPED, storage="sqlite", topology=workers)
        bare = find(results, "idle_polls", peer="starlette", topology=workers)
        if teaser and bare:
            checks.append(
                check(
                    f"idle polls/s vs bare Starlette, SQLite, {workers}",
                    ratio(
                        med(teaser, "polls", "requests_per_s"), med(bare, "polls", "requests_per_s")
                    ),
                    "≥ 0.8×",
                    lambda v: v >= 0.8,
                    "×",
                )
            )
    return checks


def _scaling(results: Row) -> list[Row]:
    checks = []
    for storage in ("sqlite", "postgres+redis"):
        one = find(results, "idle_polls", **SHIPPED, storage=storage, topology="1 worker")
        two = find(results, "idle_polls", **SHIPPED, storage=storage, topology="2 workers")
        if one and two:
            checks.append(
                check(
                    f"idle polls 1 → 2 workers ({storage})",
                    ratio(med(two, "polls", "requests_per_s"), med(one, "polls", "requests_per_s")),
                    "≥ 1.6×",
                    lambda v: v >= 1.6,
                    "×",
                )
            )
    one = find(results, "scale_out", **SHIPPED, topology="1 worker")
    two = find(results, "scale_out", **SHIPPED, topology="2 workers")
    if one and two:
        checks.append(
            check(
                "targeted sends 1 → 2 workers (postgres+redis)",
                ratio(
                    med(two, "one_per_request", "msgs_per_s"),
                    med(one, "one_per_request", "msgs_per_s"),
                ),
                "≥ 1.6×",
                lambda v: v >= 1.6,
                "×",
            )
        )
    return checks + _crossing(results)


def _crossing(results: Row) -> list[Row]:
    """Issue 21's: a message crossing workers costs what a local one does, A → B in bulk
    beats python-socketio with its Redis manager and leaves no backlog, a lone A → B send
    arrives within 3 ms (p50)."""
    local = find(results, "scale_out", **SHIPPED, topology="1 worker")
    crossing = find(results, "scale_out", **SHIPPED, topology="A→B")
    if crossing is None:
        return []
    checks = [
        at_most(
            f"CPU per message crossing ÷ local, {shown}, PostgreSQL+Redis",
            ratio(med(crossing, kind, "cpu_us_per_msg"), med(local, kind, "cpu_us_per_msg")),
            1.3,
            "×",
        )
        for kind, shown in (("one_per_request", "1/request"), ("bulk", "100/request"))
    ]
    for peer_name, variant in SOCKETIO_ROWS:
        peer = find(results, "scale_out", peer=peer_name, variant=variant, topology="A→B")
        checks.append(
            at_least(
                f"A→B bulk msgs/s vs python-socketio {variant} + Redis",
                ratio(med(crossing, "bulk", "msgs_per_s"), med(peer, "bulk", "msgs_per_s")),
                1.5,
            )
        )
    return [
        *checks,
        at_most(
            "A→B bulk: last message after the load's end",
            med(crossing, "bulk", "last_after_end_s"),
            1,
            " s",
        ),
        at_most(
            "lone A→B send→receive p50, PostgreSQL+Redis",
            med(crossing, "latency", "p50_ms"),
            3,
            " ms",
        ),
    ]


def _crowd(results: Row) -> list[Row]:
    """Issue 21's: 1,000 held long-polls, and 50,000 idle sockets (n/a where not measured)."""
    checks = []
    polls = find(results, "longpoll", **SHIPPED)
    if polls:
        checks.append(
            at_most(
                f"long-poll send→receive p99, {polls['held_polls']:,} held, one at a time, SQLite",
                med(polls, "latency", "p99_ms"),
                20,
                " ms",
            )
        )
    many = find(results, "many", **SHIPPED, sockets=MANY)
    if many:
        rss = med(many, "rss_mb")
        checks += [
            check(
                f"total RSS at {MANY:,} idle sockets, one worker",
                None if rss is None else rss / 1024,
                "< 1.2 GB",
                lambda v: v < 1.2,
                " GB",
            ),
            at_most(
                f"send→receive p99 among {MANY:,} sockets, one at a time, SQLite",
                med(many, "latency", "p99_ms"),
                10,
                " ms",
            ),
        ]
    return checks


def best_options(results: Row) -> dict[str, str]:
    """For each uvicorn option, the value with the most sends/s and polls/s against default."""
    rows = results["scenarios"].get("options", {}).get("rows", [])
    if not rows:
        return {}

    def score(row: Row) -> float:
        return (med(row, "one_per_request", "msgs_per_s") or 0) / max(
            med(rows[0], "one_per_request", "msgs_per_s") or 1, 1
        ) + (med(row, "polls", "requests_per_s") or 0) / max(
            med(rows[0], "polls", "requests_per_s") or 1, 1
        )

    best = {}
    for option in ("ws", "loop", "http"):
        candidates = {
            row[option]: score(row) for row in rows if _differs_only_in(row, rows[0], option)
        }
        best[option] = max(candidates, key=candidates.__getitem__)
    return best


def _differs_only_in(row: Row, default: Row, option: str) -> bool:
    return all(row[k] == default[k] for k in ("ws", "loop", "http") if k != option)
