"""`careloop` (also `python -m app`): thin commands around the domain."""

from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, select

from app import history_import, inbox, jobs, migrate, shop_jobs, sign_in_links, worker
from app.config import (
    ROOT,
    ConfigError,
    Settings,
    ensure_development_secrets,
    instance_dir,
)
from app.crypto import InvalidToken
from app.db import describe_connection_error
from app.demo import DEMO_SHOP, ProviderLink, SignaturesRefused
from app.demo import play as play_demo
from app.demo_history import seed_history
from app.logs import configure_logging
from app.models import HistoryImport, InboxMessage, ProviderConnection, Shop, ShopJob
from app.providers import (
    PROVIDERS,
    ProviderConfigError,
    connect,
    describe_connection,
    reencrypt_secrets,
    webhook_url,
)
from app.retention import DEFAULT_PERIOD, MAX_WINDOW_DAYS, PERIODS
from app.retention_snapshots import STEPS, SnapshotRequest, take_snapshot
from app.runtime import Runtime, build_runtime
from app.shop_tokens import NoAccessToken, reencrypt_tokens
from app.shops import ShopError, add_shop, issue_token, revoke_tokens
from app.support_demo import support_day
from integrations.shopify_admin import AdminError
from integrations.shopify_auth import OAuthError
from notifications.transports import from_settings

IMPORT_POLL_SECONDS = 2
DEFAULT_PORT = 8000
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


def load_runtime(*, generate_secrets: bool = False, served_at: str | None = None) -> Runtime:
    """Settings and runtime, or exit with the one-line config error. No
    command but `run` (which serves it) creates a Flask app.

    `generate_secrets` (the commands a newcomer starts with) writes missing
    development secrets first; production never generates any. `served_at`:
    the address this process serves, for links when CARELOOP_PUBLIC_URL is
    not set.
    """
    try:
        if generate_secrets and os.environ.get("CARELOOP_ENV") != "production":
            directory = instance_dir()
            generated = ensure_development_secrets(directory)
            if generated:
                click.echo(
                    f"Generated development secrets ({', '.join(generated)}) in "
                    f"{directory / 'secrets.env'} (readable only by you)."
                )
        settings = Settings.from_env()
        if served_at and settings.public_url == Settings.public_url:
            # Not configured: the links we print and mail (sign-in links, a
            # provider's webhook URL) point where this process listens.
            settings = dataclasses.replace(settings, public_url=served_at)
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    configure_logging(settings.log_level, json_lines=settings.is_production)
    return build_runtime(settings)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


