import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

describe('Vagrantfile', () => {
  it('passes vagrant validate', () => {
    const out = execFileSync('vagrant', ['validate'], {
      env: { ...process.env, VAGRANT_CHECKPOINT_DISABLE: '1' },
    }).toString();
    expect(out).toContain('Vagrantfile validated successfully');
  }, 60_000);

  it('defines a Debian 12 and a Rocky 9 machine for libvirt and VirtualBox', () => {
    const out = execFileSync('ruby', [
      '-e',
      'src = File.read("Vagrantfile"); puts src.scan(/\'(debian\\/bookworm64|generic\\/rocky9)\'/).flatten; puts ' +
        'src.scan(/provider :(\\w+)/).flatten',
    ]).toString();
    expect(out.split('\n').filter(Boolean)).toEqual(['debian/bookworm64', 'generic/rocky9', 'libvirt', 'virtualbox']);
  });
});
