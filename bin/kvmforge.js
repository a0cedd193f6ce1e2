#!/usr/bin/env node
// Runs the TypeScript sources directly (tsx), so `npm install` is the only set-up step.
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../src/cli/main.ts');
const code = await main(process.argv.slice(2));
// every host connection is closed by now; don't let a stray handle keep the process alive
if (process.env.KVMFORGE_RSS_FILE) {
  const { writeFileSync } = await import('node:fs');
  writeFileSync(process.env.KVMFORGE_RSS_FILE, String(process.resourceUsage().maxRSS));
}
process.stdout.write('', () => process.exit(code));
