// `kvmforge completion bash|zsh`: completion scripts made from the CLI's own commands and options, so they
// never go stale.
import type { Command } from 'commander';
import { ConfigError } from '../core/errors.ts';

type Program = (run: (name: string) => Promise<never>) => Command;

/** Each command path ('' for the top, 'lab' for lab's subcommands) → its words (subcommands and options). */
function words(root: Command): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const walk = (c: Command, path: string) => {
    const opts = c.options.flatMap((o) => [o.long, o.short].filter((x): x is string => !!x));
    const subs = c.commands.flatMap((s) => [s.name(), ...s.aliases()]);
    out.set(path, [...subs, ...opts, '--help']);
    for (const s of c.commands) walk(s, path ? `${path} ${s.name()}` : s.name());
  };
  walk(root, '');
  return out;
}

export function completionScript(shell: string, root: Command): string {
  const table = words(root);
  const cases = [...table]
    .filter(([path]) => path)
    .map(([path, w]) => `    ${JSON.stringify(path)}) echo ${JSON.stringify(w.join(' '))} ;;`)
    .join('\n');
  const top = JSON.stringify(table.get('')!.join(' '));
  const fn = `_kvmforge() {
  local cur path="" i w words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in -*) ;; *) case " $(_kvmforge_words "\${path# }") " in *" $w "*) path="$path $w" ;; esac ;; esac
  done
  words=$(_kvmforge_words "\${path# }")
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
  [ \${#COMPREPLY[@]} -eq 0 ] && COMPREPLY=($(compgen -f -- "$cur"))
}
_kvmforge_words() {
  case "$1" in
    "") echo ${top} ;;
${cases}
  esac
}`;
  const hook = 'complete -o default -F _kvmforge kvmforge\n';
  if (shell === 'bash') return `# kvmforge bash completion: source <(kvmforge completion bash)\n${fn}\n${hook}`;
  if (shell === 'zsh')
    return (
      '#compdef kvmforge\n# kvmforge zsh completion: source <(kvmforge completion zsh)\n' +
      `autoload -U +X bashcompinit && bashcompinit\n${fn}\n${hook}`
    );
  throw ConfigError.one(`completion '${shell}': expected bash or zsh`);
}

export async function completionCommand(shell: string | undefined, program: Program): Promise<number> {
  process.stdout.write(
    completionScript(
      shell ?? '',
      program(async () => never()),
    ),
  );
  return 0;
}

function never(): never {
  throw new Error('completion runs no command');
}
