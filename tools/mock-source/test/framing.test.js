import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame, FrameDecoder, FramingError } from '../lib/framing.js';

const payloads = ['{"a":1}', '{"name":"Zoë","city":"Łódź","jp":"東京"}', '', '{"x":"' + 'y'.repeat(3000) + '"}'];
const wire = Buffer.from(payloads.map(encodeFrame).join(''), 'utf8');

test('length is the UTF-8 byte length, not the string length', () => {
  assert.equal(encodeFrame('東京'), '6#東京');
  assert.equal(encodeFrame('Zoë'), '4#Zoë');
});

test('coalesced: many frames in one chunk', () => {
  assert.deepEqual(new FrameDecoder().push(wire), payloads);
});

test('split at every byte boundary (headers and multi-byte characters included)', () => {
  for (let i = 0; i <= wire.length; i++) {
    const d = new FrameDecoder();
    const out = [...d.push(wire.subarray(0, i)), ...d.push(wire.subarray(i))];
    assert.deepEqual(out, payloads, `split at ${i}`);
    assert.equal(d.pendingBytes, 0);
  }
});

test('one byte at a time', () => {
  const d = new FrameDecoder();
  const out = [];
  for (let i = 0; i < wire.length; i++) out.push(...d.push(wire.subarray(i, i + 1)));
  assert.deepEqual(out, payloads);
});

test('large frame in many chunks', () => {
  const big = '{"p":"' + 'ø'.repeat(600000) + '"}';
  const buf = Buffer.from(encodeFrame(big) + encodeFrame('{}'));
  const d = new FrameDecoder();
  const out = [];
  for (let i = 0; i < buf.length; i += 65536) out.push(...d.push(buf.subarray(i, i + 65536)));
  assert.deepEqual(out, [big, '{}']);
});

test('bad headers and size limit throw FramingError', () => {
  assert.throws(() => new FrameDecoder().push(Buffer.from('{"a":1}')), FramingError);
  assert.throws(() => new FrameDecoder().push(Buffer.from('#{}')), FramingError);
  assert.throws(() => new FrameDecoder().push(Buffer.from('12345678901#')), FramingError);
  assert.throws(() => new FrameDecoder({ maxFrameBytes: 10 }).push(Buffer.from('11#')), FramingError);
});
