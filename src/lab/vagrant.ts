import { ConfigError } from '../core/errors.ts';
export async function fromVagrant(_f: unknown): Promise<number> {
  throw ConfigError.one('from-vagrant: not built yet');
}
