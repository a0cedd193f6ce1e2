// The inventory's JSON Schema, built from the core connection vars and the steps' own vars (handed in by
// the caller as a catalog: the inventory layer knows no step).
import type { VarSpec } from '../core/types.ts';

export const HOSTNAME = '^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$';

export const coreVars: Record<string, object> = {
  ansible_host: { type: 'string', minLength: 1, description: 'Address to connect to (default: the host name).' },
  ansible_ssh_host: { type: 'string', minLength: 1, description: 'Old name of ansible_host.' },
  ansible_port: { type: 'integer', minimum: 1, maximum: 65535, description: 'SSH port (default 22).' },
  ansible_ssh_port: { type: 'integer', minimum: 1, maximum: 65535 },
  ansible_user: { type: 'string', minLength: 1, description: 'SSH user (default: root).' },
  ansible_ssh_user: { type: 'string', minLength: 1 },
  ansible_ssh_private_key_file: {
    type: 'string',
    minLength: 1,
    description: 'Private key file (else ssh-agent, else ~/.ssh/id_*).',
  },
  ansible_connection: { enum: ['ssh', 'smart', 'paramiko', 'local'], description: 'local runs on this machine.' },
  ansible_become: { type: 'boolean', description: 'Use sudo for changes when the user is not root.' },
  ansible_become_method: { enum: ['sudo'] },
  ansible_become_user: { enum: ['root'] },
  ansible_become_password: { description: 'Refused: use kvmforge_become_password_env or --ask-become-pass.' },
  ansible_become_pass: { description: 'Refused: use kvmforge_become_password_env or --ask-become-pass.' },
  ansible_ssh_common_args: { type: 'string', description: 'Only -J/-o ProxyJump= is understood.' },
  ansible_python_interpreter: { type: 'string', description: 'Ignored (kvmforge needs no Python on hosts).' },
  kvmforge_become_password_env: {
    type: 'string',
    pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
    description: 'Environment variable holding the sudo password.',
  },
  kvmforge_jump: { type: 'string', minLength: 1, description: 'Jump host, [user@]host[:port] (like ProxyJump).' },
  kvmforge_known_hosts_file: { type: 'string', minLength: 1, description: 'Extra known_hosts file for this host.' },
  kvmforge_command_timeout: {
    type: 'integer',
    minimum: 1,
    description: 'Seconds a single command may run (default 600).',
  },
  kvmforge_reconnect_timeout: {
    type: 'integer',
    minimum: 0,
    description:
      'Seconds to keep trying a new connection after one is lost mid-run; a host found on a new boot (rebooted by ' +
      'someone else) resumes at the interrupted step (default 0: one try).',
  },
  kvmforge_reboot_timeout: {
    type: 'integer',
    minimum: 10,
    description: 'Seconds to wait for a host to come back from a reboot (default 600).',
  },
  kvmforge_lock_timeout: {
    type: 'integer',
    minimum: 1,
    description: 'Seconds to wait for the dpkg lock held by another apt or unattended-upgrades (default 120).',
  },
  reboot_running_vms: {
    enum: ['refuse', 'shutdown', 'managedsave', 'migrate'],
    description:
      'What a reboot by kvmforge does to running libvirt VMs: refuse (default: the host fails before anything is ' +
      'changed), shutdown (ACPI; never destroyed), managedsave (saved and restored), migrate (to reboot_migrate_to).',
  },
  reboot_vm_shutdown_timeout: {
    type: 'integer',
    minimum: 10,
    description: 'Seconds the guests get to shut down before a reboot (reboot_running_vms: shutdown; default 120).',
  },
  reboot_migrate_to: {
    type: 'string',
    minLength: 1,
    description: 'The inventory host the guests migrate to live before a reboot (reboot_running_vms: migrate).',
  },
  reboot_migrate_back: {
    type: 'boolean',
    description: 'Migrate the guests back after the reboot (default true).',
  },
  artifacts_repo: {
    type: 'string',
    pattern: '^(https?|file)://[^\\s]+$',
    description:
      'A package repository made by kvmforge artifacts publish (http(s):// or file://): hosts install source-built ' +
      'packages from it with apt/dnf instead of having them pushed over SSH.',
  },
  artifacts_repo_key: {
    type: 'string',
    minLength: 1,
    description: "The repository's public key on the control machine (kvmforge-archive-keyring.gpg from publish).",
  },
  kvmforge_serial: {
    type: ['integer', 'string', 'array'],
    description:
      'Rolling batches for apply (as --serial): a number of hosts, a percentage ("10%"), or a list whose last entry ' +
      'repeats ([1, "10%", "50%"]: a canary first). Set it for all selected hosts alike.',
  },
  kvmforge_secrets: {
    type: 'array',
    items: { type: 'string', minLength: 1 },
    description:
      'Names of further vars whose values are masked in every log and report (vars named *password*, *secret*, ' +
      '*token*, *passphrase* are masked anyway).',
  },
};

