// Back office page: the tables it needs from the case model, taken from the server's
// GET /v1/model (generated from shared/'s tables: the one source; model.js fetches it),
// plus small helpers (byte limits, datetime-local in Bolivia's time, the member a server
// error names). Plain ES module. The page awaits loadModel() once at start-up, before it
// renders: until then the tables below are empty.
import { loadModel as fetchModel, statusLabel } from './model.js';

/** Every seed step: code → [role, label]. */
export let STEPS = {};
/** [code, label] of each product, in the model's order. */
export let PRODUCTS = [];
/** OT kind → label. */
export let OT_KINDS = {};
/** The warehouse's receipt of a row → label. */
export let RECEIPTS = {};
/** The case's final states. */
export let FINAL = [];
/** Who may do what (docs/api.md, section 4), from the model's transitions and field
 *  writers; the server has the last word. */
export let CAN = {
  open: [], edit: [], review: [], cancel: [], dispatch: [], override: [], discrepancies: [],
};
/** Optional fields of "Registrar paso": [name, label, max bytes, roles that may write it]. */
export let STEP_FIELDS = [];

let model = null;
let loading = null;

const people = (roles) => roles.filter((r) => r !== 'system');

/** Fetches the model once (model.js) and fills the tables above; later calls reuse it. */
export function loadModel() {
  if (!loading) {
    loading = fetchModel().then((m) => {
      model = m;
      STEPS = Object.fromEntries(m.modalities.flatMap((mod) =>
        mod.steps.map((s) => [s.code, [s.role, s.label]])));
      PRODUCTS = m.products.map((p) => [p.code, p.label]);
      OT_KINDS = Object.fromEntries(m.ot_kinds.map((k) => [k.code, k.label]));
      RECEIPTS = Object.fromEntries(m.receipts.map((r) => [r.code, r.label]));
      const lc = (entity) => m.lifecycles.find((l) => l.entity === entity);
      const move = (entity, from, to) =>
        people((lc(entity).transitions.find((t) => t.from === from && t.to === to) || { roles: [] }).roles);
      const field = (entity, name) => m.fields[entity].find((f) => f.name === name);
      FINAL = lc('case').finals;
      CAN = {
        open: move('case', '', 'opened'),
        edit: people(field('case', 'observations').writers),
        review: move('case', 'routed', 'in_review'), // contact, feasibility, requirements, approve, reject
        cancel: move('case', 'opened', 'cancelled'),
        dispatch: move('work_order', '', 'issued'), // issue OTs, assign, missing, resolve items
        override: people(field('case', 'requirements_override').writers),
        discrepancies: people(field('collected_item', 'resolution').writers),
      };
      STEP_FIELDS = ['observations', 'gpon_data', 'gis_box', 'new_contract', 'commercial_plan']
        .map((name) => {
          const f = field('case', name);
          return [name, f.label, f.max_bytes, people(f.writers)];
        });
      return m;
    });
    loading.catch(() => { loading = null; }); // a failed fetch may be retried
  }
  return loading;
}

/** A text field's limit in bytes (0 when unknown). */
export function fieldMaxBytes(entity, name) {
  const f = model && (model.fields[entity] || []).find((x) => x.name === name);
  return (f && f.max_bytes) || 0;
}

/** A step's label, or '' when unknown. */
export function stepLabel(code) {
  return (STEPS[code] && STEPS[code][1]) || '';
}

export const OFFICE_ROLES = [
  'customer_service', 'commercial_head', 'sales_executive', 'platform_officer',
  'commercial_advisor', 'back_office', 'supervisor',
];

function stepsOf(modality) {
  const mod = model && model.modalities.find((m) => m.code === Number(modality));
  return mod ? mod.steps : [];
}

function roleLabel(code) {
  const r = model && model.roles.find((x) => x.code === code);
  return r ? r.label : code;
}

/** Who routes a case of this modality (the seed's step 4), and to which role (the next step's). */
export function routeRule(modality) {
  const steps = stepsOf(modality);
  const by = steps[3] ? steps[3].role : '';
  const target = steps[4] ? steps[4].role : '';
  return { by: [by, 'supervisor'], target, targetLabel: roleLabel(target) };
}

/** The modalities a role may open: those whose first step is the role's (a supervisor: all). */
export function openableModalities(role) {
  const mods = model ? model.modalities : [];
  if (role === 'supervisor') return mods.map((m) => m.code);
  return mods.filter((m) => m.steps.length && m.steps[0].role === role).map((m) => m.code);
}

/** UTF-8 length of a text (the API's limits are in bytes). */
export function bytes(s) {
  return new TextEncoder().encode(s).length;
}

/** A datetime-local value (Bolivia's time, UTC-4) as ms since 1970; 0 when empty. */
export function localToMs(v) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(v || '');
  if (!m) return 0;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]) + 4 * 3600000;
}

/** The body member a server message starts with ("person_type is …", "to: …"), or ''. */
export function memberOf(message) {
  const m = /^([a-z_]+)(?:\[\d+\])?(?:\.[a-z_]+)?(?::|\s)/.exec(message || '');
  return m ? m[1] : '';
}

/** A closing blocker of the server (English) in Spanish; unknown ones as they come. */
export function blockerEs(b) {
  let m = /^OT (\w+) is '(\w+)'$/.exec(b);
  if (m) return `La OT ${OT_KINDS[m[1]] || m[1]} está ${statusLabel('work_order', m[2]).toLowerCase()}`;
  m = /^(.+) has not been received by the warehouse$/.exec(b);
  if (m) return `${m[1]}: el almacén aún no lo recibió`;
  m = /^(.+) is missing and has no reason$/.exec(b);
  if (m) return `${m[1]}: falta y no tiene motivo registrado`;
  m = /^(.+) did not arrive at the warehouse$/.exec(b);
  if (m) return `${m[1]}: no llegó al almacén (resuelva la discrepancia)`;
  if (b === 'no OT has been issued') return 'No se emitió ninguna OT';
  return b;
}
