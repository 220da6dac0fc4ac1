// parseSize reads a shard size as the CLI's --out-shard-size does (cmd/freelunch parseSize):
// bytes, or a decimal number with k/K (10^3), M (10^6), B or G (10^9, mergekit's "5B"), KiB,
// MiB or GiB; the product is truncated to whole bytes. It returns the byte count, or throws an
// Error saying what is accepted. '' (the field left empty) is 0: the core's default, 5B.
// Unlike the CLI, which takes a size below one byte ("0.2") as 0 and so as the default, it
// refuses one: in a form field that is a slip, not a request for 5B.
const units = [['KiB', 2 ** 10], ['MiB', 2 ** 20], ['GiB', 2 ** 30], ['k', 1e3], ['K', 1e3], ['M', 1e6], ['B', 1e9], ['G', 1e9]];

export function parseSize(text) {
  const s = text.trim();
  if (s === '') return 0;
  let num = s;
  let mult = 1;
  for (const [suffix, m] of units) {
    if (s.endsWith(suffix)) {
      num = s.slice(0, -suffix.length);
      mult = m;
      break;
    }
  }
  // Decimal numbers only: Number() would also take '0x10', ' 1 ' or 'Infinity'.
  const f = /^(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(num) ? Number(num) : NaN;
  if (!(f > 0) || f * mult > 2 ** 62) throw new Error(`"${s}" is not a positive size like 5B, 500M or 2GiB`);
  const n = Math.trunc(f * mult);
  if (n < 1) throw new Error(`"${s}" is less than one byte`);
  return n;
}
