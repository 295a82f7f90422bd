#!/usr/bin/env bash
# The certificates of a netcube cluster, made with openssl: a CA, and one
# certificate per identity, signed by it.
#
#   certs.sh DIR ca                          the cluster's CA (DIR/ca.crt, DIR/ca.key), once
#   certs.sh DIR admin [NAME]                spiffe://netcube/admin        (file NAME, default admin)
#   certs.sh DIR viewer [NAME]               spiffe://netcube/viewer       (file NAME, default viewer)
#   certs.sh DIR service TYPE [--san SANS]   spiffe://netcube/service/TYPE (file service-TYPE)
#   certs.sh DIR host HOST [--san SANS]      spiffe://netcube/host/HOST    (file host-HOST)
#   certs.sh DIR etcd NAME --san SANS        an etcd member: its client and peer URLs
#   certs.sh DIR etcd-root                   etcd's root user, to set up etcd's access control
#   certs.sh DIR plain NAME                  signed by the CA, without a netcube identity
#   options: --days N (default 365)
#
# Each certificate is DIR/FILE.crt with its key DIR/FILE.key (mode 0600). Its CN is
# FILE, and it is the etcd user of whoever presents it (etcd --client-cert-auth):
# admin, viewer, service-TYPE, host-HOST; `netcubectl access` gives those users their
# roles. Hosts and services also serve with theirs (netcubed --listen, a service's
# config API): SANS lists the names and addresses clients reach them at
# (IP:10.0.0.1,DNS:h1.example), 127.0.0.1 and localhost by default.
set -Eeuo pipefail

die() {
  printf 'certs.sh: %s\n' "$*" >&2
  exit 1
}
usage() {
  sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

(($# >= 2)) || usage
DIR=$1 KIND=$2
shift 2
NAME=''
SANS='IP:127.0.0.1,DNS:localhost'
DAYS=365
while (($#)); do
  case $1 in
    --san) SANS=${2:?--san needs SANS, e.g. IP:10.0.0.1,DNS:h1}; shift 2 ;;
    --days) DAYS=${2:?--days needs a number}; shift 2 ;;
    -h | --help) usage ;;
    -*) die "unknown option $1" ;;
    *) [[ -z $NAME ]] || die "one name, got '$NAME' and '$1'"; NAME=$1; shift ;;
  esac
done
[[ $DAYS =~ ^[1-9][0-9]*$ ]] || die "--days: a number of days, got '$DAYS'"
# Names are those of netcube (lowercase letters, digits, '-'; hosts may have dots).
name_ok() { [[ $1 =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$ && ${#1} -le 253 ]]; }
need_name() {
  [[ -n $NAME ]] || die "$KIND: give the $1"
  name_ok "$NAME" || die "$KIND: '$NAME' is not a valid $1 (lowercase letters, digits, '-')"
}

mkdir -p "$DIR"
umask 077
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

KEY=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
CLIENT='extendedKeyUsage=clientAuth'
BOTH='extendedKeyUsage=serverAuth,clientAuth'

# sign FILE EXTENSIONS...: a key and a certificate with CN FILE, signed by the CA.
sign() {
  local file=$1
  shift
  [[ -f $DIR/ca.crt && -f $DIR/ca.key ]] || die "no CA in $DIR: run certs.sh $DIR ca first"
  [[ ! -e $DIR/$file.crt ]] || die "$DIR/$file.crt exists already: remove it first to make it again"
  printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature,keyEncipherment' "$@" >"$WORK/ext"
  openssl req -new "${KEY[@]}" -subj "/CN=$file" -keyout "$DIR/$file.key" -out "$WORK/csr" 2>/dev/null
  openssl x509 -req -in "$WORK/csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days "$DAYS" -extfile "$WORK/ext" -out "$DIR/$file.crt" 2>/dev/null
  chmod 0644 "$DIR/$file.crt"
  printf '%s\n' "$DIR/$file.crt"
}

case $KIND in
  ca)
    [[ -z $NAME ]] || die "ca takes no name"
    [[ ! -e $DIR/ca.crt ]] || die "$DIR/ca.crt exists already: one CA per cluster"
    openssl req -x509 "${KEY[@]}" -days "$DAYS" -subj '/CN=netcube cluster CA' \
      -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' \
      -keyout "$DIR/ca.key" -out "$DIR/ca.crt" 2>/dev/null
    chmod 0644 "$DIR/ca.crt"
    printf '%s\n' "$DIR/ca.crt"
    ;;
  admin | viewer)
    NAME=${NAME:-$KIND}
    need_name 'file name'
    sign "$NAME" "subjectAltName=URI:spiffe://netcube/$KIND" "$CLIENT"
    ;;
  service)
    need_name 'cube type'
    sign "service-$NAME" "subjectAltName=URI:spiffe://netcube/service/$NAME,$SANS" "$BOTH"
    ;;
  host)
    need_name 'host name'
    sign "host-$NAME" "subjectAltName=URI:spiffe://netcube/host/$NAME,$SANS" "$BOTH"
    ;;
  etcd)
    need_name 'member name'
    sign "$NAME" "subjectAltName=$SANS" "$BOTH"
    ;;
  etcd-root)
    [[ -z $NAME ]] || die "etcd-root takes no name"
    sign root "$CLIENT"
    ;;
  plain)
    need_name 'file name'
    sign "$NAME" "$CLIENT"
    ;;
  *) die "unknown kind '$KIND': ca, admin, viewer, service, host, etcd, etcd-root or plain" ;;
esac
