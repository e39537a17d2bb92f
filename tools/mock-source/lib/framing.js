// json-socket style framing: `<utf-8 byte length in decimal>#<payload>`, frames back to back.

export class FramingError extends Error {}

/** Encode one payload string as a frame (returned as a string; sockets write it as UTF-8). */
export function encodeFrame(payload) {
  return `${Buffer.byteLength(payload, 'utf8')}#${payload}`;
}

const HASH = 0x23; // '#'
const MAX_HEADER_DIGITS = 10;

/**
 * Incremental decoder. Works on bytes (not strings) so a multi-byte UTF-8 character split
 * across TCP chunks is reassembled before decoding. Chunks of a large body are kept in a
 * list and concatenated once, so a 1 MiB frame arriving in 64 KiB pieces costs O(n).
 */
export class FrameDecoder {
  constructor({ maxFrameBytes = Infinity } = {}) {
    this.maxFrameBytes = maxFrameBytes;
    this.chunks = [];
    this.total = 0;
    this.need = -1; // body length once the header is parsed, -1 while reading the header
  }

  /** Feed a Buffer; returns the (possibly empty) array of complete payload strings. */
  push(chunk) {
    if (chunk.length) {
      this.chunks.push(chunk);
      this.total += chunk.length;
    }
    const out = [];
    for (;;) {
      if (this.need < 0) {
        const buf = this.#flatten();
        let i = 0;
        while (i < buf.length && buf[i] !== HASH) {
          if (buf[i] < 0x30 || buf[i] > 0x39) throw new FramingError(`bad frame header byte 0x${buf[i].toString(16)}`);
          if (++i > MAX_HEADER_DIGITS) throw new FramingError('frame header too long');
        }
        if (i === buf.length) break; // header not complete yet
        if (i === 0) throw new FramingError('empty frame length');
        const need = Number(buf.toString('latin1', 0, i));
        if (need > this.maxFrameBytes) throw new FramingError(`frame of ${need} bytes exceeds limit ${this.maxFrameBytes}`);
        this.need = need;
        this.#reset(buf.subarray(i + 1));
      }
      if (this.total < this.need) break;
      const buf = this.#flatten();
      out.push(buf.toString('utf8', 0, this.need));
      this.#reset(buf.subarray(this.need));
      this.need = -1;
    }
    return out;
  }

  /** Bytes received but not yet returned as a frame (0 means we are at a frame boundary). */
  get pendingBytes() {
    return this.total;
  }

  #flatten() {
    if (this.chunks.length !== 1) this.chunks = [Buffer.concat(this.chunks, this.total)];
    return this.chunks[0];
  }

  #reset(rest) {
    this.chunks = rest.length ? [rest] : [];
    this.total = rest.length;
  }
}
