// JSON Lines view of the log: the same records `serve` sends, so `payload` is byte-identical.
import { Generator, payloadOf } from './generator.js';

export function dumpLine(rec) {
  return JSON.stringify({
    seq: rec.seq, source: rec.source, key: rec.key, rev: rec.rev, partition_hash: rec.hash, malformed: rec.malformed, payload: payloadOf(rec),
  }) + '\n';
}

/** Write the log to a writable stream, honouring backpressure. Infinite logs never resolve. */
export async function dump(genOpts, out, partition = null) {
  const gen = new Generator(genOpts);
  let rec;
  while ((rec = gen.next())) {
    if (partition && rec.hash % partition.n !== partition.k) continue;
    if (!out.write(dumpLine(rec))) {
      await new Promise((resolve, reject) => {
        const onDrain = () => { out.off('error', onError); resolve(); };
        const onError = (err) => { out.off('drain', onDrain); reject(err); };
        out.once('drain', onDrain).once('error', onError);
      });
    }
  }
}
