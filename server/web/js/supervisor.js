// The supervisor's page: the PLN-GPI-P09 indicators for a date range (KPI cards, a daily
// chart drawn as SVG with the DOM, the cases behind each number, the CSV), the
// technicians' devices (with revocation) and the users.
import { api, requireUser, header, el, humanError, fmtDateTime, isoDate, notice } from './api.js';
import { loadModel, statusLabel, modalityLabel } from './model.js';

const $ = (id) => document.getElementById(id);
const show = notice($('message'));
const DAY_MS = 86400000;
const SVG_NS = 'http://www.w3.org/2000/svg';

let report = null; // the last indicators answer
let openKpi = '';   // 'efficacy' | 'timeliness' | 'pending' | ''

// ---- small formatting helpers --------------------------------------------------------

/** 12,50 % (two decimals, comma). */
function fmtPct(p) {
  return `${Number(p || 0).toFixed(2).replace('.', ',')} %`;
}

/** 2026-11-29 → 29/11/2026. */
function fmtDate(iso) {
  const [y, m, d] = iso.split('-');
  return `${d}/${m}/${y}`;
}

/** Why a case does not count, from the report's reason codes, in Spanish. */
const REASONS = {
  cancelled: () => 'Caso anulado',
  not_told: () => 'Rechazado, sin avisar al cliente',
  not_finished: (c) => `No concluido (${statusLabel('case', c.status)})`,
  failed_visit: () => 'Hubo una visita fallida',
  open_discrepancy: () => 'Discrepancia de equipos sin resolver',
  late: () => 'Atendido después de 24 h',
  not_attended: () => 'Aún sin atender',
};

function reasonEs(code, c) {
  if (!code) return '';
  return REASONS[code] ? REASONS[code](c) : code;
}

function isPending(c) {
  return c.not_effective === 'not_finished' || c.not_effective === 'not_told';
}

function verdictBadge(fig) {
  if (!fig || fig.total === 0 || /sin datos/i.test(fig.verdict)) {
    return el('span', { class: 'badge kpi-verdict' }, 'Sin datos');
  }
  return el('span', { class: `badge kpi-verdict ${fig.pass ? 'ok' : 'bad'}` },
    fig.pass ? 'Aceptado' : 'Observado');
}

function yesNo(v) {
  return el('span', { class: `badge ${v ? 'ok' : 'bad'}` }, v ? 'Sí' : 'No');
}

// ---- tabs -----------------------------------------------------------------------------

const tabs = [...document.querySelectorAll('[role="tab"]')];
const loaders = { dispositivos: loadDevices, usuarios: loadUsers };

function selectTab(tab, focus) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute('aria-selected', on ? 'true' : 'false');
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute('aria-controls')).hidden = !on;
  }
  if (focus) tab.focus();
  const panel = tab.getAttribute('aria-controls');
  if (loaders[panel]) loaders[panel]();
  history.replaceState(null, '', `#${panel}`);
}

for (const t of tabs) {
  t.addEventListener('click', () => selectTab(t, false));
  t.addEventListener('keydown', (ev) => {
    const i = tabs.indexOf(t);
    let next = null;
    if (ev.key === 'ArrowRight') next = tabs[(i + 1) % tabs.length];
    if (ev.key === 'ArrowLeft') next = tabs[(i - 1 + tabs.length) % tabs.length];
    if (ev.key === 'Home') next = tabs[0];
    if (ev.key === 'End') next = tabs[tabs.length - 1];
    if (next) {
      ev.preventDefault();
      selectTab(next, true);
    }
  });
}

// ---- indicators -------------------------------------------------------------------------

function query(extra = {}) {
  const p = new URLSearchParams({ from: $('from').value, to: $('to').value });
  if ($('unit').value) p.set('unit', $('unit').value);
  for (const [k, v] of Object.entries(extra)) p.set(k, v);
  return `/v1/reports/indicators?${p}`;
}

function rangeError(text) {
  const p = $('range-error');
  p.textContent = text;
  p.hidden = !text;
  $('from').setAttribute('aria-invalid', text ? 'true' : 'false');
  $('to').setAttribute('aria-invalid', text ? 'true' : 'false');
}

