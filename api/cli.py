"""The `teaser` command: serve, db upgrade, site and key administration."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.accounts import (
    SIGN_IN_LINK_TTL_MS,
    OperatorRegistry,
    OperatorSessions,
    Privacy,
    SignInLinks,
    Site,
    SiteRegistry,
    local_base_url,
    sign_in_url,
)
from realtime.fanout import Broker, sign_out_channel
from realtime.migrations.migrate import upgrade
from realtime.platform import (
    NotFound,
    RulesError,
    Settings,
    TeaserError,
    check_site_id,
    create_engine,
    now_ms,
)
from realtime.targeting import DEFAULT_RULES, RuleBook, RuleSet, load_rules, simulate
from realtime.webhooks import SUBSCRIBABLE, Subscriptions, WebhookEndpoints

DISTRIBUTION = "teaser-push"
T = TypeVar("T")
Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "listen":
            return listen(args)
        command: Command = args.run
        return asyncio.run(command(args))
    except TeaserError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1


def version() -> str:
    """The installed distribution's version (pyproject.toml's, in a checkout's venv too)."""
    return importlib.metadata.version(DISTRIBUTION)


def listen(args: argparse.Namespace) -> int:
    from api.listen import default_server, listen

    return listen(args.url or default_server(), args.site, args.session_id, args.token)


def serve(args: argparse.Namespace) -> int:
    from api.serving import serve

    # Where it listens, for its workers' dev-mode sign-in link (realtime/accounts).
    os.environ["HOST"], os.environ["PORT"] = args.host, str(args.port)
    serve(args.host, args.port, args.workers, args.forwarded_allow_ips)
    return 0


def _on_database(
    make: Callable[[AsyncEngine], T], job: Callable[[T, argparse.Namespace], Awaitable[int]]
) -> Command:
    """A command run against the configured database, brought to the latest schema first."""

    async def run(args: argparse.Namespace) -> int:
        engine = create_engine(Settings.from_environ().database_url)
        try:
            await upgrade(engine)
            return await job(make(engine), args)
        finally:
            await engine.dispose()

    return run


def _with_sites(job: Callable[[SiteRegistry, argparse.Namespace], Awaitable[int]]) -> Command:
    return _on_database(SiteRegistry, job)


async def db_upgrade(engine: AsyncEngine, args: argparse.Namespace) -> int:
    print("database is at the latest schema")
    return 0


async def site_add(sites: SiteRegistry, args: argparse.Namespace) -> int:
    site, key = await sites.create(
        args.site_id, name=args.name or args.site_id, origins=tuple(args.origin)
    )
    print(f"site {site.id} created; allowed origins: {', '.join(site.allowed_origins) or '(none)'}")
    print(f"API key (shown once, store it now): {key}")
    return 0


async def site_list(sites: SiteRegistry, args: argparse.Namespace) -> int:
    for site in await sites.list_sites():
        print(f"{site.id}\t{site.name}\t{' '.join(site.allowed_origins) or '-'}")
    return 0


async def site_origins(sites: SiteRegistry, args: argparse.Namespace) -> int:
    changes, replacement = args.add or args.remove, args.origin or args.clear
    if changes and replacement:
        print(
            "error: give the whole list (ORIGIN … or --clear) or changes to it (--add, "
            "--remove), not both",
            file=sys.stderr,
        )
        return 2
    if changes:
        allowed = await sites.change_origins(
            args.site_id, add=tuple(args.add), remove=tuple(args.remove)
        )
    elif replacement:
        allowed = await sites.set_origins(args.site_id, tuple(args.origin))
    else:  # only asked: show the list, change nothing
        allowed = (await _site(sites, args.site_id)).allowed_origins
    print(f"site {args.site_id} allows: {' '.join(allowed) or '(only Teaser’s own pages)'}")
    return 0


async def _site(sites: SiteRegistry, site_id: str) -> Site:
    site = await sites.get(site_id)
    if site is None:
        raise NotFound(f"no site '{site_id}'")
    return site


async def key_add(sites: SiteRegistry, args: argparse.Namespace) -> int:
    number, key = await sites.add_numbered_key(args.site_id)
    print(f"key {number} of site {args.site_id} added")
    print(f"API key (shown once, store it now): {key}")
    return 0


