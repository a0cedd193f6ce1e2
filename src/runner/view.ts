// The live view: listr2 draws one line per host (plain lines when not a TTY). The only listr2 import.
import { Listr, ListrLogger, ProcessOutput, type ListrTaskWrapper } from 'listr2';
import type { RunEvents } from './run.ts';
import type { HostReport } from './report.ts';

export function liveView(
  hosts: string[],
  opts: { stream: NodeJS.WriteStream; verb: string },
): { events: RunEvents; done: Promise<void> } {
  const pending = new Map<string, { resolve: (r: HostReport) => void; task?: ListrTaskWrapper<any, any, any> }>();
  const waits = new Map<string, Promise<HostReport>>();
  for (const h of hosts) waits.set(h, new Promise((resolve) => pending.set(h, { resolve })));
  // everything listr2 draws goes to `stream` (stderr): stdout is the report's, also when it is a pipe
  const logger = new ListrLogger({ processOutput: new ProcessOutput(opts.stream, opts.stream) });
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
      // Ctrl-C is kvmforge's to handle (finish the running changes, write the report): listr2's own handler
      // would exit at once with 127
      registerSignalListeners: false,
      collectErrors: false,
      rendererOptions: { collapseErrors: false, logger },
      fallbackRendererOptions: { timestamp: undefined, logger },
      fallbackRendererCondition: () => !opts.stream.isTTY,
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
