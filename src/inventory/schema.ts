// The inventory's JSON Schema, built from the core connection vars and every step's own vars.
import { steps } from '../../steps/index.ts';

export const HOSTNAME = '^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$';

export const coreVars: Record<string, object> = {
  ansible_host: { type: 'string', minLength: 1, description: 'Address to connect to (default: the host name).' },
  ansible_ssh_host: { type: 'string', minLength: 1, description: 'Old name of ansible_host.' },
  ansible_port: { type: 'integer', minimum: 1, maximum: 65535, description: 'SSH port (default 22).' },
  ansible_ssh_port: { type: 'integer', minimum: 1, maximum: 65535 },
  ansible_user: { type: 'string', minLength: 1, description: 'SSH user (default: root).' },
  ansible_ssh_user: { type: 'string', minLength: 1 },
  ansible_ssh_private_key_file: { type: 'string', minLength: 1, description: 'Private key file (else ssh-agent, else ~/.ssh/id_*).' },
  ansible_connection: { enum: ['ssh', 'smart', 'paramiko', 'local'], description: 'local runs on this machine.' },
  ansible_become: { type: 'boolean', description: 'Use sudo for changes when the user is not root.' },
  ansible_become_method: { enum: ['sudo'] },
  ansible_become_user: { enum: ['root'] },
  ansible_become_password: { description: 'Refused: use kvmforge_become_password_env or --ask-become-pass.' },
  ansible_become_pass: { description: 'Refused: use kvmforge_become_password_env or --ask-become-pass.' },
  ansible_ssh_common_args: { type: 'string', description: 'Only -J/-o ProxyJump= is understood.' },
  ansible_python_interpreter: { type: 'string', description: 'Ignored (kvmforge needs no Python on hosts).' },
  kvmforge_become_password_env: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$', description: 'Environment variable holding the sudo password.' },
  kvmforge_jump: { type: 'string', minLength: 1, description: 'Jump host, [user@]host[:port] (like ProxyJump).' },
  kvmforge_known_hosts_file: { type: 'string', minLength: 1, description: 'Extra known_hosts file for this host.' },
  kvmforge_command_timeout: { type: 'integer', minimum: 1, description: 'Seconds a single command may run (default 600).' },
  kvmforge_reconnect_timeout: { type: 'integer', minimum: 0, description: 'Seconds to keep trying a new connection after one is lost mid-run; a host found on a new boot (rebooted by someone else) resumes at the interrupted step (default 0: one try).' },
  kvmforge_reboot_timeout: { type: 'integer', minimum: 10, description: 'Seconds to wait for a host to come back from a reboot (default 600).' },
  kvmforge_lock_timeout: { type: 'integer', minimum: 1, description: 'Seconds to wait for the dpkg lock held by another apt or unattended-upgrades (default 120).' },
  kvmforge_secrets: { type: 'array', items: { type: 'string', minLength: 1 }, description: 'Names of further vars whose values are masked in every log and report (vars named *password*, *secret*, *token*, *passphrase* are masked anyway).' },
};

/** Var names in kvmforge's own namespaces: a typo there is an error, other names pass (Ansible vars). */
export function ownNamespaces(): string[] {
  return ['kvmforge', ...steps.map((s) => s.name.replace(/-/g, '_'))];
}

export function allVars(): Record<string, object> {
  const out: Record<string, object> = { ...coreVars };
  for (const s of steps) Object.assign(out, s.vars);
  return out;
}

export function buildSchema(): object {
  const vars = allVars();
  const ns = ownNamespaces().join('|');
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
