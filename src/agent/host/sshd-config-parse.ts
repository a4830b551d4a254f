/**
 * Pure reading of sshd configuration text, as much as the password drop-in needs: finding the drop-in
 * directory from an `Include`, naming the line that sets a keyword before our drop-in, parsing `sshd -T`
 * output, and the drop-in's own content. Rules from sshd_config(5): keywords are case-insensitive and
 * may be followed by `=`; arguments may be double-quoted; `#` starts a comment line; for most keywords
 * the first value obtained is used; a `Match` line starts a conditional block that lasts to the next
 * `Match` or the end of the file; `Include` paths may hold glob(7) wildcards, are expanded in lexical
 * order, and relative ones are taken to be in /etc/ssh. IO lives in sshd-config.ts.
 */
import { basename, dirname, isAbsolute, join } from 'node:path';

/** The drop-in's file name: `00-` so it sorts before the usual drop-ins and its values are read first. */
export const DROP_IN_NAME = '00-keyward.conf';
/** The first line of the drop-in; a file with this first line is Keyward's to replace or remove. */
export const DROP_IN_HEADER =
  '# Managed by Keyward (keyward-managed): password logons are off while a key pair is bound.';
/** The drop-in, byte for byte. */
export const DROP_IN_CONTENT = Buffer.from(
  `${DROP_IN_HEADER}\n` +
    '# The Keyward agent removes this file when the key pair is unbound; edits here will be overwritten.\n' +
    'PasswordAuthentication no\n' +
    'KbdInteractiveAuthentication no\n',
);
/** Keywords the drop-in sets, lower-cased as `sshd -T` prints them, with the value that must win. */
export const DROP_IN_SETTINGS: readonly { readonly keyword: string; readonly name: string }[] = [
  { keyword: 'passwordauthentication', name: 'PasswordAuthentication' },
  { keyword: 'kbdinteractiveauthentication', name: 'KbdInteractiveAuthentication' },
];

/** Where relative Include paths live (sshd_config(5), Include). */
export const SSHD_SYSCONFDIR = '/etc/ssh';

/** True when `bytes` is a Keyward drop-in (its first line is our header). */
export function isOurDropIn(bytes: Buffer): boolean {
  const text = bytes.toString('latin1');
  const nl = text.indexOf('\n');
  return (nl === -1 ? text : text.slice(0, nl)).replace(/\r$/, '') === DROP_IN_HEADER;
}

/** One non-comment line of an sshd configuration. */
export interface ConfigLine {
  /** 1-based. */
  readonly lineNo: number;
  /** Lower-cased keyword. */
  readonly keyword: string;
  readonly args: readonly string[];
  /** The line as written, trimmed. */
  readonly text: string;
  /** True inside a `Match` block. */
  readonly inMatch: boolean;
}

/** Splits configuration text into keyword lines (comments and blank lines dropped). */
export function parseConfigLines(text: string): ConfigLine[] {
  const out: ConfigLine[] = [];
  let inMatch = false;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^([A-Za-z0-9]+)(?:[ \t]*=[ \t]*|[ \t]+|$)(.*)$/.exec(line);
    if (m === null) return;
    const keyword = (m[1] ?? '').toLowerCase();
    const args = [...(m[2] ?? '').matchAll(/"([^"]*)"|([^ \t]+)/g)].map((a) => a[1] ?? a[2] ?? '');
    if (keyword === 'match') inMatch = true;
    out.push({ lineNo: i + 1, keyword, args, text: line, inMatch });
  });
  return out;
}

/** glob(7) match of one path component: `*`, `?`, `[...]` (with `!` negation); `*` skips a leading dot. */
export function globMatch(pattern: string, name: string): boolean {
  if (name.startsWith('.') && !pattern.startsWith('.')) return false;
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] ?? '';
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const close = pattern.indexOf(']', i + 2);
      if (close === -1) re += '\\[';
      else {
        let body = pattern.slice(i + 1, close);
        const negate = body.startsWith('!');
        if (negate) body = body.slice(1);
        re += `[${negate ? '^' : ''}${body.replace(/[\\\]^]/g, (x) => `\\${x}`)}]`;
        i = close;
      }
    } else re += c.replace(/[.+^${}()|\\/\]]/g, (x) => `\\${x}`);
  }
  return new RegExp(`^${re}$`).test(name);
}

/** The Include that makes sshd read our drop-in. */
export interface DropInInclude {
  /** The drop-in directory (absolute). */
  readonly dir: string;
  /** The glob of the Include's last component, e.g. `*.conf`. */
  readonly pattern: string;
  /** The Include line in the main configuration. */
  readonly lineNo: number;
}

/**
 * Finds the first top-level `Include` (before any `Match`) of the form `<dir>/<glob>` whose glob matches
 * DROP_IN_NAME and whose directory has no wildcard; null when there is none.
 */