let loadSeq = 0;
async function loadIndicators() {
  const from = $('from').value;
  const to = $('to').value;
  if (!from || !to) {
    rangeError('Elija las fechas Desde y Hasta.');
    return;
  }
  if (to < from) {
    rangeError('La fecha Hasta no puede ser anterior a Desde.');
    return;
  }
  rangeError('');
  const seq = ++loadSeq;
  $('results').setAttribute('aria-busy', 'true');
  $('csv').href = query({ format: 'csv' });
  $('csv').setAttribute('download', `indicadores_${from}_${to}.csv`);
  try {
    const r = await api('GET', query());
    if (seq !== loadSeq) return;
    report = Object.assign(r, { range: { from, to, unit: $('unit').value } });
    show('');
    renderIndicators();
    $('results').dataset.range = `${from}..${to}${report.range.unit ? `..${report.range.unit}` : ''}`;
  } catch (err) {
    if (seq === loadSeq) show(humanError(err), 'error');
  } finally {
    if (seq === loadSeq) $('results').setAttribute('aria-busy', 'false');
  }
}

function renderKpi(id, fig) {
  const card = $(id);
  card.querySelector('.kpi-count').textContent = `${fig.count} de ${fig.total}`;
  card.querySelector('.kpi-pct').textContent = fig.total ? fmtPct(fig.percent) : '— %';
  card.querySelector('.kpi-verdict').replaceWith(verdictBadge(fig));
  card.dataset.count = String(fig.count);
  card.dataset.total = String(fig.total);
}

function renderIndicators() {
  const r = report;
  renderKpi('kpi-efficacy', r.efficacy);
  renderKpi('kpi-timeliness', r.timeliness);
  const pend = $('kpi-pending');
  pend.querySelector('.kpi-count').textContent = String(r.pending);
  pend.dataset.count = String(r.pending);
  const { from, to, unit } = r.range;
  $('range-label').textContent =
    `Casos abiertos del ${fmtDate(from)} al ${fmtDate(to)}` +
    `${unit ? ` · unidad ${unit}` : ' · todas las unidades'} · ${r.total} ` +
    `${r.total === 1 ? 'caso' : 'casos'} · Casos en curso: ${r.pending}`;
  renderChart(r);
  if (openKpi) renderCases(openKpi, false);
}

// ---- the cases behind a number ----------------------------------------------------------

const KPI = {
  efficacy: {
    title: 'Eficacia',
    inLabel: 'Cuentan como eficaces',
    outLabel: 'No cuentan como eficaces',
    test: (c) => c.effective,
  },
  timeliness: {
    title: 'Oportunidad (< 24 h)',
    inLabel: 'Atendidos en menos de 24 h',
    outLabel: 'No atendidos a tiempo',
    test: (c) => c.timely,
  },
  pending: {
    title: 'Casos en curso',
    inLabel: 'En curso (sin acción final)',
    outLabel: 'Con acción final o anulados',
    test: isPending,
  },
};

function caseTable(cases) {
  if (!cases.length) return el('p', { class: 'muted' }, 'Ningún caso.');
  return el('div', { class: 'table-wrap' }, el('table', { class: 'data cases' },
    el('thead', {}, el('tr', {},
      el('th', { scope: 'col' }, 'Contrato'),
      el('th', { scope: 'col' }, 'Cliente'),
      el('th', { scope: 'col', class: 'opt' }, 'Modalidad'),
      el('th', { scope: 'col' }, 'Estado'),
      el('th', { scope: 'col' }, 'Apertura'),
      el('th', { scope: 'col' }, 'Primera acción final'),
      el('th', { scope: 'col' }, 'Eficaz'),
      el('th', { scope: 'col' }, 'Oportuno'),
      el('th', { scope: 'col' }, el('span', { class: 'sr-only' }, 'Acciones')))),
    el('tbody', {}, cases.map((c) => {
      const sumBtn = el('button', {
        type: 'button', class: 'btn small', 'aria-expanded': 'false',
        'aria-label': `Resumen del caso ${c.contract}`,
      }, 'Resumen');
      const tr = el('tr', { 'data-contract': c.contract, 'data-case': c.id },
        el('td', { class: 'mono nowrap' }, c.contract),
        el('td', {}, c.customer_name),
        el('td', { class: 'opt', title: modalityLabel(c.modality) }, String(c.modality)),
        el('td', {}, statusLabel('case', c.status)),
        el('td', {}, fmtDateTime(c.opened_at)),
        el('td', {}, c.first_final_action ? fmtDateTime(c.first_final_action) : '—'),
        el('td', {}, yesNo(c.effective), c.effective ? null : el('span', { class: 'why' }, reasonEs(c.not_effective, c))),
        el('td', {}, yesNo(c.timely), c.timely ? null : el('span', { class: 'why' }, reasonEs(c.not_timely, c))),
        el('td', { class: 'actions' },
          el('a', { href: `/web/backoffice.html#case=${c.id}`, 'aria-label': `Abrir el caso ${c.contract}` }, 'Abrir'),
          ' ', sumBtn));
      sumBtn.addEventListener('click', () => toggleSummary(tr, c, sumBtn, 9));
      return tr;
    }))));
}

