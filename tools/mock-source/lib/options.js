// CLI parsing and validation. Every bad flag becomes a UsageError (the CLI exits 2 on those).
import { parseArgs } from 'node:util';
import { SOURCES, GENERATOR_DEFAULTS } from './generator.js';
import { SERVER_DEFAULTS } from './server.js';

export class UsageError extends Error {}

export const USAGE = `Usage: mock-source [serve|dump] [flags]

Commands:
  serve (default)            stream the log over TCP, length-prefixed JSON frames (<bytes>#<json>)
  dump                       write the log as JSON Lines to stdout (the expected stream, for tests)

Generation flags (serve and dump):
  --seed N                   PRNG seed, uint32 (default ${GENERATOR_DEFAULTS.seed})
  --count N                  messages in the log, 0 = infinite (default ${GENERATOR_DEFAULTS.count})
  --sources a,b,..           subset of ${SOURCES.join(',')} (default all)
  --update-fraction F        share of messages updating an open shipment (default ${GENERATOR_DEFAULTS.updateFraction})
  --replay-fraction F        share re-emitting an older snapshot with a new seq (default ${GENERATOR_DEFAULTS.replayFraction})
  --malformed-fraction F     share of malformed messages (default ${GENERATOR_DEFAULTS.malformedFraction})
  --hostile-fraction F       share of messages no store can hold: deep nesting, dates beyond years
                             1..9999, >8-byte ints, NUL/$/. keys, NaN/Infinity, lone surrogates,
                             seq above 2^53 (default ${GENERATOR_DEFAULTS.hostileFraction}; picks depend on --seed)

serve flags:
  --host H                   listen address (default 127.0.0.1)
  --port P                   TCP port, 0 = OS-assigned (default 8282)
  --rate R                   messages/s of the global log, 0 = as fast as possible (default ${SERVER_DEFAULTS.rate})
  --clock-from-subscribe     start the rate clock at the first subscription, not at listen, and
                             print {"event":"clock"} on stdout then (for lag benchmarks)
  --hello-timeout-ms MS      close a connection with no subscribe frame after MS (default ${SERVER_DEFAULTS.helloTimeoutMs})
  --cache N                  newest messages kept in memory (default ${SERVER_DEFAULTS.cacheSize})

dump flags:
  --partition k/n            only messages of partition k of n (fnv1a32(key) % n == k)

  -h, --help                 show this help
`;

const SPEC = {
  help: { type: 'boolean', short: 'h' },
  seed: { type: 'string' },
  count: { type: 'string' },
  sources: { type: 'string' },
  'update-fraction': { type: 'string' },
  'replay-fraction': { type: 'string' },
  'malformed-fraction': { type: 'string' },
  'hostile-fraction': { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  rate: { type: 'string' },
  'clock-from-subscribe': { type: 'boolean' },
  'hello-timeout-ms': { type: 'string' },
  cache: { type: 'string' },
  partition: { type: 'string' },
};

const SERVE_ONLY = ['host', 'port', 'rate', 'clock-from-subscribe', 'hello-timeout-ms', 'cache'];
const DUMP_ONLY = ['partition'];

function int(values, name, def, min, max) {
  const v = values[name];
  if (v === undefined) return def;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`--${name} must be an integer in [${min}, ${max}], got '${v}'`);
  return Number(v);
}

function num(values, name, def, min, max) {
  const v = values[name];
  if (v === undefined) return def;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new UsageError(`--${name} must be a number in [${min}, ${max}], got '${v}'`);
  return n;
}

/** argv without node/script, e.g. process.argv.slice(2). Returns {command, help, gen, serve, partition}. */
export function parseCli(argv) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: SPEC, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(err.message);
  }
  const { values, positionals } = parsed;
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}'`);
  const command = positionals[0] ?? 'serve';
  if (command !== 'serve' && command !== 'dump') throw new UsageError(`unknown command '${command}' (expected serve or dump)`);
  if (values.help) return { command, help: true };
  const wrong = (command === 'serve' ? DUMP_ONLY : SERVE_ONLY).find((k) => values[k] !== undefined);
  if (wrong) throw new UsageError(`--${wrong} is not valid for '${command}'`);

  let sources = GENERATOR_DEFAULTS.sources;
  if (values.sources !== undefined) {
    sources = [...new Set(values.sources.split(',').map((s) => s.trim()).filter(Boolean))];
    const bad = sources.find((s) => !SOURCES.includes(s));
    if (bad || !sources.length) throw new UsageError(`--sources must be a non-empty subset of ${SOURCES.join(',')}${bad ? `, got '${bad}'` : ''}`);
    sources = SOURCES.filter((s) => sources.includes(s)); // canonical order: output must not depend on flag order
  }
  const gen = {
    seed: int(values, 'seed', GENERATOR_DEFAULTS.seed, 0, 0xffffffff),
    count: int(values, 'count', GENERATOR_DEFAULTS.count, 0, Number.MAX_SAFE_INTEGER),
    sources,
    updateFraction: num(values, 'update-fraction', GENERATOR_DEFAULTS.updateFraction, 0, 1),
    replayFraction: num(values, 'replay-fraction', GENERATOR_DEFAULTS.replayFraction, 0, 1),
    malformedFraction: num(values, 'malformed-fraction', GENERATOR_DEFAULTS.malformedFraction, 0, 1),
    hostileFraction: num(values, 'hostile-fraction', GENERATOR_DEFAULTS.hostileFraction, 0, 1),
  };
  const serve = {
    host: values.host ?? '127.0.0.1',
    port: int(values, 'port', 8282, 0, 65535),
    rate: num(values, 'rate', SERVER_DEFAULTS.rate, 0, 1e9),
    helloTimeoutMs: int(values, 'hello-timeout-ms', SERVER_DEFAULTS.helloTimeoutMs, 0, 3600000),
    cacheSize: int(values, 'cache', SERVER_DEFAULTS.cacheSize, 1, 1e8),
    clockFromSubscribe: values['clock-from-subscribe'] ?? false,
  };
  let partition = null;
  if (values.partition !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(values.partition);
    if (!m || Number(m[2]) < 1 || Number(m[1]) >= Number(m[2])) throw new UsageError(`--partition must be k/n with 0 <= k < n, got '${values.partition}'`);
    partition = { k: Number(m[1]), n: Number(m[2]) };
  }
  return { command, help: false, gen, serve, partition };
}
