# syntax=docker/dockerfile:1
#
# One image for every role of the inventory platform. Which role a container plays is chosen by
# its command: `inventory serve --role all|command|query|listener`. docker-compose.yml runs the
# three split roles from this image; docs/docker.md explains the set-up.
#
# The package is installed the way scripts/setup.sh installs it (pip, from this pyproject.toml),
# only without -e: the image holds no working tree to edit.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtual environment with the package and its dependencies ---------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Dependencies first, from the project's metadata alone (README.md is part of it), so that a
# change under app/ does not download and install every dependency again.
COPY pyproject.toml README.md ./
RUN mkdir app && touch app/__init__.py \
    && python -m pip install .
# Then the application itself, from the same pyproject.toml.
COPY app ./app
RUN python -m pip install --no-deps . \
    && inventory --help > /dev/null

# --- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="inventory" \
      org.opencontainers.image.description="Retail inventory on CQRS and events: command, query and listener roles."

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    INVENTORY_DATA_DIR=/data \
    HEALTHCHECK_PORT=8000

# A fixed, unprivileged uid/gid: every role's container writes the same /data volume.
RUN groupadd --system --gid 10001 inventory \
    && useradd --system --uid 10001 --gid inventory --home-dir /srv/inventory --shell /usr/sbin/nologin inventory \
    && mkdir -p /data /srv/inventory \
    && chown inventory:inventory /data

COPY --from=build /opt/venv /opt/venv

# Pages and assets are read from the working directory at run time (they are not part of the
# Python package).
WORKDIR /srv/inventory
COPY templates ./templates
COPY static ./static

USER 10001:10001

# SQLite files (inventory.db, commands.db, users.db, ...). A new named volume mounted here takes
# the ownership above, so the unprivileged user can write it.
VOLUME /data

EXPOSE 8000 8080 8081 8082

# Liveness of the HTTP role. HEALTHCHECK_PORT must match --port when it is not the default of
# `serve --role all` (docker-compose.yml defines its own checks per role).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/v1/health' % os.environ.get('HEALTHCHECK_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["inventory"]
CMD ["serve", "--role", "all", "--host", "0.0.0.0"]
