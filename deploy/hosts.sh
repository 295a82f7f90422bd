#!/usr/bin/env bash
# Namespace-hosts: a netcube cluster on one machine, for demos and tests.
#
#   hosts.sh up N [--etcd-members 1|3] [--name PREFIX] [--state DIR] [--etcd-port PORT|auto]
#                 [--k8s [--pods M]]
#   hosts.sh down   [--state DIR]
#   hosts.sh status [--state DIR]
#   hosts.sh env    [--state DIR]      prints the exports netcubectl needs (etcd, the admin's certificate)
#
# `up` builds N hosts as network namespaces PREFIX1..PREFIXN linked by veths in a
# line, with a client namespace at each end:
#
#   PREFIX-client1      PREFIX1              PREFIX2                  PREFIXN       PREFIX-client2
#   eth0 ----------- left    right ------- left    right ... ----- left  right ------ eth0
#   10.77.0.1/24                                                                      10.77.0.2/24
#
# The hosts' netdevs have no addresses: the hosts forward nothing until a chain tells
# netcube to. A local etcd (1 or 3 members) listens on 127.0.0.1 for netcubectl and
# on unix sockets for the daemons (a daemon in a host namespace cannot reach the
# machine's loopback). One netcubed per host runs in the host's network namespace
# (nsenter --net, so its bpffs mount is the machine's and outlives it), with its
# state under /run/netcube/<host>. Everything `up` starts is recorded under the state
# directory (default /run/netcube-deploy): pids, logs, etcd data; `down` stops
# exactly those processes by pid and removes every namespace, mount and directory.
#
# Locked down as a real cluster: a CA and a certificate per identity (certs.sh, in
# the state directory's pki/), etcd over TLS only with client certificates for its
# clients and peers, and etcd's access control on with netcube's roles (netcubectl
# access): each host writes only its own registration and status, the admin (your
# netcubectl, with pki/admin.crt) the chains.
#
# With --k8s the hosts are Kubernetes-like nodes instead (netcube on Kubernetes,
# remote-services/k8s/README.md): their eth0 on one segment (a namespace PREFIX-seg
# with a bridge), node i at 10.78.0.(10+i) with pod range 10.244.i.0/24, and a client
# at 10.78.0.100 outside the cluster. The scripted API server of test/ serves them as
# Nodes, with M pods per node (default 2: PREFIXi-pj at 10.244.i.(10+j), namespace
# default, labels app: demo); netcube-k8s (the controller), netcube-router, -lbrp,
# -firewall and -k8sdispatcher (each node's edge: pods masqueraded to the client) run beside etcd with identities of their own; each node has its agent
# (netcube-k8s node: the VXLAN netdev ncvx0 and its forwarding table) and its
# netcube-cni config (netcube-k8s cni-config), with which each pod is added as a
# container runtime would add it (CNI ADD, in a namespace of its own).
set -Eeuo pipefail
# Logs and state: group-readable at most; keys (certs.sh) the owner's alone.
umask 027
# An unexpected failure says where, before the cleanup runs.
trap 'printf "hosts.sh: line %s: \"%s\" failed\n" "$LINENO" "$BASH_COMMAND" >&2' ERR

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DAEMON_JS=$REPO/build/js/node-daemon/src/daemon/main.js
NETCUBECTL_JS=$REPO/build/js/node-daemon/src/cli/main.js
K8S_JS=$REPO/remote-services/k8s/build/src/main.js
CNI_JS=$REPO/remote-services/k8s/build/src/cni/main.js
APISERVER_JS=$REPO/build/js/test/helpers/kube-apiserver-main.js
NODE_NET=10.78.0
CERTS_SH=$REPO/deploy/certs.sh
STATE=${NETCUBE_DEPLOY_STATE:-/run/netcube-deploy}
RUN_ROOT=/run/netcube
CLIENT_NET=10.77.0
REGISTER_WITHIN=60 # seconds

say() { printf '%s\n' "$*"; }
step() { printf '==> %s\n' "$*"; }
die() {
  printf 'hosts.sh: %s\n' "$*" >&2
  exit 1
}
usage() { # usage [EXIT_CODE]: help on stdout when asked for, on stderr after a mistake
  local code=${1:-2}
  if ((code == 0)); then sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; else sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; fi
  exit "$code"
}

# ----------------------------------------------------------------- state

load_state() {
  [[ -f $STATE/config ]] || return 1
  # shellcheck disable=SC1091
  source "$STATE/config"
}

save_state() {
  cat >"$STATE/config" <<EOF
PREFIX='$PREFIX'
HOSTS='${HOSTS[*]}'
CLIENTS='${CLIENTS[*]}'
K8S='${K8S:-}'
EXTRA_NETNS='${EXTRA_NETNS[*]+${EXTRA_NETNS[*]}}'
ETCD_CLIENT='$ETCD_CLIENT'
ETCD_SOCKETS='$ETCD_SOCKETS'
EOF
  printf '%s\n' "NETCUBE_ETCD=$ETCD_CLIENT" "NETCUBE_TLS_CA=$STATE/pki/ca.crt" \
    "NETCUBE_TLS_CERT=$STATE/pki/admin.crt" "NETCUBE_TLS_KEY=$STATE/pki/admin.key" >"$STATE/env"
}

