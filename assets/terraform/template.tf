# Stage 1 of the design document, through the API only: Proxmox downloads the cloud image
# itself (checksum verified) into the import storage, and a template VM is built from it.

resource "proxmox_download_file" "cloud_image" {
  node_name    = var.proxmox_node
  datastore_id = var.image_datastore
  content_type = "import"
  url          = var.image.url
  # Saved as .qcow2: the import content type only accepts .qcow2/.raw/.vmdk names.
  file_name          = var.image.file_name
  checksum           = var.image.checksum
  checksum_algorithm = var.image.checksum == null ? null : var.image.checksum_algorithm
  # The image is pinned by its dated URL and checksum; never replace it because the file's
  # size on the server changed. A new image is a new url + checksum (`autolabs image update`).
  overwrite      = false
  upload_timeout = 1800
}

resource "proxmox_virtual_environment_vm" "template" {
  node_name   = var.proxmox_node
  vm_id       = var.template.vm_id
  name        = var.template.name
  description = "Cloud-init template for the ${var.environment_name} AutoLabs environment. Managed by Terraform (autolabs)."
  tags        = local.tags["template"]

  template = true
  started  = false
  on_boot  = false

  # The provider imports the disk only when it creates the VM ("import_from: changes after
  # creation are ignored"): without this a new image would be downloaded and never used, and
  # new VMs would still be cloned from the old disk. The VMs are full clones and reference the
  # template only by its fixed VMID, so rebuilding the template leaves them as they are.
  lifecycle {
    replace_triggered_by = [proxmox_download_file.cloud_image]
  }

  operating_system {
    type = "l26"
  }

  cpu {
    cores = 2
    type  = var.cpu_type
  }

  memory {
    dedicated = 2048
  }

  # The guest agent's device exists from the start; the agent itself is installed by
  # cloud-init (snippet mode) or by the deployment's base stage (builtin mode).
  agent {
    enabled = true
    timeout = local.guest_agent_timeout

    wait_for_ip {
      disabled = true
    }
  }

  scsi_hardware = "virtio-scsi-single"

  disk {
    datastore_id = var.vm_datastore
    import_from  = proxmox_download_file.cloud_image.id
    interface    = "scsi0"
    iothread     = true
    discard      = "on"
    size         = 10
  }

  network_device {
    bridge = var.bridge
    model  = "virtio"
  }

  # Cloud images log to the serial console.
  serial_device {}

  vga {
    type = "serial0"
  }
}
