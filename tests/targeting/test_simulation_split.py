"""`teaser rules simulate` with a changed rules file says how the last hour's sessions
would split into its wordings and holdout, beside what the weights and holdout expect:
visits posted to a real server, on SQLite and PostgreSQL, then the command in a
subprocess. The expected split is worked out here from the session ids, by the same
hashes the trigger uses."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from realtime.targeting import load_rules
from realtime.targeting.experiments import held_out, variant_for
from tests.support import (
    ROOT,
    event_time,
    fresh_database,
    make_settings,
    new_session_id,
    serving,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

SITE = "woodstock_outlet"
HOLDOUT = 0.25
CHANGED_RULES = f"""
[trigger]
critical_pages = ["/cart", "/checkout"]
holdout = {HOLDOUT}

[[template]]
id = "checkout"
situation = "checkout"
text = "Need help with your order?"

[[template]]
id = "cart"
situation = "cart"
text = "Need a hand with your cart?"

[[template.variant]]
name = "free-shipping"
text = "Free shipping on your cart today"
weight = 2
"""
CART_SESSIONS, CHECKOUT_SESSIONS, BROWSING_SESSIONS = 60, 8, 5
LINE = re.compile(r"^  (?P<label>.+?) +(?P<sessions>\d+) +(?P<share>[\d.]+ %|-)  \((?P<note>.+)\)$")


@dataclass(frozen=True)
class Visits:
    database_url: str
    folder: Path
    cart: list[str]  # two pages of the cart each: a held-out one qualifies twice
    checkout: list[str]
    browsing: list[str]  # one page of /about: never qualifies

    @property
    def qualifying(self) -> list[str]:
        return self.cart + self.checkout


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=["sqlite", "postgresql"])
async def visits(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Visits]:
    folder = tmp_path_factory.mktemp("split")
    async with fresh_database(request.param, folder) as url:
        posted = Visits(url, folder, [], [], [])
        moments = itertools.count()
        async with (
            serving(make_settings(database_url=url)) as live,
            httpx.AsyncClient(base_url=live.base_url) as client,
        ):
            for sessions, paths, count in (
                (posted.cart, ["/cart", "/cart/review"], CART_SESSIONS),
                (posted.checkout, ["/checkout"], CHECKOUT_SESSIONS),
                (posted.browsing, ["/about"], BROWSING_SESSIONS),
            ):
                for _ in range(count):
                    session = new_session_id()
                    sessions.append(session)
                    for path in paths:
                        await post_page_view(client, session, path, next(moments))
        yield posted


async def post_page_view(client: httpx.AsyncClient, session: str, path: str, n: int) -> None:
    body = {
        "sessionId": session,
        "siteId": SITE,
        "type": "page_view",
        "path": path,
        "ts": event_time(n),
    }
    answer = await client.post("/api/events", content=orjson.dumps(body))
    assert answer.status_code == 202, answer.text


async def simulate(visits: Visits, *args: str) -> subprocess.CompletedProcess[str]:
    """The command as an operator runs it, the site having no rules file of its own."""
    (visits.folder / "rules").mkdir(exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": visits.database_url,
        "TEASER_RULES_DIR": str(visits.folder / "rules"),
    }
    command = [sys.executable, "-m", "api.cli", "rules", "simulate", *args, "--site", SITE]
    done = await asyncio.to_thread(
        subprocess.run, command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done


def changed_rules(visits: Visits) -> Path:
    path = visits.folder / "changed.toml"
    path.write_text(CHANGED_RULES)
    return path


def expected_groups(visits: Visits, rules_file: Path) -> dict[str, str]:
    """Each qualifying session's group, as the hashes place it."""
    cart = next(t for t in load_rules(rules_file).templates if t.id == "cart")
    groups = {}
    for session in visits.qualifying:
        if held_out(SITE, session, HOLDOUT):
            groups[session] = "holdout"
        elif session in visits.cart:
            wording = variant_for(SITE, session, cart)
            assert wording is not None
            groups[session] = f"cart · {wording.name}"
        else:
            groups[session] = "checkout"
    return groups


def split_rows(stdout: str) -> dict[str, dict[str, str]]:
    rows = {}
    for line in stdout.splitlines():
        if match := LINE.match(line):
            rows[match["label"]] = match.groupdict()
    return rows


