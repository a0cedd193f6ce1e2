#!/usr/bin/env node
// The published package runs the compiled JavaScript in dist/ (npm run build); a source checkout without
// dist/ (or with KVMFORGE_SOURCE=1) runs the TypeScript sources through tsx, a development dependency.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/src/cli/main.js', import.meta.url);
let main;
if (existsSync(compiled) && !process.env.KVMFORGE_SOURCE) ({ main } = await import(compiled.href));
else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
// If a bug ever leaves main() waiting on something with no open handle, Node would exit quietly
// (code 13, no report); say so instead.
let finished = false;
process.on('exit', (c) => {
  if (!finished)
    process.stderr.write(
      `kvmforge: internal error: the run stopped with work still pending (exit ${c}); ` +
        'the journal shows how far it got\n',
    );
});
const code = await main(process.argv.slice(2));
finished = true;
// every host connection is closed by now; don't let a stray handle keep the process alive
if (process.env.KVMFORGE_RSS_FILE) {
  const { writeFileSync } = await import('node:fs');
  writeFileSync(process.env.KVMFORGE_RSS_FILE, String(process.resourceUsage().maxRSS));
}
process.stdout.write('', () => process.exit(code));
