// The part of the bpg/proxmox provider schema that assets/terraform uses, transcribed from the
// provider's source: the provider cannot be downloaded on the test machines, so neither
// `terraform validate` nor a real plan ever holds the .tf files against it. Two checks use it:
// the unit test (test/unit/render) walks the raw HCL (names, literal values, required
// arguments), and the fake terraform refuses a plan whose EVALUATED values break it (enums,
// duration syntax, AlsoRequires, documented conflicts) in every mode the integration tests run.
//
// Source: github.com/bpg/terraform-provider-proxmox, read in the stored code index (the newest
// version of each file found there; commit prefixes):
//   provider + ssh{}             fwprovider/provider.go @ abe7fbdd
//   proxmox_download_file        fwprovider/nodes/resource_download_file.go @ 4ec9b4aa (schema);
//                                fwprovider/nodes/resource_download_file_short.go (ADR-007 short name)
//   proxmox_virtual_environment_file  proxmoxtf/resource/file.go @ 493ad1c1
//   proxmox_virtual_environment_vm    proxmoxtf/resource/vm/vm.go @ 5cc29c4c (top level, agent, clone,
//                                cpu, initialization, memory); proxmoxtf/resource/vm/disk/schema.go
//                                (the version with import_from); docs/resources/virtual_environment_vm.md
//                                @ b46d5d38 (enums of scsi_hardware, operating_system, vga, network model)
// Only what a check needs is modelled. A block this table does not know is an error: extend the
// table from the provider source (and say where from) rather than loosening a check.

/** Terraform meta-arguments, valid in every resource. */
export const META_ARGUMENTS = ['count', 'for_each', 'depends_on', 'provider', 'lifecycle', 'provisioner', 'connection']

// A Go duration as time.ParseDuration reads it (agent.timeout).
const GO_DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/

const ip = {attributes: ['address', 'gateway']}

/**
 * @typedef {object} BlockSchema
 * @property {string[]} attributes  arguments (optional unless in `required`)
 * @property {string[]} [required]
 * @property {string[]} [computed]  read-only attributes (referenceable, never set)
 * @property {Record<string, BlockSchema>} [blocks]
 * @property {Record<string, string[]>} [enums]  allowed values of string arguments
 * @property {Record<string, RegExp>} [patterns]  what a string argument must match
 * @property {Array<[string, string]>} [alsoRequires]  [a, b]: a set requires b set
 * @property {Array<[string, string]>} [conflicts]  arguments/blocks that exclude each other
 */

/** @type {BlockSchema} */
export const PROVIDER = {
  attributes: [
    'api_token', 'auth_ticket', 'csrf_prevention_token', 'endpoint', 'insecure', 'min_tls', 'otp', 'password',
    'random_vm_ids', 'random_vm_id_start', 'random_vm_id_end', 'tmp_dir', 'username',
  ],
  enums: {min_tls: ['1.0', '1.1', '1.2', '1.3']},
  blocks: {
    ssh: {
      attributes: ['agent', 'agent_socket', 'agent_forwarding', 'password', 'private_key', 'socks5_password', 'socks5_server', 'socks5_username', 'username'],
      blocks: {node: {attributes: ['address', 'name', 'port'], required: ['address', 'name']}},
    },
  },
}

