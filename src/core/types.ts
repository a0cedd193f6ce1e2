// The five concepts: Host, Transport, Fact, Step, Change. Data shapes only; nothing here imports code.
import { CommandError, type Problem } from './errors.ts';

export interface Position {
  file: string;
  line: number;
  col: number;
}

export interface Connection {
  address: string;
  port: number;
  user: string;
  keyFile?: string;
  local: boolean;
  become: boolean;
  /** Name of the environment variable that holds the sudo password (never the password). */
  becomePasswordEnv?: string;
  jump?: string;
  knownHostsFile?: string;
  /** What the inventory set, as OpenSSH options (Port=, User=, IdentityFile=, ProxyJump=, …): `ssh -G`
   * completes them from ~/.ssh/config at connect time, as ssh does for Ansible. */
  sshOptions?: string[];
  /** an ssh_config file given with -F in ansible_ssh_*_args, instead of ~/.ssh/config */
  sshConfigFile?: string;
  /** whether the inventory named the user (else ssh's config or the local user decides) */
  userSet?: boolean;
}

export interface Host {
  name: string;
  groups: string[];
  vars: Record<string, unknown>;
  /** Where each merged var was set, for file:line errors. */
  varPos: Record<string, Position>;
  pos: Position;
  conn: Connection;
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  sudo?: boolean;
  timeoutMs?: number;
  onOutput?: (chunk: string, stream: 'stdout' | 'stderr') => void;
  /** Don't keep stdout in the result (a stream the caller only counts with onOutput; SSH transport). */
  discardStdout?: boolean;
  /** Values to mask in logs (secrets). */
  label?: string;
}

export interface Transport {
  /** Runs `script` with `sh -s` (script on stdin, `set -eu` added, parsed whole before it runs). */
  exec(script: string, opts?: ExecOptions): Promise<ExecResult>;
  put(path: string, content: Buffer | string, mode?: number): Promise<void>;
  get(path: string): Promise<Buffer>;
  /** Large files without holding them in memory: upload a local file / download to a local file. */
  putFile?(localPath: string, path: string, mode?: number): Promise<void>;
  getFile?(path: string, localPath: string): Promise<void>;
  close(): Promise<void>;
}

/** A read-only probe: one command and a pure parser (as pyinfra's facts). Facts asked together are read
 * in one round trip; each is read once per plan and host. The name is unique per argument ('file:/etc/x'). */
export interface Fact<T> {
  readonly name: string;
  /** POSIX sh, read-only; run as root (through sudo where needed), in a subshell of its own. */
  readonly command: string;
  /** Its output (stdout) and exit code to a value. A parser may throw a user error (CommandError, HostError). */
  parse(out: string, code: number, stderr: string): T;
}

export const fact = <T>(name: string, command: string, parse: Fact<T>['parse']): Fact<T> => ({ name, command, parse });

/** A fact whose command must succeed: a non-zero exit fails the plan with the command's own stderr. */
export const strictFact = <T>(name: string, command: string, parse: (out: string) => T): Fact<T> =>
  fact(name, command, (out, code, stderr) => {
    if (code !== 0)
      throw new CommandError(
        '',
        command,
        code,
        stderr,
        `reading ${name} failed (exit ${code}): ${stderr.trim().split('\n').slice(-2).join(' | ')}`,
      );
    return parse(out);
  });

/** The values of a tuple of facts. */
export type FactValues<F extends readonly Fact<unknown>[]> = { [K in keyof F]: F[K] extends Fact<infer T> ? T : never };

export interface FileSpec {
  path: string;
  content: string;
  mode?: string;
  owner?: string;
  /** Keep no PATH.kvmforge.bak beside it: for directories that load every file (ifupdown's interfaces.d);
   * the step keeps the old version elsewhere. */
  noBackup?: boolean;
}

// What a source build is, as data (the artifacts library builds, ships and installs it).
export type Component = 'kernel' | 'qemu' | 'libvirt';
export type PackageManager = 'apt' | 'dnf' | 'yum';

export interface Source {
  component: Component;
  version: string;
  /** An http(s) URL (upstream or a mirror), or a file on the control machine. */
  url?: string;
  path?: string;
  /** Expected sha256 (required for URLs; for a local file, computed when not given). */
  sha256?: string;
  /** Detached signature (URL or local file) and the keyring to check it with (a local file), both optional. */
  signature?: string;
  keyring?: string;
  fileName: string;
  /** `<c>_source: distro`: the build host's distribution source package, resolved at plan time. */
  distro?: boolean;
  /** Its files as the build host's signed package index lists them (the first is the .dsc). */
  distroFiles?: { url: string; name: string; sha256: string }[];
  /** dnf: the source RPM `dnf download --source` fetches (`name-[epoch:]version-release`) and its file name. */
  srpm?: { spec: string; file: string };
}

