import { ConfigError } from '../core/errors.ts';
export async function labCommand(_args: string[], _f: unknown): Promise<number> {
  throw ConfigError.one('lab: not built yet');
}
