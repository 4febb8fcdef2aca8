"""The ``carebot`` command line."""

from __future__ import annotations

import logging
import os
import socket as sockets
import sys
from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import ArgumentError, DBAPIError

from bot.config import Settings, load_settings
from bot.errors import CarebotError, ConfigError

log = logging.getLogger("carebot")


def _settings(**overrides: Any) -> Settings:
    return load_settings(**overrides)


def _setup_logging(settings: Settings) -> None:
    """Text or JSON log lines (``CAREBOT_LOG_FORMAT``), secrets redacted from all of them."""
    from sqlalchemy.engine import make_url

    from bot.logs import configure_logging

    secrets = [s.get_secret_value() if s else None
               for s in (settings.slack_bot_token, settings.slack_signing_secret,
                         settings.slack_app_token, settings.ingest_token,
                         settings.metrics_token)]
    # The database password, wherever it shows up (a driver message, a DSN), not
    # only inside a URL, which the patterns catch.
    secrets.append(make_url(settings.database_url).password)
    secrets += _configured_secrets(settings)
    configure_logging(level=settings.carebot_log_level, fmt=settings.carebot_log_format,
                      secrets=secrets)


def _configured_secrets(settings: Settings) -> list[str | None]:
    """Values of the environment variables the care configuration names for credentials
    (sources' API tokens and passwords, the CRM webhook's HMAC secret): known secrets, so
    the redactor removes them wherever they appear, not only where a pattern matches."""
    from bot.config import load_care_config

    try:
        care = load_care_config(settings.carebot_config)
    except ConfigError:
        return []  # the start reports it, in one line, right after
    names = [env for source in care.sources for env in source.credentials.values()]
    names.append(care.workflow.escalation.crm_secret_env)
    return [os.environ.get(name) for name in names]


@click.group()
@click.version_option(package_name="carebot")
@click.pass_context
def main(ctx: click.Context) -> None:
    """carebot: social customer care inside Slack."""
    # `carebot train` also learns from the reclassifications staff made in Slack.
    ctx.obj = {"feedback": _stored_feedback}


def _stored_feedback() -> list[tuple[str, Any]]:
    """(text, category) corrections stored from Slack, from DATABASE_URL."""
    from sqlalchemy.engine import make_url

    from bot.domain import Category
    from storage.db import make_engine, migrate, session_scope
    from storage.feedback import feedback_examples

    url = _settings().database_url
    parsed = make_url(url)
    if (parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
            and not Path(parsed.database or "").exists()):
        # No bot has run here: nothing to learn from, and no database to create.
        click.echo(f"no database at {parsed.database}: no reclassifications from Slack to add",
                   err=True)
        return []
    engine = make_engine(url)
    migrate(engine)
    with session_scope(engine) as session:
        rows = feedback_examples(session)
    engine.dispose()
    click.echo(f"{len(rows)} reclassification(s) from Slack added to the training data",
               err=True)
    return [(text, Category(category)) for text, category in rows if text.strip()]


def _listen(host: str, port: int) -> sockets.socket:
    """Bind the HTTP port before anything starts, so a port in use stops the bot at once
    (in Socket Mode the HTTP server runs in a thread, where a failed bind went unnoticed
    while its shutdown stopped the workers)."""
    try:
        family, kind, proto, _, address = sockets.getaddrinfo(
            host, port, type=sockets.SOCK_STREAM, flags=sockets.AI_PASSIVE)[0]
        sock = sockets.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                          f"(--host)") from None
    try:
        sock.setsockopt(sockets.SOL_SOCKET, sockets.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                          f"(choose another --port)") from None
    return sock


