#!/usr/bin/env node
// Runs the TypeScript sources directly (tsx), so `npm install` is the only set-up step.
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../src/cli/main.ts');
const code = await main(process.argv.slice(2));
// every host connection is closed by now; don't let a stray handle keep the process alive
process.stdout.write('', () => process.exit(code));