async function toggleSummary(tr, c, btn, cols) {
  const next = tr.nextElementSibling;
  if (next && next.classList.contains('summary-row')) {
    next.remove();
    btn.setAttribute('aria-expanded', 'false');
    return;
  }
  const cell = el('td', { colspan: String(cols) }, el('p', { class: 'muted' }, 'Cargando el caso…'));
  tr.after(el('tr', { class: 'summary-row' }, cell));
  btn.setAttribute('aria-expanded', 'true');
  try {
    const d = await api('GET', `/v1/cases/${c.id}`);
    const steps = d.steps || [];
    const last = steps.length ? steps[steps.length - 1] : null;
    const lastStep = last ? (last.code || last.step || last.id || '') : '';
    cell.replaceChildren(el('dl', { class: 'summary' },
      el('dt', {}, 'Estado'), el('dd', {}, statusLabel('case', d.status)),
      el('dt', {}, 'Modalidad'), el('dd', {}, modalityLabel(d.modality)),
      d.routed_to_name ? [el('dt', {}, 'Derivado a'), el('dd', {}, d.routed_to_name)] : null,
      el('dt', {}, 'Requisitos'), el('dd', {}, d.requirements_complete ? 'Completos' : 'Incompletos'),
      lastStep ? [el('dt', {}, 'Último paso'), el('dd', { class: 'mono' }, String(lastStep))] : null,
      el('dt', {}, 'OT'), el('dd', {}, (d.ots || []).length
        ? el('ul', { class: 'plain' }, d.ots.map((o) => el('li', {},
          `${o.kind} · ${statusLabel('work_order', o.status)}${o.technician ? ` · ${o.technician}` : ''}`)))
        : 'Sin OT emitidas'),
      (d.closing_blockers || []).length
        ? [el('dt', {}, 'Falta para cerrar'),
          el('dd', {}, el('ul', { class: 'plain' }, d.closing_blockers.map((b) => el('li', {}, b))))]
        : null));
  } catch (err) {
    cell.replaceChildren(el('p', { class: 'notice error', role: 'alert' }, humanError(err)));
  }
}

function renderCases(kind, focus) {
  const def = KPI[kind];
  const cases = report ? report.cases : [];
  const inside = cases.filter(def.test);
  const outside = cases.filter((c) => !def.test(c));
  $('cases-title').textContent = `${def.title}: los casos detrás del número`;
  $('cases-body').replaceChildren(
    el('h3', { id: `cases-in-title` }, `${def.inLabel} (${inside.length})`),
    el('div', { id: 'cases-in' }, caseTable(inside)),
    el('h3', {}, `${def.outLabel} (${outside.length})`),
    el('div', { id: 'cases-out' }, caseTable(outside)));
  $('cases-panel').hidden = false;
  $('cases-panel').dataset.kind = kind;
  for (const k of Object.keys(KPI)) {
    const id = { efficacy: 'kpi-efficacy', timeliness: 'kpi-timeliness', pending: 'kpi-pending' }[k];
    $(id).setAttribute('aria-expanded', k === kind ? 'true' : 'false');
    $(id).classList.toggle('selected', k === kind);
  }
  if (focus) $('cases-title').focus();
}

function closeCases() {
  const was = openKpi;
  openKpi = '';
  $('cases-panel').hidden = true;
  for (const id of ['kpi-efficacy', 'kpi-timeliness', 'kpi-pending']) {
    $(id).setAttribute('aria-expanded', 'false');
    $(id).classList.remove('selected');
  }
  if (was) $({ efficacy: 'kpi-efficacy', timeliness: 'kpi-timeliness', pending: 'kpi-pending' }[was]).focus();
}

