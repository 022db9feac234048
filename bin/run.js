#!/usr/bin/env node
// Entry point. `--version` is answered without loading oclif (the most common scripted call);
// everything else goes through oclif, which reads oclif.manifest.json and loads only the
// command being run (lazy start-up: no SSH or HTTP library for --help).
const argv = process.argv.slice(2)
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) {
  const {readFileSync} = await import('node:fs')
  const {version} = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  process.stdout.write(`autolabs/${version} ${process.platform}-${process.arch} node-${process.version}\n`)
} else {
  const {execute} = await import('@oclif/core')
  await execute({dir: import.meta.url})
}
