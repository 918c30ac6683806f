import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { CerberusError } from '../errors.js';
import { decryptBuffer, type Opening } from '../formats/openpgp/message.js';
import { VOLUME_PATTERN, volumeName } from '../formats/volumes.js';
import { parseManifest, type Manifest } from '../engine/manifest.js';
import { joinPath, type Backend } from '../storage/backend.js';
import { MANIFEST, SUMS, type Generation } from './generations.js';
import { hashObject, readSmall, sha256Hex } from './io.js';

/** What a committed generation holds, checked against its SHA256SUMS and info.json. */
export interface GenerationFiles {
  sums: Map<string, string>;
  volumes: Array<{ name: string; size: number }>;
}

export async function generationFiles(backend: Backend, g: Generation): Promise<GenerationFiles> {
  const where = `${backend.description} ${g.level}/${g.id}`;
  // read and parsed when the generation was listed
  const sums = g.sums;
  const present = new Map(g.files.map((f) => [f.name, f.size]));
  for (const name of sums.keys()) {
    if (!present.has(name)) {
      throw new CerberusError('INTEGRITY', `${where}: ${name} is listed in ${SUMS} but missing`, {
        hint: 'this restore point is damaged; use another restore point or target',
      });
    }
  }
  const volumes: Array<{ name: string; size: number }> = [];
  for (let i = 1; i <= g.info.volumes; i++) {
    const name = volumeName(i);
    const size = present.get(name);
    if (size === undefined || !sums.has(name)) {
      throw new CerberusError('INTEGRITY', `${where}: volume ${name} is missing (expected ${g.info.volumes})`, {
        hint: 'this restore point is damaged; use another restore point or target',
      });
    }
    volumes.push({ name, size });
  }
  const extra = g.files.filter((f) => VOLUME_PATTERN.test(f.name) && Number(f.name.slice(-4)) > g.info.volumes);
  if (extra.length > 0) throw new CerberusError('INTEGRITY', `${where}: unexpected volume ${extra[0]!.name}`);
  if (!sums.has(MANIFEST)) throw new CerberusError('INTEGRITY', `${where}: ${SUMS} does not list ${MANIFEST}`);
  return { sums, volumes };
}

export async function readManifest(backend: Backend, g: Generation, files: GenerationFiles, opening: Opening): Promise<Manifest> {
  const where = `${g.level}/${g.id}/${MANIFEST}`;
  const bytes = await readSmall(backend, joinPath(g.dir, MANIFEST));
  if (sha256Hex(bytes) !== files.sums.get(MANIFEST)) {
    throw new CerberusError('INTEGRITY', `${where} on ${backend.description} does not match its SHA256SUMS`, {
      hint: 'the repository was damaged or tampered with; use another restore point or target',
    });
  }
  const m = parseManifest(await decryptBuffer(bytes, opening, where), where);
  if (m.id !== g.id || m.level !== g.level) {
    throw new CerberusError('INTEGRITY', `${where} describes ${m.level}/${m.id}, not this generation`);
  }
  return m;
}

/** Where a volume stream got to: the volume being read, and the mismatch it met, if any. */
export interface VolumeProgress {
  current?: string;
  failure?: CerberusError;
}

function volumeMismatch(where: string, name: string, n: number): CerberusError {
  return new CerberusError('INTEGRITY', `${where}: volume ${name} does not match its SHA256SUMS (${n} bytes read)`, {
    hint: 'the volume is damaged or truncated; use another restore point or target',
  });
}

/**
 * The volumes of a generation as one stream, each checked against SHA256SUMS as it passes:
 * a flipped byte, a truncated or swapped volume stops the stream with an error naming it.
 */
export function volumeStream(
  backend: Backend,
  g: Generation,
  files: GenerationFiles,
  onBytes?: (n: number) => void,
  progress: VolumeProgress = {},
): Readable {
  const where = `${backend.description} ${g.level}/${g.id}`;
  async function* gen(): AsyncGenerator<Buffer> {
    for (const v of files.volumes) {
      progress.current = v.name;
      const hash = createHash('sha256');
      let n = 0;
      for await (const chunk of await backend.get(joinPath(g.dir, v.name))) {
        const b = chunk as Buffer;
        hash.update(b);
        n += b.length;
        onBytes?.(b.length);
        yield b;
      }
      if (hash.digest('hex') !== files.sums.get(v.name)) {
        progress.failure = volumeMismatch(where, v.name, n);
        throw progress.failure;
      }
      progress.current = undefined;
    }
  }
  return Readable.from(gen(), { objectMode: false });
}

/** Hashes one whole volume: the mismatch error when it does not match SHA256SUMS. */
export async function checkVolume(backend: Backend, g: Generation, files: GenerationFiles, name: string): Promise<CerberusError | undefined> {
  const { sha256, size } = await hashObject(backend, joinPath(g.dir, name));
  return sha256 === files.sums.get(name) ? undefined : volumeMismatch(`${backend.description} ${g.level}/${g.id}`, name, size);
}
