// Runs transport operations against one namespace host from inside the hub namespace and prints
// JSON, so integration tests can drive the real SSH transport (the test process itself lives outside).
import { loadInventory } from '../../src/inventory/load.ts';
import { connect } from '../../src/transport/index.ts';

const [inv, hostName, op, ...args] = process.argv.slice(2);
const host = loadInventory(inv).hosts.find((h) => h.name === hostName)!;
const t0 = Date.now();
try {
  const t = await connect(host, { knownHosts: '/nonexistent', acceptNewHostKeys: false });
  let out: unknown;
  if (op === 'exec') out = await t.exec(args[0], { timeoutMs: Number(args[1] ?? 60_000), sudo: args[2] === 'sudo' });
  if (op === 'put') {
    await t.put(args[0], Buffer.from(args[1], 'base64'), parseInt(args[2] ?? '644', 8));
    out = (await t.get(args[0])).toString('base64');
  }
  await t.close();
  console.log(JSON.stringify({ ok: true, ms: Date.now() - t0, out }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, ms: Date.now() - t0, error: (e as Error).message }));
}
process.exit(0);
