// A port that accepts TCP and then closes — what a rebooting lab VM behind QEMU's forwarded port, or an
// sshd going down, looks like — must fail the connection attempt at once, never leave it pending
// (a pending promise with no open handle lets Node exit mid-run with no report).
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { SshTransport } from '../../src/transport/ssh.ts';

function server(onSocket: (s: Socket) => void): Promise<{ srv: Server; port: number }> {
  return new Promise((resolve) => {
    const srv = createServer(onSocket);
    srv.listen(0, '127.0.0.1', () => resolve({ srv, port: (srv.address() as { port: number }).port }));
  });
}

const servers: Server[] = [];
afterAll(() => {
  for (const s of servers) s.close();
});

async function attempt(onSocket: (s: Socket) => void) {
  const { srv, port } = await server(onSocket);
  servers.push(srv);
  const t0 = Date.now();
  const err = await SshTransport.connect(
    { address: '127.0.0.1', port, user: 'nobody', local: false, become: false },
    { knownHostsFiles: [], acceptNewInto: null, connectTimeoutMs: 15_000 },
  ).then(
    () => undefined,
    (e: Error) => e,
  );
  return { err, ms: Date.now() - t0 };
}

describe('ssh connect against a port that closes', () => {
  it('fails at once when the peer closes before sending a banner', async () => {
    const { err, ms } = await attempt((s) => s.destroy());
    expect(err?.message).toMatch(/^ssh to nobody@\[127\.0\.0\.1\]:\d+ failed: Connection lost before handshake$/);
    expect(ms).toBeLessThan(5000);
  });

  // ssh2 emits only 'close' here; before the fix the attempt stayed pending forever
  it('fails at once when the peer sends its banner and closes', async () => {
    const { err, ms } = await attempt((s) => s.end('SSH-2.0-OpenSSH_9.2\r\n'));
    expect(err?.message).toMatch(
      /^nobody@\[127\.0\.0\.1\]:\d+ closed the connection before the SSH handshake finished$/,
    );
    expect(ms).toBeLessThan(5000);
  });

  it('fails at once when the peer sends its banner and closes a moment later (sshd stopped by a reboot)', async () => {
    const { err, ms } = await attempt((s) => {
      s.write('SSH-2.0-OpenSSH_9.2\r\n');
      setTimeout(() => s.destroy(), 300);
    });
    expect(err?.message).toMatch(/closed the connection before the SSH handshake finished$/);
    expect(ms).toBeLessThan(5000);
  });
});
