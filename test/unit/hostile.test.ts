// Hostile values through every step: quotes, ;, $(), backticks, newlines, ../, XML metacharacters and
// leading dashes in every free-text var. Each is either refused as bad input (file:line, the var's key)
// or reaches the host as data: in every script a step would run, it sits inside single quotes or a
// quoted here-document (checked by a small shell lexer, itself tested below) and every script parses;
// file contents travel base64-encoded; rendered XML is escaped and valid.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.ts';
import { writeFileScript } from '../../src/core/file.ts';
import type { Change, Step } from '../../src/core/types.ts';
import { resolveParams } from '../../src/runner/run.ts';
import { steps } from '../../steps/index.ts';
import files from '../../steps/files.ts';
import domains from '../../steps/domains.ts';
import { trialScript, trialCheck, makeDefaultScript } from '../../steps/kernel.ts';
import { buildScript, type BuildSpec } from '../../src/artifacts/recipes.ts';
import { fetchScript } from '../../src/artifacts/sources.ts';
import { parseXml } from '../../src/domains/xml.ts';
import { debianFacts, fakeCtx, host, loose } from '../harness/fake-host.ts';
import { exposed } from '../harness/shell-lexer.ts';

const PWN = 'touch kvmforge-pwned'; // no slash: VM names (which may not hold one) carry it whole too
/** Every shape of trouble, each carrying the same command to spot. */
const HOSTILE = [
  `x'; ${PWN}; '`,
  `a"b"; ${PWN}`,
  `$(${PWN})`,
  `\`${PWN}\``,
  `line1\n${PWN}\nline3`,
  `-rf ${PWN}`,
  `--help; ${PWN}`,
  `../../etc/${PWN}`,
  `<x a="&amp;">${PWN}</x>`,
  `\\'; ${PWN} #`,
  `KVMFORGE_EOF\n${PWN}\nKVMFORGE_EOF`,
];

function expectData(script: string, label: string) {
  const at = exposed(script, PWN);
  expect(at.map((p) => `${label}: …${script.slice(Math.max(0, p - 40), p + PWN.length + 10)}…`)).toEqual([]);
  const parsed = spawnSync('sh', ['-n'], { input: script });
  expect(parsed.status, `${label}: ${parsed.stderr}`).toBe(0);
}

/** Every script a change would run on the host. */
function scriptsOf(change: Change): string[] {
  const [c] = loose([change]);
  return [
    c.script,
    c.file && writeFileScript(c.file),
    c.verify,
    c.commit,
    c.rollback,
    c.rolledBack,
    c.check?.verify,
    c.check?.commit,
  ].filter((s): s is string => !!s);
}

/** Refused as bad input naming the var, or undefined when accepted. */
function refusal(step: Step<any>, vars: string[]): string | undefined {
  try {
    resolveParams([host(vars)], [step]);
    return undefined;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return e.message;
  }
}

describe('the lexer that decides what a shell would run', () => {
  it(
    'flags a value left bare, in double quotes or in an unquoted here-document; passes single quotes, quoted ' +
      'here-documents and comments',
    () => {
      expect(exposed(`echo ${PWN}`, PWN)).toHaveLength(1);
      expect(exposed(`echo "$(${PWN})"`, PWN)).toHaveLength(1);
      expect(exposed(`cat <<EOF\n$(${PWN})\nEOF`, PWN)).toHaveLength(1);
      expect(exposed(`echo 'a' ${PWN} 'b'`, PWN)).toHaveLength(1);
      expect(exposed(`echo 'it'\\''s'; ${PWN}`, PWN)).toHaveLength(1);
      expect(exposed(`echo '$(${PWN})'`, PWN)).toEqual([]);
      expect(exposed(`cat <<'EOF'\n$(${PWN})\nEOF\necho done`, PWN)).toEqual([]);
      expect(exposed(`cat <<'EOF'\nEOF\n${PWN}`, PWN)).toHaveLength(1);
      expect(exposed(`# ${PWN}\necho ok`, PWN)).toEqual([]);
      expect(exposed(`echo "data: ${PWN}"`, PWN)).toEqual([]);
      expect(exposed(`echo "a \`${PWN}\` b"`, PWN)).toHaveLength(1);
      expect(exposed(`echo "state $(virsh domstate 'x; ${PWN}')"`, PWN)).toEqual([]);
      expect(exposed(`echo "state $(virsh domstate x; ${PWN})"`, PWN)).toHaveLength(1);
    },
  );
});

