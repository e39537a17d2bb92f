// Shared, bounded cache of the global log plus per-connection cursors (Kafka-like offsets).
import { Generator } from './generator.js';

export const DEFAULT_CACHE = 100000;

/**
 * Generates lazily (only as far as the furthest reader needs) and keeps the newest `cacheSize`
 * records in a ring. With --count <= cacheSize the whole log stays cached; otherwise (and for
 * infinite streams) memory is bounded and a reader behind the window falls back to a private
 * generator that deterministically regenerates from seq 1 (CPU instead of memory).
 */
export class SharedLog {
  constructor(genOpts, cacheSize = DEFAULT_CACHE) {
    this.genOpts = genOpts;
    this.gen = new Generator(genOpts);
    this.count = this.gen.o.count;
    this.size = this.count > 0 ? Math.max(1, Math.min(cacheSize, this.count)) : cacheSize;
    this.ring = new Array(this.size);
    this.hi = 0; // highest seq generated
  }

  /** record for seq, null past the end of a finite log, undefined if evicted from the window */
  get(seq) {
    if (this.count > 0 && seq > this.count) return null;
    while (this.hi < seq) {
      const rec = this.gen.next();
      this.ring[rec.seq % this.size] = rec;
      this.hi = rec.seq;
    }
    if (seq <= this.hi - this.size) return undefined;
    return this.ring[seq % this.size];
  }

  cursor(fromSeqExclusive) {
    return new Cursor(this, fromSeqExclusive + 1);
  }
}

export class Cursor {
  constructor(log, seq) {
    this.log = log;
    this.seq = Math.max(1, seq); // next seq to read
    this.priv = null;
  }

  get done() {
    return this.log.count > 0 && this.seq > this.log.count;
  }

  next() {
    let rec = this.log.get(this.seq);
    if (rec === undefined) {
      if (!this.priv) {
        this.priv = new Generator(this.log.genOpts);
        while (this.priv.seq < this.seq - 1) this.priv.next();
      }
      rec = this.priv.next();
    } else {
      this.priv = null; // caught up with the shared window
    }
    if (rec) this.seq++;
    return rec;
  }
}
