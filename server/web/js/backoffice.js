// The Casos page (every office role): the board of cases by modality and step, the
// "Nuevo caso" form with the live transfer fee, the selected case's detail with the
// actions that fit its status and the person's role (bo_detail.js), and the discrepancies
// and conflicts to resolve (bo_issues.js). The server decides; its refusals are shown in
// words.
import { api, requireUser, header, el, humanError, fmtMoney, fmtDateTime, notice } from './api.js';
import { statusLabel, statusCodes, modalityLabel, modalityCodes } from './model.js';
import {
  OFFICE_ROLES, CAN, PRODUCTS, openableModalities, stepLabel, bytes, memberOf, loadModel,
  fieldMaxBytes,
} from './bo_model.js';
import { showDetail } from './bo_detail.js';
import { initIssues, loadIssues } from './bo_issues.js';

const $ = (id) => document.getElementById(id);
const show = notice($('message'));
let user = null;
let selected = ''; // id of the case shown in the detail

// ---- board ----------------------------------------------------------------------------

function statusBadge(status) {
  const kind = { closed: 'ok', rejected: 'bad', cancelled: 'bad', approved: 'ok', in_progress: 'warn' }[status] || '';
  return el('span', { class: `badge ${kind}`.trim() }, statusLabel('case', status));
}

export async function loadBoard() {
  const board = $('board');
  board.setAttribute('aria-busy', 'true');
  const q = new URLSearchParams();
  if ($('filter-modality').value) q.set('modality', $('filter-modality').value);
  if ($('filter-status').value) q.set('status', $('filter-status').value);
  let cases;
  let total = 0;
  try {
    const list = await api('GET', `/v1/cases${q.toString() ? `?${q}` : ''}`);
    cases = list.cases;
    total = list.total ?? cases.length;
  } catch (err) {
    board.replaceChildren(el('p', { class: 'notice error', role: 'alert' }, humanError(err)));
    board.setAttribute('aria-busy', 'false');
    return;
  }
  if (!cases.length) {
    board.replaceChildren(el('p', { class: 'muted' }, 'No hay casos con estos filtros.'));
    board.setAttribute('aria-busy', 'false');
    return;
  }
  // Grouped by modality; inside a modality, by step (the furthest along first), then newest.
  const byMod = new Map();
  for (const c of cases) {
    if (!byMod.has(c.modality)) byMod.set(c.modality, []);
    byMod.get(c.modality).push(c);
  }
  const bodies = [...byMod.keys()].sort().map((m) => {
    const rows = byMod.get(m).sort((a, b) =>
      (b.last_step || '').localeCompare(a.last_step || '') || b.opened_at - a.opened_at);
    return el('tbody', {},
      el('tr', { class: 'bo-group' },
        el('th', { colspan: 8, scope: 'rowgroup' },
          `Modalidad ${modalityLabel(m)}`, el('span', { class: 'muted' }, ` · ${rows.length} caso${rows.length === 1 ? '' : 's'}`))),
      rows.map((c) => {
        const label = stepLabel(c.last_step);
        return el('tr', { 'data-case': c.id, 'data-contract': c.contract, class: c.id === selected ? 'selected' : null },
          el('td', { class: 'mono nowrap' }, c.contract),
          el('td', {}, c.customer_name),
          el('td', { class: 'bo-col-mod' }, modalityLabel(c.modality)),
          el('td', { class: 'nowrap' }, statusBadge(c.status)),
          el('td', {}, c.last_step ? el('span', {}, el('span', { class: 'mono' }, c.last_step), label ? el('span', { class: 'muted bo-steplabel' }, ` ${label}`) : null) : '—'),
          el('td', { class: 'num' }, c.requirements_missing
            ? el('span', { class: 'badge warn' }, String(c.requirements_missing))
            : el('span', { class: 'muted' }, '0')),
          el('td', { class: 'nowrap' }, fmtDateTime(c.opened_at)),
          el('td', {}, el('button', {
            type: 'button', class: 'btn small', 'aria-label': `Ver el caso ${c.contract}`,
            'aria-pressed': c.id === selected ? 'true' : 'false',
            onclick: () => selectCase(c.id),
          }, 'Ver')));
      }));
  });
  board.replaceChildren(el('table', { class: 'data bo-board', id: 'board-table' },
    el('caption', { class: 'sr-only' }, 'Casos por modalidad y paso'),
    el('thead', {}, el('tr', {},
      ...['Contrato', 'Cliente', 'Modalidad', 'Estado', 'Último paso', 'Requisitos faltantes', 'Abierto', '']
        .map((h, i) => el('th', { scope: 'col', class: i === 2 ? 'bo-col-mod' : null }, h)))),
    ...bodies));
  if (total > cases.length) {
    board.append(el('p', { class: 'muted' },
      `Se muestran los ${cases.length} casos más recientes de ${total}; use los filtros para ver otros.`));
  }
  board.setAttribute('aria-busy', 'false');
}

