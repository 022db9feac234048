#!/usr/bin/env bash
# Builds the lab machines' Debian 12 root filesystem once, as a tarball in the cache dir.
# Usage: build-rootfs.sh OUT_TAR MIRROR
# Per-machine things (host keys, user, hostname, apt proxy) are added by the harness after
# unpacking, so one tarball serves every machine and every test.
set -euo pipefail

out=${1:?usage: build-rootfs.sh OUT_TAR MIRROR}
mirror=${2:?usage: build-rootfs.sh OUT_TAR MIRROR}

# What a cloud VM has that the stages rely on (curl, gnupg, fuser, lsb_release, ping, nc).
include=systemd,systemd-sysv,dbus,openssh-server,iproute2,sudo,python3,ca-certificates
include+=,curl,gnupg,procps,psmisc,lsb-release,iputils-ping,netcat-openbsd,less,kmod

work=$(mktemp -d "$(dirname "$out")/build.XXXXXX")
cleanup() { rm -rf --one-file-system "$work"; }
trap cleanup EXIT

root="$work/rootfs"
debootstrap --variant=minbase --include="$include" bookworm "$root" "$mirror"

chroot "$root" systemctl enable ssh
# Boot faster and quieter in a container: nothing here has hardware or a console login.
chroot "$root" systemctl mask systemd-networkd-wait-online.service getty@tty1.service \
  console-getty.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true
# Each machine gets its own host keys and machine id (the harness generates them).
rm -f "$root"/etc/ssh/ssh_host_*
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# No DNS and no route out: the machines reach the archive through the host's apt proxy only.
: > "$root/etc/resolv.conf"
printf 'deb %s bookworm main\n' "$mirror" > "$root/etc/apt/sources.list"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/*

tar -C "$root" --numeric-owner -cf "$work/rootfs.tar" .
mv "$work/rootfs.tar" "$out"
