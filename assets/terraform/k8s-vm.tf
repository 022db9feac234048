# k8s-vm: single-node Kubernetes (containerd, Calico, NGINX Ingress Controller)

resource "proxmox_virtual_environment_vm" "k8s" {
  node_name   = var.proxmox_node
  vm_id       = var.vms["k8s"].vm_id
  name        = var.vms["k8s"].name
  description = "k8s-vm: single-node Kubernetes (containerd, Calico, NGINX Ingress Controller). Managed by Terraform (autolabs, environment ${var.environment_name})."
  tags        = local.tags["k8s"]

  # One clone at a time: Proxmox clones a stopped template under a shared lock, but each full
  # clone allocates on (and copies into) the same storage, whose lock then times out inside the
  # clone task ("can't lock file ... got timeout"). clone.retries cannot help there: the provider
  # re-sends a clone REQUEST that failed (HTTP 5xx, "got timeout"), never a clone TASK that
  # failed. The chain avoids the contention. The snippet (snippet mode) must exist first.
  depends_on = [proxmox_virtual_environment_vm.database, proxmox_virtual_environment_file.user_data]

  clone {
    vm_id   = proxmox_virtual_environment_vm.template.vm_id
    full    = true
    retries = var.clone_retries
  }

  started = true
  on_boot = true
  # Without a running guest agent a shutdown request can hang; destroy stops the VM instead.
  stop_on_destroy = true

  agent {
    enabled = true
    timeout = local.guest_agent_timeout

    # autolabs takes the addresses from the variables, never from the agent: without this the
    # provider waits for the agent's IP on every refresh (and warns until it is installed).
    wait_for_ip {
      disabled = true
    }
  }

  # Stated again although the template has them: what a clone leaves out is compared with the
  # provider's defaults (scsi_hardware would drift to virtio-scsi-pci on the next apply).
  operating_system {
    type = "l26"
  }

  scsi_hardware = "virtio-scsi-single"

  cpu {
    cores = var.vms["k8s"].cores
    type  = var.cpu_type
  }

  memory {
    dedicated = var.vms["k8s"].memory_mib
  }

  disk {
    datastore_id = var.vm_datastore
    interface    = "scsi0"
    iothread     = true
    discard      = "on"
    size         = var.vms["k8s"].disk_gib
  }

  network_device {
    bridge = var.bridge
    model  = "virtio"
  }

  serial_device {}

  vga {
    type = "serial0"
  }

  initialization {
    datastore_id = var.vm_datastore

    ip_config {
      ipv4 {
        address = "${var.vms["k8s"].ip}/${var.network.prefix_length}"
        gateway = var.network.gateway
      }
    }

    dns {
      servers = var.network.dns_servers
      domain  = var.network.search_domain
    }

    # builtin mode: Proxmox's cloud-init creates the user with the keys. snippet mode: the
    # user-data snippet does. Never both: the provider documents them as conflicting (it does
    # not refuse them, but with cicustom user=... Proxmox ignores the user account).
    dynamic "user_account" {
      for_each = var.cloud_init_mode == "builtin" ? [var.vm_user] : []
      content {
        username = user_account.value
        keys     = var.ssh_public_keys
      }
    }

    user_data_file_id = lookup(local.user_data_file_ids, "k8s", null)
  }
}
