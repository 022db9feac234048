import {CommandHelp, Help} from '@oclif/core'

/**
 * oclif's help re-wraps a description as one paragraph and trims every line, so an indented
 * list (backup now's parts, backup restore's forms) loses its columns. Here each line wraps on
 * its own and keeps its indentation, continued lines included.
 */
class ListKeepingCommandHelp extends CommandHelp {
  protected override description(): string | undefined {
    const cmd = this.command
    if (!cmd.description) return undefined
    const text = [...(cmd.summary ? [cmd.summary, ''] : []), ...cmd.description.split('\n')]
    return text
      .flatMap((line) => {
        const indent = /^ */.exec(line)![0]
        return this.wrap(line.trimStart(), this.indentSpacing + indent.length)
          .split('\n')
          .map((l) => (l === '' ? '' : indent + l))
      })
      .join('\n')
  }
}

export default class AutolabsHelp extends Help {
  protected override CommandHelpClass = ListKeepingCommandHelp
}
