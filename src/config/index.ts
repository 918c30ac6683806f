/** The config module's public face: load and validate the YAML config once, then use plain typed objects. */
export type { Config, JobConfig, LocalTargetConfig, TargetConfig } from './types.js';
export { loadConfig, selectJob } from './load.js';
export { parseDuration, parsePercent, parseSize } from './units.js';
