/**
 * The environment of every child process autolabs starts, built from an allow-list: a child
 * gets what it needs to run and its own settings, never autolabs' (AUTOLABS_* holds the
 * administrator's token secret or password). The tests run fake executables that record it.
 */
/**
 * What Terraform inherits from autolabs' environment: what it needs to run (PATH, HOME for
 * ~/.terraformrc and the plugin cache, locale, temp dir), its own settings (TF_*, but not
 * TF_VAR_*: the values come from the tfvars file), the provider's (PROXMOX_VE_*), proxies and
 * CA bundles for the registry, and Windows' essentials. Nothing else: never AUTOLABS_* (the
 * administrator's token secret or password). Names listed in AUTOLABS_TERRAFORM_PASS_ENV
 * (comma-separated) are passed too, AUTOLABS_* excepted.
 */
const TERRAFORM_ENV = /^(PATH|HOME|USER|LOGNAME|SHELL|TMPDIR|TMP|TEMP|LANG|LANGUAGE|LC_[A-Z]+|TZ|TF_(?!VAR_)[A-Z0-9_]+|PROXMOX_VE_[A-Z0-9_]+|HTTPS?_PROXY|https?_proxy|NO_PROXY|no_proxy|SSL_CERT_FILE|SSL_CERT_DIR|SYSTEMROOT|SystemRoot|APPDATA|LOCALAPPDATA|USERPROFILE|PATHEXT|COMSPEC|ComSpec)$/

export function terraformEnv(parent: NodeJS.ProcessEnv, extra: Record<string, string> = {}): Record<string, string> {
  const pass = new Set((parent.AUTOLABS_TERRAFORM_PASS_ENV ?? '').split(',').map((s) => s.trim()).filter(Boolean))
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(parent)) {
    if (v === undefined || k.startsWith('AUTOLABS_')) continue
    if (TERRAFORM_ENV.test(k) || pass.has(k)) env[k] = v
  }
  return {...env, TF_IN_AUTOMATION: '1', TF_INPUT: '0', CHECKPOINT_DISABLE: '1', ...extra}
}

/** A tool that needs nothing of ours (zstd): the path, the locale and the temp dir. */
export function toolEnv(parent: NodeJS.ProcessEnv): Record<string, string> {
  const env: Record<string, string> = {}
  for (const k of ['PATH', 'LANG', 'LC_ALL', 'TMPDIR', 'SYSTEMROOT']) if (parent[k] !== undefined) env[k] = parent[k]!
  return env
}
