// The Almacén page (warehouse clerk, back office, supervisor): the handovers (Anexo 4)
// waiting for the warehouse, oldest first; receiving one row by row with a barcode
// scanner (a keyboard wedge: serial then Enter) or by hand; the clerk's confirmation;
// the receipt the server signs, and the printable Anexo 4. The server decides; its
// refusals are shown in words.
import {
  api, requireUser, header, el, humanError, fmtDateTime, fmtAge, notice, ApiError,
} from './api.js';
import { loadModel, statusLabel } from './model.js';

const $ = (id) => document.getElementById(id);
const show = notice($('message'));

const RESULTS = [
  ['', 'Sin confirmar'],
  ['received', 'Recibido'],
  ['missing', 'Faltante'],
  ['damaged_on_arrival', 'Dañado al llegar'],
];
const RESULT_LABEL = Object.fromEntries(RESULTS);
const RESULT_BADGE = { received: 'ok', missing: 'bad', damaged_on_arrival: 'warn' };
const REASONS = { migration: 'Migración', damaged: 'Dañado' };
const RECEIVERS = ['warehouse_clerk', 'supervisor']; // roles the API lets POST a receipt

let user = null;
let showReceived = false;
let current = null;   // the handover shown (GET /v1/handovers/{id})
let state = new Map(); // serial → { result, note, scanned }
let sending = false;

/** Upper-cased and trimmed, as the server does. */
export function normalizeSerial(s) {
  return String(s || '').trim().toUpperCase();
}

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

// ---- the list -------------------------------------------------------------------------

async function loadList() {
  const box = $('list');
  box.setAttribute('aria-busy', 'true');
  $('list-title').textContent = showReceived ? 'Entregas recibidas' : 'Entregas pendientes';
  let list;
  try {
    list = (await api('GET', `/v1/handovers${showReceived ? '?status=received' : ''}`)).handovers;
  } catch (err) {
    box.replaceChildren(el('p', { class: 'notice error', role: 'alert' }, humanError(err)));
    box.setAttribute('aria-busy', 'false');
    return;
  }
  if (!list.length) {
    box.replaceChildren(el('p', { class: 'muted' }, showReceived
      ? 'Todavía no hay entregas recibidas.'
      : 'No hay entregas pendientes de recepción.'));
    box.setAttribute('aria-busy', 'false');
    return;
  }
  const verb = showReceived ? 'Ver' : 'Recibir';
  const rows = list.map((h) => {
    const open = () => openHandover(h.id, true);
    const btn = el('button', {
      type: 'button', class: 'btn small', onclick: (ev) => { ev.stopPropagation(); open(); },
      'aria-label': `${verb} la entrega de ${h.technician}, ${fmtDateTime(h.date)}`,
    }, verb);
    const tr = el('tr', {
      class: `clickable${current && current.id === h.id ? ' selected' : ''}`,
      'data-id': h.id, onclick: open,
      'aria-current': current && current.id === h.id ? 'true' : null,
    },
    el('td', {}, h.technician || '—'),
    el('td', {}, h.zone || '—'),
    el('td', { class: 'alm-nowrap' }, fmtDateTime(h.date)),
    el('td', { class: 'alm-nowrap' }, ageBadge(h)),
    el('td', {}, String(h.rows)),
    el('td', {}, el('span', { class: `badge ${h.status === 'received' ? 'ok' : ''}`.trim() },
      statusLabel('handover', h.status))),
    el('td', { class: 'alm-nowrap' }, btn));
    return tr;
  });
  box.replaceChildren(el('table', { class: 'data alm-list', id: 'handovers' },
    el('thead', {}, el('tr', {},
      ...['Técnico', 'Zona', 'Fecha', 'Antigüedad', 'Filas', 'Estado']
        .map((t) => el('th', { scope: 'col' }, t)),
      el('th', { scope: 'col' }, el('span', { class: 'sr-only' }, 'Acción')))),
    el('tbody', {}, rows)));
  box.setAttribute('aria-busy', 'false');
}

