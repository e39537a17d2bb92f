// FNV-1a 32-bit over the UTF-8 bytes of a string. Documented in README so Python can
// reproduce partitioning: h = 2166136261; for b in s.encode(): h = ((h ^ b) * 16777619) & 0xffffffff
const enc = new TextEncoder();

export function fnv1a32(str) {
  let h = 2166136261;
  for (const b of enc.encode(str)) {
    h ^= b;
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}
