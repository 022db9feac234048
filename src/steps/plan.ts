import {type Config, type Role, ROLES} from '../config/schema.js'
import {derived} from '../config/load.js'
import {stagesFor} from './stages.js'

/** What init would do, as data: the VM table and the ordered stages per VM. Pure. */
export interface PlanVm {
  role: Role
  name: string
  vmid: number
  cores: number
  memoryMiB: number
  diskGiB: number
  ip: string
  purpose: string
}

export interface PlanStage {
  order: number
  id: string
  title: string
  /** Per VM, the steps this stage runs there. */
  vms: Array<{role: Role; name: string; steps: Array<{id: string; title: string}>}>
}

export interface Plan {
  environment: string
  proxmox: {url: string; node: string; vmStorage: string; imageStorage: string; bridge: string}
  template: {vmid: number; os: string; image: string}
  network: {subnet: string; gateway: string; dns: string[]}
  vms: PlanVm[]
  totals: {cores: number; memoryMiB: number; diskGiB: number}
  stages: PlanStage[]
  files: string[]
}

const PURPOSE: Record<Role, string> = {
  gitlab: 'GitLab CE + Container Registry + GitLab Runner',
  database: `PostgreSQL + Redis + object storage`,
  k8s: 'Single-node Kubernetes',
}

export function buildPlan(config: Config, files: string[] = []): Plan {
  const d = derived(config)
  const vms: PlanVm[] = ROLES.map((role) => ({
    role,
    name: config.vms[role].name,
    vmid: config.vms[role].vmid,
    cores: config.vms[role].cores,
    memoryMiB: config.vms[role].memoryMiB,
    diskGiB: config.vms[role].diskGiB,
    ip: config.network.vms[role].ip,
    purpose: PURPOSE[role],
  }))
  const sum = (k: 'cores' | 'memoryMiB' | 'diskGiB') => vms.reduce((a, v) => a + v[k], 0)

  // Stages 1–2 of the design document happen on the Proxmox host; 3–5 over SSH, concurrently.
  const stages: PlanStage[] = [
    {
      order: 1,
      id: 'proxmox',
      title: 'Prepare Proxmox (preflight, least-privilege Terraform token, import storage)',
      vms: [],
    },
    {
      order: 2,
      id: 'terraform',
      title: `Create the cloud image, template ${config.proxmox.templateVmid} and the three VMs with Terraform`,
      vms: [],
    },
  ]
  const seen = new Map<string, PlanStage>()
  for (const role of ROLES) {
    for (const stage of stagesFor(role, config)) {
      let ps = seen.get(stage.id)
      if (!ps) {
        ps = {order: stages.length + 1, id: stage.id, title: stage.title, vms: []}
        seen.set(stage.id, ps)
        stages.push(ps)
      }
      // Without a proxy the step only sets apt's timeouts (and removes a proxy left behind).
      const title = (s: {id: string; title: string}) => (s.id === 'apt_proxy' && !config.network.aptProxy ? 'Set apt timeouts (no apt proxy)' : s.title)
      ps.vms.push({role, name: config.vms[role].name, steps: stage.steps.map((s) => ({id: s.id, title: title(s)}))})
    }
  }

  return {
    environment: config.name,
    proxmox: {
      url: config.proxmox.url,
      node: config.proxmox.node,
      vmStorage: config.proxmox.vmStorage,
      imageStorage: config.proxmox.imageStorage,
      bridge: config.proxmox.bridge,
    },
    template: {vmid: config.proxmox.templateVmid, os: config.image.os, image: d.imageUrl},
    network: {subnet: config.network.subnet, gateway: config.network.gateway, dns: config.network.dns},
    vms,
    totals: {cores: sum('cores'), memoryMiB: sum('memoryMiB'), diskGiB: sum('diskGiB')},
    stages,
    files,
  }
}