function ageBadge(h) {
  const text = fmtAge(h.age_hours || 0);
  if (h.status === 'received') return text;
  const kind = h.age_hours >= 72 ? 'bad' : h.age_hours >= 24 ? 'warn' : '';
  return kind ? el('span', { class: `badge ${kind}` }, text) : text;
}

function markSelected() {
  for (const tr of document.querySelectorAll('#handovers tbody tr')) {
    const on = current && tr.dataset.id === current.id;
    tr.classList.toggle('selected', !!on);
    if (on) tr.setAttribute('aria-current', 'true'); else tr.removeAttribute('aria-current');
  }
}

// ---- the detail -----------------------------------------------------------------------

const draftKey = (id) => `otsync.almacen.${id}`;

function saveDraft() {
  if (!current || current.status === 'received') return;
  const obj = {};
  for (const [serial, s] of state) {
    if (s.result || s.note || s.scanned) obj[serial] = s;
  }
  sessionStorage.setItem(draftKey(current.id), JSON.stringify(obj));
}

function loadDraft(id) {
  try {
    return JSON.parse(sessionStorage.getItem(draftKey(id)) || '{}') || {};
  } catch {
    return {};
  }
}

function canReceive(h) {
  return h.status !== 'received' && RECEIVERS.includes(user.role);
}

async function openHandover(id, focusScan) {
  let h;
  try {
    h = await api('GET', `/v1/handovers/${id}`);
  } catch (err) {
    show(humanError(err), 'error');
    return;
  }
  show('');
  current = h;
  state = new Map();
  const draft = h.status === 'received' ? {} : loadDraft(h.id);
  for (const r of h.rows) {
    const d = draft[r.serial] || {};
    state.set(r.serial, {
      result: r.receipt || d.result || '',
      note: r.receipt_note || d.note || '',
      scanned: !!d.scanned,
    });
  }
  if (location.hash !== `#${h.id}`) history.replaceState(null, '', `#${h.id}`);
  renderDetail();
  markSelected();
  if (focusScan && canReceive(h)) {
    $('scan').focus();
  } else if (focusScan) {
    $('detail-title').focus();
  }
}

function closeDetail() {
  current = null;
  state = new Map();
  $('detail').hidden = true;
  history.replaceState(null, '', location.pathname + location.search);
  markSelected();
  const first = document.querySelector('#handovers tbody button');
  if (first) first.focus(); else $('list-title').focus();
}

function renderDetail() {
  const h = current;
  const editable = canReceive(h);
  $('detail').hidden = false;
  $('detail-title').textContent = `Entrega de ${h.technician || '—'}`;
  const st = $('detail-status');
  st.textContent = statusLabel('handover', h.status);
  st.className = `badge ${h.status === 'received' ? 'ok' : 'warn'}`;
  $('detail-meta').textContent =
    `Zona ${h.zone || '—'} · ${fmtDateTime(h.date)} · ${plural(h.rows.length, 'fila', 'filas')}`;

  $('scan-form').hidden = !editable;
  $('actions').hidden = !editable;
  $('actions-error').hidden = true;
  $('confirm').hidden = true;
  scanError('');
  $('scan').value = '';
  $('scan-live').textContent = '';

  const ro = $('readonly-note');
  if (h.status !== 'received' && !editable) {
    ro.textContent = 'Solo Almacén o Supervisión pueden registrar la recepción de esta entrega.';
    ro.hidden = false;
  } else {
    ro.hidden = true;
  }

  $('rows').replaceChildren(...h.rows.map((r, i) => rowNode(r, i, editable)));
  updateCount();
  renderReceipt();
}

