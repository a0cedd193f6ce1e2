// `kvmforge build`: the packages the hosts' source-build steps need, built once on their build hosts (or
// fetched) into the local cache; nothing is installed. The artifacts library does the work; the runner's
// host loop and session carry it over the hosts.
import { artifactDir, ensureArtifact, readMeta } from '../artifacts/artifacts.ts';
import { isSourceBuild, requestOf } from '../artifacts/kit.ts';
import { ConfigError, isUserError } from '../core/errors.ts';
import type { Host, Step } from '../core/types.ts';
import type { HostReport, Report, StepReport } from '../runner/report.ts';
import { resolveParams, type RunOptions } from '../runner/run.ts';
import { forEachHost, HostSession } from '../runner/session.ts';

type BuildOptions = Omit<RunOptions, 'mode' | 'verify'>;

async function buildHost(host: Host, params: Map<string, unknown>, o: BuildOptions): Promise<HostReport> {
  const t0 = Date.now();
  const rep: HostReport = { host: host.name, status: 'ok', steps: [], ms: 0 };
  o.events?.hostStart?.(host.name);
  const s = new HostSession(host, o);
  try {
    await s.start();
    for (const step of o.steps) {
      const p = params.get(step.name);
      const sr: StepReport = { step: step.name, status: 'ok', changes: [], ms: 0 };
      const off = typeof p === 'object' && p !== null && 'off' in p;
      if (off || !isSourceBuild(step)) {
        sr.status = 'skipped';
        rep.steps.push(sr);
        o.events?.stepEnd?.(host.name, sr);
        continue;
      }
      const s0 = Date.now();
      o.events?.stepStart?.(host.name, step.name);
      try {
        const ctx = s.context();
        const a = await step.artifact(ctx, p);
        const cached = readMeta(artifactDir(a.spec, a.key));
        const meta = await ensureArtifact(requestOf(ctx, a), {
          transport: s.transport,
          progress: (text) => o.events?.message?.(host.name, `${step.name}: ${text}`),
          log: (text) => s.log(`${step.name}: ${text}`),
          logFile: (name) => o.journal.file(`${host.name}.${name}`),
        });
        sr.changes = [
          {
            summary:
              `${a.spec.component} ${a.spec.version} artifact ${a.key.slice(0, 12)} ` +
              `${cached ? 'already in the local cache' : `ready (built on ${meta.builtOn} in ${meta.buildSeconds} s)`}`,
            warning: meta.dropped?.length ? `options olddefconfig dropped: ${meta.dropped.join(', ')}` : undefined,
          },
        ];
        sr.status = cached ? 'ok' : 'changed';
        s.log(`step ${step.name}: ${sr.status} ${sr.changes.map((c) => c.summary).join('; ')}`);
      } catch (e) {
        if (!isUserError(e)) throw e;
        sr.status = 'failed';
        sr.error = e.message;
        if (e instanceof ConfigError) rep.badInput = true;
        rep.status = 'failed';
        rep.error = `${step.name}: ${e.message}`;
        s.log(`step ${step.name}: failed (${e.message})`);
      }
      sr.ms = Date.now() - s0;
      rep.steps.push(sr);
      o.events?.stepEnd?.(host.name, sr);
      if (sr.status === 'failed') break;
    }
    if (rep.status !== 'failed' && rep.steps.some((x) => x.status === 'changed')) rep.status = 'changed';
  } catch (e) {
    rep.status = 'failed';
    rep.error = isUserError(e) ? e.message : `internal error: ${(e as Error).stack ?? e}`;
  } finally {
    await s.close();
  }
  rep.ms = Date.now() - t0;
  s.log(`host ${rep.status}${rep.error ? `: ${rep.error}` : ''}`);
  o.events?.hostEnd?.(rep);
  return rep;
}

/** Builds (or fetches) what every host's source-build steps need, into the local cache. */
export async function buildArtifacts(hosts: Host[], o: BuildOptions & { steps: Step<any>[] }): Promise<Report> {
  const params = resolveParams(hosts, o.steps, o.inventory ?? hosts);
  const started = new Date();
  const results = await forEachHost(hosts, o.forks, (h) => buildHost(h, params.get(h.name)!, o));
  const report: Report = {
    mode: 'build',
    started: started.toISOString(),
    ms: Date.now() - started.getTime(),
    journal: o.journal.enabled ? o.journal.dir : undefined,
    hosts: results,
  };
  o.journal.writeReport(report);
  return report;
}
