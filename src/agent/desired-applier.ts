/**
 * Applies desired states one at a time, in the order they arrive, across reconnections: while one is
 * being applied, a newer one waits (only the newest waiting one matters: an older one would be undone
 * by it at once). A desired state equal to the last one applied successfully (same generation, same
 * binding) is acknowledged again without touching the host. The outcome is persisted before it is
 * acknowledged, so an acknowledgement always describes what is on disk; a change whose record could
 * not be written is reported as failed rather than applied.
 */
import type { Logger } from 'pino';
import type { AppliedState, BindingSpec } from '../agent-channel/index.js';
import { APPLY_CODES } from './agent-error.js';
import type { AppliedRecord } from './agent-state.js';
import type { DesiredState } from './channel.js';
import type { AgentHostBinder, BinderApplyResult } from './host-binder-port.js';

/** What the applier works with. */
export interface DesiredApplierDeps {
  readonly binder: Pick<AgentHostBinder, 'apply'>;
  readonly logger: Logger;
  /** The last applied record (from state.json). */
  readonly lastApplied: () => AppliedRecord | null;
  /** Persists a new record durably; throws when it cannot. */
  readonly persist: (record: AppliedRecord) => void;
  /** Sends the acknowledgement on the current connection; false when there is none. */
  readonly ack: (applied: AppliedState) => Promise<boolean>;
  /** Told after every acknowledgement attempt. */
  readonly onAcknowledged?: (applied: AppliedState, sent: boolean) => void;
}

const MAX_MESSAGE_CHARS = 1024;
const CODE_FORM = /^[A-Za-z0-9.]{1,64}$/;

/** The serialising queue of desired states. */
export class DesiredApplier {
  private pending: DesiredState | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly deps: DesiredApplierDeps) {}

  /** Queues a desired state; it replaces any state still waiting. */
  submit(desired: DesiredState): void {
    if (this.stopped) return;
    this.pending = desired;
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
    });
  }

  /** Drops waiting states and resolves once the apply in progress (if any) has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.pending = undefined;
    await this.running;
  }

  private async drain(): Promise<void> {
    while (this.pending !== undefined && !this.stopped) {
      const desired = this.pending;
      this.pending = undefined;
      await this.applyOne(desired);
    }
  }

  private async applyOne(desired: DesiredState): Promise<void> {
    const { logger } = this.deps;
    const last = this.deps.lastApplied();
    let applied: AppliedState;
    if (
      last?.ok === true &&
      last.generation === desired.generation &&
      sameBinding(last.binding, desired.binding)
    ) {
      logger.debug({ generation: desired.generation }, 'desired state already applied; acknowledging again');
      applied = outcomeOf(last);
    } else {
      const result = normalise(await this.safeApply(desired.binding));
      const record: AppliedRecord = { generation: desired.generation, ...result, binding: desired.binding };
      const fields = {
        generation: desired.generation,
        keyPairName: desired.binding?.keyPairName ?? null,
        ok: result.ok,
        ...(result.code !== undefined && { code: result.code }),
      };
      try {
        this.deps.persist(record);
        applied = outcomeOf(record);
        if (result.ok)
          logger.info(
            fields,
            desired.binding === null ? 'applied: no key pair bound' : 'applied: key pair bound',
          );
        else logger.warn({ ...fields, detail: result.message }, 'could not apply the desired state');
      } catch (err) {
        logger.error({ ...fields, err }, 'the change could not be recorded in state.json');
        applied = {
          generation: desired.generation,
          ok: false,
          code: APPLY_CODES.stateWriteFailed,
          message: clip(`the agent could not write its state file: ${errText(err)}`),
        };
      }
    }
    const sent = await this.deps.ack(applied);
    if (!sent)
      logger.info(
        { generation: applied.generation },
        'not connected; the server will be told on reconnection',
      );
    this.deps.onAcknowledged?.(applied, sent);
  }

  private async safeApply(binding: BindingSpec | null): Promise<BinderApplyResult> {
    try {
      return await this.deps.binder.apply(binding);
    } catch (err) {
      this.deps.logger.error({ err }, 'the host library threw while applying');
      return { ok: false, code: APPLY_CODES.applyError, message: errText(err) };
    }
  }
}

/** The host result in the contract's bounds: a code of the allowed form, a message of ≤ 1024 characters. */
function normalise(result: BinderApplyResult): Omit<AppliedState, 'generation'> {
  const ok = result.ok;
  let code = result.code;
  let message = result.message;
  if (code !== undefined && !CODE_FORM.test(code)) {
    message = `${code.slice(0, 64)}: ${message ?? ''}`;
    code = APPLY_CODES.hostFailed;
  }
  if (!ok && code === undefined) code = APPLY_CODES.hostFailed;
  return {
    ok,
    ...(code !== undefined && { code }),
    ...(message !== undefined && { message: clip(message) }),
  };
}

/** The AppliedState part of a record (what the server is told). */
export function outcomeOf(record: AppliedRecord): AppliedState {
  return {
    generation: record.generation,
    ok: record.ok,
    ...(record.code !== undefined && { code: record.code }),
    ...(record.message !== undefined && { message: record.message }),
  };
}

function sameBinding(a: BindingSpec | null, b: BindingSpec | null): boolean {
  if (a === null || b === null) return a === b;
  return a.keyPairName === b.keyPairName && a.publicKey === b.publicKey;
}

function clip(text: string): string {
  return text.length > MAX_MESSAGE_CHARS ? `${text.slice(0, MAX_MESSAGE_CHARS - 1)}…` : text;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
