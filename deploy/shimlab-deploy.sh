#!/bin/sh
# The installer DaemonSet's entrypoint (kata-deploy's way): `install` puts
# shimlab on the host mounted at /host, restarts containerd, labels the node and
# then waits; `cleanup` (preStop) undoes all of it.
set -eu

# Where the pod sees the host's files, the CLI and the service account (the defaults are the DaemonSet's).
ROOT=${SHIMLAB_HOST_ROOT:-/host}
PREFIX=${SHIMLAB_PREFIX:-/opt/shimlab}
CONFIG=${CONTAINERD_CONFIG:-/etc/containerd/config.toml}
LABEL=shimlab.io/runtime
SHIMLAB=${SHIMLAB_CLI:-"node /opt/shimlab-src/bin/shimlab"}
SA=${SHIMLAB_SERVICEACCOUNT_DIR:-/var/run/secrets/kubernetes.io/serviceaccount}

# PATCH the node's labels through the API server with the pod's service account.
label() {
	value=$1 # "\"true\"" to set, null to remove
	curl -fsS --cacert "$SA/ca.crt" -H "Authorization: Bearer $(cat "$SA/token")" \
		-H "Content-Type: application/merge-patch+json" -X PATCH \
		"https://${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT}/api/v1/nodes/${NODE_NAME}" \
		-d "{\"metadata\":{\"labels\":{\"${LABEL}\":${value}}}}" >/dev/null
}

case "${1:-}" in
install)
	: "${NODE_NAME:?NODE_NAME must be set (the downward API's spec.nodeName)}"
	$SHIMLAB install --root "$ROOT" --prefix "$PREFIX" --containerd-config "$CONFIG" --copy --restart
	label '"true"'
	echo "shimlab installed on ${NODE_NAME}; node labelled ${LABEL}=true"
	# Stay up: the pod's lifetime is the installation's (preStop removes it).
	trap 'kill "$sleeper" 2>/dev/null || true; wait "$sleeper" 2>/dev/null || true; exit 0' TERM INT
	while :; do
		sleep 3600 &
		sleeper=$!
		wait "$sleeper"
	done
	;;
cleanup)
	: "${NODE_NAME:?NODE_NAME must be set}"
	# Unlabel first, so that no new shimlab pod lands here while it goes away.
	label null || echo "could not remove the node label ${LABEL}" >&2
	$SHIMLAB uninstall --root "$ROOT" --prefix "$PREFIX" --containerd-config "$CONFIG" --restart
	;;
*)
	echo "usage: $0 install|cleanup" >&2
	exit 2
	;;
esac
