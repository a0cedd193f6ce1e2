// One helper for every file a step manages: compare, diff, and an atomic replace that keeps a backup.
import type * as Diff from 'diff';
import { lazy } from './lazy.ts';
import { quote } from './sh.ts';
import { strictFact, type Change, type Fact, type FileSpec, type StepContext } from './types.ts';

const diff = lazy<typeof Diff>('diff');

export const BACKUP_SUFFIX = '.kvmforge.bak';

export interface FileState {
  exists: boolean;
  mode?: string;
  owner?: string;
  content?: string;
}

export function fileProbe(path: string): string {
  const p = quote(path);
  return `if [ -f ${p} ]; then stat -c '%a %U:%G' ${p}; base64 < ${p}; else echo MISSING; fi`;
}

export function parseFileProbe(out: string): FileState {
  const [head, ...rest] = out.split('\n');
  if (head.trim() === 'MISSING' || !head.trim()) return { exists: false };
  const [mode, owner] = head.trim().split(' ');
  return { exists: true, mode, owner, content: Buffer.from(rest.join(''), 'base64').toString('utf8') };
}

export function unifiedDiff(path: string, before: string, after: string): string {
  return diff()
    .createTwoFilesPatch(path, path, before, after, '', '', { context: 3 })
    .split('\n')
    .slice(2)
    .map((l) => l.replace(/\t$/, ''))
    .join('\n')
    .trimEnd();
}

/** A file as it is on the host: exists, mode, owner, content. */
export const fileState = (path: string): Fact<FileState> =>
  strictFact(`file:${path}`, fileProbe(path), (out) => parseFileProbe(out));

/** A file's text, or null when it does not exist. */
export const fileText = (path: string): Fact<string | null> =>
  strictFact(`text:${path}`, fileProbe(path), (out) => parseFileProbe(out).content ?? null);

/** Plans files in one round trip: a change for each file whose content, mode or owner differ. */
export async function planFiles(
  ctx: StepContext,
  specs: FileSpec[],
  summary?: (spec: FileSpec, exists: boolean) => string,
): Promise<Change[]> {
  if (!specs.length) return [];
  const states = await ctx.read(...specs.map((s) => fileState(s.path)));
  const changes: Change[] = [];
  specs.forEach((spec, i) => {
    const c = compareFile(spec, states[i], summary);
    if (c) changes.push(c);
  });
  return changes;
}

/** Plans one file: null when content, mode and owner already match. */
export async function planFile(ctx: StepContext, spec: FileSpec, summary?: string): Promise<Change | null> {
  return (await planFiles(ctx, [spec], summary ? () => summary : undefined))[0] ?? null;
}

export function compareFile(
  spec: FileSpec,
  state: FileState,
  summary?: (spec: FileSpec, exists: boolean) => string,
): Change | null {
  const mode = spec.mode ?? '644';
  const owner = spec.owner ?? 'root:root';
  const parts: string[] = [];
  if (!state.exists || state.content !== spec.content) {
    parts.push(unifiedDiff(spec.path, state.content ?? '', spec.content));
  }
  if (state.exists && state.mode !== mode.replace(/^0+(?=\d)/, '')) parts.push(`mode ${state.mode} → ${mode}`);
  if (state.exists && state.owner !== owner) parts.push(`owner ${state.owner} → ${owner}`);
  if (!parts.length) return null;
  return {
    kind: 'file',
    summary: summary ? summary(spec, state.exists) : `${state.exists ? 'update' : 'create'} ${spec.path}`,
    diff: parts.join('\n'),
    file: { ...spec, mode, owner },
  };
}

/** Shell script that replaces `spec.path` atomically: temp file beside it, fsync, backup, rename. */
export function writeFileScript(spec: FileSpec): string {
  const p = quote(spec.path);
  const b64 = Buffer.from(spec.content, 'utf8')
    .toString('base64')
    .replace(/(.{76})/g, '$1\n');
  return [
    `target=${p}`,
    'mkdir -p "$(dirname "$target")"',
    // a hidden temp name: directories that load every file (interfaces.d/*, conf.d) skip dotfiles
    // a write cut short by a reboot or a kill -9 can leave its temp file: the next write of the file clears it
    'rm -f "$(dirname "$target")/.$(basename "$target").kvmforge-"??????',
    'tmp=$(mktemp "$(dirname "$target")/.$(basename "$target").kvmforge-XXXXXX")',
    `trap 'rm -f "$tmp"' EXIT`,
    `trap 'rm -f "$tmp"; exit 143' TERM INT HUP`,
    // through cat: its write error names the cause (base64's says only "write error")
    `base64 -d <<'KVMFORGE_EOF' | cat > "$tmp" || { echo "kvmforge: cannot write $target (temp file $tmp, removed; ` +
      `$target unchanged): see the error above" >&2; exit 1; }`,
    b64,
    'KVMFORGE_EOF',
    `chmod ${quote(spec.mode ?? '644')} "$tmp"`,
    `chown ${quote(spec.owner ?? 'root:root')} "$tmp"`,
    'sync "$tmp" 2>/dev/null || sync',
    ...(spec.noBackup
      ? []
      : [
          `if [ -e "$target" ]; then cp -p "$target" "$target${BACKUP_SUFFIX}" || { echo "kvmforge: cannot back up ` +
            `$target" >&2; exit 1; }; fi`,
        ]),
    'mv -f "$tmp" "$target"',
    'trap - EXIT',
  ].join('\n');
}
