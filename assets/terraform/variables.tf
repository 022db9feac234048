# Every value that varies between installations. autolabs writes them to
# terraform.tfvars.json from autolabs.yaml and .autolabs/secrets.yaml; edit autolabs.yaml
# and re-run autolabs rather than editing the tfvars file by hand.

# --- Proxmox connection -------------------------------------------------------------------

variable "proxmox_endpoint" {
  description = "Proxmox VE API endpoint, e.g. https://pve.example:8006/ (without /api2/json)."
  type        = string

  validation {
    condition     = can(regex("^https://[^/\\s]+(:[0-9]+)?/?$", var.proxmox_endpoint))
    error_message = "proxmox_endpoint must be an https URL like https://pve.example:8006/ (no path)."
  }
}

variable "proxmox_api_token" {
  description = "API token as user@realm!tokenid=secret. Null: the provider reads PROXMOX_VE_API_TOKEN."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.proxmox_api_token == null || can(regex("^[^@!\\s]+@[^@!\\s]+![^=\\s]+=[0-9a-fA-F-]{36}$", var.proxmox_api_token))
    error_message = "proxmox_api_token must look like user@realm!tokenid=xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx."
  }
}

variable "proxmox_username" {
  description = "User for password authentication (user@realm). Null when an API token is used."
  type        = string
  default     = null
}

variable "proxmox_password" {
  description = "Password for proxmox_username. Null when an API token is used."
  type        = string
  default     = null
  sensitive   = true
}

variable "proxmox_insecure" {
  description = "Skip TLS verification of the Proxmox API. Keep false; trust the certificate instead (docs/terraform.md)."
  type        = bool
  default     = false
}

variable "proxmox_ssh_username" {
  description = "Node user for the provider's SSH connection (snippet mode only: uploads the cloud-init snippets)."
  type        = string
  default     = null
}

variable "proxmox_node" {
  description = "Name of the Proxmox node that runs the template and the VMs."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$", var.proxmox_node))
    error_message = "proxmox_node must be a Proxmox node name such as pve."
  }
}

# --- Storage and network on the host -------------------------------------------------------

variable "vm_datastore" {
  description = "Storage for the VM disks and cloud-init drives (content type images), e.g. local-lvm."
  type        = string
}

variable "image_datastore" {
  description = "File-based storage with the import content type, where the cloud image is downloaded, e.g. local."
  type        = string
}

variable "snippet_datastore" {
  description = "File-based storage with the snippets content type (snippet mode only), e.g. local."
  type        = string
  default     = "local"
}

variable "bridge" {
  description = "Linux bridge the VMs are attached to, e.g. vmbr0."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$", var.bridge))
    error_message = "bridge must be a Linux bridge name such as vmbr0."
  }
}

variable "network" {
  description = "The VM network: prefix length of the subnet, gateway, DNS servers and an optional search domain."
  type = object({
    prefix_length = number
    gateway       = string
    dns_servers   = list(string)
    search_domain = optional(string)
  })

  validation {
    condition     = var.network.prefix_length >= 8 && var.network.prefix_length <= 30
    error_message = "network.prefix_length must be between 8 and 30."
  }

  validation {
    condition     = can(cidrhost("${var.network.gateway}/32", 0))
    error_message = "network.gateway must be an IPv4 address."
  }

  validation {
    condition     = length(var.network.dns_servers) >= 1 && length(var.network.dns_servers) <= 3 && alltrue([for s in var.network.dns_servers : can(cidrhost("${s}/32", 0))])
    error_message = "network.dns_servers must hold 1 to 3 IPv4 addresses."
  }
}

# --- The environment -----------------------------------------------------------------------

variable "environment_name" {
  description = "Name of this AutoLabs environment (autolabs.yaml name); used in tags and descriptions."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.environment_name))
    error_message = "environment_name must be a DNS label (lowercase letters, digits, -)."
  }
}

