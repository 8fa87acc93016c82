import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { CONFIG_VARIABLES, ConfigError, loadConfig } from '../../src/config.js';
import { createDatabaseOn, dropDatabaseOn } from '../../src/db/admin.js';
import { createTestDatabase } from '../helpers/db.js';

// The Kubernetes manifests (deploy/kubernetes): every object is validated against the Kubernetes
// OpenAPI schemas (kubernetes-models; the ServiceMonitor against the Prometheus Operator's CRD),
// both as written and, where kubectl is installed, as `kubectl kustomize` renders the base and each
// overlay. The variables they carry are checked against src/config.ts and .env.production.example.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const K8S = path.join(ROOT, 'deploy/kubernetes');

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  // biome-ignore lint/suspicious/noExplicitAny: manifests are walked as plain JSON
  spec?: any;
  data?: Record<string, string>;
}
type ModelClass = new (data: unknown) => { validate(): void };

/** The kubernetes-models module of each apiVersion the manifests use. */
const MODULES: Record<string, () => Promise<Record<string, unknown>>> = {
  v1: () => import('kubernetes-models/v1'),
  'apps/v1': () => import('kubernetes-models/apps/v1'),
  'batch/v1': () => import('kubernetes-models/batch/v1'),
  'policy/v1': () => import('kubernetes-models/policy/v1'),
  'autoscaling/v2': () => import('kubernetes-models/autoscaling/v2'),
  'monitoring.coreos.com/v1': () => import('@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1'),
};
const KUSTOMIZE_KINDS = new Set(['Kustomization', 'Component']);

/** Throws naming the object and the schema violation when an object does not match its schema. */
async function validate(object: K8sObject, where: string): Promise<void> {
  const load = MODULES[object.apiVersion];
  if (!load) throw new Error(`${where}: no schema for apiVersion ${object.apiVersion}`);
  const Model = (await load())[object.kind] as ModelClass | undefined;
  if (!Model) throw new Error(`${where}: no schema for ${object.apiVersion} ${object.kind}`);
  try {
    new Model(object).validate();
  } catch (err) {
    throw new Error(`${where}: ${object.kind} ${object.metadata?.name}: ${(err as Error).message}`);
  }
}

function parseYaml(text: string, where: string): unknown[] {
  return parseAllDocuments(text).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${where}: ${doc.errors[0]?.message}`);
    return doc.toJS();
  });
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return yamlFiles(full);
    return /\.ya?ml$/.test(entry.name) ? [full] : [];
  });
}

/** KEY=value lines of an env file (comments and blank lines skipped). */
function readEnvFile(file: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (match?.[1]) vars.set(match[1], match[2] ?? '');
  }
  return vars;
}

const files = yamlFiles(K8S);
const documents = files.flatMap((file) =>
  parseYaml(readFileSync(file, 'utf8'), path.relative(ROOT, file)).map((doc) => ({
    file,
    doc: doc as K8sObject,
  })),
);
const kustomizations = documents.filter((d) => KUSTOMIZE_KINDS.has(d.doc.kind));
/** Patches (partial objects, validated after rendering) and Kustomize's own configuration files. */
const kustomizeInputs = new Set(
  kustomizations.flatMap(({ file, doc }) => {
    const k = doc as unknown as { patches?: { path?: string }[]; configurations?: string[] };
    const paths = [
      ...(k.patches ?? []).flatMap((p) => (p.path ? [p.path] : [])),
      ...(k.configurations ?? []),
    ];
    return paths.map((p) => path.join(path.dirname(file), p));
  }),
);
const manifests = documents.filter((d) => !KUSTOMIZE_KINDS.has(d.doc.kind) && !kustomizeInputs.has(d.file));
const byKind = (kind: string) => manifests.filter((d) => d.doc.kind === kind).map((d) => d.doc);
const named = (kind: string, name: string) => {
  const found = byKind(kind).find((o) => o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name}`);
  return found;
};

const hasKubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;
const NO_KUBECTL = 'kubectl not found: the rendered overlays are not checked';
if (!hasKubectl) console.warn(`deploy/kubernetes: ${NO_KUBECTL}`);

function kustomize(dir: string): K8sObject[] {
  const run = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`kubectl kustomize ${dir}: ${run.stderr}`);
  return parseYaml(run.stdout, dir) as K8sObject[];
}

