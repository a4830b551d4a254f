/**
 * Password logons on and off, by one drop-in file (DROP_IN_NAME) in the directory the main sshd_config
 * Includes, so Keyward never edits a file it did not write (sshd_config(5): Include, and "for each
 * keyword, the first obtained value will be used" — hence a name that sorts first).
 *
 * Disable: write the drop-in atomically → `sshd -t` → `sshd -T` must show `no` for every setting of the
 * drop-in → SIGHUP and wait for the restart. Any failure puts the previous drop-in state back (absent, or
 * its previous bytes, owner and mode) before returning, and the result says so.
 * Restore: remove the drop-in if it carries our header (never another file) → `sshd -t` → SIGHUP.
 *
 * Whether to call these, and their order relative to authorized_keys, is host-binder.ts's decision.
 */
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  DirHandle,
  readSnapshot,
  removeFile,
  removeStaleTemps,
  replaceFile,
  type FileSnapshot,
} from './atomic-file.js';
import { describeErrno, errnoCode, fail, isFailure, withNote, type HostFailure } from './result.js';
import { kbdInteractiveKeywords, supportsInclude, type OpenSshVersion } from './openssh.js';
import {
  DROP_IN_NAME,
  PASSWORD_KEYWORDS,
  dropInContentFor,
  findDropInInclude,
  findMatchPasswordSettings,
  findEarlierSetting,
  globMatch,
  isOurDropIn,
  type DropInInclude,
} from './sshd-config-parse.js';
import { reloadSshd, runningSshdPid, sshdDump, sshdTest, type SshdTarget } from './sshd-process.js';

/** The drop-in as it was before a change, to put it back. */
export interface DropInSnapshot {
  readonly dir: string;
  /** null: there was no drop-in. */
  readonly previous: FileSnapshot | null;
}

/** A finished sshd step. `snapshot` is null when nothing was changed (so there is nothing to roll back). */
export interface SshdStepDone {
  readonly ok: true;
  readonly snapshot: DropInSnapshot | null;
  /** The drop-in's path, when there is a drop-in directory. */
  readonly dropInPath: string | null;
}

const MAX_DROP_IN_BYTES = 256 * 1024;

/** The line `--add-sshd-include` puts first in sshd_config (with a comment line above it). */
export function includeLineFor(configFile: string): string {
  return `Include ${join(dirname(configFile), 'sshd_config.d')}/*.conf`;
}
const INCLUDE_COMMENT =
  '# Added by the Keyward agent (--add-sshd-include) so sshd reads drop-ins; keep it above any Match block.';

/** How the drop-in settings are named for `sshd -T` and people. */
const SETTING_NAMES: Readonly<Record<string, string>> = {
  passwordauthentication: 'PasswordAuthentication',
  kbdinteractiveauthentication: 'KbdInteractiveAuthentication',
  challengeresponseauthentication: 'ChallengeResponseAuthentication',
};

/**
 * With --add-sshd-include: puts the Include line first in sshd_config (atomic replace, owner and mode
 * kept, the rest of the file byte for byte), checked with `sshd -t`; on any failure the original bytes
 * are put back. The line stays afterwards (unbinding removes only the drop-in). null: no regular file.
 */
export async function addIncludeLine(
  target: SshdTarget,
  timeoutMs: number,
): Promise<{ text: string; include: DropInInclude } | HostFailure | null> {
  const file = target.configFile;
  let dir: DirHandle | null = null;
  try {
    dir = await DirHandle.open(dirname(file), { followSymlinks: true });
    const name = basename(file);
    const previous = await readSnapshot(dir, name);
    if (previous === null || !previous.isFile) return null;
    const line = includeLineFor(file);
    const next = Buffer.concat([Buffer.from(`${INCLUDE_COMMENT}\n${line}\n`), previous.bytes]);
    const include = findDropInInclude(next.toString('latin1'));
    if (include === null) return null;
    await mkdir(include.dir, { recursive: true, mode: 0o755 });
    const outcome = await replaceFile(dir, name, next, previous, previous.bytes);
    if (outcome.status === 'conflict') {
      return fail(
        'Host.SshdConfigInvalid',
        `${file} changed while Keyward was adding its Include line; nothing was changed. Apply again.`,
      );
    }
    const tested = await sshdTest(target, timeoutMs);
    if (isFailure(tested)) {
      await replaceFile(dir, name, previous.bytes, previous, 'any');
      return withNote(tested, `Keyward put ${file} back as it was (without its Include line).`);
    }
    return { text: next.toString('latin1'), include };
  } catch (err) {
    return fail(
      'Host.SshdConfigUnreadable',
      `Could not add the Include line to ${file}: ${describeErrno(err)}. ${file} was left as it was.`,
    );
  } finally {
    await dir?.close();
  }
}