async def key_list(sites: SiteRegistry, args: argparse.Namespace) -> int:
    await _site(sites, args.site_id)
    for key in await sites.list_keys(args.site_id):
        state = "active" if key.revoked_at is None else f"revoked {_when(key.revoked_at)}"
        print(f"{key.number}\t{key.hint}…\tcreated {_when(key.created_at)}\t{state}")
    return 0


async def key_revoke(sites: SiteRegistry, args: argparse.Namespace) -> int:
    await _site(sites, args.site_id)
    if not await sites.revoke_key(args.site_id, args.key_number):
        print(
            f"error: site {args.site_id} has no active key {args.key_number} "
            f"(`teaser key list {args.site_id}` shows its keys)",
            file=sys.stderr,
        )
        return 1
    print(f"key {args.key_number} of site {args.site_id} revoked")
    return 0


def _rulebook() -> RuleBook:
    directory = Settings.from_environ().rules_dir
    return RuleBook(Path(directory) if directory else None)


async def rules_init(args: argparse.Namespace) -> int:
    path = _rulebook().write_defaults(args.site_id, force=args.force)
    print(f"wrote the shipped default rules to {path}")
    print(
        f"edit it: the server picks up each saved change within 2 s; "
        f"`teaser rules check --site {args.site_id}` checks it first"
    )
    return 0


async def rules_check(args: argparse.Namespace) -> int:
    if args.file:
        return _check(Path(args.file), "")
    book = _rulebook()
    if args.site:
        return _check_in_force(book, args.site)
    # Everything that may be in force: the defaults, and each site's own file.
    results = [_check(DEFAULT_RULES, "the shipped defaults, for sites without a file: ")]
    results += [_check(path, f"site {path.stem}: ") for path in book.site_files()]
    return max(results)


def _check_in_force(book: RuleBook, site_id: str) -> int:
    check_site_id(site_id, "site id")
    path = book.file_in_force(site_id)
    if path is None:
        where = book.path_for(site_id) or "TEASER_RULES_DIR"
        return _check(DEFAULT_RULES, f"site {site_id} has no {where}; the shipped defaults apply: ")
    return _check(path, f"site {site_id} uses {path}: ")


def _check(path: Path | Traversable, saying: str) -> int:
    try:
        rules = load_rules(path)
    except RulesError as exc:
        print(f"{saying}error: {exc.message}", file=sys.stderr)
        if saying:  # a site's file: what the server does meanwhile
            print("  (the server keeps the last good version, else the defaults)", file=sys.stderr)
        return 1
    shown = "" if saying else f"{path}: "
    print(f"{saying}{shown}ok — {len(rules.score)} score rules, {len(rules.templates)} templates")
    return 0


def _rules_to_simulate(args: argparse.Namespace) -> tuple[RuleSet, str]:
    if args.file:
        return load_rules(Path(args.file)), args.file
    check_site_id(args.site, "site id")
    book = _rulebook()
    path = book.file_in_force(args.site)
    if path is None:
        return load_rules(DEFAULT_RULES), "the shipped defaults (the site has no rules file)"
    return load_rules(path), str(path)