export function findDropInInclude(configText: string): DropInInclude | null {
  for (const line of parseConfigLines(configText)) {
    if (line.inMatch) return null;
    if (line.keyword !== 'include') continue;
    for (const arg of line.args) {
      const path = isAbsolute(arg) ? arg : join(SSHD_SYSCONFDIR, arg);
      const dir = dirname(path);
      const pattern = basename(path);
      if (/[*?[]/.test(dir) || !/[*?[]/.test(pattern)) continue;
      if (globMatch(pattern, DROP_IN_NAME)) return { dir, pattern, lineNo: line.lineNo };
    }
  }
  return null;
}

/** Where a keyword is first set: `file line N: text`. */
export interface SettingSource {
  readonly file: string;
  readonly lineNo: number;
  readonly text: string;
}

/**
 * The top-level line that sets `keyword` before our drop-in is read: in the main configuration above the
 * Include, or in a drop-in that sorts before DROP_IN_NAME. `dropIns` are the directory's other files.
 */
export function findEarlierSetting(
  keyword: string,
  main: { readonly file: string; readonly text: string },
  include: DropInInclude,
  dropIns: readonly { readonly name: string; readonly text: string }[],
): SettingSource | null {
  for (const line of parseConfigLines(main.text)) {
    if (line.inMatch || line.lineNo >= include.lineNo) break;
    if (line.keyword === keyword) return { file: main.file, lineNo: line.lineNo, text: line.text };
  }
  const earlier = dropIns
    .filter((f) => f.name < DROP_IN_NAME && globMatch(include.pattern, f.name))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const f of earlier) {
    for (const line of parseConfigLines(f.text)) {
      if (line.inMatch) break;
      if (line.keyword === keyword)
        return { file: join(include.dir, f.name), lineNo: line.lineNo, text: line.text };
    }
  }
  return null;
}

/** Parses `sshd -T` output: lower-cased keyword → every value printed for it, in order. */
export function parseSshdDump(stdout: string): ReadonlyMap<string, readonly string[]> {
  const out = new Map<string, string[]>();
  for (const raw of stdout.split('\n')) {
    const line = raw.trim();
    const sp = line.indexOf(' ');
    if (line === '' || sp <= 0) continue;
    const key = line.slice(0, sp).toLowerCase();
    const list = out.get(key) ?? [];
    list.push(line.slice(sp + 1).trim());
    out.set(key, list);
  }
  return out;
}

/** The drop-in for a sshd that knows `kbdKeywords` (openssh.ts: both names before 8.7). */
export function dropInContentFor(kbdKeywords: readonly string[]): Buffer {
  if (kbdKeywords.length === 1 && kbdKeywords[0] === 'KbdInteractiveAuthentication') return DROP_IN_CONTENT;
  return Buffer.from(
    `${DROP_IN_HEADER}\n` +
      '# The Keyward agent removes this file when the key pair is unbound; edits here will be overwritten.\n' +
      'PasswordAuthentication no\n' +
      kbdKeywords.map((k) => `${k} no\n`).join(''),
  );
}

/** Keywords that let a password (or a challenge answered like one) log on, lower-cased. */
export const PASSWORD_KEYWORDS: readonly string[] = [
  'passwordauthentication',
  'kbdinteractiveauthentication',
  'challengeresponseauthentication',
];

/** A password setting turned on inside a `Match` block. */
export interface MatchPasswordSetting extends SettingSource {
  /** The `Match` line the setting is under. */
  readonly match: string;
}

/** Reads one configuration file; undefined when it cannot be read. */
export type ConfigReader = (path: string) => Promise<string | undefined>;
/** Lists a directory's entries; [] when it cannot be read. */
export type DirLister = (dir: string) => Promise<readonly string[]>;

const MAX_INCLUDE_DEPTH = 16;
const MAX_CONFIG_FILES = 256;

/**
 * Every `PasswordAuthentication`, `KbdInteractiveAuthentication` or `ChallengeResponseAuthentication`
 * set to `yes` inside a `Match` block, in `mainFile` and every file it Includes (recursively, glob in the
 * last path component, in lexical order as sshd reads them). `sshd -T` without `-C` shows only global
 * values, so such a block is invisible there yet turns passwords back on for the connections it matches.
 */
export async function findMatchPasswordSettings(
  mainFile: string,
  read: ConfigReader,
  list: DirLister,
): Promise<MatchPasswordSetting[]> {
  const found: MatchPasswordSetting[] = [];
  let files = 0;
  const visit = async (file: string, match: string | null, depth: number): Promise<void> => {
    if (depth > MAX_INCLUDE_DEPTH || ++files > MAX_CONFIG_FILES) return;
    const text = await read(file);
    if (text === undefined) return;
    let current = match;
    for (const line of parseConfigLines(text)) {
      if (line.keyword === 'match') {
        current = /^match[ \t=]+all$/i.test(line.text) ? null : line.text;
        continue;
      }
      if (line.keyword === 'include') {
        for (const arg of line.args) {
          for (const path of await expandInclude(arg, list)) await visit(path, current, depth + 1);
        }
        continue;
      }
      if (
        current !== null &&
        PASSWORD_KEYWORDS.includes(line.keyword) &&
        line.args[0]?.toLowerCase() === 'yes'
      ) {
        found.push({ file, lineNo: line.lineNo, text: line.text, match: current });
      }
    }
  };
  await visit(mainFile, null, 0);
  return found;
}

/** The files an Include argument names, in lexical order (wildcards in the last component only). */
async function expandInclude(arg: string, list: DirLister): Promise<string[]> {
  const path = isAbsolute(arg) ? arg : join(SSHD_SYSCONFDIR, arg);
  const dir = dirname(path);
  const pattern = basename(path);
  if (!/[*?[]/.test(pattern)) return [path];
  if (/[*?[]/.test(dir)) return [];
  return (await list(dir))
    .filter((name) => globMatch(pattern, name))
    .sort()
    .map((name) => join(dir, name));
}