describe('Kubernetes manifests as written', () => {
  it('parse, and every object is valid against its Kubernetes schema', async () => {
    expect(manifests.length).toBeGreaterThanOrEqual(9);
    for (const { file, doc } of manifests) await validate(doc, path.relative(ROOT, file));
  });

  it('reject an invalid object (the schema check can fail)', async () => {
    const api = structuredClone(named('Deployment', 'loyalty-api'));
    api.spec.template.spec.containers[0].ports[0].containerPort = 'http';
    await expect(validate(api, 'mutated')).rejects.toThrow(/containerPort must be integer/);
  });

  it('run the API with /live and /ready probes and a rollout that never lowers capacity', () => {
    const api = named('Deployment', 'loyalty-api');
    expect(api.spec.strategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
    });
    const [container] = api.spec.template.spec.containers;
    expect(container.command).toEqual(['node', 'dist/server.js']);
    expect(container.livenessProbe.httpGet.path).toBe('/live');
    expect(container.readinessProbe.httpGet.path).toBe('/ready');
    const port = container.ports.find(
      (p: { name: string }) => p.name === container.readinessProbe.httpGet.port,
    );
    expect(port?.containerPort).toBe(3000);
  });

  it('scale the API on CPU, keep pods through drains, and run workers and the migration as their own', () => {
    const hpa = named('HorizontalPodAutoscaler', 'loyalty-api');
    expect(hpa.spec.scaleTargetRef).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: 'loyalty-api',
    });
    expect(hpa.spec.metrics[0].resource.name).toBe('cpu');
    const apiLabels = named('Deployment', 'loyalty-api').spec.template.metadata.labels;
    expect(apiLabels).toMatchObject(named('PodDisruptionBudget', 'loyalty-api').spec.selector.matchLabels);
    expect(apiLabels).toMatchObject(named('Service', 'loyalty-api').spec.selector);

    const worker = named('Deployment', 'loyalty-worker').spec.template.spec.containers[0];
    expect(worker.command).toEqual(['node', 'dist/worker.js']);
    expect(worker.env).toContainEqual({ name: 'WORKERS_ENABLED', value: '1' });
    const job = named('Job', 'loyalty-migrate').spec.template.spec;
    expect(job.containers[0].command).toEqual(['node', 'dist/cli.js', 'db:migrate']);
    expect(job.restartPolicy).toBe('Never');
  });

  it('name every variable the config requires in production, and the same ones as .env.production.example', () => {
    // What production requires, as the config itself reports it for an empty environment.
    let required: string[] = [];
    try {
      loadConfig({ NODE_ENV: 'production' });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      required = err.problems.map((p) => p.split(':')[0] ?? p);
    }
    expect(required).toEqual(expect.arrayContaining(['DATABASE_URL', 'APP_ENCRYPTION_KEY']));

    const config = readEnvFile(path.join(K8S, 'base/config.env'));
    const secrets = readEnvFile(path.join(K8S, 'base/secrets.env'));
    const containerEnv = byKind('Deployment').flatMap((d) =>
      d.spec.template.spec.containers.flatMap((c: { env?: { name: string }[] }) =>
        (c.env ?? []).map((e) => e.name),
      ),
    );
    const carried = new Set([...config.keys(), ...secrets.keys(), ...containerEnv]);
    for (const name of [...required, 'NODE_ENV']) expect(carried.has(name), name).toBe(true);
    expect(config.get('NODE_ENV')).toBe('production');
    for (const name of carried) expect(CONFIG_VARIABLES, `${name} is not read by the config`).toContain(name);

    // Compose-only variables aside, the same set as the compose deployment's env file.
    const example = readEnvFile(path.join(ROOT, '.env.production.example'));
    example.delete('POSTGRES_PASSWORD');
    expect([...carried].sort()).toEqual([...example.keys()].sort());
    // Secrets stay out of the ConfigMap.
    for (const secret of [
      'DATABASE_URL',
      'APP_ENCRYPTION_KEY',
      'METRICS_TOKEN',
      'ADMIN_API_TOKEN',
      'JWT_SECRET',
    ]) {
      expect(config.has(secret), secret).toBe(false);
    }
  });

  it('give every process the ConfigMap and the Secret', () => {
    const pods = [...byKind('Deployment'), ...byKind('Job')]
      .filter((o) => o.metadata.name !== 'loyalty-pgbouncer')
      .map((o) => o.spec.template.spec);
    for (const spec of pods) {
      for (const container of [...(spec.initContainers ?? []), ...spec.containers]) {
        expect(container.envFrom, container.name).toEqual([
          { configMapRef: { name: 'loyalty-config' } },
          { secretRef: { name: 'loyalty-secrets' } },
        ]);
      }
    }
  });
});

