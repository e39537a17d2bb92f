import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, payloadOf, jsDateStringUTC, NATIVE_ID_FIELD, MALFORMED_KINDS } from '../lib/generator.js';
import { SharedLog } from '../lib/log.js';
import { fnv1a32 } from '../lib/hash.js';

const all = (opts) => {
  const g = new Generator(opts);
  const out = [];
  let r;
  while ((r = g.next())) out.push(r);
  return out;
};

test('fnv1a32 known vectors (UTF-8 bytes)', () => {
  assert.equal(fnv1a32(''), 0x811c9dc5);
  assert.equal(fnv1a32('a'), 0xe40c292c);
  assert.equal(fnv1a32('foobar'), 0xbf9cf968);
  const b = Buffer.from('Łódź', 'utf8');
  let h = 2166136261;
  for (const x of b) h = Math.imul(h ^ x, 16777619) >>> 0;
  assert.equal(fnv1a32('Łódź'), h);
});

test('legacy creationDate matches Date.prototype.toString under TZ=UTC', () => {
  assert.equal(jsDateStringUTC(Date.UTC(2026, 10, 26, 11, 14, 36)), 'Thu Nov 26 2026 11:14:36 GMT+0000 (Coordinated Universal Time)');
  assert.equal(jsDateStringUTC(Date.UTC(2026, 0, 5, 8, 0, 9)), 'Mon Jan 05 2026 08:00:09 GMT+0000 (Coordinated Universal Time)');
});

