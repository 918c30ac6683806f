import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { fileBytes, joinedBytes, jsonArrayBytes, jsonObjectBytes, readJsonLines, wholeBytes } from '../src/text-bytes.js';
import { tempDir } from './helpers/cli.js';

/** `bytes` cut into pieces of `n`, as a file is read: lines and characters cut anywhere. */
const pieces = (bytes: Buffer, n: number) => () => Array.from({ length: Math.ceil(bytes.length / n) }, (_, i) => bytes.subarray(i * n, (i + 1) * n));

// Names of every script, and counts on both sides of the 512-item batch.
const names = (n: number) => Array.from({ length: n }, (_, i) => ({ path: `dossier ${i}/Ärzte 日本語 📁 "q" \\ \n${i}`, size: i }));

describe('text-bytes', () => {
  for (const n of [0, 1, 511, 512, 513, 1025]) {
    it(`writes ${n} items as JSON that parses back to the same value`, () => {
      const items = names(n);
      expect(JSON.parse(jsonArrayBytes(items).toString('utf8'))).toEqual(items);
      const head = { format: 1, id: 'x', stats: { files: n } };
      expect(JSON.parse(jsonObjectBytes(head, 'entries', items).toString('utf8'))).toEqual({ ...head, entries: items });
      expect(JSON.parse(jsonObjectBytes({}, 'entries', items).toString('utf8'))).toEqual({ entries: items });
      // a Map's pairs, as the hash cache is kept
      const map = new Map(items.map((i) => [i.path, i]));
      expect(new Map(JSON.parse(jsonArrayBytes(map).toString('utf8')) as Array<[string, unknown]>)).toEqual(map);
      // and back an item a line
      const back: unknown[] = [];
      expect(readJsonLines(jsonArrayBytes(items), (i, at) => back.push([at, i]))).toEqual({ head: undefined });
      expect(back).toEqual(items.map((i, at) => [at, i]));
      back.length = 0;
      expect(readJsonLines(jsonObjectBytes(head, 'entries', items), (i) => back.push(i))).toEqual({ head: { ...head, entries: [] } });
      expect(back).toEqual(items);
    });
  }

  it('readJsonLines leaves other layouts to JSON.parse, and refuses a missing or extra comma', () => {
    const items = names(3);
    const none = () => {
      throw new Error('no item expected');
    };
    expect(readJsonLines(Buffer.from(JSON.stringify(items)), none)).toBe(false);
    expect(readJsonLines(Buffer.from(JSON.stringify({ entries: items }, null, 2)), none)).toBe(false);
    const text = jsonArrayBytes(items).toString('utf8');
    expect(() => readJsonLines(Buffer.from(text.replace('},\n', '}\n')), () => undefined)).toThrow(SyntaxError);
    expect(() => readJsonLines(Buffer.from(text.replace('}\n]', '},\n]')), () => undefined)).toThrow(SyntaxError);
  });

  it('reads the same in pieces of any size, from a file a MiB at a time, and refuses the same damage', async () => {
    const head = { format: 1, id: 'x' };
    const bytes = jsonObjectBytes(head, 'entries', names(40));
    const whole: unknown[] = [];
    readJsonLines(bytes, (i) => whole.push(i));
    for (const n of [1, 2, 7, 64, 1000, bytes.length]) {
      const got: unknown[] = [];
      expect(readJsonLines(pieces(bytes, n), (i) => got.push(i)), `pieces of ${n}`).toEqual({ head: { ...head, entries: [] } });
      expect(got).toEqual(whole);
      expect(wholeBytes(pieces(bytes, n))).toEqual(bytes);
    }
    const dir = await tempDir('cerberus-text-bytes-');
    try {
      const file = path.join(dir, 'big.json');
      const many = names(30_000); // over 2 MiB: several pieces
      fs.writeFileSync(file, jsonArrayBytes(many));
      expect(fs.statSync(file).size).toBeGreaterThan(2 << 20);
      const got: unknown[] = [];
      expect(readJsonLines(fileBytes(file), (i) => got.push(i))).toEqual({ head: undefined });
      expect(got).toEqual(many);
      // one line of JSON, longer than a piece: left to JSON.parse, no item seen
      fs.writeFileSync(file, JSON.stringify(many));
      expect(readJsonLines(fileBytes(file), () => expect.unreachable())).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const text = bytes.toString('utf8');
    for (const bad of [text.replace('},\n', '}\n'), text.replace('}\n]', '},\n]'), text.slice(0, -1), text.slice(0, text.lastIndexOf('\n'))]) {
      expect(() => readJsonLines(pieces(Buffer.from(bad), 5), () => undefined)).toThrow(SyntaxError);
    }
  });

  it('joins lines exactly as Array.join would', () => {
    for (const n of [0, 1, 512, 1000]) {
      const lines = Array.from({ length: n }, (_, i) => `line ${i} ü`);
      expect(joinedBytes(lines, (l) => l, '\n', '# head\n', '\n').toString('utf8')).toBe('# head\n' + lines.join('\n') + '\n');
    }
  });
});