/** The vars kvmforge knows besides the connection vars: each step's, with the namespaces it owns. */
export interface VarCatalog {
  vars: Record<string, object>;
  /** Prefixes (step names with _, and kvmforge) under which an unknown name is a typo. */
  namespaces: string[];
}

/** The JSON Schema of one declared var: its schema, its description with the default (written once, in the step). */
export function varSchema(spec: VarSpec): object {
  const dflt = spec.defaultText ?? (spec.default === undefined ? undefined : JSON.stringify(spec.default));
  return {
    ...spec.schema,
    description: `${spec.description}${dflt !== undefined ? ` (default: ${dflt.replace(/`/g, '')})` : ''}`,
  };
}

/** The catalog of a list of steps: their vars, and `<step>_enabled` for each. */
export function catalogOf(steps: { name: string; vars: Record<string, VarSpec> }[]): VarCatalog {
  const vars: Record<string, object> = {};
  for (const s of steps) {
    vars[`${s.name.replace(/-/g, '_')}_enabled`] = { type: 'boolean', description: 'Run this step (default: true).' };
    for (const [k, v] of Object.entries(s.vars)) vars[k] = varSchema(v);
  }
  return { vars, namespaces: ['kvmforge', 'reboot', 'artifacts', ...steps.map((s) => s.name.replace(/-/g, '_'))] };
}

export const NO_STEPS: VarCatalog = { vars: {}, namespaces: ['kvmforge', 'reboot', 'artifacts'] };

export function allVars(catalog: VarCatalog): Record<string, object> {
  return { ...coreVars, ...catalog.vars };
}

export function buildSchema(catalog: VarCatalog): object {
  const vars = allVars(catalog);
  const ns = catalog.namespaces.join('|');
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://kvmforge.dev/inventory.schema.json',
    title: 'kvmforge inventory (Ansible YAML inventory shape)',
    type: 'object',
    properties: { all: { $ref: '#/definitions/group' } },
    additionalProperties: { $ref: '#/definitions/group' },
    propertyNames: { pattern: HOSTNAME },
    definitions: {
      group: {
        type: ['object', 'null'],
        properties: {
          hosts: {
            type: ['object', 'null'],
            propertyNames: { pattern: HOSTNAME },
            additionalProperties: { $ref: '#/definitions/vars' },
          },
          vars: { $ref: '#/definitions/vars' },
          children: {
            type: ['object', 'null'],
            propertyNames: { pattern: HOSTNAME },
            additionalProperties: { $ref: '#/definitions/group' },
          },
        },
        additionalProperties: false,
      },
      vars: {
        type: ['object', 'null'],
        properties: vars,
        propertyNames: {
          anyOf: [{ enum: Object.keys(vars) }, { not: { pattern: `^(${ns})_` } }],
        },
      },
    },
  };
}
