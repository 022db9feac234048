# snippet mode only: one cloud-init user-data file per VM, rendered by autolabs into
# cloud-init/<role>.user-data.yaml (hostname, the user and its SSH key, the QEMU guest
# agent, the apt proxy). Proxmox has no API to upload snippets, so the provider copies them
# over SSH to the node (see the ssh block in providers.tf).

resource "proxmox_virtual_environment_file" "user_data" {
  for_each = var.cloud_init_mode == "snippet" ? var.vms : {}

  node_name    = var.proxmox_node
  datastore_id = var.snippet_datastore
  content_type = "snippets"

  source_raw {
    data      = file("${path.module}/cloud-init/${each.key}.user-data.yaml")
    file_name = local.snippet_file_names[each.key]
  }
}