# ----------------------------------------------------------------- processes

alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# The pid in $1 if that process is still the one we started: its command line holds $2.
our_pid() {
  local file=$1 marker=$2 pid
  [[ -f $file ]] || return 1
  pid=$(<"$file")
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker" || return 1
  printf '%s' "$pid"
}

stop_pid() {
  local file=$1 marker=$2 what=$3 pid
  pid=$(our_pid "$file" "$marker") || {
    rm -f "$file"
    return 0
  }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    say "   $what (pid $pid) did not stop within 10 s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.1; done
  fi
  say "   stopped $what (pid $pid)"
  rm -f "$file"
}

# Starts "$@" in the background in its own session, so that closing the terminal
# that ran `up` does not hang it up; records its pid (exec keeps the pid: neither
# setsid, in a process that leads no group, nor nsenter without --fork fork).
spawn() {
  local pidfile=$1 log=$2 dir=$3 pid shell
  shift 3
  (cd "$dir" && exec setsid "$@" </dev/null >>"$log" 2>&1) &
  pid=$!
  printf '%s' "$pid" >"$pidfile"
  # Until the subshell has exec'd, /proc shows bash's command line, not the marker
  # our_pid looks for: wait for the exec (or the exit) so that nobody mistakes it.
  shell=$(readlink -f "$BASH")
  for _ in $(seq 1 250); do
    [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$shell" ]] || break
    sleep 0.02
  done
}

# ----------------------------------------------------------------- certificates

# A CA, and a certificate per identity: etcd's members, its root user, the admin,
# a viewer, every host. The CN of each is its etcd user.
make_pki() {
  local members=$1 dir=$STATE/pki i ns
  bash "$CERTS_SH" "$dir" ca >/dev/null
  for ((i = 0; i < members; i++)); do bash "$CERTS_SH" "$dir" etcd "etcd-m$i" >/dev/null; done
  bash "$CERTS_SH" "$dir" etcd-root >/dev/null
  bash "$CERTS_SH" "$dir" admin >/dev/null
  bash "$CERTS_SH" "$dir" viewer >/dev/null
  for ns in "${HOSTS[@]}"; do bash "$CERTS_SH" "$dir" host "$ns" >/dev/null; done
  say "   $dir: a CA, certificates for etcd, its root, the admin, a viewer and ${#HOSTS[@]} hosts"
  if [[ -n $K8S ]]; then
    for ns in "${K8S_SERVICES[@]}"; do bash "$CERTS_SH" "$dir" service "$ns" >/dev/null; done
    say "   and for the services $(IFS=,; printf '%s' "${K8S_SERVICES[*]}")"
  fi
}

# etcdctl over TLS as WHO (a certificate of pki/): etcdctl_as WHO ENDPOINTS ARGS...
etcdctl_as() {
  local who=$1 endpoints=$2
  shift 2
  etcdctl --endpoints="$endpoints" --cacert "$STATE/pki/ca.crt" --cert "$STATE/pki/$who.crt" --key "$STATE/pki/$who.key" \
    --dial-timeout=1s --command-timeout=2s "$@"
}

# ----------------------------------------------------------------- etcd

port_free() { [[ -z $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

block_free() {
  local base=$1 count=$2 p
  for ((p = base; p < base + count; p++)); do port_free "$p" || return 1; done
}

# Ports for the members: client BASE+2i, peer BASE+2i+1. Other than a port given,
# a block of ten from FROM up (default: NETCUBE_ETCD_PORTS_FROM, or a random
# one from 23790, so that deployments side by side rarely look at the same ports).
choose_ports() {
  local want=$1 members=$2 from=${3:-${NETCUBE_ETCD_PORTS_FROM:-$((23790 + (RANDOM % 200) * 10))}} count=$((members * 2)) base
  if [[ $want == default || $want == auto ]]; then
    if [[ $want == default && -z ${3:-} ]] && block_free 2379 "$count"; then
      BASE=2379
      return 0
    fi
    [[ $from =~ ^[0-9]+$ ]] || die "NETCUBE_ETCD_PORTS_FROM: a port number, got '$from'"
    for ((base = from; base < 29990; base += 10)); do
      if block_free "$base" "$count"; then
        BASE=$base
        [[ $want == default && -z ${3:-} ]] && say "   port 2379 is taken (another etcd?): using $BASE"
        return 0
      fi
    done
    die "no free ports for etcd between 23790 and 29990: pass --etcd-port PORT"
  fi
  block_free "$want" "$count" || die "ports $want to $((want + count - 1)) are not all free (ss -ltn): pass another --etcd-port, or auto"
  BASE=$want
}

# launch_etcd MEMBERS: spawns the members on the ports from BASE.
launch_etcd() {
  local members=$1 i cluster='' client=() sockets=() pki=$STATE/pki
  for ((i = 0; i < members; i++)); do
    cluster+="${cluster:+,}m$i=https://127.0.0.1:$((BASE + 2 * i + 1))"
    client+=("https://127.0.0.1:$((BASE + 2 * i))")
    # etcd names a unix socket after the URL's host:port, relative to its working directory.
    sockets+=("unixs:$STATE/etcd/m$i:$((BASE + 2 * i))")
  done
  ETCD_CLIENT=$(IFS=,; printf '%s' "${client[*]}")
  ETCD_SOCKETS=$(IFS=,; printf '%s' "${sockets[*]}")
  mkdir -p "$STATE/etcd"
  for ((i = 0; i < members; i++)); do
    local cport=$((BASE + 2 * i)) pport=$((BASE + 2 * i + 1))
    spawn "$STATE/pids/etcd-m$i.pid" "$STATE/logs/etcd-m$i.log" "$STATE/etcd" \
      env -i PATH="$PATH" etcd --name "m$i" --data-dir "$STATE/etcd/m$i.data" \
      --listen-client-urls "https://127.0.0.1:$cport,unixs://m$i:$cport" \
      --advertise-client-urls "https://127.0.0.1:$cport" \
      --listen-peer-urls "https://127.0.0.1:$pport" \
      --initial-advertise-peer-urls "https://127.0.0.1:$pport" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      --initial-cluster-token "netcube-deploy-$PREFIX" \
      --cert-file "$pki/etcd-m$i.crt" --key-file "$pki/etcd-m$i.key" --trusted-ca-file "$pki/ca.crt" --client-cert-auth \
      --peer-cert-file "$pki/etcd-m$i.crt" --peer-key-file "$pki/etcd-m$i.key" --peer-trusted-ca-file "$pki/ca.crt" --peer-client-cert-auth \
      --logger zap --log-outputs stderr --log-level warn
  done
}

# await_etcd MEMBERS [retry]: until every member answers. With retry, a member
# that exited because its port was taken sets ETCD_PORT_TAKEN (its index) instead
# of failing.
await_etcd() {
  local members=$1 retry=${2:-} i
  ETCD_PORT_TAKEN=''
  for ((i = 0; i < members; i++)); do
    local endpoint=https://127.0.0.1:$((BASE + 2 * i)) ok=''
    for _ in $(seq 1 200); do
      if ! our_pid "$STATE/pids/etcd-m$i.pid" "$STATE/etcd" >/dev/null; then
        if [[ -n $retry ]] && grep -q 'address already in use' "$STATE/logs/etcd-m$i.log" 2>/dev/null; then
          ETCD_PORT_TAKEN=$i
          return 0
        fi
        fail_with_log "etcd member m$i exited while starting" "$STATE/logs/etcd-m$i.log"
      fi
      if etcdctl_as root "$endpoint" endpoint health >/dev/null 2>&1; then
        ok=1
        break
      fi
      sleep 0.1
    done
    [[ -n $ok ]] || fail_with_log "etcd member m$i is not healthy after 20 s" "$STATE/logs/etcd-m$i.log"
  done
}

# start_etcd MEMBERS WANT: the members on the ports from BASE, healthy. Ports that
# choose_ports picked itself (WANT default or auto) were free when it looked, and
# another process may bind one before etcd does: then the members stop, their data
# goes, and another block is chosen, up to ETCD_PORT_TRIES times. Ports the caller
# named are theirs: taken, they fail at once.
ETCD_PORT_TRIES=3
start_etcd() {
  local members=$1 want=$2 try i pki=$STATE/pki
  command -v etcd >/dev/null || die "etcd is not installed: run deploy/setup.sh (Debian package etcd-server)"
  command -v etcdctl >/dev/null || die "etcdctl is not installed: run deploy/setup.sh (Debian package etcd-client)"
  for ((try = 1; ; try++)); do
    local retry=''
    [[ ($want == default || $want == auto) && $try -lt $ETCD_PORT_TRIES ]] && retry=retry
    launch_etcd "$members"
    await_etcd "$members" "$retry"
    [[ -n $ETCD_PORT_TAKEN ]] || break
    say "   a port of etcd member m$ETCD_PORT_TAKEN was taken after it was chosen: choosing others"
    for ((i = 0; i < members; i++)); do stop_pid "$STATE/pids/etcd-m$i.pid" "$STATE/etcd" "etcd m$i"; done
    rm -rf "$STATE/etcd"
    for ((i = 0; i < members; i++)); do mv -f "$STATE/logs/etcd-m$i.log" "$STATE/logs/etcd-m$i.log.$try" 2>/dev/null || true; done
    choose_ports "$want" "$members" $((BASE + 10 > 23790 ? BASE + 10 : 23790))
  done
  say "   etcd: $members member$([[ $members == 1 ]] || printf s) at $ETCD_CLIENT (daemons use unix sockets in $STATE/etcd), TLS with client certificates"
  # Access control on, with netcube's roles: as etcd's root user.
  local ctl=(node "$NETCUBECTL_JS" --etcd "$ETCD_CLIENT" --tls-ca "$pki/ca.crt" --tls-cert "$pki/root.crt" --tls-key "$pki/root.key")
  "${ctl[@]}" access enable >/dev/null || die "could not turn etcd's access control on (netcubectl access enable)"
  "${ctl[@]}" access host "${HOSTS[@]}" >/dev/null || die "could not give the hosts their etcd users (netcubectl access host)"
  if [[ -n $K8S ]]; then
    "${ctl[@]}" access service router lbrp firewall k8sdispatcher >/dev/null || die "could not give the services their etcd users (netcubectl access service)"
    "${ctl[@]}" access service k8s --owns-chains --configures lbrp,firewall >/dev/null || die "could not give the controller its etcd user (netcubectl access service k8s)"
  fi
  say "   etcd access control on: users admin, viewer, $(printf 'host-%s ' "${HOSTS[@]}")(pki/<user>.crt)"
}

# ----------------------------------------------------------------- Kubernetes (--k8s)

K8S_SERVICES=(k8s router lbrp firewall k8sdispatcher)

# The nodes' eth0 on one segment (a bridge in PREFIX-seg), a client on it outside the cluster.
k8s_network() {
  local seg=$PREFIX-seg i ns
  step "network: ${#HOSTS[@]} Kubernetes nodes on one segment ($NODE_NET.0/24), a client outside the cluster"
  for ns in "$seg" "${CLIENTS[@]}" "${HOSTS[@]}"; do new_netns "$ns"; done
  ip -n "$seg" link add br0 type bridge
  ip -n "$seg" link set br0 up
  for ((i = 1; i <= ${#HOSTS[@]}; i++)); do
    add_veth "${HOSTS[i - 1]}" eth0 "$seg" "p$i"
    ip -n "$seg" link set "p$i" master br0
    ip -n "${HOSTS[i - 1]}" addr add "$NODE_NET.$((10 + i))/24" dev eth0
    # The dispatcher sends pods' masqueraded packets by the node's routes (bpf_fib_lookup), which forwarding enables.
    ip netns exec "${HOSTS[i - 1]}" sysctl -qw net.ipv4.ip_forward=1
    say "   ${HOSTS[i - 1]}: eth0 $NODE_NET.$((10 + i)), pods 10.244.$i.0/24"
  done
  add_veth "${CLIENTS[0]}" eth0 "$seg" client
  ip -n "$seg" link set client master br0
  ip -n "${CLIENTS[0]}" addr add "$NODE_NET.100/24" dev eth0
  say "   ${CLIENTS[0]}: $NODE_NET.100"
}

# The objects the scripted API server serves: the nodes, namespace default, the pods.
k8s_manifests() {
  local i j
  printf '# What hosts.sh up --k8s serves as the Kubernetes API: its nodes and their pods.\n'
  for ((i = 1; i <= ${#HOSTS[@]}; i++)); do
    printf -- '---\napiVersion: v1\nkind: Node\nmetadata: { name: %s, labels: { kubernetes.io/hostname: %s } }\n' "${HOSTS[i - 1]}" "${HOSTS[i - 1]}"
    printf 'spec: { podCIDR: 10.244.%s.0/24, podCIDRs: [10.244.%s.0/24] }\n' "$i" "$i"
    printf 'status: { addresses: [{ type: InternalIP, address: %s }] }\n' "$NODE_NET.$((10 + i))"
  done
  printf -- '---\napiVersion: v1\nkind: Namespace\nmetadata: { name: default, labels: { kubernetes.io/metadata.name: default } }\n'
  for ((i = 1; i <= ${#HOSTS[@]}; i++)); do
    for ((j = 1; j <= PODS; j++)); do
      printf -- '---\napiVersion: v1\nkind: Pod\nmetadata: { name: %s, namespace: default, labels: { app: demo } }\n' "${HOSTS[i - 1]}-p$j"
      printf 'spec: { nodeName: %s, containers: [{ name: demo, image: busybox }] }\n' "${HOSTS[i - 1]}"
      printf 'status: { phase: Running, podIP: 10.244.%s.%s }\n' "$i" "$((10 + j))"
    done
  done
}

# k8s_spawn NAME COMMAND...: a Kubernetes-side process, recorded as pids/k8s-NAME.pid.
k8s_spawn() {
  local name=$1
  shift
  spawn "$STATE/pids/k8s-$name.pid" "$STATE/logs/$name.log" / "$@"
}

k8s_alive() { # k8s_alive NAME: fails with its log when the process is gone
  our_pid "$STATE/pids/k8s-$1.pid" "$STATE/" >/dev/null || fail_with_log "$1 exited while starting" "$STATE/logs/$1.log"
}

k8s_up() {
  local dir=$STATE/k8s pki=$STATE/pki node ns i j kubeconfig
  node=$(command -v node)
  for f in "$K8S_JS" "$CNI_JS" "$APISERVER_JS"; do [[ -f $f ]] || die "$f is not built: run npm run build"; done
  [[ -x /usr/lib/cni/host-local ]] || die "host-local is not installed (Debian package containernetworking-plugins): run deploy/setup.sh"
  mkdir -p "$dir/ipam"
  kubeconfig=$dir/kubeconfig

  step "the scripted Kubernetes API server (test/helpers/kube-apiserver.ts)"
  k8s_manifests >"$dir/cluster.yaml"
  k8s_spawn apiserver "$node" "$APISERVER_JS" --kubeconfig "$kubeconfig" "$dir/cluster.yaml"
  for _ in $(seq 1 200); do
    [[ -f $kubeconfig ]] && break
    k8s_alive apiserver
    sleep 0.1
  done
  [[ -f $kubeconfig ]] || fail_with_log "the API server did not start within 20 s" "$STATE/logs/apiserver.log"
  say "   $(tail -n 1 "$STATE/logs/apiserver.log"); kubeconfig $kubeconfig"

  step "the controller and the services of its cubes"
  local tls=(--etcd "$ETCD_CLIENT" --tls-ca "$pki/ca.crt")
  k8s_spawn k8s "$node" "$K8S_JS" --kubeconfig "$kubeconfig" "${tls[@]}" --tls-cert "$pki/service-k8s.crt" --tls-key "$pki/service-k8s.key" --name "$PREFIX-k8s"
  for s in router lbrp firewall k8sdispatcher; do
    k8s_spawn "$s" "$node" "$REPO/remote-services/$s/build/main.js" "${tls[@]}" --tls-cert "$pki/service-$s.crt" --tls-key "$pki/service-$s.key" --name "$PREFIX-$s"
  done
  say "   netcube-k8s, netcube-router, netcube-lbrp, netcube-firewall, netcube-k8sdispatcher (logs in $STATE/logs)"

  step "each node's agent (its VXLAN netdev) and CNI config"
  for ns in "${HOSTS[@]}"; do
    k8s_spawn "agent-$ns" "$node" "$K8S_JS" node --node "$ns" --kubeconfig "$kubeconfig" --netns "/run/netns/$ns"
    "$node" "$K8S_JS" cni-config --node "$ns" --kubeconfig "$kubeconfig" --out "$dir/$ns.conflist" \
      --etcd "$ETCD_SOCKETS" --tls-ca "$pki/ca.crt" --tls-cert "$pki/host-$ns.crt" --tls-key "$pki/host-$ns.key" \
      --socket "$RUN_ROOT/$ns/netcubed.sock" --ipam-data-dir "$dir/ipam/$ns" >/dev/null ||
      die "netcube-k8s cni-config --node $ns failed"
    say "   $ns: agent running, CNI config $dir/$ns.conflist"
  done

  ((PODS > 0)) || return 0
  step "pods, added by netcube-cni as a container runtime adds them"
  for ((i = 1; i <= ${#HOSTS[@]}; i++)); do
    ns=${HOSTS[i - 1]}
    for ((j = 1; j <= PODS; j++)); do
      local pod=$ns-p$j
      k8s_alive k8s
      new_netns "$pod"
      # The network config of the conflist's one plugin, as a runtime hands it over.
      jq '{cniVersion, name} + .plugins[0]' "$dir/$ns.conflist" |
        nsenter --net="/run/netns/$ns" env -i PATH="$PATH" CNI_COMMAND=ADD CNI_CONTAINERID="$pod" CNI_NETNS="/run/netns/$pod" \
          CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni \
          CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$pod;IP=10.244.$i.$((10 + j))" \
          "$node" "$CNI_JS" >"$STATE/logs/cni-$pod.json" ||
        fail_with_log "CNI ADD of pod $pod on $ns failed" "$STATE/logs/cni-$pod.json"
      say "   $pod on $ns: 10.244.$i.$((10 + j))"
    done
  done
}

# ----------------------------------------------------------------- up

fail_with_log() {
  printf 'hosts.sh: %s\n' "$1" >&2
  if [[ -f $2 ]]; then
    printf -- '--- last lines of %s:\n' "$2" >&2
    tail -n 20 "$2" >&2
    printf -- '---\n' >&2
  fi
  exit 1
}

add_veth() { # add_veth NS_A IF_A NS_B IF_B
  ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
  # GRO gives a veth NAPI, without which frames XDP-redirected into it are dropped
  # (chains in XDP mode); TC mode does not need it.
  if [[ -n $HAVE_ETHTOOL ]]; then
    ip netns exec "$1" ethtool -K "$2" gro on >/dev/null
    ip netns exec "$3" ethtool -K "$4" gro on >/dev/null
  fi
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
}

new_netns() {
  ip netns add "$1"
  ip -n "$1" link set lo up
  # Quiet links: no IPv6 autoconfiguration chatter in the counters.
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

up() {
  local n='' members=1 ports=default pods=''
  PREFIX=h
  K8S=''
  while (($#)); do
    case $1 in
      --k8s) K8S=1; shift ;;
      --pods) pods=${2:?--pods needs a count}; shift 2 ;;
      --etcd-members) members=${2:?--etcd-members needs 1 or 3}; shift 2 ;;
      --name) PREFIX=${2:?--name needs a prefix}; shift 2 ;;
      --state) STATE=${2:?--state needs a directory}; shift 2 ;;
      --etcd-port) ports=${2:?--etcd-port needs a port or auto}; shift 2 ;;
      -h | --help) usage 0 ;;
      -*) die "up: unknown option $1 (see hosts.sh --help)" ;;
      *) [[ -z $n ]] || die "up: one host count, got '$n' and '$1'"; n=$1; shift ;;
    esac
  done
  [[ $n =~ ^[1-9][0-9]?$ ]] || die "up: how many hosts? e.g. hosts.sh up 3 (1 to 99)"
  [[ -z $pods || -n $K8S ]] || die "--pods: pods run on Kubernetes nodes only: add --k8s"
  PODS=${pods:-2}
  [[ $PODS =~ ^[0-9]$ ]] || die "--pods: pods per node, 0 to 9, got '$PODS'"
  [[ -z $K8S || $n -le 80 ]] || die "up --k8s: at most 80 nodes (their addresses are 10.78.0.11 to 10.78.0.90), got $n"
  [[ $members == 1 || $members == 3 ]] || die "--etcd-members: 1 or 3, got '$members'"
  [[ $ports == default || $ports == auto || ($ports =~ ^[0-9]{1,5}$ && $ports -ge 1024 && $ports -le 65530) ]] ||
    die "--etcd-port: a port number or auto, got '$ports' (members use PORT, PORT+1, ... up to PORT+5; from 1024 to 65530)"
  [[ $PREFIX =~ ^[a-z]([-a-z0-9]*[a-z])?$ && ${#PREFIX} -le 40 ]] ||
    die "--name: host names are PREFIX1..PREFIXN, so PREFIX takes lowercase letters, digits and '-', starting and ending with a letter (got '$PREFIX')"
  [[ $(id -u) == 0 ]] || die "up needs root (network namespaces, bpffs)"
  [[ -f $DAEMON_JS ]] || die "netcubed is not built ($DAEMON_JS): run deploy/setup.sh or npm run build"
  if [[ -e $STATE/config ]]; then
    die "$STATE already holds a deployment: run hosts.sh down${STATE_FLAG} first, or pass another --state"
  fi
  HOSTS=()
  for ((i = 1; i <= n; i++)); do HOSTS+=("$PREFIX$i"); done
  CLIENTS=("$PREFIX-client1" "$PREFIX-client2")
  EXTRA_NETNS=()
  if [[ -n $K8S ]]; then
    CLIENTS=("$PREFIX-client1")
    EXTRA_NETNS=("$PREFIX-seg")
    for ((i = 1; i <= n; i++)); do
      for ((j = 1; j <= PODS; j++)); do EXTRA_NETNS+=("$PREFIX$i-p$j"); done
    done
  fi
  local ns
  for ns in "${HOSTS[@]}" "${CLIENTS[@]}" "${EXTRA_NETNS[@]+"${EXTRA_NETNS[@]}"}"; do
    [[ ! -e /run/netns/$ns ]] || die "network namespace $ns exists already: remove it (ip netns delete $ns) or pass another --name"
  done
  for ns in "${HOSTS[@]}"; do
    [[ ! -e $RUN_ROOT/$ns ]] || die "$RUN_ROOT/$ns exists already (a netcubed of that name ran here): remove it or pass another --name"
  done

  mkdir -p "$STATE/pids" "$STATE/logs"
  ETCD_CLIENT='' ETCD_SOCKETS=''
  save_state
  # From here on, a failure takes down whatever was built.
  trap 'on_up_failure' EXIT

  HAVE_ETHTOOL=$(command -v ethtool || true)
  [[ -n $HAVE_ETHTOOL ]] || say "   note: ethtool is missing (deploy/setup.sh installs it): without GRO on the veths, chains in XDP mode cannot deliver to the next namespace; TC mode works"
  if [[ -n $K8S ]]; then
    k8s_network
  else
    step "network: ${#HOSTS[@]} hosts in a line, a client at each end"
    for ns in "${CLIENTS[@]}" "${HOSTS[@]}"; do new_netns "$ns"; done
    add_veth "${CLIENTS[0]}" eth0 "${HOSTS[0]}" left
    for ((i = 0; i + 1 < n; i++)); do add_veth "${HOSTS[i]}" right "${HOSTS[i + 1]}" left; done
    add_veth "${HOSTS[n - 1]}" right "${CLIENTS[1]}" eth0
    ip -n "${CLIENTS[0]}" addr add "$CLIENT_NET.1/24" dev eth0
    ip -n "${CLIENTS[1]}" addr add "$CLIENT_NET.2/24" dev eth0
    say "   ${CLIENTS[0]} ($CLIENT_NET.1) - $(IFS=-; printf '%s' "${HOSTS[*]}") - ${CLIENTS[1]} ($CLIENT_NET.2)"
  fi

  step "certificates"
  make_pki "$members"

  step "etcd"
  choose_ports "$ports" "$members"
  start_etcd "$members" "$ports"
  save_state

  step "netcubed on each host"
  local node
  node=$(command -v node) || die "node is not installed"
  for ns in "${HOSTS[@]}"; do
    mkdir -p "$RUN_ROOT/$ns"
    spawn "$STATE/pids/netcubed-$ns.pid" "$STATE/logs/netcubed-$ns.log" / \
      nsenter --net="/run/netns/$ns" "$node" "$DAEMON_JS" --name "$ns" --etcd "$ETCD_SOCKETS" --root "$RUN_ROOT/$ns" \
      --tls-ca "$STATE/pki/ca.crt" --tls-cert "$STATE/pki/host-$ns.crt" --tls-key "$STATE/pki/host-$ns.key"
  done
  local deadline=$((SECONDS + REGISTER_WITHIN)) pending=("${HOSTS[@]}")
  while ((${#pending[@]})); do
    local still=()
    for ns in "${pending[@]}"; do
      our_pid "$STATE/pids/netcubed-$ns.pid" "$RUN_ROOT/$ns" >/dev/null ||
        fail_with_log "netcubed of $ns exited while starting" "$STATE/logs/netcubed-$ns.log"
      if [[ -n $(etcdctl_as admin "$ETCD_CLIENT" get "/netcube/v1/hosts/$ns" --print-value-only 2>/dev/null) ]]; then
        say "   $ns registered (pid $(<"$STATE/pids/netcubed-$ns.pid"), log $STATE/logs/netcubed-$ns.log)"
      else
        still+=("$ns")
      fi
    done
    pending=("${still[@]+"${still[@]}"}")
    ((${#pending[@]})) || break
    ((SECONDS < deadline)) || fail_with_log "${pending[0]} did not register in etcd within $REGISTER_WITHIN s" "$STATE/logs/netcubed-${pending[0]}.log"
    sleep 0.2
  done
  [[ -z $K8S ]] || k8s_up
  trap - EXIT

  step "up"
  say "   netcubectl talks to this etcd as the admin with (bash deploy/hosts.sh env${STATE_FLAG} prints them):"
  sed 's/^/     export /' "$STATE/env"
  if [[ -n $K8S ]]; then
    say "   try: netcubectl get chains; ip netns exec ${PREFIX}1-p1 ping 10.244.$n.11"
  else
    say "   try: netcubectl get hosts; ip netns exec ${CLIENTS[0]} ping $CLIENT_NET.2"
  fi
  say "   tear down: bash deploy/hosts.sh down${STATE_FLAG}"
}

on_up_failure() {
  local code=$?
  trap - EXIT
  if ((code != 0)); then
    printf 'hosts.sh: up failed; removing what it built\n' >&2
    down_now || true
  fi
  exit "$code"
}

# ----------------------------------------------------------------- down

down() {
  while (($#)); do
    case $1 in
      --state) STATE=${2:?--state needs a directory}; shift 2 ;;
      -h | --help) usage 0 ;;
      *) die "down: unknown argument $1" ;;
    esac
  done
  [[ $(id -u) == 0 ]] || die "down needs root"
  if [[ ! -e $STATE/config ]]; then
    say "nothing to tear down: $STATE holds no deployment"
    rm -rf "$STATE"
    return 0
  fi
  down_now
}

down_now() {
  load_state || return 0
  local ns file
  read -r -a HOSTS <<<"$HOSTS"
  read -r -a CLIENTS <<<"$CLIENTS"
  read -r -a EXTRA_NETNS <<<"${EXTRA_NETNS:-}"
  if [[ -n ${K8S:-} ]]; then
    step "stopping the Kubernetes processes"
    for file in "$STATE"/pids/k8s-*.pid; do
      [[ -e $file ]] || continue
      stop_pid "$file" "$STATE/" "$(basename "$file" .pid | sed 's/^k8s-//')"
    done
  fi
  step "stopping netcubed"
  for ns in "${HOSTS[@]}"; do stop_pid "$STATE/pids/netcubed-$ns.pid" "$RUN_ROOT/$ns" "netcubed of $ns"; done
  step "stopping etcd"
  for file in "$STATE"/pids/etcd-*.pid; do
    [[ -e $file ]] || continue
    stop_pid "$file" "$STATE/etcd" "etcd $(basename "$file" .pid | sed 's/^etcd-//')"
  done
  step "removing namespaces, bpffs mounts and state"
  for ns in "${EXTRA_NETNS[@]+"${EXTRA_NETNS[@]}"}" "${HOSTS[@]}" "${CLIENTS[@]}"; do
    local others
    others=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)
    # Not ours to kill: they keep the namespace alive after its name is gone.
    [[ -z $others ]] || say "   warning: processes hosts.sh did not start still run in $ns (pids $others): stop them yourself"
    if [[ -e /run/netns/$ns ]]; then
      ip netns delete "$ns"
      say "   deleted namespace $ns"
    fi
  done
  for ns in "${HOSTS[@]}"; do
    local root=$RUN_ROOT/$ns
    # The data plane lives on pinned in the bpffs until it is unmounted.
    if mountpoint -q "$root/bpf" 2>/dev/null; then
      umount "$root/bpf"
      say "   unmounted $root/bpf"
    fi
    rm -rf "$root"
  done
  rmdir "$RUN_ROOT" 2>/dev/null || true
  rm -rf "$STATE"
  say "   removed $STATE"
}

# ----------------------------------------------------------------- status

status() {
  while (($#)); do
    case $1 in
      --state) STATE=${2:?--state needs a directory}; shift 2 ;;
      -h | --help) usage 0 ;;
      *) die "status: unknown argument $1" ;;
    esac
  done
  load_state || {
    say "down: $STATE holds no deployment (bring one up with hosts.sh up 3)"
    return 3
  }
  local ns file pid healthy=0
  read -r -a HOSTS <<<"$HOSTS"
  read -r -a CLIENTS <<<"$CLIENTS"
  say "etcd ($ETCD_CLIENT):"
  for file in "$STATE"/pids/etcd-*.pid; do
    [[ -e $file ]] || continue
    if pid=$(our_pid "$file" "$STATE/etcd"); then say "  $(basename "$file" .pid): running (pid $pid)"; else say "  $(basename "$file" .pid): NOT RUNNING"; healthy=1; fi
  done
  local registered
  registered=$(etcdctl_as admin "$ETCD_CLIENT" get --prefix --keys-only /netcube/v1/hosts/ 2>/dev/null || true)
  say "hosts:"
  for ns in "${HOSTS[@]}"; do
    local line="  $ns:"
    [[ -e /run/netns/$ns ]] && line+=" namespace ok" || { line+=" NO NAMESPACE"; healthy=1; }
    if pid=$(our_pid "$STATE/pids/netcubed-$ns.pid" "$RUN_ROOT/$ns"); then line+=", netcubed running (pid $pid)"; else line+=", netcubed NOT RUNNING"; healthy=1; fi
    if grep -qx "/netcube/v1/hosts/$ns" <<<"$registered"; then line+=", registered"; else line+=", NOT REGISTERED"; healthy=1; fi
    say "$line"
  done
  if [[ -n ${K8S:-} ]]; then
    say "Kubernetes (--k8s):"
    for file in "$STATE"/pids/k8s-*.pid; do
      [[ -e $file ]] || continue
      if pid=$(our_pid "$file" "$STATE/"); then say "  $(basename "$file" .pid | sed 's/^k8s-//'): running (pid $pid)"; else say "  $(basename "$file" .pid | sed 's/^k8s-//'): NOT RUNNING"; healthy=1; fi
    done
  fi
  say "clients:"
  for ns in "${CLIENTS[@]}"; do
    [[ -e /run/netns/$ns ]] && say "  $ns: $(ip -n "$ns" -br -4 addr show dev eth0 | awk '{print $3}')" || { say "  $ns: NO NAMESPACE"; healthy=1; }
  done
  say "logs: $STATE/logs"
  return $healthy
}

env_cmd() {
  while (($#)); do
    case $1 in
      --state) STATE=${2:?--state needs a directory}; shift 2 ;;
      *) die "env: unknown argument $1" ;;
    esac
  done
  load_state || die "$STATE holds no deployment"
  sed 's/^/export /' "$STATE/env"
}

# ----------------------------------------------------------------- main

(($#)) || usage
command=$1
shift
# Repeated in the hints we print, so they work for a non-default state directory.
STATE_FLAG=''
for ((i = 1; i <= $#; i++)); do
  if [[ ${!i} == --state ]]; then
    j=$((i + 1))
    STATE_FLAG=" --state ${!j:-}"
  fi
done
case $command in
  up) up "$@" ;;
  down) down "$@" ;;
  status) status "$@" || exit $? ;; # its exit code is its answer, not a failure
  env) env_cmd "$@" ;;
  -h | --help | help) usage 0 ;;
  *) die "unknown command '$command': up, down, status or env" ;;
esac