function rowNode(r, i, editable) {
  const s = state.get(r.serial);
  const rid = `row-${i}`;
  let resultCell;
  let noteCell;
  if (editable) {
    const sel = el('select', {
      id: `${rid}-result`, 'aria-label': `Resultado de ${r.serial}`,
      'aria-describedby': `${rid}-result-error`, 'data-serial': r.serial,
    }, RESULTS.map(([v, t]) => el('option', { value: v, selected: s.result === v }, t)));
    sel.addEventListener('change', () => {
      s.result = sel.value;
      fieldError(`${rid}-result`, '');
      if (s.result !== 'damaged_on_arrival') fieldError(`${rid}-note`, '');
      afterEdit(r.serial);
      // A result picked from the menu: back to scanning. Stepping through the menu with
      // the arrow keys keeps it focused (a scan typed there goes to the scan field).
      if (performance.now() - steppedAt > STEP_MS) focusScan();
    });
    const note = el('input', {
      id: `${rid}-note`, 'aria-label': `Nota de ${r.serial}`, maxlength: 500,
      'aria-describedby': `${rid}-note-error`, value: s.note,
      placeholder: s.result === 'damaged_on_arrival' ? 'Describa el daño (obligatorio)' : 'Opcional',
    });
    note.addEventListener('input', () => {
      s.note = note.value;
      if (note.value.trim()) fieldError(`${rid}-note`, '');
      saveDraft();
      hideConfirm();
    });
    note.addEventListener('keydown', (ev) => onNoteKey(ev, note));
    note.addEventListener('change', () => {
      // The note was left: back to scanning, unless the clerk moved to another field.
      setTimeout(() => {
        if (!document.activeElement || document.activeElement === document.body) focusScan();
      }, 0);
    });
    resultCell = el('td', { 'data-label': 'Resultado', class: 'alm-result' },
      sel,
      el('span', { class: 'alm-state', id: `${rid}-state` }),
      el('p', { class: 'field-error', id: `${rid}-result-error`, hidden: true }));
    noteCell = el('td', { 'data-label': 'Nota', class: 'alm-note' },
      note, el('p', { class: 'field-error', id: `${rid}-note-error`, hidden: true }));
  } else {
    resultCell = el('td', { 'data-label': 'Resultado', class: 'alm-result' },
      el('span', { class: `badge ${RESULT_BADGE[s.result] || ''}`.trim() }, RESULT_LABEL[s.result] || '—'));
    noteCell = el('td', { 'data-label': 'Nota' }, s.note || '');
  }
  const tr = el('tr', { id: rid, 'data-serial': r.serial },
    el('th', { scope: 'row', 'data-label': 'Código', class: 'mono alm-code' }, r.serial,
      r.voided ? el('span', { class: 'badge bad alm-voided' }, 'Anulada') : null),
    el('td', { 'data-label': 'Descripción' }, r.description || '—'),
    el('td', { 'data-label': 'Motivo' }, REASONS[r.reason] || r.reason || '—'),
    el('td', { 'data-label': 'Defecto' }, r.defect || '—'),
    el('td', { 'data-label': 'Observaciones' }, r.observations || '—'),
    el('td', { 'data-label': 'Fecha', class: 'alm-nowrap' }, fmtDateTime(r.collected_at)),
    resultCell, noteCell);
  paintRow(tr, s);
  return tr;
}

/** The row's visible state: a class for its colour and the words after the select. */
function paintRow(tr, s) {
  tr.classList.remove('is-received', 'is-missing', 'is-damaged', 'is-unset');
  tr.classList.add({
    received: 'is-received', missing: 'is-missing', damaged_on_arrival: 'is-damaged',
  }[s.result] || 'is-unset');
  const stateNode = tr.querySelector('.alm-state');
  if (stateNode) {
    stateNode.className = `alm-state badge ${RESULT_BADGE[s.result] || ''}`.trim();
    stateNode.textContent = s.scanned ? `${RESULT_LABEL[s.result] || 'Sin confirmar'} · escaneado`
      : RESULT_LABEL[s.result] || 'Sin confirmar';
  }
  const sel = tr.querySelector('select');
  if (sel && sel.value !== s.result) sel.value = s.result;
  const note = tr.querySelector('.alm-note input');
  if (note) {
    note.placeholder = s.result === 'damaged_on_arrival' ? 'Describa el daño (obligatorio)' : 'Opcional';
    if (s.result === 'damaged_on_arrival') note.setAttribute('aria-required', 'true');
    else note.removeAttribute('aria-required');
  }
}

