// Deterministic generator of the global message log. Messages are produced strictly in seq
// order from one PRNG stream, so message i depends only on (seed, flags), never on who reads.
import { Rng } from './prng.js';
import { fnv1a32 } from './hash.js';
import { FIRST_NAMES, LAST_NAMES, CITIES, PRODUCTS, EVENT_NOTES, EMAIL_DOMAINS } from './data.js';

export const SOURCES = ['legacy', 'acme', 'swiftpost', 'nordfreight'];
export const MALFORMED_KINDS = ['bad-json', 'missing-key', 'wrong-type', 'oversized'];
// Input a store cannot hold (issue 9): each must be dead-lettered by the client, never stop it.
export const HOSTILE_KINDS = ['deep-json', 'bad-date', 'big-int', 'bad-key', 'dotted-nested', 'non-finite', 'lone-surrogate', 'huge-seq'];
export const NATIVE_ID_FIELD = { legacy: 'id', acme: 'trackingNumber', swiftpost: 'tracking_no', nordfreight: 'ConsignmentId' };

export const GENERATOR_DEFAULTS = Object.freeze({
  seed: 42,
  count: 1000, // 0 = infinite
  sources: SOURCES,
  updateFraction: 0.5,
  replayFraction: 0.02,
  malformedFraction: 0.02,
  hostileFraction: 0,
});

const BASE_MS = Date.UTC(2026, 0, 5, 8, 0, 0); // simulated clock start (not wall time: determinism)
const MAX_ACTIVE = 2000; // open shipments; beyond this we only update, which keeps memory bounded
const RECENT = 256; // shipments eligible for replays (bounded ring)
const HISTORY = 4; // valid snapshots kept per shipment for replays
const OVERSIZE_MIN = 1024 * 1024 + 1024; // "padding" bytes, so the payload is surely > 1 MiB

// internal lifecycle: 0 created, 1 picked up, 2 in transit, 3 out for delivery, 4 delivered, 5 exception
const STATUS = {
  acme: ['CREATED', 'PICKED_UP', 'IN_TRANSIT', 'OUT_FOR_DELIVERY', 'DELIVERED', 'EXCEPTION'],
  swiftpost: ['created', 'in_transit', 'in_transit', 'out_for_delivery', 'delivered', 'returned'],
  nordfreight: ['Booked', 'Loaded', 'InTransit', 'InTransit', 'Delivered', 'Deviation'],
};

// ---------------------------------------------------------------- formatting helpers
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad2 = (n) => String(n).padStart(2, '0');

/** Date.prototype.toString() as it prints under TZ=UTC, built by hand so the host TZ is irrelevant. */
export function jsDateStringUTC(ms) {
  const d = new Date(ms);
  return `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${pad2(d.getUTCDate())} ${d.getUTCFullYear()} ` +
    `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} GMT+0000 (Coordinated Universal Time)`;
}

/** ISO-8601 local time with a fixed offset, seconds precision: 2026-11-26T12:14:36+01:00 */
function isoWithOffset(ms, offsetMin) {
  const local = new Date(ms + offsetMin * 60000).toISOString().slice(0, 19);
  const sign = offsetMin < 0 ? '-' : '+';
  const a = Math.abs(offsetMin);
  return `${local}${sign}${pad2(Math.floor(a / 60))}:${pad2(a % 60)}`;
}

const round = (x, dp) => Math.round(x * 10 ** dp) / 10 ** dp;
const money = (cents) => (cents / 100).toFixed(2); // "123.45"
const TRANSLIT = { ø: 'o', ł: 'l', æ: 'ae', ß: 'ss', đ: 'd' };
const asciiSlug = (s) =>
  s.toLowerCase().replace(/[øłæßđ]/g, (c) => TRANSLIT[c]).normalize('NFD').replace(/[^a-z]/g, '') || 'user';

