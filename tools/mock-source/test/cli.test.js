import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { collect, seqOf } from './helpers.js';

const BIN = fileURLToPath(new URL('../bin/mock-source.js', import.meta.url));
const run = (...args) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });

async function serve(...args) {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  while (!out.includes('\n')) {
    const [chunk] = await once(child.stdout, 'data');
    out += chunk;
  }
  const ev = JSON.parse(out.split('\n')[0]);
  assert.equal(ev.event, 'listening');
  assert.equal(ev.host, '127.0.0.1');
  assert.ok(ev.port > 0);
  return { child, port: ev.port };
}

test('--help exits 0; bad flags exit 2 with a message', () => {
  const h = run('--help');
  assert.equal(h.status, 0);
  assert.match(h.stdout, /--malformed-fraction/);
  for (const bad of [['--bogus'], ['--count', '-1'], ['--update-fraction', '2'], ['--sources', 'legacy,dhl'], ['--port', 'x'],
    ['frobnicate'], ['dump', '--partition', '2/2'], ['serve', '--partition', '0/2'], ['--seed', '1.5']]) {
    const r = run(...bad);
    assert.equal(r.status, 2, `${bad.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^mock-source: /);
  }
});

test('dump: JSON Lines with the contract fields; --partition filters', () => {
  const r = run('dump', '--count', '300', '--seed', '5', '--malformed-fraction', '0.1');
  assert.equal(r.status, 0);
  const lines = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 300);
  for (const [i, l] of lines.entries()) {
    assert.deepEqual(Object.keys(l), ['seq', 'source', 'key', 'rev', 'partition_hash', 'malformed', 'payload']);
    assert.equal(l.seq, i + 1);
    assert.ok(l.payload.startsWith(`{"seq":${l.seq},"source":"${l.source}","rev":${l.rev},`));
  }
  assert.ok(lines.some((l) => l.malformed));
  const p = run('dump', '--count', '300', '--seed', '5', '--malformed-fraction', '0.1', '--partition', '1/4');
  const part = p.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(part, lines.filter((l) => l.partition_hash % 4 === 1));
});

test('serve payloads are byte-identical to dump payloads (incl. partitions)', async () => {
  const flags = ['--count', '400', '--seed', '77', '--malformed-fraction', '0.05'];
  const lines = run('dump', ...flags).stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
  const { child, port } = await serve(...flags);
  try {
    const full = await collect(port);
    assert.deepEqual(full.frames.slice(0, -1), lines.map((l) => l.payload));
    const p = await collect(port, { subscribe: { partition: 2, partitions: 3 } });
    assert.deepEqual(p.frames.slice(0, -1), lines.filter((l) => l.partition_hash % 3 === 2).map((l) => l.payload));
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
  } finally {
    child.kill('SIGKILL'); // a failed assertion must not leave the server running
  }
});

test('--hostile-fraction: every hostile kind, deterministic with the seed, other messages untouched', () => {
  const flags = ['dump', '--count', '600', '--seed', '9'];
  const plain = run(...flags).stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
  const a = run(...flags, '--hostile-fraction', '0.2');
  assert.equal(a.status, 0, a.stderr);
  assert.equal(a.stdout, run(...flags, '--hostile-fraction', '0.2').stdout);
  const lines = a.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
  const kinds = new Set(lines.filter((l) => l.malformed?.startsWith('hostile:')).map((l) => l.malformed));
  assert.equal(kinds.size, 8, [...kinds].join(','));
  lines.forEach((l, i) => {
    if (!l.malformed?.startsWith('hostile:')) assert.deepEqual(l, plain[i]);
  });
  assert.equal(run(...flags, '--hostile-fraction', '1.5').status, 2);
});

test('SIGTERM after a client disconnected mid-stream: process exits 0 by itself (nothing leaked)', async () => {
  const { child, port } = await serve('--count', '0', '--rate', '500');
  try {
    const { frames } = await collect(port, { until: (f) => f.length >= 10 });
    assert.equal(seqOf(frames[9]), 10);
    // also one connected client that is mid-stream when the signal arrives
    const live = collect(port, { until: () => false }).catch((e) => e);
    await new Promise((r) => setTimeout(r, 100));
    const t = Date.now();
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
    assert.ok(Date.now() - t < 3000);
    assert.match(String(await live), /closed early/);
  } finally {
    child.kill('SIGKILL');
  }
});

test('--clock-from-subscribe: {"event":"clock"} on stdout at the first subscription, not before', async () => {
  const { child, port } = await serve('--count', '0', '--rate', '500', '--clock-from-subscribe');
  try {
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c) => { out += c; });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(out, '', 'no clock line before a subscription');
    const { frames } = await collect(port, { until: (f) => f.length >= 5 });
    assert.equal(seqOf(frames[0]), 1);
    const deadline = Date.now() + 10000;
    while (!out.includes('\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(JSON.parse(out.split('\n')[0]), { event: 'clock' });
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
});
