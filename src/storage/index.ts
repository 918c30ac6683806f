export type { Backend, BodySource, ByteRange, Capabilities, ObjectInfo, RequestOptions } from './backend.js';
export { fileBody } from './backend.js';
export { joinPath, removeTree } from './backend.js';
export { copyFolder, type CopyFolderOptions } from './copy-tree.js';
export { LocalBackend, syncFileSystem } from './local.js';
export { openBackend, rawBackend, type OpenOptions, type OpenTarget } from './open.js';
export { safeEndpoint } from './s3.js';
export { FolderCopyRefusedError, StorageError, httpStorageError, networkCode, parseRetryAfter } from './errors.js';
