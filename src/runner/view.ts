// The live view: listr2 draws one line per host (plain lines when not a TTY). The only listr2 import.
import { Listr, type ListrTaskWrapper } from 'listr2';
import type { RunEvents } from './run.ts';
import type { HostReport } from './report.ts';

export function liveView(
  hosts: string[],
  opts: { stream: NodeJS.WriteStream; verb: string },
): { events: RunEvents; done: Promise<void> } {
  const pending = new Map<string, { resolve: (r: HostReport) => void; task?: ListrTaskWrapper<any, any, any> }>();
  const waits = new Map<string, Promise<HostReport>>();
  for (const h of hosts) waits.set(h, new Promise((resolve) => pending.set(h, { resolve })));
  const list = new Listr(
    hosts.map((h) => ({
      title: h,
      task: async (_: unknown, task: ListrTaskWrapper<any, any, any>) => {
        pending.get(h)!.task = task;
        const r = await waits.get(h)!;
        const changed = r.steps
          .filter((s) => s.status === 'changed' || s.status === 'would change')
          .map((s) => `${s.step} ${s.status} (${s.changes.length})`);
        task.title =
          `${h}: ${r.status}${changed.length ? ` — ${changed.join(', ')}` : ''} ` + `(${(r.ms / 1000).toFixed(1)}s)`;
        if (r.status === 'failed') throw new Error(`${h}: ${r.error}`);
      },
    })),
    {
      concurrent: true,
      exitOnError: false,
      collectErrors: false,
      rendererOptions: { collapseErrors: false },
      fallbackRendererOptions: { timestamp: undefined },
    } as any,
  );
  const set = (h: string, text: string) => {
    const t = pending.get(h)?.task;
    if (t) t.output = text;
  };
  const events: RunEvents = {
    stepStart: (h, s) => set(h, `${opts.verb} ${s}`),
    message: (h, text) => set(h, text),
    output: (h, s, chunk) => {
      const last = chunk.trim().split('\n').pop();
      if (last) set(h, `${s}: ${last.slice(0, 120)}`);
    },
    hostEnd: (r) => pending.get(r.host)!.resolve(r),
  };
  const done = list.run().then(
    () => undefined,
    () => undefined,
  );
  return { events, done };
}
