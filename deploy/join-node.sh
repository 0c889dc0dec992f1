#!/bin/sh
# Join this machine (Debian 12, as root) to a minik8s cluster as a worker node.
#
#   deploy/join-node.sh https://10.0.0.1:6443 abcdef.0123456789abcdef sha256:<hex> [extra node join flags]
#
# The three values come from `minictl token create --print-join-command` on the control plane.
# Run it from a checkout of the repository; it installs what a node needs (Debian packages, the
# venv) and then runs `minictl node join`, which returns once the Node is Ready. Data: DATA_DIR
# (default /var/lib/minik8s/node). Stop: .venv/bin/minictl cluster down --data-dir "$DATA_DIR".
set -eu
if [ "$#" -lt 3 ]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
SERVER=$1 TOKEN=$2 HASH=$3
shift 3
[ "$(id -u)" -eq 0 ] || { echo "run as root: the node runs containerd, iptables and cgroups" >&2; exit 1; }
cd "$(dirname "$0")/.."
DATA_DIR=${DATA_DIR:-/var/lib/minik8s/node}
[ -x .venv/bin/minictl ] || make venv
.venv/bin/minictl cluster prereqs --node --install
exec .venv/bin/minictl node join "$SERVER" --token "$TOKEN" --discovery-token-ca-cert-hash "$HASH" \
  --data-dir "$DATA_DIR" "$@"
