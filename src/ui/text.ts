/**
 * Text that fits a terminal without cutting anything: lines are wrapped at spaces, never
 * truncated, so the cause at the end of a long message is still on the screen.
 */

/** Words of `text` in lines of at most `width` (a longer word, like a URL, keeps a line of its own). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else line = line ? `${line} ${word}` : word
  }
  return [...lines, line]
}

/** `text` after `first`, continued on lines indented by `indent` spaces, within `width`. */
export function hang(first: string, text: string, indent: number, width: number): string {
  return wrap(text, Math.max(20, width - Math.max(first.length, indent)))
    .map((l, i) => (i === 0 ? first : ' '.repeat(indent)) + l)
    .join('\n')
}

/** The terminal's width for `stream`, or undefined when it is not a terminal (a pipe, a file: no wrapping). */
export function terminalWidth(stream: NodeJS.WriteStream = process.stdout): number | undefined {
  return stream.isTTY ? stream.columns || 80 : undefined
}
