// GRUB menu facts for a safe kernel rollout: which entry boots which kernel, and which one is the default.

export interface GrubEntry {
  /** What grub-set-default / grub-reboot take: the id, prefixed by its submenu's id ('sub>entry'). */
  path: string;
  title: string;
  /** The kernel release its `linux` line boots. */
  release?: string;
  recovery: boolean;
  /** Top-level position (a submenu counts as one), for GRUB_DEFAULT=N. */
  index: number;
}

/** Menu entries of a grub.cfg, in order. */
export function parseGrubCfg(text: string): GrubEntry[] {
  const out: GrubEntry[] = [];
  const stack: { id: string; title: string }[] = [];
  let current: GrubEntry | undefined;
  let depth = 0;
  let top = -1;
  const opener = /^\s*(menuentry|submenu)\s+'([^']*)'.*?(?:\$menuentry_id_option|--id)\s+'([^']*)'.*\{\s*$/;
  for (const line of text.split('\n')) {
    const m = opener.exec(line);
    if (m) {
      if (depth === 0) top++;
      if (m[1] === 'submenu') stack.push({ id: m[3], title: m[2] });
      else {
        current = {
          path: [...stack.map((s) => s.id), m[3]].join('>'),
          title: m[2],
          recovery: /recovery/.test(m[3]),
          index: top,
        };
        out.push(current);
      }
      depth++;
      continue;
    }
    const linux = /^\s*linux(?:16|efi)?\s+\S*vmlinuz-(\S+)/.exec(line);
    if (linux && current) current.release = linux[1];
    if (/^\s*\}\s*$/.test(line) && depth > 0) {
      depth--;
      if (current) current = undefined;
      else stack.pop();
    }
  }
  return out;
}

/**
 * The entry GRUB boots by default: GRUB_DEFAULT (an index, an id, a title or 'sub>id'), or saved_entry when it is
 * 'saved'.
 */
export function defaultEntry(entries: GrubEntry[], grubDefault: string, savedEntry: string): GrubEntry | undefined {
  const want = grubDefault === 'saved' ? savedEntry || '0' : grubDefault || '0';
  if (/^\d+$/.test(want)) return entries.find((e) => e.index === Number(want));
  return entries.find((e) => e.path === want || e.path.split('>').pop() === want || e.title === want);
}

/** The normal (non-recovery) entry of a release. */
export const entryOf = (entries: GrubEntry[], release: string) =>
  entries.find((e) => e.release === release && !e.recovery && e.path.includes('>')) ??
  entries.find((e) => e.release === release && !e.recovery);
