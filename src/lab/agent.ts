// The QEMU guest agent of a lab VM (qemu-guest-agent in the image, a virtio-serial port in QEMU):
// sets a resumed guest's clock in a fraction of a second, where an SSH login under TCG takes 3–4 s.
import { createConnection } from 'node:net';
import { dirname, join } from 'node:path';
/** What the agent needs of a lab VM (its name and where its monitor socket lives). */
type Vm = { name: string; monitor: string };

export function agentSocket(vm: Pick<Vm, 'name' | 'monitor'>): string {
  return join(dirname(vm.monitor), `${vm.name}.qga`);
}

/**
 * One agent command. The agent may hold half a request from an earlier client, so the exchange
 * starts with 0xFF (the agent drops what it has) and guest-sync-delimited (its reply starts after a
 * 0xFF byte, and carries our id), then the command itself.
 */
export function agentCommand(socket: string, execute: string, args?: object, timeoutMs = 10_000): Promise<unknown> {
  const id = Math.floor(Math.random() * 2 ** 31);
  return new Promise((resolve, reject) => {
    const s = createConnection(socket);
    let buf = '';
    let synced = false;
    const timer = setTimeout(
      () => fail(new Error(`guest agent: no answer to ${execute} in ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    const fail = (e: Error) => {
      clearTimeout(timer);
      s.destroy();
      reject(e);
    };
    s.on('connect', () =>
      s.write(
        Buffer.concat([
          Buffer.from([0xff]),
          Buffer.from(JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } }) + '\n'),
        ]),
      ),
    );
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        if (!synced) {
          const ff = buf.indexOf('\xff');
          if (ff < 0) return;
          buf = buf.slice(ff + 1);
        }
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        let msg: { return?: unknown; error?: { desc?: string } };
        try {
          msg = JSON.parse(line);
        } catch {
          continue;
        }
        if (!synced) {
          if (msg.return === id) {
            synced = true;
            s.write(JSON.stringify(args ? { execute, arguments: args } : { execute }) + '\n');
          }
          continue;
        }
        clearTimeout(timer);
        s.end();
        if (msg.error) reject(new Error(`guest agent: ${execute}: ${msg.error.desc ?? JSON.stringify(msg.error)}`));
        else resolve(msg.return);
        return;
      }
    });
    s.on('error', (e) => fail(new Error(`guest agent at ${socket}: ${e.message}`)));
  });
}

/**
 * A resumed guest's clock is where it was when the state was saved: set it to now. The agent sets
 * the time, then runs hwclock, which the minimal image lacks (the RTC follows the host's clock
 * anyway), so what counts is the clock read back.
 */
export async function syncClock(vm: Vm): Promise<void> {
  const socket = agentSocket(vm);
  let setError = '';
  let skew = Number.POSITIVE_INFINITY;
  // on a busy host the agent can take seconds to act on a command, and the time sent is late by then: set it again
  // (at most three times), and compare what it reads with the middle of that read
  for (let attempt = 0; attempt < 3 && !(skew < 5000); attempt++) {
    setError = '';
    await agentCommand(socket, 'guest-set-time', { time: Date.now() * 1_000_000 }).catch(
      (e: Error) => (setError = e.message),
    );
    const t0 = Date.now();
    const guestNs = Number(await agentCommand(socket, 'guest-get-time'));
    skew = Math.abs(guestNs / 1_000_000 - (t0 + Date.now()) / 2);
  }
  if (!(skew < 5000))
    throw new Error(
      `${vm.name}: could not set the guest clock after resume (${Math.round(skew / 1000)} s ` +
        `off${setError ? `; ${setError}` : ''})`,
    );
}