function rowOf(serial) {
  return document.querySelector(`#rows tr[data-serial="${CSS.escape(serial)}"]`);
}

function afterEdit(serial) {
  const tr = rowOf(serial);
  const s = state.get(serial);
  if (tr) paintRow(tr, s);
  if (tr && s.result) fieldError(`${tr.id}-result`, '');
  updateCount();
  saveDraft();
  hideConfirm();
  $('actions-error').hidden = true;
}

function counts() {
  let received = 0; let missing = 0; let damaged = 0; let unset = 0;
  for (const s of state.values()) {
    if (s.result === 'received') received++;
    else if (s.result === 'missing') missing++;
    else if (s.result === 'damaged_on_arrival') damaged++;
    else unset++;
  }
  return { received, missing, damaged, unset, total: state.size, arrived: received + damaged };
}

function updateCount() {
  const c = counts();
  const parts = [`${c.received} de ${c.total} recibidos`];
  if (c.damaged) parts.push(`${plural(c.damaged, 'dañado', 'dañados')} al llegar`);
  parts.push(`${plural(c.missing, 'faltante', 'faltantes')}`, `${c.unset} sin confirmar`);
  $('scan-count').textContent = parts.join(' · ');
}

function fieldError(id, text) {
  const p = $(`${id}-error`);
  const input = $(id);
  if (p) {
    p.textContent = text;
    p.hidden = !text;
  }
  if (input) input.setAttribute('aria-invalid', text ? 'true' : 'false');
}

// ---- scanning -------------------------------------------------------------------------

function scanError(text) {
  const input = $('scan');
  $('scan-error').textContent = text;
  input.setAttribute('aria-invalid', text ? 'true' : 'false');
}

function onScan(ev) {
  ev.preventDefault();
  if (!current || !canReceive(current)) return;
  const input = $('scan');
  const serial = normalizeSerial(input.value);
  if (!serial) {
    scanError('Escanee o escriba un código y pulse Enter.');
    input.focus();
    return;
  }
  const s = state.get(serial);
  if (!s) {
    scanError(`El código ${serial} no está en esta entrega.`);
    input.focus();
    input.select();
    return;
  }
  if (s.scanned) {
    scanError(`El código ${serial} ya fue escaneado.`);
    input.focus();
    input.select();
    return;
  }
  s.scanned = true;
  if (s.result !== 'damaged_on_arrival') s.result = 'received';
  afterEdit(serial);
  scanError('');
  const c = counts();
  $('scan-live').textContent =
    `${serial} ${s.result === 'received' ? 'recibido' : 'recibido (dañado al llegar)'} (${c.arrived} de ${c.total})`;
  const tr = rowOf(serial);
  if (tr) {
    tr.classList.remove('flash');
    void tr.offsetWidth; // restart the highlight
    tr.classList.add('flash');
  }
  input.value = '';
  input.focus();
}

// ---- the scanner is a keyboard --------------------------------------------------------
// It types the serial and Enter into whatever has focus. Only the scan field and the
// notes take text: with a result menu focused, a scan would make the menu jump to the
// option of its first letter ("R": Recibido) and leave the serial unscanned. So keys
// typed outside a text field go to the scan field, focus goes back there once a result
// or a note is changed, and a burst typed into a note as fast as a scanner types, ending
// with Enter, is taken out of the note and scanned.

