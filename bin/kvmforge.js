#!/usr/bin/env node
// Runs the TypeScript sources directly (tsx), so `npm install` is the only set-up step.
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../src/cli/main.ts');
// If a bug ever leaves main() waiting on something with no open handle, Node would exit quietly
// (code 13, no report); say so instead.
let finished = false;
process.on('exit', (c) => {
  if (!finished) process.stderr.write(`kvmforge: internal error: the run stopped with work still pending (exit ${c}); the journal shows how far it got\n`);
});
const code = await main(process.argv.slice(2));
finished = true;
// every host connection is closed by now; don't let a stray handle keep the process alive
if (process.env.KVMFORGE_RSS_FILE) {
  const { writeFileSync } = await import('node:fs');
  writeFileSync(process.env.KVMFORGE_RSS_FILE, String(process.resourceUsage().maxRSS));
}
process.stdout.write('', () => process.exit(code));
