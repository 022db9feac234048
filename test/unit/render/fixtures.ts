import {type Config, configSchema} from '../../../src/config/schema.js'
import type {Secrets} from '../../../src/workspace/secrets.js'

export const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx5Rm9vQmFyQmF6UXV4UXV1eFF1dXhRdXV4UXV1eFF1 admin@workstation'

export const TOKEN_SECRET = '3f2b8c1e-7d4a-4e9b-a6c5-0d1e2f3a4b5c'
export const TF_TOKEN_SECRET = '9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d'
export const PASSWORD = 'correct-horse-battery-staple-42'

export function defaultConfig(): Config {
  return configSchema.parse({})
}

/** Every Terraform-relevant field changed from its default. */
export function customConfig(): Config {
  return configSchema.parse({
    name: 'lab-cs101',
    proxmox: {url: 'https://10.0.0.2:8443', node: 'pve2', vmStorage: 'fast-zfs', imageStorage: 'nfs-images', bridge: 'vmbr1', templateVmid: 9100},
    image: {os: 'debian-12', url: 'https://cloud.debian.org/images/cloud/bookworm/20261110-2293/debian-12-genericcloud-amd64-20261110-2293.qcow2', checksum: 'a'.repeat(128)},
    network: {
      subnet: '10.20.0.0/16',
      gateway: '10.20.0.1',
      dns: ['10.20.0.53'],
      searchDomain: 'lab.example.edu',
      aptProxy: 'http://10.20.0.5:3142',
      vms: {gitlab: {ip: '10.20.1.10'}, database: {ip: '10.20.1.20'}, k8s: {ip: '10.20.1.30'}},
    },
    vms: {
      gitlab: {name: 'git', vmid: 210, cores: 6, memoryMiB: 12288, diskGiB: 150},
      database: {name: 'db', vmid: 220, cores: 2, memoryMiB: 4096, diskGiB: 80},
      k8s: {name: 'kube', vmid: 230, cores: 16, memoryMiB: 16384, diskGiB: 300},
    },
    cloudInit: {mode: 'snippet', snippetStorage: 'snips'},
  })
}

export function secretsWith(proxmox: Secrets['proxmox']): Secrets {
  return {
    proxmox,
    postgres: {superuser: 'x'.repeat(20), users: {autolabs: 'y'.repeat(20)}},
    redis: {password: 'r'.repeat(20)},
    objectStorage: {accessKey: 'A'.repeat(20), secretKey: 's'.repeat(20)},
    gitlab: {rootPassword: 'g'.repeat(20)},
    kubernetes: {bootstrapToken: 'abcdef.0123456789abcdef'},
  }
}