test('determinism: same seed => identical log; different seed => different', () => {
  const a = all({ seed: 7, count: 800 }).map(payloadOf);
  const b = all({ seed: 7, count: 800 }).map(payloadOf);
  const c = all({ seed: 8, count: 800 }).map(payloadOf);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

test('seq contiguous, first keys seq/source/rev, revs per key 1..n (replays reuse an older rev)', () => {
  const recs = all({ seed: 3, count: 3000, replayFraction: 0.05, malformedFraction: 0.05 });
  const maxRev = new Map();
  const payloadByKeyRev = new Map();
  let replays = 0;
  recs.forEach((r, i) => {
    assert.equal(r.seq, i + 1);
    const p = payloadOf(r);
    assert.ok(p.startsWith(`{"seq":${r.seq},"source":"${r.source}","rev":${r.rev},`), p.slice(0, 80));
    assert.equal(r.key.split(':')[0], r.source);
    assert.equal(r.hash, fnv1a32(r.key));
    const prev = maxRev.get(r.key) ?? 0;
    if (r.rev === prev + 1) {
      maxRev.set(r.key, r.rev);
      if (!r.malformed) payloadByKeyRev.set(`${r.key}#${r.rev}`, p);
    } else {
      // a replay: older rev, valid, same snapshot as the original except seq
      replays++;
      assert.ok(r.rev < prev && r.malformed === null, `bad rev ${r.rev} after ${prev} for ${r.key}`);
      const orig = payloadByKeyRev.get(`${r.key}#${r.rev}`);
      assert.ok(orig, 'replayed snapshot must have been sent before');
      assert.equal(p.replace(/^\{"seq":\d+,/, ''), orig.replace(/^\{"seq":\d+,/, ''));
    }
  });
  assert.ok(replays > 50, `replays=${replays}`);
  const updates = recs.filter((r) => r.rev > 1).length;
  assert.ok(updates > recs.length * 0.35, `updates=${updates}`);
});

test('source formats and native ids', () => {
  const recs = all({ seed: 5, count: 2000, malformedFraction: 0 });
  const seen = new Set();
  for (const r of recs) {
    const m = JSON.parse(payloadOf(r));
    assert.deepEqual(Object.keys(m).slice(0, 3), ['seq', 'source', 'rev']);
    assert.equal(`${r.source}:${m[NATIVE_ID_FIELD[r.source]]}`, r.key);
    seen.add(r.source);
    if (r.source === 'legacy') {
      assert.deepEqual(Object.keys(m), ['seq', 'source', 'rev', 'id', 'receiver', 'price', 'address', 'creationDate']);
      assert.match(m.id, /^[0-9a-f]{24}$/);
      assert.ok(m.price >= 10 && m.price <= 200 && Math.round(m.price * 100) / 100 === m.price);
      assert.equal(typeof m.address.coordinates.x, 'number');
      assert.match(m.creationDate, /^\w{3} \w{3} \d\d \d{4} \d\d:\d\d:\d\d GMT\+0000 \(Coordinated Universal Time\)$/);
    } else if (r.source === 'acme') {
      assert.match(m.trackingNumber, /^ACME\d{10}$/);
      assert.match(m.updatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.ok(Array.isArray(m.items) && m.items.every((i) => i.currency === 'USD' && Number.isInteger(i.qty)));
      assert.match(m.events[0].location, /^.+, [A-Z]{2}$/);
    } else if (r.source === 'swiftpost') {
      assert.match(m.tracking_no, /^SP[0-9A-Z]{8}$/);
      assert.ok(Number.isInteger(m.price_cents) && Number.isInteger(m.created_ts) && m.currency === 'EUR');
      assert.ok(m.parcels.every((p) => Number.isInteger(p.grams)));
    } else {
      assert.match(m.ConsignmentId, /^NF-\d+$/);
      assert.match(m.Price, /^\d+\.\d\d SEK$/);
      assert.match(m.Updated, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00$/);
    }
  }
  assert.equal(seen.size, 4);
  const text = recs.map(payloadOf).join('');
  assert.ok(/"insurance":\{"insured":true/.test(text) && /"CustomsRef":/.test(text), 'optional fields appear');
  assert.ok(/[^\x00-\x7f]/.test(text), 'non-ASCII present');
});

test('--sources restricts the mix', () => {
  const recs = all({ seed: 1, count: 300, sources: ['legacy'] });
  assert.ok(recs.every((r) => r.source === 'legacy'));
});

test('malformed fraction and categories', () => {
  const recs = all({ seed: 11, count: 4000, malformedFraction: 0.2, replayFraction: 0 });
  const bad = recs.filter((r) => r.malformed);
  const frac = bad.length / recs.length;
  assert.ok(frac > 0.17 && frac < 0.23, `fraction ${frac}`);
  const counts = Object.fromEntries(MALFORMED_KINDS.map((k) => [k, 0]));
  for (const r of bad) {
    counts[r.malformed]++;
    const p = payloadOf(r);
    assert.ok(p.startsWith(`{"seq":${r.seq},"source":"${r.source}","rev":${r.rev},`), 'prefix intact');
    if (r.malformed === 'bad-json') {
      assert.throws(() => JSON.parse(p));
      continue;
    }
    const m = JSON.parse(p);
    if (r.malformed === 'oversized') {
      assert.ok(Buffer.byteLength(p) > 1024 * 1024);
      assert.equal(typeof m.padding, 'string');
    } else if (r.malformed === 'missing-key') {
      const required = { legacy: ['receiver', 'price', 'address'], acme: ['status', 'items', 'consignee'],
        swiftpost: ['state', 'parcels', 'to'], nordfreight: ['Status', 'Lines', 'Receiver'] }[r.source];
      const missing = [NATIVE_ID_FIELD[r.source], ...required].filter((k) => !(k in m));
      assert.equal(missing.length, 1, p.slice(0, 200));
    } else {
      assert.equal(m.seq, r.seq); // still JSON with the right shape of prefix; the type is what is wrong
      assert.match(JSON.stringify(m), /"abc"|"many"|"n\/a"|"somewhere"|"\d+ boxes"|"Price":12345|"items":\{|"Lines":\{/);
    }
  }
  for (const k of MALFORMED_KINDS) assert.ok(counts[k] > bad.length * 0.15, `${k}: ${counts[k]}`);
  // malformed messages consume a rev: the rev sequence per key stays contiguous
  const last = new Map();
  for (const r of recs) {
    assert.equal(r.rev, (last.get(r.key) ?? 0) + 1);
    last.set(r.key, r.rev);
  }
});

test('infinite generation stays memory-bounded (open shipments capped)', () => {
  const g = new Generator({ seed: 9, count: 0, updateFraction: 0.1 });
  for (let i = 0; i < 30000; i++) assert.ok(g.next());
  assert.ok(g.active.length <= 2000);
});

test('SharedLog: readers behind a small window regenerate the exact same records', () => {
  const opts = { seed: 21, count: 0 };
  const log = new SharedLog(opts, 50);
  const ahead = log.cursor(0);
  for (let i = 0; i < 500; i++) ahead.next(); // push the window to 451..500
  const behind = log.cursor(10);
  const ref = new Generator(opts);
  for (let i = 0; i < 10; i++) ref.next();
  for (let i = 0; i < 600; i++) assert.equal(payloadOf(behind.next()), payloadOf(ref.next()));
  assert.equal(behind.priv, null, 'switched back to the shared window once caught up');
});
