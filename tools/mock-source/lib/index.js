export { encodeFrame, FrameDecoder, FramingError } from './framing.js';
export { fnv1a32 } from './hash.js';
export { Generator, payloadOf, jsDateStringUTC, SOURCES, MALFORMED_KINDS, NATIVE_ID_FIELD, GENERATOR_DEFAULTS } from './generator.js';
export { SharedLog } from './log.js';
export { MockServer, parseSubscribe } from './server.js';
export { dump, dumpLine } from './dump.js';
export { parseCli, UsageError, USAGE } from './options.js';
