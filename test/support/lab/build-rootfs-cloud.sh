#!/usr/bin/env bash
# Builds a cloud-image variant of the lab's root filesystem, as a tarball in the cache dir.
# Usage: build-rootfs-cloud.sh VARIANT OUT_TAR FROM_TAR APT_PROXY
#   VARIANT   debian-cloud: FROM_TAR is the minbase tarball (build-rootfs.sh); adds the package
#             set and services of Debian 12's generic cloud image.
#             ubuntu-like: FROM_TAR is the debian-cloud tarball; adds what Ubuntu's server cloud
#             images have on top that Debian packages too.
#   APT_PROXY the host's apt-cacher-ng (http://127.0.0.1:PORT): the chroot has no DNS of its own.
#
# Where the Debian package set comes from: Debian's cloud image build config
# (salsa.debian.org/cloud-team/debian-cloud-images, read from its GitHub mirror
# GoCarrot/debian-cloud-images, branch main-13 at f6f48e315806aa173aef906b1d5fe63bf10e899d):
#   config_space/bookworm/package_config/SYSTEM_BOOT  sudo libpam-systemd systemd-resolved
#       libnss-myhostname netplan.io polkitd unattended-upgrades apparmor zstd apt-utils init
#       iptables iputils-ping less nano netbase vim-tiny whiptail; libnss-resolve removed for
#       bookworm; systemd-timesyncd (class TIME_SYSTEMD: the generic and genericcloud vendors in
#       src/debian_cloud_images/resources/image.yaml; chrony is Azure's, TIME_CHRONY)
#   config_space/bookworm/package_config/CLOUD        openssh-server ssh-import-id
#       cloud-initramfs-growroot
#   config_space/bookworm/package_config/GENERIC      cloud-init cloud-guest-utils
#   config_space/bookworm/scripts/SYSTEM_BOOT/20-enable-systemd-resolved
#       systemctl enable systemd-resolved; /etc/resolv.conf -> /run/systemd/resolve/resolv.conf
#   config_space/bookworm/files/etc/cloud/cloud.cfg.d/01_debian_cloud.cfg/DEBIAN (default user)
#   config_space/bookworm/files/etc/default/locale/DEBIAN (LANG=C.UTF-8)
# Left out, because a container has no kernel, boot loader or disk of its own: linux-image-*,
# grub-cloud-amd64, cloud-initramfs-growroot, apparmor (the host's kernel decides).
# Added, as a real image has them (priority important / a kernel's companions): `locales`
# (cloud-init's locale module runs update-locale) and `udev` (cloud-init's netplan renderer runs
# `udevadm test-builtin net_setup_link`; the daemon itself does not start in a container).
set -euo pipefail

variant=${1:?usage: build-rootfs-cloud.sh VARIANT OUT_TAR FROM_TAR APT_PROXY}
out=${2:?usage: build-rootfs-cloud.sh VARIANT OUT_TAR FROM_TAR APT_PROXY}
from=${3:?usage: build-rootfs-cloud.sh VARIANT OUT_TAR FROM_TAR APT_PROXY}
proxy=${4:?usage: build-rootfs-cloud.sh VARIANT OUT_TAR FROM_TAR APT_PROXY}

case $variant in
  debian-cloud)
    packages=(sudo libpam-systemd systemd-resolved libnss-myhostname netplan.io polkitd
      unattended-upgrades zstd apt-utils init iptables iputils-ping less nano netbase vim-tiny
      whiptail systemd-timesyncd openssh-server ssh-import-id cloud-init cloud-guest-utils locales udev)
    ;;
  ubuntu-like)
    # Ubuntu's server cloud images add needrestart and ufw (installed, inactive); the apt-daily
    # timers and unattended-upgrades are enabled there as in Debian's image (kept from FROM_TAR).
    packages=(needrestart ufw)
    ;;
  *)
    echo "unknown variant $variant (debian-cloud, ubuntu-like)" >&2
    exit 2
    ;;
esac

work=$(mktemp -d "$(dirname "$out")/build.XXXXXX")
root="$work/rootfs"
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

mkdir -p "$root"
tar -C "$root" --numeric-owner -xpf "$from"
mount -t proc proc "$root/proc"
# No daemons from post-install scripts: this is an image, not a running machine.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"

apt_in() {
  chroot "$root" env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
    apt-get -o "Acquire::http::Proxy=$proxy" -o Acquire::Retries=2 "$@"
}
if [[ $variant == debian-cloud ]]; then
  # The minbase masks these to boot fast; a cloud image has them (the apt-daily timers and
  # unattended-upgrades are what a deployment meets on a real VM). Before the install, so that
  # the packages' own presets apply.
  chroot "$root" systemctl unmask apt-daily.timer apt-daily-upgrade.timer \
    systemd-timesyncd.service systemd-networkd-wait-online.service
fi
apt_in update -qq
apt_in install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

if [[ $variant == debian-cloud ]]; then
  # 20-enable-systemd-resolved, as upstream.
  chroot "$root" systemctl enable systemd-resolved.service systemd-networkd.service
  ln -sfn /run/systemd/resolve/resolv.conf "$root/etc/resolv.conf"
  chroot "$root" systemctl enable apt-daily.timer apt-daily-upgrade.timer unattended-upgrades.service \
    systemd-timesyncd.service cloud-init-local.service cloud-init.service cloud-config.service cloud-final.service
  # unattended-upgrades' debconf default; the image has it on (APT::Periodic from 20auto-upgrades).
  printf 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n' \
    >"$root/etc/apt/apt.conf.d/20auto-upgrades"
  printf 'LANG=C.UTF-8\n' >"$root/etc/default/locale"
  cat >"$root/etc/cloud/cloud.cfg.d/01_debian_cloud.cfg" <<'CFG'
apt:
  generate_mirrorlists: true

system_info:
  default_user:
    name: debian
    sudo: ALL=(ALL) NOPASSWD:ALL
    shell: /bin/bash
    lock_passwd: True
    gecos: Debian
    groups: [adm, audio, cdrom, dialout, dip, floppy, plugdev, sudo, video]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
CFG
  # A Proxmox VM finds its seed on the cidata drive; here it is the NoCloud seed directory the
  # harness writes per machine. Nothing else to probe in a container.
  printf 'datasource_list: [ NoCloud, None ]\n' >"$root/etc/cloud/cloud.cfg.d/90-autolabs-lab.cfg"
  # cloud-init makes these per instance.
  rm -f "$root"/etc/ssh/ssh_host_* "$root/etc/netplan/"*.yaml
  rm -rf "$root/var/lib/cloud"
fi

if [[ $variant == ubuntu-like ]]; then
  # Installed but inactive, as on Ubuntu's cloud images.
  sed -i 's/^ENABLED=.*/ENABLED=no/' "$root/etc/ufw/ufw.conf"
fi

rm -f "$root/usr/sbin/policy-rc.d"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/*
umount "$root/proc"

tar -C "$root" --numeric-owner -cf "$work/rootfs.tar" .
mv "$work/rootfs.tar" "$out"