// Native ids are a bijection of the global shipment number, so they look random but never collide.
const B36 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
function nativeId(source, n, rng, ms) {
  switch (source) {
    case 'legacy': { // ObjectId-like: 4-byte timestamp, 4 random bytes, 4-byte unique counter
      const ts = Math.floor(ms / 1000).toString(16).padStart(8, '0');
      const rnd = rng.int(0, 0xffffffff).toString(16).padStart(8, '0');
      const ctr = ((Math.imul(n, 0x9e3779b1) + 0x1234567) >>> 0).toString(16).padStart(8, '0');
      return ts + rnd + ctr;
    }
    case 'acme': // 7919 is coprime with 10^10 -> bijection mod 10^10
      return 'ACME' + String((n * 7919 + 1234567) % 1e10).padStart(10, '0');
    case 'swiftpost': { // 7 is coprime with 36 -> bijection mod 36^8
      let v = (n * 7 + 1e9) % 36 ** 8;
      let s = '';
      for (let i = 0; i < 8; i++) { s = B36[v % 36] + s; v = Math.floor(v / 36); }
      return 'SP' + s;
    }
    case 'nordfreight':
      return 'NF-' + String((n * 7919 + 31337) % 1e9).padStart(9, '0');
    default:
      throw new Error(`unknown source ${source}`);
  }
}