@main.command()
@click.option("--socket", is_flag=True, help="Use Socket Mode (needs SLACK_APP_TOKEN).")
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
def run(socket: bool, host: str, port: int) -> None:
    """Run the bot: HTTP endpoint (default) or Socket Mode."""
    from bot.app import build_runtime, create_asgi

    settings = _settings()
    _setup_logging(settings)
    settings.require("slack_bot_token", "ingest_token")
    if socket:
        settings.require("slack_app_token")
    else:
        settings.require("slack_signing_secret")
    listener = _listen(host, port)
    runtime = build_runtime(settings)
    asgi = create_asgi(runtime)
    import uvicorn

    if socket:
        import threading

        from slack_bolt.adapter.socket_mode import SocketModeHandler

        assert settings.slack_app_token is not None
        # The ingest endpoint and health checks still listen over HTTP.
        server = uvicorn.Server(uvicorn.Config(asgi, host=host, port=port, log_level="warning",
                                               log_config=None))
        threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="carebot-http",
                         daemon=True).start()
        SocketModeHandler(runtime.bolt, settings.slack_app_token.get_secret_value()).start()
        return
    # log_config=None: uvicorn's records go through our (redacting) root handler.
    uvicorn.Server(uvicorn.Config(asgi, host=host, port=port, log_level="info",
                                  access_log=False, log_config=None)).run(sockets=[listener])


@main.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_cmd(file: Path) -> None:
    """Import mentions from a CSV, JSONL or JSON (a list of mentions) FILE (posted by the
    running bot)."""
    from bot.importer import read_mentions

    _setup_logging(_settings())
    items, problems = read_mentions(file)
    for problem in problems:
        click.echo(f"skipped {problem}", err=True)
    result = _offline_services().ingest(items)
    click.echo(f"imported {len(result.new_ids)} new mention(s), {result.duplicates} already "
               f"stored, {len(problems)} invalid row(s) skipped")
    if problems and not items:
        sys.exit(1)


@main.command()
@click.option("--database-url", default="sqlite:///carebot-demo.db", show_default=True,
              help="Where the demo stores its mentions (recreated each run).")
@click.option("--model", default=None, help="Classifier: 'default' (rules + model) or 'rules'.")
def demo(database_url: str, model: str | None) -> None:
    """Run the real pipeline over shipped sample mentions and show the cards."""
    from bot.demo import run_demo

    run_demo(database_url=database_url, model=model)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply migrations to DATABASE_URL."""
    from storage.db import make_engine, migrate

    migrate(make_engine(_settings().database_url))
    click.echo("schema is up to date")


@main.group()
def customers() -> None:
    """Customers and their value tiers (priority and entitled escalation)."""


@customers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def customers_import(file: Path) -> None:
    """Import customers from a CSV FILE: customer_id,name,tier,handles."""
    from bot.customers import read_customers_csv

    _setup_logging(_settings())
    rows, problems = read_customers_csv(file)
    for problem in problems:
        click.echo(f"skipped {problem}", err=True)
    created, updated = _offline_services().attention.import_customers(rows)
    click.echo(f"imported {created} new customer(s), updated {updated}, "
               f"{len(problems)} invalid row(s) skipped")
    if problems and not rows:
        sys.exit(1)


@main.group()
def sources() -> None:
    """Listening sources (see docs/SOURCES.md)."""


@sources.command("poll")
@click.argument("names", nargs=-1)
def sources_poll(names: tuple[str, ...]) -> None:
    """Poll the configured sources (or only NAMES) once, now; the bot's workers post cards."""
    from bot.config import load_care_config
    from bot.services import Services
    from bot.sources.poller import Poller
    from storage.db import make_engine, migrate

    settings = _settings()
    _setup_logging(settings)
    engine = make_engine(settings.database_url)
    migrate(engine)
    services = Services(engine=engine, config=load_care_config(settings.carebot_config),
                        classifier=_no_classifier())
    poller = Poller.from_services(services)
    unknown = sorted(set(names) - set(poller.sources))
    if unknown:
        raise click.UsageError(f"unknown or disabled source(s): {', '.join(unknown)}")
    if not poller.sources:
        poller.close()
        click.echo("no listening sources are configured or enabled (sources: in "
                   "CAREBOT_CONFIG; see docs/SOURCES.md)", err=True)
        sys.exit(1)
    try:
        for name in names or tuple(poller.sources):
            result = poller.poll(name)
            detail = result.error or f"fetched {result.fetched}, ingested {result.ingested}"
            click.echo(f"{name}: {result.status} — {detail}")
    finally:
        poller.close()


