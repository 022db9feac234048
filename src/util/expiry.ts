/** A certificate's remaining life, as `preflight` and `status` report it. */

/** Both warn when GitLab's certificate ends within this many days. */
export const CERT_WARN_DAYS = 30

/** `end` as YYYY-MM-DD, whole `days` left (negative once it has ended), and `left` in words. */
export function certificateLife(notAfter: Date, now: Date): {end: string; days: number; left: string} {
  const days = Math.floor((notAfter.getTime() - now.getTime()) / 86_400_000)
  return {end: notAfter.toISOString().slice(0, 10), days, left: `${days} day${days === 1 ? '' : 's'}`}
}
