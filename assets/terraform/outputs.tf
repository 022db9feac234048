# Read by autolabs with `terraform output -json`; `terraform output` shows them to people.

output "vms" {
  description = "Every VM by role: name, VMID, IPv4 address and node."
  value = {
    gitlab = {
      name = proxmox_virtual_environment_vm.gitlab.name
      vmid = proxmox_virtual_environment_vm.gitlab.vm_id
      ip   = var.vms["gitlab"].ip
      node = proxmox_virtual_environment_vm.gitlab.node_name
    }
    database = {
      name = proxmox_virtual_environment_vm.database.name
      vmid = proxmox_virtual_environment_vm.database.vm_id
      ip   = var.vms["database"].ip
      node = proxmox_virtual_environment_vm.database.node_name
    }
    k8s = {
      name = proxmox_virtual_environment_vm.k8s.name
      vmid = proxmox_virtual_environment_vm.k8s.vm_id
      ip   = var.vms["k8s"].ip
      node = proxmox_virtual_environment_vm.k8s.node_name
    }
  }
}

output "gitlab_vm" {
  description = "gitlab-vm: name, VMID and IPv4 address."
  value = {
    name = proxmox_virtual_environment_vm.gitlab.name
    vmid = proxmox_virtual_environment_vm.gitlab.vm_id
    ip   = var.vms["gitlab"].ip
  }
}

output "database_vm" {
  description = "database-vm: name, VMID and IPv4 address."
  value = {
    name = proxmox_virtual_environment_vm.database.name
    vmid = proxmox_virtual_environment_vm.database.vm_id
    ip   = var.vms["database"].ip
  }
}

output "k8s_vm" {
  description = "k8s-vm: name, VMID and IPv4 address."
  value = {
    name = proxmox_virtual_environment_vm.k8s.name
    vmid = proxmox_virtual_environment_vm.k8s.vm_id
    ip   = var.vms["k8s"].ip
  }
}

output "template_vmid" {
  description = "VMID of the cloud-init template the VMs are cloned from."
  value       = proxmox_virtual_environment_vm.template.vm_id
}
