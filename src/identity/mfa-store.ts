/**
 * Virtual MFA devices (RAM: CreateVirtualMFADevice, BindMFADevice, UnbindMFADevice). The TOTP seed is
 * sealed with the master key (SecretBox) bound to the device's serial number, shown once when the device
 * is created, and opened only to check a code. Each accepted code's time step is remembered, and a step
 * is accepted only if it is later than the last one, by one conditional UPDATE: a code works once, even
 * under concurrent sign-ins. Binding and unbinding change how the user signs in, so both bump the user's
 * credential epoch in the same transaction: the console sessions signed in before it end.
 */
import type { Clock } from '../platform/clock.js';
import type { SecretBox } from '../platform/crypto/secret-box.js';
import type { Db } from '../platform/db/database.js';
import { AppError } from '../platform/errors.js';
import { arn } from './arn.js';
import { idByName } from './lookup.js';
import { bumpCredentialEpoch } from './user-store.js';
import { base32Decode, matchConsecutiveTotp, matchTotp, newTotpSeed } from './totp.js';

/** RAM serial numbers: `acs:ram::{account}:mfa/{name}`. */
export function mfaSerialNumber(accountId: string, deviceName: string): string {
  return `acs:ram::${accountId}:mfa/${deviceName}`;
}

export class MfaStore {
  readonly #db: Db;
  readonly #box: SecretBox;
  readonly #clock: Clock;

  constructor(deps: { db: Db; secretBox: SecretBox; clock: Clock }) {
    this.#db = deps.db;
    this.#box = deps.secretBox;
    this.#clock = deps.clock;
  }

  /** Creates an unbound device; the only time its seed (Base32) is returned. */
  async createDevice(
    accountId: string,
    deviceName: string,
  ): Promise<{ serialNumber: string; seedBase32: string }> {
    const serialNumber = mfaSerialNumber(accountId, deviceName);
    const seedBase32 = newTotpSeed();
    const existing = await this.#db
      .selectFrom('mfa_devices')
      .select('serial_number')
      .where('serial_number', '=', serialNumber)
      .executeTakeFirst();
    if (existing !== undefined) {
      throw new AppError(
        'EntityAlreadyExists.VirtualMFADevice',
        `The MFA device ${serialNumber} already exists; unbind it from its user, or pick another name.`,
      );
    }
    await this.#db
      .insertInto('mfa_devices')
      .values({
        serial_number: serialNumber,
        account_id: accountId,
        seed_sealed: this.#box.seal(seedBase32, serialNumber),
        user_id: null,
        last_used_step: null,
        created_at: new Date(this.#clock.nowMs()).toISOString(),
        bound_at: null,
      })
      .execute();
    return { serialNumber, seedBase32 };
  }

  /** Binds an unbound device to a user after two consecutive codes from it. */
  async bind(
    accountId: string,
    serialNumber: string,
    userName: string,
    code1: string,
    code2: string,
  ): Promise<void> {
    const nowMs = this.#clock.nowMs();
    await this.#db.transaction().execute(async (trx) => {
      const userId = await idByName(trx, 'users', accountId, userName);
      const device = await trx
        .selectFrom('mfa_devices')
        .select(['serial_number', 'seed_sealed', 'user_id'])
        .where('account_id', '=', accountId)
        .where('serial_number', '=', serialNumber)
        .executeTakeFirst();
      if (device === undefined || device.user_id !== null) {
        throw new AppError(
          'EntityNotExist.VirtualMFADevice',
          `No unbound MFA device ${JSON.stringify(serialNumber.slice(0, 200))} exists; create one first.`,
        );
      }
      const bound = await trx
        .selectFrom('mfa_devices')
        .select('serial_number')
        .where('user_id', '=', userId)
        .executeTakeFirst();
      if (bound !== undefined) {
        throw new AppError(
          'EntityAlreadyExists.User.MFADevice',
          `The user ${JSON.stringify(userName)} already has an MFA device; unbind it first.`,
        );
      }
      const seed = base32Decode(this.#box.open(device.seed_sealed, device.serial_number));
      const step = matchConsecutiveTotp(seed, code1, code2, nowMs);
      if (step === undefined) {
        throw new AppError(
          'InvalidParameter.AuthenticationCode',
          'AuthenticationCode1 and AuthenticationCode2 must be two consecutive codes from the device, the ' +
            'second the one it shows now; check the device clock.',
        );
      }
      await trx
        .updateTable('mfa_devices')
        .set({ user_id: userId, last_used_step: step, bound_at: new Date(nowMs).toISOString() })
        .where('serial_number', '=', device.serial_number)
        .execute();
      await bumpCredentialEpoch(trx, userId);
    });
  }

  /** Unbinds and destroys the user's device (its seed is not kept); returns its serial number. */
  async unbind(accountId: string, userName: string): Promise<string> {
    return this.#db.transaction().execute(async (trx) => {
      const userId = await idByName(trx, 'users', accountId, userName);
      const device = await trx
        .selectFrom('mfa_devices')
        .select('serial_number')
        .where('user_id', '=', userId)
        .executeTakeFirst();
      if (device === undefined) {
        throw new AppError(
          'EntityNotExist.User.MFADevice',
          `The user ${JSON.stringify(userName)} has no MFA device bound.`,
        );
      }
      await trx.deleteFrom('mfa_devices').where('serial_number', '=', device.serial_number).execute();
      await bumpCredentialEpoch(trx, userId);
      return device.serial_number;
    });
  }

  /** The serial number of the user's bound device, if any. */
  async boundDevice(userId: string): Promise<string | undefined> {
    const row = await this.#db
      .selectFrom('mfa_devices')
      .select('serial_number')
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return row?.serial_number;
  }

  /**
   * Checks a code from the user's bound device and consumes its time step. False when the code is wrong,
   * outside ±1 step, or its step (or a later one) was already used.
   */
  async useCode(userId: string, code: string): Promise<boolean> {
    const device = await this.#db
      .selectFrom('mfa_devices')
      .select(['serial_number', 'seed_sealed', 'last_used_step'])
      .where('user_id', '=', userId)
      .executeTakeFirst();
    if (device === undefined) return false;
    const seed = base32Decode(this.#box.open(device.seed_sealed, device.serial_number));
    const step = matchTotp(seed, code, this.#clock.nowMs(), device.last_used_step);
    if (step === undefined) return false;
    // Conditional on the step still being new: of two concurrent uses of one code, one wins.
    const result = await this.#db
      .updateTable('mfa_devices')
      .set({ last_used_step: step })
      .where('serial_number', '=', device.serial_number)
      .where((eb) => eb.or([eb('last_used_step', 'is', null), eb('last_used_step', '<', step)]))
      .executeTakeFirst();
    return result.numUpdatedRows === 1n;
  }
}

/** The resource an MFA device action names. */
export const mfaResource = (accountId: string, deviceName: string): string =>
  arn.mfaDevice(accountId, deviceName);
