"""The whole printout of a run: its header and legend, each scenario's table, the tables
across scenarios, the targets and the best uvicorn options."""

from __future__ import annotations

from collections.abc import Callable

from bench.report.cells import ROW_NAMES, Row, label
from bench.report.scenarios import idle, long_polls, many, options, polls, sends
from bench.report.summaries import cpu_per_message, local_vs_crossing, ratios, targets


def render(results: Row) -> str:
    """The whole printout of a run."""
    scenarios = results["scenarios"]
    parts = [_header(results)]
    renderers: dict[str, Callable[[Row], str]] = {
        "idle_sockets": idle,
        "targeted": sends,
        "idle_polls": polls,
        "scale_out": sends,
        "options": options,
        "longpoll": long_polls,
        "many": many,
    }
    for scenario_name, scenario in scenarios.items():
        ok = [row for row in scenario["rows"] if "error" not in row]
        parts.append(renderers[scenario_name]({**scenario, "rows": ok}))
        parts += [
            f"  FAILED {label(row)}: {row['error']}" for row in scenario["rows"] if "error" in row
        ]
    send_rows = [
        (scenario_name, row)
        for scenario_name in ("targeted", "scale_out")
        for row in scenarios.get(scenario_name, {}).get("rows", [])
        if "error" not in row
    ]
    if send_rows:
        parts.append(cpu_per_message(send_rows))
        if "scale_out" in scenarios:
            parts.append(local_vs_crossing(scenarios["scale_out"]["rows"]))
        parts.append(ratios(scenarios))
    parts.append(targets(results["targets"]))
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