class CareLoopGroup(click.Group):
    """Commands whose database cannot be reached (refused, bad credentials, no
    such database) exit with one line saying what failed and how to fix it,
    not a driver traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (OperationalError, DBAPIError) as exc:
            if not _is_connection_error(exc):
                raise
            url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance_dir() / 'careloop.db'}"
            raise click.ClickException(describe_connection_error(exc, url)) from None


def _is_connection_error(exc: DBAPIError) -> bool:
    # A statement that fails on a working connection is a bug worth its
    # traceback; only failures to connect get the one-line treatment.
    return isinstance(exc, OperationalError) or bool(exc.connection_invalidated)


@click.group(cls=CareLoopGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """CareLoop: proactive customer care for Shopify stores."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535))
def run(host: str, port: int) -> None:
    """Everything in one process: web, worker and scheduler (embedded default)."""
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    rt = load_runtime(generate_secrets=True, served_at=f"http://{shown_host}:{port}")
    migrate.upgrade(rt.settings.database_url)
    if not rt.settings.is_production:
        with Session(rt.engine) as session:
            shop = session.exec(select(Shop).where(Shop.domain == DEMO_SHOP)).first()
            if shop is None:
                demo_shop, token = add_shop(
                    session, DEMO_SHOP, rt.clock.now(), name="CareLoop Demo"
                )
                session.flush()
                new_demo_shop = demo_shop.id
                session.commit()
                click.echo(f"Created the demo shop {DEMO_SHOP}; its API token: {token}")
            else:
                new_demo_shop = None
        if new_demo_shop is not None:
            orders = seed_history(rt.engine, new_demo_shop, rt.clock.now())
            click.echo(f"Gave it a year of history ({orders} orders): see /app/retention")
    stop = threading.Event()
    threads = [
        threading.Thread(target=worker.run, args=(rt, stop), name="worker", daemon=True),
        threading.Thread(target=jobs.run, args=(rt, stop), name="scheduler", daemon=True),
    ]
    for thread in threads:
        thread.start()
    # Imported here: the other commands (worker, scheduler) never load Flask.
    from werkzeug.serving import WSGIRequestHandler, make_server

    from app.factory import create_app

    class PlainRequestLog(WSGIRequestHandler):
        """Werkzeug's request line without its terminal colours (escape
        codes for every status but 200, in a log that may be a file)."""

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            line = self.requestline.translate(self._control_char_table)
            self.log("info", '"%s" %s %s', line, code, size)

    # make_server rather than run_simple: the same server, without Werkzeug's
    # red "do not use in production" banner, which alarmed newcomers; the
    # line below says the same calmly.
    server = make_server(host, port, create_app(rt), threaded=True, request_handler=PlainRequestLog)
    base_url = f"http://{host}:{port}"
    click.echo(f"CareLoop on {base_url}  (database: {_safe_url(rt)})")
    click.echo(
        "`careloop run` is everything in one process, for trying and developing CareLoop; "
        "production runs `careloop serve`, `careloop worker` and `careloop scheduler`."
    )
    demo_url = "" if base_url == DEFAULT_URL else f" --url {base_url}"
    make_demo = "make demo" + ("" if port == DEFAULT_PORT else f" PORT={port}")
    click.echo(
        f"Send it a store day in another terminal:  {_own_command()} demo{demo_url}"
        f"  (or `{make_demo}` in the checkout)"
    )
    try:
        server.serve_forever()
    finally:
        stop.set()
        rt.inbox_wakeup.set()
        for thread in threads:
            thread.join(timeout=10)


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", type=click.IntRange(1, 64),
              help="Threads per worker process [default: gunicorn.conf.py's, 8]")  # fmt: skip
def serve(host: str, port: int, workers: int, threads: int | None) -> None:
    """The web app alone, under gunicorn (production)."""
    load_runtime()  # fail fast on configuration before forking
    from gunicorn.app.wsgiapp import WSGIApplication

    sys.argv = [
        "gunicorn",
        "--config", str(ROOT / "gunicorn.conf.py"),
        "--bind", f"{host}:{port}",
        "--workers", str(workers),
        *(["--threads", str(threads)] if threads else []),
        "--access-logfile", "-",
        "app.wsgi:application",
    ]  # fmt: skip
    WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").run()


@main.command("worker")
@click.option("--once", is_flag=True, help="Process what is due, then exit.")
def worker_command(once: bool) -> None:
    """Process the webhook inbox."""
    rt = load_runtime()
    if once:
        processed = worker.drain(rt)
        sent = worker.send_due(rt, from_settings(rt.settings))
        click.echo(f"processed {processed} message(s); handled {sent} notification(s)")
        return
    worker.run(rt, _stop_on_signals())


@main.command()
def scheduler() -> None:
    """Run the scheduled jobs (one active replica, elected on PostgreSQL)."""
    rt = load_runtime()
    jobs.run(rt, _stop_on_signals())


@main.group()
def db() -> None:
    """Database schema."""


@db.command()
def upgrade() -> None:
    """Apply the migrations (run before starting the processes)."""
    rt = load_runtime()
    migrate.upgrade(rt.settings.database_url)
    click.echo(f"database at the latest revision ({_safe_url(rt)})")


