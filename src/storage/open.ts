import type { TargetConfig } from '../config/index.js';
import type { Backend } from './backend.js';
import { LocalBackend } from './local.js';

/** The one place where a target's config becomes a backend (and, later, its wrappers). */
export function openBackend(target: TargetConfig): Backend {
  switch (target.type) {
    case 'local':
      return new LocalBackend(target.path);
  }
}
