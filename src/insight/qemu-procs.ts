// What `exits` and `tune` share on the host: the running QEMU processes (PID, VM name, KVM or not) and a
// way to ask each one over QMP — `virsh qemu-monitor-command` when libvirt owns the monitor, else its
// QMP socket. Python 3 (as root), because it speaks JSON over a UNIX socket with nothing installed.
import { sh } from '../core/sh.ts';

/** A shell command running `body` after the prelude; argv[1] is `arg`, argv[2:] the VM names to keep (all if none). */
export function pyScript(arg: string, names: string[], body: string): string {
  return [
    "command -v python3 >/dev/null || { echo 'python3 is needed on the host (kvmforge reads QEMU processes with it)' " +
      '>&2; exit 3; }',
    sh`python3 - ${arg} ${names} <<'KVMFORGE_PY'`,
    PRELUDE.trim(),
    body.trim(),
    'KVMFORGE_PY',
  ].join('\n');
}

const PRELUDE = String.raw`
import json, os, re, socket, subprocess, sys, time
wanted = set(sys.argv[2:])

def opts(args, flag):
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]

def name_of(args):
    for v in opts(args, '-name'):
        m = re.search(r'(?:^|,)guest=((?:[^,]|,,)*)', v)
        return (m.group(1).replace(',,', ','), True) if m else (v.split(',')[0], False)
    return None, False

def qmp_path(args):
    for v in opts(args, '-qmp'):
        m = re.match(r'unix:([^,]+)', v)
        if m and 'server' in v:
            return m.group(1)
    mons = (re.search(r'chardev=([^,]+)', v) for v in opts(args, '-mon') if 'mode=control' in v)
    control = {m.group(1) for m in mons if m}
    for v in opts(args, '-chardev'):
        i, p = re.search(r'(?:^|,)id=([^,]+)', v), re.search(r'(?:^|,)path=([^,]+)', v)
        if v.startswith('socket') and i and p and i.group(1) in control and 'server' in v:
            return p.group(1)
    return None

def connect(path, timeout=5):
    # QEMU's monitor serves one client and queues one more: while it has not yet let go of earlier clients (a
    # busy main loop), a connect fails at once with EAGAIN. That is "busy", not "gone": try again until timeout
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            s.close()
            if time.monotonic() > deadline:
                raise RuntimeError('the QMP monitor %s stayed busy with other clients for %d s' % (path, timeout))
            time.sleep(0.05)

def qmp(path, command):
    s = connect(path)
    f = s.makefile('rw')
    f.readline()
    replies = []
    for c in ({'execute': 'qmp_capabilities'}, command):
        f.write(json.dumps(c) + '\n')
        f.flush()
        while True:
            r = json.loads(f.readline())
            if 'return' in r or 'error' in r:
                replies.append(r)
                break
    s.close()
    return replies[-1]

def via_virsh(name, command):
    out = subprocess.run(['virsh', '-q', 'qemu-monitor-command', '--domain', name, json.dumps(command)],
                         capture_output=True, text=True, timeout=30)
    if out.returncode:
        raise RuntimeError(out.stderr.strip() or 'virsh qemu-monitor-command failed')
    return json.loads(out.stdout)

def ask(vm, command):
    r = via_virsh(vm['name'], command) if vm['via'] == 'libvirt' else qmp(vm['path'], command)
    if 'error' in r:
        raise RuntimeError(r['error'].get('desc', str(r['error'])))
    return r['return']

vms = []
for pid in sorted((p for p in os.listdir('/proc') if p.isdigit()), key=int):
    try:
        comm = open('/proc/%s/comm' % pid).read().strip()
        if not (comm.startswith('qemu-system') or comm in ('kvm', 'qemu-kvm')):
            continue
        args = [a.decode(errors='replace') for a in open('/proc/%s/cmdline' % pid, 'rb').read().split(b'\0')[:-1]]
        fds = []
        for fd in os.listdir('/proc/%s/fd' % pid):
            try:
                fds.append(os.readlink('/proc/%s/fd/%s' % (pid, fd)))
            except OSError:
                pass
    except OSError:
        continue
    name, libvirt = name_of(args)
    name = name or 'pid-%s' % pid
    if wanted and name not in wanted:
        continue
    path = qmp_path(args)
    # libvirt's own monitor (id=charmonitor) is libvirt's to use: ask through virsh
    libvirt = libvirt and any('id=charmonitor' in v for v in opts(args, '-chardev'))
    via = 'libvirt' if libvirt else 'qmp' if path else 'none'
    vms.append({'pid': int(pid), 'name': name, 'via': via, 'path': path, 'kvm': 'anon_inode:kvm-vm' in fds})
`;