export interface BuildSpec {
  component: Component;
  version: string;
  /** sha256 of the source tarball (of the .dsc for a Debian source package; for a source RPM, whose repository
   * index dnf checks and whose signature rpmkeys checks at fetch time, its file name: one name-version-release is
   * one signed build). */
  sourceSha: string;
  distro: { family: string; id: string; versionId: string; arch: string; pm: PackageManager };
  /** Build options that change the result (prefix, configure/meson args, kernel config base). */
  options: Record<string, string | string[]>;
  /** Files the build reads, by name in the work dir (kernel config base and fragments). */
  files: Record<string, string>;
  /** Built from the distribution's source package: its name and version (`qemu 1:7.2+dfsg-7+deb12u18`). */
  sourcePackage?: string;
}

export interface BuildParams {
  source: Source;
  /** Inventory name of the build host; undefined: the first host of the run that needs the artifact. */
  buildHost?: string;
  buildDir: string;
}

/** What a host needs built: the spec, its key (a hash of every input), and where to build it. */
export interface ArtifactRef {
  spec: BuildSpec;
  key: string;
  build: BuildParams;
}

interface ChangeText {
  summary: string;
  /** Human diff: a unified diff for files, `a → b` for values. */
  diff?: string;
  /** Shown in the plan. */
  warning?: string;
}

/** What a step asks for: data the runner applies, in order; nothing changes it after planning. */
export type Change = ChangeText &
  (
    | { kind: 'note' }
    /** A script run as root. */
    | { kind: 'script'; script: string }
    /** A file written atomically, the old one kept as PATH.kvmforge.bak. */
    | { kind: 'file'; file: FileSpec }
    /** A change that may cut the connection (a bridge taking over the NIC): the script arms a rollback on the
     * host and starts the switch detached; the runner then connects afresh, runs `verify`, and on success
     * `commit` (disarms the rollback). Unreachable or unverified: the host rolls itself back after
     * `timeoutS`, `rollback` runs at once when the host is still reachable, the step fails. `rolledBack`
     * exits 0 once the rollback ran and prints what the host found before it. */
    | {
        kind: 'switch';
        script: string;
        verify: string;
        commit: string;
        rollback: string;
        timeoutS: number;
        rolledBack: string;
      }
    /** Reboot (the runner waits for a new boot), after `script` when there is one (arming a one-time boot entry);
     * `check`: run `verify` on the rebooted host (non-zero: the step fails with its output), then `commit`. */
    | { kind: 'reboot'; script?: string; timeoutS?: number; check?: { verify: string; commit: string } }
    /** The artifact's packages (those whose file name starts with one of `packages`), built once on the build host
     * (or taken from the cache), pushed and installed; `before`/`after` run around the install. */
    | {
        kind: 'install';
        artifact: ArtifactRef;
        packages: string[];
        before?: string;
        after?: string;
        reinstall?: boolean;
      }
  );

export interface StepContext {
  host: Host;
  /** Named facts: those not read yet this plan are read together, in one round trip. */
  read<F extends readonly Fact<unknown>[]>(...facts: F): Promise<FactValues<F>>;
  /** In check mode: earlier steps of this run that would change the host first (their changes aren't on it yet). */
  pendingSteps?: string[];
  /** Every host of the inventory (a build host may be one the run doesn't target). */
  inventory?: Host[];
  /** Opens a transport to another host of the inventory, with this run's settings. */
  connect?(host: Host): Promise<Transport>;
}

/** One var a step owns: its JSON Schema, its default (written here only), and what it means. */
export interface VarSpec {
  schema: Record<string, unknown>;
  default?: unknown;
  /** How the default reads in the docs, when the value alone says too little ("the default route's NIC"). */
  defaultText?: string;
  description: string;
}

export interface Step<P = unknown> {
  name: string;
  /** One line, for `kvmforge steps`. */
  description: string;
  /** What it does, for README's step table (generated from the steps). */
  doc: string;
  /** The vars this step owns (merged into inventories/schema.json; the README table is made from them). */
  vars: Record<string, VarSpec>;
  /** Is the step on for this host? `<name>_enabled` (default true) is the runner's; this is for steps that are
   * off until asked for (a version to build, VMs to define). A string is the reason it is off. */
  wanted?(host: Host): true | string;
  /** Picks and validates this step's vars for a host; throws ConfigError. No host is touched. */
  params(host: Host): P;
  /** The facts its plan reads first, read with the host's first round trip. A step without it gets every basic
   * fact there (HOST_FACTS); either way what plan reads and the first read missed costs one more round trip. */
  facts?(params: P): readonly Fact<unknown>[];
  /** Reads facts and returns the changes to make. Never changes the host. */
  plan(ctx: StepContext, params: P): Promise<Change[]>;
  /** Checks that need every host's params (a build host named in the inventory); returns problems. */
  checkAll?(params: Map<string, P>, inventory: Host[]): Problem[];
}

/** A change the runner applies by running something on the host (a note only shows). */
export const applies = (c: Change) => c.kind !== 'note';
