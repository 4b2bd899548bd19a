import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

/** Where Debian's and a source build's PostgreSQL binaries live. */
const BIN_DIRS = ['/usr/lib/postgresql/17/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/15/bin', '/usr/local/bin', '/usr/bin'];
/** initdb and pg_ctl refuse to run as root: they run as this user then. */
const SERVER_USER = 'postgres';
const TIMEOUT_MS = 120_000;

export interface ThrowawayPostgres {
  /** A postgres:// URL over the unix socket (no TCP port is opened). */
  url: string;
  start(): Promise<void>;
  /** `pg_ctl stop -m immediate`: as after a crash, the next start replays the WAL. */
  crash(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A PostgreSQL cluster of its own in a temporary folder, listening only on a unix socket in it
 * (`listen_addresses=''`, `-k <dir>`), fsync on, stopped and removed when the suite ends. As
 * root, initdb and pg_ctl run as the `postgres` user through setpriv. Without binaries or that
 * user the suite is skipped with the reason, except under CI, where it fails.
 */
export async function throwawayPostgres(t: { after(fn: () => Promise<void> | void): void; skip(message?: string): void }): Promise<ThrowawayPostgres | undefined> {
  const bin = BIN_DIRS.find((dir) => existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl')));
  const unavailable = (why: string): undefined => {
    const message = `needs a PostgreSQL server (initdb, pg_ctl): ${why}`;
    if (process.env.CI) throw new Error(`${message}; .ci/run installs Debian's postgresql package`);
    t.skip(`${message} — skipped outside CI`);
    return undefined;
  };
  if (!bin) return unavailable(`none in ${BIN_DIRS.join(', ')}`);
  const root = mkdtempSync(join(tmpdir(), 'bridgetower-pg-'));
  // Short: a unix socket path must fit in 107 bytes.
  const data = join(root, 'data');
  const socket = join(root, 's');
  mkdirSync(socket);
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? await uidOf(SERVER_USER) : undefined;
  if (asRoot && !owner) return unavailable(`running as root, and there is no '${SERVER_USER}' user to run it as`);
  if (owner) {
    chmodSync(root, 0o755);
    chownSync(root, owner.uid, owner.gid);
    chownSync(socket, owner.uid, owner.gid);
  }
  const pg = (tool: string, args: string[]) =>
    owner
      ? run('setpriv', [`--reuid=${owner.uid}`, `--regid=${owner.gid}`, '--init-groups', join(bin, tool), ...args], { timeout: TIMEOUT_MS })
      : run(join(bin, tool), args, { timeout: TIMEOUT_MS });
  const pgCtl = (...args: string[]) => pg('pg_ctl', ['-D', data, '-l', join(root, 'server.log'), '-w', '-t', '100', ...args]);
  try {
    await pg('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-instructions', '--no-sync']);
  } catch (error) {
    rmSync(root, { recursive: true, force: true });
    return unavailable(`initdb failed: ${(error as Error).message.split('\n')[0]}`);
  }
  let running = false;
  const cluster: ThrowawayPostgres = {
    url: `postgres://postgres@/postgres?host=${encodeURIComponent(socket)}`,
    async start() {
      await pgCtl('-o', `-c listen_addresses='' -k ${socket} -c fsync=on -c synchronous_commit=on`, 'start');
      running = true;
    },
    async crash() {
      await pgCtl('-m', 'immediate', 'stop');
      running = false;
    },
    async stop() {
      await pgCtl('-m', 'fast', 'stop');
      running = false;
    },
  };
  t.after(async () => {
    if (running) await cluster.crash().catch(() => {});
    rmSync(root, { recursive: true, force: true });
  });
  try {
    await cluster.start();
  } catch (error) {
    return unavailable(`pg_ctl start failed: ${(error as Error).message.split('\n')[0]}`);
  }
  return cluster;
}

async function uidOf(user: string): Promise<{ uid: number; gid: number } | undefined> {
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', user]), run('id', ['-g', user])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    return undefined;
  }
}

/** Runs `work` on a client connected to `location`, and closes the client whatever happens. */
export async function withClient<T>(location: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: location });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}
