/**
 * Test doubles for SeaweedFS, which cannot run here (its release cannot be downloaded).
 * Both copy upstream behaviour at the version autolabs pins (4.44, commit
 * 3563738699f29fd1c9efde6fcbf4ba253439cac8 of github.com/seaweedfs/seaweedfs; re-read against
 * that tag when the pin moved from 3.97):
 *
 * - `startFakeS3`: the S3 gateway's bucket calls, authenticated as `weed s3 -s3.config` does.
 *   weed/s3api/auth_signature_v4.go — AWS Signature V4 in the Authorization header, the signing
 *     key from the request's own credential scope (date/region/service), the secret looked up
 *     by access key among the identities of the s3.json config (weed/s3api/auth_credentials.go;
 *     the identities/credentials/actions JSON is weed/pb/iam.proto's S3ApiConfiguration, whose
 *     Identity and Credential fields 3.97 had are unchanged; a credential without `status` is
 *     active); an anonymous request is AccessDenied (authTypeAnonymous, no anonymous identity);
 *   weed/s3api/s3api_server.go — `HEAD /{bucket}` (HeadBucketHandler), `PUT /{bucket}`
 *     (PutBucketHandler, behind iam.Auth with ACTION_ADMIN), `GET /` (ListBucketsHandler, behind
 *     iam.Auth with ACTION_LIST since 4.x; 3.97 served it unauthenticated);
 *   weed/s3api/s3api_bucket_handlers.go — HEAD: 200 empty, or 404 NoSuchBucket; PUT: 200 empty,
 *     the creator recorded as the bucket's owner (setBucketOwner); on an existing bucket
 *     (existingBucketError, new since 3.97, which answered BucketAlreadyExists to everyone):
 *     409 BucketAlreadyOwnedByYou to its owner or for an unowned bucket, 409 BucketAlreadyExists
 *     when another identity owns it; GET /: ListAllMyBucketsResult (s3api_xsd_generated.go: the
 *     2006-03-01 namespace, Owner ID and DisplayName = the identity's name);
 *   weed/s3api/s3err/s3api_errors.go + error_handler.go — errors as XML <Error><Code>… (Code,
 *     Message, Resource, RequestId, BucketName when there is one): 403 InvalidAccessKeyId
 *     (unknown key), 403 SignatureDoesNotMatch, 403 AccessDenied (no Admin action for PUT, or an
 *     anonymous request), 404 NoSuchBucket, 409 BucketAlreadyExists / BucketAlreadyOwnedByYou.
 * - `FAKE_WEED`: `weed shell` with stdin and stdout piped, as 4.44 runs it
 *   (weed/shell/shell_liner.go): not a terminal, so no liner and no prompt (since upstream
 *   #8990, commit 7f3908297; 3.97 printed "master: <masters> " and a "> " prompt before each
 *   answer), a bufio.Scanner reading one command per line; nothing else on stdout ("master: …"
 *   lines only with -debug, on stderr: not modelled). `s3.bucket.list` prints "  <name>\tsize:<n>\tlogical:<n>\tchunk:<n>" and a
 *   newline per bucket (weed/shell/command_s3_bucket_list.go; "logical" is new since 3.97; an
 *   owner column follows for buckets with an owner, which these have not); `s3.bucket.create
 *   -name X` creates X. Buckets are directories under $FAKE_WEED_DIR.
 */
import {createHash, createHmac, timingSafeEqual} from 'node:crypto'
import http from 'node:http'
import type {AddressInfo} from 'node:net'

export interface S3Identity {
  name: string
  credentials: Array<{accessKey: string; secretKey: string}>
  actions: string[]
}

export interface FakeS3 {
  port: number
  buckets: Set<string>
  /** bucket → the identity that created it (buckets added to `buckets` directly have none). */
  owners: Map<string, string>
  /** "METHOD /path STATUS [Code]" per request, in order. */
  log: string[]
  stop(): Promise<void>
}

const ERRORS = {
  AccessDenied: [403, 'Access Denied.'],
  InvalidAccessKeyId: [403, 'The access key ID you provided does not exist in our records.'],
  SignatureDoesNotMatch: [403, 'The request signature we calculated does not match the signature you provided. Check your key and signing method.'],
  NoSuchBucket: [404, 'The specified bucket does not exist'],
  BucketAlreadyExists: [409, 'The requested bucket name is not available. The bucket name can not be an existing collection, and the bucket namespace is shared by all users of the system. Please select a different name and try again.'],
  BucketAlreadyOwnedByYou: [409, 'Your previous request to create the named bucket succeeded and you already own it.'],
} as const
type ErrorCode = keyof typeof ERRORS

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex')
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest()

/** AWS SigV4 URI encoding (RFC 3986 unreserved characters kept). */
function uriEncode(s: string, slash: boolean): string {
  return [...Buffer.from(s, 'utf8')]
    .map((b) => {
      const c = String.fromCharCode(b)
      if (/[A-Za-z0-9\-._~]/.test(c) || (c === '/' && !slash)) return c
      return `%${b.toString(16).toUpperCase().padStart(2, '0')}`
    })
    .join('')
}

