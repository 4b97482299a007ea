// The Casos page: discrepancies of equipment (GET /v1/reports/discrepancies) and sync
// conflicts (GET /v1/conflicts) to resolve, for Back Office and Gestión. A collected item
// is settled with POST /v1/items/{item}/resolve; an expected serial never collected (no
// item) with POST /v1/ots/{ot}/missing; a conflict with POST /v1/conflicts/resolve.
import { api, el, humanError, fmtDateTime, notice } from './api.js';
import { RECEIPTS, bytes } from './bo_model.js';
import { lineStatusLabel } from './model.js';

const $ = (id) => document.getElementById(id);
let say = () => {};
let hooks = {};

export function initIssues(user, opts) {
  hooks = opts || {};
  say = notice($('issues-message'));
  $('issues').hidden = false;
  $('issues-refresh').addEventListener('click', loadIssues);
  loadIssues();
}

/** What is wrong with a line, in words. */
function problem(line) {
  const out = [];
  if (line.receipt && line.receipt !== 'received') out.push(RECEIPTS[line.receipt] || line.receipt);
  if (line.status !== 'matched') out.push(lineStatusLabel(line.status));
  if (line.collected_twice) out.push('Recogido dos veces');
  if (line.overdue) out.push('Fuera de plazo de custodia');
  return out.join(' · ') || lineStatusLabel(line.status);
}

/** An inline form under a row: one text and a submit. */
function resolveRow(cols, label, max, submitLabel, onSubmit) {
  const id = `r-${Math.random().toString(36).slice(2, 9)}`;
  const input = el('textarea', { id, rows: 2, required: true, 'aria-describedby': `${id}-error` });
  const err = el('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  const form = el('form', { class: 'bo-resolve', novalidate: true },
    el('label', { for: id }, label), input, err,
    el('div', { class: 'row bo-actions' },
      el('button', { type: 'submit', class: 'btn btn-primary small' }, submitLabel),
      el('button', { type: 'button', class: 'btn small', onclick: () => tr.remove() }, 'Cancelar')));
  const tr = el('tr', { class: 'bo-resolve-row' }, el('td', { colspan: cols }, form));
  const fail = (text) => {
    err.textContent = text;
    err.hidden = !text;
    input.setAttribute('aria-invalid', text ? 'true' : 'false');
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = input.value.trim();
    if (!v) { fail('Escriba la resolución.'); input.focus(); return; }
    if (bytes(v) > max) { fail(`Máximo ${max} caracteres.`); input.focus(); return; }
    fail('');
    const b = form.querySelector('button[type="submit"]');
    b.disabled = true;
    try {
      await onSubmit(v);
    } catch (e) {
      fail(humanError(e));
      input.focus();
      b.disabled = false;
    }
  });
  return { tr, input };
}

function toggleResolve(anchor, cols, ...args) {
  const next = anchor.nextElementSibling;
  if (next && next.classList.contains('bo-resolve-row')) {
    next.remove();
    return;
  }
  const { tr, input } = resolveRow(cols, ...args);
  anchor.after(tr);
  input.focus();
}

export async function loadIssues() {
  await Promise.all([loadDiscrepancies(), loadConflicts()]);
}

