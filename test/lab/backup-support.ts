/**
 * Lab machine set-up shared by test/lab/backup-status.test.ts and bench/backup.ts, bench/status.ts:
 * PostgreSQL 15 + Redis from Debian set up like the database stage does (a login role and a
 * database per platform user, scram over TCP, Redis with requirepass), and etcd 3.4 with TLS
 * certificates at kubeadm's paths. Run as root inside the machine (no SSH needed).
 */
import {readFile} from 'node:fs/promises'
import path from 'node:path'

import {STAGES_DIR} from '../../src/deploy/plan.js'
import type {LabMachine} from '../support/lab/lab.js'
import type {Secrets} from '../../src/workspace/secrets.js'

export function must(r: {code: number; stdout: string; stderr: string}, what: string) {
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr.slice(-2000)}${r.stdout.slice(-1000)}`)
  return r.stdout
}

export async function setupDatabase(m: LabMachine, secrets: Secrets, opts: {subnet: number}) {
  must(
    await m.exec(
      `set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends postgresql redis-server >/dev/null
v=$(ls /etc/postgresql)
echo "listen_addresses = 'localhost,${m.ip}'" > /etc/postgresql/$v/main/conf.d/autolabs.conf
echo "host all all 10.99.${opts.subnet}.0/24 scram-sha-256" >> /etc/postgresql/$v/main/pg_hba.conf
systemctl restart postgresql`,
      {timeoutMs: 600_000},
    ),
    'install postgresql and redis',
  )
  // Passwords travel on stdin (SQL from the secrets), never on a command line.
  const sql = Object.entries(secrets.postgres.users)
    .map(([db, pw]) => `CREATE ROLE ${db}_user LOGIN PASSWORD '${pw}';\nCREATE DATABASE ${db} OWNER ${db}_user;\n`)
    .join('')
  must(await m.exec('runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres', {input: sql}), 'create roles and databases')
  for (const db of Object.keys(secrets.postgres.users)) {
    const data = `SET ROLE ${db}_user;
CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, payload jsonb, created timestamptz DEFAULT '2026-11-25 02:00:00+00');
INSERT INTO items (name, payload) SELECT '${db}-' || g, jsonb_build_object('n', g, 'quote', 'it''s "${db}"') FROM generate_series(1, ${db === 'gitlab' ? 20000 : 500}) g;
CREATE INDEX items_name ON items (name);
CREATE VIEW item_names AS SELECT name FROM items;`
    must(await m.exec(`runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d ${db}`, {input: data}), `data in ${db}`)
  }
  must(
    await m.exec(`set -euo pipefail; cat >> /etc/redis/redis.conf; systemctl restart redis-server`, {input: `\nbind 127.0.0.1 ${m.ip}\nrequirepass ${secrets.redis.password}\n`}),
    'configure redis',
  )
}

export async function setupEtcd(m: LabMachine) {
  must(
    await m.exec(
      `set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends etcd-server etcd-client openssl >/dev/null
systemctl stop etcd
pki=/etc/kubernetes/pki/etcd
install -d -m 0755 "$pki"
cd "$pki"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=etcd-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=k8s-vm 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth,clientAuth\\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile ext.cnf 2>/dev/null
chown etcd: server.key && chmod 0600 server.key ca.key
cat > /etc/default/etcd <<'CONF'
ETCD_NAME=k8s-vm
ETCD_DATA_DIR=/var/lib/etcd/default
ETCD_LISTEN_CLIENT_URLS=https://127.0.0.1:2379
ETCD_ADVERTISE_CLIENT_URLS=https://127.0.0.1:2379
ETCD_LISTEN_PEER_URLS=http://127.0.0.1:2380
ETCD_INITIAL_ADVERTISE_PEER_URLS=http://127.0.0.1:2380
ETCD_INITIAL_CLUSTER=k8s-vm=http://127.0.0.1:2380
ETCD_CERT_FILE=/etc/kubernetes/pki/etcd/server.crt
ETCD_KEY_FILE=/etc/kubernetes/pki/etcd/server.key
ETCD_TRUSTED_CA_FILE=/etc/kubernetes/pki/etcd/ca.crt
ETCD_CLIENT_CERT_AUTH=true
CONF
rm -rf /var/lib/etcd/default
systemctl start etcd`,
      {timeoutMs: 600_000},
    ),
    'install etcd with TLS',
  )
}

export const ETCDCTL = 'ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key'


/** WAL archiving exactly as the database stage sets it up: its own step, sourced from assets/stages/database.sh. */
export async function enableWalArchiving(m: LabMachine) {
  for (const f of ['database.sh', 'lib/common.sh']) {
    must(await m.exec(`install -d /opt/stages/lib && cat > /opt/stages/${f}`, {input: await readFile(path.join(STAGES_DIR, f), 'utf8')}), `upload ${f}`)
  }
  must(await m.exec('cd /opt/stages && PG_VERSION=$(ls /etc/postgresql) bash -c "source ./database.sh && do_postgres_wal_archive && check_postgres_wal_archive"'), 'postgres_wal_archive step')
}