/** @type {Record<string, BlockSchema>} */
export const RESOURCES = {
  proxmox_download_file: {
    attributes: [
      'checksum', 'checksum_algorithm', 'content_type', 'datastore_id', 'decompression_algorithm', 'file_name', 'node_name',
      'overwrite', 'overwrite_unmanaged', 'upload_timeout', 'url', 'verify',
    ],
    required: ['content_type', 'datastore_id', 'node_name', 'url'],
    computed: ['id', 'size'],
    enums: {
      content_type: ['iso', 'vztmpl', 'import'],
      checksum_algorithm: ['md5', 'sha1', 'sha224', 'sha256', 'sha384', 'sha512'],
      decompression_algorithm: ['gz', 'lzo', 'zst', 'bz2'],
    },
    patterns: {url: /^https?:\/\//},
    alsoRequires: [['checksum', 'checksum_algorithm'], ['checksum_algorithm', 'checksum']],
  },

  proxmox_virtual_environment_file: {
    attributes: ['content_type', 'datastore_id', 'file_mode', 'node_name', 'overwrite', 'timeout_upload'],
    required: ['datastore_id', 'node_name'],
    computed: ['file_modification_date', 'file_name', 'file_size', 'file_tag', 'id'],
    enums: {content_type: ['backup', 'iso', 'import', 'snippets', 'vztmpl']},
    blocks: {
      source_file: {attributes: ['path', 'changed', 'checksum', 'file_name', 'insecure', 'min_tls'], required: ['path']},
      source_raw: {attributes: ['data', 'file_name', 'resize'], required: ['data', 'file_name']},
    },
    conflicts: [['source_file', 'source_raw']],
  },

  proxmox_virtual_environment_vm: {
    attributes: [
      'acpi', 'bios', 'boot_order', 'description', 'hook_script_file_id', 'keyboard_layout', 'kvm_arguments', 'machine', 'migrate',
      'name', 'node_name', 'on_boot', 'pool_id', 'protection', 'reboot', 'reboot_after_update', 'scsi_hardware', 'started',
      'stop_on_destroy', 'tablet_device', 'tags', 'template', 'timeout_clone', 'timeout_create', 'timeout_migrate',
      'timeout_reboot', 'timeout_shutdown_vm', 'timeout_start_vm', 'timeout_stop_vm', 'vm_id',
    ],
    required: ['node_name'],
    computed: ['id', 'ipv4_addresses', 'ipv6_addresses', 'mac_addresses', 'network_interface_names'],
    enums: {
      bios: ['ovmf', 'seabios'],
      scsi_hardware: ['lsi', 'lsi53c810', 'virtio-scsi-pci', 'virtio-scsi-single', 'megasas', 'pvscsi'],
    },
    blocks: {
      agent: {attributes: ['enabled', 'timeout', 'trim', 'type'], enums: {type: ['isa', 'virtio']}, patterns: {timeout: GO_DURATION}},
      clone: {attributes: ['datastore_id', 'full', 'node_name', 'retries', 'vm_id'], required: ['vm_id']},
      cpu: {
        attributes: ['affinity', 'architecture', 'cores', 'flags', 'hotplugged', 'limit', 'numa', 'sockets', 'type', 'units'],
        enums: {architecture: ['aarch64', 'x86_64']},
      },
      memory: {attributes: ['dedicated', 'floating', 'hugepages', 'keep_hugepages', 'shared']},
      disk: {
        attributes: [
          'aio', 'backup', 'cache', 'datastore_id', 'discard', 'file_format', 'file_id', 'import_from', 'interface',
          'iothread', 'path_in_datastore', 'replicate', 'serial', 'size', 'ssd',
        ],
        required: ['interface'],
        blocks: {
          speed: {attributes: ['iops_read', 'iops_read_burstable', 'iops_write', 'iops_write_burstable', 'read', 'read_burstable', 'write', 'write_burstable']},
        },
        enums: {
          aio: ['io_uring', 'native', 'threads'],
          cache: ['none', 'writethrough', 'writeback', 'unsafe', 'directsync'],
          discard: ['on', 'ignore'],
          file_format: ['qcow2', 'raw', 'vmdk'],
        },
        patterns: {interface: /^(ide|sata|scsi|virtio)\d+$/},
        conflicts: [['file_id', 'import_from']],
      },
      network_device: {
        attributes: ['bridge', 'disconnected', 'enabled', 'firewall', 'mac_address', 'model', 'mtu', 'queues', 'rate_limit', 'trunks', 'vlan_id'],
        enums: {model: ['e1000', 'e1000e', 'rtl8139', 'virtio', 'vmxnet3']},
      },
      operating_system: {
        attributes: ['type'],
        enums: {type: ['l24', 'l26', 'other', 'solaris', 'w2k', 'w2k3', 'w2k8', 'win7', 'win8', 'win10', 'win11', 'wvista', 'wxp']},
      },
      serial_device: {attributes: ['device'], patterns: {device: /^(socket|\/dev\/.+)$/}},
      vga: {
        attributes: ['clipboard', 'memory', 'type'],
        enums: {
          type: ['cirrus', 'none', 'qxl', 'qxl2', 'qxl3', 'qxl4', 'serial0', 'serial1', 'serial2', 'serial3', 'std', 'virtio', 'virtio-gl', 'vmware'],
          clipboard: ['vnc'],
        },
      },
      initialization: {
        attributes: ['datastore_id', 'interface', 'meta_data_file_id', 'network_data_file_id', 'type', 'upgrade', 'user_data_file_id', 'vendor_data_file_id'],
        blocks: {
          dns: {attributes: ['domain', 'server', 'servers']},
          ip_config: {attributes: [], blocks: {ipv4: ip, ipv6: ip}},
          user_account: {attributes: ['keys', 'password', 'username']},
        },
        patterns: {interface: /^(ide[0-3]|sata[0-5]|scsi([0-9]|[12][0-9]|30))$/},
        // Documented as conflicting. The provider does not refuse them (it sends ciuser/sshkeys
        // and cicustom), but with cicustom user=... Proxmox ignores the user account.
        conflicts: [['user_account', 'user_data_file_id'], ['ip_config', 'network_data_file_id']],
      },
    },
  },
}

const isBlockList = (v) => Array.isArray(v) && v.every((x) => x !== null && typeof x === 'object' && !Array.isArray(x))
const isExpression = (v) => typeof v === 'string' && v.includes('${')

function literalProblems(where, schema, name, value) {
  if (typeof value !== 'string' || isExpression(value)) return []
  const allowed = schema.enums?.[name]
  if (allowed && !allowed.includes(value)) return [`${where}.${name}: "${value}" is not one of ${allowed.join(', ')}`]
  const pattern = schema.patterns?.[name]
  if (pattern && !pattern.test(value)) return [`${where}.${name}: "${value}" does not match ${pattern}`]
  return []
}

/**
 * Problems in a block body as hcl2json parses it (nested blocks are arrays of objects, dynamic
 * blocks sit under `dynamic`, attribute values are literals or "${...}" strings).
 * @param {BlockSchema} schema
 * @param {Record<string, unknown>} body
 * @param {string} where  the block's path, for the messages, e.g. "proxmox_virtual_environment_vm.gitlab"
 * @param {boolean} [resource]  true at the top of a resource (meta-arguments allowed)
 * @returns {string[]}
 */
export function configProblems(schema, body, where, resource = false) {
  const problems = []
  const present = new Set()
  for (const [name, value] of Object.entries(body)) {
    if (resource && META_ARGUMENTS.includes(name)) continue
    if (name === 'dynamic') {
      for (const [blockName, defs] of Object.entries(value)) {
        const inner = schema.blocks?.[blockName]
        if (!inner) problems.push(`${where}: unsupported block type "${blockName}" (dynamic)`)
        else for (const def of defs) problems.push(...configProblems(inner, def.content?.[0] ?? {}, `${where}.${blockName}`))
        present.add(blockName)
      }
      continue
    }
    present.add(name)
    const inner = schema.blocks?.[name]
    if (inner) {
      if (!isBlockList(value)) problems.push(`${where}.${name} is a block, not an argument`)
      else for (const b of value) problems.push(...configProblems(inner, b, `${where}.${name}`))
    } else if (schema.attributes.includes(name)) {
      if (isBlockList(value) && value.length > 0) problems.push(`${where}.${name} is an argument, not a block`)
      problems.push(...literalProblems(where, schema, name, value))
    } else if (schema.computed?.includes(name)) problems.push(`${where}.${name} is read-only (computed by the provider)`)
    else problems.push(`${where}: unsupported ${isBlockList(value) ? 'block type' : 'argument'} "${name}"`)
  }
  for (const r of schema.required ?? []) if (!present.has(r)) problems.push(`${where}: the argument "${r}" is required`)
  return problems
}

const isSet = (v) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0)

