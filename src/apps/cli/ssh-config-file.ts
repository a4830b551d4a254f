/**
 * The block `keyward ssh-config --install` keeps in ~/.ssh/config, between two marker lines, and the pure
 * edits of the file's text: everything outside the markers is kept byte for byte.
 *
 * Where: at the top of the file. ssh uses the first value it finds for each option, so a block below a
 * user's `Host *` (or options before any Host line) would lose to them; at the top it wins for its hosts
 * only. The block ends with `Host *`, so whatever followed in the file (options before any Host line)
 * still applies to every host, as before.
 */
import { toolFailure } from './ssh-tools.js';

export const BEGIN_MARKER =
  '# >>> keyward ssh-config: added by `keyward ssh-config --install`, removed by --uninstall >>>';
export const END_MARKER = '# <<< keyward ssh-config <<<';

/** The block's text (ending in a newline) for `pattern` with `options`. */
export function renderBlock(
  pattern: string,
  options: ReadonlyArray<readonly [string, string]>,
  user?: string,
): string {
  return [
    BEGIN_MARKER,
    `Host ${pattern}`,
    ...(user === undefined ? [] : [`    User ${user}`]),
    ...options.map(([k, v]) => `    ${k} ${v}`),
    '# (the rest of this file applies to every host, as before)',
    'Host *',
    END_MARKER,
    '',
  ].join('\n');
}

/** Where the marked block is: [start, end) offsets of its lines (end after END_MARKER's newline). */
function findBlock(text: string): { start: number; end: number } | undefined {
  const lines = text.split(/(?<=\n)/);
  let offset = 0;
  let start: number | undefined;
  let found: { start: number; end: number } | undefined;
  for (const line of lines) {
    const bare = line.replace(/\r?\n$/, '');
    if (bare === BEGIN_MARKER) {
      if (start !== undefined || found !== undefined) throw broken('two begin markers');
      start = offset;
    } else if (bare === END_MARKER) {
      if (start === undefined) throw broken('an end marker without a begin marker');
      found = { start, end: offset + line.length };
      start = undefined;
    }
    offset += line.length;
  }
  if (start !== undefined) throw broken('a begin marker without an end marker');
  return found;
}

function broken(what: string): Error {
  return toolFailure(
    'SshConfig.BrokenMarkers',
    `the ssh config has ${what} of Keyward's block; fix the marker lines by hand (nothing was changed)`,
  );
}

/** `text` with `block` in place of the marked one, or at the top when there is none. */
export function withBlock(text: string, block: string): string {
  const at = findBlock(text);
  if (at === undefined) return block + text;
  return text.slice(0, at.start) + block + text.slice(at.end);
}

/** `text` without the marked block (unchanged when there is none). */
export function withoutBlock(text: string): string {
  const at = findBlock(text);
  return at === undefined ? text : text.slice(0, at.start) + text.slice(at.end);
}