for (const [id, kind] of [['kpi-efficacy', 'efficacy'], ['kpi-timeliness', 'timeliness'], ['kpi-pending', 'pending']]) {
  $(id).addEventListener('click', () => {
    if (openKpi === kind) {
      closeCases();
      return;
    }
    openKpi = kind;
    renderCases(kind, true);
  });
}
$('cases-close').addEventListener('click', closeCases);

// ---- the daily chart ----------------------------------------------------------------------

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** Every day of the range (zeros where no case was opened), or only the days with cases
 *  when the range is long. */
function chartDays(r) {
  const byDate = new Map(r.days.map((d) => [d.date, d]));
  const from = Date.parse(`${r.range.from}T00:00:00Z`);
  const to = Date.parse(`${r.range.to}T00:00:00Z`);
  const n = Math.round((to - from) / DAY_MS) + 1;
  if (!(n > 0) || n > 62) return r.days;
  const out = [];
  for (let i = 0; i < n; i++) {
    const iso = new Date(from + i * DAY_MS).toISOString().slice(0, 10);
    out.push(byDate.get(iso) || { date: iso, total: 0, effective: 0, timely: 0 });
  }
  return out;
}

const SERIES = [
  { key: 'total', label: 'Casos abiertos', cls: 'bar-total', color: '#9aa8b8' },
  { key: 'effective', label: 'Eficaces', cls: 'bar-effective', color: '#1b7f3a' },
  { key: 'timely', label: 'Oportunos (< 24 h)', cls: 'bar-timely', color: '#0b5cab' },
];

function niceMax(v) {
  if (v <= 4) return Math.max(1, v);
  const step = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (m * step >= v) return m * step;
  }
  return v;
}

