"""WSGI entry point for gunicorn: `gunicorn app.wsgi:application`."""

from app.config import Settings
from app.factory import create_app
from app.logs import configure_logging
from app.runtime import build_runtime

settings = Settings.from_env()
configure_logging(settings.log_level, json_lines=settings.is_production)
application = create_app(build_runtime(settings))