@main.group()
def shops() -> None:
    """Shops using CareLoop."""


@shops.command("add")
@click.argument("domain")
@click.option("--name", default="", help="Display name (default: from the domain).")
def shops_add(domain: str, name: str) -> None:
    """Register DOMAIN (for development or a custom app) and print its API token."""
    rt = load_runtime()
    with Session(rt.engine) as session:
        try:
            shop, token = add_shop(session, domain, rt.clock.now(), name=name)
        except ShopError as exc:
            raise click.BadParameter(str(exc), param_hint="DOMAIN") from None
        session.commit()
        click.echo(f"shop {shop.domain} is installed")
    click.echo(f"API token (shown once): {token}")


@shops.command("token")
@click.argument("domain")
@click.option("--revoke", is_flag=True, help="First revoke every token DOMAIN has (a leak).")
def shops_token(domain: str, revoke: bool) -> None:
    """Issue another API token for DOMAIN (the others keep working unless --revoke)."""
    rt = load_runtime()
    with Session(rt.engine) as session:
        shop = session.exec(select(Shop).where(Shop.domain == domain.strip().lower())).first()
        if shop is None:
            raise click.BadParameter(f"no shop {domain!r}", param_hint="DOMAIN")
        if shop.uninstalled_at is not None:
            raise click.ClickException(
                f"{shop.domain} has uninstalled CareLoop; `careloop shops add` reinstalls it"
            )
        revoked = revoke_tokens(session, shop, rt.clock.now()) if revoke else 0
        token = issue_token(session, shop, rt.clock.now())
        shop_domain = shop.domain
        session.commit()
    if revoke:
        click.echo(f"revoked {revoked} token(s) of {shop_domain}")
    click.echo(f"API token (shown once): {token}")


@shops.command("link")
@click.argument("domain")
@click.option("--hours", type=click.IntRange(1, 24 * 30), default=24, show_default=True,
              help="How long the link works.")  # fmt: skip
@click.option("--revoke", is_flag=True, help="Revoke every sign-in link DOMAIN has issued.")
def shops_link(domain: str, hours: int, revoke: bool) -> None:
    """Print a sign-in link to DOMAIN's pages (for its support team), or
    revoke every link issued so far."""
    rt = load_runtime()
    with Session(rt.engine) as session:
        shop = session.exec(select(Shop).where(Shop.domain == domain.strip().lower())).first()
        if shop is None or shop.uninstalled_at is not None:
            raise click.BadParameter(f"no installed shop {domain!r}", param_hint="DOMAIN")
        if revoke:
            sign_in_links.revoke_all(session, shop, rt.clock.now())
            session.commit()
            click.echo(f"every sign-in link of {shop.domain} issued so far no longer works")
            return
        link = sign_in_links.issue(
            shop, rt.settings.secret_key, rt.clock.now(), timedelta(hours=hours)
        )
    click.echo(f"sign-in link (works for {hours} h): {rt.settings.public_url}/app/sign-in/{link}")


@shops.command("list")
def shops_list() -> None:
    """List the shops."""
    rt = load_runtime()
    with Session(rt.engine) as session:
        for shop in session.exec(select(Shop).order_by(Shop.domain)).all():
            status = "uninstalled" if shop.uninstalled_at else "installed"
            click.echo(f"{shop.domain}\t{status}\t{shop.name}")


@shops.command("import")
@click.argument("domain")
@click.option("--timeout", default=3600, show_default=True, type=click.IntRange(10, 86400),
              help="Seconds to wait for Shopify's bulk operations.")  # fmt: skip