/**
 * Problems in a block's EVALUATED values (blocks are arrays of objects, null means unset).
 * @param {BlockSchema} schema
 * @param {Record<string, unknown>} attrs
 * @param {string} where
 * @param {boolean} [resource]
 * @returns {string[]}
 */
export function valueProblems(schema, attrs, where, resource = false) {
  const problems = []
  for (const [name, value] of Object.entries(attrs)) {
    if (resource && META_ARGUMENTS.includes(name)) continue
    const inner = schema.blocks?.[name]
    if (inner) {
      if (!isBlockList(value)) problems.push(`${where}.${name} is a block, not an argument`)
      else for (const b of value) problems.push(...valueProblems(inner, b, `${where}.${name}`))
    } else if (!schema.attributes.includes(name)) problems.push(`${where}: unsupported argument "${name}"`)
    else if (isSet(value)) problems.push(...literalProblems(where, schema, name, value))
  }
  for (const r of schema.required ?? []) if (!isSet(attrs[r])) problems.push(`${where}: the argument "${r}" is required`)
  for (const [a, b] of schema.alsoRequires ?? []) if (isSet(attrs[a]) && !isSet(attrs[b])) problems.push(`${where}: "${a}" requires "${b}" to be set too`)
  for (const [a, b] of schema.conflicts ?? []) if (isSet(attrs[a]) && isSet(attrs[b])) problems.push(`${where}: "${a}" conflicts with "${b}"`)
  return problems
}
