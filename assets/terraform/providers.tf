# Terraform and the bpg/proxmox provider (https://registry.terraform.io/providers/bpg/proxmox).
# Written by autolabs; safe to read, commit and apply by hand:
#   terraform init && terraform plan -out=autolabs.tfplan && terraform apply autolabs.tfplan
# No secret lives in any .tf file: values come from terraform.tfvars.json (mode 0600, never
# committed) or from the environment (TF_VAR_proxmox_api_token, or the provider's own
# PROXMOX_VE_API_TOKEN when proxmox_api_token is null).

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    proxmox = {
      source  = "bpg/proxmox"
      version = "~> 0.111.0"
    }
  }
}

provider "proxmox" {
  endpoint = var.proxmox_endpoint

  # An API token (the default; autolabs creates a least-privilege one) or user + password.
  # A null value means "not set here": the provider then reads PROXMOX_VE_API_TOKEN,
  # PROXMOX_VE_USERNAME and PROXMOX_VE_PASSWORD from the environment.
  api_token = var.proxmox_api_token
  username  = var.proxmox_username
  password  = var.proxmox_password

  # TLS is verified. Proxmox's self-signed certificate is trusted by giving its CA (or the
  # pinned certificate itself) to the provider through SSL_CERT_FILE; see docs/terraform.md.
  # Setting proxmox_insecure = true turns verification off: an explicit, visible opt-in only.
  insecure = var.proxmox_insecure

  # Only used in cloud-init "snippet" mode: snippets can only be uploaded over SSH to the
  # node (the API has no upload for them). Keys come from your ssh-agent (SSH_AUTH_SOCK).
  # builtin mode never opens an SSH connection, so it needs no agent.
  ssh {
    agent    = var.cloud_init_mode == "snippet"
    username = var.proxmox_ssh_username
  }
}
