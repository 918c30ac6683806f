export type { Backend, BodySource, ByteRange, Capabilities, ObjectInfo } from './backend.js';
export { joinPath, removeTree } from './backend.js';
export { LocalBackend } from './local.js';
export { openBackend } from './open.js';
