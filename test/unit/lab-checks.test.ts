// The lab's refusals and choices that need no VM: ports, memory, disk, missing VMs.
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { checkResources, consoleTail, pickPorts, portFree } from '../../src/lab/vm.ts';

describe('lab checks', () => {
  it('skips a port that is in use', async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const busy = (srv.address() as { port: number }).port;
    expect(await portFree(busy)).toBe(false);
    const [p] = await pickPorts(1, busy);
    expect(p).toBeGreaterThan(busy);
    srv.close();
  });

  it('refuses before anything starts when memory is short', () => {
    expect(() => checkResources(4, 64 * 1024 * 1024)).toThrow(
      /not enough memory: 4 VM\(s\) × 67108864 MiB need about \d+ MiB, \d+ MiB are available/,
    );
  });

  it('says when a console log is empty or missing', () => {
    expect(consoleTail('/nonexistent/console.log')).toBe('(no console log)');
  });
});
