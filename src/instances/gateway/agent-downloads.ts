/**
 * The agent's one-line install, server side: `GET /agent/v1/download?arch=x64|arm64` streams the
 * stand-alone agent executable (built by `npm run build:agent`) with its SHA-256 in `x-keyward-sha256`,
 * `GET /agent/v1/download.sha256?arch=…` answers the digest in sha256sum's form, and
 * `GET /agent/v1/install.sh` the POSIX installer (packaging/agent-install.sh) with this server's URL
 * written into it. None of them needs credentials: the executable and the script hold no secret (the
 * enrollment token is what authorizes a host, and it never passes through here). The query is bounded
 * and checked; unknown parameters are refused. The digest is computed here, not read from the build's
 * .sha256 file, and kept while the file's size, times and inode stay the same.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../../platform/errors.js';

export const AGENT_DOWNLOAD_PATH = '/agent/v1/download';
export const AGENT_DOWNLOAD_SHA256_PATH = '/agent/v1/download.sha256';
export const AGENT_INSTALL_PATH = '/agent/v1/install.sh';

/** CPU architectures the agent executable is built for (Node's `process.arch` names). */
export const AGENT_ARCHES = ['x64', 'arm64'] as const;
export type AgentArch = (typeof AGENT_ARCHES)[number];

/** dist/agent-bin beside the server's compiled code (this file is dist/src/instances/gateway/…). */
export const DEFAULT_AGENT_DOWNLOADS_DIR = fileURLToPath(new URL('../../../agent-bin/', import.meta.url));
/** The installer's template, in the checkout's packaging/ directory. */
export const INSTALL_SCRIPT_TEMPLATE = fileURLToPath(
  new URL('../../../../packaging/agent-install.sh', import.meta.url),
);

const MAX_QUERY_CHARS = 64;
/** The line of the template the server's URL replaces. */
const URL_PLACEHOLDER = "KEYWARD_URL='@KEYWARD_URL@'";
/** A Host header that can go into the script as it is: a DNS name or IP, an optional port. */
const HOST_HEADER =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

/** The executable's file name for `arch` (what scripts/build-agent.mjs writes). */
export function agentFileName(arch: AgentArch): string {
  return `keyward-agent-linux-${arch}`;
}

interface Digested {
  readonly key: string;
  readonly sha256: string;
}

/** Finds the executables and their digests in one directory. */
export class AgentDownloads {
  readonly #dir: string;
  readonly #digests = new Map<AgentArch, Digested>();
  readonly #installTemplate: string;

  constructor(options: { dir?: string; installTemplate?: string } = {}) {
    this.#dir = options.dir ?? DEFAULT_AGENT_DOWNLOADS_DIR;
    const template = readFileSync(options.installTemplate ?? INSTALL_SCRIPT_TEMPLATE, 'utf8');
    if (template.split('\n').filter((line) => line === URL_PLACEHOLDER).length !== 1) {
      throw new Error(`the installer template has no single line ${URL_PLACEHOLDER}`);
    }
    this.#installTemplate = template;
  }

  /** The executable for `arch`: its path, size and SHA-256. Throws AgentDownload.NotBuilt. */
  async find(arch: AgentArch): Promise<{ path: string; size: number; sha256: string }> {
    const path = join(this.#dir, agentFileName(arch));
    const info = await stat(path).catch(() => undefined);
    if (info?.isFile() !== true) {
      throw new AppError(
        'AgentDownload.NotBuilt',
        `this server has no agent executable for ${arch} (${agentFileName(arch)} in its agent downloads ` +
          'directory): run `npm run build:agent` on the server' +
          (arch === process.arch
            ? ''
            : ` (it builds for the machine it runs on: build on an ${arch} machine)`),
      );
    }
    const key = `${info.size}:${info.mtimeMs}:${info.ctimeMs}:${info.ino}`;
    let digested = this.#digests.get(arch);
    if (digested?.key !== key) {
      digested = { key, sha256: await sha256OfFile(path) };
      this.#digests.set(arch, digested);
    }
    return { path, size: info.size, sha256: digested.sha256 };
  }

  /** The installer with `serverUrl` (already checked: no quote can be in it) written in. */
  installScript(serverUrl: string): string {
    if (!/^https?:\/\/[A-Za-z0-9:/.\-_[\]~%]+$/.test(serverUrl)) {
      throw new TypeError('the server URL is not safe to write into the installer');
    }
    return this.#installTemplate.replace(URL_PLACEHOLDER, `KEYWARD_URL='${serverUrl}'`);
  }
}

function sha256OfFile(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => {
        resolve(hash.digest('hex'));
      });
  });
}