/** Verifies a SigV4 Authorization header; returns the identity or the S3 error code. */
function authenticate(req: http.IncomingMessage, body: Buffer, identities: S3Identity[]): S3Identity | ErrorCode {
  const auth = req.headers.authorization
  if (!auth) return 'AccessDenied'
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(auth)
  if (!m) return 'AccessDenied'
  const [, accessKey, date, region, service, signedHeaders, signature] = m
  const identity = identities.find((i) => i.credentials.some((c) => c.accessKey === accessKey))
  if (!identity) return 'InvalidAccessKeyId'
  const secret = identity.credentials.find((c) => c.accessKey === accessKey)!.secretKey
  const url = new URL(req.url ?? '/', 'http://x')
  const query = [...url.searchParams.entries()]
    .map(([k, v]) => [uriEncode(k, true), uriEncode(v, true)])
    .sort(([a, av], [b, bv]) => (a === b ? (av < bv ? -1 : 1) : a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join('&')
  const names = signedHeaders.split(';')
  const headers = names.map((h) => `${h}:${String(req.headers[h] ?? '').trim().replaceAll(/\s+/g, ' ')}\n`).join('')
  const payload = (req.headers['x-amz-content-sha256'] as string | undefined) ?? sha256(body)
  const canonical = [req.method, uriEncode(decodeURIComponent(url.pathname), false), query, headers, signedHeaders, payload].join('\n')
  const amzDate = String(req.headers['x-amz-date'] ?? '')
  const toSign = ['AWS4-HMAC-SHA256', amzDate, `${date}/${region}/${service}/aws4_request`, sha256(canonical)].join('\n')
  const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request')
  const want = createHmac('sha256', key).update(toSign).digest()
  if (!timingSafeEqual(want, Buffer.from(signature, 'hex'))) return 'SignatureDoesNotMatch'
  return identity
}

function xmlError(res: http.ServerResponse, code: ErrorCode, resource: string, bucket: string, head: boolean) {
  const [status, message] = ERRORS[code]
  res.writeHead(status, {'Content-Type': 'application/xml'})
  // A HEAD answer has no body (Go's net/http drops it); the status says it all.
  res.end(
    head
      ? undefined
      : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><Resource>${resource}</Resource><RequestId>${Date.now()}</RequestId>${bucket ? `<BucketName>${bucket}</BucketName>` : ''}</Error>`,
  )
}

/** An S3 endpoint on 127.0.0.1 with the identities of an s3.json ({"identities": [...]}) config. */
export async function startFakeS3(config: {identities: S3Identity[]}, buckets: string[] = []): Promise<FakeS3> {
  const state = new Set(buckets)
  const owners = new Map<string, string>()
  const log: string[] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      const url = new URL(req.url ?? '/', 'http://x')
      const bucket = decodeURIComponent(url.pathname.replace(/^\/+/, '').split('/')[0] ?? '')
      const head = req.method === 'HEAD'
      const fail = (code: ErrorCode) => {
        log.push(`${req.method} ${url.pathname} ${ERRORS[code][0]} ${code}`)
        xmlError(res, code, url.pathname, bucket, head)
      }
      const ok = (status = 200, text?: string) => {
        log.push(`${req.method} ${url.pathname} ${status}`)
        res.writeHead(status, text ? {'Content-Type': 'application/xml'} : {})
        res.end(text)
      }
      const who = authenticate(req, body, config.identities)
      if (typeof who === 'string') return fail(who)
      if (req.method === 'GET' && bucket === '') {
        const list = [...state]
          .sort()
          .map((b) => `<Bucket><Name>${b}</Name><CreationDate>2026-01-01T00:00:00Z</CreationDate></Bucket>`)
          .join('')
        return ok(
          200,
          `<?xml version="1.0" encoding="UTF-8"?>\n<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>${who.name}</ID><DisplayName>${who.name}</DisplayName></Owner><Buckets>${list}</Buckets></ListAllMyBucketsResult>`,
        )
      }
      if (head && bucket) return state.has(bucket) ? ok() : fail('NoSuchBucket')
      if (req.method === 'PUT' && bucket) {
        if (!who.actions.includes('Admin')) return fail('AccessDenied')
        if (state.has(bucket)) {
          const owner = owners.get(bucket)
          return fail(owner !== undefined && owner !== who.name ? 'BucketAlreadyExists' : 'BucketAlreadyOwnedByYou')
        }
        state.add(bucket)
        owners.set(bucket, who.name)
        return ok()
      }
      return fail('AccessDenied')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  return {
    port: (server.address() as AddressInfo).port,
    buckets: state,
    owners,
    log,
    stop: () => new Promise((r) => server.close(() => r())),
  }
}

/** `weed` whose `shell` answers through a piped stdin/stdout as upstream's does (see the header). */
export const FAKE_WEED = `#!/usr/bin/env bash
set -u
dir=\${FAKE_WEED_DIR:?}
[[ \${1:-} == shell ]] || { echo "fake weed: only 'shell'" >&2; exit 2; }
while IFS= read -r line; do
  set -- $line
  case \${1:-} in
    s3.bucket.list) for b in "$dir"/*/; do [[ -d $b ]] && printf '  %s\\tsize:0\\tlogical:0\\tchunk:0\\n' "$(basename "$b")"; done ;;
    s3.bucket.create) [[ \${2:-} == -name ]] && mkdir -p "$dir/$3" ;;
    exit | quit) exit 0 ;;
    '') ;;
    *) printf 'unknown command: %s\\n' "$1" >&2 ;;
  esac
done
exit 0
`