/** Turns password logons off and back for one sshd. */
export class SshdPasswordControl {
  readonly #target: SshdTarget;
  readonly #timeoutMs: number;

  readonly #addInclude: boolean;

  /** `addInclude`: the operator allowed Keyward to add the Include line to sshd_config (--add-sshd-include). */
  constructor(target: SshdTarget, timeoutMs: number, addInclude = false) {
    this.#target = target;
    this.#timeoutMs = timeoutMs;
    this.#addInclude = addInclude;
  }

  /** Reads the main configuration and finds the drop-in Include (null when there is none). */
  async #locate(): Promise<{ text: string; include: DropInInclude | null } | HostFailure> {
    let text: string;
    try {
      text = await readFile(this.#target.configFile, 'latin1');
    } catch (err) {
      return fail(
        'Host.SshdConfigUnreadable',
        `Cannot read the sshd configuration ${this.#target.configFile}: ${describeErrno(err)}. Set the agent's ` +
          `sshd configuration file to the one sshd runs with.`,
      );
    }
    return { text, include: findDropInInclude(text) };
  }

  #notIncluded(version: OpenSshVersion | null): HostFailure {
    if (version !== null && !supportsInclude(version)) {
      return fail(
        'Host.SshdIncludeUnsupported',
        `This host runs OpenSSH ${version.text}, which has no Include (it came in OpenSSH 8.2), so Keyward ` +
          `cannot turn password logons off with a drop-in and never edits ${this.#target.configFile}'s ` +
          `settings itself. Upgrade OpenSSH to 8.2 or later. Nothing was changed.`,
      );
    }
    return fail(
      'Host.SshdDropInNotIncluded',
      `${this.#target.configFile} has no Include for a drop-in directory, so Keyward cannot turn password ` +
        `logons off without editing it. Add "${includeLineFor(this.#target.configFile)}" as its first line ` +
        `(or start the agent with --add-sshd-include to let it add that line) and apply again. Nothing was changed.`,
    );
  }

  /**
   * With --add-sshd-include: puts the Include line first in sshd_config (atomic replace, owner and mode
   * kept, the rest of the file byte for byte), checked with `sshd -t`; on any failure the original bytes
   * are put back. The line stays afterwards (unbinding removes only the drop-in).
   */
  async #addIncludeLine(
    version: OpenSshVersion | null,
  ): Promise<{ text: string; include: DropInInclude } | HostFailure> {
    if (!this.#addInclude || (version !== null && !supportsInclude(version)))
      return this.#notIncluded(version);
    const added = await addIncludeLine(this.#target, this.#timeoutMs);
    return added ?? this.#notIncluded(version);
  }

  /** Password settings turned on inside Match blocks of the configuration sshd reads (any file). */
  async #matchBlocks(): Promise<HostFailure | null> {
    const found = await findMatchPasswordSettings(
      this.#target.configFile,
      (path) =>
        readFile(path, 'latin1').then(
          (t) => t.slice(0, MAX_DROP_IN_BYTES * 4),
          () => undefined,
        ),
      (d) => readdir(d).catch(() => []),
    );
    const first = found[0];
    if (first === undefined) return null;
    return fail(
      'Host.PasswordEnabledInMatch',
      `${first.file} line ${first.lineNo} ("${first.text}") turns password logons back on for connections ` +
        `matching "${first.match}", which Keyward's drop-in cannot override (sshd -T shows only global ` +
        `values)${found.length > 1 ? `; ${found.length - 1} more such line(s) follow` : ''}. Remove it (or set ` +
        `it to no) and apply again. Nothing was changed.`,
    );
  }

  #conflict(path: string): HostFailure {
    return fail(
      'Host.SshdDropInConflict',
      `${path} exists but was not written by Keyward (its first line is not Keyward's header); Keyward never ` +
        `replaces another tool's sshd configuration. Rename that file and apply again. Nothing was changed.`,
    );
  }

  #unwritable(dir: string, err: unknown): HostFailure {
    return fail(
      'Host.SshdDropInUnwritable',
      `Cannot write ${join(dir, DROP_IN_NAME)}: ${describeErrno(err)}. sshd was left as it was; make ${dir} ` +
        `writable by root and apply again.`,
    );
  }

  async #openDir(include: DropInInclude, create: boolean): Promise<DirHandle | null> {
    try {
      // The drop-in directory belongs to root (no user can plant links in it), so symlinks are followed.
      return await DirHandle.open(include.dir, { followSymlinks: true });
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      if (!create) return null;
    }
    await mkdir(include.dir, { recursive: true, mode: 0o755 });
    return DirHandle.open(include.dir, { followSymlinks: true });
  }

  /** Puts a snapshot back: the previous bytes with their owner and mode, or no file. */
  async #putBack(dir: DirHandle, previous: FileSnapshot | null): Promise<void> {
    if (previous === null) await removeFile(dir, DROP_IN_NAME);
    else await replaceFile(dir, DROP_IN_NAME, previous.bytes, previous, 'any');
  }

  /** Undoes a change made in this step, and says in the failure what happened to the drop-in. */
  async #undo(dir: DirHandle, previous: FileSnapshot | null, failure: HostFailure): Promise<HostFailure> {
    const path = join(dir.path, DROP_IN_NAME);
    try {
      await this.#putBack(dir, previous);
      return withNote(failure, `Keyward put ${path} back as it was.`);
    } catch (err) {
      return withNote(
        failure,
        `Putting ${path} back also failed (${describeErrno(err)}): check that file by hand.`,
      );
    }
  }

  /** Names the line that wins over the drop-in for `keyword`, for the message. */
  async #overridden(
    main: string,
    include: DropInInclude,
    keyword: string,
    name: string,
    value: string,
  ): Promise<HostFailure> {
    const dropIns: { name: string; text: string }[] = [];
    for (const entry of await readdir(include.dir).catch(() => [])) {
      if (entry >= DROP_IN_NAME || !globMatch(include.pattern, entry)) continue;
      const text = await readFile(join(include.dir, entry), 'latin1').catch(() => '');
      dropIns.push({ name: entry, text: text.slice(0, MAX_DROP_IN_BYTES) });
    }
    const src = findEarlierSetting(keyword, { file: this.#target.configFile, text: main }, include, dropIns);
    const where =
      src === null
        ? `a line sshd reads before ${join(include.dir, DROP_IN_NAME)} sets it`
        : `${src.file} line ${src.lineNo} ("${src.text}") sets it before Keyward's drop-in is read`;
    return fail(
      'Host.PasswordSettingOverridden',
      `With Keyward's drop-in in place sshd still takes "${name} ${value}": ${where}, and sshd uses the first ` +
        `value it reads. Remove that line (or move it below the Include in ${this.#target.configFile}) and apply again.`,
    );
  }

  /** Turns password logons off; on failure the drop-in is as it was. */
  async disablePasswords(version: OpenSshVersion | null = null): Promise<SshdStepDone | HostFailure> {
    let located = await this.#locate();
    if (isFailure(located)) return located;
    if (located.include === null) {
      const matched = await this.#matchBlocks();
      if (matched !== null) return matched;
      located = await this.#addIncludeLine(version);
      if (isFailure(located)) return located;
    }
    const { include } = located;
    if (include === null) return this.#notIncluded(version);
    const matched = await this.#matchBlocks();
    if (matched !== null) return matched;
    const content = dropInContentFor(kbdInteractiveKeywords(version));
    const pid = await runningSshdPid(this.#target);
    if (isFailure(pid)) return withNote(pid, 'Nothing was changed.');
    const path = join(include.dir, DROP_IN_NAME);
    let dir: DirHandle | null = null;
    let previous: FileSnapshot | null = null;
    let changed = false;
    const undo = (f: HostFailure): Promise<HostFailure> =>
      changed && dir !== null ? this.#undo(dir, previous, f) : Promise.resolve(f);
    try {
      dir = await this.#openDir(include, true);
      if (dir === null) return this.#unwritable(include.dir, new Error('the directory vanished'));
      await removeStaleTemps(dir, DROP_IN_NAME);
      previous = await readSnapshot(dir, DROP_IN_NAME);
      if (previous !== null && (!previous.isFile || !isOurDropIn(previous.bytes))) {
        return this.#conflict(path);
      }
      if (previous === null || !previous.bytes.equals(content) || previous.mode !== 0o644) {
        const owner = { uid: 0, gid: 0, mode: 0o644 };
        const outcome = await replaceFile(dir, DROP_IN_NAME, content, owner, previous?.bytes ?? null);
        if (outcome.status === 'conflict') return this.#conflict(path);
        changed = true;
      }
      const tested = await sshdTest(this.#target, this.#timeoutMs);
      if (isFailure(tested)) return await undo(tested);
      const dump = await sshdDump(this.#target, this.#timeoutMs);
      if (isFailure(dump)) return await undo(dump);
      // Whichever of the names this sshd prints (ChallengeResponseAuthentication only before 8.7).
      for (const keyword of PASSWORD_KEYWORDS) {
        const printed = dump.get(keyword);
        if (printed === undefined && keyword === 'challengeresponseauthentication') continue;
        const name = SETTING_NAMES[keyword] ?? keyword;
        const value = printed?.[0] ?? '(unset)';
        if (value !== 'no') {
          return await undo(await this.#overridden(located.text, include, keyword, name, value));
        }
      }
      const reloaded = await reloadSshd(this.#target, pid, this.#timeoutMs);
      if (isFailure(reloaded)) return await undo(reloaded);
      return { ok: true, snapshot: changed ? { dir: include.dir, previous } : null, dropInPath: path };
    } catch (err) {
      return await undo(this.#unwritable(include.dir, err));
    } finally {
      await dir?.close();
    }
  }

  /** Removes our drop-in (if there is one) and reloads sshd; on failure the drop-in is as it was. */
  async restorePasswords(): Promise<SshdStepDone | HostFailure> {
    const located = await this.#locate();
    if (isFailure(located)) return located;
    const { include } = located;
    // No Include: no drop-in of ours can be in effect, so there is nothing to restore.
    if (include === null) return { ok: true, snapshot: null, dropInPath: null };
    let dir: DirHandle | null = null;
    try {
      dir = await this.#openDir(include, false);
      const path = join(include.dir, DROP_IN_NAME);
      if (dir === null) return { ok: true, snapshot: null, dropInPath: path };
      await removeStaleTemps(dir, DROP_IN_NAME);
      const previous = await readSnapshot(dir, DROP_IN_NAME);
      if (previous === null || !previous.isFile || !isOurDropIn(previous.bytes)) {
        return { ok: true, snapshot: null, dropInPath: path };
      }
      const pid = await runningSshdPid(this.#target);
      if (isFailure(pid)) return withNote(pid, 'Nothing was changed.');
      await removeFile(dir, DROP_IN_NAME);
      const tested = await sshdTest(this.#target, this.#timeoutMs);
      if (isFailure(tested)) return await this.#undo(dir, previous, tested);
      const reloaded = await reloadSshd(this.#target, pid, this.#timeoutMs);
      if (isFailure(reloaded)) return await this.#undo(dir, previous, reloaded);
      return { ok: true, snapshot: { dir: include.dir, previous }, dropInPath: path };
    } catch (err) {
      return this.#unwritable(include.dir, err);
    } finally {
      await dir?.close();
    }
  }

  /** Puts the drop-in back to a snapshot taken by a successful step, checks and reloads sshd. */
  async rollback(snapshot: DropInSnapshot): Promise<{ ok: true } | HostFailure> {
    let dir: DirHandle | null = null;
    try {
      dir = await DirHandle.open(snapshot.dir, { followSymlinks: true });
      await this.#putBack(dir, snapshot.previous);
    } catch (err) {
      return this.#unwritable(snapshot.dir, err);
    } finally {
      await dir?.close();
    }
    const tested = await sshdTest(this.#target, this.#timeoutMs);
    if (isFailure(tested)) return tested;
    const pid = await runningSshdPid(this.#target);
    if (isFailure(pid)) return pid;
    return reloadSshd(this.#target, pid, this.#timeoutMs);
  }

  /** Start-up diagnostics: the Include exists, our file name is free, sshd -t passes, sshd runs. */
  async check(
    version: OpenSshVersion | null = null,
  ): Promise<{ ok: true; dropInPath: string } | HostFailure> {
    const located = await this.#locate();
    if (isFailure(located)) return located;
    const { include } = located;
    if (include === null) {
      if (this.#addInclude && (version === null || supportsInclude(version))) {
        return {
          ok: true,
          dropInPath: join(dirname(this.#target.configFile), 'sshd_config.d', DROP_IN_NAME),
        };
      }
      return this.#notIncluded(version);
    }
    const path = join(include.dir, DROP_IN_NAME);
    const existing = await readFile(path).catch((err: unknown) => (errnoCode(err) === 'ENOENT' ? null : err));
    if (existing instanceof Buffer && !isOurDropIn(existing)) return this.#conflict(path);
    if (existing !== null && !(existing instanceof Buffer)) return this.#unwritable(include.dir, existing);
    const tested = await sshdTest(this.#target, this.#timeoutMs);
    if (isFailure(tested)) return tested;
    const pid = await runningSshdPid(this.#target);
    if (isFailure(pid)) return pid;
    return { ok: true, dropInPath: path };
  }
}
