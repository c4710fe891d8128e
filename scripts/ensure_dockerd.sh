#!/usr/bin/env bash
# Make sure a Docker daemon answers, so the trainer-container test runs for real (CI never skips it).
#
# Idempotent: does nothing when `docker info` already answers. Otherwise installs Debian's docker.io
# when dockerd is missing (apt-get update first; needs root), starts dockerd in the background with
# its output in $DOCKERD_LOG, and waits until it answers. Exit status non-zero when no daemon answers.
set -euo pipefail

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/news-signals-dockerd.log}"
WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-60}"

log() { echo "ensure_dockerd: $*" >&2; }

daemon_answers() { command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi; }
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${_APT_UPDATED:-}" ]; then
    as_root apt-get update -qq -o DPkg::Lock::Timeout=600 || { log "apt-get update failed (need root and a Debian mirror)"; return 1; }
    _APT_UPDATED=1
  fi
  as_root apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "$@" >/dev/null
}

# A compose tool for `docker compose config` in tests/test_compose.py: the v2 plugin when present,
# else Debian's docker-compose (v1.29, reads the Compose Specification). Not fatal when unavailable.
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  log "no compose tool: installing Debian's docker-compose"
  apt_install docker-compose || log "could not install docker-compose (tests/test_compose.py falls back to a YAML check)"
fi

if daemon_answers; then
  log "a Docker daemon already answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  log "dockerd not found: installing Debian's docker.io"
  apt_install docker.io || { log "apt-get install docker.io failed"; exit 1; }
fi

# A socket or pid file left by a dockerd that died is fine: dockerd replaces both.
log "starting dockerd in the background (log: $DOCKERD_LOG)"
mkdir -p "$(dirname "$DOCKERD_LOG")"
# setsid + nohup: the daemon outlives this script and the CI step's process group.
as_root setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 < /dev/null &

for _ in $(seq 1 "$WAIT_SECONDS"); do
  if daemon_answers; then
    log "dockerd answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
    exit 0
  fi
  sleep 1
done
log "dockerd did not answer within ${WAIT_SECONDS}s; last lines of $DOCKERD_LOG:"
tail -n 20 "$DOCKERD_LOG" >&2 || true
exit 1
