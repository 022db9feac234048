import type {Config, Role} from '../config/schema.js'

/**
 * The deployment stages of the design document as data. Each stage is one bash script in
 * assets/stages/<script>; each step is a function `step_<id>` in it with a check
 * ("already done?") and an action. The plan, the task list and the state file all read this.
 */
export interface StepDef {
  id: string
  title: string
}

export interface StageDef {
  id: string
  title: string
  /** Which VMs run this stage. */
  roles: Role[]
  /** File name under assets/stages/. */
  script: string
  steps: StepDef[]
}

export const STAGES: StageDef[] = [
  {
    id: 'base',
    title: 'Base system',
    roles: ['gitlab', 'database', 'k8s'],
    script: 'base.sh',
    steps: [
      {id: 'wait_boot', title: 'Wait for cloud-init and the apt lock'},
      {id: 'apt_proxy', title: 'Configure the apt proxy'},
      {id: 'packages', title: 'Install base packages'},
      {id: 'guest_agent', title: 'Install and start qemu-guest-agent'},
      {id: 'time_sync', title: 'Enable time synchronisation'},
      {id: 'firewall', title: 'Configure the firewall (ufw)'},
    ],
  },
  {
    id: 'database',
    title: 'Databases: PostgreSQL, Redis, object storage',
    roles: ['database'],
    script: 'database.sh',
    steps: [
      {id: 'postgres_repo', title: 'Add the PostgreSQL package source'},
      {id: 'postgres_install', title: 'Install PostgreSQL'},
      {id: 'postgres_config', title: 'Configure listen address, scram and pg_hba'},
      {id: 'postgres_wal_archive', title: 'Configure WAL archiving'},
      {id: 'postgres_databases', title: 'Create databases and their users'},
      {id: 'redis_install', title: 'Install Redis 7'},
      {id: 'redis_config', title: 'Configure Redis (requirepass, bind, protected mode)'},
      {id: 'seaweedfs_install', title: 'Install SeaweedFS (checksum-verified)'},
      {id: 'seaweedfs_config', title: 'Configure the S3 service and credentials'},
      {id: 'seaweedfs_buckets', title: 'Create the platform buckets'},
    ],
  },
  {
    id: 'gitlab',
    title: 'GitLab CE, Container Registry, GitLab Runner',
    roles: ['gitlab'],
    script: 'gitlab.sh',
    steps: [
      {id: 'docker_repo', title: "Add Docker's package source"},
      {id: 'docker_install', title: 'Install Docker Engine and Compose'},
      {id: 'gitlab_compose', title: 'Write the GitLab Compose project'},
      {id: 'gitlab_up', title: 'Start GitLab CE'},
      {id: 'gitlab_ready', title: 'Wait for GitLab to be ready'},
      {id: 'registry_trust', title: 'Trust the Container Registry'},
      {id: 'runner_install', title: 'Install GitLab Runner'},
      {id: 'runner_register', title: 'Create and register the runner (runner-token flow)'},
    ],
  },
  {
    id: 'k8s',
    title: 'Kubernetes: containerd, kubeadm, Calico, ingress',
    roles: ['k8s'],
    script: 'k8s.sh',
    steps: [
      {id: 'kernel', title: 'Swap off, kernel modules and sysctls'},
      {id: 'containerd', title: 'Install and configure containerd (SystemdCgroup)'},
      {id: 'kube_repo', title: 'Add the pkgs.k8s.io package source'},
      {id: 'kube_packages', title: 'Install kubeadm, kubelet, kubectl (held)'},
      {id: 'kubeadm_init', title: 'Initialise the single-node cluster'},
      {id: 'untaint', title: 'Remove the control-plane taint'},
      {id: 'calico', title: 'Install Calico (operator)'},
      {id: 'ingress', title: 'Install the NGINX Ingress Controller'},
      {id: 'namespaces', title: 'Create the namespaces'},
      {id: 'kubeconfig', title: 'Copy the kubeconfig to the workspace'},
    ],
  },
]

/** Ordered stages for each VM. */
export function stagesFor(role: Role, _config?: Config): StageDef[] {
  return STAGES.filter((s) => s.roles.includes(role))
}
