// Shared by every page: the case model of GET /v1/model (shared/'s tables, the one source
// of the Spanish names of codes: the states of cases, OTs and handovers, the modalities,
// the reconciliation's line states), fetched once per page and kept. A page awaits
// loadModel() once at start-up, before it renders; until then every lookup below gives
// the code itself. Plain ES module.
import { api } from './api.js';

let model = null;
let loading = null;
let states = {};     // entity → { code → label }
let modalities = {}; // modality number → label
let lines = {};      // reconciliation line status → label

const byCode = (rows) => Object.fromEntries(rows.map((r) => [r.code, r.label]));

/** Fetches GET /v1/model once (the server sends an ETag); later calls reuse it. */
export function loadModel() {
  if (!loading) {
    loading = api('GET', '/v1/model').then((m) => {
      model = m;
      states = Object.fromEntries(m.lifecycles.map((lc) => [lc.entity, byCode(lc.states)]));
      modalities = byCode(m.modalities);
      lines = byCode(m.line_statuses || []);
      return m;
    });
    loading.catch(() => { loading = null; }); // a failed fetch may be retried
  }
  return loading;
}

/** The model loaded by loadModel(), or null before. */
export function currentModel() {
  return model;
}

const shown = (code) => (code === undefined || code === null ? '' : String(code));

/** A status of an entity ('case', 'work_order', 'handover', 'conflict') in Spanish; the code
 *  itself when the model does not know it. */
export function statusLabel(entity, code) {
  return (states[entity] && states[entity][code]) || shown(code);
}

/** The states of an entity's lifecycle, in the model's order. */
export function statusCodes(entity) {
  const lc = model && model.lifecycles.find((l) => l.entity === entity);
  return lc ? lc.states.map((s) => s.code) : [];
}

/** A modality (1–4) in Spanish ("1 · COMTECO cobre → BOOT FTTH"); the number when unknown. */
export function modalityLabel(code) {
  return modalities[code] || shown(code);
}

/** The modalities' numbers, in the model's order. */
export function modalityCodes() {
  return model ? model.modalities.map((m) => m.code) : [];
}

/** A line of an OT's reconciliation (matched, unexpected, missing, damaged, pending,
 *  signature_mismatch) in Spanish; the code when unknown. */
export function lineStatusLabel(code) {
  return lines[code] || shown(code);
}
