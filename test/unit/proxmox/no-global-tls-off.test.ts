import {readdir, readFile} from 'node:fs/promises'
import path from 'node:path'
import {expect, it} from 'vitest'

const SRC = path.resolve(import.meta.dirname, '../../../src')

async function files(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, {withFileTypes: true})) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) out.push(...(await files(p)))
    else if (/\.(ts|js|mjs)$/.test(e.name)) out.push(p)
  }
  return out
}

it('never switches TLS verification off process-wide, and the Proxmox client relaxes it only in tls.ts', async () => {
  const offenders: string[] = []
  for (const f of await files(SRC)) {
    const text = await readFile(f, 'utf8')
    if (/process\.env\.NODE_TLS_REJECT_UNAUTHORIZED\s*=|NODE_TLS_REJECT_UNAUTHORIZED['"]?\s*[:=]/.test(text)) offenders.push(`${f}: sets NODE_TLS_REJECT_UNAUTHORIZED`)
    // In the Proxmox client only the pinning/insecure dispatcher may relax chain verification.
    const inProxmox = f.includes(`${path.sep}proxmox${path.sep}`)
    if (inProxmox && /rejectUnauthorized:\s*false/.test(text) && !f.endsWith(path.join('proxmox', 'tls.ts'))) offenders.push(`${f}: rejectUnauthorized: false`)
  }
  expect(offenders).toEqual([])
})
