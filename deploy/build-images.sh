#!/bin/sh
# `make images`: the image every docker-compose.yml service runs (minik8s:latest).
#   BASE=python:3.11-slim-bookworm make images   # where Docker Hub is reachable
#   make images                                  # no registry: a local base built by mmdebstrap
# Python dependencies come from a wheelhouse downloaded here on the host (pip inside
# `docker build` cannot be relied on: no index, or TLS interception); our pause and busybox
# images are built here too and copied in, so a node needs no registry.
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TAG=${MINIK8S_IMAGE:-minik8s:latest}
mkdir -p build/wheels build/images
"$PY" -m images build --data-dir build
"$PY" -m pip wheel -q --wheel-dir build/wheels .
if [ -z "${BASE:-}" ]; then
  # tagged by what deploy/base.sh installs: a changed package list builds a new base
  BASE=minik8s/base:bookworm-$(sha256sum deploy/base.sh | cut -c1-12)
  if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    echo "building the local base image $BASE with mmdebstrap"
    deploy/base.sh "$BASE"
  fi
fi
docker build --build-arg "BASE=$BASE" -f deploy/Dockerfile -t "$TAG" .
echo "built $TAG from $BASE"
