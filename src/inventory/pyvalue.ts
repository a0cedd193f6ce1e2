// INI inventory values as Ansible reads them: each `key=value` goes through Python's ast.literal_eval, and
// what it can't read stays the text it was. So `port=2222` is a number, `on=True` a boolean, `mode=0644` the
// text "0644" (no leading zeros in Python 3), `x=[1, 2]` a list, `s="a b"` the text a b. Host lines are split
// like Python's shlex.split(line, comments=True).

class NotLiteral extends Error {}

const DIGITS = '[0-9](?:_?[0-9])*';
const NUMBER = new RegExp(
  '^(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|' +
    `(?:${DIGITS})?\\.?(?:${DIGITS})?(?:[eE][-+]?${DIGITS})?)`,
);

/** ast.literal_eval of `src`, or `src` itself when Python would not read it as a literal. */
export function pythonValue(src: string): unknown {
  try {
    return new Reader(src).whole();
  } catch (e) {
    if (e instanceof NotLiteral) return src;
    throw e;
  }
}

class Reader {
  i = 0;
  constructor(readonly s: string) {}

  whole(): unknown {
    // literal_eval strips leading blanks itself
    while (this.s[this.i] === ' ' || this.s[this.i] === '\t') this.i++;
    const v = this.expr();
    this.blank();
    if (this.i < this.s.length) throw new NotLiteral();
    if (v instanceof Set) throw new NotLiteral(); // a set has no JSON form; keep the text
    return v;
  }

  blank(): void {
    for (;;) {
      while (this.i < this.s.length && /[ \t\f]/.test(this.s[this.i])) this.i++;
      if (this.s[this.i] === '#') this.i = this.s.length;
      else if (this.s[this.i] === '\\' && this.s[this.i + 1] === '\n') this.i += 2;
      else return;
    }
  }

  peek(): string {
    this.blank();
    return this.s[this.i] ?? '';
  }

  take(ch: string): boolean {
    if (this.peek() === ch) {
      this.i++;
      return true;
    }
    return false;
  }

  /** a literal, with a tuple when commas follow at the top level */
  expr(): unknown {
    const first = this.unary();
    if (this.peek() !== ',') return first;
    const items = [first];
    while (this.take(',')) {
      const c = this.peek();
      if (c === '' || c === ')' || c === ']' || c === '}') break;
      items.push(this.unary());
    }
    return items;
  }

  unary(): unknown {
    const c = this.peek();
    if (c === '-' || c === '+') {
      this.i++;
      // one sign on a number literal only (Python's literal_eval refuses --3 and -(3))
      if (!/[0-9.]/.test(this.peek())) throw new NotLiteral();
      const v = this.number();
      return c === '-' ? -v : v;
    }
    return this.atom();
  }