async def rules_simulate(sites: SiteRegistry, args: argparse.Namespace) -> int:
    rules, source = _rules_to_simulate(args)
    since = now_ms() - args.minutes * 60_000
    replays = await simulate(sites.engine, args.site, rules, since)
    split = replays.split()
    if args.json:
        report = {
            "site": args.site,
            "minutes": args.minutes,
            "rules": source,
            "sessions": [asdict(replay) for replay in replays],
            "split": asdict(split),
        }
        print(orjson.dumps(report).decode())
        return 0
    would = [r for r in replays if r.would_send]
    print(
        f"{len(replays)} sessions of site {args.site} in the last {args.minutes} min; "
        f"{len(would)} would get an automatic teaser with {source}"
    )
    for replay in replays:
        marker = "→" if replay.would_send else " "
        print(
            f"{marker} {replay.session_id}  score {replay.final_score}  events {replay.events}  "
            f"actual auto {replay.actual_auto_teasers}  would send {len(replay.would_send)}"
        )
        for send in replay.would_send:
            print(f"      {_when(send['at'])}  [{_wording(send)}] {send['message']}")
            print(f"      because {', '.join(send['reasons'])}")
        for kept in replay.withheld:
            when, wording = _when(kept["at"]), _wording(kept)
            print(f"      {when}  held out, not sent: [{wording}] {kept['message']}")

    print()
    if not split.experiment:
        print(
            f"Split: these rules have no variants and no holdout; all {split.qualifying} "
            "qualifying sessions get their template's own text"
        )
        return 0
    # The holdout's share is of every qualifying session, a wording's of the sessions its
    # template was sent to: each beside the share its holdout or weight expects.
    holdout = split.holdout.expected or 0
    rows = [("holdout", split.holdout)] if holdout else []
    rows += [
        (" · ".join(filter(None, (template.template, wording.name))), wording)
        for template in split.templates
        for wording in template.wordings
    ]
    print(
        f"Split of {split.qualifying} qualifying sessions "
        + (f"(holdout {holdout * 100:g} %):" if holdout else "(no holdout):")
    )
    wide = max([26, *(len(label) for label, _ in rows)])
    for label, share in rows:
        beside = (
            f"(expected {_percent(share.expected)})"
            if share.expected is not None
            else "(no variants)"
        )
        print(f"  {label:<{wide}} {share.sessions:>5}  {_percent(share.share):>7}  {beside}")
    return 0


def _wording(send: dict[str, Any]) -> str:
    return " · ".join(filter(None, (send["template"], send["variant"])))


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.1f} %"


@dataclass(frozen=True)
class Operators:
    registry: OperatorRegistry
    sessions: OperatorSessions
    links: SignInLinks


def _operators(engine: AsyncEngine) -> Operators:
    return Operators(
        OperatorRegistry(engine, on_signed_out=_announce_sign_out),
        OperatorSessions(engine, on_signed_out=_announce_sign_out),
        SignInLinks(engine),
    )


async def _announce_sign_out(operator_id: int) -> None:
    """Tell the running workers, through Redis, to close this operator's open dashboards
    now. Without Redis (or while it is away) they find out by themselves within seconds;
    their next request is refused either way, since the database says so."""
    settings = Settings.from_environ()
    if not settings.redis_url:
        return
    broker, announced = Broker(settings.redis_url, prefix=settings.redis_prefix), False
    try:
        async with asyncio.timeout(5):
            await broker.connect()
            announced = await broker.publish(sign_out_channel(operator_id))
    except TimeoutError:
        pass
    finally:
        await broker.disconnect()
    if not announced:
        print("note: Redis did not answer; open dashboards close within seconds")


def _with_operators(job: Callable[[Operators, argparse.Namespace], Awaitable[int]]) -> Command:
    return _on_database(_operators, job)


async def operator_add(operators: Operators, args: argparse.Namespace) -> int:
    operator, password = await operators.registry.create(args.site_id, args.email)
    print(f"operator {operator.email} of site {operator.site_id} created; sign in at /dashboard")
    print(f"password (shown once, store it now): {password}")
    return 0


async def operator_list(operators: Operators, args: argparse.Namespace) -> int:
    for operator in await operators.registry.list_operators(args.site_id):
        seen = _when(operator.last_login_at) if operator.last_login_at else "never"
        print(f"{operator.email}\tcreated {_when(operator.created_at)}\tlast sign-in {seen}")
    return 0


async def operator_reset(operators: Operators, args: argparse.Namespace) -> int:
    password = await operators.registry.reset_password(args.site_id, args.email)
    print(f"new password for {args.email} (shown once; every session is signed out): {password}")
    return 0


async def operator_link(operators: Operators, args: argparse.Namespace) -> int:
    if Settings.from_environ().production:
        print(
            "error: sign-in links are for development only; "
            f"`teaser operator reset {args.site_id} {args.email}` sets a password",
            file=sys.stderr,
        )
        return 1
    operator = await operators.registry.find(args.site_id, args.email)
    if operator is None:
        print(f"error: no operator {args.email} for site {args.site_id}", file=sys.stderr)
        return 1
    token = await operators.links.issue(operator.id)
    minutes = SIGN_IN_LINK_TTL_MS // 60_000
    print(f"sign in as {operator.email} with one click, once, within {minutes} minutes:")
    print(sign_in_url(local_base_url(), token))
    return 0