function renderChart(r) {
  const days = chartDays(r);
  const W = 960;
  const H = 300;
  const m = { left: 44, right: 12, top: 40, bottom: 46 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const maxV = niceMax(Math.max(0, ...days.map((d) => d.total)));
  const y = (v) => m.top + ph - (v / maxV) * ph;
  const slot = days.length ? pw / days.length : pw;
  const barW = Math.max(1.5, Math.min(18, (slot * 0.8) / 3));

  const totalAll = days.reduce((a, d) => a + d.total, 0);
  const title = `Casos por día, del ${fmtDate(r.range.from)} al ${fmtDate(r.range.to)}`;
  const desc = days.length === 0 || totalAll === 0
    ? 'No se abrieron casos en el rango elegido.'
    : `Barras por día de apertura: casos abiertos, eficaces y oportunos. ` +
      days.filter((d) => d.total > 0).map((d) =>
        `${fmtDate(d.date)}: ${d.total} abiertos, ${d.effective} eficaces, ${d.timely} oportunos`).join('; ') + '.';

  const g = [];
  // Horizontal grid and y labels.
  const ticks = maxV <= 5 ? maxV : 5;
  for (let i = 0; i <= ticks; i++) {
    const v = (maxV / ticks) * i;
    const yy = y(v);
    g.push(svg('line', { x1: m.left, x2: W - m.right, y1: yy, y2: yy, class: i === 0 ? 'axis' : 'grid' }));
    g.push(svg('text', { x: m.left - 6, y: yy + 4, 'text-anchor': 'end', class: 'tick' },
      Number.isInteger(v) ? String(v) : v.toFixed(1).replace('.', ',')));
  }
  g.push(svg('line', { x1: m.left, x2: m.left, y1: m.top, y2: m.top + ph, class: 'axis' }));

  // Bars and x labels (at most ~16 labels).
  const every = Math.max(1, Math.ceil(days.length / 16));
  days.forEach((d, i) => {
    const x0 = m.left + i * slot + (slot - barW * 3) / 2;
    SERIES.forEach((s, j) => {
      const v = d[s.key];
      const h = Math.max(0, y(0) - y(v));
      g.push(svg('rect', {
        x: (x0 + j * barW).toFixed(1), y: (y(0) - h).toFixed(1), width: Math.max(1, barW - 1).toFixed(1),
        height: h.toFixed(1), fill: s.color, class: s.cls,
      }, svg('title', {}, `${fmtDate(d.date)} · ${s.label}: ${v}`)));
    });
    if (i % every === 0 || i === days.length - 1) {
      const [, mm, dd] = d.date.split('-');
      g.push(svg('text', {
        x: (m.left + i * slot + slot / 2).toFixed(1), y: m.top + ph + 16, 'text-anchor': 'middle', class: 'tick',
      }, `${dd}/${mm}`));
    }
  });
  g.push(svg('text', { x: m.left + pw / 2, y: H - 8, 'text-anchor': 'middle', class: 'axis-label' },
    'Día de apertura del caso'));
  g.push(svg('text', { x: 12, y: m.top + ph / 2, 'text-anchor': 'middle', class: 'axis-label',
    transform: `rotate(-90 12 ${m.top + ph / 2})` }, 'Casos'));

  // Legend.
  let lx = m.left;
  for (const s of SERIES) {
    g.push(svg('rect', { x: lx, y: 10, width: 14, height: 14, fill: s.color, rx: 2 }));
    g.push(svg('text', { x: lx + 20, y: 22, class: 'legend' }, s.label));
    lx += 34 + s.label.length * 8.2;
  }
  if (totalAll === 0) {
    g.push(svg('text', { x: m.left + pw / 2, y: m.top + ph / 2, 'text-anchor': 'middle', class: 'empty' },
      'Sin casos en el rango'));
  }

  const chart = svg('svg', {
    class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'chart-svg-title chart-svg-desc',
    preserveAspectRatio: 'xMidYMid meet',
  }, svg('title', { id: 'chart-svg-title' }, title), svg('desc', { id: 'chart-svg-desc' }, desc), g);
  $('chart').replaceChildren(chart);

  // The same data as a table.
  const rows = days.filter((d) => d.total > 0);
  $('chart-table').replaceChildren(rows.length
    ? el('table', { class: 'data compact' },
      el('caption', { class: 'sr-only' }, title),
      el('thead', {}, el('tr', {},
        el('th', { scope: 'col' }, 'Fecha'), el('th', { scope: 'col' }, 'Casos abiertos'),
        el('th', { scope: 'col' }, 'Eficaces'), el('th', { scope: 'col' }, 'Oportunos (< 24 h)'))),
      el('tbody', {}, rows.map((d) => el('tr', {},
        el('th', { scope: 'row' }, fmtDate(d.date)), el('td', {}, d.total),
        el('td', {}, d.effective), el('td', {}, d.timely)))))
    : el('p', { class: 'muted' }, 'Sin casos en el rango.'));
}

// ---- devices ----------------------------------------------------------------------------

const showDev = notice($('devices-message'));

async function loadDevices() {
  try {
    const r = await api('GET', '/v1/devices');
    renderDevices(r.devices || []);
  } catch (err) {
    showDev(humanError(err), 'error');
  }
}

function renderDevices(devices) {
  $('devices').replaceChildren(devices.length
    ? el('table', { class: 'data', id: 'devices-table' },
      el('thead', {}, el('tr', {},
        el('th', { scope: 'col' }, 'Dispositivo'), el('th', { scope: 'col' }, 'Usuario'),
        el('th', { scope: 'col' }, 'Etiqueta'), el('th', { scope: 'col' }, 'Estado'),
        el('th', { scope: 'col' }, 'Última sincronización'), el('th', { scope: 'col' }, 'Pendiente'),
        el('th', { scope: 'col' }, 'Inscrito'),
        el('th', { scope: 'col' }, el('span', { class: 'sr-only' }, 'Acciones')))),
      el('tbody', {}, devices.map(deviceRow)))
    : el('p', { class: 'muted' }, 'No hay dispositivos inscritos.'));
  $('devices').dataset.loaded = 'true';
}

function deviceRow(d) {
  // `behind` (ops the device has yet to pull) when the server gives it; older servers:
  // server_seq - cursor.
  const behind = typeof d.behind === 'number'
    ? d.behind : Math.max(0, (d.server_seq || 0) - (d.cursor || 0));
  const active = d.status === 'active';
  const actions = el('td', { class: 'actions' });
  const tr = el('tr', { 'data-replica': d.replica },
    el('td', { class: 'mono' }, `N.º ${d.replica}`),
    el('td', {}, d.user),
    el('td', {}, d.label || '—'),
    el('td', {}, el('span', { class: `badge ${active ? 'ok' : 'bad'}` }, active ? 'Activo' : 'Revocado')),
    el('td', {}, fmtDateTime(d.last_seen)),
    el('td', {}, behind === 0 ? 'Al día' : `${behind} operaciones`),
    el('td', {}, fmtDateTime(d.enrolled_at)),
    actions);
  const revoke = el('button', {
    type: 'button', class: 'btn small btn-danger', 'aria-label': `Revocar el dispositivo ${d.replica} de ${d.user}`,
  }, 'Revocar');
  const idle = () => actions.replaceChildren(active ? revoke : el('span', { class: 'muted' }, '—'));
  revoke.addEventListener('click', () => {
    const yes = el('button', { type: 'button', class: 'btn small btn-danger' }, 'Sí, revocar');
    const no = el('button', { type: 'button', class: 'btn small' }, 'Cancelar');
    actions.replaceChildren(el('div', { class: 'confirm', role: 'group', 'aria-label': 'Confirmar revocación' },
      el('span', {}, `¿Revocar el dispositivo ${d.replica} de ${d.user}? Sus datos locales se borrarán.`),
      el('span', { class: 'row' }, yes, no)));
    no.addEventListener('click', () => { idle(); revoke.focus(); });
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      no.disabled = true;
      try {
        const r = await api('POST', `/v1/devices/${encodeURIComponent(d.replica)}/revoke`);
        showDev(`Dispositivo ${d.replica} (${d.user}) revocado.`, 'ok');
        if (r && r.devices) renderDevices(r.devices); else await loadDevices();
      } catch (err) {
        showDev(humanError(err), 'error');
        idle();
      }
    });
    yes.focus();
  });
  idle();
  return tr;
}

