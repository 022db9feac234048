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
  /** Cloud image URL (downloaded by Proxmox itself, saved as .qcow2 in the import storage). */
  url: string
  /** Where the publisher lists SHA-256 sums; `init` resolves the image's checksum from it. */
  checksumUrl: string
  /** File name in the storage: Proxmox's import content needs .qcow2/.raw/.vmdk. */
  fileName: string
  /** The cloud image's default login user (cloud-init `ciuser`). */
  defaultUser: string
}

export const IMAGES: Record<GuestOs, GuestImage> = {
  'ubuntu-22.04': {
    title: 'Ubuntu 22.04 LTS (Jammy)',
    url: 'https://cloud-images.ubuntu.com/jammy/current/jammy-server-cloudimg-amd64.img',
    checksumUrl: 'https://cloud-images.ubuntu.com/jammy/current/SHA256SUMS',
    fileName: 'jammy-server-cloudimg-amd64.qcow2',
    defaultUser: 'ubuntu',
  },
  'ubuntu-24.04': {
    title: 'Ubuntu 24.04 LTS (Noble)',
    url: 'https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img',
    checksumUrl: 'https://cloud-images.ubuntu.com/noble/current/SHA256SUMS',
    fileName: 'noble-server-cloudimg-amd64.qcow2',
    defaultUser: 'ubuntu',
  },
  'debian-12': {
    title: 'Debian 12 (Bookworm)',
    url: 'https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2',
    checksumUrl: 'https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS',
    fileName: 'debian-12-genericcloud-amd64.qcow2',
    defaultUser: 'debian',
  },
}

export const VERSIONS = {
  /** bpg/proxmox provider: a pinned minor (MISSION.md). */
  bpgProvider: '~> 0.111.0',
  terraformMin: '1.5.0',
  postgres: 17,
  redis: '7',
  gitlab: '19.6.0-ce.0',
  gitlabRunner: '19.6.0',
  kubernetes: '1.35',
  calico: 'v3.32.2', // tested by Tigera against Kubernetes 1.34–1.36 (v3.31: up to 1.34)
  /** F5 NGINX Ingress Controller (OSS), Helm chart / manifests version. */
  nginxIngress: '5.2.1',
  seaweedfs: '3.97',
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
