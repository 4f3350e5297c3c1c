"""The development transport: emails as `.eml` files, text messages as lines
of a log, under `<instance>/outbox/`. Used when no provider is configured."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from notifications.email import build_mime
from notifications.messages import EmailMessage, Outcome, SendResult, SmsMessage


class FolderEmailProvider:
    name = "outbox-folder"

    def __init__(self, directory: Path):
        self.directory = directory

    def send_batch(self, messages: list[EmailMessage]) -> list[SendResult]:
        self.directory.mkdir(parents=True, exist_ok=True)
        results = []
        for message in messages:
            file_name = message.message_id.strip("<>").replace("@", "_").replace("/", "_")
            path = self.directory / f"{file_name}.eml"
            try:
                mime = build_mime(message)
            except ValueError as exc:  # as SMTP would refuse it: this message only
                results.append(SendResult(Outcome.PERMANENT, reason=str(exc)))
                continue
            path.write_bytes(mime)
            results.append(SendResult(Outcome.SENT, provider_id=message.message_id))
        return results


class FolderSmsProvider:
    name = "outbox-folder"

    def __init__(self, path: Path):
        self.path = path

    def send(self, message: SmsMessage) -> SendResult:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "from": message.sender,
            "to": message.to,
            "body": message.body,
        }
        with self.path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(line, ensure_ascii=False) + "\n")
        return SendResult(Outcome.SENT, provider_id=f"file:{self.path.name}")
