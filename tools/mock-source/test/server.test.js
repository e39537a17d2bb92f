import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Generator, payloadOf } from '../lib/generator.js';
import { FrameDecoder, encodeFrame } from '../lib/framing.js';
import { startServer, withServer, collect, seqOf, sleep, waitFor, once } from './helpers.js';

const GEN = { seed: 42, count: 600, malformedFraction: 0.05, replayFraction: 0.05 };
const expected = (opts = GEN) => {
  const g = new Generator(opts);
  const out = [];
  let r;
  while ((r = g.next())) out.push(r);
  return out;
};
const END = (n) => JSON.stringify({ type: 'end', last_seq: n });

test('full stream equals the generated log, ends with the end frame, connection stays open', async () => {
  await withServer(GEN, async ({ server, port }) => {
    const { frames, socket } = await collect(port, { keepOpen: true });
    assert.deepEqual(frames.slice(0, -1), expected().map(payloadOf));
    assert.equal(frames.at(-1), END(600));
    await sleep(50);
    assert.equal(socket.destroyed, false, 'server keeps the connection open after end');
    assert.equal(server.stats()[0].state, 'ended');
    socket.destroy();
  });
});

test('determinism: two servers with the same seed send byte-identical streams', async () => {
  await withServer(GEN, (a) => withServer(GEN, async (b) => {
    const [ra, rb] = await Promise.all([collect(a.port), collect(b.port)]);
    assert.ok(ra.raw.length > 100000);
    assert.ok(ra.raw.equals(rb.raw));
  }));
});

test('no subscribe frame: after the hello timeout an error frame, the connection closed, nothing streamed', async () => {
  await withServer({ ...GEN, count: 50, helloTimeoutMs: 100 }, async ({ port }) => {
    const sock = net.connect(port, '127.0.0.1');
    try {
      const d = new FrameDecoder();
      const frames = [];
      sock.on('data', (c) => frames.push(...d.push(c)));
      await once(sock, 'close');
      assert.equal(frames.length, 1);
      assert.match(JSON.parse(frames[0]).message, /no subscribe frame within 100 ms/);
    } finally {
      sock.destroy();
    }
  });
});

test('a subscribe is acknowledged before any data frame, with what was subscribed', async () => {
  await withServer(GEN, async ({ port }) => {
    const { ack, frames } = await collect(port, { subscribe: { from_seq: 5, partition: 1, partitions: 2 } });
    assert.deepEqual(ack, { type: 'subscribed', from_seq: 5, partition: 1, partitions: 2, exclusive: false });
    assert.ok(seqOf(frames[0]) > 5);
  });
});

test('a late subscribe frame (slow, loaded client) is honoured, never replaced by a stream from 0', async () => {
  await withServer(GEN, async ({ port }) => {
    const sock = net.connect(port, '127.0.0.1');
    try {
      await once(sock, 'connect');
      await sleep(500); // longer than the old 300 ms timer
      sock.write(encodeFrame(JSON.stringify({ type: 'subscribe', from_seq: 590 })));
      const d = new FrameDecoder();
      const frames = [];
      sock.on('data', (c) => frames.push(...d.push(c)));
      await waitFor(() => frames.at(-1)?.startsWith('{"type":"end"'), 30000);
      assert.equal(JSON.parse(frames[0]).type, 'subscribed');
      assert.equal(seqOf(frames[1]), 591);
    } finally {
      sock.destroy();
    }
  });
});

