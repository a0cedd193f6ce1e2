// Shell-style patterns (`*`, `?`) as used by OpenSSH's known_hosts and ssh_config Include: a whole-string RegExp.
export function globRe(pattern: string, flags = ''): RegExp {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped.replace(/\*/g, '.*').replace(/\?/g, '.')}$`, flags);
}
