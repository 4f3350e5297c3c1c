"""The wiring: which modules a process loads. Each check runs in a fresh
interpreter, since this test session has loaded everything already."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def loaded_after(statement: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh interpreter has loaded after `statement`."""
    probe = f"import sys\n{statement}\nprint(' '.join(m for m in {modules!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return result.stdout.split()


@pytest.mark.parametrize("statement", ["import app", "import app.models"])
def test_models_load_without_flask_jwt_or_smtp(statement):
    unwanted = ("flask", "jwt", "smtplib", "app.factory", "app.config", "notifications")
    assert loaded_after(statement, unwanted) == []


def test_cli_worker_and_scheduler_never_load_flask():
    statement = "import app.cli, app.worker, app.jobs"
    assert loaded_after(statement, ("flask", "app.factory", "app.web")) == []


def test_layer_contracts_hold():
    """The contracts in pyproject.toml's [tool.importlinter] (DESIGN.md's layers)."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
