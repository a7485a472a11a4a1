import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigMap, type IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Secret, type ISecret } from 'kubernetes-models/v1/Secret';
import { Service, type IService } from 'kubernetes-models/v1/Service';
import { Deployment, type IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget, type IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ServiceMonitor, type IServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { parse as parseYaml } from 'yaml';
import { freePort, startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { loadConfig, parseHostPort } from '../src/config/config.js';
import { parseGoDuration } from '../src/config/duration.js';
import { DEPLOY, dockerInstructions, manifestFiles, readEnvFile, readManifests, unitEntries, type K8sObject } from './deployment-support.js';
import { GatewayProcess, REPO_ROOT, SHUTDOWN_ORDER, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';

// Checks of deploy/ (docs/deployment.md) that need no cluster and no container engine: schema
// validation of every manifest, and the invariants that tie the manifests, the image and the
// systemd unit to the gateway binary (routes, ports, variables, shutdown budget, user).

const objects = manifestFiles()
  .filter((file) => file !== 'kustomization.yaml')
  .flatMap((file) => readManifests(file).map((object) => ({ file, object })));
const only = <T extends K8sObject>(kind: string): T[] => objects.filter((o) => o.object.kind === kind).map((o) => o.object as T);

const configMap = new ConfigMap(only<K8sObject & IConfigMap>('ConfigMap')[0] as IConfigMap);
const deployment = new Deployment(only<K8sObject & IDeployment>('Deployment')[0] as IDeployment);
const services = only<K8sObject & IService>('Service').map((s) => new Service(s as IService));
const secrets = only<K8sObject & ISecret>('Secret').map((s) => new Secret(s as ISecret));
const pdb = new PodDisruptionBudget(only<K8sObject & IPodDisruptionBudget>('PodDisruptionBudget')[0] as IPodDisruptionBudget);
const serviceMonitor = new ServiceMonitor(only<K8sObject & IServiceMonitor>('ServiceMonitor')[0] as IServiceMonitor);

const pod = deployment.spec?.template.spec;
const container = pod?.containers.find((c) => c.name === 'gateway');
const podLabels = deployment.spec?.template.metadata?.labels ?? {};

/** The container's environment as the gateway sees it (ConfigMap, then env; secrets as placeholders). */
function containerEnv(): Record<string, string> {
  const env: Record<string, string> = { ...(configMap.data ?? {}) };
  for (const entry of container?.env ?? []) env[entry.name] = entry.value ?? `(from secret ${entry.valueFrom?.secretKeyRef?.name ?? '?'})`;
  return env;
}

function containerPort(name: string): number | undefined {
  return container?.ports?.find((p) => p.name === name)?.containerPort;
}

const selects = (selector: Record<string, string> | undefined, labels: Record<string, string>) =>
  selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

/** Every variable name the config loader reads (recorded through a Proxy over `env`). */
function variablesReadByLoader(env: Record<string, string>): Set<string> {
  const read = new Set<string>();
  const proxy = new Proxy(env, {
    get(target, key) {
      if (typeof key === 'string') read.add(key);
      return target[key as string];
    },
  });
  loadConfig(proxy);
  return read;
}

/** Non-GATEWAY variables the image reads: Node's own and OpenTelemetry's (README "Configuration"). */
const RUNTIME_VARIABLES = /^(NODE_OPTIONS|UV_THREADPOOL_SIZE|OTEL_[A-Z_]+)$/;

let redis: RedisServerHandle;
let signer: ReturnType<typeof writeSignerKey>;

beforeAll(async () => {
  redis = await startRedisServer();
  signer = writeSignerKey();
});

afterAll(async () => {
  await redis?.stop();
});

describe('deploy/kubernetes: schemas', () => {
  it('parses every manifest and validates it against the Kubernetes (and Prometheus Operator) schemas', () => {
    expect(objects.map((o) => `${o.file}:${o.object.kind}`).sort()).toEqual([
      'configmap.yaml:ConfigMap',
      'deployment.yaml:Deployment',
      'pdb.yaml:PodDisruptionBudget',
      'secret.example.yaml:Secret',
      'secret.example.yaml:Secret',
      'service.yaml:Service',
      'service.yaml:Service',
      'servicemonitor.yaml:ServiceMonitor',
    ]);
    for (const model of [configMap, deployment, pdb, serviceMonitor, ...services, ...secrets]) expect(() => model.validate()).not.toThrow();
    // The schema check is real: a wrong type is refused.
    const broken = new Deployment({ ...(deployment.toJSON() as IDeployment), spec: { ...(deployment.spec as NonNullable<IDeployment['spec']>), replicas: 'three' as unknown as number } });
    expect(() => broken.validate()).toThrow(/replicas must be integer/);
  });

  it('applies every resource but the secrets example and the operator-only ServiceMonitor with kustomize', () => {
    const kustomization = parseYaml(readFileSync(join(DEPLOY, 'kubernetes/kustomization.yaml'), 'utf8')) as { resources: string[] };
    expect([...kustomization.resources].sort()).toEqual(manifestFiles().filter((f) => !['kustomization.yaml', 'secret.example.yaml', 'servicemonitor.yaml'].includes(f)));
  });
});

describe('deploy/kubernetes: invariants against the gateway', () => {
  it('sets only variables the config loader reads (or Node/OpenTelemetry ones), and the loader accepts them', () => {
    const env = containerEnv();
    const read = variablesReadByLoader(env);
    const unknown = Object.keys(env).filter((name) => !read.has(name) && !RUNTIME_VARIABLES.test(name));
    expect(unknown).toEqual([]);
    expect(() => loadConfig(env)).not.toThrow();
  });

  it('exposes the ports of the configured listeners, which are the config defaults for HTTP and gRPC', () => {
    const config = loadConfig(containerEnv());
    const defaults = loadConfig({ GATEWAY_REDIS_MASTER_ADDR: 'r:6379', GATEWAY_REDIS_PASSWORD: 'p', GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: '/k' });
    const port = (address: string) => parseHostPort('address', address, true).port;
    expect(containerPort('http')).toBe(port(config.publicHttpAddr));
    expect(containerPort('grpc')).toBe(port(config.grpcAddr));
    expect(containerPort('metrics')).toBe(port(config.adminHttpAddr));
    expect(containerPort('http')).toBe(port(defaults.publicHttpAddr));
    expect(containerPort('grpc')).toBe(port(defaults.grpcAddr));
    // The listeners bind all interfaces, or the kubelet and the Services could not reach them.
    for (const address of [config.publicHttpAddr, config.grpcAddr, config.adminHttpAddr]) expect(parseHostPort('a', address, true).host).toBe('');

    const annotations = deployment.spec?.template.metadata?.annotations ?? {};
    expect(annotations['prometheus.io/scrape']).toBe('true');
    expect(Number(annotations['prometheus.io/port'])).toBe(containerPort('metrics'));
    for (const service of services) {
      expect(selects(service.spec?.selector, podLabels), service.metadata?.name).toBe(true);
      for (const p of service.spec?.ports ?? []) expect(containerPort(String(p.targetPort)), `${service.metadata?.name} ${p.name}`).toBe(p.port);
    }
    const publicService = services.find((s) => s.metadata?.name === 'edge-gateway');
    expect(publicService?.spec?.ports?.map((p) => [p.name, p.targetPort])).toEqual([
      ['http', 'http'],
      ['grpc', 'grpc'],
    ]);
    const metricsService = services.find((s) => selects(serviceMonitor.spec.selector.matchLabels, s.metadata?.labels ?? {}));
    expect(metricsService?.spec?.ports?.map((p) => p.name)).toContain(serviceMonitor.spec.endpoints?.[0]?.port);
    expect(serviceMonitor.spec.endpoints?.[0]?.path).toBe(annotations['prometheus.io/path']);
    expect(selects(pdb.spec?.selector?.matchLabels, podLabels)).toBe(true);
    expect(pdb.spec?.maxUnavailable).toBe(1);
  });

  it('runs as a non-root user that cannot escalate, with a read-only root filesystem', () => {
    expect(pod?.securityContext?.runAsNonRoot).toBe(true);
    expect(pod?.securityContext?.runAsUser).toBeGreaterThan(0);
    expect(container?.securityContext?.allowPrivilegeEscalation).toBe(false);
    expect(container?.securityContext?.readOnlyRootFilesystem).toBe(true);
    expect(container?.securityContext?.capabilities?.drop).toEqual(['ALL']);
  });

  it('mounts the signer key Secret where GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH points, and reads the Redis password from a Secret', () => {
    const keyPath = containerEnv()['GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH'] ?? '';
    const mount = container?.volumeMounts?.find((m) => keyPath.startsWith(`${m.mountPath}/`));
    expect(mount?.readOnly).toBe(true);
    const volume = pod?.volumes?.find((v) => v.name === mount?.name);
    const keySecret = secrets.find((s) => s.metadata?.name === volume?.secret?.secretName);
    expect(Object.keys(keySecret?.stringData ?? {})).toEqual([keyPath.slice((mount?.mountPath ?? '').length + 1)]);
    // Readable by the owner (root) and fsGroup (the gateway's group) only: 0440.
    expect(volume?.secret?.defaultMode).toBe(0o440);
    expect(pod?.securityContext?.fsGroup).toBe(pod?.securityContext?.runAsGroup);

    const password = container?.env?.find((e) => e.name === 'GATEWAY_REDIS_PASSWORD')?.valueFrom?.secretKeyRef;
    expect(Object.keys(secrets.find((s) => s.metadata?.name === password?.name)?.stringData ?? {})).toContain(password?.key);
    expect(Object.keys(configMap.data ?? {}).filter((k) => /PASSWORD|PRIVATE_KEY/.test(k))).toEqual([]);
  });

  it('requests at least the memory the benchmarks measured, with headroom to the limit; V8 stays under it', () => {
    const soak = JSON.parse(readFileSync(join(REPO_ROOT, 'bench/results/soak.json'), 'utf8')) as { results: { rssMaxMiB: number } };
    const push = JSON.parse(readFileSync(join(REPO_ROOT, 'bench/results/push.json'), 'utf8')) as {
      results: { levels: Array<{ memory: { rssTwoSecondsAfterStormKiB: number } }> };
    };
    const measuredMiB = Math.max(soak.results.rssMaxMiB, ...push.results.levels.map((l) => l.memory.rssTwoSecondsAfterStormKiB / 1024));
    const mebibytes = (quantity: unknown) => {
      const match = /^(\d+)Mi$/.exec(String(quantity));
      if (match === null) throw new Error(`memory quantity ${String(quantity)} is not in Mi`);
      return Number(match[1]);
    };
    const request = mebibytes(container?.resources?.requests?.['memory']);
    const limit = mebibytes(container?.resources?.limits?.['memory']);
    expect(request).toBeGreaterThanOrEqual(measuredMiB);
    expect(limit).toBeGreaterThan(request);
    const heap = Number(/--max-old-space-size=(\d+)/.exec(configMap.data?.['NODE_OPTIONS'] ?? '')?.[1]);
    expect(heap).toBeLessThan(limit);
    expect(container?.resources?.requests?.['cpu']).toMatch(/^\d+m$/);
  });
});

/** This process's open-file soft limit (`Max open files` of /proc/self/limits). */
function openFilesSoftLimit(): number {
  const match = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return match === null || match[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(match[1]);
}

describe('deploy: descriptors and memory for 25k devices per process (issue 25)', () => {
  const DEVICES = 25_000;
  it('systemd: LimitNOFILE holds the GATEWAY_MAX_CONNECTIONS of gateway.env with the 64 descriptors the gateway keeps, and the cap holds 25k devices', () => {
    const entries = unitEntries(readFileSync(join(DEPLOY, 'systemd/edge-gateway.service'), 'utf8'));
    const limit = Number(entries.find((e) => e.section === 'Service' && e.key === 'LimitNOFILE')?.value);
    const cap = Number(readEnvFile(join(DEPLOY, 'systemd/gateway.env.example'))['GATEWAY_MAX_CONNECTIONS']);
    expect(cap).toBeGreaterThanOrEqual(DEVICES);
    expect(limit - 64).toBeGreaterThanOrEqual(cap);
  });

  it('kubernetes: the ConfigMap caps connections at 25k+ and the memory request and limit hold them (20 KiB settled, 30 KiB after a storm, per connection)', () => {
    const cap = Number(configMap.data?.['GATEWAY_MAX_CONNECTIONS']);
    expect(cap).toBeGreaterThanOrEqual(DEVICES);
    const mebibytes = (quantity: unknown) => Number(/^(\d+)Mi$/.exec(String(quantity))?.[1]);
    const idleProcessMiB = 75;
    expect(mebibytes(container?.resources?.requests?.['memory'])).toBeGreaterThanOrEqual(idleProcessMiB + (cap * 20) / 1024);
    expect(mebibytes(container?.resources?.limits?.['memory'])).toBeGreaterThanOrEqual(idleProcessMiB + (cap * 30) / 1024);
  });
});

describe('deploy: the built binary under the manifests settings', () => {
  it('answers the probe paths on the probed port, serves the scraped metrics, and drains within terminationGracePeriodSeconds', async () => {
    const env = containerEnv();
    // The ConfigMap's connection cap needs a descriptor limit this host may not have (the
    // gateway refuses to start then: edge-listener-bounds.test.ts); here it is lowered to fit.
    const fits = Math.min(Number(env['GATEWAY_MAX_CONNECTIONS']), openFilesSoftLimit() - 64);
    const gateway = new GatewayProcess({
      ...env,
      GATEWAY_MAX_CONNECTIONS: String(fits),
      NODE_OPTIONS: env['NODE_OPTIONS'],
      GATEWAY_REDIS_MASTER_ADDR: `127.0.0.1:${redis.port}`,
      GATEWAY_REDIS_PASSWORD: redis.password,
      GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: signer.path,
      // Free ports instead of 8080/9090/9100 (the mapping to container ports is checked above).
      GATEWAY_PUBLIC_HTTP_ADDR: '127.0.0.1:0',
      GATEWAY_AUTHENTICATED_GRPC_ADDR: '127.0.0.1:0',
      GATEWAY_ADMIN_HTTP_ADDR: '127.0.0.1:0',
      // Downstream and auth upstream are not contacted by these checks.
    });
    try {
      const addresses = await gateway.started();
      const byPortName: Record<string, string | undefined> = { http: addresses.publicHttp, metrics: addresses.adminHttp };
      for (const [name, probe] of Object.entries({ startup: container?.startupProbe, liveness: container?.livenessProbe, readiness: container?.readinessProbe })) {
        const target = byPortName[String(probe?.httpGet?.port)];
        expect(target, `${name} probe port`).toBeDefined();
        const response = await fetch(`http://${target}${probe?.httpGet?.path ?? ''}`);
        expect(response.status, `${name} probe ${probe?.httpGet?.path}`).toBe(200);
      }
      expect(container?.readinessProbe?.httpGet?.path).toBe('/readyz');
      expect(container?.livenessProbe?.httpGet?.path).toBe('/healthz');
      // Liveness and startup on the admin listener, which GATEWAY_MAX_CONNECTIONS does not cap:
      // a full public listener refuses connections, and that must not restart the pod.
      expect(container?.livenessProbe?.httpGet?.port).toBe('metrics');
      expect(container?.startupProbe?.httpGet?.port).toBe('metrics');
      const annotations = deployment.spec?.template.metadata?.annotations ?? {};
      const metrics = await fetch(`http://${addresses.adminHttp}${annotations['prometheus.io/path']}`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain('gateway_http_requests_total{listener="public",route="/readyz",status="200"');

      // The image's HEALTHCHECK script against the running gateway, then against nothing.
      const check = spawnSync(process.execPath, [join(DEPLOY, 'container/healthcheck.mjs')], { env: { GATEWAY_PUBLIC_HTTP_ADDR: addresses.publicHttp }, encoding: 'utf8' });
      expect(check.status).toBe(0);
      expect(check.stdout).toBe('/readyz 200 {"status":"ready"}\n');
      // With the admin listener set (the image sets it) the check is liveness on that listener.
      const adminCheck = spawnSync(process.execPath, [join(DEPLOY, 'container/healthcheck.mjs')], {
        env: { GATEWAY_PUBLIC_HTTP_ADDR: addresses.publicHttp, GATEWAY_ADMIN_HTTP_ADDR: addresses.adminHttp },
        encoding: 'utf8',
      });
      expect(adminCheck.stdout).toBe('admin /healthz 200 {"status":"ok"}\n');
      expect(adminCheck.status).toBe(0);

      gateway.signal('SIGTERM');
      const { code } = await gateway.exited;
      expect(code).toBe(0);
      const steps = gateway.logs.filter((l) => l.message === 'component stopped').length;
      expect(steps).toBeGreaterThan(0);
      const preStop = container?.lifecycle?.preStop?.exec?.command ?? [];
      expect(preStop[0]).toBe('sleep');
      const budgetSeconds = (parseGoDuration(env['GATEWAY_SHUTDOWN_TIMEOUT'] ?? '') ?? NaN) / 1000;
      // Every step may use its whole budget before SIGKILL: preStop + steps x budget must fit.
      expect(pod?.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(Number(preStop[1]) + steps * budgetSeconds);
    } finally {
      await gateway.stop();
    }
    const down = spawnSync(process.execPath, [join(DEPLOY, 'container/healthcheck.mjs')], { env: { GATEWAY_PUBLIC_HTTP_ADDR: `127.0.0.1:${await freePort()}` }, encoding: 'utf8' });
    expect(down.status).toBe(1);
    expect(down.stderr).toContain('healthcheck: /readyz failed: ECONNREFUSED');
  });
});

describe('deploy/container/healthcheck.mjs over TLS', () => {
  it('checks an HTTPS public listener when GATEWAY_PUBLIC_HTTP_TLS_CERT_PATH is set', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-hc-tls-'));
    const certPath = join(dir, 'public.crt');
    const keyPath = join(dir, 'public.key');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=gateway.example.com', '-keyout', keyPath, '-out', certPath,
    ], { stdio: 'ignore' });
    const gateway = new GatewayProcess({
      GATEWAY_REDIS_MASTER_ADDR: `127.0.0.1:${redis.port}`,
      GATEWAY_REDIS_PASSWORD: redis.password,
      GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: signer.path,
      GATEWAY_PUBLIC_HTTP_ADDR: '127.0.0.1:0',
      GATEWAY_AUTHENTICATED_GRPC_ADDR: '127.0.0.1:0',
      GATEWAY_PUBLIC_HTTP_TLS_CERT_PATH: certPath,
      GATEWAY_PUBLIC_HTTP_TLS_KEY_PATH: keyPath,
    });
    try {
      const { publicHttp } = await gateway.started();
      const env = { GATEWAY_PUBLIC_HTTP_ADDR: publicHttp, GATEWAY_PUBLIC_HTTP_TLS_CERT_PATH: certPath };
      const check = spawnSync(process.execPath, [join(DEPLOY, 'container/healthcheck.mjs'), '/healthz'], { env, encoding: 'utf8' });
      expect(check.stderr).toBe('');
      expect(check.stdout).toBe('/healthz 200 {"status":"ok"}\n');
      expect(check.status).toBe(0);
      // Plain HTTP against the TLS listener is refused: the variable is what switches it.
      const plain = spawnSync(process.execPath, [join(DEPLOY, 'container/healthcheck.mjs')], { env: { GATEWAY_PUBLIC_HTTP_ADDR: publicHttp }, encoding: 'utf8' });
      expect(plain.status).toBe(1);
    } finally {
      await gateway.stop();
    }
  });
});

describe('deploy/container', () => {
  const text = readFileSync(join(DEPLOY, 'container/Dockerfile'), 'utf8');
  const instructions = dockerInstructions(text);
  const finalStage = instructions.slice(instructions.map(([i]) => i).lastIndexOf('FROM'));

  it('is multi-stage: the runtime stage copies the build from the build stage', () => {
    expect(instructions.filter(([i]) => i === 'FROM').map(([, a]) => a)).toEqual(['${NODE_IMAGE} AS build', '${NODE_IMAGE} AS runtime']);
    expect(finalStage.some(([i, a]) => i === 'COPY' && a.startsWith('--from=build '))).toBe(true);
    expect(instructions.find(([i, a]) => i === 'RUN' && a.includes('npm ci'))?.[1]).toContain('npm prune --omit=dev');
  });

  it('copies every workspace and every project the build references into the build stage', () => {
    const buildStage = instructions.slice(0, instructions.map(([i]) => i).lastIndexOf('FROM'));
    const copied = buildStage.filter(([i]) => i === 'COPY').flatMap(([, a]) => a.split(/\s+/).slice(0, -1));
    const root = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { workspaces: string[] };
    const tsconfig = JSON.parse(readFileSync(join(REPO_ROOT, 'tsconfig.json'), 'utf8')) as { references: Array<{ path: string }> };
    const needed = new Set([...root.workspaces, ...tsconfig.references.map((r) => r.path)].map((p) => p.split('/')[0] as string));
    for (const file of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.base.json']) needed.add(file);
    expect([...needed].filter((path) => !copied.includes(path))).toEqual([]);
  });

  it('the runtime stage holds the operator CLI the docs run in the container (apps/cli), not the development mode (apps/dev)', () => {
    const runtimeCopies = finalStage.filter(([i, a]) => i === 'COPY' && a.startsWith('--from=build ')).map(([, a]) => a.split(/\s+/)[1]);
    expect(runtimeCopies).toContain('/src/apps');
    expect(readFileSync(join(REPO_ROOT, 'docs/deployment.md'), 'utf8')).toContain('kubectl exec <pod> -- node apps/cli/dist/cli.js');
    expect(existsSync(join(REPO_ROOT, 'apps/cli/dist/cli.js'))).toBe(true);
    const removed = instructions.find(([i, a]) => i === 'RUN' && a.includes('npm prune'))?.[1] ?? '';
    expect(removed).not.toMatch(/rm -rf[^&]*apps\/cli/);
    // The development mode (in-memory stores) is not shipped.
    expect(removed).toMatch(/rm -rf apps\/dev /);
  });

  it('runs node on the built entry point directly as PID 1 (never npm), as the non-root user of the Deployment', () => {
    const entrypoint = JSON.parse(finalStage.find(([i]) => i === 'ENTRYPOINT')?.[1] ?? '[]') as string[];
    expect(entrypoint).toEqual(['node', 'apps/gateway/dist/main.js']);
    expect(existsSync(join(REPO_ROOT, entrypoint[1] as string))).toBe(true);
    expect(finalStage.some(([i]) => i === 'CMD')).toBe(false);
    expect(text).not.toMatch(/^(ENTRYPOINT|CMD).*npm/m);
    const user = finalStage.filter(([i]) => i === 'USER').at(-1)?.[1];
    expect(user).toMatch(/^[1-9]\d*:[1-9]\d*$/);
    expect(user).toBe(`${pod?.securityContext?.runAsUser}:${pod?.securityContext?.runAsGroup}`);
  });

  it('exposes the Deployment container ports, has a HEALTHCHECK, and copies only what exists', () => {
    const exposed = finalStage.find(([i]) => i === 'EXPOSE')?.[1].split(/\s+/).map(Number);
    expect(exposed).toEqual(container?.ports?.map((p) => p.containerPort));
    expect(finalStage.some(([i, a]) => i === 'ENV' && a === `GATEWAY_ADMIN_HTTP_ADDR=:${containerPort('metrics')}`)).toBe(true);
    expect(finalStage.find(([i]) => i === 'HEALTHCHECK')?.[1]).toContain('"node", "/app/healthcheck.mjs"');
    for (const [, args] of instructions.filter(([i, a]) => i === 'COPY' && !a.startsWith('--from'))) {
      const sources = args.split(/\s+/).slice(0, -1);
      for (const source of sources) expect(existsSync(join(REPO_ROOT, source)), source).toBe(true);
    }
    const ignore = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const pattern of ['**/node_modules', '**/dist', '.git', '*.pem']) expect(ignore).toContain(pattern);
  });
});

describe('deploy: what the docs tell an operator matches the files', () => {
  const doc = (name: string): string => readFileSync(join(REPO_ROOT, 'docs', name), 'utf8');

  it('a podman build keeps the HEALTHCHECK (--format docker) wherever a podman build is shown', () => {
    const dockerfile = readFileSync(join(DEPLOY, 'container/Dockerfile'), 'utf8');
    for (const [name, text] of [['Dockerfile', dockerfile], ['deployment.md', doc('deployment.md')]] as const) {
      const builds = [...text.matchAll(/podman build[^\n]*/g)].map((m) => m[0]);
      expect(builds.length, name).toBeGreaterThan(0);
      for (const line of builds) expect(line, name).toContain('--format docker');
    }
  });

  it('a corporate CA reaches npm ci in the build stage only', () => {
    const instructions = dockerInstructions(readFileSync(join(DEPLOY, 'container/Dockerfile'), 'utf8'));
    const runtimeAt = instructions.map(([i]) => i).lastIndexOf('FROM');
    const ca = instructions.findIndex(([i, a]) => i === 'COPY' && a.startsWith('deploy/container/extra-ca '));
    const npmCi = instructions.findIndex(([i, a]) => i === 'RUN' && a.includes('npm ci'));
    expect(ca).toBeGreaterThan(-1);
    expect(ca).toBeLessThan(npmCi);
    expect(npmCi).toBeLessThan(runtimeAt);
    expect(instructions[npmCi]?.[1]).toMatch(/NODE_EXTRA_CA_CERTS=\/tmp\/extra-ca\.pem[^&]*&& npm ci/);
    expect(instructions.slice(runtimeAt).some(([, a]) => a.includes('extra-ca'))).toBe(false);
    // The shell snippet itself: with no certificate it sets nothing, with one it points npm at it.
    const snippet = (instructions[npmCi]?.[1] ?? '').split(' && npm ci')[0] ?? '';
    for (const withCert of [false, true]) {
      const dir = mkdtempSync(join(tmpdir(), 'eg-ca-'));
      if (withCert) writeFileSync(join(dir, 'corp.crt'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
      const script = `${snippet.replaceAll('/tmp/extra-ca.pem', join(dir, 'bundle.pem')).replaceAll('/tmp/extra-ca/', `${dir}/`)}; echo "ca=\${NODE_EXTRA_CA_CERTS:-}"`;
      const out = execFileSync('sh', ['-ec', script], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '' } });
      expect(out.trim()).toBe(withCert ? `ca=${join(dir, 'bundle.pem')}` : 'ca=');
    }
  });

  it('one slow readiness answer does not drop a pod (failureThreshold >= 2)', () => {
    expect(container?.readinessProbe?.failureThreshold).toBeGreaterThanOrEqual(2);
  });

  it('scaling.md states the rollout and disruption settings the manifests have', () => {
    const text = doc('scaling.md');
    const strategy = deployment.spec?.strategy?.rollingUpdate;
    expect(text).toContain(`\`maxSurge: ${String(strategy?.maxSurge)}\`, \`maxUnavailable: ${String(strategy?.maxUnavailable)}\``);
    expect(text).toContain(`PodDisruptionBudget (\`maxUnavailable: ${String(pdb.spec?.maxUnavailable)}\`)`);
    expect(doc('deployment.md')).toContain(`\`maxSurge: ${String(strategy?.maxSurge)}\`, \`maxUnavailable: ${String(strategy?.maxUnavailable)}\``);
  });

  it('integration.md gives the user_id rule of spec §5.1, not the old one', () => {
    const bullet = /`user_id`: your user id[^\n]*\n[^\n]*\n/.exec(doc('integration.md'))?.[0] ?? '';
    expect(bullet).toContain('1–256');
    expect(doc('spec.md')).toContain('`user_id` follows the user_id rule: 1–256\n  characters and no control characters');
    expect(doc('integration.md')).not.toMatch(/user_id[^\n]*1–128/);
  });

  it('key-rotation.md keeps the systemd key layout and never signals with a kill binary inside the image', () => {
    const text = doc('key-rotation.md');
    const unit = readFileSync(join(DEPLOY, 'systemd/edge-gateway.service'), 'utf8');
    expect(unit).toContain('root:edge-gateway 0640');
    expect(text).toContain('install -m 0640 -o root -g edge-gateway');
    expect(text).not.toMatch(/install -m 0600/);
    expect(text).not.toMatch(/kill -HUP 1 inside/);
  });
});

describe('deploy/systemd', () => {
  const unitPath = join(DEPLOY, 'systemd/edge-gateway.service');
  const entries = unitEntries(readFileSync(unitPath, 'utf8'));
  const value = (key: string) => entries.filter((e) => e.section === 'Service' && e.key === key).map((e) => e.value);

  it('passes systemd-analyze verify without a warning', () => {
    // The unit names /usr/bin/node; verify checks that the executable exists, so point it at
    // this machine's node when that lives elsewhere.
    const dir = mkdtempSync(join(tmpdir(), 'eg-unit-'));
    const copy = join(dir, 'edge-gateway.service');
    writeFileSync(copy, readFileSync(unitPath, 'utf8').replace('/usr/bin/node ', `${process.execPath} `));
    const result = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
    expect(result.error).toBeUndefined();
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
    // The check is real: an unknown key is reported.
    writeFileSync(copy, `${readFileSync(copy, 'utf8')}\n[Service]\nKillSignl=SIGTERM\n`);
    expect(spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' }).stderr).toContain("Unknown key 'KillSignl'");
  });

  it('starts node on the entry point directly as an unprivileged user, reloads the key on SIGHUP, and waits for the whole drain', () => {
    expect(value('ExecStart')).toEqual(['/usr/bin/node /opt/edge-gateway/apps/gateway/dist/main.js']);
    expect(value('User')).toEqual(['edge-gateway']);
    expect(value('KillSignal')).toEqual(['SIGTERM']);
    expect(value('NoNewPrivileges')).toEqual(['yes']);
    const env = readEnvFile(join(DEPLOY, 'systemd/gateway.env.example'));
    const withKey = { ...env, GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: '/etc/edge-gateway/signer.pem' };
    const read = variablesReadByLoader(withKey);
    expect(Object.keys(env).filter((name) => !read.has(name) && !RUNTIME_VARIABLES.test(name))).toEqual([]);
    expect(env['GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH']).toBeUndefined();
    // Read in place (no LoadCredential copy), so `systemctl reload` (SIGHUP) picks up a rotated key.
    expect(value('Environment')).toEqual(['GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH=/etc/edge-gateway/signer.pem']);
    expect(value('LoadCredential')).toEqual([]);
    expect(value('ExecReload')).toEqual(['/bin/kill -HUP $MAINPID']);
    const stopSeconds = (parseGoDuration(value('TimeoutStopSec')[0] ?? '') ?? NaN) / 1000;
    const budgetSeconds = (parseGoDuration(env['GATEWAY_SHUTDOWN_TIMEOUT'] ?? '') ?? NaN) / 1000;
    // The same rule as the Deployment, without a preStop: every shutdown step may use its budget.
    expect(stopSeconds).toBeGreaterThanOrEqual(SHUTDOWN_ORDER.length * budgetSeconds);
  });
});