def _offline_services() -> Any:
    """Services over DATABASE_URL and CAREBOT_CONFIG, for commands that classify nothing."""
    from bot.config import load_care_config
    from bot.services import Services
    from storage.db import make_engine, migrate

    settings = _settings()
    engine = make_engine(settings.database_url)
    migrate(engine)
    return Services(engine=engine, config=load_care_config(settings.carebot_config),
                    classifier=_no_classifier())


@main.group()
def reviews() -> None:
    """After-action reviews of Social 911 escalations."""


@reviews.command("export")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the CSV here (default: standard output).")
def reviews_export(out: Path | None) -> None:
    """Export every after-action review as CSV."""
    data = _offline_services().workflow.escalations.export_reviews_csv()
    if out is None:
        click.echo(data, nl=False)
    else:
        try:
            out.write_text(data, encoding="utf-8")
        except OSError as exc:
            raise click.FileError(str(out), hint=exc.strerror) from None
        from bot.csvrows import data_rows

        click.echo(f"wrote {data_rows(data)} review(s) to {out}", err=True)


@main.group()
def dispatch() -> None:
    """The durable outbound queue (CRM case webhooks, replies through sources)."""


@dispatch.command("requeue")
def dispatch_requeue() -> None:
    """Retry every parked request (after fixing the receiver or its secret)."""
    count = _offline_services().workflow.escalations.requeue_parked()
    click.echo(f"requeued {count} parked request(s); the running bot sends them")


@main.group(name="outbox")
def outbox_group() -> None:
    """Slack messages carebot gave up on (parked after repeated failures)."""


@outbox_group.command("list")
def outbox_list() -> None:
    """Show parked Slack messages: id, kind, channel, mention, attempts, last error."""
    from bot.services.delivery import parked_items

    items = parked_items(_offline_services())
    if not items:
        click.echo("nothing parked")
        return
    for item in items:
        mention = f"mention {item.mention_id}" if item.mention_id else "-"
        click.echo(f"{item.id}\t{item.kind}\t{item.channel}\t{mention}\t"
                   f"{item.attempts} attempts\t{item.created_at:%Y-%m-%d %H:%M}Z\t{item.error}")


@outbox_group.command("requeue")
@click.argument("ids", nargs=-1, type=int)
def outbox_requeue(ids: tuple[int, ...]) -> None:
    """Send parked messages again (IDS, or all of them) once the cause is fixed."""
    from bot.services.delivery import requeue_parked

    done = requeue_parked(_offline_services(), list(ids) if ids else None)
    missing = sorted(set(ids) - set(done))
    click.echo(f"requeued {len(done)} message(s); the running bot sends them")
    if missing:
        click.echo(f"not parked (left alone): {', '.join(map(str, missing))}", err=True)
        sys.exit(1)


def _no_classifier() -> Any:
    from bot.classify.rules import RulesClassifier

    return RulesClassifier({})


def _register_classification_commands() -> None:
    from bot.classify.cli import classify, eval_cmd, train

    main.add_command(train)
    main.add_command(classify)
    main.add_command(eval_cmd)


_register_classification_commands()


def entrypoint() -> None:
    try:
        main(standalone_mode=True)
    except CarebotError as exc:
        click.echo(f"carebot: {exc}", err=True)
        sys.exit(2)
    except (DBAPIError, ArgumentError) as exc:
        # The database is down, refuses us, or DATABASE_URL cannot be used: one line,
        # the driver's own reason, with any URL password redacted.
        from bot.logs import Redactor

        lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        click.echo(f"carebot: cannot use the database (DATABASE_URL): {Redactor()(reason)}",
                   err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    entrypoint()
