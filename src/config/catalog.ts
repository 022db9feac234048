/**
 * Pinned versions and the guest images autolabs knows. One place to bump them; every
 * value here is a default the user can override in autolabs.yaml.
 * (Dated decisions in shared/MISSION.md, 2026-11.)
 */

export const GUEST_OS = ['ubuntu-22.04', 'ubuntu-24.04', 'debian-12'] as const
export type GuestOs = (typeof GUEST_OS)[number]

export interface GuestImage {
  /** Human name shown in the wizard and plan. */
  title: string
  /**
   * The publisher's MOVING "current"/"latest" image: what the same URL downloads changes every
   * few days, so it is never pinned (a pinned checksum would stop matching). Only used to
   * recognise a workspace written before images were pinned by date.
   */
  url: string
  /** Its checksum list (moving too). */
  checksumUrl: string
  /** The directory whose listing holds one dated, immutable sub-directory per build. */
  indexUrl: string
  /** A dated build's directory name in that listing (group 1: the serial, e.g. 20261120 or 20261110-2293). */
  serialDir: RegExp
  /** A dated build's directory name. */
  datedDir: (serial: string) => string
  /** The image's file name inside a dated directory. */
  datedFile: (serial: string) => string
  /** The checksum list's name inside a dated directory. */
  sumsFile: 'SHA256SUMS' | 'SHA512SUMS'
  /** Name in the storage: Proxmox's import content needs .qcow2/.raw/.vmdk; the serial keeps builds apart. */
  fileName: string
  /** The cloud image's default login user (cloud-init `ciuser`). */
  defaultUser: string
}

// Ubuntu keeps every release build under releases/<codename>/release-<serial>/ (the jammy/<serial>
// daily directories are pruned after weeks); Debian keeps every build under <codename>/<serial>/.
export const IMAGES: Record<GuestOs, GuestImage> = {
  'ubuntu-22.04': {
    title: 'Ubuntu 22.04 LTS (Jammy)',
    url: 'https://cloud-images.ubuntu.com/jammy/current/jammy-server-cloudimg-amd64.img',
    checksumUrl: 'https://cloud-images.ubuntu.com/jammy/current/SHA256SUMS',
    indexUrl: 'https://cloud-images.ubuntu.com/releases/jammy/',
    serialDir: /^release-(\d{8}(?:\.\d+)?)$/,
    datedDir: (serial) => `release-${serial}`,
    datedFile: () => 'ubuntu-22.04-server-cloudimg-amd64.img',
    sumsFile: 'SHA256SUMS',
    fileName: 'jammy-server-cloudimg-amd64.qcow2',
    defaultUser: 'ubuntu',
  },
  'ubuntu-24.04': {
    title: 'Ubuntu 24.04 LTS (Noble)',
    url: 'https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img',
    checksumUrl: 'https://cloud-images.ubuntu.com/noble/current/SHA256SUMS',
    indexUrl: 'https://cloud-images.ubuntu.com/releases/noble/',
    serialDir: /^release-(\d{8}(?:\.\d+)?)$/,
    datedDir: (serial) => `release-${serial}`,
    datedFile: () => 'ubuntu-24.04-server-cloudimg-amd64.img',
    sumsFile: 'SHA256SUMS',
    fileName: 'noble-server-cloudimg-amd64.qcow2',
    defaultUser: 'ubuntu',
  },
  'debian-12': {
    title: 'Debian 12 (Bookworm)',
    url: 'https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2',
    checksumUrl: 'https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS',
    indexUrl: 'https://cloud.debian.org/images/cloud/bookworm/',
    serialDir: /^(\d{8}-\d+)$/,
    datedDir: (serial) => serial,
    datedFile: (serial) => `debian-12-genericcloud-amd64-${serial}.qcow2`,
    sumsFile: 'SHA512SUMS',
    fileName: 'debian-12-genericcloud-amd64.qcow2',
    defaultUser: 'debian',
  },
}

/** A URL whose content changes over time ("current", "latest", "release" links): never pinned. */
export function isMovingImageUrl(url: string): boolean {
  return /\/(current|latest|release)\//.test(new URL(url).pathname)
}

export const VERSIONS = {
  /** bpg/proxmox provider: a pinned minor (MISSION.md). */
  bpgProvider: '~> 0.111.0',
  terraformMin: '1.5.0',
  postgres: 17,
  redis: '7.2', // redis.io supports 7.2 until 2029-12-01; '7' took Debian's/Ubuntu's 7.0, no longer supported
  gitlab: '19.6.0-ce.0',
  gitlabRunner: '19.6.0',
  /** Supported until 2027-06-28; needs containerd 2.2+ (docs/versions.md has every source). */
  kubernetes: '1.36',
  calico: 'v3.32.1', // tested by Tigera against Kubernetes 1.34–1.36
  /** F5 NGINX Ingress Controller (OSS), manifests at this tag; tested by F5 with Kubernetes 1.29–1.36. */
  nginxIngress: '5.5.4',
  seaweedfs: '4.44', // tag 4.44, commit 3563738699f29fd1c9efde6fcbf4ba253439cac8, 2026-08-22
} as const

/** The design document's table: gitlab 4c/8G/100G, database 4c/8G/200G, k8s 4–16c/8–16G/200G. */
export const DESIGN_SIZES = {
  gitlab: {cores: 4, memoryMiB: 8192, diskGiB: 100},
  database: {cores: 4, memoryMiB: 8192, diskGiB: 200},
  k8s: {cores: 4, memoryMiB: 8192, diskGiB: 200, maxCores: 16, maxMemoryMiB: 16384},
} as const

/** The design document's host minimum (MVP): 12 cores, 16 GB. */
export const HOST_MINIMUM = {cores: 12, memoryMiB: 16 * 1024}

export const DEFAULT_NAMESPACES = ['platform', 'infrastructure', 'auth', 'messaging', 'labs', 'ingress-nginx']

export const DEFAULT_BUCKETS = ['autolabs', 'gitlab-artifacts', 'gitlab-registry', 'backups']

/** Minimum PostgreSQL major for GitLab's external database, by GitLab major. */
export function gitlabMinPostgres(gitlabVersion: string): number {
  const major = Number.parseInt(gitlabVersion, 10)
  if (major >= 19) return 17
  if (major >= 18) return 16
  return 14
}
