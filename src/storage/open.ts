import type { TargetConfig } from '../config/index.js';
import type { Backend } from './backend.js';
import { BandwidthLayer } from './bwlimit.js';
import { ConcurrencyLayer } from './concurrency.js';
import { LayeredBackend, type Layer } from './layer.js';
import { LocalBackend } from './local.js';
import { LoggingLayer } from './logging.js';
import { DEFAULT_RETRY, RetryLayer } from './retry.js';
import { S3Backend } from './s3.js';
import { TimeoutLayer } from './timeout.js';
import { WebdavBackend } from './webdav.js';

/** How jobs get a target's backend: composed once by the CLI, with its log and settings. */
export type OpenTarget = (target: TargetConfig) => Backend;

export interface OpenOptions {
  /** retries and other things worth a line in the build log */
  log?: (message: string) => void;
  /** one line per storage call */
  debug?: (message: string) => void;
  /** first retry backoff; tests shorten it */
  retryBaseDelayMs?: number;
}

/** A target's backend on its own, without the shared behaviour; for probe and tests. */
export function rawBackend(target: TargetConfig): Backend {
  switch (target.type) {
    case 'local':
      return new LocalBackend(target.path);
    case 'webdav':
      return new WebdavBackend(target);
    case 's3':
      return new S3Backend(target);
  }
}

/**
 * The one place where a target's config becomes a backend with its shared behaviour, from
 * the outside in: retry (whole calls; backoff does not hold a slot), concurrency, bandwidth,
 * per-attempt timeout, then debug logging of each attempt.
 */
export function openBackend(target: TargetConfig, opts: OpenOptions = {}): Backend {
  const layers: Layer[] = [
    new RetryLayer(
      target.name,
      { ...DEFAULT_RETRY, retries: target.retries, baseDelayMs: opts.retryBaseDelayMs ?? DEFAULT_RETRY.baseDelayMs, resumeGets: target.type !== 'local' },
      opts.log ?? (() => undefined),
    ),
    new ConcurrencyLayer(target.concurrency),
  ];
  if (target.bwlimit) layers.push(new BandwidthLayer(target.bwlimit));
  // a local disk answers or fails; a timeout there would only cut a slow USB write short
  if (target.type !== 'local') layers.push(new TimeoutLayer(target.name, target.timeoutMs));
  if (opts.debug) layers.push(new LoggingLayer(target.name, opts.debug));
  return layers.reduceRight<Backend>((inner, layer) => new LayeredBackend(inner, layer), rawBackend(target));
}
