/**
 * Serves the web console's page and its two bundles (built by scripts/build-console.mjs into
 * dist/console-ui/, each with its Brotli and gzip form beside it) from memory: read once at start and
 * answered with an ETag, so a page load costs no disk read and no compression, and a start none either. Every console response carries the
 * security headers below; the Content-Security-Policy allows scripts only from this server (no inline
 * script, no eval). Styles may also be inline because xterm.js writes its cell geometry and theme into
 * <style> elements at run time; inline style cannot run code.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../platform/errors.js';

/** Where `npm run build` puts the console's files, relative to this module in dist/src/console/. */
export const DEFAULT_ASSET_DIR = fileURLToPath(new URL('../../console-ui/', import.meta.url));

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

/** Sent with every `/console` answer (registered by registerConsoleRoutes). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
};

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

interface Asset {
  readonly type: string;
  readonly etag: string;
  readonly raw: Buffer;
  readonly gzip: Buffer;
  readonly br: Buffer;
}

/** The console's files, compressed, keyed by file name. */
export class ConsoleAssets {
  readonly #files = new Map<string, Asset>();

  constructor(dir: string = DEFAULT_ASSET_DIR) {
    if (!existsSync(join(dir, 'index.html'))) {
      throw new Error(
        `The web console is not built (${join(dir, 'index.html')} is missing): run "npm run build" first.`,
      );
    }
    for (const name of readdirSync(dir)) {
      const ext = name.slice(name.lastIndexOf('.'));
      const type = TYPES[ext];
      if (type === undefined) continue;
      const raw = readFileSync(join(dir, name));
      const compressed = (suffix: string): Buffer => {
        const file = join(dir, `${name}${suffix}`);
        if (!existsSync(file)) throw new Error(`${file} is missing: run "npm run build" again.`);
        return readFileSync(file);
      };
      this.#files.set(name, {
        type,
        etag: `"${createHash('sha256').update(raw).digest('base64url').slice(0, 27)}"`,
        raw,
        gzip: compressed('.gz'),
        br: compressed('.br'),
      });
    }
  }

  /** File name → {raw, gzip, br} sizes in bytes, for the benchmark and the build report. */
  sizes(): Record<string, { raw: number; gzip: number; br: number }> {
    const out: Record<string, { raw: number; gzip: number; br: number }> = {};
    for (const [name, a] of this.#files) {
      out[name] = { raw: a.raw.length, gzip: a.gzip.length, br: a.br.length };
    }
    return out;
  }

  get(name: string): Asset | undefined {
    return this.#files.get(name);
  }
}

function send(request: FastifyRequest, reply: FastifyReply, asset: Asset, cache: string): FastifyReply {
  void reply.header('cache-control', cache).header('etag', asset.etag);
  void reply.header('vary', 'accept-encoding').type(asset.type);
  if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
  const accepted = request.headers['accept-encoding'] ?? '';
  if (/\bbr\b/.test(accepted)) return reply.header('content-encoding', 'br').send(asset.br);
  if (/\bgzip\b/.test(accepted)) return reply.header('content-encoding', 'gzip').send(asset.gzip);
  return reply.send(asset.raw);
}

/** GET /console/ (the page), GET /console/assets/NAME (its scripts and styles). */
export function registerConsoleAssets(app: FastifyInstance, assets: ConsoleAssets): void {
  app.get('/console', (_request, reply) => reply.redirect('/console/', 308));
  app.get('/console/', (request, reply) => {
    const page = assets.get('index.html');
    if (page === undefined) throw new AppError('ServiceUnavailable', 'The web console is not built.');
    // The page is small and names its bundles; always revalidated, so a new build shows at once.
    return send(request, reply, page, 'no-cache');
  });
  app.get<{ Params: { name: string } }>('/console/assets/:name', (request, reply) => {
    const name = request.params.name;
    const asset = name === 'index.html' ? undefined : assets.get(name);
    if (asset === undefined) {
      throw new AppError(
        'InvalidAction.NotFound',
        `The console has no file ${JSON.stringify(name.slice(0, 64))}.`,
      );
    }
    return send(request, reply, asset, 'no-cache');
  });
}
