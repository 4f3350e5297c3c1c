"""The history import: a shop's customers and orders from before the install
(retention cohorts need them), fetched with Shopify bulk operations.

    running ──(bulk_operations/finish webhook, or a poll)──> ready
    ready ──(stream the JSONL, apply in batches)──> next step's running ... done
    any step ──> failed (the error is kept; `careloop shops import` starts anew)

Each step is one bulk query (customers, then orders). Its result file is
streamed line by line and applied through the same code as the webhooks, so
the newer `updated_at` wins whichever arrives first, and a live webhook
during the import is never overwritten by an older bulk record. Every batch
commits its rows together with `lines_applied`, so an interrupted import
resumes where it stopped, without applying a line twice or skipping one. A
line that cannot be read is dead-lettered (a dead inbox message with the
line and its reason, counted in `lines_skipped`) in the batch it falls in,
and the file is read on: one download per step, however many bad lines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlmodel import Session, select

from app import rules
from app.models import HistoryImport, InboxMessage, Shop
from app.orders import Cause, apply
from app.runtime import Runtime
from app.shop_tokens import with_admin
from integrations import shopify_bulk

log = logging.getLogger(__name__)

BATCH_LINES = 500
ACTIVE = ("running", "ready")


def latest(session: Session, shop_id: int) -> HistoryImport | None:
    return session.exec(
        select(HistoryImport)
        .where(HistoryImport.shop_id == shop_id)
        .order_by(HistoryImport.id.desc())
    ).first()


def begin(session: Session, rt: Runtime, shop: Shop) -> HistoryImport:
    """Start an import, or return the one under way. The caller commits."""
    current = latest(session, shop.id)
    if current is not None and current.status in ACTIVE:
        return current
    now = rt.clock.now()
    run = HistoryImport(shop_id=shop.id, status="running", started_at=now, updated_at=now)
    _start_step(session, rt, shop, run)
    session.add(run)
    session.flush()
    return run


def _start_step(session: Session, rt: Runtime, shop: Shop, run: HistoryImport) -> None:
    query = shopify_bulk.step_query(run.step, shop.birth_date_namespace, shop.birth_date_key)
    run.bulk_operation_id = with_admin(session, rt, shop, lambda c: shopify_bulk.start(c, query))
    run.status, run.url, run.objects_total, run.lines_applied = "running", None, None, 0
    run.updated_at = rt.clock.now()


def poll(session: Session, rt: Runtime, shop: Shop, run: HistoryImport) -> HistoryImport:
    """Ask Shopify how the current step's bulk operation is doing (for when
    the finish webhook is late or lost). The caller commits."""
    if run.status != "running" or run.bulk_operation_id is None:
        return run
    state = with_admin(session, rt, shop, lambda c: shopify_bulk.status(c, run.bulk_operation_id))
    if state.status == "COMPLETED":
        run.status, run.url, run.objects_total = "ready", state.url, state.object_count
    elif state.finished:
        run.status, run.error = "failed", f"bulk operation {state.status}: {state.error_code}"
        run.finished_at = rt.clock.now()
    run.updated_at = rt.clock.now()
    session.add(run)
    return run


def apply_ready(
    rt: Runtime,
    run_id: int,
    progress: Callable[[int, int | None], None] | None = None,
    batch_lines: int = BATCH_LINES,
) -> HistoryImport:
    """Stream the ready step's file and apply it in committed batches; then
    start the next step, or finish. `progress(lines_applied, objects_total)`
    is called after each batch."""
    with Session(rt.engine, expire_on_commit=False) as session:
        run = session.get(HistoryImport, run_id)
        shop = session.get(Shop, run.shop_id)
        if run.status == "ready" and run.url is None:
            # Told by the webhook, which carries no URL: ask for it.
            run.status = "running"
            poll(session, rt, shop, run)
            session.commit()
        if run.status != "ready":
            return run
        url, start = run.url, run.lines_applied

    # One pass over the file: a line we cannot read is dead-lettered with its
    # reason in the batch it falls in, and the stream goes on past it.
    batch: list[tuple[int, list | shopify_bulk.BulkLineError]] = []
    for line_number, events in shopify_bulk.records(
        url, start_line=start, timeout_seconds=rt.settings.provider_timeout_seconds * 3
    ):
        batch.append((line_number, events))
        if len(batch) >= batch_lines:
            _commit_batch(rt, run_id, batch, progress)
            batch = []
    _commit_batch(rt, run_id, batch, progress)

    with Session(rt.engine, expire_on_commit=False) as session:
        run = session.get(HistoryImport, run_id)
        shop = session.get(Shop, run.shop_id)
        if run.step + 1 < len(shopify_bulk.BULK_QUERIES):
            run.step += 1
            _start_step(session, rt, shop, run)
        else:
            run.status, run.finished_at = "done", rt.clock.now()
        run.updated_at = rt.clock.now()
        session.add(run)
        session.commit()
        return run


def _commit_batch(rt: Runtime, run_id: int, batch, progress) -> None:
    if not batch:
        return
    now = rt.clock.now()
    with Session(rt.engine) as session:
        run = session.get(HistoryImport, run_id, with_for_update=True)
        cause = Cause(label="shopify:bulk_import", inbox_id=None, now=now)
        for _line, events in batch:
            if isinstance(events, shopify_bulk.BulkLineError):
                _dead_letter(session, run, events, now)
                continue
            for event in events:
                rules.react(session, apply(session, run.shop_id, event, cause), cause.now)
        run.lines_applied = batch[-1][0] + 1
        run.updated_at = now
        session.add(run)
        session.commit()
        applied, total = run.lines_applied, run.objects_total
    if progress:
        progress(applied, total)


def _dead_letter(
    session: Session, run: HistoryImport, error: shopify_bulk.BulkLineError, now: datetime
) -> None:
    """Keep a line we could not read as a dead inbox message (listed by
    `careloop inbox list` and `GET /api/v1/inbox?status=dead`, with the line
    and its reason, and the customer and order it names so that a redaction
    finds it), count it on the import, and say so in its `error`."""
    log.error("history import %s: %s; dead-lettered", run.id, error)
    step = shopify_bulk.STEP_NAMES[run.step]
    # PostgreSQL text holds no NUL; a bad line may have any bytes.
    body = error.line.decode("utf-8", "replace").replace("\0", "\ufffd")
    customer_ref, order_ref = shopify_bulk.references(error.line)
    session.add(
        InboxMessage(
            shop_id=run.shop_id, source=shopify_bulk.SOURCE, topic=f"bulk_operations/{step}",
            delivery_id=f"import-{run.id}-{step}-line-{error.line_number}", received_at=now,
            body=body, status="dead", next_attempt_at=now,
            last_error=str(error), customer_ref=customer_ref, order_ref=order_ref,
        )
    )  # fmt: skip
    run.lines_skipped += 1
    run.error = (
        f"{run.lines_skipped} line(s) could not be read and were dead-lettered "
        f"(GET /api/v1/inbox?status=dead); the last: {error}"
    )


def advance_all(rt: Runtime) -> None:
    """The scheduled step: poll running imports, apply ready ones. One shop's
    failure is recorded on its import and does not stop the others."""
    with Session(rt.engine, expire_on_commit=False) as session:
        runs = session.exec(select(HistoryImport).where(HistoryImport.status.in_(ACTIVE))).all()
    for run in runs:
        try:
            with Session(rt.engine, expire_on_commit=False) as session:
                run = session.get(HistoryImport, run.id)
                poll(session, rt, session.get(Shop, run.shop_id), run)
                session.commit()
            if run.status == "ready":
                apply_ready(rt, run.id)
        except Exception as exc:  # recorded on the import, logged with its traceback
            log.exception("history import %s failed", run.id)
            with Session(rt.engine) as session:
                failed = session.get(HistoryImport, run.id)
                failed.status, failed.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
                failed.finished_at = failed.updated_at = rt.clock.now()
                session.add(failed)
                session.commit()


def describe(run: HistoryImport) -> dict:
    return {
        "id": run.id,
        "status": run.status,
        "step": shopify_bulk.STEP_NAMES[run.step],
        "lines_applied": run.lines_applied,
        "lines_skipped": run.lines_skipped,
        "objects_total": run.objects_total,
        "error": run.error,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }
