// The part of the bpg/proxmox provider schema that assets/terraform uses, transcribed from the
// provider's source at the exact release that providers.tf selects: the provider cannot be
// downloaded on the test machines, so neither `terraform validate` nor a real plan ever holds
// the .tf files against it. Two checks use it: the unit test (test/unit/render) walks the raw
// HCL (names, literal values, required arguments), and the fake terraform refuses a plan whose
// EVALUATED values break it (enums, duration syntax, AlsoRequires) and decides from `forceNew`
// which changes replace a resource, in every mode the integration tests run.
//
// Source: github.com/bpg/terraform-provider-proxmox at tag PINNED.tag (commit PINNED.commit),
// read with `git show <tag>:<path>`:
//   provider + ssh{}                  fwprovider/provider.go (ssh.node_address_source: OneOf api, dns)
//   proxmox_download_file             fwprovider/nodes/resource_download_file.go (schema, RequiresReplace);
//                                     fwprovider/nodes/resource_download_file_short.go (the short name)
//   proxmox_virtual_environment_file  proxmoxtf/resource/file.go (File(): ForceNew, upload_mode OneOf sftp, stream)
//   proxmox_virtual_environment_vm    proxmoxtf/resource/vm/vm.go (top level, agent + wait_for_ip, clone,
//                                     cpu, initialization, memory, CustomizeDiff ForceNewIf vm_id/node_name);
//                                     proxmoxtf/resource/vm/disk/schema.go (discard has no validator;
//                                     import_from "Only used during initial creation; changes after creation
//                                     are ignored", ForceNew false; file_id ForceNew); vm/network/schema.go
//                                     (mac_addresses Optional+Computed; ipv4/ipv6_addresses Computed);
//                                     vm/validators.go (scsi_hardware, operating_system, vga, agent type enums)
// Blocks the configuration does not use are listed by name only (OPAQUE): using one is an error
// until its body is transcribed. Extend the table from the source at the pinned tag (and bump
// PINNED when providers.tf moves) rather than loosening a check.

/** The release this table was read from; test/unit/render/provider-schema.test.ts holds providers.tf to it. */
export const PINNED = {tag: 'v0.111.1', commit: 'b22fe919fc34476b232191b69c8907f0c1aa5bea'}

/** Terraform meta-arguments, valid in every resource. */
export const META_ARGUMENTS = ['count', 'for_each', 'depends_on', 'provider', 'lifecycle', 'provisioner', 'connection']

// A Go duration as time.ParseDuration reads it (agent.timeout: TimeoutValidator).
const GO_DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/

