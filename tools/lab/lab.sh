#!/bin/bash
# lab.sh - the project's lab: Debian 12 hosts with systemd as PID 1, one per Terraform role,
# each on its own private IP, reached over SSH. Needs root; needs neither a host systemd nor
# a container registry (debootstrap from Debian's archive, systemd-nspawn -b).
#
#   tools/lab/lab.sh base                 # once: apt deps, debootstrap the base (~4 min), cached
#   tools/lab/lab.sh up   [HOST...]       # boot the hosts (default: the six roles), wait for ssh
#   tools/lab/lab.sh down [HOST...]       # power them off, remove their overlays (default: all)
#   tools/lab/lab.sh status               # hosts, IPs, `systemctl is-system-running`
#   tools/lab/lab.sh env                  # the paths a caller needs (inventory, ssh_config, key)
#   tools/lab/lab.sh purge                # down + delete this lab's bridge and NAT table
#
# Parameters (environment):
#   LAB_NAME    lab name (default: lab). Two labs with different names coexist (molecule's
#               and the e2e's); two checkouts never collide (the bridge name hashes the path).
#   LAB_SUBNET  first three octets of the lab's /24 (default: 10.78.N, N hashed from
#               checkout + name; if another interface or route holds that /24, the next free
#               10.78.N, kept in $LAB_STATE/$LAB_NAME/subnet while the lab lives). Set, it
#               is used as given or refused. Bridge = .1, hosts = .11, .12, ... (LAB_HOSTS).
#   LAB_HOSTS   host names of a full lab (default: the Terraform roles below).
#   LAB_STATE   state folder (default: <checkout>/.state/lab). Base image, debootstrap cache,
#               ssh key and per-host apt caches are shared by every lab under it.
#   LAB_MIRROR  Debian mirror (default: http://deb.debian.org/debian).
#   LAB_DISK_MB size of the loop-device data disk handed to mongodb and mysql (default 512,
#               sparse; XFS needs > 300;
#               0: none). It appears inside the host as /dev/lazyshift-data (see README.md).
#
# Outputs under $LAB_STATE/$LAB_NAME: hosts.yml (Ansible inventory, groups as
# inventories/aws), ssh_config (ssh -F, testinfra --ssh-config), hosts/<h>/console.log.
set -euo pipefail
# The overlay's upper folder gives the host its / : under a caller's umask 077 it would be
# 0700 and every non-root service in the host fails (networkd 200/CHDIR, no network, no ssh).
umask 022

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(cd "$HERE/../.." && pwd)
LAB_STATE=${LAB_STATE:-$CHECKOUT/.state/lab}
LAB_NAME=${LAB_NAME:-lab}
LAB_MIRROR=${LAB_MIRROR:-http://deb.debian.org/debian}
LAB_HOSTS=${LAB_HOSTS:-"mongodb mysql source client-1 client-2 tools"}
LAB_DISK_MB=${LAB_DISK_MB:-512}
[[ $LAB_NAME =~ ^[a-z0-9][a-z0-9-]{0,15}$ ]] || { echo "lab: LAB_NAME must be [a-z0-9-], up to 16 chars" >&2; exit 2; }

BASE=$LAB_STATE/base/rootfs
CACHE=$LAB_STATE/cache
KEY=$LAB_STATE/id_ed25519
DIR=$LAB_STATE/$LAB_NAME
HOSTS=$DIR/hosts
# One hash per (checkout, lab name): bridge, machine names and default subnet derive from it.
TAG=$(printf '%s' "$LAB_STATE/$LAB_NAME" | sha1sum | cut -c1-6)
BR=lz$TAG
SUBNET_FILE=$DIR/subnet
SUBNET_SET=${LAB_SUBNET:+yes}
if [ -z "${LAB_SUBNET:-}" ] && [ -s "$SUBNET_FILE" ]; then LAB_SUBNET=$(cat "$SUBNET_FILE"); fi
LAB_SUBNET=${LAB_SUBNET:-10.78.$((16#${TAG:0:4} % 250 + 1))}
[[ $LAB_SUBNET =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "lab: LAB_SUBNET is three octets, e.g. 10.78.5" >&2; exit 2; }
PKGS=systemd,systemd-sysv,dbus,openssh-server,python3,python3-apt,sudo,iproute2,procps,apt-utils,ca-certificates,e2fsprogs,util-linux,udev,kmod,less
SSHOPTS=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=3 -o BatchMode=yes -i "$KEY")

log() { echo "[lab $LAB_NAME] $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, bridges, nspawn)"

host_index() {  # position of $1 in LAB_HOSTS (1-based); new names go after the list
  local i=0 h
  for h in $LAB_HOSTS; do i=$((i + 1)); [ "$h" = "$1" ] && { echo $i; return; }; done
  # A host outside the default list (molecule's instances): a stable slot from its name.
  echo $((16#$(printf '%s' "$1" | sha1sum | cut -c1-4) % 200 + 20))
}
host_ip() { echo "$LAB_SUBNET.$((10 + $(host_index "$1")))"; }

deps() {
  command -v debootstrap >/dev/null && command -v systemd-nspawn >/dev/null \
    && command -v nft >/dev/null && command -v ssh >/dev/null && return 0
  log "installing debootstrap systemd-container nftables openssh-client"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap systemd-container nftables openssh-client >/dev/null
}

cmd_base() {
  deps
  mkdir -p "$LAB_STATE" "$CACHE/debootstrap"
  [ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -C "lazyshift-lab" -f "$KEY"
  # One builder at a time (molecule and the e2e may both ask for the base).
  exec 9>"$LAB_STATE/.base.lock"
  flock 9
  if [ ! -f "$LAB_STATE/base/.ready" ]; then
    rm -rf "$LAB_STATE/base"
    mkdir -p "$LAB_STATE/base"
    log "debootstrap bookworm from $LAB_MIRROR (once; debs cached in $CACHE/debootstrap)"
    debootstrap --variant=minbase --include="$PKGS" --cache-dir="$CACHE/debootstrap" \
      bookworm "$BASE" "$LAB_MIRROR" >"$LAB_STATE/base/debootstrap.log" 2>&1 \
      || die "debootstrap failed, see $LAB_STATE/base/debootstrap.log"
    cat >"$BASE/etc/apt/sources.list" <<EOF
deb $LAB_MIRROR bookworm main
deb $LAB_MIRROR bookworm-updates main
deb http://security.debian.org/debian-security bookworm-security main
EOF
    # Downloaded packages stay in the host's (bind-mounted, persistent) cache.
    echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' >"$BASE/etc/apt/apt.conf.d/10lab-keep"
    # Per-clone identity: systemd generates a machine-id; each clone makes its ssh host keys.
    : >"$BASE/etc/machine-id"
    rm -f "$BASE/var/lib/dbus/machine-id" "$BASE"/etc/ssh/ssh_host_*
    chroot "$BASE" systemctl enable -q systemd-networkd ssh
    # No hardware clock, no console gettys to wait for in a container.
    chroot "$BASE" systemctl mask -q systemd-timesyncd.service getty@tty1.service 2>/dev/null || true
    chroot "$BASE" apt-get clean
    touch "$LAB_STATE/base/.ready"
  fi
  install -d -m 700 "$BASE/root/.ssh"
  install -m 600 "$KEY.pub" "$BASE/root/.ssh/authorized_keys"
  log "base ready: $(du -sh "$BASE" 2>/dev/null | cut -f1) in $BASE"
}

subnet_taken() {  # an address or a route of this machine inside $1.0/24
  ip -4 -o addr show | grep -q " inet $1\.[0-9]*/" || ip -4 route show | grep -q "^$1\.0/24 "
}

# Another lab (this or another checkout: the hashed default may coincide) on the same subnet
# would take our traffic: take the next free 10.78.N, unless LAB_SUBNET was given.
pick_subnet() {
  local n i
  subnet_taken "$LAB_SUBNET" || return 0
  [ -z "$SUBNET_SET" ] || die "subnet $LAB_SUBNET.0/24 is taken by another interface: set another LAB_SUBNET"
  n=${LAB_SUBNET##*.}
  for i in $(seq 1 250); do
    LAB_SUBNET=10.78.$(((n + i - 1) % 250 + 1))
    subnet_taken "$LAB_SUBNET" || { log "subnet taken, using $LAB_SUBNET.0/24"; return 0; }
  done
  die "no free subnet in 10.78.0.0/16: set LAB_SUBNET"
}

net_up() {
  if ! ip link show "$BR" >/dev/null 2>&1; then
    # One lab at a time picks and claims its subnet, machine-wide (every checkout's labs).
    exec 7>/run/lazyshift-lab-net.lock
    flock 7
    pick_subnet
    nft delete table ip "$BR" 2>/dev/null || true  # a stale one may name an old subnet
    ip link add "$BR" type bridge
    ip addr add "$LAB_SUBNET.1/24" dev "$BR"
    echo "$LAB_SUBNET" >"$SUBNET_FILE"
    flock -u 7
  fi
  ip link set "$BR" up
  sysctl -qw net.ipv4.ip_forward=1
  # Each booted host's systemd takes inotify instances from the machine's shared budget; at
  # the default 128 the sixth host's units fail to start ("Too many open files").
  [ "$(sysctl -n fs.inotify.max_user_instances)" -ge 1024 ] || sysctl -qw fs.inotify.max_user_instances=1024
  nft list table ip "$BR" >/dev/null 2>&1 || nft -f - <<EOF
table ip $BR {
  chain lab_nat { type nat hook postrouting priority 100; ip saddr $LAB_SUBNET.0/24 oifname != "$BR" masquerade; }
  chain lab_forward { type filter hook forward priority 0; iifname "$BR" accept; oifname "$BR" ct state established,related accept; }
}
EOF
}

# A sparse file on a loop device, bound into the host as /dev/lazyshift-data: the data
# volume Terraform attaches on AWS (the roles find, format once and mount it).
disk_up() {
  local h=$1 d=$2 img dev
  [ "$LAB_DISK_MB" -gt 0 ] || return 0
  img=$d/data.img
  [ -f "$img" ] || truncate -s "${LAB_DISK_MB}M" "$img"
  dev=$(losetup -j "$img" | cut -d: -f1 | head -1)
  [ -n "$dev" ] || dev=$(losetup -f --show "$img" 2>/dev/null) || { log "$h: no loop device free, no data disk"; return 0; }
  echo "$dev" >"$d/loop"
  echo "--bind=$dev:/dev/lazyshift-data"
}

disk_down() {
  local d=$1 dev
  [ -f "$d/loop" ] || return 0
  dev=$(cat "$d/loop")
  losetup -j "$d/data.img" 2>/dev/null | grep -q "^$dev:" && losetup -d "$dev" || true
  rm -f "$d/loop"
}

host_up() {
  local h=$1 d=$HOSTS/$1 ip diskarg="" cache
  ip=$(host_ip "$h")
  if [ -f "$d/pid" ] && kill -0 "$(cat "$d/pid")" 2>/dev/null; then log "$h already running ($ip)"; return 0; fi
  rm -f "$d/pid"
  mkdir -p "$d"/{upper,work,root}
  mountpoint -q "$d/root" || mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$d/upper,workdir=$d/work" "$d/root"
  echo "$h" >"$d/root/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$h" >"$d/root/etc/hosts"
  # Named 10-: the guest's own DHCP file (80-container-host0) would otherwise sort first.
  cat >"$d/root/etc/systemd/network/10-lab.network" <<EOF
[Match]
Name=host0
[Network]
Address=$ip/24
Gateway=$LAB_SUBNET.1
EOF
  ls "$d/root"/etc/ssh/ssh_host_*_key >/dev/null 2>&1 || chroot "$d/root" ssh-keygen -A >/dev/null
  # apt downloads and lists survive lab-down: a second lab run downloads nothing new.
  cache=$CACHE/apt/$LAB_NAME-$h
  mkdir -p "$cache/archives/partial" "$cache/lists/partial"
  # An empty lists folder must look old, or apt's cache_valid_time skips the first update.
  ls "$cache/lists" | grep -q Packages || touch -d @0 "$cache/lists"
  case " $LAB_HOSTS " in *" $h "*) case $h in mongodb | mysql) diskarg=$(disk_up "$h" "$d") ;; esac ;; esac
  # --register=no needs --keep-unit without a host systemd. SIGTERM = clean poweroff.
  # A reboot inside makes nspawn exit 133: boot again ($d/pid is the current nspawn).
  # shellcheck disable=SC2016
  setsid bash -c 'echo $$ >"$1/wrapper"; while :; do
      systemd-nspawn -q -b -D "$1/root" -M "$2" --register=no --keep-unit --network-bridge="$3" \
        --resolv-conf=copy-host --timezone=off --console=passive \
        --bind="$4/archives:/var/cache/apt/archives" --bind="$4/lists:/var/lib/apt/lists" $5 \
        </dev/null & echo $! >"$1/pid"
      wait $!; rc=$?; [ $rc -eq 133 ] || exit $rc
    done' _ "$d" "$TAG-$h" "$BR" "$cache" "$diskarg" >"$d/console.log" 2>&1 </dev/null 8>&- 9>&- &
  for _ in $(seq 1 100); do [ -s "$d/pid" ] && break; sleep 0.1; done
  log "$h booting on $ip${diskarg:+ with data disk $(cat "$d/loop" 2>/dev/null)}"
}

wait_ssh() {
  local h=$1 ip i
  ip=$(host_ip "$h")
  for i in $(seq 1 120); do
    ssh "${SSHOPTS[@]}" root@"$ip" true 2>/dev/null && break
    [ "$i" -eq 120 ] && die "$h ($ip) not reachable over ssh, see $HOSTS/$h/console.log"
    sleep 1
  done
  # degraded is fine for a container (e.g. units that want hardware); "starting" is not.
  ssh "${SSHOPTS[@]}" root@"$ip" 'systemctl is-system-running --wait >/dev/null || true'
}

running_hosts() {
  local d
  [ -d "$HOSTS" ] || return 0
  for d in "$HOSTS"/*/; do [ -d "$d" ] && basename "$d"; done
}

write_outputs() {
  local h ip groups g
  {
    echo "# Generated by tools/lab/lab.sh ($LAB_NAME, $LAB_SUBNET.0/24): do not edit."
    echo "all:"
    echo "  vars:"
    echo "    ansible_user: root"
    echo "    ansible_ssh_private_key_file: $KEY"
    echo "    ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
    echo "    ansible_python_interpreter: /usr/bin/python3"
    echo "    lazyshift_lab_name: $LAB_NAME"
    echo "    lazyshift_lab_subnet: $LAB_SUBNET"
    echo "  hosts:"
    for h in $(running_hosts); do
      ip=$(host_ip "$h")
      echo "    $h:"
      echo "      ansible_host: $ip"
      echo "      lazyshift_private_ip: $ip"
      [ -f "$HOSTS/$h/loop" ] && echo "      lazyshift_data_device: /dev/lazyshift-data"
    done
    echo "  children:"
    for g in mongodb mysql source client tools; do
      groups=""
      for h in $(running_hosts); do
        case $h in "$g" | "$g"-[0-9]*) groups="$groups $h" ;; esac
      done
      echo "    $g:"
      if [ -n "$groups" ]; then
        echo "      hosts:"
        for h in $groups; do echo "        $h: {}"; done
      fi
    done
  } >"$DIR/hosts.yml.tmp"
  mv "$DIR/hosts.yml.tmp" "$DIR/hosts.yml"
  # Ansible reads group_vars beside the inventory file: the committed lab group_vars.
  ln -sfn "$CHECKOUT/inventories/lab/group_vars" "$DIR/group_vars"
  {
    for h in $(running_hosts); do printf 'Host %s\n  HostName %s\n' "$h" "$(host_ip "$h")"; done
    printf 'Host *\n  User root\n  IdentityFile %s\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n' "$KEY"
  } >"$DIR/ssh_config"
}

cmd_up() {
  local h
  [ -f "$LAB_STATE/base/.ready" ] || cmd_base
  install -m 600 "$KEY.pub" "$BASE/root/.ssh/authorized_keys"
  exec 8>"$LAB_STATE/.$LAB_NAME.lock"
  flock 8
  mkdir -p "$HOSTS"
  net_up
  # shellcheck disable=SC2086
  [ $# -gt 0 ] || set -- $LAB_HOSTS
  for h in "$@"; do
    [[ $h =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] || die "bad host name: $h"
    host_up "$h"
  done
  for h in "$@"; do wait_ssh "$h"; done
  write_outputs
  log "up: $* (inventory $DIR/hosts.yml)"
}

host_down() {
  local h=$1 d=$HOSTS/$1 pid
  [ -d "$d" ] || return 0
  if [ -f "$d/pid" ] && pid=$(cat "$d/pid") && kill -0 "$pid" 2>/dev/null; then
    # The wrapper loop first (so it does not boot the host again), then nspawn: clean poweroff.
    [ -f "$d/wrapper" ] && kill -TERM "$(cat "$d/wrapper")" 2>/dev/null || true
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { log "$h: forcing"; kill -KILL "$pid"; sleep 1; }
  fi
  mountpoint -q "$d/root" && umount "$d/root" || true
  mountpoint -q "$d/root" && umount -l "$d/root" || true
  disk_down "$d"
  rm -rf "$d"
  log "$h stopped and removed"
}

cmd_down() {
  local h
  [ -d "$DIR" ] || return 0
  exec 8>"$LAB_STATE/.$LAB_NAME.lock"
  flock 8
  [ $# -gt 0 ] || set -- $(running_hosts)
  for h in "$@"; do host_down "$h"; done
  if [ -z "$(running_hosts)" ]; then
    rm -f "$DIR/hosts.yml" "$DIR/ssh_config" "$SUBNET_FILE"
    nft delete table ip "$BR" 2>/dev/null || true
    ip link del "$BR" 2>/dev/null || true
  else
    write_outputs
  fi
}

cmd_status() {
  local h d pid
  echo "lab $LAB_NAME: bridge $BR $LAB_SUBNET.0/24, state $DIR"
  for h in $(running_hosts); do
    d=$HOSTS/$h
    printf '%-10s %-15s ' "$h" "$(host_ip "$h")"
    if [ -f "$d/pid" ] && pid=$(cat "$d/pid") && kill -0 "$pid" 2>/dev/null; then
      ssh "${SSHOPTS[@]}" root@"$(host_ip "$h")" systemctl is-system-running 2>/dev/null || echo unreachable
    else echo stopped; fi
  done
}

cmd_env() {
  echo "LAB_NAME=$LAB_NAME"
  echo "LAB_SUBNET=$LAB_SUBNET"
  echo "LAB_BRIDGE=$BR"
  echo "LAB_INVENTORY=$DIR/hosts.yml"
  echo "LAB_SSH_CONFIG=$DIR/ssh_config"
  echo "LAB_KEY=$KEY"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  base) cmd_base ;;
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  status) cmd_status ;;
  env) cmd_env ;;
  purge) cmd_down; rm -rf "$DIR" ;;
  *) sed -n '2,27p' "$0"; exit 2 ;;
esac
