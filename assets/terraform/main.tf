# Values derived once from the variables, shared by the template and the three VMs.

locals {
  # How long the provider waits for an answer from the QEMU guest agent (the wait for its IP
  # addresses is off: agent.wait_for_ip). snippet mode starts the agent at first boot; builtin
  # mode installs it later (the base stage), so a request there must fail fast.
  guest_agent_timeout = var.cloud_init_mode == "snippet" ? "5m" : "15s"

  # The user-data snippet per VM role (snippet mode only; see cloud-init.tf), named here so that
  # the VMs can state its volume id themselves. Referencing the file resource's id instead makes
  # that id unknown whenever the snippet changes (the file is replaced), and user_data_file_id
  # forces a new VM: all three VMs would be destroyed for a new apt proxy. cloud-init reads
  # user-data at first boot only, so a changed snippet is for VMs created later; existing VMs
  # keep theirs, as in builtin mode.
  snippet_file_names = {
    for role, vm in var.vms : role => "${var.environment_name}-${vm.name}-user-data.yaml"
  }
  user_data_file_ids = var.cloud_init_mode == "snippet" ? {
    for role, name in local.snippet_file_names : role => "${var.snippet_datastore}:snippets/${name}"
  } : {}

  # Proxmox stores tags sorted and unique; giving them that way avoids a diff on every plan.
  tags = {
    for role in ["template", "gitlab", "database", "k8s"] :
    role => sort(distinct(["autolabs", var.environment_name, role]))
  }
}