const TEXT_TYPES = new Set(['text', 'search', 'email', 'url', 'tel', 'password', 'number']);
const STEP_KEYS = new Set(['ArrowUp', 'ArrowDown', 'ArrowLeft', 'ArrowRight', 'Home', 'End',
  'PageUp', 'PageDown']);
const STEP_MS = 100;      // a menu's change this soon after a step key came from the keyboard
const BURST_GAP_MS = 30;  // a scanner types a key every few ms; a person about every 100
const BURST_MIN = 4;      // characters before the Enter, at least, to be a scan
let steppedAt = -Infinity; // performance.now() of the last step key on a menu
let burst = [];            // the note's last keys, while they come a scanner's pace apart

function scanning() {
  return !!current && canReceive(current) && !$('detail').hidden && !$('scan-form').hidden;
}

function focusScan() {
  if (scanning()) $('scan').focus();
}

function takesText(node) {
  return !!node && (node.isContentEditable || node.tagName === 'TEXTAREA' ||
    (node.tagName === 'INPUT' && TEXT_TYPES.has(node.type)));
}

/** A key that types a character (not a shortcut). */
function typesChar(ev) {
  return ev.key.length === 1 &&
    !((ev.ctrlKey || ev.metaKey || ev.altKey) && !ev.getModifierState('AltGraph'));
}

/** Keydown on the document (capture): a scan typed outside a text field goes to the scan field. */
function onKeydown(ev) {
  if (!scanning() || ev.defaultPrevented || ev.isComposing) return;
  const target = ev.target;
  const input = $('scan');
  if (target === input || takesText(target)) return;
  const menu = target.tagName === 'SELECT';
  if (menu && STEP_KEYS.has(ev.key)) {
    steppedAt = performance.now();
    return;
  }
  if (typesChar(ev) && ev.key !== ' ') { // Space still presses a button or ticks a box
    // The first character of a scan; the rest follow it into the focused scan field.
    ev.preventDefault();
    input.value = ev.key;
    input.focus();
    input.setSelectionRange(1, 1);
    input.dispatchEvent(new Event('input'));
  } else if (ev.key === 'Enter' && menu && input.value.trim()) {
    ev.preventDefault();
    input.focus();
    $('scan-form').requestSubmit();
  }
}

/** Keydown in a row's note: Enter commits it; a scanner's burst and Enter is a scan. */
function onNoteKey(ev, note) {
  if (ev.isComposing) return;
  const last = burst[burst.length - 1];
  const gap = last ? ev.timeStamp - last.at : 0;
  if (last && (last.note !== note || gap < 0 || gap > BURST_GAP_MS)) burst = [];
  if (ev.key === 'Enter') {
    ev.preventDefault();
    const keys = burst;
    burst = [];
    if (keys.length >= BURST_MIN) {
      const first = keys[0];
      const typed = keys.map((k) => k.key).join('');
      const withScan = first.before.slice(0, first.start) + typed + first.before.slice(first.end);
      // The burst is in the note as typed (or, the note being full, not at all).
      if (note.value === withScan || note.value === first.before) {
        note.value = first.before;
        note.dispatchEvent(new Event('input'));
        const input = $('scan');
        input.value = typed;
        input.focus();
        $('scan-form').requestSubmit();
        return;
      }
    }
    focusScan();
    return;
  }
  if (typesChar(ev)) {
    burst.push({
      note, key: ev.key, at: ev.timeStamp, before: note.value,
      start: note.selectionStart, end: note.selectionEnd,
    });
  } else {
    burst = [];
  }
}

function markUnscannedMissing() {
  let n = 0;
  for (const [serial, s] of state) {
    if (!s.scanned && !s.result) {
      s.result = 'missing';
      n++;
      afterEdit(serial);
    }
  }
  $('scan-live').textContent = n
    ? `${plural(n, 'fila marcada', 'filas marcadas')} como faltante${n === 1 ? '' : 's'}.`
    : 'No hay filas sin confirmar.';
}

// ---- signing --------------------------------------------------------------------------