describe('hostile values in every free-text var', () => {
  it('the list of free-text vars is the list this file covers (a new one must be added here)', () => {
    const free = (x: any): boolean =>
      !!x &&
      ((x.type === 'string' && !x.pattern && !x.enum) || (x.type === 'array' && free(x.items)) || x.type === 'object');
    const found = steps.flatMap((s) =>
      Object.entries(s.vars)
        .filter(([, v]) => free(v.schema))
        .map(([k]) => `${s.name}.${k}`),
    );
    expect(found.sort()).toEqual(
      [
        'files.files',
        ...['kernel', 'qemu', 'libvirt'].flatMap((c) => [
          `${c}.${c}_version`,
          `${c}.${c}_source`,
          `${c}.${c}_signature`,
          `${c}.${c}_keyring`,
          `${c}.build_host`,
          `${c}.build_dir`,
        ]),
        'kernel.kernel_config_base',
        'kernel.kernel_config_fragments',
        'kernel.kernel_trial_args',
        'qemu.qemu_prefix',
        'qemu.qemu_configure_args',
        'libvirt.libvirt_meson_args',
        'libvirt.libvirt_qemu_conf',
        'sriov.sriov_vfs',
        'sriov.sriov_max_vfs',
        'domains.domains_vms',
        'domains.domains_profiles',
      ].sort(),
    );
  });

  it('files: hostile paths and contents are refused (..) or written as given, never run', async () => {
    for (const v of HOSTILE) {
      const path = `/etc/kvmforge-h/${v}`;
      const vars = [
        'files:',
        `  - path: ${JSON.stringify(path)}`,
        `    content: ${JSON.stringify(`${v}\nkvmforge-content-marker\n`)}`,
      ];
      const why = refusal(files, vars);
      if (why) {
        expect(why).toMatch(/h1\.files: path .* contains '\.\.'/);
        continue;
      }
      const ctx = fakeCtx(debianFacts(), {}, host(vars));
      const changes = await files.plan(ctx, files.params(host(vars)));
      expect(changes).toHaveLength(1);
      for (const s of [...ctx.probed, ...scriptsOf(changes[0])]) expectData(s, `files ${JSON.stringify(v)}`);
      // content travels as base64
      expect(writeFileScript(loose(changes)[0].file!)).not.toContain('kvmforge-content-marker');
    }
  });

  it('files: the write script really writes a hostile name and content verbatim, and runs nothing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvf-hostile-'));
    for (const [i, v] of HOSTILE.entries()) {
      const path = join(dir, `${i}-${v.replace(/\//g, '_')}`);
      const r = spawnSync('sh', [
        '-c',
        `cd ${dir}; ${writeFileScript({ path, content: v, owner: `${process.getuid!()}:${process.getgid!()}` })}`,
      ]);
      expect(r.status, r.stderr.toString()).toBe(0);
      expect(spawnSync('cat', [path]).stdout.toString()).toBe(v);
    }
    expect(spawnSync('test', ['-e', join(dir, 'kvmforge-pwned')]).status).toBe(1);
  });

  it(
    'domains: hostile VM names and disk paths are escaped in the XML (valid, same text back) and quoted in every ' +
      'virsh/qemu-img command',
    async () => {
      for (const v of HOSTILE) {
        // a turn of the event loop for each value: their shell checks took 10.7 s in all under a warm CI's load
        await new Promise((resolve) => setImmediate(resolve));
        const name = v.replace(/\n/g, ' ').replace(/\//g, '_');
        const disk = `/srv/vms/${v.replace(/\n/g, ' ')}.qcow2`;
        const vars = [
          'domains_vms:',
          `  - name: ${JSON.stringify(name)}`,
          `    start: true`,
          `    autostart: true`,
          `    disks: [{ path: ${JSON.stringify(disk)}, size: 1G }]`,
          `    nics: [{ bridge: br0 }]`,
        ];
        const why = refusal(domains, vars);
        expect(why).toBeUndefined();
        const planned = domains.params(host(vars))!;
        const dom = parseXml(planned[0].xml);
        expect(dom.children.find((c) => c.tag === 'name')!.text).toBe(name);
        const ctx = fakeCtx(
          debianFacts(),
          { outputs: { 'domains:*': `@@virsh yes\n@@vhost yes\n@@bridge br0\n@@path creatable ${disk}\n` } },
          host(vars),
        );
        const changes = await domains.plan(ctx, planned);
        expect(changes.map((c) => c.summary)).toEqual([
          `create disk ${disk} (qcow2, 1G)`,
          `define VM ${name}`,
          `autostart ${name} on`,
          `start VM ${name}`,
        ]);
        for (const s of [...ctx.probed, ...changes.flatMap(scriptsOf)]) expectData(s, `domains ${JSON.stringify(v)}`);
        // a name that looks like an option stays a name: every virsh call names the domain with --domain
        for (const s of [...ctx.probed, ...changes.flatMap(scriptsOf)])
          expect(s).not.toMatch(/virsh -q (dominfo|domstate|start|autostart|dumpxml --inactive) '/);
      }
      // and the names and paths newlines would split are refused
      expect(refusal(domains, ['domains_vms:', '  - name: "a\\nb"'])).toMatch(/domains_vms/);
    },
  );

  it(
    'kernel, QEMU, libvirt: hostile versions, hosts, paths and options are refused or quoted in the fetch, build ' +
      'and trial-boot scripts',
    () => {
      for (const v of HOSTILE) {
        for (const c of ['kernel', 'qemu', 'libvirt']) {
          const step = steps.find((s) => s.name === c)!;
          expect(
            refusal(step, [`${c}_version: ${JSON.stringify(v)}`, `${c}_sha256: "${'0'.repeat(64)}"`]),
            `${c}_version ${JSON.stringify(v)}`,
          ).toMatch(new RegExp(`${c}_version`));
          expect(
            refusal(step, [
              `${c}_version: "1.0"`,
              `${c}_sha256: "${'0'.repeat(64)}"`,
              `build_host: ${JSON.stringify(v)}`,
            ]),
          ).toMatch(/build_host/);
        }
        const spec = (component: 'qemu' | 'libvirt' | 'kernel', options: BuildSpec['options']): BuildSpec => ({
          component,
          version: '1.0',
          sourceSha: '0'.repeat(64),
          distro: { family: 'debian', id: 'debian', versionId: '12', arch: 'x86_64', pm: 'apt' },
          options,
          files: component === 'kernel' ? { [`fragment-1.config`]: `# ${v}\n` } : {},
        });
        expectData(
          buildScript(
            spec('qemu', { prefix: `/opt/${v}`, configureArgs: [v, `--x=${v}`] }),
            'k'.repeat(64),
            `/w/${v}`,
            `/s/${v}.tar`,
            `/o/${v}`,
          ),
          `qemu build ${JSON.stringify(v)}`,
        );
        expectData(
          buildScript(
            spec('libvirt', { mesonArgs: [v, `-Dx=${v}`] }),
            'k'.repeat(64),
            `/w/${v}`,
            `/s/${v}.tar`,
            `/o/${v}`,
          ),
          `libvirt build ${JSON.stringify(v)}`,
        );
        expectData(
          buildScript(
            spec('kernel', { base: 'tinyconfig', debugInfo: 'no' }),
            'k'.repeat(64),
            `/w/${v}`,
            `/s/${v}.tar`,
            `/o/${v}`,
          ),
          `kernel build ${JSON.stringify(v)}`,
        );
        expectData(
          fetchScript(
            {
              url: `https://example.org/${v}.tar.xz`,
              signature: `https://example.org/${v}.sig`,
              component: 'qemu',
              version: '1.0',
              sha256: '0'.repeat(64),
              fileName: `${v}.tar.xz`,
            },
            '0'.repeat(64),
            `/var/cache/${v}`,
            `/k/${v}.gpg`,
            `/k/${v}.sig`,
          ),
          `fetch ${JSON.stringify(v)}`,
        );
        expectData(trialScript(`6.1-${v}`, 10, v), `trial ${JSON.stringify(v)}`);
        expectData(trialCheck(`6.1-${v}`, 10), `trial check ${JSON.stringify(v)}`);
        expectData(makeDefaultScript(`gnulinux>${v}`), `default ${JSON.stringify(v)}`);
      }
    },
  );

  it('libvirt qemu.conf values and SR-IOV NIC names: quotes and shell characters are refused with the key', () => {
    const libvirt = steps.find((s) => s.name === 'libvirt')!;
    const sriov = steps.find((s) => s.name === 'sriov')!;
    for (const v of HOSTILE.filter((x) => /["\n\\]/.test(x)))
      expect(
        refusal(libvirt, [
          'libvirt_version: "9.0.0"',
          `libvirt_sha256: "${'0'.repeat(64)}"`,
          `libvirt_qemu_conf: { user: ${JSON.stringify(v)} }`,
        ]),
      ).toMatch(/libvirt_qemu_conf\.user/);
    for (const v of HOSTILE)
      expect(refusal(sriov, [`sriov_vfs: { ${JSON.stringify(v)}: 2 }`]), JSON.stringify(v)).toMatch(/sriov_vfs/);
    for (const v of HOSTILE)
      expect(refusal(sriov, [`sriov_max_vfs: { ${JSON.stringify(v)}: 2 }`]), JSON.stringify(v)).toMatch(
        /sriov_max_vfs/,
      );
  });

  it(
    'patterned vars (bridge, boot args, modules, …) refuse every hostile value with the key, before any host is ' +
      'touched',
    () => {
      for (const s of steps) {
        for (const [k, { schema }] of Object.entries<any>(s.vars)) {
          const target =
            schema.type === 'string' && schema.pattern
              ? 'string'
              : schema.type === 'array' && schema.items?.pattern
                ? 'array'
                : undefined;
          if (!target) continue;
          for (const v of HOSTILE) {
            const value = target === 'string' ? JSON.stringify(v) : `[${JSON.stringify(v)}]`;
            const why =
              (() => {
                try {
                  host([`${k}: ${value}`]);
                  return undefined;
                } catch (e) {
                  return (e as Error).message;
                }
              })() ?? refusal(s, [`${k}: ${value}`]);
            expect(why, `${s.name}.${k} = ${JSON.stringify(v)}`).toMatch(new RegExp(k));
          }
        }
      }
    },
  );
});
