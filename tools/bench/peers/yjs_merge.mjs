// yjs_merge.mjs — Yjs peer benchmark for the OT "merge" workload.
//
// Mirrors `otsync-bench merge` so our C++ CRDT and Yjs can be compared in the
// same run (tools/bench.sh --peers). Workload, all randomness from a seeded
// mulberry32 PRNG (reproducible for a given --seed):
//
//  A "base":    replica "server" (clientID 1) creates N (--ots, 1000) OTs under
//               doc.getMap('ots'), each a nested Y.Map keyed by a 32-hex id with
//               fields f0..f4 = 16-char [a-z0-9] strings, f5..f9 = ints 0..1e6,
//               and 'equipment' = nested Y.Map of 5 serials ("ZTEG"+8 hex) -> true
//               (map-of-keys as the OR-set stand-in). 15 ops per OT.
//               Timed: creating the base (one transaction per OT) and applying
//               Y.encodeStateAsUpdate(base) into a fresh doc.
//  B "edits":   alice/bob/carol (clientIDs 2/3/4) start from the base update; each
//               picks 30% of the OTs and, per OT, 3 distinct fields (30%) and sets
//               a new value of the same kind, one doc.transact per OT.
//  C "exchange": for every ordered pair (src,dst):
//               Y.encodeStateAsUpdate(src, Y.encodeStateVector(dst before exchange)),
//               then Y.applyUpdate into dst. Only the applyUpdate calls are timed
//               (encode reported separately). merge ops/s = 6 * edits / apply s.
//               B+C repeated with fresh replicas (20x, or >= 5x and 2 s); median.
//               Convergence (canonical JSON of 'ots' + state vectors) is checked
//               every repeat; the process exits 1 if the replicas diverge.
//  D "million": 8 source docs (clientIDs 10..17) write --million (1e6) set ops
//               (random OT of 10,000, random field f0..f9, random int). Client 10
//               first creates the 10,000 empty OT maps (shared with the other
//               sources untimed, and contained in its update). Timed: applying
//               the 8 updates into one fresh target doc.
//  Memory:      heapUsed deltas (gc via --expose-gc, or a v8 flag fallback).
//  Bytes/op:    base update / base ops, one replica's edits update / its edits,
//               raw and gzipped (node:zlib gzipSync).
//
// PRNG streams: base = mulberry32(seed); replica i (0..2) =
// mulberry32(seed + 0x9E3779B9*(i+1)); million source k (0..7) =
// mulberry32(seed + 0x85EBCA6B*(k+1)); million OT ids =
// mulberry32(seed + 0x27D4EB2F). The same replica streams are used on every
// repeat, so each repeat does identical work.
//
// Usage: node --expose-gc yjs_merge.mjs [--ots 1000] [--million 1000000]
//                                       [--seed 42] [--repeats 20] [--json]

import * as Y from 'yjs';
import { createRequire } from 'node:module';
import { gzipSync } from 'node:zlib';
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';

const require = createRequire(import.meta.url);
const YJS_VERSION = require('yjs/package.json').version;