async def operator_remove(operators: Operators, args: argparse.Namespace) -> int:
    if not await operators.registry.remove(args.site_id, args.email):
        print(f"error: no operator {args.email} for site {args.site_id}", file=sys.stderr)
        return 1
    print(f"operator {args.email} of site {args.site_id} removed; their sessions are ended")
    return 0


async def operator_signout(operators: Operators, args: argparse.Namespace) -> int:
    operator = await operators.registry.find(args.site_id, args.email)
    if operator is None:
        print(f"error: no operator {args.email} for site {args.site_id}", file=sys.stderr)
        return 1
    ended = await operators.sessions.revoke_all(operator.id)
    print(f"{operator.email} of site {operator.site_id} signed out everywhere ({ended} sessions)")
    return 0


async def operator_sessions(operators: Operators, args: argparse.Namespace) -> int:
    operator = await operators.registry.find(args.site_id, args.email)
    if operator is None:
        print(f"error: no operator {args.email} for site {args.site_id}", file=sys.stderr)
        return 1
    for session in await operators.sessions.list_live(operator.id):
        print(
            f"signed in {_when(session.created_at)}\tlast seen {_when(session.last_seen_at)}"
            f"\tfrom {session.address or '-'}\t{session.user_agent or '-'}"
        )
    return 0


async def privacy_erase(privacy: Privacy, args: argparse.Namespace) -> int:
    erasure = await privacy.erase(email=args.email, customer_id=args.customer_id, site_id=args.site)
    rows = ", ".join(f"{count} from {table}" for table, count in erasure.rows.items())
    print(f"erased {erasure.sessions} session(s): {rows}")
    return 0


def _webhooks(engine: AsyncEngine) -> WebhookEndpoints:
    settings = Settings.from_environ()
    return WebhookEndpoints(
        engine,
        Subscriptions(engine, ttl=settings.site_cache_ttl),
        production=settings.production,
        allow_private=settings.webhook_allow_private,
    )


def _with_webhooks(
    job: Callable[[WebhookEndpoints, argparse.Namespace], Awaitable[int]],
) -> Command:
    return _on_database(_webhooks, job)


async def webhook_add(webhooks: WebhookEndpoints, args: argparse.Namespace) -> int:
    events = [name.strip() for name in args.events.split(",") if name.strip()]
    endpoint, secret = await webhooks.add(args.site_id, args.url, events)
    print(
        f"webhook endpoint {endpoint.number} of site {args.site_id} added: {endpoint.url} "
        f"({', '.join(endpoint.events) or 'every event'}); running servers send to it within "
        "seconds"
    )
    print(f"signing secret (shown once, store it now): {secret}")
    return 0


async def webhook_list(webhooks: WebhookEndpoints, args: argparse.Namespace) -> int:
    for each in await webhooks.list_endpoints(args.site_id):
        state = each.state
        if each.failing_since is not None and each.disabled_at is None:
            state += f" since {_when(each.failing_since)}"
        if each.disabled_at is not None:
            state += f" {_when(each.disabled_at)}: {each.disabled_reason}"
        last = _when(each.last_delivered_at) if each.last_delivered_at else "never"
        events = ",".join(each.events) or "all events"
        print(f"{each.number}\t{each.url}\t{events}\t{state}\tlast delivery {last}")
    return 0


async def webhook_remove(webhooks: WebhookEndpoints, args: argparse.Namespace) -> int:
    await webhooks.remove(args.site_id, args.number)
    print(f"webhook endpoint {args.number} of site {args.site_id} removed")
    return 0


async def webhook_rotate(webhooks: WebhookEndpoints, args: argparse.Namespace) -> int:
    rotated = await webhooks.rotate(args.site_id, args.number)
    print(f"new signing secret (shown once, store it now): {rotated.secret}")
    print(f"the previous secret signs beside it until {_when(rotated.previous_until)}")
    return 0


async def webhook_enable(webhooks: WebhookEndpoints, args: argparse.Namespace) -> int:
    await webhooks.enable(args.site_id, args.number)
    print(f"webhook endpoint {args.number} of site {args.site_id} enabled")
    return 0