async function loadDiscrepancies() {
  const box = $('discrepancies');
  box.setAttribute('aria-busy', 'true');
  let items;
  try {
    items = (await api('GET', '/v1/reports/discrepancies')).items;
  } catch (err) {
    box.replaceChildren(el('p', { class: 'notice error', role: 'alert' }, humanError(err)));
    return;
  }
  box.setAttribute('aria-busy', 'false');
  if (!items.length) {
    box.replaceChildren(el('p', { class: 'muted', id: 'no-discrepancies' }, 'No hay discrepancias pendientes.'));
    return;
  }
  const cols = 7;
  const rows = items.map((it) => {
    const l = it.line;
    const settleable = !l.settled && (l.item || l.status === 'missing');
    const tr = el('tr', { 'data-serial': l.serial, 'data-case': it.case },
      el('td', { class: 'mono' }, l.serial, l.description ? el('div', { class: 'muted small' }, l.description) : null),
      el('td', {}, el('span', { class: 'badge warn' }, problem(l))),
      el('td', { class: 'mono' }, it.contract),
      el('td', {}, it.technician || '—'),
      el('td', {}, l.receipt ? `${RECEIPTS[l.receipt] || l.receipt}${l.receipt_note ? ` — ${l.receipt_note}` : ''}` : '—',
        l.collected_at ? el('div', { class: 'muted small' }, `Recogido ${fmtDateTime(l.collected_at)}`) : null),
      el('td', {}, l.resolution || l.missing_reason || (l.settled ? 'Resuelto' : '—')),
      el('td', {}, settleable ? el('button', {
        type: 'button', class: 'btn small', 'aria-label': `Resolver ${l.serial}`,
        onclick: () => {
          if (l.item) {
            toggleResolve(tr, cols, `Resolución para ${l.serial}`, 500, 'Guardar resolución', async (text) => {
              await api('POST', `/v1/items/${l.item}/resolve`, { resolution: text });
              await afterResolve(`${l.serial}: resolución registrada.`, it.case);
            });
          } else {
            toggleResolve(tr, cols, `Motivo por el que falta ${l.serial}`, 400, 'Guardar motivo', async (text) => {
              await api('POST', `/v1/ots/${it.ot}/missing`, { serial: l.serial, reason: text });
              await afterResolve(`${l.serial}: motivo de faltante registrado.`, it.case);
            });
          }
        },
      }, 'Resolver') : ''));
    return tr;
  });
  box.replaceChildren(el('table', { class: 'data', id: 'discrepancies-table' },
    el('thead', {}, el('tr', {}, ['Serie', 'Problema', 'Contrato', 'Técnico', 'Recepción', 'Resolución', '']
      .map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows)));
}

async function afterResolve(text, caseId) {
  await loadDiscrepancies();
  let closed = '';
  try {
    const c = await api('GET', `/v1/cases/${caseId}`);
    if (c.status === 'closed') closed = ` El caso ${c.fields.contract} quedó cerrado.`;
  } catch { /* the message without the case is enough */ }
  say(text + closed, 'ok');
  if (hooks.onChange) await hooks.onChange(caseId);
}

async function loadConflicts() {
  const box = $('conflicts');
  let list;
  try {
    list = (await api('GET', '/v1/conflicts')).conflicts;
  } catch (err) {
    box.replaceChildren(el('p', { class: 'notice error', role: 'alert' }, humanError(err)));
    return;
  }
  renderConflicts(list);
}

function renderConflicts(list) {
  const box = $('conflicts');
  const open = list.filter((c) => c.status === 'open');
  if (!open.length) {
    box.replaceChildren(el('p', { class: 'muted' }, 'No hay conflictos abiertos.'));
    return;
  }
  const cols = 6;
  box.replaceChildren(el('table', { class: 'data', id: 'conflicts-table' },
    el('thead', {}, el('tr', {}, ['Dato', 'Registro', 'Valor vigente', 'Valores en conflicto', 'Estado', '']
      .map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, open.map((c) => {
      const tr = el('tr', { 'data-conflict': c.id },
        el('td', {}, c.label || c.field),
        el('td', { class: 'mono' }, `${c.entity_type} ${String(c.entity).slice(0, 8)}`),
        el('td', {}, String(c.winner ?? '')),
        el('td', {}, el('ul', { class: 'bo-values' }, (c.values || []).map((v) =>
          el('li', {}, `${v.value} `, el('span', { class: 'muted small' }, `(${fmtDateTime(v.at)}, réplica ${v.replica})`))))),
        el('td', {}, 'Abierto'),
        el('td', {}, el('button', {
          type: 'button', class: 'btn small', 'aria-label': `Resolver el conflicto de ${c.label || c.field}`,
          onclick: () => toggleResolve(tr, cols, 'Resolución del conflicto', 4000, 'Resolver conflicto', async (text) => {
            const r = await api('POST', '/v1/conflicts/resolve', { id: c.id, resolution: text });
            renderConflicts(r.conflicts || []);
            say('Conflicto resuelto.', 'ok');
            if (hooks.onChange) await hooks.onChange('');
          }),
        }, 'Resolver')));
      return tr;
    }))));
}
