#!/usr/bin/env bash
# Builds netcube: the BPF objects (make -C bpf), the native libbpf binding
# (node-gyp), the gRPC types (proto/generate.js), then the TypeScript (tsc).
#
#   npm run build                   every step, in that order
#   npm run build -- native ts      some steps: bpf, native, proto, ts
#                                   (bash deploy/build.sh [STEP...] runs the same)
#
# Incremental, and idempotent whatever came before: a step that was cut short
# (Ctrl-C, kill -9, a full disk, a compiler error) leaves a marker, and the
# next run of that step starts it over from clean instead of trusting what it
# left behind (a half-linked addon, a tsbuildinfo that claims outputs it never
# finished); node-gyp's configure counts as done only once it has written its
# Makefile (a config.gypi alone is not). The BPF objects are written whole or
# not at all (bpf/Makefile), and the gRPC types are compared with what they
# should be on every run, so those two need no marker.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
# node-gyp, and the npm config it reads (where Node's headers are), come with `npm run`.
[[ -n ${npm_lifecycle_event:-} ]] || exec npm run -s build -- "$@"

die() {
  printf 'build.sh: %s\n' "$*" >&2
  exit 1
}

# step NAME MARKER CLEAN... -- COMMAND...: runs COMMAND; when MARKER is there
# (the last run of this step did not finish) it first removes CLEAN. The marker
# goes once COMMAND has succeeded: an interrupted or failed run leaves it.
step() {
  local name=$1 marker=$2
  shift 2
  local clean=()
  while [[ $1 != -- ]]; do
    clean+=("$1")
    shift
  done
  shift
  if [[ -e $marker ]]; then
    printf 'build.sh: the last %s build did not finish: starting it over\n' "$name" >&2
    rm -rf "${clean[@]}"
  fi
  mkdir -p build
  : >"$marker"
  "$@"
  rm -f "$marker"
}

[[ -d node_modules/node-addon-api && -d node_modules/typescript ]] ||
  die "node_modules is missing or incomplete: run 'npm run setup' (or 'npm ci') first"

build_bpf() {
  make -s -C bpf
}

# node-gyp configure writes config.gypi first and the Makefile last; what it
# configured is recorded (with the inputs that decide it) only once it is done.
build_native() {
  local stamp=node-daemon/build/.configured
  local inputs
  inputs="node $(node -p process.version) $(sha256sum node-daemon/binding.gyp | cut -d' ' -f1)"
  if [[ ! -f node-daemon/build/Makefile || $(cat "$stamp" 2>/dev/null) != "$inputs" ]]; then
    rm -rf node-daemon/build
    (cd node-daemon && node-gyp configure --silent)
    printf '%s\n' "$inputs" >"$stamp"
  fi
  (cd node-daemon && node-gyp build --silent)
}

build_proto() {
  node proto/generate.js
}

# Project references: the workspace packages first, each into its own build/.
build_ts() {
  node_modules/.bin/tsc -b
  # The commands npm links onto PATH run these files: executable, whatever tsc wrote
  # (npm link sets the mode only when it makes a link, not when a build rewrites them).
  node -e '
    const fs = require("fs"), path = require("path");
    const root = require("./package.json");
    for (const dir of [".", ...root.workspaces]) {
      const bin = require(path.resolve(dir, "package.json")).bin ?? {};
      for (const file of Object.values(bin)) fs.chmodSync(path.resolve(dir, file), 0o755);
    }'
}

steps=("$@")
((${#steps[@]} > 0)) || steps=(bpf native proto ts)
for s in "${steps[@]}"; do
  case $s in
    bpf) build_bpf ;;     # objects are written whole or not at all
    native) step native build/.building-native node-daemon/build -- build_native ;;
    proto) build_proto ;; # generates into a temporary folder, then replaces what differs
    # Without their tsbuildinfo files, tsc emits every file of every project again.
    ts) step ts build/.building-ts build/js/.tsbuildinfo proto/build/.tsbuildinfo \
               remote-services/*/build/.tsbuildinfo remote-services/examples/*/build/.tsbuildinfo -- build_ts ;;
    *) die "unknown step $s: the steps are bpf, native, proto, ts" ;;
  esac
done
