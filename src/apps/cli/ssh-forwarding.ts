/**
 * Whether ssh arguments ask for port forwarding (`-L`, `-R`, `-D`, `-W`, or the same as `-o` options), so
 * `keyward ssh` asks for a one-time key that allows it. Reads the arguments as ssh(1)'s getopt does:
 * single-letter flags may be combined (`-fNL 8080:localhost:80`), an option's value may be attached or the
 * next argument, and the first word that is not an option starts the remote command.
 */

/** ssh(1) options that take a value (OpenSSH 9.x's getopt string). */
const WITH_VALUE = new Set('BbcDEeFIiJLlmOoPpQRSWw'.split(''));
const FORWARDING = new Set(['L', 'R', 'D', 'W']);
const FORWARDING_OPTIONS = /^\s*(localforward|remoteforward|dynamicforward)\b/i;

export function requestsPortForwarding(args: readonly string[]): boolean {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '--' || !arg.startsWith('-') || arg === '-') return false;
    for (let j = 1; j < arg.length; j++) {
      const flag = arg.charAt(j);
      if (FORWARDING.has(flag)) return true;
      if (WITH_VALUE.has(flag)) {
        const value = j + 1 < arg.length ? arg.slice(j + 1) : (args[++i] ?? '');
        if (flag === 'o' && FORWARDING_OPTIONS.test(value)) return true;
        break;
      }
    }
  }
  return false;
}