/** Checks every row; shows the errors next to the fields. Returns the first bad field. */
function validate() {
  let first = null;
  const unset = [];
  [...state.entries()].forEach(([serial, s], i) => {
    if (!s.result) {
      fieldError(`row-${i}-result`, 'Elija el resultado.');
      unset.push(serial);
      first = first || $(`row-${i}-result`);
    } else {
      fieldError(`row-${i}-result`, '');
    }
    if (s.result === 'damaged_on_arrival' && !s.note.trim()) {
      fieldError(`row-${i}-note`, 'Describa el daño: es obligatorio para «Dañado al llegar».');
      first = first || $(`row-${i}-note`);
    } else {
      fieldError(`row-${i}-note`, '');
    }
  });
  const box = $('actions-error');
  if (first) {
    const parts = [];
    if (unset.length) {
      parts.push(`Falta el resultado de ${plural(unset.length, 'fila', 'filas')}: ${unset.join(', ')}. ` +
        'Si no llegaron, use «Marcar no escaneados como faltantes».');
    }
    if ([...state.values()].some((s) => s.result === 'damaged_on_arrival' && !s.note.trim())) {
      parts.push('Cada equipo dañado al llegar necesita una nota.');
    }
    box.textContent = parts.join(' ');
    box.hidden = false;
  } else {
    box.hidden = true;
  }
  return first;
}

function showConfirm() {
  const bad = validate();
  if (bad) {
    bad.focus();
    return;
  }
  const c = counts();
  const name = user.full_name || user.name;
  $('confirm-text').textContent =
    `Yo, ${name}, recibo ${plural(c.arrived, 'equipo', 'equipos')} ` +
    `(${plural(c.missing, 'faltante', 'faltantes')}, ${plural(c.damaged, 'dañado', 'dañados')}) ` +
    `de la entrega de ${current.technician} con ${plural(c.total, 'fila', 'filas')}.`;
  const items = [];
  for (const [serial, s] of state) {
    if (s.result !== 'received') {
      items.push(el('li', {}, el('span', { class: 'mono' }, serial), ` — ${RESULT_LABEL[s.result]}`,
        s.note ? `: ${s.note}` : ''));
    }
  }
  $('confirm-list').replaceChildren(...items);
  $('confirm-list').hidden = !items.length;
  $('confirm-check').checked = false;
  fieldError('confirm-check', '');
  sendError('');
  $('confirm').hidden = false;
  $('confirm-title').focus();
}

function hideConfirm() {
  $('confirm').hidden = true;
}

/** A send that failed, said right under «Confirmar recepción». */
function sendError(text) {
  const p = $('confirm-error');
  p.textContent = text;
  p.hidden = !text;
  const btn = $('confirm-send');
  if (text) btn.setAttribute('aria-describedby', 'confirm-error');
  else btn.removeAttribute('aria-describedby');
}

async function sendReceipt() {
  if (sending || !current) return;
  if (!$('confirm-check').checked) {
    fieldError('confirm-check', 'Marque «Confirmo la recepción» para firmar.');
    $('confirm-check').focus();
    return;
  }
  fieldError('confirm-check', '');
  const id = current.id;
  const rows = [...state.entries()].map(([serial, s]) => {
    const row = { serial, result: s.result };
    if (s.note.trim()) row.note = s.note.trim();
    return row;
  });
  sending = true;
  const btn = $('confirm-send');
  // aria-disabled, not disabled: a disabled button would drop focus to the page body.
  btn.setAttribute('aria-disabled', 'true');
  btn.textContent = 'Enviando…';
  sendError('');
  try {
    const r = await api('POST', `/v1/handovers/${id}/receipt`, { rows });
    sessionStorage.removeItem(draftKey(id));
    current = r.handover;
    current.receipt_info = r.receipt;
    state = new Map(current.rows.map((x) => [x.serial, {
      result: x.receipt, note: x.receipt_note, scanned: false,
    }]));
    renderDetail();
    const c = counts();
    show(`Recepción registrada: ${plural(c.received, 'recibido', 'recibidos')}, ` +
      `${plural(c.missing, 'faltante', 'faltantes')}, ${plural(c.damaged, 'dañado', 'dañados')} ` +
      `de la entrega de ${current.technician}.`, 'ok');
    $('receipt-title').focus();
    loadList();
  } catch (err) {
    onSendError(err, id);
  } finally {
    sending = false;
    btn.removeAttribute('aria-disabled');
    btn.textContent = 'Confirmar recepción';
  }
}

