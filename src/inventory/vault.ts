// Ansible vault (format 1.1 and 1.2, AES256): PBKDF2-SHA256 over the password and salt (10000 rounds) gives
// the AES-256-CTR key, the HMAC-SHA256 key and the counter; the HMAC is checked before anything is
// decrypted. Used for `!vault |` values and for whole files encrypted with ansible-vault.
import { createDecipheriv, createHmac, pbkdf2Sync, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

export const VAULT_HEADER = /^\$ANSIBLE_VAULT;(1\.[12]);AES256(?:;([^\s;]+))?\s*$/;

export function isVaultText(text: string): boolean {
  return VAULT_HEADER.test(text.trimStart().split('\n', 1)[0]);
}

/** Decrypts vault text with one of the passwords; throws a one-line reason. */
export function decryptVault(text: string, passwords: string[]): string {
  const [header, ...body] = text.trim().split(/\r?\n/);
  const m = VAULT_HEADER.exec(header.trim());
  if (!m) throw new Error('not ansible-vault text (no $ANSIBLE_VAULT;1.1;AES256 header)');
  if (!passwords.length) throw new Error('encrypted with ansible-vault: give --vault-password-file');
  let inner: string[];
  try {
    inner = Buffer.from(body.join('').trim(), 'hex').toString('ascii').split('\n');
  } catch {
    throw new Error('vault text is not hex');
  }
  if (inner.length !== 3) throw new Error('vault text is malformed (expected salt, HMAC and ciphertext)');
  const [salt, mac, data] = inner.map((h) => Buffer.from(h, 'hex'));
  for (const pw of passwords) {
    const key = pbkdf2Sync(Buffer.from(pw, 'utf8'), salt, 10000, 80, 'sha256');
    const [aes, hmacKey, iv] = [key.subarray(0, 32), key.subarray(32, 64), key.subarray(64, 80)];
    const want = createHmac('sha256', hmacKey).update(data).digest();
    if (want.length !== mac.length || !timingSafeEqual(want, mac)) continue;
    const d = createDecipheriv('aes-256-ctr', aes, iv);
    const padded = Buffer.concat([d.update(data), d.final()]);
    const pad = padded[padded.length - 1];
    if (pad < 1 || pad > 16) throw new Error('vault plaintext has bad padding');
    return padded.subarray(0, padded.length - pad).toString('utf8');
  }
  throw new Error(`the vault password does not decrypt it${m[2] ? ` (vault id ${m[2]})` : ''}`);
}

/** Reads a vault password file as Ansible does: its content, stripped. Scripts are refused, not run. */
export function readVaultPasswordFile(path: string): string {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (e) {
    throw new Error(`cannot read vault password file ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  if (mode & 0o111)
    throw new Error(
      `vault password file ${path} is executable: kvmforge does not run password scripts; put the password in a ` +
        'file that is not executable (chmod 600)',
    );
  const pw = readFileSync(path, 'utf8').trim();
  if (!pw) throw new Error(`vault password file ${path} is empty`);
  return pw;
}
