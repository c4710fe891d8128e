#!/usr/bin/env bash
# Build docker-compose.yaml's images where no container registry answers: Debian-based equivalents of
# apache/airflow, postgres, redis and tecnativa/docker-socket-proxy (docker/local/*, from a debootstrap
# base + Debian packages), then our Airflow image on the local Airflow base, pip installing from the
# host's wheelhouse (PyPI / pip's configured index, served to the build over loopback); and the trainer
# image. Cached: an unchanged rebuild takes seconds. Needs root (debootstrap) and a Docker daemon
# (scripts/ensure_dockerd.sh).
#
# Then point compose at them (the last lines printed are the variables, ready for an env file):
#   scripts/build_local_images.sh > local-images.json && docker compose up -d --wait
# With registry access skip this: compose's defaults are the official images.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -m tools.docker_build --stack
"$PY" -m tools.docker_build >/dev/null
