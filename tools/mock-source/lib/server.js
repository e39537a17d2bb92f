// TCP server: one independent subscription per connection, reading the shared log from its own
// offset. All waiting (hello, rate, drain) is cancellable so a disconnect leaves nothing behind.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { FrameDecoder, FramingError, encodeFrame } from './framing.js';
import { SharedLog, DEFAULT_CACHE } from './log.js';
import { payloadOf } from './generator.js';

// A connection that has not subscribed by then is closed with an error (never streamed from
// seq 0: a late subscribe frame on a busy machine must not be mistaken for "no subscribe").
export const SERVER_DEFAULTS = Object.freeze({ rate: 0, helloTimeoutMs: 10000, cacheSize: DEFAULT_CACHE, clockFromSubscribe: false });
const MAX_HELLO_BYTES = 64 * 1024; // clients only ever send one small subscribe frame
const YIELD_EVERY = 4096; // filtered-out messages processed before yielding to the event loop

/** Validate a subscribe frame; returns {fromSeq, partition, partitions} or throws with a reason. */
export function parseSubscribe(text) {
  let m;
  try {
    m = JSON.parse(text);
  } catch {
    throw new Error('subscribe frame is not valid JSON');
  }
  if (!m || typeof m !== 'object' || m.type !== 'subscribe') throw new Error('first frame must be {"type":"subscribe",...}');
  const int = (v, d) => (v === undefined || v === null ? d : v);
  const fromSeq = int(m.from_seq, 0);
  const partition = int(m.partition, 0);
  const partitions = int(m.partitions, 1);
  const exclusive = m.exclusive === true;
  if (!Number.isSafeInteger(fromSeq) || fromSeq < 0) throw new Error('from_seq must be an integer >= 0');
  if (!Number.isSafeInteger(partitions) || partitions < 1) throw new Error('partitions must be an integer >= 1');
  if (!Number.isSafeInteger(partition) || partition < 0 || partition >= partitions) {
    throw new Error('partition must be an integer in [0, partitions)');
  }
  return { fromSeq, partition, partitions, exclusive };
}

/** Two partitionings overlap unless they are different partitions of the same count. */
const overlaps = (a, b) => a.partitions !== b.partitions || a.partition === b.partition;

class Subscription {
  constructor(socket) {
    this.socket = socket;
    this.closed = false;
    this.state = 'hello'; // hello -> streaming -> ended (all data sent, connection kept open)
    this.sel = null; // the subscription, once acknowledged
    this.sent = 0;
    this.lastSeq = 0;
    this.waiting = null; // null | 'rate' | 'drain' | 'yield'
    this.wake = null; // ends the current wait early (on close)
  }

  // Every wait goes through here so cancel() can end it (and clear its timer) on disconnect.
  #wait(kind, arm, disarm) {
    return new Promise((resolve) => {
      const done = () => {
        disarm();
        this.waiting = null;
        this.wake = null;
        resolve();
      };
      this.waiting = kind;
      this.wake = done;
      arm(done);
    });
  }

  sleep(ms) {
    let t;
    return this.#wait('rate', (done) => { t = setTimeout(done, ms); }, () => clearTimeout(t));
  }

  yield() {
    let t;
    return this.#wait('yield', (done) => { t = setImmediate(done); }, () => clearImmediate(t));
  }

  drain() {
    let fn;
    return this.#wait('drain', (done) => { fn = done; this.socket.on('drain', fn); }, () => this.socket.removeListener('drain', fn));
  }

  /** Called once on socket close: cancel whatever we are waiting for. */
  cancel() {
    this.closed = true;
    this.wake?.();
  }
}

