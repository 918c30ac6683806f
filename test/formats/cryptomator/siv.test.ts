import { describe, expect, it } from 'vitest';
import { cmac, sivDecrypt, sivEncrypt, SivAuthenticationError } from '../../../src/formats/cryptomator/siv.js';

const h = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('AES-CMAC', () => {
  // RFC 4493 §4 examples
  const key = h('2b7e151628aed2a6abf7158809cf4f3c');
  it.each([
    ['', 'bb1d6929e95937287fa37d129b756746'],
    ['6bc1bee22e409f96e93d7e117393172a', '070a16b46b4d4144f79bdd9dd04a287c'],
    [
      '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411',
      'dfa66747de9ae63030ca32611497c827',
    ],
  ])('RFC 4493 vector %#', (msg, tag) => {
    expect(cmac(key, h(msg)).toString('hex')).toBe(tag);
  });
});

describe('AES-SIV RFC 5297 Appendix A', () => {
  it('A.1 deterministic', () => {
    const key = h('fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff');
    const ad = h('101112131415161718191a1b1c1d1e1f2021222324252627');
    const pt = h('112233445566778899aabbccddee');
    const out = sivEncrypt(key, pt, [ad]);
    expect(out.toString('hex')).toBe('85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c');
    expect(sivDecrypt(key, out, [ad])).toEqual(pt);
  });

  it('A.2 nonce-based (nonce as last AD item)', () => {
    const key = h('7f7e7d7c7b7a79787776757473727170404142434445464748494a4b4c4d4e4f');
    const ads = [
      h('00112233445566778899aabbccddeeffdeaddadadeaddadaffeeddccbbaa99887766554433221100'),
      h('102030405060708090a0'),
      h('09f911029d74e35bd84156c5635688c0'),
    ];
    const pt = h('7468697320697320736f6d6520706c61696e7465787420746f20656e6372797074207573696e67205349562d414553');
    const out = sivEncrypt(key, pt, ads);
    expect(out.toString('hex')).toBe(
      '7bdb6e3b432667eb06f4d14bff2fbd0fcb900f2fddbe404326601965c889bf17dba77ceb094fa663b7a3f748ba8af829ea64ad544a272e9c485b62a3fd5c0d',
    );
    expect(sivDecrypt(key, out, ads)).toEqual(pt);
  });

  it('rejects a flipped bit, wrong AD and short input', () => {
    const key = Buffer.alloc(64, 7);
    const out = sivEncrypt(key, Buffer.from('hello world'), [Buffer.from('ad')]);
    const bad = Buffer.from(out);
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 1;
    expect(() => sivDecrypt(key, bad, [Buffer.from('ad')])).toThrow(SivAuthenticationError);
    expect(() => sivDecrypt(key, out, [Buffer.from('other')])).toThrow(SivAuthenticationError);
    expect(() => sivDecrypt(key, out.subarray(0, 10))).toThrow(SivAuthenticationError);
    expect(sivDecrypt(key, out, [Buffer.from('ad')]).toString()).toBe('hello world');
  });

  it('round-trips empty and block-sized plaintexts with a 64-byte key', () => {
    const key = Buffer.alloc(64, 3);
    for (const n of [0, 1, 15, 16, 17, 32, 100]) {
      const pt = Buffer.alloc(n, 0x5a);
      expect(sivDecrypt(key, sivEncrypt(key, pt, []), [])).toEqual(pt);
    }
  });
});
