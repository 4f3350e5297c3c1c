# syntax=docker/dockerfile:1
#
# CareLoop production image. By default it runs the web app under gunicorn.
#
#   docker build -t careloop .
#
# Every process runs from this one image with the same environment. The image
# sets CARELOOP_ENV=production, so nothing is generated: give DATABASE_URL
# (postgresql://...) and every secret (CARELOOP_SECRET_KEY,
# CARELOOP_ENCRYPTION_KEYS, SHOPIFY_API_KEY, SHOPIFY_API_SECRET) and a provider
# per channel (SMTP_HOST or POSTMARK_SERVER_TOKEN; TWILIO_ACCOUNT_SID and
# TWILIO_AUTH_TOKEN; or CARELOOP_WITHOUT_PROVIDER=hold), e.g. in an env file:
#
#   docker run --rm --env-file careloop.env careloop careloop db upgrade   # first, for each release
#   docker run -d --env-file careloop.env -p 8000:8000 careloop            # web (the default CMD)
#   docker run -d --env-file careloop.env --no-healthcheck careloop careloop worker
#   docker run -d --env-file careloop.env --no-healthcheck careloop careloop scheduler
#
# The HEALTHCHECK probes the web server on port 8000, so the worker and the
# scheduler run without it (--no-healthcheck; in Compose, healthcheck: {disable: true}).
#
# The source stays in /app and is installed in editable mode: CareLoop finds
# migrations/ and templates/ next to its app/ package (app.config.ROOT), and a
# plain `pip install .` would leave them out (they are not Python packages).

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    CARELOOP_ENV=production \
    PROMETHEUS_MULTIPROC_DIR=/tmp/careloop-metrics

# An unprivileged user owns nothing but the metrics directory: the code is
# root-owned and read-only for it. (gunicorn.conf.py empties that directory
# at start; gunicorn's workers sum their counters through it.)
RUN groupadd --system --gid 10001 careloop \
 && useradd --system --uid 10001 --gid careloop --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin careloop \
 && install -d -o careloop -g careloop -m 0700 /tmp/careloop-metrics \
 && python -m venv /opt/venv

WORKDIR /app

# The runtime dependencies first (no test extras), so that this layer is
# rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

COPY alembic.ini gunicorn.conf.py ./
COPY app/ app/
COPY integrations/ integrations/
COPY notifications/ notifications/
COPY templates/ templates/
COPY migrations/ migrations/
RUN pip install --no-deps --editable . \
 && python -m compileall -q app integrations notifications migrations

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["careloop", "serve", "--host", "0.0.0.0", "--port", "8000"]
