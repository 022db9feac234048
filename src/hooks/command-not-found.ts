import type {Hook} from '@oclif/core'

import {closest} from '../ui/suggest.js'
import {ExitCode} from '../errors.js'
import {reportError} from '../ui/output.js'

/**
 * `autolabs stauts`, `autolabs backup nwo`: an unknown command, in autolabs' own error format
 * (and --json shape), with the command meant. Not @oclif/plugin-not-found: that one asks
 * "run it instead?" on a terminal and prints oclif's format, exit 127.
 */
const hook: Hook<'command_not_found'> = async function (opts) {
  const spaced = (id: string) => id.replaceAll(':', ' ')
  const typed = spaced(opts.id)
  const ids = opts.config.commandIDs.map(spaced)
  // `status extra`: a command followed by an argument it does not take.
  const command = ids.filter((id) => typed.startsWith(`${id} `)).sort((a, b) => b.length - a.length)[0]
  const guess = command ? undefined : closest(typed, ids)
  reportError(
    {
      name: 'UsageError',
      message: command ? `\`autolabs ${command}\` takes no argument "${typed.slice(command.length + 1)}".` : `Unknown command "autolabs ${typed}".`,
      suggestion: command
        ? `See \`autolabs ${command} --help\`.`
        : `${guess ? `Did you mean \`autolabs ${guess}\`? ` : ''}Run \`autolabs help\` for the list of commands.`,
      exitCode: ExitCode.usage,
    },
    {json: (opts.argv ?? []).includes('--json')},
  )
  process.exitCode = ExitCode.usage
}

export default hook
