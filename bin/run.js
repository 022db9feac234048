#!/usr/bin/env node
// Entry point. The two most common calls are answered without loading oclif (~130 ms of
// module loading on Node 20): `--version`, and the root `--help`, whose text the build renders
// once with oclif into dist/root-help.txt (a pure function of the command manifest).
// Everything else goes through oclif, which reads oclif.manifest.json and loads only the
// command being run (lazy start-up: no SSH or HTTP library for --help).
const argv = process.argv.slice(2)
const one = argv.length === 1 ? argv[0] : undefined
const fast = !process.env.AUTOLABS_NO_HELP_CACHE
if (fast && (one === '--version' || one === '-v')) {
  const {readFileSync} = await import('node:fs')
  const {version} = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  process.stdout.write(`autolabs/${version} ${process.platform}-${process.arch} node-${process.version}\n`)
} else if (fast && (one === '--help' || one === '-h') && (await printCachedHelp())) {
  // printed
} else {
  const {execute} = await import('@oclif/core')
  await execute({dir: import.meta.url})
}

async function printCachedHelp() {
  const {readFileSync} = await import('node:fs')
  try {
    const text = readFileSync(new URL('../dist/root-help.txt', import.meta.url), 'utf8')
    // The VERSION line names the platform and Node.js this process runs on, not the builder's.
    const {version} = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
    process.stdout.write(text.replace(/^(\s*)autolabs\/\S+ \S+ node-\S+$/m, `$1autolabs/${version} ${process.platform}-${process.arch} node-${process.version}`))
    return true
  } catch {
    return false
  }
}
