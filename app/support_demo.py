"""The demo's support day (`careloop demo`, after the store day): two tickets
through two helpdesks, as they would send them (a Gorgias HTTP integration
with its secret header, a signed Zendesk webhook), closed; then the
customers open the survey emails from the outbox folder and answer them
through the survey page, as a phone would (GET, then one POST)."""

from __future__ import annotations

import email
import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import requests

from integrations import zendesk

REQUEST_TIMEOUT = 10


def _gorgias(ticket_id: int, status: str, at: datetime, message: dict | None = None) -> dict:
    def stamp(moment: datetime) -> str:
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat()

    return {
        "ticket": {
            "id": ticket_id, "status": status, "channel": "email", "via": "email",
            "spam": False, "subject": "Where is my order #1001?",
            "customer": {"email": "ana@example.com"},
            "assignee_user": {"email": "sam@careloop-demo.example"},
            "tags": [{"name": "wismo"}], "created_datetime": stamp(at - timedelta(hours=2)),
            "updated_datetime": stamp(at),
        },
        "message": message or {},
    }  # fmt: skip


def _zendesk(kind: str, at: datetime, status: str, event: dict) -> dict:
    z = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    opened = (at - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "type": f"zen:event-type:ticket.{kind}", "id": str(uuid.uuid4()), "time": z,
        "detail": {
            "id": "81003", "status": status, "subject": "My parcel for #1003 never came",
            "requester_id": "3003", "submitter_id": "3003", "assignee_id": "9001",
            "priority": "HIGH", "tags": ["delivery"], "created_at": opened, "updated_at": z,
            "via": {"channel": "email"},
        },
        "event": event,
    }  # fmt: skip


def support_day(
    base_url: str,
    links: dict,
    echo: Callable[[str], None],
    outbox_dir: str,
    wait_seconds: float = 30.0,
) -> int:
    """Play the support day; returns how many surveys were answered."""
    session = requests.Session()
    now = datetime.now(UTC).replace(microsecond=0)
    gorgias, zen = links["gorgias"], links["zendesk"]
    name, _, value = gorgias.secret.partition(": ")
    replied_at = (now - timedelta(hours=1)).replace(tzinfo=None).isoformat()
    reply = {"id": "1", "from_agent": True, "public": True, "created_datetime": replied_at,
             "body_text": "It is with the carrier: tomorrow."}  # fmt: skip
    asked = _gorgias(1001, "open", now - timedelta(hours=2))
    steps = [
        ("gorgias", asked, "Ana asks Gorgias about #1001"),
        ("gorgias", _gorgias(1001, "open", now - timedelta(hours=1), reply), "Sam answers Ana"),
        ("gorgias", _gorgias(1001, "closed", now - timedelta(minutes=5)), "Sam closes it"),
        ("zendesk", _zendesk("created", now - timedelta(hours=3), "NEW", {}),
         "John writes to Zendesk about #1003"),
        ("zendesk", {"type": zendesk.REQUESTER, "id": "81003-map", "detail": {
            "id": "81003", "requester_email": "john@example.com"}},
         "the Zendesk trigger maps John's email"),
        ("zendesk", _zendesk("comment_added", now - timedelta(hours=2), "OPEN", {"comment": {
            "id": "7001", "body": "We are on it.", "is_public": True,
            "author": {"id": "9001", "is_staff": True}}}), "an agent answers John"),
        ("zendesk", _zendesk("status_changed", now - timedelta(minutes=4), "SOLVED",
                             {"current": "SOLVED", "previous": "OPEN"}), "John's ticket is solved"),
    ]  # fmt: skip
    for source, payload, note in steps:
        body = json.dumps(payload).encode()
        if source == "gorgias":
            url, headers = gorgias.url, {name: value}
        else:
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            url, headers = (
                zen.url,
                {
                    zendesk.TIMESTAMP: stamp,
                    zendesk.SIGNATURE: zendesk.sign(zen.secret, stamp, body),
                },
            )
        headers["Content-Type"] = "application/json"
        response = session.post(url, data=body, headers=headers, timeout=REQUEST_TIMEOUT)
        echo(f"  {response.status_code} {source:<8} {note}")
    answers = {"ana@example.com": ("5", "Quick and kind, thank you"),
               "john@example.com": ("2", "It took three days to hear back")}  # fmt: skip
    answered: set[str] = set()
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline and len(answered) < len(answers):
        for recipient, path in _survey_links(Path(outbox_dir) / "email"):
            if recipient in answers and recipient not in answered:
                rating, comment = answers[recipient]
                _answer(session, f"{base_url}{path}", rating, comment)
                echo(f"  {recipient} rates the help {rating}/5 on the survey page")
                answered.add(recipient)
        time.sleep(0.3)
    if len(answered) < len(answers):
        echo("  (some survey emails had not gone out yet; answer them from the outbox folder)")
    return len(answered)


def _survey_links(folder: Path) -> list[tuple[str, str]]:
    """(recipient, survey path with a rating) of each survey email sent."""
    found = []
    for path in sorted(folder.glob("*.eml")) if folder.is_dir() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        html = message.get_body(("html",))
        match = re.search(r'href="[^"]*(/s/[^"?]+)\?r=', html.get_content() if html else "")
        if match:
            found.append((str(message["To"]), match.group(1)))
    return found


def _answer(session: requests.Session, url: str, rating: str, comment: str) -> None:
    """What a customer does: open the link (records nothing), tap the button,
    then send a comment."""
    page = session.get(f"{url}?r={rating}", timeout=REQUEST_TIMEOUT)
    form = re.search(r'name="form" value="([0-9a-f]+)"', page.text)
    if form is None:
        return
    data = {"form": form.group(1)}
    session.post(url, data=data | {"rating": rating}, timeout=REQUEST_TIMEOUT)
    session.post(url, data=data | {"comment": comment}, timeout=REQUEST_TIMEOUT)