  atom(): unknown {
    const c = this.peek();
    if (c === '[') return this.seq(']');
    if (c === '(') {
      this.i++;
      if (this.take(')')) return [];
      const v = this.expr();
      if (!this.take(')')) throw new NotLiteral();
      return v;
    }
    if (c === '{') return this.dict();
    if (/[0-9.]/.test(c)) return this.number();
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.s.slice(this.i))?.[0];
    if (word !== undefined) {
      const q = this.s[this.i + word.length];
      if (/^[rRbBuU]{1,2}$/.test(word) && (q === '"' || q === "'")) return this.strings();
      this.i += word.length;
      if (word === 'True') return true;
      if (word === 'False') return false;
      if (word === 'None') return null;
      throw new NotLiteral();
    }
    if (c === '"' || c === "'") return this.strings();
    throw new NotLiteral();
  }

  seq(close: string): unknown[] {
    this.i++;
    const items: unknown[] = [];
    while (!this.take(close)) {
      items.push(this.unary());
      if (!this.take(',')) {
        if (!this.take(close)) throw new NotLiteral();
        break;
      }
    }
    return items;
  }

  dict(): unknown {
    this.i++;
    if (this.take('}')) return {};
    const first = this.unary();
    if (this.take(':')) {
      const out: Record<string, unknown> = {};
      let key = first;
      for (;;) {
        if (typeof key === 'object' && key !== null) throw new NotLiteral(); // unhashable, or not JSON
        out[key === null ? 'null' : String(key)] = this.unary();
        if (!this.take(',') || this.peek() === '}') break;
        key = this.unary();
        if (!this.take(':')) throw new NotLiteral();
      }
      if (!this.take('}')) throw new NotLiteral();
      return out;
    }
    const set = new Set([first]);
    while (this.take(',') && this.peek() !== '}') set.add(this.unary());
    if (!this.take('}')) throw new NotLiteral();
    return set;
  }

  number(): number {
    const rest = this.s.slice(this.i);
    const m = NUMBER.exec(rest)!;
    const text = m[0];
    if (!text || text === '.' || /[jJ]/.test(rest[text.length] ?? '')) throw new NotLiteral(); // complex: not JSON
    if (/[A-Za-z0-9_]/.test(rest[text.length] ?? '')) throw new NotLiteral();
    const clean = text.replace(/_/g, '');
    this.i += text.length;
    if (/^0[xX]/.test(clean)) return Number.parseInt(clean.slice(2), 16);
    if (/^0[oO]/.test(clean)) return Number.parseInt(clean.slice(2), 8);
    if (/^0[bB]/.test(clean)) return Number.parseInt(clean.slice(2), 2);
    // Python 3: a decimal integer with a leading zero is a syntax error (0644), but 0, 00 and 0.5 are fine
    if (/^0[0-9]+$/.test(clean) && !/^0+$/.test(clean)) throw new NotLiteral();
    return Number(clean);
  }

  /** adjacent string literals concatenate, as in Python */
  strings(): string {
    let out = '';
    let any = false;
    for (;;) {
      const rest = this.s.slice(this.i);
      const m = /^([rRbBuU]{0,2})("""|'''|"|')/.exec(rest);
      if (!m) {
        if (!any) throw new NotLiteral();
        return out;
      }
      out += this.string(m[1].toLowerCase().includes('r'), m[2], m[0].length);
      any = true;
      this.blank();
    }
  }

  string(raw: boolean, quote: string, skip: number): string {
    this.i += skip;
    let out = '';
    for (;;) {
      if (this.i >= this.s.length) throw new NotLiteral();
      if (this.s.startsWith(quote, this.i)) {
        this.i += quote.length;
        return out;
      }
      const c = this.s[this.i++];
      if (c === '\n' && quote.length === 1) throw new NotLiteral();
      if (c !== '\\') {
        out += c;
        continue;
      }
      const n = this.s[this.i++] ?? '';
      if (raw) {
        out += c + n;
        continue;
      }
      const simple: Record<string, string> = {
        '\n': '',
        '\\': '\\',
        "'": "'",
        '"': '"',
        a: '\x07',
        b: '\b',
        f: '\f',
        n: '\n',
        r: '\r',
        t: '\t',
        v: '\v',
      };
      if (n in simple) out += simple[n];
      else if (/[0-7]/.test(n)) {
        const oct = /^[0-7]{1,3}/.exec(this.s.slice(this.i - 1))![0];
        this.i += oct.length - 1;
        out += String.fromCodePoint(Number.parseInt(oct, 8));
      } else if (n === 'x' || n === 'u' || n === 'U') {
        const len = n === 'x' ? 2 : n === 'u' ? 4 : 8;
        const hex = this.s.slice(this.i, this.i + len);
        if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(hex)) throw new NotLiteral();
        this.i += len;
        out += String.fromCodePoint(Number.parseInt(hex, 16));
      } else out += c + n;
    }
  }
}

/** Python's shlex.split(line, comments=True): POSIX quoting, `#` starts a comment where a word could end. */
export function shlexSplit(line: string): string[] {
  const tokens: string[] = [];
  let token = '';
  let quoted = false;
  let state: ' ' | 'a' | "'" | '"' = ' ';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (state === ' ' || state === 'a') {
      if (/\s/.test(c)) {
        if (state === 'a' || quoted) tokens.push(token);
        [token, quoted, state] = ['', false, ' '];
      } else if (c === '#') {
        break;
      } else if (c === '\\') {
        if (i + 1 >= line.length) throw new Error('No escaped character');
        token += line[++i];
        state = 'a';
      } else if (c === "'" || c === '"') {
        state = c;
        quoted = true;
      } else {
        token += c;
        state = 'a';
      }
    } else if (c === state) {
      state = 'a';
    } else if (state === '"' && c === '\\') {
      const n = line[i + 1];
      if (n === undefined) throw new Error('No escaped character');
      token += n === '"' || n === '\\' ? n : c + n;
      i++;
    } else token += c;
  }
  if (state === "'" || state === '"') throw new Error('No closing quotation');
  if (state === 'a' || quoted) tokens.push(token);
  return tokens;
}