/** Reads `?arch=` and nothing else from the raw URL. */
export function parseArchQuery(rawUrl: string): AgentArch {
  const q = rawUrl.indexOf('?');
  const query = q < 0 ? '' : rawUrl.slice(q + 1);
  if (query.length > MAX_QUERY_CHARS) {
    throw new AppError('InvalidParameter', `the query is longer than ${MAX_QUERY_CHARS} characters`);
  }
  const params = new URLSearchParams(query);
  for (const name of params.keys()) {
    if (name !== 'arch') throw new AppError('UnknownParameter', `unknown parameter "${name.slice(0, 32)}"`);
  }
  const values = params.getAll('arch');
  if (values.length === 0) throw new AppError('MissingParameter', 'arch is required: x64 or arm64');
  if (values.length > 1) throw new AppError('InvalidParameter', 'arch is given more than once');
  const arch = AGENT_ARCHES.find((a) => a === values[0]);
  if (arch === undefined) {
    throw new AppError(
      'AgentDownload.UnsupportedArch',
      `the agent is built for x64 and arm64 only, not "${(values[0] ?? '').slice(0, 32)}"`,
    );
  }
  return arch;
}

/** The URL written into the installer: the configured one, else this request's scheme and Host. */
function serverUrlOf(request: FastifyRequest, publicUrl: string | undefined): string {
  if (publicUrl !== undefined) return publicUrl;
  const host = request.headers.host ?? '';
  if (!HOST_HEADER.test(host)) {
    throw new AppError(
      'InvalidParameter',
      'the Host header is not a plain host name or address with a port; start the server with --public-url',
    );
  }
  return `${request.protocol}://${host}`;
}

/** Registers the three routes. */
export function registerAgentDownloadRoutes(
  app: FastifyInstance,
  downloads: AgentDownloads,
  options: { publicUrl?: string } = {},
): void {
  app.get(AGENT_DOWNLOAD_PATH, async (request, reply) => {
    const arch = parseArchQuery(request.raw.url ?? '');
    const file = await downloads.find(arch);
    void reply
      .header('content-type', 'application/octet-stream')
      .header('content-length', String(file.size))
      .header('content-disposition', `attachment; filename="${agentFileName(arch)}"`)
      .header('x-keyward-sha256', file.sha256)
      .header('cache-control', 'no-cache');
    return reply.send(createReadStream(file.path));
  });
  app.get(AGENT_DOWNLOAD_SHA256_PATH, async (request, reply) => {
    const arch = parseArchQuery(request.raw.url ?? '');
    const file = await downloads.find(arch);
    void reply.header('content-type', 'text/plain; charset=utf-8').header('cache-control', 'no-cache');
    return `${file.sha256}  ${agentFileName(arch)}\n`;
  });
  app.get(AGENT_INSTALL_PATH, async (request, reply) => {
    const rawUrl = request.raw.url ?? '';
    if (rawUrl.includes('?')) throw new AppError('UnknownParameter', 'install.sh takes no parameters');
    const script = downloads.installScript(serverUrlOf(request, options.publicUrl));
    void reply
      .header('content-type', 'text/x-shellscript; charset=utf-8')
      .header('cache-control', 'no-cache');
    return script;
  });
}
