// files: plain files with the given content, mode and owner (like Ansible's copy with content:).
import { planFiles } from '../src/core/file.ts';
import { ConfigError } from '../src/core/errors.ts';
import type { FileSpec, Host, Step } from '../src/core/types.ts';

const files: Step<FileSpec[] | undefined> = {
  name: 'files',
  description: 'Files with given content, mode and owner (atomic replace, old version kept)',
  vars: {
    files: {
      type: 'array',
      description: 'Files to manage: path (absolute), content, mode (octal string, default "644"), owner (default root:root).',
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
  },
  params(host: Host) {
    const list = host.vars.files as FileSpec[] | undefined;
    if (!list?.length) return undefined;
    const seen = new Set<string>();
    for (const f of list) {
      if (f.path.split('/').includes('..')) throw ConfigError.one(`path '${f.path}' contains '..': give the real path`, { ...host.varPos.files, key: `${host.name}.files` });
      if (seen.has(f.path)) throw ConfigError.one(`path '${f.path}' is listed twice`, { ...host.varPos.files, key: `${host.name}.files` });
      seen.add(f.path);
    }
    return list;
  },
  plan: (ctx, list) => planFiles(ctx, list ?? []),
};
export default files;