/** Shows a case in the detail (fetching it) and marks its row. */
export async function selectCase(id, data) {
  selected = id;
  for (const tr of document.querySelectorAll('#board tr[data-case]')) {
    const on = tr.dataset.case === id;
    tr.classList.toggle('selected', on);
    tr.querySelector('button').setAttribute('aria-pressed', on ? 'true' : 'false');
  }
  try {
    const c = data || await api('GET', `/v1/cases/${id}`);
    showDetail(c, user, { onChange: onCaseChanged });
    $('detail-title').focus();
  } catch (err) {
    show(humanError(err), 'error');
  }
}

/** After an action on the case: the board and the discrepancies may have moved. */
async function onCaseChanged() {
  await loadBoard();
  if (CAN.discrepancies.includes(user.role)) await loadIssues();
}

// ---- the new case form ---------------------------------------------------------------

const form = $('case-form');
const formMsg = notice($('form-message'));

// The form's text fields; their byte limits are the model's (filled at start-up).
const TEXT_FIELDS = ['contract', 'customer_name', 'tax_id', 'reference_cell', 'contact_hours',
  'old_address', 'new_address', 'old_reference', 'new_reference', 'old_geo_location',
  'new_geo_location', 'old_neighborhood', 'new_neighborhood', 'observations'];
let TEXT_LIMITS = {};
const REQUIRED = ['contract', 'customer_name', 'tax_id', 'reference_cell', 'contact_hours',
  'old_address', 'new_address'];

function fieldError(name, text) {
  const p = $(`f-${name}-error`);
  if (!p) return false;
  p.textContent = text;
  p.hidden = !text;
  const input = $(`f-${name}`);
  if (input) input.setAttribute('aria-invalid', text ? 'true' : 'false');
  return true;
}

function checkedProducts() {
  return [...form.querySelectorAll('input[name="products"]:checked')].map((i) => i.value);
}

let feeSeq = 0;
async function updateFee() {
  const products = checkedProducts();
  const out = $('fee');
  const seq = ++feeSeq;
  if (!products.length) {
    out.textContent = '—';
    return;
  }
  try {
    const r = await api('GET', `/v1/fees?products=${products.map(encodeURIComponent).join(',')}`);
    if (seq === feeSeq) out.textContent = fmtMoney(r.quote);
  } catch (err) {
    if (seq === feeSeq) out.textContent = `no disponible (${humanError(err)})`;
  }
}

function validate() {
  let first = null;
  const err = (name, text) => {
    fieldError(name, text);
    if (text && !first) first = name === 'products' ? form.querySelector('input[name="products"]') : $(`f-${name}`);
  };
  err('modality', form.modality.value ? '' : 'Elija la modalidad.');
  err('person_type', form.person_type.value ? '' : 'Elija el tipo de persona.');
  for (const [name, max] of Object.entries(TEXT_LIMITS)) {
    const v = form[name].value.trim();
    if (REQUIRED.includes(name) && !v) err(name, 'Este dato es obligatorio.');
    else if (bytes(v) > max) err(name, `Máximo ${max} caracteres (tiene ${bytes(v)}).`);
    else err(name, '');
  }
  const n = checkedProducts().length;
  err('products', n ? '' : 'Marque al menos un producto.');
  return first;
}