$('devices-refresh').addEventListener('click', () => { showDev(''); loadDevices(); });

// ---- users --------------------------------------------------------------------------------

let usersCache = null;

async function fetchUsers() {
  if (!usersCache) usersCache = (await api('GET', '/v1/users')).users || [];
  return usersCache;
}

async function loadUsers() {
  try {
    const users = await fetchUsers();
    $('users').replaceChildren(el('table', { class: 'data', id: 'users-table' },
      el('thead', {}, el('tr', {},
        el('th', { scope: 'col' }, 'Usuario'), el('th', { scope: 'col' }, 'Nombre'),
        el('th', { scope: 'col' }, 'Rol'), el('th', { scope: 'col' }, 'Unidad'),
        el('th', { scope: 'col' }, 'Estado'))),
      el('tbody', {}, users.map((u) => el('tr', {},
        el('td', { class: 'mono' }, u.name), el('td', {}, u.full_name),
        el('td', {}, u.role_label || u.role), el('td', {}, u.unit || '—'),
        el('td', {}, el('span', { class: `badge ${u.disabled ? 'bad' : 'ok'}` },
          u.disabled ? 'Deshabilitado' : 'Activo')))))));
    $('users').dataset.loaded = 'true';
  } catch (err) {
    show(humanError(err), 'error');
  }
}

// ---- start --------------------------------------------------------------------------------

async function fillUnits() {
  try {
    const units = [...new Set((await fetchUsers()).map((u) => u.unit).filter(Boolean))].sort();
    const sel = $('unit');
    for (const u of units) sel.append(el('option', { value: u }, u));
  } catch {
    // The unit list is a convenience; the report works without it.
  }
}

async function start() {
  const user = await requireUser(['supervisor']);
  await loadModel();
  $('top').replaceWith(header(user));
  const now = Date.now();
  $('from').value = isoDate(now - 30 * DAY_MS);
  $('to').value = isoDate(now);
  $('range').addEventListener('submit', (ev) => {
    ev.preventDefault();
    loadIndicators();
  });
  await fillUnits();
  await loadIndicators();
  const hash = location.hash.slice(1);
  const tab = tabs.find((t) => t.getAttribute('aria-controls') === hash);
  if (tab && hash !== 'indicadores') selectTab(tab, false);
}

start().catch((err) => {
  if (err && err.message === 'role') return;
  show(humanError(err), 'error');
});
