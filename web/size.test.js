import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSize } from './size.js';

test('parseSize reads the CLI --out-shard-size forms', () => {
  const cases = [
    ['', 0], ['5B', 5e9], ['500M', 5e8], ['2GiB', 2 * 2 ** 30], ['300KiB', 300 * 1024],
    ['1.5MiB', 1.5 * 2 ** 20], ['20k', 20000], ['20K', 20000], ['3G', 3e9], ['4096', 4096],
    [' 64KiB ', 65536], ['0.5k', 500], ['1e3', 1000], ['2.9', 2],
  ];
  for (const [in_, want] of cases) assert.equal(parseSize(in_), want, `parseSize(${JSON.stringify(in_)})`);
});

test('parseSize rejects what the CLI rejects', () => {
  for (const bad of ['x', '0', '-5M', 'MiB', '5 MiB', '5TB', '0x10', 'Infinity', '1e30B', '0.2']) {
    assert.throws(() => parseSize(bad), /not a positive size|less than one byte/, `parseSize(${JSON.stringify(bad)})`);
  }
});