const ip = {attributes: ['address', 'gateway']}
/** A block that exists in the provider but whose body is not transcribed (not used by autolabs). */
const OPAQUE = {attributes: [], opaque: true}

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
 * @property {string[]} [forceNew]  dotted paths whose change replaces the resource (ForceNew / RequiresReplace)
 * @property {boolean} [opaque]  body not transcribed
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
      attributes: ['agent', 'agent_socket', 'agent_forwarding', 'node_address_source', 'password', 'private_key', 'socks5_password', 'socks5_server', 'socks5_username', 'username'],
      enums: {node_address_source: ['api', 'dns']},
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
    forceNew: ['checksum', 'checksum_algorithm', 'content_type', 'datastore_id', 'decompression_algorithm', 'file_name', 'node_name', 'url'],
  },

  proxmox_virtual_environment_file: {
    attributes: ['content_type', 'datastore_id', 'file_mode', 'node_name', 'overwrite', 'timeout_upload', 'upload_mode'],
    required: ['datastore_id', 'node_name'],
    computed: ['file_modification_date', 'file_name', 'file_size', 'file_tag', 'id'],
    enums: {content_type: ['backup', 'iso', 'import', 'snippets', 'vztmpl'], upload_mode: ['sftp', 'stream']},
    blocks: {
      source_file: {attributes: ['path', 'changed', 'checksum', 'file_name', 'insecure', 'min_tls'], required: ['path']},
      source_raw: {attributes: ['data', 'file_name', 'resize'], required: ['data', 'file_name']},
    },
    conflicts: [['source_file', 'source_raw']],
    forceNew: ['content_type', 'datastore_id', 'file_mode', 'node_name', 'source_file', 'source_raw'],
  },

  proxmox_virtual_environment_vm: {
    attributes: [
      'acpi', 'bios', 'boot_order', 'delete_unreferenced_disks_on_destroy', 'description', 'hook_script_file_id', 'hotplug',
      'keyboard_layout', 'kvm_arguments', 'mac_addresses', 'machine', 'migrate', 'name', 'node_name', 'on_boot', 'pool_id',
      'protection', 'purge_on_destroy', 'reboot', 'reboot_after_update', 'scsi_hardware', 'started', 'stop_on_destroy',
      'tablet_device', 'tags', 'template', 'timeout_clone', 'timeout_create', 'timeout_migrate', 'timeout_move_disk',
      'timeout_reboot', 'timeout_shutdown_vm', 'timeout_start_vm', 'timeout_stop_vm', 'vm_id',
    ],
    required: ['node_name'],
    computed: ['id', 'ipv4_addresses', 'ipv6_addresses', 'network_interface_names'],
    enums: {
      bios: ['ovmf', 'seabios'],
      scsi_hardware: ['lsi', 'lsi53c810', 'virtio-scsi-pci', 'virtio-scsi-single', 'megasas', 'pvscsi'],
    },
    blocks: {
      agent: {
        attributes: ['enabled', 'timeout', 'trim', 'type'],
        enums: {type: ['isa', 'virtio']},
        patterns: {timeout: GO_DURATION},
        blocks: {wait_for_ip: {attributes: ['disabled', 'ipv4', 'ipv6']}},
      },
      clone: {attributes: ['datastore_id', 'full', 'node_name', 'retries', 'vm_id'], required: ['vm_id']},
      cpu: {
        attributes: ['affinity', 'architecture', 'cores', 'flags', 'hotplugged', 'limit', 'numa', 'sockets', 'type', 'units'],
        enums: {architecture: ['aarch64', 'x86_64']},
      },
      memory: {attributes: ['dedicated', 'floating', 'hugepages', 'keep_hugepages', 'shared']},
      disk: {
        attributes: [
          'aio', 'backup', 'cache', 'datastore_id', 'discard', 'file_format', 'file_id', 'import_from', 'interface',
          'iothread', 'path_in_datastore', 'queues', 'replicate', 'serial', 'size', 'ssd',
        ],
        required: ['interface'],
        blocks: {
          speed: {attributes: ['iops_read', 'iops_read_burstable', 'iops_write', 'iops_write_burstable', 'read', 'read_burstable', 'write', 'write_burstable']},
        },
        enums: {
          aio: ['io_uring', 'native', 'threads'],
          cache: ['none', 'writethrough', 'writeback', 'unsafe', 'directsync'],
          file_format: ['qcow2', 'raw', 'vmdk'],
        },
        patterns: {interface: /^(ide|sata|scsi|virtio)\d+$/},
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
        attributes: [
          'datastore_id', 'file_format', 'interface', 'meta_data_file_id', 'network_data_file_id', 'type', 'upgrade', 'user_data_file_id',
          'vendor_data_file_id',
        ],
        blocks: {
          dns: {attributes: ['domain', 'servers']},
          ip_config: {attributes: [], blocks: {ipv4: ip, ipv6: ip}},
          user_account: {attributes: ['keys', 'password', 'username']},
        },
        enums: {file_format: ['qcow2', 'raw', 'vmdk'], type: ['configdrive2', 'nocloud']},
        patterns: {interface: /^(ide[0-3]|sata[0-5]|scsi([0-9]|[12][0-9]|30))$/},
        // Documented as conflicting. The provider does not refuse them (it sends ciuser/sshkeys
        // and cicustom), but with cicustom user=... Proxmox ignores the user account.
        conflicts: [['user_account', 'user_data_file_id'], ['ip_config', 'network_data_file_id']],
      },
      amd_sev: OPAQUE, audio_device: OPAQUE, cdrom: OPAQUE, efi_disk: OPAQUE, hostpci: OPAQUE, numa: OPAQUE, rng: OPAQUE,
      smbios: OPAQUE, startup: OPAQUE, tpm_state: OPAQUE, usb: OPAQUE, virtiofs: OPAQUE, watchdog: OPAQUE,
    },
    // ForceNew in vm.go: vm_id and node_name (CustomizeDiff ForceNewIf; node_name only without
    // migrate), every clone argument, the cloud-init file ids and type, amd_sev, disk.file_id.
    // Not ForceNew: template (false -> true converts in place), user_account, disk.import_from.
    forceNew: [
      'vm_id', 'node_name', 'clone', 'amd_sev', 'disk.file_id', 'initialization.type', 'initialization.user_data_file_id',
      'initialization.vendor_data_file_id', 'initialization.network_data_file_id', 'initialization.meta_data_file_id',
    ],
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
        if (!inner || inner.opaque) problems.push(`${where}: unsupported block type "${blockName}" (dynamic)`)
        else for (const def of defs) problems.push(...configProblems(inner, def.content?.[0] ?? {}, `${where}.${blockName}`))
        present.add(blockName)
      }
      continue
    }
    present.add(name)
    const inner = schema.blocks?.[name]
    if (inner?.opaque) problems.push(`${where}.${name}: the block exists in the provider but is not transcribed in bpg-schema.mjs`)
    else if (inner) {
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
    if (inner?.opaque) problems.push(`${where}.${name}: the block is not transcribed in bpg-schema.mjs`)
    else if (inner) {
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

/**
 * The dotted paths (as in `forceNew`) where two evaluated resource bodies differ.
 * @param {unknown} a
 * @param {unknown} b
 * @param {string} [prefix]
 * @returns {string[]}
 */
export function changedPaths(a, b, prefix = '') {
  if (JSON.stringify(a) === JSON.stringify(b)) return []
  const isObj = (x) => x !== null && typeof x === 'object' && !Array.isArray(x)
  // A block list holds one block here: compare its first element's attributes.
  const one = (x) => (isBlockList(x) && x.length === 1 ? x[0] : x)
  const [x, y] = [one(a), one(b)]
  if (!isObj(x) || !isObj(y)) return [prefix]
  return [...new Set([...Object.keys(x), ...Object.keys(y)])].flatMap((k) => changedPaths(x[k], y[k], prefix ? `${prefix}.${k}` : k))
}

/** True when a change at `path` replaces the resource (a forceNew path or one inside it). */
export function forcesNew(schema, path) {
  return (schema.forceNew ?? []).some((f) => path === f || path.startsWith(`${f}.`))
}
