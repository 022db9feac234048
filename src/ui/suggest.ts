import {editDistance} from '../config/validate.js'

/**
 * The candidate the user most likely meant, or none: edit distance, where a candidate whose
 * beginning is close also counts (--dri → --dry-run, not --dns). Never the word itself.
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined
  let bestScore = Infinity
  for (const c of candidates) {
    if (c === word) continue
    const score = Math.min(editDistance(word, c), editDistance(word, c.slice(0, word.length)) + 0.5)
    if (score < bestScore) [best, bestScore] = [c, score]
  }
  return bestScore <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined
}