test('exclusive consumers: a second one of an overlapping partition is refused with a clear error', async () => {
  await withServer({ seed: 3, count: 0, rate: 50 }, async ({ server, port }) => {
    const first = await collect(port, { subscribe: { partition: 0, partitions: 2, exclusive: true }, until: (f) => f.length >= 1, keepOpen: true });
    try {
      for (const sel of [{ partition: 0, partitions: 2 }, { partition: 0, partitions: 1 }]) {
        const sock = net.connect(port, '127.0.0.1');
        try {
          await once(sock, 'connect');
          sock.write(encodeFrame(JSON.stringify({ type: 'subscribe', exclusive: true, ...sel })));
          const d = new FrameDecoder();
          const frames = [];
          sock.on('data', (c) => frames.push(...d.push(c)));
          await once(sock, 'close');
          const err = JSON.parse(frames[0]);
          assert.equal(err.type, 'error');
          assert.match(err.message, /already has a consumer/);
        } finally {
          sock.destroy();
        }
      }
      // the other partition, and a non-exclusive reader, are still served
      const other = await collect(port, { subscribe: { partition: 1, partitions: 2, exclusive: true }, until: (f) => f.length >= 1 });
      assert.equal(other.ack.partition, 1);
      const reader = await collect(port, { subscribe: { partition: 0, partitions: 2 }, until: (f) => f.length >= 1 });
      assert.equal(reader.ack.exclusive, false);
    } finally {
      first.socket.destroy();
    }
    // once the first consumer is gone, its partition can be taken over
    await waitFor(() => server.stats().length === 0, 30000);
    const next = await collect(port, { subscribe: { partition: 0, partitions: 2, exclusive: true }, until: (f) => f.length >= 1 });
    assert.equal(next.ack.partition, 0);
  });
});

test('resume: reconnect with from_seq gets exactly the rest (no loss, no dup)', async () => {
  await withServer(GEN, async ({ server, port }) => {
    const first = await collect(port, { until: (f) => f.length === 137 });
    const last = seqOf(first.frames.at(-1));
    const rest = await collect(port, { subscribe: { from_seq: last } });
    const all = [...first.frames, ...rest.frames.slice(0, -1)];
    assert.deepEqual(all, expected().map(payloadOf));
    assert.equal(rest.frames.at(-1), END(600));
    // from_seq at/after the end: just the end frame
    const none = await collect(port, { subscribe: { from_seq: 600 } });
    assert.deepEqual(none.frames, [END(600)]);
  });
});

test('resume with a tiny cache (reader behind the window) is still exact', async () => {
  await withServer({ ...GEN, cacheSize: 16 }, async ({ server, port }) => {
    const full = await collect(port);
    const tail = await collect(port, { subscribe: { from_seq: 300 } });
    assert.deepEqual(tail.frames, full.frames.slice(300));
  });
});

test('partitions: union of k/n == full stream, each key in exactly one partition, in order', async () => {
  await withServer(GEN, async ({ server, port }) => {
    const n = 3;
    const parts = await Promise.all([0, 1, 2].map((k) => collect(port, { subscribe: { partition: k, partitions: n } })));
    const exp = expected();
    const byPayload = new Map(exp.map((r) => [payloadOf(r), r]));
    const keyPart = new Map();
    const union = [];
    parts.forEach(({ frames }, k) => {
      assert.equal(frames.at(-1), END(600));
      const data = frames.slice(0, -1);
      const seqs = data.map(seqOf);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'in seq order');
      for (const f of data) {
        const rec = byPayload.get(f);
        assert.equal(rec.hash % n, k);
        assert.ok(!keyPart.has(rec.key) || keyPart.get(rec.key) === k, `key ${rec.key} in two partitions`);
        keyPart.set(rec.key, k);
        union.push(rec);
      }
    });
    union.sort((a, b) => a.seq - b.seq);
    assert.deepEqual(union.map(payloadOf), exp.map(payloadOf));
    assert.ok(parts.every((p) => p.frames.length > 100), 'reasonably balanced');
  });
});

test('invalid subscribe gets an error frame and the connection is closed', async () => {
  await withServer(GEN, async ({ server, port }) => {
    const sock = net.connect(port, '127.0.0.1');
    await once(sock, 'connect');
    sock.write(encodeFrame(JSON.stringify({ type: 'subscribe', partition: 3, partitions: 2 })));
    const d = new FrameDecoder();
    const frames = [];
    sock.on('data', (c) => frames.push(...d.push(c)));
    await once(sock, 'close');
    assert.equal(JSON.parse(frames[0]).type, 'error');
    assert.equal(frames.length, 1);
  });
});