async function onSendError(err, id) {
  if (err instanceof ApiError && err.status === 409) {
    sessionStorage.removeItem(draftKey(id));
    await loadList();
    await openHandover(id, false);
    const who = current && current.id === id && current.received_by
      ? `${current.received_by} ya la recibió` : 'otra persona ya la recibió';
    show(`No se registró su recepción: esta entrega cambió mientras la revisaba (${who}). ` +
      `Se muestra su estado actual. ${humanError(err)}`, 'error');
    $('message').setAttribute('tabindex', '-1');
    $('message').focus();
    return;
  }
  // A field error names its row: rows[1].note: say what is damaged.
  const m = err instanceof ApiError && /^rows\[(\d+)\]\.(\w+):/.exec(err.message || '');
  if (m) {
    hideConfirm();
    const field = m[2] === 'note' ? 'note' : 'result';
    fieldError(`row-${m[1]}-${field}`, humanError(err));
    $(`row-${m[1]}-${field}`)?.focus();
    show(humanError(err), 'error');
    return;
  }
  // Nothing was recorded: say so beside the button the clerk just pressed, which keeps
  // focus for another try; the rows stay as they are (and in the draft).
  sendError(`No se registró la recepción. ${humanError(err)}`);
  $('confirm-send').focus();
  $('confirm-error').scrollIntoView({ block: 'nearest' });
}

function renderReceipt() {
  const h = current;
  const box = $('receipt');
  if (h.status !== 'received') {
    box.hidden = true;
    return;
  }
  const info = h.receipt_info || {};
  $('receipt-by').textContent = info.received_by || h.received_by || '—';
  $('receipt-at').textContent = fmtDateTime(info.received_at || h.received_at);
  $('receipt-hash').textContent = info.received_rows_hash || h.received_rows_hash || '—';
  $('anexo4').href = `/v1/handovers/${h.id}/anexo4`;
  box.hidden = false;
}

// ---- start ----------------------------------------------------------------------------

async function start() {
  try {
    user = await requireUser(['warehouse_clerk', 'back_office', 'supervisor']);
    await loadModel();
  } catch (err) {
    if (err instanceof ApiError && err.status !== 401) {
      show(humanError(err), 'error');
    }
    return;
  }
  $('top').replaceChildren(header(user));
  document.addEventListener('keydown', onKeydown, true);
  $('scan-form').addEventListener('submit', onScan);
  $('scan').addEventListener('input', () => {
    if ($('scan').getAttribute('aria-invalid') === 'true') scanError('');
  });
  $('mark-missing').addEventListener('click', markUnscannedMissing);
  $('sign').addEventListener('click', showConfirm);
  $('confirm-send').addEventListener('click', sendReceipt);
  $('confirm-back').addEventListener('click', () => {
    hideConfirm();
    $('sign').focus();
  });
  $('confirm-check').addEventListener('change', () => {
    if ($('confirm-check').checked) fieldError('confirm-check', '');
  });
  $('detail-close').addEventListener('click', closeDetail);
  $('list-refresh').addEventListener('click', loadList);
  $('show-received').addEventListener('change', () => {
    showReceived = $('show-received').checked;
    loadList();
  });
  await loadList();
  const id = location.hash.slice(1);
  if (/^[0-9a-f]{32}$/.test(id)) {
    await openHandover(id, true);
  }
}

start();