variable "image" {
  description = "The cloud image: URL, file name in image_datastore (.qcow2, as import needs), published checksum and its algorithm."
  type = object({
    url                = string
    file_name          = string
    checksum           = optional(string)
    checksum_algorithm = optional(string, "sha256")
  })

  validation {
    condition     = can(regex("^https?://", var.image.url))
    error_message = "image.url must be an http(s) URL."
  }

  validation {
    condition     = can(regex("\\.(qcow2|raw|vmdk)$", var.image.file_name))
    error_message = "image.file_name must end in .qcow2, .raw or .vmdk (Proxmox's import content type requires it)."
  }

  validation {
    condition     = var.image.checksum == null || can(regex("^([0-9a-f]{64}|[0-9a-f]{128})$", var.image.checksum))
    error_message = "image.checksum must be a lowercase hex SHA-256 or SHA-512."
  }

  validation {
    condition     = contains(["sha256", "sha512"], var.image.checksum_algorithm)
    error_message = "image.checksum_algorithm must be sha256 or sha512."
  }
}

variable "template" {
  description = "The template VM every VM is cloned from: VMID and name."
  type = object({
    vm_id = number
    name  = string
  })

  validation {
    condition     = var.template.vm_id >= 100 && var.template.vm_id <= 999999999
    error_message = "template.vm_id must be between 100 and 999999999."
  }
}

variable "vm_user" {
  description = "Login user created on every VM (the cloud image's default user, e.g. ubuntu or debian)."
  type        = string

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.vm_user))
    error_message = "vm_user must be a Linux user name."
  }
}

variable "ssh_public_keys" {
  description = "SSH public keys installed for vm_user. Password login stays disabled."
  type        = list(string)

  validation {
    condition     = length(var.ssh_public_keys) >= 1 && alltrue([for k in var.ssh_public_keys : can(regex("^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh.com) [A-Za-z0-9+/=]+", k))])
    error_message = "ssh_public_keys must hold at least one OpenSSH public key (set ssh.publicKeyFile in autolabs.yaml)."
  }
}

variable "vms" {
  description = "The three VMs by role (gitlab, database, k8s): name, VMID, cores, memory (MiB), disk (GiB) and IPv4 address."
  type = map(object({
    name       = string
    vm_id      = number
    cores      = number
    memory_mib = number
    disk_gib   = number
    ip         = string
  }))

  validation {
    condition     = length(var.vms) == 3 && alltrue([for role in ["gitlab", "database", "k8s"] : contains(keys(var.vms), role)])
    error_message = "vms must have exactly the keys gitlab, database and k8s."
  }

  validation {
    condition     = alltrue([for vm in values(var.vms) : vm.vm_id >= 100 && vm.vm_id <= 999999999]) && length(distinct([for vm in values(var.vms) : vm.vm_id])) == 3
    error_message = "vms.*.vm_id must be distinct numbers between 100 and 999999999."
  }

  validation {
    condition     = alltrue([for vm in values(var.vms) : vm.cores >= 1 && vm.memory_mib >= 512 && vm.disk_gib >= 10])
    error_message = "Every VM needs at least 1 core, 512 MiB of memory and a 10 GiB disk."
  }

  validation {
    condition     = alltrue([for vm in values(var.vms) : can(cidrhost("${vm.ip}/32", 0))]) && length(distinct([for vm in values(var.vms) : vm.ip])) == 3
    error_message = "vms.*.ip must be three distinct IPv4 addresses."
  }
}

# --- Behaviour -----------------------------------------------------------------------------

variable "cloud_init_mode" {
  description = "builtin: Proxmox's own cloud-init (user, keys, network; API token only). snippet: also a user-data snippet per VM (guest agent, apt proxy at first boot; needs SSH to the node)."
  type        = string
  default     = "builtin"

  validation {
    condition     = contains(["builtin", "snippet"], var.cloud_init_mode)
    error_message = "cloud_init_mode must be builtin or snippet."
  }
}

variable "clone_retries" {
  description = "Attempts the provider makes at sending each clone request (bpg re-sends a request that failed with HTTP 5xx or a lock timeout, never a clone task that failed). Changing it replaces the VMs: every clone argument forces a new VM."
  type        = number
  default     = 3

  validation {
    condition     = var.clone_retries >= 1 && var.clone_retries <= 10
    error_message = "clone_retries must be between 1 and 10."
  }
}

variable "cpu_type" {
  description = "Emulated CPU type of the VMs. x86-64-v2-AES runs on any recent host and allows live migration."
  type        = string
  default     = "x86-64-v2-AES"
}