async def webhook_test(webhooks: WebhookEndpoints, args: argparse.Namespace) -> int:
    webhook_id = await webhooks.queue_test(args.site_id, args.number)
    print(f"teaser.test queued for endpoint {args.number} (webhook-id {webhook_id})")
    print(f"`teaser webhook deliveries {args.site_id} {args.number}` shows how it went")
    return 0


async def webhook_deliveries(webhooks: WebhookEndpoints, args: argparse.Namespace) -> int:
    for each in await webhooks.deliveries(args.site_id, args.number):
        answer = each.status_code if each.status_code is not None else (each.error or "-")
        latency = f"{each.latency_ms} ms" if each.latency_ms is not None else "-"
        print(
            f"{each.id}\t{each.type}\t{each.status}\tattempts {each.attempts}"
            f"\t{answer}\t{latency}\t{each.event_id}"
        )
    return 0


def _when(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="teaser", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    listen_cmd = commands.add_parser(
        "listen", help="hold a session's socket as the widget does: print each teaser, ack it"
    )
    listen_cmd.add_argument(
        "session_id", help="the visitor session, e.g. sess_1758648278890_cy68t5ni7"
    )
    listen_cmd.add_argument("--site", required=True, help="the session's site id")
    listen_cmd.add_argument(
        "--url", help="the server (default http://127.0.0.1:$PORT, PORT 8000 when unset)"
    )
    listen_cmd.add_argument(
        "--token", help="the session's token from POST /api/sessions, where the site needs one"
    )

    serve_cmd = commands.add_parser("serve", help="run the HTTP/WebSocket server")
    serve_cmd.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve_cmd.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve_cmd.add_argument(
        "--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "1"))
    )
    serve_cmd.add_argument(
        "--forwarded-allow-ips",
        default=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        help="comma-separated addresses or networks of the proxies whose X-Forwarded-For and"
        " X-Forwarded-Proto to trust, or '*' (default: 127.0.0.1, or $FORWARDED_ALLOW_IPS)",
    )

    db = commands.add_parser("db", help="database schema").add_subparsers(
        dest="action", required=True
    )
    db.add_parser("upgrade", help="apply pending migrations").set_defaults(
        run=_on_database(lambda engine: engine, db_upgrade)
    )

    site = commands.add_parser("site", help="sites (tenants)").add_subparsers(
        dest="action", required=True
    )
    add = site.add_parser(
        "add", aliases=["create"], help="create a site and print its first API key"
    )
    add.add_argument("site_id")
    add.add_argument("--name", default="")
    add.add_argument(
        "--origin",
        action="append",
        default=[],
        help="page origin allowed to poll and open sockets (repeatable, or '*')",
    )
    add.set_defaults(run=_with_sites(site_add))
    site.add_parser("list", help="list sites").set_defaults(run=_with_sites(site_list))
    origins = site.add_parser(
        "origins",
        help="show, replace or change the page origins a site's widget may run on",
        description="With origins, replace the list; with --add or --remove, change it; "
        "with neither, show it. An origin is scheme://host[:port], as the browser's console "
        "names it (location.origin).",
    )
    origins.add_argument("site_id")
    origins.add_argument("origin", nargs="*", help="the whole new list ('*': any page)")
    origins.add_argument("--add", action="append", default=[], metavar="ORIGIN")
    origins.add_argument("--remove", action="append", default=[], metavar="ORIGIN")
    origins.add_argument("--clear", action="store_true", help="allow only Teaser's own pages")
    origins.set_defaults(run=_with_sites(site_origins))

    key = commands.add_parser("key", help="API keys").add_subparsers(dest="action", required=True)
    key_add_cmd = key.add_parser(
        "add", aliases=["create"], help="add a key to a site (rotation: add, deploy, revoke)"
    )
    key_add_cmd.add_argument("site_id")
    key_add_cmd.set_defaults(run=_with_sites(key_add))
    key_list_cmd = key.add_parser("list", help="list a site's keys (hints only)")
    key_list_cmd.add_argument("site_id")
    key_list_cmd.set_defaults(run=_with_sites(key_list))
    revoke = key.add_parser("revoke", help="revoke a key by its number (see key list)")
    revoke.add_argument("site_id")
    revoke.add_argument("key_number", type=int, metavar="N", help="1 is the site's first key")
    revoke.set_defaults(run=_with_sites(key_revoke))

    operator = commands.add_parser("operator", help="dashboard operators").add_subparsers(
        dest="action", required=True
    )
    for name, job, text in (
        ("add", operator_add, "add an operator to a site and print a generated password"),
        ("reset", operator_reset, "print a new password for an operator (signs them out)"),
        ("link", operator_link, "print a one-time sign-in link for an operator (dev mode only)"),
        ("remove", operator_remove, "remove an operator (and end their sessions)"),
        ("signout", operator_signout, "end every session of an operator, on every worker"),
        ("sessions", operator_sessions, "list an operator's live sessions"),
    ):
        action = operator.add_parser(name, help=text)
        action.add_argument("site_id")
        action.add_argument("email")
        action.set_defaults(run=_with_operators(job))
    listing = operator.add_parser("list", help="list a site's operators")
    listing.add_argument("site_id")
    listing.set_defaults(run=_with_operators(operator_list))
    privacy = commands.add_parser("privacy", help="personal data")
    erase = privacy.add_subparsers(dest="action", required=True).add_parser(
        "erase", help="delete a person's sessions, events and messages everywhere"
    )
    erase.add_argument("--email")
    erase.add_argument("--customer-id")
    erase.add_argument("--site", help="only this site (default: every site)")
    erase.set_defaults(run=_on_database(Privacy, privacy_erase))

    _webhook_commands(commands)

    rules = commands.add_parser("rules", help="scoring, trigger and template rules")
    rules_actions = rules.add_subparsers(dest="action", required=True)
    init = rules_actions.add_parser(
        "init", help="write the default rules to TEASER_RULES_DIR/SITE.toml, to edit"
    )
    init.add_argument("site_id", metavar="SITE")
    init.add_argument("--force", action="store_true", help="replace the site's file if it exists")
    init.set_defaults(run=rules_init)
    check = rules_actions.add_parser(
        "check",
        help="validate a rules file; without one, what is in force",
        description="With FILE, check it. With --site, check the rules in force for the "
        "site: its TEASER_RULES_DIR/SITE.toml, else the shipped defaults. With neither, "
        "check the defaults and every site's file.",
    )
    check.add_argument("file", nargs="?")
    check.add_argument("--site", help="the rules in force for this site")
    check.set_defaults(run=rules_check)
    dry_run = rules_actions.add_parser(
        "simulate", help="replay recent sessions through a rules file (nothing is sent)"
    )
    dry_run.add_argument("file", nargs="?", help="default: the rules in force for the site")
    dry_run.add_argument("--site", required=True)
    dry_run.add_argument("--minutes", type=int, default=60)
    dry_run.add_argument(
        "--json", action="store_true", help="one JSON document: the sessions and the split"
    )
    dry_run.set_defaults(run=_with_sites(rules_simulate))
    return parser


def _webhook_commands(commands: Any) -> None:
    webhook = commands.add_parser(
        "webhook", help="webhook endpoints: signed events for a site's backend"
    ).add_subparsers(dest="action", required=True)
    add = webhook.add_parser("add", help="add an endpoint and print its signing secret once")
    add.add_argument("site_id", metavar="SITE")
    add.add_argument("url", metavar="URL")
    add.add_argument(
        "--events",
        default="",
        help=f"comma-separated, of {', '.join(SUBSCRIBABLE)} (default: all)",
    )
    add.set_defaults(run=_with_webhooks(webhook_add))
    listing = webhook.add_parser("list", help="a site's endpoints, their state and last delivery")
    listing.add_argument("site_id", metavar="SITE")
    listing.set_defaults(run=_with_webhooks(webhook_list))
    for name, job, text in (
        ("remove", webhook_remove, "remove an endpoint (its number is not reused)"),
        ("rotate", webhook_rotate, "print a new secret; the old one signs beside it for 24 h"),
        ("enable", webhook_enable, "send to a disabled endpoint again"),
        ("test", webhook_test, "queue a teaser.test event for the endpoint"),
        ("deliveries", webhook_deliveries, "the endpoint's latest deliveries"),
    ):
        action = webhook.add_parser(name, help=text)
        action.add_argument("site_id", metavar="SITE")
        action.add_argument("number", type=int, metavar="N", help="1 is the site's first")
        action.set_defaults(run=_with_webhooks(job))


if __name__ == "__main__":
    sys.exit(main())
