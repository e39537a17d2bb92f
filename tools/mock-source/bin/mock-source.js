#!/usr/bin/env node
// CLI entry: `serve` (default) or `dump`. Bad flags exit 2; SIGTERM/SIGINT close cleanly (exit 0).
import { parseCli, UsageError, USAGE } from '../lib/options.js';
import { MockServer } from '../lib/server.js';
import { dump } from '../lib/dump.js';

let cli;
try {
  cli = parseCli(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`mock-source: ${err.message}\nTry 'mock-source --help'.\n`);
  process.exit(2);
}

if (cli.help) {
  process.stdout.write(USAGE);
} else if (cli.command === 'dump') {
  process.stdout.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(0); // e.g. `dump | head`
    throw err;
  });
  await dump(cli.gen, process.stdout, cli.partition);
} else {
  const onClock = cli.serve.clockFromSubscribe
    ? () => process.stdout.write(JSON.stringify({ event: 'clock' }) + '\n')
    : undefined;
  const server = new MockServer({ ...cli.gen, ...cli.serve, onClock });
  let addr;
  try {
    addr = await server.listen(cli.serve.port, cli.serve.host);
  } catch (err) {
    process.stderr.write(`mock-source: cannot listen on ${cli.serve.host}:${cli.serve.port}: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(JSON.stringify({ event: 'listening', host: addr.host, port: addr.port }) + '\n');
  const shutdown = () => {
    // Exit naturally once every handle is gone; the unref'd guard only fires if something leaked.
    setTimeout(() => {
      process.stderr.write('mock-source: shutdown timed out, forcing exit\n');
      process.exit(1);
    }, 5000).unref();
    server.close();
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}
