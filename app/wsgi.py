"""WSGI entry point for gunicorn: `gunicorn app.wsgi:application`."""

from app.factory import create_app
from app.logs import configure_logging

application = create_app()
configure_logging(application.extensions["careloop"].settings.log_level)
