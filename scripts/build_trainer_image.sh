#!/usr/bin/env bash
# Build the trainer image offline (debootstrap base + host wheelhouse); cached by content hash.
# Usage: scripts/build_trainer_image.sh [--tag T] [--base-image IMG] [--online] [--force]
# Production GPU image: scripts/build_trainer_image.sh --online   (BASE_IMAGE = the Dockerfile's CUDA default)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
exec "$PY" -m tools.docker_build "$@"
