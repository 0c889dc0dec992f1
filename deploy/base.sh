#!/bin/sh
# Build the local base image with no registry: Debian bookworm with Python 3.11 and what a node
# runs (containerd, crun and runc, CNI plugins, iptables, ...), imported into Docker as $1.
set -eu
TAG=${1:-minik8s/base:bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
mmdebstrap --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --include=python3,python3-venv,ca-certificates,containerd,crun,runc,containernetworking-plugins,iptables,iproute2,conntrack,kmod,docker-registry,mount \
  bookworm - "$MIRROR" | docker import - "$TAG"