def percent(part: int, whole: int) -> str:
    return f"{part / whole * 100:.1f} %"


async def test_the_split_counts_each_session_where_the_hashes_put_it(visits: Visits) -> None:
    rules_file = changed_rules(visits)
    groups = list(expected_groups(visits, rules_file).values())
    held = groups.count("holdout")
    cart_sent = groups.count("cart · original") + groups.count("cart · free-shipping")

    done = await simulate(visits, str(rules_file))

    lines = done.stdout.splitlines()
    split_at = lines.index(f"Split of {len(groups)} qualifying sessions (holdout 25 %):")
    assert lines[split_at - 1] == ""
    rows = split_rows("\n".join(lines[split_at:]))
    assert list(rows) == ["holdout", "checkout", "cart · original", "cart · free-shipping"]
    assert rows["holdout"]["sessions"] == str(held)
    assert rows["holdout"]["share"] == percent(held, len(groups))
    assert rows["holdout"]["note"] == "expected 25.0 %"
    assert rows["checkout"]["sessions"] == str(groups.count("checkout"))
    assert rows["checkout"]["share"] == "100.0 %"
    assert rows["checkout"]["note"] == "no variants"
    for wording, expected in (("original", "33.3 %"), ("free-shipping", "66.7 %")):
        count = groups.count(f"cart · {wording}")
        assert rows[f"cart · {wording}"]["sessions"] == str(count)
        assert rows[f"cart · {wording}"]["share"] == percent(count, cart_sent)
        assert rows[f"cart · {wording}"]["note"] == f"expected {expected}"
    # A real split, so that the counts above tell the groups apart.
    assert 0 < held < len(groups) and 0 < groups.count("cart · original") < cart_sent


async def test_a_held_out_session_would_be_sent_nothing_yet_shows_what_it_was_kept_from(
    visits: Visits,
) -> None:
    rules_file = changed_rules(visits)
    groups = expected_groups(visits, rules_file)

    text = await simulate(visits, str(rules_file))
    report = orjson.loads((await simulate(visits, str(rules_file), "--json")).stdout)

    sessions: dict[str, Any] = {each["session_id"]: each for each in report["sessions"]}
    assert set(sessions) == {*visits.qualifying, *visits.browsing}
    sent = [s for s in visits.qualifying if groups[s] != "holdout"]
    assert text.stdout.splitlines()[0] == (
        f"{len(sessions)} sessions of site {SITE} in the last 60 min; "
        f"{len(sent)} would get an automatic teaser with {rules_file}"
    )
    for session, group in groups.items():
        replay = sessions[session]
        if group == "holdout":
            assert replay["would_send"] == []
            assert replay["group"]["held_out"] is True
            # Kept back from every page that qualified: nothing sent, so no cooldown.
            pages = 2 if session in visits.cart else 1
            assert len(replay["withheld"]) == pages
            assert f"held out, not sent: [{_label(replay['withheld'][0])}]" in text.stdout
        else:
            assert replay["withheld"] == []
            assert [_label(send) for send in replay["would_send"]] == [group]
            assert replay["group"]["held_out"] is False
            assert f"[{group}]" in text.stdout
        assert _label(replay["group"]) == _label((replay["withheld"] or replay["would_send"])[0])
    for session in visits.browsing:
        assert sessions[session]["group"] is None
    assert report["split"]["qualifying"] == len(groups)
    assert report["split"]["holdout"] == {
        "name": "holdout",
        "sessions": list(groups.values()).count("holdout"),
        "share": list(groups.values()).count("holdout") / len(groups),
        "expected": HOLDOUT,
    }


def _label(entry: dict[str, Any]) -> str:
    return " · ".join(filter(None, (entry["template"], entry["variant"])))


async def test_rules_without_variants_or_a_holdout_say_so_in_one_line(visits: Visits) -> None:
    done = await simulate(visits)  # the shipped defaults: no variants, no holdout

    last = done.stdout.splitlines()[-1]
    assert last == (
        f"Split: these rules have no variants and no holdout; all {len(visits.qualifying)} "
        "qualifying sessions get their template's own text"
    )
    assert "Split of" not in done.stdout and "held out" not in done.stdout
    assert split_rows(done.stdout) == {}