def shops_import(domain: str, timeout: int) -> None:
    """Import DOMAIN's customers and orders from before the install (resumable)."""
    rt = load_runtime()
    deadline = time.monotonic() + timeout
    with Session(rt.engine, expire_on_commit=False) as session:
        shop = _installed_shop(session, domain)
        try:
            run = history_import.begin(session, rt, shop)
        except (AdminError, NoAccessToken, OAuthError) as exc:
            raise click.ClickException(f"cannot start the import: {exc}") from None
        session.commit()
    while run.status in history_import.ACTIVE:
        step = history_import.describe(run)["step"]
        if run.status == "running":
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"Shopify is still preparing the {step}; run again later"
                )
            time.sleep(IMPORT_POLL_SECONDS)
            with Session(rt.engine, expire_on_commit=False) as session:
                run = history_import.poll(session, rt, shop, session.get(HistoryImport, run.id))
                session.commit()
            continue
        with click.progressbar(length=run.objects_total or 0, label=f"importing {step}") as bar:
            run = history_import.apply_ready(
                rt, run.id, progress=lambda done, total: bar.update(done - bar.pos)
            )
    if run.status == "failed":
        raise click.ClickException(f"the import failed: {run.error}")
    click.echo(f"imported {shop.domain}'s history")


@main.group()
def retention() -> None:
    """Retention: cohorts, churn and what moves it."""


