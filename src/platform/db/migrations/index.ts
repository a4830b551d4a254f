/**
 * The ordered list of migrations. Names sort in apply order; a released migration is never edited, only
 * followed by a new one.
 */
import type { Migration, MigrationProvider } from 'kysely';
import { migration0001 } from './0001-initial.js';
import { migration0002 } from './0002-instances.js';
import { migration0003 } from './0003-identity.js';
import { migration0004 } from './0004-audit.js';
import { migration0005 } from './0005-logon.js';
import { migration0006 } from './0006-console.js';
import { migration0007 } from './0007-replicas.js';
import { migration0008 } from './0008-credential-epoch.js';
import { migration0009 } from './0009-host-trust.js';
import { migration0010 } from './0010-audit-anchor.js';
import { migration0011 } from './0011-sshd-readiness.js';
import { migration0012 } from './0012-grant-used.js';
import { migration0013 } from './0013-ssh-route.js';
import { migration0014 } from './0014-terminal-sessions.js';
import { migration0015 } from './0015-session-replica.js';

const MIGRATIONS: Record<string, Migration> = {
  '0001-initial': migration0001,
  '0002-instances': migration0002,
  '0003-identity': migration0003,
  '0004-audit': migration0004,
  '0005-logon': migration0005,
  '0006-console': migration0006,
  '0007-replicas': migration0007,
  '0008-credential-epoch': migration0008,
  '0009-host-trust': migration0009,
  '0010-audit-anchor': migration0010,
  '0011-sshd-readiness': migration0011,
  '0012-grant-used': migration0012,
  '0013-ssh-route': migration0013,
  '0014-terminal-sessions': migration0014,
  '0015-session-replica': migration0015,
};

/** Kysely migration provider over the migrations compiled into Keyward (no directory scanning). */
export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve(MIGRATIONS),
};