function fillPattern(pattern, rng) {
  return pattern.replace(/#/g, () => String(rng.int(0, 9)));
}

function makeParty(rng) {
  const first = rng.pick(FIRST_NAMES);
  const last = rng.pick(LAST_NAMES);
  return {
    first, last,
    email: makeEmail(rng, first, last),
    phone: `+${rng.int(1, 99)} ${rng.digits(3)} ${rng.digits(3)} ${rng.digits(3)}`,
    ...makeAddress(rng),
  };
}

function makeAddress(rng) {
  const c = rng.pick(CITIES);
  return {
    street: `${rng.pick(c.streets)} ${rng.int(1, 250)}`,
    city: c.city, cc: c.cc, country: c.country,
    zip: fillPattern(c.zip(), rng),
    lat: round(c.lat + (rng.next() - 0.5) / 10, 6),
    lon: round(c.lon + (rng.next() - 0.5) / 10, 6),
  };
}

function makeEmail(rng, first, last) {
  return `${asciiSlug(first)}.${asciiSlug(last)}${rng.int(1, 999)}@${rng.pick(EMAIL_DOMAINS)}`;
}

// ---------------------------------------------------------------- per-source rendering
// Each message is a full snapshot of the shipment in that source's own format.

function renderLegacy(sh) {
  const r = sh.receiver;
  return {
    id: sh.id,
    receiver: { firstName: r.first, lastName: r.last, email: r.email },
    price: sh.priceCents / 100,
    address: { country: r.country, city: r.city, street: r.street, coordinates: { x: r.lon, y: r.lat } },
    creationDate: jsDateStringUTC(sh.createdMs),
  };
}

function renderAcme(sh) {
  const party = (p) => ({
    name: `${p.first} ${p.last}`, email: p.email, phone: p.phone,
    address: { line1: p.street, city: p.city, postalCode: p.zip, country: p.cc, lat: p.lat, lng: p.lon },
  });
  return {
    trackingNumber: sh.id,
    status: STATUS.acme[sh.status],
    service: sh.service,
    shipper: party(sh.sender),
    consignee: party(sh.receiver),
    items: sh.items.map((it) => ({
      sku: it.sku, description: it.desc, qty: it.qty, weightKg: it.grams / 1000, value: it.valueCents / 100, currency: 'USD',
    })),
    events: sh.events.map((e) => ({
      timestamp: new Date(e.ms).toISOString(), code: STATUS.acme[e.status], location: `${e.city}, ${e.cc}`, remarks: e.note,
    })),
    charges: { price: sh.priceCents / 100, cost: sh.costCents / 100, currency: 'USD' },
    createdAt: new Date(sh.createdMs).toISOString(),
    updatedAt: new Date(sh.updatedMs).toISOString(),
  };
}

function renderSwiftpost(sh) {
  const party = (p) => ({
    full_name: `${p.first} ${p.last}`, email: p.email, street: p.street, town: p.city, zip: p.zip, country_code: p.cc, geo: [p.lat, p.lon],
  });
  const secs = (ms) => Math.floor(ms / 1000);
  const body = {
    tracking_no: sh.id,
    state: STATUS.swiftpost[sh.status],
    service_level: sh.service === 'express' ? 'priority' : 'standard',
    from: party(sh.sender),
    to: party(sh.receiver),
    parcels: sh.items.map((it) => ({
      article: it.sku, desc: it.desc, count: it.qty, grams: it.grams, value_cents: it.valueCents, currency: 'EUR',
    })),
    scans: sh.events.map((e) => ({ ts: secs(e.ms), state: STATUS.swiftpost[e.status], place: e.city, comment: e.note })),
    price_cents: sh.priceCents,
    cost_cents: sh.costCents,
    currency: 'EUR',
  };
  if (sh.insuranceCents) body.insurance = { insured: true, amount_cents: sh.insuranceCents };
  body.created_ts = secs(sh.createdMs);
  body.updated_ts = secs(sh.updatedMs);
  return body;
}

function renderNordfreight(sh) {
  const party = (p) => ({
    Name: `${p.first} ${p.last}`, Email: p.email, Street: p.street, City: p.city, Zip: p.zip, Country: p.cc, Latitude: p.lat, Longitude: p.lon,
  });
  const ts = (ms) => isoWithOffset(ms, sh.tzOffsetMin);
  const body = {
    ConsignmentId: sh.id,
    Status: STATUS.nordfreight[sh.status],
    Product: sh.items.length > 2 ? 'Pallet' : 'Parcel',
    Sender: party(sh.sender),
    Receiver: party(sh.receiver),
    Lines: sh.items.map((it) => ({
      ArticleNo: it.sku, Text: it.desc, Pieces: it.qty, WeightLb: round(it.grams / 453.59237, 2), Value: money(it.valueCents), Currency: 'SEK',
    })),
    Events: sh.events.map((e) => ({ When: ts(e.ms), Code: STATUS.nordfreight[e.status], Where: e.city, Text: e.note ?? '' })),
    Price: `${money(sh.priceCents)} SEK`,
    Cost: `${money(sh.costCents)} SEK`,
    Created: ts(sh.createdMs),
    Updated: ts(sh.updatedMs),
  };
  if (sh.customsRef) body.CustomsRef = sh.customsRef;
  return body;
}

const RENDER = { legacy: renderLegacy, acme: renderAcme, swiftpost: renderSwiftpost, nordfreight: renderNordfreight };

// ---------------------------------------------------------------- malformations
const REQUIRED = {
  legacy: ['receiver', 'price', 'address'],
  acme: ['status', 'items', 'consignee'],
  swiftpost: ['state', 'parcels', 'to'],
  nordfreight: ['Status', 'Lines', 'Receiver'],
};

const WRONG_TYPE = {
  legacy: [(b) => { b.price = 'abc'; }, (b) => { b.receiver = 'n/a'; }, (b) => { b.address.coordinates = 'somewhere'; }],
  acme: [(b) => { b.items = { count: b.items.length }; }, (b) => { b.charges.price = 'abc'; }, (b) => { b.items[0].qty = 'many'; }],
  swiftpost: [(b) => { b.parcels = `${b.parcels.length} boxes`; }, (b) => { b.price_cents = 'abc'; }, (b) => { b.parcels[0].count = 'many'; }],
  nordfreight: [(b) => { b.Lines = { n: b.Lines.length }; }, (b) => { b.Price = 12345; }, (b) => { b.Lines[0].Pieces = 'many'; }],
};

/** The exact payload text of a record (oversized bodies are padded on demand to save memory). */
export function payloadOf(rec) {
  if (!rec.pad) return rec.text;
  return `${rec.text.slice(0, -1)},"padding":"${'x'.repeat(rec.pad)}"}`;
}

const DATE_FIELD = { legacy: 'creationDate', acme: 'createdAt', swiftpost: 'created_ts', nordfreight: 'Created' };
const BAD_DATES = {
  legacy: ['Fri Dec 31 9999 23:30:00 GMT-0100 (Hostile Time)', 'Mon Jan 01 0001 00:30:00 GMT+0100 (Hostile Time)'],
  acme: ['0001-01-01T00:30:00+01:00', '9999-12-31T23:30:00-01:00', '0001-01-01T00:00:00.000Z'],
  swiftpost: [1e15, -1e15],
  nordfreight: ['9999-12-31T23:30:00-01:00', '0001-01-01T00:30:00+01:00'],
};

/** A valid message's text turned into one hostile `kind`; every kind keeps the seq prefix
 * readable except huge-seq, whose seq is the hostility. */
function hostileText(kind, text, h, source, r) {
  const rest = text.slice(h.length); // the body after the {"seq":..,"source":..,"rev":.., prefix
  const withField = (field) => `${h}${field},${rest}`;
  switch (kind) {
    case 'deep-json': {
      const n = r.int(2000, 20000);
      return withField(`"deep":${'['.repeat(n)}${']'.repeat(n)}`);
    }
    case 'bad-date': {
      const b = JSON.parse(text);
      b[DATE_FIELD[source]] = r.pick(BAD_DATES[source]);
      return JSON.stringify(b);
    }
    case 'big-int':
      return withField(`"hostileInt":${r.pick(['9223372036854775808', '-9223372036854775809', '123456789012345678901234567890'])}`);
    case 'bad-key':
      return withField(`${JSON.stringify(r.pick(['a\u0000b', '$where', 'a.b']))}:1`);
    case 'dotted-nested':
      return withField('"hostileMeta":{"ok":1,"version.major":2}');
    case 'non-finite':
      return withField(`"hostileNum":${r.pick(['NaN', 'Infinity', '-Infinity', '1e400'])}`);
    case 'lone-surrogate':
      return withField(`"hostileNote":${r.pick(['"\\ud800"', '"x\\udfffy"'])}`);
    case 'huge-seq': {
      const seq = r.pick(['9007199254740993', '9223372036854775808', '18446744073709551617']);
      return `{"seq":${seq}${text.slice(text.indexOf(','))}`;
    }
    default:
      throw new Error(`unknown hostile kind ${kind}`);
  }
}

const head = (seq, source, rev) => `{"seq":${seq},"source":${JSON.stringify(source)},"rev":${rev},`;

// ---------------------------------------------------------------- the generator
/**
 * next() returns a record { seq, source, key, rev, hash, malformed, text, pad } or null once a
 * finite count is exhausted. Use payloadOf(rec) for the wire text.
 */
export class Generator {
  constructor(opts = {}) {
    this.o = { ...GENERATOR_DEFAULTS, ...opts };
    this.rng = new Rng(this.o.seed);
    this.seq = 0;
    this.clock = BASE_MS;
    this.nShip = 0;
    this.active = [];
    this.recent = [];
    this.recentPos = 0;
    // Its own stream: a log without hostile messages is byte-identical to one made before
    // the flag existed, and the hostile picks depend on the seed alone.
    this.hostileRng = new Rng((this.o.seed ^ 0x5bd1e995) >>> 0);
  }

  next() {
    const { count, updateFraction, replayFraction, malformedFraction } = this.o;
    if (count > 0 && this.seq >= count) return null;
    const r = this.rng;
    const seq = ++this.seq;
    this.clock += r.int(1000, 120000);

    if (r.chance(replayFraction)) {
      const rec = this.#replay(seq);
      if (rec) return rec;
    }

    let sh;
    if (this.active.length && (this.active.length >= MAX_ACTIVE || r.chance(updateFraction))) {
      sh = this.#update(r.int(0, this.active.length - 1));
    } else {
      sh = this.#create();
    }
    sh.rev++; // every message about the shipment consumes a rev, malformed ones too

    const body = RENDER[sh.source](sh);
    const malformed = r.chance(malformedFraction) ? r.pick(MALFORMED_KINDS) : null;
    const rec = { seq, source: sh.source, key: sh.key, rev: sh.rev, hash: sh.hash, malformed, text: '', pad: 0 };
    const h = head(seq, sh.source, sh.rev);

    if (malformed === null || malformed === 'oversized') {
      const bodyJson = JSON.stringify(body);
      rec.text = h + bodyJson.slice(1);
      if (malformed === 'oversized') {
        rec.pad = OVERSIZE_MIN + r.int(0, 65535);
      } else {
        sh.history.push({ rev: sh.rev, bodyJson });
        if (sh.history.length > HISTORY) sh.history.shift();
        this.#remember(sh);
      }
    } else if (malformed === 'bad-json') {
      const full = h + JSON.stringify(body).slice(1);
      const v = r.int(0, 2);
      // all three keep the `{"seq":N,"source":"..","rev":R,` prefix intact
      if (v === 0) rec.text = full.slice(0, r.int(h.length, full.length - 2)); // truncated
      else if (v === 1) rec.text = h + full.slice(h.length + 1); // lost the quote of the next key
      else rec.text = full + '}#garbage'; // trailing junk
    } else {
      const b = JSON.parse(JSON.stringify(body)); // deep clone before mutating
      if (malformed === 'missing-key') {
        const field = r.chance(0.5) ? NATIVE_ID_FIELD[sh.source] : r.pick(REQUIRED[sh.source]);
        delete b[field];
      } else {
        r.pick(WRONG_TYPE[sh.source])(b);
      }
      rec.text = h + JSON.stringify(b).slice(1);
    }
    if (malformed === null && this.o.hostileFraction > 0 && this.hostileRng.chance(this.o.hostileFraction)) {
      const kind = this.hostileRng.pick(HOSTILE_KINDS);
      rec.malformed = `hostile:${kind}`;
      rec.text = hostileText(kind, rec.text, h, sh.source, this.hostileRng);
    }
    return rec;
  }

  #remember(sh) {
    if (this.recent.length < RECENT) this.recent.push(sh);
    else this.recent[this.recentPos++ % RECENT] = sh;
  }

  // An older valid snapshot re-sent unchanged with a new seq (its rev is the old rev).
  #replay(seq) {
    if (!this.recent.length) return null;
    const r = this.rng;
    const sh = r.pick(this.recent);
    const older = sh.history.filter((x) => x.rev < sh.rev);
    if (!older.length) return null;
    const old = r.pick(older);
    return {
      seq, source: sh.source, key: sh.key, rev: old.rev, hash: sh.hash, malformed: null,
      text: head(seq, sh.source, old.rev) + old.bodyJson.slice(1), pad: 0,
    };
  }

  #create() {
    const r = this.rng;
    const n = ++this.nShip;
    const source = r.pick(this.o.sources);
    const id = nativeId(source, n, r, this.clock);
    const sender = makeParty(r);
    const receiver = makeParty(r);
    const items = [];
    for (let i = 0, k = r.int(1, 3); i < k; i++) {
      items.push({
        sku: `SKU-${r.digits(6)}`, desc: r.pick(PRODUCTS), qty: r.int(1, 5), grams: r.int(50, 25000), valueCents: r.int(100, 50000),
      });
    }
    const priceCents = r.int(1000, 20000); // 10.00 .. 200.00
    const sh = {
      n, source, id, key: `${source}:${id}`, hash: 0, rev: 0,
      planned: r.int(0, 6), updates: 0, status: 0,
      service: r.pick(['express', 'standard', 'economy']),
      sender, receiver, items,
      events: [{ ms: this.clock, status: 0, city: sender.city, cc: sender.cc, note: null }],
      priceCents, costCents: Math.round(priceCents * (0.5 + r.next() * 0.4)),
      createdMs: this.clock, updatedMs: this.clock,
      tzOffsetMin: r.chance(0.5) ? 60 : 120,
      insuranceCents: source === 'swiftpost' && r.chance(0.3) ? r.int(1000, 100000) : 0,
      customsRef: source === 'nordfreight' && r.chance(0.3) ? `TULL-${r.digits(8)}` : null,
      history: [],
    };
    sh.hash = fnv1a32(sh.key);
    if (sh.planned > 0) this.active.push(sh);
    return sh;
  }

  #update(idx) {
    const r = this.rng;
    const sh = this.active[idx];
    sh.updates++;
    sh.updatedMs = this.clock;
    if (sh.updates >= sh.planned) {
      // finished: swap-remove keeps removal O(1) and deterministic
      this.active[idx] = this.active[this.active.length - 1];
      this.active.pop();
      sh.status = r.chance(0.1) ? 5 : 4;
    } else if (sh.status < 3 && r.chance(0.7)) {
      sh.status++;
    }
    const at = sh.status === 4 ? sh.receiver : r.pick(CITIES);
    sh.events.push({ ms: this.clock, status: sh.status, city: at.city, cc: at.cc, note: r.chance(0.3) ? r.pick(EVENT_NOTES) : null });
    // legacy has no status/events, so make sure each legacy update changes something it shows
    const roll = r.next();
    if (roll < 0.3 || (sh.source === 'legacy' && roll < 0.6)) {
      sh.priceCents = r.int(1000, 20000);
    } else if (roll < 0.4 || sh.source === 'legacy') {
      if (r.chance(0.5)) sh.receiver.email = makeEmail(r, sh.receiver.first, sh.receiver.last);
      else Object.assign(sh.receiver, makeAddress(r));
    }
    return sh;
  }
}
