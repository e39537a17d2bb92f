import net from 'node:net';
import { once } from 'node:events';
import { FrameDecoder, encodeFrame } from '../lib/framing.js';
import { MockServer } from '../lib/server.js';

/** A server on a free port; use it inside withServer (or close it in `finally`). */
export async function startServer(opts = {}) {
  const server = new MockServer(opts);
  const addr = await server.listen(0, '127.0.0.1');
  return { server, port: addr.port };
}

/** Run `fn({server, port})` and close the server whatever happens, so a failing test never
 * leaves a listener open and `npm test` always exits. */
export async function withServer(opts, fn) {
  const s = await startServer(opts);
  try {
    return await fn(s);
  } finally {
    await s.server.close();
  }
}

/** The subscription acknowledgement every subscribe gets before any data frame. */
export const isAck = (frame) => frame.startsWith('{"type":"subscribed"');

/**
 * Minimal client: connects, optionally subscribes, collects frames (and raw bytes) until
 * `until(frames)` is true or the end control frame arrives. Resolves {frames, raw, socket, ack}:
 * the acknowledgement is checked to come first and is not among `frames`; `raw` has it too.
 */
export function collect(port, { subscribe = {}, hello = true, until = null, keepOpen = false } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const decoder = new FrameDecoder();
    const frames = [];
    const raw = [];
    let ack = null;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      if (!keepOpen) socket.destroy();
      resolve({ frames, raw: Buffer.concat(raw), socket, ack });
    };
    socket.on('connect', () => {
      if (hello) socket.write(encodeFrame(JSON.stringify({ type: 'subscribe', ...subscribe })));
    });
    socket.on('data', (chunk) => {
      if (done) return;
      raw.push(chunk);
      for (const f of decoder.push(chunk)) {
        if (ack === null && hello) {
          if (!isAck(f)) {
            done = true;
            socket.destroy();
            return reject(new Error(`first frame is not the acknowledgement: ${f.slice(0, 200)}`));
          }
          ack = JSON.parse(f);
          continue;
        }
        frames.push(f);
        if (f.startsWith('{"type":"end"') || (until && until(frames))) return finish();
      }
    });
    socket.on('error', (err) => (done ? null : reject(err)));
    socket.on('close', () => (done ? null : reject(new Error(`closed early after ${frames.length} frames`))));
  });
}

/** seq of a data frame, read from its guaranteed prefix (works for bad-json frames too). */
export const seqOf = (frame) => Number(/^\{"seq":(\d+),/.exec(frame)[1]);

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(pred, ms = 3000) {
  const t = Date.now();
  while (!pred()) {
    if (Date.now() - t > ms) throw new Error('timed out waiting for condition');
    await sleep(10);
  }
}

export { once };
