#!/usr/bin/env bash
# Prepares a Debian 12 machine to build and run netcube, from one that has only
# node, npm, python3 and g++: the Debian packages netcube needs (skipped when all are
# installed), the npm dependencies, then the build (BPF objects, the native libbpf
# binding, the TypeScript), and the commands on PATH. Safe to run again: it does only what is missing, and the
# build is incremental. Run it as root (or with sudo available), from anywhere. The CNI
# plugin netcube-cni is linked into /opt/cni/bin (CNI_BIN_DIR=... for another directory).
#
#   bash deploy/setup.sh            (or: npm run setup)
#   SETUP_FORCE=1 bash deploy/setup.sh   reinstalls the npm dependencies as well
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

# clang/llvm build the data planes, bpftool makes vmlinux.h, libbpf-dev, libelf-dev,
# zlib1g-dev and pkg-config build the native binding (with make and g++); etcd runs the
# desired state; the rest is what the demo and the tests drive traffic and namespaces with
# (nftables: the firewall benchmark's baseline; tcpdump reads back what netcubectl capture writes;
# podman and runc run the Kubernetes provider's pods, busybox-static is their image;
# sockperf: the request/response rate between pods, `npm run bench -- k8s`).
PACKAGES=(
  clang llvm libbpf-dev bpftool pkg-config libelf-dev zlib1g-dev make g++
  etcd-server etcd-client
  iproute2 iperf3 iputils-ping ethtool containernetworking-plugins nftables tcpdump
  podman runc busybox-static sockperf
)

step() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
  printf 'setup.sh: %s\n' "$*" >&2
  exit 1
}

as_root() {
  if [[ $(id -u) == 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "installing Debian packages needs root: run setup.sh as root, or install sudo"
  fi
}

step "checking the machine"
[[ -r /etc/debian_version ]] || note "this is not Debian: the package names below are Debian 12's; install their equivalents by hand"
command -v node >/dev/null || die "node is not installed: install Node.js 20 or later first"
command -v npm >/dev/null || die "npm is not installed: install it with Node.js"
node_major=$(node -p 'process.versions.node.split(".")[0]')
((node_major >= 20)) || die "Node.js $(node -v) is too old: netcube needs 20.8 or later"
note "node $(node -v), npm $(npm -v), kernel $(uname -r)"
[[ -r /sys/kernel/btf/vmlinux ]] || note "warning: /sys/kernel/btf/vmlinux is missing: the kernel has no BTF, and the BPF build (CO-RE) needs it"

step "Debian packages"
missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done
if ((${#missing[@]} == 0)); then
  note "all ${#PACKAGES[@]} present"
else
  note "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  # Keep existing config files without asking; no recommends, no prompts.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
  if [[ " ${missing[*]} " == *" etcd-server "* ]] && command -v systemctl >/dev/null && systemctl is-active -q etcd 2>/dev/null; then
    note "note: Debian started its own etcd service on 127.0.0.1:2379; deploy/hosts.sh runs a separate etcd (on other ports when 2379 is taken)"
  fi
fi

step "npm dependencies"
if [[ ! -f package-lock.json ]]; then
  note "no package-lock.json: npm install"
  npm install --no-audit --no-fund
elif [[ -z ${SETUP_FORCE:-} && -f node_modules/.package-lock.json && node_modules/.package-lock.json -nt package-lock.json && node_modules/.package-lock.json -nt package.json ]]; then
  note "node_modules is up to date with package-lock.json (SETUP_FORCE=1 reinstalls)"
else
  npm ci --no-audit --no-fund
fi

step "build: BPF objects, native binding, TypeScript"
npm run build

# npm link puts each package's bin in npm's global bin directory, on PATH: netcubed and
# netcubectl (this package), and every service's command (a workspace with a bin). The
# links point into this checkout; running setup.sh in another checkout moves them there.
step "commands on PATH"
npm link --workspaces=false --no-audit --no-fund >/dev/null
npm link --workspaces --no-audit --no-fund >/dev/null
bin_dir="$(npm prefix -g)/bin"
for command in netcubed netcubectl $(node -p 'require("./package.json").workspaces.map((w) => Object.keys(require(`./${w}/package.json`).bin ?? {})).flat().join(" ")'); do
  [[ -x "$bin_dir/$command" ]] || die "$command is not in $bin_dir after npm link"
  note "$command -> $(readlink -f "$bin_dir/$command")"
done
# A container runtime finds CNI plugins in its plugin directory (CNI_PATH), not on PATH:
# netcube-cni goes there too, beside Debian's reference plugins' directory.
if [[ -x "$bin_dir/netcube-cni" ]]; then
  cni_bin_dir=${CNI_BIN_DIR:-/opt/cni/bin}
  as_root mkdir -p "$cni_bin_dir"
  as_root ln -sfn "$(readlink -f "$bin_dir/netcube-cni")" "$cni_bin_dir/netcube-cni"
  note "netcube-cni also in $cni_bin_dir, the CNI plugin directory (CNI_BIN_DIR sets another)"
fi
case ":$PATH:" in
  *":$bin_dir:"*) ;;
  *) note "warning: $bin_dir, where npm links commands, is not on PATH: add it" ;;
esac

step "ready"
note "try the demo: npm run demo (three namespace-hosts and a chain across them)"
