// The five concepts: Host, Transport, Facts, Step, Change.
import type { Facts } from '../facts/gather.ts';

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

export interface FileSpec {
  path: string;
  content: string;
  mode?: string;
  owner?: string;
  /** Keep no PATH.kvmforge.bak beside it: for directories that load every file (ifupdown's interfaces.d);
   * the step keeps the old version elsewhere. */
  noBackup?: boolean;
}

export interface Change {
  summary: string;
  /** Human diff: a unified diff for files, `a → b` for values. */
  diff?: string;
  /** Script to run (as root) to make the change. */
  script?: string;
  /** A file to write atomically, keeping the old one as PATH.kvmforge.bak. */
  file?: FileSpec;
  /** Reboot the host after this change (the runner waits for it to come back). */
  reboot?: boolean;
  /** Shown in the plan, not applied. */
  warning?: string;
  /** A change that may cut the connection (a bridge taking over the NIC): the script arms a rollback on
   * the host and starts the switch detached; the runner then connects afresh, runs `verify`, and on
   * success `commit` (disarms the rollback). Unreachable or unverified: the host rolls itself back
   * after `timeoutS`, `rollback` runs at once when the host is still reachable, the step fails. `rolledBack` exits 0 once the rollback ran and prints what the host found before it. */
  confirm?: { verify: string; commit: string; rollback: string; timeoutS: number; rolledBack: string };
  /** Work on the control machine before `script` runs (build or fetch an artifact, push it to this host). */
  prepare?: (io: PrepareIO) => Promise<void>;
  /** With `reboot`: run `verify` on the rebooted host (non-zero: the step fails with its output), then `commit`. */
  afterReboot?: { verify: string; commit: string };
  /** With `reboot`: how long the host may take to come back (default kvmforge_reboot_timeout, 600 s). */
  rebootTimeoutS?: number;
}

export interface PrepareIO {
  /** This host's transport. */
  transport: Transport;
  /** A line for the live view. */
  progress(text: string): void;
  /** A line in this host's journal. */
  log(text: string): void;
  /** Appends to a named log file beside this host's journal (a build log). Returns its path. */
  logFile(name: string): { append(chunk: string): void; path: string };
}

export interface StepContext {
  host: Host;
  facts: Facts;
  /** Read-only probe; memoized per plan. Returns stdout. */
  probe(script: string): Promise<string>;
  /** File content, or null when it does not exist. Memoized per plan. */
  readFile(path: string): Promise<string | null>;
  /** In check mode: earlier steps of this run that would change the host first (their changes aren't on it yet). */
  pendingSteps?: string[];
  /** Every host of the inventory (a build host may be one the run doesn't target). */
  inventory?: Host[];
  /** Opens a transport to another host of the inventory, with this run's settings. */
  connect?(host: Host): Promise<Transport>;
}

export interface Step<P = unknown> {
  name: string;
  description: string;
  /** JSON Schema for the vars this step owns (merged into inventories/schema.json). */
  vars: Record<string, object>;
  /** Picks and validates this step's vars for a host; throws ConfigError. No host is touched. */
  params(host: Host): P;
  /** Reads facts and returns the changes to make. Never changes the host. */
  plan(ctx: StepContext, params: P): Promise<Change[]>;
  /** Source-build steps: what this host needs built (for `kvmforge build`, which builds without installing). */
  artifact?(ctx: StepContext, params: P): Promise<import('../artifacts/kit.ts').ArtifactRef>;
  /** Checks that need every host's params (a build host named in the inventory); returns problems. */
  checkAll?(params: Map<string, P>, inventory: Host[]): import('./errors.ts').Problem[];
}