// ---------------------------------------------------------------- arguments
function parseArgs(argv) {
  const opts = { ots: 1000, million: 1000000, millionOts: 10000, seed: 42, repeats: 20, json: false };
  const num = { '--ots': 'ots', '--million': 'million', '--million-ots': 'millionOts', '--seed': 'seed', '--repeats': 'repeats' };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let v;
    const eq = a.indexOf('=');
    if (eq > 0) { v = a.slice(eq + 1); a = a.slice(0, eq); }
    if (a === '--json') { opts.json = true; continue; }
    if (a === '-h' || a === '--help') {
      process.stdout.write('usage: node --expose-gc yjs_merge.mjs [--ots 1000] [--million 1000000] ' +
        '[--million-ots 10000] [--seed 42] [--repeats 20] [--json]\n');
      process.exit(0);
    }
    if (!(a in num)) { process.stderr.write(`yjs_merge: unknown argument ${a}\n`); process.exit(2); }
    if (v === undefined) v = argv[++i];
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) { process.stderr.write(`yjs_merge: bad value for ${a}: ${v}\n`); process.exit(2); }
    opts[num[a]] = n;
  }
  if (opts.ots < 1 || opts.millionOts < 1 || opts.repeats < 1) {
    process.stderr.write('yjs_merge: --ots, --million-ots and --repeats must be >= 1\n');
    process.exit(2);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

// --------------------------------------------------------------------- PRNG
function mulberry32(seed) {
  let a = seed >>> 0;
  const u32 = () => {
    a = (a + 0x6D2B79F5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
  return {
    u32,
    below: (n) => Math.floor((u32() / 4294967296) * n), // uniform in [0, n)
  };
}
const streamSeed = (seed, mult, i) => (seed + Math.imul(mult, i + 1)) >>> 0;

const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';
const FIELDS = ['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7', 'f8', 'f9'];
const N_FIELDS = FIELDS.length;
const N_STRING_FIELDS = 5; // f0..f4 strings, f5..f9 ints
const N_SERIALS = 5;
const OPS_PER_OT = N_FIELDS + N_SERIALS;
const EDIT_FRACTION_OTS = 0.3;
const EDIT_FIELDS_PER_OT = 3; // 30% of 10
const MAX_INT = 1000000;

const hex8 = (x) => x.toString(16).padStart(8, '0');
const randString = (rng) => {
  let s = '';
  for (let i = 0; i < 16; i++) s += ALNUM[rng.below(36)];
  return s;
};
const randInt = (rng) => rng.below(MAX_INT + 1);
const randValue = (rng, field) => (field < N_STRING_FIELDS ? randString(rng) : randInt(rng));

// k distinct values from [0, n) by a partial Fisher-Yates shuffle.
function pickDistinct(rng, n, k) {
  const a = new Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  for (let i = 0; i < k; i++) {
    const j = i + rng.below(n - i);
    const t = a[i]; a[i] = a[j]; a[j] = t;
  }
  return a.slice(0, k);
}

// ------------------------------------------------------------------ helpers
let gc = globalThis.gc;
if (typeof gc !== 'function') {
  try {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc');
  } catch { gc = undefined; }
}
const HAVE_GC = typeof gc === 'function';
function collect() { if (HAVE_GC) { gc(); gc(); } }
function heapUsed() { collect(); return process.memoryUsage().heapUsed; }

const now = () => performance.now() / 1000; // seconds
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
function newDoc(clientID) {
  const d = new Y.Doc({ gc: true });
  d.clientID = clientID;
  return d;
}
// JSON with object keys sorted, so insertion order cannot cause false mismatches.
function canonical(v) {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']';
  return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canonical(v[k])).join(',') + '}';
}
function svKey(doc) {
  const sv = Y.decodeStateVector(Y.encodeStateVector(doc));
  return [...sv.entries()].sort((a, b) => a[0] - b[0]).map(([c, k]) => `${c}:${k}`).join(',');
}

// ------------------------------------------------------- phase A: the base
function makeBasePlan(seed, nOts) {
  const rng = mulberry32(seed);
  const seen = new Set();
  const ots = [];
  for (let o = 0; o < nOts; o++) {
    let id;
    do { id = hex8(rng.u32()) + hex8(rng.u32()) + hex8(rng.u32()) + hex8(rng.u32()); } while (seen.has(id));
    seen.add(id);
    const values = [];
    for (let f = 0; f < N_FIELDS; f++) values.push(randValue(rng, f));
    const serials = [];
    while (serials.length < N_SERIALS) {
      const s = 'ZTEG' + hex8(rng.u32()).toUpperCase();
      if (!serials.includes(s)) serials.push(s);
    }
    ots.push({ id, values, serials });
  }
  return ots;
}

function buildBase(doc, plan) {
  const root = doc.getMap('ots');
  for (const ot of plan) {
    doc.transact(() => {
      const m = new Y.Map();
      root.set(ot.id, m);
      for (let f = 0; f < N_FIELDS; f++) m.set(FIELDS[f], ot.values[f]);
      const eq = new Y.Map();
      m.set('equipment', eq);
      for (const s of ot.serials) eq.set(s, true);
    });
  }
}

const BASE_REPEATS = 5;
const baseOps = opts.ots * OPS_PER_OT;
const baseCreateS = [];
const baseApplyS = [];
let baseDoc;
let memBytesPerOt;
let baseIds;
{
  // First build also measures memory: heap before the plan exists, plan dropped
  // after the build, so the delta is what the doc itself retains.
  const before = heapUsed();
  let plan = makeBasePlan(opts.seed, opts.ots);
  baseDoc = newDoc(1);
  let t0 = now();
  buildBase(baseDoc, plan);
  baseCreateS.push(now() - t0);
  plan = null;
  memBytesPerOt = (heapUsed() - before) / opts.ots;

  for (let r = 1; r < BASE_REPEATS; r++) {
    const p = makeBasePlan(opts.seed, opts.ots);
    const d = newDoc(1);
    collect();
    t0 = now();
    buildBase(d, p);
    baseCreateS.push(now() - t0);
  }
}
baseIds = Array.from(baseDoc.getMap('ots').keys());
const baseUpdate = Y.encodeStateAsUpdate(baseDoc);
for (let r = 0; r < BASE_REPEATS; r++) {
  const d = newDoc(100 + r);
  collect();
  const t0 = now();
  Y.applyUpdate(d, baseUpdate);
  baseApplyS.push(now() - t0);
  if (r === 0 && canonical(d.getMap('ots').toJSON()) !== canonical(baseDoc.getMap('ots').toJSON())) {
    process.stderr.write('yjs_merge: base apply produced a different document\n');
    process.exit(1);
  }
}
const baseSV = Y.encodeStateVector(baseDoc);

// ------------------------------------------ phases B + C: edits and exchange
const REPLICAS = [{ name: 'alice', id: 2 }, { name: 'bob', id: 3 }, { name: 'carol', id: 4 }];
const editOts = Math.round(opts.ots * EDIT_FRACTION_OTS);
const editsPerReplica = editOts * EDIT_FIELDS_PER_OT;
const mergeOpsPerRound = editsPerReplica * (REPLICAS.length - 1) * REPLICAS.length;

function doEdits(doc, replicaIndex) {
  const rng = mulberry32(streamSeed(opts.seed, 0x9E3779B9, replicaIndex));
  const root = doc.getMap('ots');
  const chosen = pickDistinct(rng, baseIds.length, editOts);
  for (const o of chosen) {
    const fields = pickDistinct(rng, N_FIELDS, EDIT_FIELDS_PER_OT);
    const vals = fields.map((f) => randValue(rng, f));
    const m = root.get(baseIds[o]);
    doc.transact(() => {
      for (let i = 0; i < fields.length; i++) m.set(FIELDS[fields[i]], vals[i]);
    });
  }
}

const MERGE_MIN_REPEATS = Math.min(5, opts.repeats);
const MERGE_BUDGET_S = 2;
const mergeApplyS = [];
const mergeEncodeS = [];
const editS = [];
let editsUpdate; // alice's edits relative to the base
let converged = true;
let divergence = '';
{
  const tStart = now();
  for (let r = 0; r < opts.repeats; r++) {
    const docs = REPLICAS.map((rep) => { const d = newDoc(rep.id); Y.applyUpdate(d, baseUpdate); return d; });
    collect();
    let t0 = now();
    docs.forEach((d, i) => doEdits(d, i));
    editS.push(now() - t0);

    const svs = docs.map((d) => Y.encodeStateVector(d));
    const updates = []; // [dst][k] = update
    t0 = now();
    for (let dst = 0; dst < docs.length; dst++) {
      const u = [];
      for (let src = 0; src < docs.length; src++) if (src !== dst) u.push(Y.encodeStateAsUpdate(docs[src], svs[dst]));
      updates.push(u);
    }
    mergeEncodeS.push(now() - t0);

    t0 = now();
    for (let dst = 0; dst < docs.length; dst++) for (const u of updates[dst]) Y.applyUpdate(docs[dst], u);
    mergeApplyS.push(now() - t0);

    if (r === 0) editsUpdate = Y.encodeStateAsUpdate(docs[0], baseSV);
    const j0 = canonical(docs[0].getMap('ots').toJSON());
    const s0 = svKey(docs[0]);
    for (let i = 1; i < docs.length; i++) {
      if (canonical(docs[i].getMap('ots').toJSON()) !== j0) { converged = false; divergence ||= `round ${r}: ${REPLICAS[i].name} JSON differs from alice`; }
      if (svKey(docs[i]) !== s0) { converged = false; divergence ||= `round ${r}: ${REPLICAS[i].name} state vector differs from alice`; }
    }
    if (r + 1 >= MERGE_MIN_REPEATS && now() - tStart >= MERGE_BUDGET_S) break;
  }
}

// ------------------------------------------------------ phase D: the million
let millionApplyS = 0;
let millionHeapBytes = 0;
let millionUpdateBytes = 0;
{
  const N_SOURCES = 8;
  const nOts = opts.millionOts;
  const ids = [];
  {
    const rng = mulberry32(streamSeed(opts.seed, 0x27D4EB2F, 0));
    const seen = new Set();
    while (ids.length < nOts) {
      const id = hex8(rng.u32()) + hex8(rng.u32()) + hex8(rng.u32()) + hex8(rng.u32());
      if (!seen.has(id)) { seen.add(id); ids.push(id); }
    }
  }
  let sources = [];
  for (let k = 0; k < N_SOURCES; k++) sources.push(newDoc(10 + k));
  // Client 10 creates the empty OT maps; the others receive them (untimed).
  {
    const root = sources[0].getMap('ots');
    sources[0].transact(() => { for (const id of ids) root.set(id, new Y.Map()); });
    const skeleton = Y.encodeStateAsUpdate(sources[0]);
    for (let k = 1; k < N_SOURCES; k++) Y.applyUpdate(sources[k], skeleton);
  }
  const BATCH = 1000;
  for (let k = 0; k < N_SOURCES; k++) {
    const share = Math.floor(opts.million / N_SOURCES) + (k < opts.million % N_SOURCES ? 1 : 0);
    const rng = mulberry32(streamSeed(opts.seed, 0x85EBCA6B, k));
    const root = sources[k].getMap('ots');
    const maps = ids.map((id) => root.get(id));
    for (let done = 0; done < share;) {
      const n = Math.min(BATCH, share - done);
      sources[k].transact(() => {
        for (let i = 0; i < n; i++) {
          const o = rng.below(nOts);
          const f = rng.below(N_FIELDS);
          maps[o].set(FIELDS[f], randInt(rng));
        }
      });
      done += n;
    }
  }
  let updates = sources.map((d) => Y.encodeStateAsUpdate(d));
  millionUpdateBytes = updates.reduce((a, u) => a + u.byteLength, 0);
  sources = null;

  const before = heapUsed();
  let target = newDoc(9);
  const t0 = now();
  for (const u of updates) Y.applyUpdate(target, u);
  millionApplyS = now() - t0;
  millionHeapBytes = heapUsed() - before;
  if (target.getMap('ots').size !== nOts) {
    process.stderr.write(`yjs_merge: million target has ${target.getMap('ots').size} OTs, expected ${nOts}\n`);
    process.exit(1);
  }
  target = null;
  updates = null;
}

// ------------------------------------------------------------------- report
const round = (x, d = 0) => Number(x.toFixed(d));
const baseGz = gzipSync(baseUpdate).byteLength;
const editsGz = gzipSync(editsUpdate).byteLength;
const result = {
  'impl': 'yjs',
  'yjs.version': YJS_VERSION,
  'node.version': process.version,
  'params.ots': opts.ots,
  'params.million': opts.million,
  'params.million_ots': opts.millionOts,
  'params.seed': opts.seed,
  'gc': HAVE_GC,
  'base.ops': baseOps,
  'base.create_ops_per_s': round(baseOps / median(baseCreateS)),
  'base.apply_ops_per_s': round(baseOps / median(baseApplyS)),
  'edits.ops_per_replica': editsPerReplica,
  'edits.ops_per_s': round((editsPerReplica * REPLICAS.length) / median(editS)),
  'merge.ops': mergeOpsPerRound,
  'merge.repeats': mergeApplyS.length,
  'merge.ops_per_s': round(mergeOpsPerRound / median(mergeApplyS)),
  'merge.ops_per_s_min': round(mergeOpsPerRound / Math.max(...mergeApplyS)),
  'merge.ops_per_s_max': round(mergeOpsPerRound / Math.min(...mergeApplyS)),
  'merge.apply_s_median': round(median(mergeApplyS), 6),
  'merge.encode_s_median': round(median(mergeEncodeS), 6),
  'merge.converged': converged,
  'million.ops': opts.million,
  'million.apply_s': round(millionApplyS, 4),
  'million.apply_ops_per_s': round(opts.million / millionApplyS),
  'million.update_bytes': millionUpdateBytes,
  'million.heap_bytes': millionHeapBytes,
  'million.heap_bytes_per_op': round(millionHeapBytes / opts.million, 1),
  'mem.bytes_per_ot': round(memBytesPerOt),
  'bytes_per_op.base': round(baseUpdate.byteLength / baseOps, 2),
  'bytes_per_op.base_gzip': round(baseGz / baseOps, 2),
  'bytes_per_op.edits': round(editsUpdate.byteLength / editsPerReplica, 2),
  'bytes_per_op.edits_gzip': round(editsGz / editsPerReplica, 2),
};

if (opts.json) {
  process.stdout.write(JSON.stringify(result) + '\n');
} else {
  process.stdout.write(`yjs ${YJS_VERSION} node ${process.version}${HAVE_GC ? '' : ' (no gc: memory figures are rough)'}\n`);
  for (const [k, v] of Object.entries(result)) {
    if (k === 'impl' || k === 'yjs.version' || k === 'node.version') continue;
    process.stdout.write(`${k} ${v}\n`);
  }
}
if (!converged) {
  process.stderr.write(`yjs_merge: replicas did not converge (${divergence})\n`);
  process.exit(1);
}
