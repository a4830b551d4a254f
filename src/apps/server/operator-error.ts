/**
 * The failure of an operator command that works on storage (`keyward backup`, `keyward migrate-storage`):
 * a stable code from the command's own list and a message a person can act on. The CLI prints both.
 */
export class OperatorError<C extends string> extends Error {
  constructor(
    readonly code: C,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}
