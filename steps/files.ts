// files: plain files with the given content, mode and owner (like Ansible's copy with content:).
import { fileState, planFiles } from '../src/core/file.ts';
import { ConfigError } from '../src/core/errors.ts';
import type { FileSpec, Host, Step, VarSpec } from '../src/core/types.ts';

const vars: Record<string, VarSpec> = {
  files: {
    schema: {
      type: 'array',
      items: {
        type: 'object',
        required: ['path', 'content'],
        additionalProperties: false,
        properties: {
          path: { type: 'string', pattern: '^/' },
          content: { type: 'string' },
          mode: { type: 'string', pattern: '^0?[0-7]{3,4}$' },
          owner: { type: 'string', pattern: '^[a-z_][a-z0-9_-]*(:[a-z_][a-z0-9_-]*)?$' },
        },
      },
    },
    default: [],
    defaultText: '[{path, content, mode: "644", owner: root:root}]',
    description:
      'Files to manage: path (absolute), content, mode (octal string, default "644"), owner (default root:root).',
  },
};

const files: Step<FileSpec[]> = {
  name: 'files',
  description: 'Files with given content, mode and owner (atomic replace, old version kept)',
  doc: 'files with given content, mode, owner (atomic, `.kvmforge.bak` kept)',
  vars,
  wanted: (host) => ((host.vars.files as unknown[] | undefined)?.length ? true : 'no files listed'),
  params(host: Host) {
    const list = host.vars.files as FileSpec[];
    const seen = new Set<string>();
    for (const f of list) {
      if (f.path.split('/').includes('..'))
        throw ConfigError.one(`path '${f.path}' contains '..': give the real path`, {
          ...host.varPos.files,
          key: `${host.name}.files`,
        });
      if (seen.has(f.path))
        throw ConfigError.one(`path '${f.path}' is listed twice`, { ...host.varPos.files, key: `${host.name}.files` });
      seen.add(f.path);
    }
    return list;
  },
  facts: (list) => list.map((f) => fileState(f.path)),
  plan: (ctx, list) => planFiles(ctx, list),
};
export default files;
