#!/usr/bin/env bash
# The netcube demo (npm run demo): three namespace-hosts, one chain across them
# applied with netcubectl, and real traffic through it.
#
#   npm run demo               set up (building first if needed), apply, ping, show
#   npm run demo -- down       tear everything down
#
# Needs root. Uses its own etcd (see deploy/hosts.sh: TLS with client certificates,
# access control on; netcubectl runs as the admin); nothing outside the namespaces
# it creates is touched.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HOSTS_SH=$REPO/deploy/hosts.sh
CHAIN=$REPO/deploy/examples/demo-chain.yaml
STATE=${NETCUBE_DEPLOY_STATE:-/run/netcube-deploy}

if [[ ${1:-} == down ]]; then
  exec bash "$HOSTS_SH" down
fi
if [[ $# -gt 0 ]]; then
  printf 'usage: npm run demo [-- down]\n' >&2
  exit 2
fi
[[ $(id -u) == 0 ]] || {
  printf 'demo.sh: the demo needs root (network namespaces, eBPF)\n' >&2
  exit 1
}

banner() { printf '\n\033[1m### %s\033[0m\n' "$*"; }
show() {
  printf '\033[2m$ %s\033[0m\n' "$*"
  "$@"
}
netcubectl() { node "$REPO/build/js/node-daemon/src/cli/main.js" "$@"; }

if [[ ! -f $REPO/build/js/node-daemon/src/cli/main.js || ! -f $REPO/build/js/node-daemon/src/daemon/main.js || ! -d $REPO/node_modules ]]; then
  banner "netcube is not built yet: running deploy/setup.sh"
  bash "$REPO/deploy/setup.sh"
fi

if [[ -e $STATE/config ]]; then
  banner "an earlier demo is still up: tearing it down first"
  bash "$HOSTS_SH" down
fi

banner "three hosts (network namespaces h1 h2 h3), a client at each end, etcd, a netcubed per host"
bash "$HOSTS_SH" up 3
# shellcheck disable=SC1091
source "$STATE/env"
export NETCUBE_ETCD NETCUBE_TLS_CA NETCUBE_TLS_CERT NETCUBE_TLS_KEY

banner "the hosts forward nothing yet: h-client1 cannot reach h-client2"
if ip netns exec h-client1 ping -c 2 -W 1 -q 10.77.0.2 >/dev/null 2>&1; then
  printf 'unexpected: the ping went through without netcube\n'
else
  printf 'ping 10.77.0.2: no reply (as expected)\n'
fi
# Forget that failed address resolution, so the next ping does not start with errors.
ip -n h-client1 neigh flush all
show netcubectl get hosts

banner "apply the chain, and wait until every host has applied it"
sed -n '1,9p' "$CHAIN"
show netcubectl apply -f "$CHAIN" --wait --timeout 60s

banner "real traffic across the three hosts"
show ip netns exec h-client1 ping -c 5 -i 0.2 10.77.0.2

banner "what netcube shows"
show netcubectl get cubes
show netcubectl describe cube fwd2
show netcubectl topology

banner "the DDoS mitigator on h2 at work: blacklist h-client1 (10.77.0.1)"
show netcubectl table put ddos2 blacklist_v4 10.77.0.1 0
if ip netns exec h-client1 ping -c 3 -i 0.2 -W 1 -q 10.77.0.2 >/dev/null 2>&1; then
  printf 'unexpected: the ping went through the blacklist\n'
else
  printf 'ping 10.77.0.2: no reply, ddos2 drops it on h2\n'
fi
printf '(the value is the blacklist entry'"'"'s drop counter)\n'
show netcubectl table dump ddos2 blacklist_v4
show netcubectl table delete ddos2 blacklist_v4 10.77.0.1
show ip netns exec h-client1 ping -c 2 -i 0.2 -q 10.77.0.2

banner "done"
cat <<EOF
The hosts keep running. Things to try (npm run setup put netcubectl on PATH):
  eval "\$(bash deploy/hosts.sh env)"      (etcd, and the admin's certificate for it)
  netcubectl history demo
  netcubectl topology -o dot | dot -Tsvg > demo.svg     (dot is in Debian's graphviz)
  netcubectl get chain demo -o yaml > my-demo.yaml       (edit it, then: netcubectl diff -f my-demo.yaml)
  ip netns exec h-client1 ping -c 100 -i 0.01 10.77.0.2; netcubectl describe cube fwd1
Tear it all down with:
  npm run demo -- down        (or: bash deploy/hosts.sh down)
EOF
