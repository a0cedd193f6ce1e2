// A small shell lexer for tests: is a value ever code in a generated script?
/** Where `needle` occurs in `script` as code a shell would run: outside single quotes, quoted
 * here-documents, comments and the literal text of double quotes (whose $( ) and backticks are code
 * again). A deliberately small lexer; test/unit/hostile.test.ts shows it catches each way out of a quote. */
export function exposed(script: string, needle: string): number[] {
  const safe: boolean[] = new Array(script.length).fill(false);
  const heredocs: { delim: string; quoted: boolean }[] = [];
  const mark = (from: number, to: number) => {
    for (let k = from; k < to; k++) safe[k] = true;
  };
  /** Code from i until `stop` (')' or '`') at depth 0, or the end. Returns the index after it. */
  const code = (i: number, stop?: string): number => {
    let wordStart = true;
    let depth = 0;
    while (i < script.length) {
      const c = script[i];
      if (stop && c === stop && depth === 0) return i + 1;
      if (c === '(') depth++;
      if (c === ')') depth--;
      if (c === '\n' && heredocs.length) {
        i++;
        for (const h of heredocs.splice(0)) {
          while (i < script.length) {
            const end = script.indexOf('\n', i);
            const next = end < 0 ? script.length : end + 1;
            const line = script.slice(i, end < 0 ? script.length : end);
            if (line.replace(/^\t+/, '') === h.delim) {
              i = next;
              break;
            }
            if (h.quoted) mark(i, next);
            i = next;
          }
        }
        wordStart = true;
        continue;
      }
      if (c === "'") {
        const end = script.indexOf("'", i + 1);
        const to = end < 0 ? script.length : end + 1;
        mark(i, to);
        i = to;
      } else if (c === '\\') i += 2;
      else if (c === '#' && wordStart) {
        const end = script.indexOf('\n', i);
        const to = end < 0 ? script.length : end;
        mark(i, to);
        i = to;
        continue;
      } else if (
        c === '<' &&
        script[i + 1] === '<' &&
        script[i + 2] !== '<' &&
        /^<<-?\s*(?:'([^']*)'|"([^"]*)"|\\(\w+)|(\w+))/.test(script.slice(i))
      ) {
        const m = /^<<-?\s*(?:'([^']*)'|"([^"]*)"|\\(\w+)|(\w+))/.exec(script.slice(i))!;
        heredocs.push({ delim: m[1] ?? m[2] ?? m[3] ?? m[4], quoted: m[4] === undefined });
        i += m[0].length;
      } else if (c === '"') i = dquoted(i + 1);
      else if (c === '$' && script[i + 1] === '(') i = code(i + 2, ')');
      else if (c === '`') i = code(i + 1, '`');
      else {
        wordStart = /[\s;&|()]/.test(c);
        i++;
        continue;
      }
      wordStart = false;
    }
    return i;
  };
  /** Inside double quotes: literal text is data, $( ) and backticks are code. Returns after the closing quote. */
  const dquoted = (i: number): number => {
    while (i < script.length && script[i] !== '"') {
      if (script[i] === '\\') {
        mark(i, i + 2);
        i += 2;
      } else if (script[i] === '$' && script[i + 1] === '(') i = code(i + 2, ')');
      else if (script[i] === '`') i = code(i + 1, '`');
      else {
        safe[i] = script[i] !== '$'; // $var expands: not data
        i++;
      }
    }
    return i + 1;
  };
  code(0);
  const bad: number[] = [];
  for (let at = script.indexOf(needle); at >= 0; at = script.indexOf(needle, at + 1)) {
    if (!safe.slice(at, at + needle.length).every(Boolean)) bad.push(at);
  }
  return bad;
}