@retention.command("run")
@click.option("--shop", "domain", default=None, help="One shop (default: every installed shop).")
@click.option("--period", type=click.Choice(PERIODS), default=DEFAULT_PERIOD, show_default=True)
@click.option(
    "--window",
    type=click.IntRange(1, MAX_WINDOW_DAYS),
    default=None,
    help="Churn window in days (default: each shop's setting).",
)
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Snapshot date YYYY-MM-DD (default: the shop's yesterday).")  # fmt: skip
def retention_run(domain: str | None, period: str, window: int | None, as_of) -> None:
    """Compute and store retention snapshots (replacing the same date's)."""
    rt = load_runtime()
    with Session(rt.engine) as session:
        if domain is not None:
            targets = [_installed_shop(session, domain)]
        else:
            targets = session.exec(select(Shop).where(Shop.uninstalled_at.is_(None))).all()
        targets = [(shop.id, shop.domain) for shop in targets]
    request = SnapshotRequest(as_of.date() if as_of else None, period, window)
    for shop_id, shop_domain in targets:
        with click.progressbar(length=len(STEPS), label=shop_domain) as bar:
            snapshot = take_snapshot(
                rt.engine, shop_id, rt.clock.now(), request, progress=lambda _step: bar.update(1)
            )
        click.echo(
            f"{shop_domain}: {snapshot.period} snapshot as of {snapshot.as_of}, "
            f"{snapshot.customers} customers, {snapshot.churned} churned"
        )


@main.group()
def providers() -> None:
    """Fulfillment and tracking providers (ShipBob, AfterShip, Standard Webhooks)."""


@providers.command("connect")
@click.argument("domain")
@click.argument("provider", type=click.Choice(sorted(PROVIDERS)))
@click.option(
    "--secret",
    envvar="CARELOOP_PROVIDER_SECRET",
    default=None,
    help="The provider's signing secret (better: set CARELOOP_PROVIDER_SECRET).",
)
def providers_connect(domain: str, provider: str, secret: str | None) -> None:
    """Connect PROVIDER for DOMAIN and print the webhook URL to give it (once)."""
    rt = load_runtime()
    with Session(rt.engine) as session:
        shop = _installed_shop(session, domain)
        try:
            issued = connect(session, rt.secrets, shop.id, provider, secret, rt.clock.now())
        except ProviderConfigError as exc:
            raise click.ClickException(str(exc)) from None
        hint, shop_domain = issued.connection.secret_hint, shop.domain
        session.commit()
    click.echo(f"{provider} connected for {shop_domain}" + (f" (secret {hint})" if hint else ""))
    click.echo(
        f"Webhook URL (shown once): {webhook_url(rt.settings.public_url, provider, issued.url_key)}"
    )


@providers.command("list")
@click.argument("domain")
def providers_list(domain: str) -> None:
    """List DOMAIN's providers (secrets shown only as a hint)."""
    rt = load_runtime()
    with Session(rt.engine) as session:
        shop = _installed_shop(session, domain)
        for connection in session.exec(
            select(ProviderConnection).where(ProviderConnection.shop_id == shop.id)
        ).all():
            document = describe_connection(connection)
            click.echo(f"{document['provider']}\tsecret={document['signing_secret'] or 'none'}"
                       f"\tupdated={document['updated_at']}")  # fmt: skip


def _installed_shop(session: Session, domain: str) -> Shop:
    shop = session.exec(select(Shop).where(Shop.domain == domain.strip().lower())).first()
    if shop is None or shop.uninstalled_at is not None:
        raise click.BadParameter(f"no installed shop {domain!r}", param_hint="DOMAIN")
    return shop


@main.group("secrets")
def secrets_group() -> None:
    """Secrets kept encrypted at rest."""


@secrets_group.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt stored secrets under the first key of CARELOOP_ENCRYPTION_KEYS.

    To rotate: put the new key first (keep the old one after it), run this,
    then drop the old key."""
    rt = load_runtime()
    with Session(rt.engine) as session:
        try:
            count = reencrypt_secrets(session, rt.secrets)
            shops = reencrypt_tokens(session, rt.secrets)
        except InvalidToken:
            raise click.ClickException(
                "a stored secret opens with none of CARELOOP_ENCRYPTION_KEYS; "
                "keep the old key in the list until rotation is done"
            ) from None
        session.commit()
    click.echo(
        f"re-encrypted {count} secret(s) and the Shopify tokens of {shops} shop(s) "
        "under the first key"
    )


@main.group("inbox")
def inbox_group() -> None:
    """The webhook inbox and its dead letters."""


@inbox_group.command("list")
@click.option(
    "--status", type=click.Choice(["pending", "done", "dead"]), default="dead", show_default=True
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
def inbox_list(status: str, limit: int) -> None:
    """List inbox messages by status."""
    rt = load_runtime()
    with Session(rt.engine) as session:
        rows = session.exec(
            select(InboxMessage, Shop.domain)
            .join(Shop, Shop.id == InboxMessage.shop_id)
            .where(InboxMessage.status == status)
            .order_by(InboxMessage.id.desc())
            .limit(limit)
        ).all()
    for message, domain in rows:
        click.echo(
            f"{message.id}\t{domain}\t{message.topic}\tattempts={message.attempts}\t"
            f"{message.last_error or ''}"
        )


@inbox_group.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead-lettered message.")
def inbox_retry(ids: tuple[int, ...], retry_all: bool) -> None:
    """Put dead-lettered messages back in the queue."""
    if not ids and not retry_all:
        raise click.UsageError("give message ids, or --all")
    rt = load_runtime()
    count = inbox.retry_dead(rt.engine, None, list(ids), rt.clock.now())
    click.echo(f"requeued {count} message(s)")


@main.group("jobs")
def jobs_group() -> None:
    """Per-shop scheduled work (reconciliation, sweeps) and its failures."""


@jobs_group.command("list")
@click.option(
    "--status",
    type=click.Choice([shop_jobs.QUEUED, shop_jobs.RUNNING, shop_jobs.DONE, shop_jobs.DEAD]),
    default=shop_jobs.DEAD,
    show_default=True,
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
def jobs_list(status: str, limit: int) -> None:
    """List shop jobs by status, newest first, with their last error."""
    rt = load_runtime()
    with Session(rt.engine) as session:
        rows = session.exec(
            select(ShopJob, Shop.domain)
            .join(Shop, Shop.id == ShopJob.shop_id)
            .where(ShopJob.status == status)
            .order_by(ShopJob.id.desc())
            .limit(limit)
        ).all()
    for job, domain in rows:
        click.echo(
            f"{job.id}\t{domain}\t{job.kind}\t{job.slot}\tattempts={job.attempts}\t"
            f"{job.last_error or ''}"
        )


@jobs_group.command("retry")
@click.option("--shop", "domain", help="Only this shop's dead jobs (default: every shop's).")
def jobs_retry(domain: str | None) -> None:
    """Put dead shop jobs back in the queue."""
    rt = load_runtime()
    shop_id = None
    if domain is not None:
        with Session(rt.engine) as session:
            shop_id = _installed_shop(session, domain).id
    count = shop_jobs.retry_dead(rt.engine, shop_id, rt.clock.now())
    click.echo(f"requeued {count} job(s)")


@main.command()
@click.option(
    "--url",
    default=DEFAULT_URL,
    show_default=True,
    help="Where `careloop run` listens.",
)
def demo(url: str) -> None:
    """Play a scripted store day against the running service."""
    # The server's database and secrets, never new ones: the demo signs its
    # webhooks with the server's secrets and registers its shop in its database.
    rt = load_runtime()
    problem = migrate.not_ready(rt.engine)
    if problem:
        raise click.ClickException(
            f"{problem}. Start the service first (`careloop run`) and run the demo with the "
            "same environment: the same directory, or the same CARELOOP_INSTANCE_DIR and "
            "DATABASE_URL"
        )
    url = url.rstrip("/")
    links = {}
    with Session(rt.engine) as session:
        shop, token = add_shop(session, DEMO_SHOP, rt.clock.now(), name="CareLoop Demo")
        for provider, secret in (("aftership", secrets.token_urlsafe(24)), ("shipbob", None)):
            issued = connect(session, rt.secrets, shop.id, provider, secret, rt.clock.now())
            links[provider] = ProviderLink(webhook_url(url, provider, issued.url_key), secret)
        helpdesks = {}  # the support day's: Gorgias (we make its secret), Zendesk
        for provider, secret in (("gorgias", None), ("zendesk", secrets.token_urlsafe(24))):
            issued = connect(session, rt.secrets, shop.id, provider, secret, rt.clock.now())
            helpdesks[provider] = ProviderLink(
                webhook_url(url, provider, issued.url_key), issued.secret_header or secret
            )
        session.commit()
    click.echo(f"Playing a store day for {DEMO_SHOP} against {url}:")
    try:
        ok = play_demo(
            url, rt.settings.shopify_api_secret, token, links, click.echo,
            outbox_dir=str(rt.settings.instance_dir / "outbox"),
        )  # fmt: skip
    except OSError as exc:
        raise click.ClickException(
            f"could not reach {url} ({type(exc).__name__}); is `careloop run` running?"
        ) from None
    except SignaturesRefused:
        raise click.ClickException(
            f"{url} refused the demo's webhook signatures (401): that server was started "
            "with other secrets than this command read. This usually means it runs with "
            "another CARELOOP_INSTANCE_DIR, .env or SHOPIFY_API_SECRET; run the demo with "
            "the same environment as the server"
        ) from None
    if not ok:
        raise click.ClickException("the demo orders did not reach their expected states")
    click.echo("")
    click.echo("The support day: tickets from two helpdesks, closed, surveys answered:")
    outbox_dir = str(rt.settings.instance_dir / "outbox")
    support_day(url, helpdesks, click.echo, outbox_dir)
    click.echo(f"  curl -H 'Authorization: Bearer {token}' {url}/api/v1/tickets")


def _own_command() -> str:
    """How to run this `careloop` again from the same shell without
    activating the virtualenv: the script's own path (e.g.
    `.venv/bin/careloop`), or `python -m app` with this interpreter."""
    script = Path(sys.argv[0])
    if script.name != "careloop" or not script.is_file():
        return f"{sys.executable} -m app"
    script = script.absolute()
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _safe_url(rt: Runtime) -> str:
    return make_url(rt.settings.database_url).render_as_string(hide_password=True)
