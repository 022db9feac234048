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
      {id: 'redis_install', title: 'Install Redis (the pinned minor)', inputs: ['REDIS_VERSION']},
      // A new REDIS_VERSION / SEAWEEDFS_VERSION re-runs the config step too: it restarts the service on the new release.
      {id: 'redis_config', title: 'Configure Redis (requirepass, bind, protected mode)', inputs: ['VM_IP', 'REDIS_PASSWORD', 'REDIS_VERSION']},
      {id: 'seaweedfs_install', title: 'Install SeaweedFS (checksum-verified)', inputs: ['SEAWEEDFS_VERSION', 'SEAWEEDFS_SHA256']},
      {id: 'seaweedfs_config', title: 'Configure the S3 service and credentials', inputs: ['VM_IP', 'S3_PORT', 'S3_ACCESS_KEY', 'S3_SECRET_KEY', 'SEAWEEDFS_VERSION']},
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
      {id: 'database_login', title: 'Log in to GitLab’s database from this VM', inputs: ['GITLAB_EXTERNAL_DB', 'DB_HOST', 'GITLAB_DB_*']},
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
      {id: 'network_policies', title: 'Apply the NetworkPolicies (labs isolated from the platform)', inputs: ['K8S_NETWORK_POLICIES', 'K8S_NETWORK_POLICY_NAMES']},
      {id: 'kubeconfig', title: 'Copy the kubeconfig to the workspace', inputs: ['VM_IP']},
    ],
  },
]

/**
 * Steps that wait for steps on other VMs. The VMs deploy concurrently; a step named here
 * starts only once `after.step` has finished (changed or unchanged) on every VM of
 * `after.role` in the same deploy, and is skipped with the reason when it failed or did not
 * run (the VM's later steps are then not run either). A dependency whose VM is not part of
 * the deploy (`--only`) is not waited for: the dependent step's own check must prove what it
 * needs (database_login really logs in). Roles, not VM names: when a role has several VMs
 * (Phase 2: control planes, workers, runners) the step waits for all of them.
 */
export interface StepDependency {
  /** The waiting step, "stage/step". */
  step: string
  after: {role: Role; step: string}
  /** Said in the skip reason and the docs. */
  why: string
  /** Whether the dependency applies under this config (default: always). */
  when?: (config: Config) => boolean
}

export const DEPENDENCIES: StepDependency[] = [
  {
    step: 'gitlab/database_login',
    after: {role: 'database', step: 'database/postgres_databases'},
    why: 'GitLab’s first start migrates its database, which must exist and accept its user',
    when: (config) => config.services.gitlab.externalDatabase,
  },
]

/** The dependencies of step `key` ("stage/step") that apply under `config`. */
export function dependenciesOf(key: string, config: Config): StepDependency[] {
  return DEPENDENCIES.filter((d) => d.step === key && (d.when?.(config) ?? true))
}

/**
 * What is wrong with a dependency table (empty: nothing): a step that no stage of its role
 * has, or a cycle (the steps of a VM run in order, so "a waits for b" and "b's VM reaches b
 * only after a" deadlock). Checked by the tests for DEPENDENCIES; the check that lets a
 * topology given as data (Phase 2) be refused before anything runs.
 */
export function dependencyProblems(deps: StepDependency[] = DEPENDENCIES, stages: StageDef[] = STAGES): string[] {
  const problems: string[] = []
  const rolesOf = (key: string) => {
    const [stage, step] = key.split('/')
    const def = stages.find((s) => s.id === stage)
    return def?.steps.some((x) => x.id === step) ? def.roles : []
  }
  // Nodes "role:stage/step"; edges: the next step on the same role, and each dependency.
  const next = new Map<string, string[]>()
  const edge = (from: string, to: string) => next.set(from, [...(next.get(from) ?? []), to])
  for (const role of new Set(stages.flatMap((s) => s.roles))) {
    const keys = stages.filter((s) => s.roles.includes(role)).flatMap((s) => s.steps.map((x) => `${role}:${s.id}/${x.id}`))
    keys.slice(1).forEach((k, i) => edge(keys[i], k))
  }
  for (const d of deps) {
    const waiting = rolesOf(d.step)
    if (waiting.length === 0) problems.push(`${d.step}: no stage has this step`)
    if (!rolesOf(d.after.step).includes(d.after.role)) problems.push(`${d.step} waits for ${d.after.step} on ${d.after.role}, which does not run it`)
    for (const role of waiting) edge(`${d.after.role}:${d.after.step}`, `${role}:${d.step}`)
  }
  // Depth-first search for a back edge.
  const state = new Map<string, 'open' | 'done'>()
  const visit = (n: string, path: string[]): void => {
    if (state.get(n) === 'done') return
    if (state.get(n) === 'open') {
      problems.push(`cycle: ${[...path.slice(path.indexOf(n)), n].join(' -> ')}`)
      return
    }
    state.set(n, 'open')
    for (const m of next.get(n) ?? []) visit(m, [...path, n])
    state.set(n, 'done')
  }
  for (const n of next.keys()) visit(n, [])
  return problems
}

/** Ordered stages for each VM. */
export function stagesFor(role: Role, _config?: Config): StageDef[] {
  return STAGES.filter((s) => s.roles.includes(role))
}
