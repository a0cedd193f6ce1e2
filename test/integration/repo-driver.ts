// Applies one install change on a namespace host through the real runner (from inside the hub namespace):
// the fleet-repository path of installArtifact, with the host's artifacts_repo/artifacts_repo_key vars.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installChange, packageFiles } from '../../src/artifacts/kit.ts';
import type { ArtifactRef, Step } from '../../src/core/types.ts';
import { loadInventory } from '../../src/inventory/load.ts';
import { Journal, Secrets } from '../../src/runner/journal.ts';
import { run } from '../../src/runner/run.ts';

const [inv, hostName, key] = process.argv.slice(2);
const host = loadInventory(inv).hosts.find((h) => h.name === hostName)!;
const ref = {
  spec: {
    component: 'hello',
    version: '1.0',
    sourceSha: '',
    distro: { family: 'debian', id: 'debian', versionId: '12', arch: 'all', pm: 'apt' },
    options: {},
    files: {},
  },
  key,
  build: { source: { kind: 'file', path: '/nonexistent' }, buildDir: '/nonexistent' },
} as unknown as ArtifactRef;
const step: Step<undefined> = {
  name: 'hello',
  description: 'installs kvmforge-hello from the fleet repository',
  doc: '',
  vars: {},
  params: () => undefined,
  async plan() {
    return [installChange(ref, packageFiles('kvmforge-hello'), 'kvmforge-hello 1.0')];
  },
};
const report = await run([host], {
  mode: 'apply',
  steps: [step],
  forks: 1,
  verify: false,
  connect: { knownHosts: '/nonexistent', acceptNewHostKeys: false },
  journal: new Journal(mkdtempSync(join(tmpdir(), 'kvf-repo-j-')), new Secrets()),
});
console.log(JSON.stringify(report.hosts[0]));
process.exit(0);
