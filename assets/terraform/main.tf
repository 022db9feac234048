# Values derived once from the variables, shared by the template and the three VMs.

locals {
  # How long the provider waits for the QEMU guest agent to report the VM's addresses.
  # snippet mode installs and starts the agent at first boot, so waiting is meaningful;
  # builtin mode installs it later (the deployment's base stage), so the provider must not
  # sit in a 15-minute default wait for an agent that cannot answer yet.
  guest_agent_timeout = var.cloud_init_mode == "snippet" ? "5m" : "15s"

  # The user-data snippet per VM role (snippet mode only; see cloud-init.tf).
  user_data_file_ids = {
    for role, file in proxmox_virtual_environment_file.user_data : role => file.id
  }

  # Proxmox stores tags sorted and unique; giving them that way avoids a diff on every plan.
  tags = {
    for role in ["template", "gitlab", "database", "k8s"] :
    role => sort(distinct(["autolabs", var.environment_name, role]))
  }
}