describe('the init container that waits for the migration Job', () => {
  /** Runs the API pod's wait-for-migrations script here (tsx instead of the image's dist/). */
  function runWait(databaseUrl: string, ms: number) {
    const init = named('Deployment', 'loyalty-api').spec.template.spec.initContainers[0];
    expect(init.command).toEqual(['sh', '-c']);
    const script = String(init.args[0]).replaceAll(
      'node dist/cli.js',
      `"${process.execPath}" --import tsx src/cli.ts`,
    );
    const child = spawn('sh', ['-c', script], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: databaseUrl, NODE_ENV: 'test', LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    return new Promise<{ code: number | null; output: string }>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), ms);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, output });
      });
    });
  }

  it('lets the pod start once every migration is applied, and waits while one is pending', async () => {
    const migrated = await createTestDatabase();
    const serverUrl = inject('databaseServerUrl');
    const emptyName = `loyalty_test_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
    const empty = await createDatabaseOn(serverUrl, emptyName);
    try {
      const done = await runWait(migrated.url, 30_000);
      expect(done, done.output).toMatchObject({ code: 0 });
      const waiting = await runWait(empty, 25_000);
      expect(waiting.code).toBeNull();
      expect(waiting.output).toContain('waiting for the migration job');
    } finally {
      await migrated.drop();
      await dropDatabaseOn(serverUrl, emptyName);
    }
  }, 120_000);
});

describe.skipIf(!hasKubectl)(`Kustomize output${hasKubectl ? '' : ` (skipped: ${NO_KUBECTL})`}`, () => {
  const roots = [
    'deploy/kubernetes',
    'deploy/kubernetes/overlays/staging',
    'deploy/kubernetes/overlays/production',
  ];

  it.each(roots)('%s renders objects that are valid against their schemas', async (dir) => {
    const objects = kustomize(path.join(ROOT, dir));
    const kinds = new Set(objects.map((o) => o.kind));
    for (const kind of ['Deployment', 'Service', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Job']) {
      expect(kinds.has(kind), kind).toBe(true);
    }
    for (const kind of ['ConfigMap', 'Secret', 'ServiceMonitor']) expect(kinds.has(kind), kind).toBe(true);
    for (const object of objects) await validate(object, dir);

    // Generated (hashed) names are referenced everywhere, the ServiceMonitor's credentials too.
    const names = new Set(objects.map((o) => `${o.kind}/${o.metadata.name}`));
    const text = JSON.stringify(objects);
    for (const [, ref] of text.matchAll(/"(?:name)":"(loyalty-(?:config|secrets)[^"]*)"/g)) {
      expect(names.has(`ConfigMap/${ref}`) || names.has(`Secret/${ref}`), ref).toBe(true);
    }
  });

  it('the production overlay pins the image, adds PgBouncer and namespaces everything', () => {
    const objects = kustomize(path.join(K8S, 'overlays/production'));
    for (const o of objects.filter((x) => x.kind !== 'Namespace'))
      expect(o.metadata.namespace, o.kind).toBe('loyalty');
    const images = objects
      .filter((o) => o.kind === 'Deployment' || o.kind === 'Job')
      .flatMap((o) => o.spec.template.spec.containers.map((c: { image: string }) => c.image));
    expect(new Set(images)).toEqual(
      new Set(['registry.example.com/loyalty-platform:0123abc', 'edoburu/pgbouncer:v1.23.1-p3']),
    );
    // The example production runs PgBouncer in transaction mode in front of PostgreSQL.
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(
      expect.arrayContaining(['Deployment/loyalty-pgbouncer', 'Service/loyalty-pgbouncer']),
    );
  });
});
