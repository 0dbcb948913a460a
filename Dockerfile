# One image for the Rasa server, the action server and the counsellor desk; the command
# chooses which (docker-compose.yml runs them all):
#   python -m bot.replica          the Rasa server (the default)
#   python -m bot.action_server    the action server
#   python -m desk                 the counsellor desk
#   python -m bot.migrate          every store's tables, once, before the servers start
# The model is trained here, at build time (about 7 minutes and 5 GB of memory on 2 cores).
# No secret is baked in: every one comes from the environment (.env.example).

FROM python:3.10-slim-bookworm AS python
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RASA_TELEMETRY_ENABLED=false \
    PATH=/opt/venv/bin:$PATH

# Every direct dependency is pinned in requirements.txt, each has a wheel: no compiler.
FROM python AS dependencies
COPY requirements.txt /tmp/requirements.txt
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir -r /tmp/requirements.txt

# `make train`, with only what the model depends on (the Makefile's TRAINING_FILES), so
# that a change to anything else keeps this layer and its model.
FROM dependencies AS model
WORKDIR /build
COPY config.yml domain.yml ./
COPY data/ data/
COPY avrr/__init__.py avrr/content.py avrr/logs.py avrr/office.py avrr/vocabulary.py avrr/
COPY bot/__init__.py bot/handoff_policy.py bot/
COPY bot/language/ bot/language/
COPY bot/safety/ bot/safety/
RUN PYTHONPATH=/build rasa train --fixed-model-name avrr --out models --quiet

FROM python
RUN groupadd --system --gid 10001 avrr \
    && useradd --system --uid 10001 --gid avrr --create-home --home-dir /home/avrr \
        --shell /usr/sbin/nologin avrr
COPY --from=dependencies /opt/venv /opt/venv
WORKDIR /app
COPY endpoints.yml credentials.yml ./
COPY avrr/ avrr/
COPY actions/ actions/
COPY bot/ bot/
COPY desk/ desk/
COPY content/ content/
COPY --from=model /build/models/avrr.tar.gz models/avrr.tar.gz
# The code is root's and read-only to the servers; each writes only its data folder
# (SQLite files when no database URL is given; the Rasa server's credentials file).
RUN install --directory --owner=avrr --group=avrr --mode=0700 /app/var
# A container's network is its own: the servers listen beyond loopback there, and only
# the ports nginx publishes are reachable from outside (docker-compose.yml).
ENV PYTHONPATH=/app \
    AVRR_DATA_DIR=/app/var \
    AVRR_MODEL=/app/models/avrr.tar.gz \
    ACTION_HOST=0.0.0.0 \
    DESK_HOST=0.0.0.0
# Numeric, so that a runtime can tell it is not root without reading /etc/passwd.
USER 10001:10001
# The Rasa server, the action server, the desk. Health: GET /ready on each (avrr.probe).
EXPOSE 5005 5055 8000
CMD ["python", "-m", "bot.replica"]