test('backpressure: a paused reader stalls the server (bounded buffer, waits for drain), then resumes intact', async () => {
  const opts = { seed: 1, count: 0, malformedFraction: 0.02 };
  await withServer(opts, async ({ server, port }) => {
    const sock = net.connect(port, '127.0.0.1');
    await once(sock, 'connect');
    sock.write(encodeFrame(JSON.stringify({ type: 'subscribe' })));
    sock.pause(); // never read: kernel buffers fill, then socket.write() returns false
    await waitFor(() => server.stats()[0]?.waiting === 'drain', 10000);
    const s1 = server.stats()[0];
    await sleep(300);
    const s2 = server.stats()[0];
    assert.equal(s2.sent, s1.sent, 'no progress while the reader is paused');
    assert.equal(s2.waiting, 'drain');
    // at most one frame (<= ~1.1 MiB oversized) beyond the 16 KiB high-water mark is queued in user space
    assert.ok(s2.writableLength < 1.2 * 1024 * 1024, `writableLength=${s2.writableLength}`);
    assert.ok(process.memoryUsage().rss < 1024 * 1024 * 1024);

    // resume: read on, and the stream continues exactly where it was, in order
    const d = new FrameDecoder();
    const frames = [];
    sock.on('data', (c) => frames.push(...d.push(c)));
    sock.resume();
    await waitFor(() => frames.length >= s2.sent + 201, 30000);
    const g = new Generator(opts);
    assert.equal(JSON.parse(frames.shift()).type, 'subscribed');
    for (let i = 0; i < frames.length; i++) assert.equal(frames[i], payloadOf(g.next()));
    assert.ok(server.stats()[0].sent > s2.sent);
    sock.destroy();
  });
});

test('disconnect mid-stream (rate-limited and drain-blocked) leaves no timers or listeners; close() completes', async () => {
  const { server, port } = await startServer({ seed: 2, count: 0, rate: 200 });
  try {
    // rate-limited reader: the server sleeps on a timer between messages
    const a = await collect(port, { until: (f) => f.length >= 5 });
    // a reader that never reads: blocked on drain
    const b = net.connect(port, '127.0.0.1');
    b.pause();
    await once(b, 'connect');
    // a client that disconnects during the hello phase
    const c = net.connect(port, '127.0.0.1');
    await once(c, 'connect');
    c.destroy();
    b.destroy();
    assert.ok(a.frames.length >= 5);
    await waitFor(() => server.stats().length === 0);
    // a plain net close (no forced destroy) only completes if every server-side socket is gone
    await new Promise((resolve) => server.server.close(resolve));
    const timers = process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r === 'Immediate');
    assert.deepEqual(timers, [], `leaked: ${timers}`);
  } finally {
    await server.close();
  }
});

test('rate limits the global log', async () => {
  await withServer({ seed: 4, count: 0, rate: 100 }, async ({ server, port }) => {
    const t = Date.now();
    const { frames } = await collect(port, { subscribe: {}, until: (f) => f.length >= 30 });
    const ms = Date.now() - t;
    assert.ok(ms >= 250, `30 msgs at 100/s took only ${ms} ms`);
    assert.equal(seqOf(frames[29]), 30);
  });
});

test('clockFromSubscribe: the rate clock starts at the first subscription, once', async () => {
  let clocks = 0;
  const opts = { seed: 4, count: 0, rate: 100, clockFromSubscribe: true, onClock: () => clocks++ };
  await withServer(opts, async ({ port }) => {
    await sleep(400); // at listen the clock would have made 40 messages due by now
    assert.equal(clocks, 0, 'no clock before a subscription');
    const t = Date.now();
    const { frames } = await collect(port, { subscribe: {}, until: (f) => f.length >= 30 });
    const ms = Date.now() - t;
    assert.ok(ms >= 250, `30 msgs at 100/s after the first subscription took only ${ms} ms`);
    assert.equal(seqOf(frames[29]), 30);
    await collect(port, { subscribe: {}, until: (f) => f.length >= 1 });
    assert.equal(clocks, 1, 'the clock starts once');
  });
});

test('several independent clients at once', async () => {
  await withServer(GEN, async ({ server, port }) => {
    const res = await Promise.all([0, 10, 250, 599].map((s) => collect(port, { subscribe: { from_seq: s } })));
    const exp = expected().map(payloadOf);
    res.forEach(({ frames }, i) => assert.deepEqual(frames.slice(0, -1), exp.slice([0, 10, 250, 599][i])));
  });
});