function openForm(open) {
  $('new-case').hidden = !open;
  $('new-case-btn').setAttribute('aria-expanded', open ? 'true' : 'false');
  if (open) {
    $('new-case-title').focus();
  } else {
    $('new-case-btn').focus();
  }
}

function initForm() {
  const mods = openableModalities(user.role);
  if (!mods.length) return;
  $('new-case-btn').hidden = false;
  $('new-case-btn').addEventListener('click', () => openForm($('new-case').hidden));
  $('new-case-cancel').addEventListener('click', () => openForm(false));
  const sel = $('f-modality');
  sel.replaceChildren(
    ...(mods.length > 1 ? [el('option', { value: '' }, '— Elija —')] : []),
    ...mods.map((m) => el('option', { value: m }, modalityLabel(m))));
  $('f-products').replaceChildren(...PRODUCTS.map(([code, label]) =>
    el('label', { class: 'bo-check' },
      el('input', { type: 'checkbox', name: 'products', value: code, onchange: updateFee }),
      ` ${label}`)));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    formMsg('');
    const first = validate();
    if (first) {
      first.focus();
      formMsg('Revise los datos marcados.', 'error');
      return;
    }
    const body = { modality: Number(form.modality.value), person_type: form.person_type.value, products: checkedProducts() };
    for (const name of Object.keys(TEXT_LIMITS)) {
      const v = form[name].value.trim();
      if (v) body[name] = v;
    }
    const btn = form.querySelector('button[type="submit"]');
    btn.disabled = true;
    try {
      const c = await api('POST', '/v1/cases', body);
      form.reset();
      $('fee').textContent = '—';
      $('new-case').hidden = true;
      $('new-case-btn').setAttribute('aria-expanded', 'false');
      show(`Caso abierto para el contrato ${c.fields.contract} (costo de traslado ${fmtMoney(c.fields.fee || 0)}).`);
      await loadBoard();
      await selectCase(c.id, c);
    } catch (err) {
      const member = memberOf(err.message);
      if (member && fieldError(member, humanError(err))) {
        ($(`f-${member}`) || form.querySelector(`input[name="${member}"]`)).focus();
        formMsg('Revise los datos marcados.', 'error');
      } else {
        formMsg(humanError(err), 'error');
      }
    } finally {
      btn.disabled = false;
    }
  });
}

// ---- start ----------------------------------------------------------------------------

async function main() {
  user = await requireUser(OFFICE_ROLES);
  await loadModel();
  TEXT_LIMITS = Object.fromEntries(TEXT_FIELDS.map((name) => [name, fieldMaxBytes('case', name)]));
  $('top').replaceChildren(header(user));
  $('filter-modality').append(...modalityCodes().map((m) => el('option', { value: m }, modalityLabel(m))));
  $('filter-status').append(...statusCodes('case').map((s) => el('option', { value: s }, statusLabel('case', s))));
  $('filters').addEventListener('submit', (ev) => { ev.preventDefault(); loadBoard(); });
  $('filter-modality').addEventListener('change', loadBoard);
  $('filter-status').addEventListener('change', loadBoard);
  initForm();
  if (CAN.discrepancies.includes(user.role)) {
    initIssues(user, { onChange: async (caseId) => {
      await loadBoard();
      if (caseId && caseId === selected) await selectCase(caseId);
    } });
  }
  await loadBoard();
  const want = new URLSearchParams(location.search).get('case');
  if (want) await selectCase(want);
}

main().catch((err) => {
  if (err && err.message === 'role') return;
  show(humanError(err), 'error');
});