export class MockServer {
  constructor(opts = {}) {
    this.opts = { ...SERVER_DEFAULTS, ...opts };
    this.log = new SharedLog(opts, this.opts.cacheSize);
    this.subs = new Set();
    this.t0 = performance.now();
    this.clockStarted = false;
    this.server = net.createServer((socket) => this.#onConnection(socket));
  }

  /** Resolves with the real {host, port} (port 0 => OS-assigned). */
  listen(port = 8282, host = '127.0.0.1') {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.removeListener('error', reject);
        // the rate clock of the global log starts when we listen (or at the first subscription)
        if (!this.opts.clockFromSubscribe) this.#startClock();
        const a = this.server.address();
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  /** Start the rate clock once: message seq is due at t0 + (seq-1)/rate; `onClock` hears of it
   * (a bench measures each message's lag from its due time). */
  #startClock() {
    if (this.clockStarted) return;
    this.clockStarted = true;
    this.t0 = performance.now();
    this.opts.onClock?.();
  }

  /** Stop accepting, drop every connection, resolve when the listener is fully closed. */
  close() {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.subs) s.socket.destroy();
    });
  }

  /** The live exclusive consumer whose partition overlaps `sel`, if any. */
  #owner(sel) {
    for (const s of this.subs) {
      if (!s.closed && s.sel?.exclusive && overlaps(s.sel, sel)) return s;
    }
    return null;
  }

  stats() {
    return [...this.subs].map((s) => ({
      state: s.state, sent: s.sent, lastSeq: s.lastSeq, waiting: s.waiting, writableLength: s.socket.writableLength,
    }));
  }

  #onConnection(socket) {
    const sub = new Subscription(socket);
    this.subs.add(sub);
    socket.setNoDelay(true);
    const decoder = new FrameDecoder({ maxFrameBytes: MAX_HELLO_BYTES });

    const start = (sel) => {
      if (sub.state !== 'hello' || sub.closed) return;
      clearTimeout(helloTimer);
      const owner = sel.exclusive ? this.#owner(sel) : null;
      if (owner) {
        const o = owner.sel;
        return reject(`partition ${sel.partition}/${sel.partitions} already has a consumer (${o.partition}/${o.partitions} `
          + `from ${owner.socket.remoteAddress}:${owner.socket.remotePort}); stop it first`);
      }
      sub.sel = sel;
      sub.state = 'streaming';
      this.#startClock(); // a no-op unless the clock waits for the first subscription
      // The acknowledgement comes first: the client checks it before it trusts any data frame.
      socket.write(encodeFrame(JSON.stringify({
        type: 'subscribed', from_seq: sel.fromSeq, partition: sel.partition, partitions: sel.partitions, exclusive: sel.exclusive,
      })));
      this.#pump(sub, sel).catch((err) => {
        process.stderr.write(`mock-source: stream error: ${err.stack || err}\n`);
        socket.destroy();
      });
    };
    const reject = (reason) => {
      clearTimeout(helloTimer);
      sub.state = 'error';
      socket.end(encodeFrame(JSON.stringify({ type: 'error', message: reason })));
    };

    const helloTimer = setTimeout(() => reject(`no subscribe frame within ${this.opts.helloTimeoutMs} ms`), this.opts.helloTimeoutMs);

    socket.on('data', (chunk) => {
      if (sub.state !== 'hello') return; // anything after the subscribe frame is ignored
      let frames;
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        return reject(err instanceof FramingError ? `bad frame: ${err.message}` : String(err));
      }
      if (!frames.length) return;
      try {
        start(parseSubscribe(frames[0]));
      } catch (err) {
        reject(err.message);
      }
    });
    socket.on('error', () => {}); // ECONNRESET etc.: 'close' follows and does the cleanup
    socket.on('close', () => {
      clearTimeout(helloTimer);
      sub.cancel();
      this.subs.delete(sub);
    });
  }

  async #pump(sub, { fromSeq, partition, partitions }) {
    const { socket } = sub;
    const { rate } = this.opts;
    const cursor = this.log.cursor(fromSeq);
    let skipped = 0;
    while (!sub.closed) {
      if (cursor.done) {
        socket.write(encodeFrame(JSON.stringify({ type: 'end', last_seq: this.log.count })));
        sub.state = 'ended'; // keep the connection open; the client decides when to close
        return;
      }
      if (rate > 0) {
        // message seq becomes available at t0 + (seq-1)/rate: a late or resuming client catches up at full speed
        const due = this.t0 + ((cursor.seq - 1) * 1000) / rate - performance.now();
        if (due > 0) {
          await sub.sleep(due);
          continue;
        }
      }
      const rec = cursor.next();
      if (rec.hash % partitions !== partition) {
        if (++skipped % YIELD_EVERY === 0) await sub.yield();
        continue;
      }
      const ok = socket.write(encodeFrame(payloadOf(rec)));
      sub.sent++;
      sub.lastSeq = rec.seq;
      if (!ok) await sub.drain(); // backpressure: never queue more than one frame past the high-water mark
    }
  }
}
