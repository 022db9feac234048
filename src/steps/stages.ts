import type {Config, Role} from '../config/schema.js'

/**
 * The deployment stages of the design document as data. Each stage is one bash script in
 * assets/stages/<script>; each step is a pair of functions in it, `check_<id>` ("already
 * done?") and `do_<id>` (the action, safe to run again). The plan, the task list and the
 * state file all read this.
 */
export interface StepDef {
  id: string
  title: string
  /**
   * The parameters (env file keys, see src/deploy/params.ts) the step depends on; a name
   * ending in `*` is a prefix. Their values, with the script's text, make the step's input
   * hash: a change re-runs this step and no other.
   */
  inputs?: string[]
  /** Bound on one run of the step (default: DEFAULT_STEP_TIMEOUT_MS). */
  timeoutMs?: number
}

export const DEFAULT_STEP_TIMEOUT_MS = 15 * 60_000

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
      {id: 'wait_boot', title: 'Wait for cloud-init and the apt lock', timeoutMs: 30 * 60_000},
      {id: 'apt_proxy', title: 'Configure the apt proxy', inputs: ['APT_PROXY']},
      {id: 'packages', title: 'Install base packages'},
      {id: 'guest_agent', title: 'Install and start qemu-guest-agent'},
      {id: 'time_sync', title: 'Enable time synchronisation'},
      {id: 'firewall', title: 'Configure the firewall (ufw)', inputs: ['ADMIN_CIDRS', 'VM_SUBNET', 'ROLE_PORTS', 'PUBLIC_PORTS']},
    ],
  },
  {
    id: 'database',
    title: 'Databases: PostgreSQL, Redis, object storage',
    roles: ['database'],
    script: 'database.sh',
    steps: [
      {id: 'postgres_repo', title: 'Add the PostgreSQL package source', inputs: ['PG_VERSION']},
      {id: 'postgres_install', title: 'Install PostgreSQL', inputs: ['PG_VERSION']},
      {id: 'postgres_config', title: 'Configure listen address, scram and pg_hba', inputs: ['PG_VERSION', 'VM_IP', 'VM_SUBNET', 'PG_DATABASES', 'PG_USER__*', 'PG_MAX_CONNECTIONS']},
      {id: 'postgres_wal_archive', title: 'Configure WAL archiving', inputs: ['PG_VERSION', 'PG_WAL_ARCHIVE']},
      {id: 'postgres_databases', title: 'Create databases and their users', inputs: ['PG_VERSION', 'VM_IP', 'PG_DATABASES', 'PG_USER__*', 'PG_PASSWORD__*']},
      {id: 'redis_install', title: 'Install Redis 7', inputs: ['REDIS_VERSION']},
      {id: 'redis_config', title: 'Configure Redis (requirepass, bind, protected mode)', inputs: ['VM_IP', 'REDIS_PASSWORD']},
      {id: 'seaweedfs_install', title: 'Install SeaweedFS (checksum-verified)', inputs: ['SEAWEEDFS_VERSION', 'SEAWEEDFS_SHA256']},
      {id: 'seaweedfs_config', title: 'Configure the S3 service and credentials', inputs: ['VM_IP', 'S3_PORT', 'S3_ACCESS_KEY', 'S3_SECRET_KEY']},
      {id: 'seaweedfs_buckets', title: 'Create the platform buckets', inputs: ['VM_IP', 'S3_PORT', 'S3_ACCESS_KEY', 'S3_SECRET_KEY', 'S3_BUCKETS']},
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
      {id: 'registry_trust', title: 'Trust the Container Registry (Docker daemon)', inputs: ['VM_IP', 'GITLAB_REGISTRY_PORT']},
      {id: 'gitlab_compose', title: 'Write the GitLab Compose project and its HTTPS certificate', inputs: ['GITLAB_*', 'VM_IP', 'DB_HOST']},
      {id: 'gitlab_up', title: 'Start GitLab CE', inputs: ['GITLAB_VERSION'], timeoutMs: 30 * 60_000},
      {id: 'gitlab_ready', title: 'Wait for GitLab to be ready', timeoutMs: 25 * 60_000},
      {id: 'runner_install', title: 'Install GitLab Runner', inputs: ['RUNNER_VERSION']},
      {id: 'runner_register', title: 'Create and register the runner (runner-token flow)', inputs: ['GITLAB_EXTERNAL_URL']},
    ],
  },
  {
    id: 'k8s',
    title: 'Kubernetes: containerd, kubeadm, Calico, ingress',
    roles: ['k8s'],
    script: 'k8s.sh',
    steps: [
      {id: 'kernel', title: 'Swap off, kernel modules and sysctls'},
      {id: 'containerd', title: 'Install and configure containerd (SystemdCgroup)', inputs: ['REGISTRY']},
      {id: 'kube_repo', title: 'Add the pkgs.k8s.io package source', inputs: ['K8S_VERSION']},
      {id: 'kube_packages', title: 'Install kubeadm, kubelet, kubectl (held)', inputs: ['K8S_VERSION']},
      {id: 'kubeadm_init', title: 'Initialise the single-node cluster', inputs: ['VM_IP', 'POD_CIDR', 'SERVICE_CIDR', 'K8S_VERSION']},
      {id: 'untaint', title: 'Remove the control-plane taint'},
      {id: 'calico', title: 'Install Calico (operator)', inputs: ['CALICO_VERSION', 'POD_CIDR'], timeoutMs: 20 * 60_000},
      {id: 'ingress', title: 'Install the NGINX Ingress Controller', inputs: ['INGRESS_VERSION']},
      {id: 'namespaces', title: 'Create the namespaces', inputs: ['K8S_NAMESPACES']},
      {id: 'kubeconfig', title: 'Copy the kubeconfig to the workspace', inputs: ['VM_IP']},
    ],
  },
]

/** Ordered stages for each VM. */
export function stagesFor(role: Role, _config?: Config): StageDef[] {
  return STAGES.filter((s) => s.roles.includes(role))
}
