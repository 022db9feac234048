import {UsageError} from '../errors.js'

/** A certificate's SHA-256 fingerprint as 32 uppercase hex pairs joined by ":" (any input spelling). */
export function normalizeFingerprint(fp: string): string {
  const hex = fp.replace(/[^0-9a-fA-F]/g, '').toUpperCase()
  if (hex.length !== 64) throw new UsageError(`"${fp}" is not a SHA-256 fingerprint (64 hex digits, usually shown as 32 pairs separated by ":").`)
  return hex.match(/../g)!.join(':')
}
