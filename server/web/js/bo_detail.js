// The Casos page: the selected case's detail. Summary of its fields, the step trail, the
// Anexo 2 checklist, the OTs, and the actions that fit the case's status and the person's
// role. Every action re-renders from the server's answer; a refusal is shown in words,
// next to the field when the server's message names one.
import { api, el, humanError, fmtMoney, fmtDateTime, notice } from './api.js';
import { statusLabel, modalityLabel } from './model.js';
import {
  CAN, FINAL, OT_KINDS, PRODUCTS, STEP_FIELDS, routeRule, blockerEs, stepLabel, bytes, localToMs, memberOf,
} from './bo_model.js';

const $ = (id) => document.getElementById(id);
let users = null; // GET /v1/users, once

async function usersWithRole(role) {
  if (!users) users = (await api('GET', '/v1/users')).users;
  return users.filter((u) => u.role === role && !u.disabled);
}

const productLabel = (p) => (PRODUCTS.find(([code]) => code === p) || [p, p])[1];
const DEFAULT_REJECT = 'No es posible realizar el traslado';

/** A label + value row of the summary (left out when the value is empty). */
function item(label, value) {
  if (value === undefined || value === null || value === '') return null;
  return el('div', { class: 'bo-kv' }, el('dt', {}, label), el('dd', {}, value));
}

function summary(c) {
  const f = c.fields;
  const place = (p) => [f[`${p}_address`], f[`${p}_neighborhood`], f[`${p}_reference`] && `Ref.: ${f[`${p}_reference`]}`,
    f[`${p}_geo_location`] && `Geo: ${f[`${p}_geo_location`]}`].filter(Boolean).join(' · ');
  return el('dl', { class: 'bo-summary' },
    item('Modalidad', modalityLabel(c.modality)),
    item('Estado', statusLabel('case', c.status)),
    item('Contrato', f.contract),
    item('Cliente', f.customer_name),
    item('Tipo de persona', f.person_type === 'legal' ? 'Jurídica' : 'Natural'),
    item('CI o NIT', f.tax_id),
    item('Celular de referencia', f.reference_cell),
    item('Horario de contacto', f.contact_hours),
    item('Productos', (f.products || []).map(productLabel).join(', ')),
    item('Costo de traslado', f.fee !== undefined ? fmtMoney(f.fee) : ''),
    item('Dirección anterior', place('old')),
    item('Dirección nueva', place('new')),
    item('Abierto', fmtDateTime(f.opened_at)),
    item('Unidad', f.unit),
    item('Derivado a', c.routed_to_name),
    item('Cliente contactado', f.contacted_at ? fmtDateTime(f.contacted_at) : ''),
    item('Factibilidad técnica', f.feasible === undefined ? '' : `${f.feasible ? 'Sí' : 'No'}${f.feasibility_note ? ` — ${f.feasibility_note}` : ''}`),
    item('Contrato nuevo', f.new_contract),
    item('Plan comercial', f.commercial_plan),
    item('GPON dato técnico', f.gpon_data),
    item('Caja GIS', f.gis_box),
    item('Excepción de requisitos', f.requirements_override),
    item('Motivo de rechazo', f.rejection_reason),
    item('Motivo de anulación', f.cancel_reason),
    item('Observaciones', f.observations));
}

function stepTrail(c) {
  if (!c.steps.length) return el('p', { class: 'muted' }, 'Sin pasos registrados.');
  return el('div', { class: 'table-wrap' }, el('table', { class: 'data', id: 'steps-table' },
    el('thead', {}, el('tr', {}, ['Paso', 'Descripción', 'Quién', 'Cuándo'].map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, c.steps.map((s) => el('tr', {},
      el('td', { class: 'mono' }, s.code),
      el('td', {}, s.label || stepLabel(s.code)),
      el('td', {}, s.by || '—'),
      el('td', { class: 'nowrap' }, fmtDateTime(s.at)))))));
}

/** A field of an action form: label, control, error line. */
function field(name, label, control, hint) {
  control.id = `a-${name}`;
  control.setAttribute('aria-describedby', `a-${name}-error`);
  return el('div', { class: 'bo-field' },
    el('label', { for: `a-${name}` }, label, hint ? el('span', { class: 'muted' }, ` ${hint}`) : null),
    control,
    el('p', { class: 'field-error', id: `a-${name}-error`, hidden: true }));
}

function setFieldError(name, text) {
  const p = $(`a-${name}-error`);
  if (!p) return false;
  p.textContent = text;
  p.hidden = !text;
  const input = $(`a-${name}`);
  if (input) input.setAttribute('aria-invalid', text ? 'true' : 'false');
  return true;
}

function textInput(name, { value = '', max, rows } = {}) {
  const input = rows ? el('textarea', { name, rows }) : el('input', { name, autocomplete: 'off' });
  input.value = value;
  if (max) input.dataset.max = max;
  return input;
}

/** Renders case `c` into #detail. opts: { onChange, flash: [text, kind] }. */
export function showDetail(c, user, opts = {}) {
  const root = $('detail');
  root.hidden = false;
  root.dataset.case = c.id;
  root.dataset.status = c.status;
  const msgNode = el('p', { class: 'notice', id: 'detail-message', hidden: true });
  const say = notice(msgNode);
  const panel = el('div', { id: 'action-panel', class: 'bo-panel', hidden: true });
  const role = user.role;
  const st = c.status;
  const final = FINAL.includes(st);
  const rerender = (next, text) => {
    showDetail(next, user, { ...opts, flash: [text, 'ok'] });
    $('detail-message').focus();
    if (opts.onChange) opts.onChange(next);
  };

  /**
   * Runs an action. `path` relative to the case unless it starts with '/'. When the
   * answer is not the case detail, the case is fetched again.
   */
  async function act(method, path, body, okText, { button, returnsCase = true } = {}) {
    if (button) button.disabled = true;
    for (const p of panel.querySelectorAll('.field-error')) {
      setFieldError(p.id.slice(2, -6), '');
    }
    try {
      const url = path.startsWith('/') ? path : `/v1/cases/${c.id}/${path}`;
      let r = await api(method, url, body);
      if (!returnsCase) r = await api('GET', `/v1/cases/${c.id}`);
      rerender(r, okText);
    } catch (err) {
      const sub = /^fields\.([a-z_]+)/.exec(err.message || '');
      const member = sub ? sub[1] : memberOf(err.message);
      if (member && setFieldError(member, humanError(err))) {
        $(`a-${member}`).focus();
      } else {
        say(humanError(err), 'error');
        msgNode.focus();
      }
      if (button) button.disabled = false;
    }
  }

  /** Opens an action's form in the panel. */
  function openPanel(title, children, submitLabel, onSubmit) {
    const form = el('form', { class: 'bo-action-form', novalidate: true },
      el('h3', { id: 'action-title', tabindex: '-1' }, title),
      children,
      el('div', { class: 'row bo-actions' },
        el('button', { type: 'submit', class: 'btn btn-primary' }, submitLabel),
        el('button', { type: 'button', class: 'btn', onclick: () => { panel.hidden = true; panel.replaceChildren(); } }, 'Cerrar')));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      // Client-side checks: required and byte limits, next to the field.
      let bad = null;
      for (const input of form.querySelectorAll('input[name], textarea[name], select[name]')) {
        const name = input.name;
        const v = (input.value || '').trim();
        let text = '';
        if (input.required && !v) text = 'Este dato es obligatorio.';
        else if (input.dataset.max && bytes(v) > Number(input.dataset.max)) text = `Máximo ${input.dataset.max} caracteres.`;
        if (input.type !== 'radio') setFieldError(name, text);
        if (text && !bad) bad = input;
      }
      if (bad) { bad.focus(); return; }
      onSubmit(form, form.querySelector('button[type="submit"]'));
    });
    panel.replaceChildren(form);
    panel.hidden = false;
    $('action-title').focus();
  }

  // ---- actions ---------------------------------------------------------------------

  const actions = [];
  const add = (label, handler, cls = 'btn') => actions.push(
    el('button', { type: 'button', class: cls, onclick: (ev) => handler(ev.currentTarget) }, label));

  const rule = routeRule(c.modality);
  if (['opened', 'routed'].includes(st) && rule.by.includes(role)) {
    add(st === 'routed' ? 'Derivar de nuevo' : 'Derivar', async () => {
      let people = [];
      try { people = await usersWithRole(rule.target); } catch (err) { say(humanError(err), 'error'); return; }
      const sel = el('select', { name: 'to', required: true },
        el('option', { value: '' }, '— Elija —'),
        people.map((u) => el('option', { value: u.name }, `${u.full_name} (${u.name})`)));
      openPanel(`Derivar a un ${rule.targetLabel}`, field('to', rule.targetLabel, sel), 'Derivar',
        (form, b) => act('POST', 'route', { to: form.to.value }, `Caso derivado a ${sel.selectedOptions[0].textContent}.`, { button: b }));
    }, 'btn btn-primary');
  }
  if (c.modality <= 2 && ['routed', 'in_review'].includes(st) && CAN.review.includes(role)) {
    add('Contacto realizado', (b) => act('POST', 'contact', {}, 'Contacto con el cliente registrado.', { button: b }));
  }
  if (['routed', 'in_review'].includes(st) && CAN.review.includes(role)) {
    add('Factibilidad técnica', () => {
      const yes = el('input', { type: 'radio', name: 'feasible', value: 'yes', id: 'a-feasible-yes', checked: c.fields.feasible !== false });
      const no = el('input', { type: 'radio', name: 'feasible', value: 'no', id: 'a-feasible-no', checked: c.fields.feasible === false });
      openPanel('Factibilidad técnica', [
        el('fieldset', { class: 'bo-radios' }, el('legend', {}, '¿Es factible el traslado?'),
          el('label', { class: 'bo-check', for: 'a-feasible-yes' }, yes, ' Sí, es factible'),
          el('label', { class: 'bo-check', for: 'a-feasible-no' }, no, ' No es factible')),
        field('note', 'Nota', textInput('note', { value: c.fields.feasibility_note || '', max: 500 }), '(opcional)'),
      ], 'Guardar factibilidad', (form, b) => {
        const body = { feasible: yes.checked };
        if (form.note.value.trim()) body.note = form.note.value.trim();
        act('POST', 'feasibility', body, `Factibilidad registrada: ${yes.checked ? 'sí' : 'no'}.`, { button: b });
      });
    });
  }
  if (st === 'in_review' && CAN.review.includes(role)) {
    add('Aprobar', (b) => act('POST', 'approve', {}, 'Caso aprobado.', { button: b }), 'btn btn-primary');
  }
  if (['routed', 'in_review'].includes(st) && CAN.review.includes(role)) {
    add('Rechazar', () => openPanel('Rechazar el caso',
      field('reason', 'Motivo (se informa al cliente)', Object.assign(textInput('reason', { value: DEFAULT_REJECT, max: 500, rows: 2 }), { required: true })),
      'Rechazar', (form, b) => act('POST', 'reject', { reason: form.reason.value.trim() }, 'Caso rechazado; el cliente queda informado.', { button: b })),
    'btn btn-danger');
  }
  const mySteps = (c.template || []).filter((s) => s.role !== 'technician' && (role === 'supervisor' || s.role === role));
  if (st !== 'opened' && !final && mySteps.length) {
    add('Registrar paso', () => {
      const sel = el('select', { name: 'step', required: true },
        el('option', { value: '' }, '— Elija —'),
        mySteps.map((s) => el('option', { value: s.code }, `${s.code} · ${s.label}`)));
      const extra = STEP_FIELDS.filter(([, , , who]) => who.includes(role)).map(([name, label, max]) =>
        field(name, label, textInput(name, { value: c.fields[name] || '', max, rows: name === 'observations' ? 2 : 0 }), '(opcional)'));
      openPanel('Registrar un paso del procedimiento', [field('step', 'Paso', sel), ...extra], 'Registrar paso', (form, b) => {
        const fields = {};
        for (const [name] of STEP_FIELDS) {
          if (!form[name]) continue;
          const v = form[name].value.trim();
          if (v && v !== (c.fields[name] || '')) fields[name] = v;
        }
        const body = { step: form.step.value };
        if (Object.keys(fields).length) body.fields = fields;
        act('POST', 'steps', body, `Paso ${form.step.value} registrado.`, { button: b });
      });
    });
  }
  if (role === 'supervisor' && ['opened', 'routed', 'in_review', 'approved'].includes(st)) {
    add('Excepción de requisitos', () => openPanel('Excepción de requisitos (Anexo 2)',
      field('reason', 'Motivo de la excepción', Object.assign(textInput('reason', { value: c.fields.requirements_override || '', max: 500, rows: 2 }), { required: true })),
      'Registrar excepción', (form, b) => act('POST', 'override', { reason: form.reason.value.trim() }, 'Excepción de requisitos registrada.', { button: b })));
  }
  if (st === 'approved' && CAN.dispatch.includes(role)) {
    add('Emitir OTs', async () => {
      let techs = [];
      try { techs = await usersWithRole('technician'); } catch (err) { say(humanError(err), 'error'); return; }
      const sel = el('select', { name: 'technician' },
        el('option', { value: '' }, 'Sin asignar todavía'),
        techs.map((u) => el('option', { value: u.name }, `${u.full_name} (${u.name})`)));
      openPanel('Emitir las OTs del caso', el('div', { class: 'form-grid' },
        field('technician', 'Técnico', sel),
        field('zone', 'Zona', textInput('zone', { max: 64 }), '(opcional)'),
        field('window_start', 'Desde', el('input', { type: 'datetime-local', name: 'window_start' }), '(opcional)'),
        field('window_end', 'Hasta', el('input', { type: 'datetime-local', name: 'window_end' }), '(opcional)')),
      'Emitir OTs', (form, b) => {
        const body = {};
        if (form.technician.value) body.technician = form.technician.value;
        if (form.zone.value.trim()) body.zone = form.zone.value.trim();
        const ws = localToMs(form.window_start.value);
        const we = localToMs(form.window_end.value);
        if (ws) body.window_start = ws;
        if (we) body.window_end = we;
        if (ws && we && we <= ws) { setFieldError('window_end', 'Debe ser posterior a «Desde».'); return; }
        act('POST', 'ots', body, 'OTs emitidas.', { button: b });
      });
    }, 'btn btn-primary');
  }
  if (!final && CAN.cancel.includes(role)) {
    add('Anular caso', () => openPanel('Anular el caso',
      [el('p', { class: 'muted' }, 'Las OTs abiertas del caso también se anulan.'),
        field('reason', 'Motivo de la anulación', Object.assign(textInput('reason', { max: 500, rows: 2 }), { required: true }))],
      'Anular caso', (form, b) => act('POST', 'cancel', { reason: form.reason.value.trim() }, 'Caso anulado.', { button: b })),
    'btn btn-danger');
  }

  // ---- requirements (Anexo 2) ---------------------------------------------------------

  const reqEditable = ['routed', 'in_review', 'approved'].includes(st) && CAN.review.includes(role);
  const reqForm = el('form', { id: 'requirements', novalidate: true },
    el('fieldset', { class: 'bo-reqs' },
      el('legend', {}, `Requisitos (Anexo 2) · ${c.requirements.filter((r) => r.met).length} de ${c.requirements.length}`,
        c.requirements_complete ? el('span', { class: 'badge ok' }, ' Completo') : el('span', { class: 'badge warn' }, ' Incompleto')),
      c.requirements.map((r) => el('label', { class: 'bo-check bo-req' },
        el('input', { type: 'checkbox', name: 'req', value: r.code, checked: r.met, disabled: !reqEditable }),
        ` ${r.label}`))),
    reqEditable ? el('div', { class: 'row bo-actions' },
      el('button', { type: 'button', class: 'btn small', onclick: () => { for (const i of reqForm.querySelectorAll('input[name="req"]')) i.checked = true; } }, 'Marcar todos'),
      el('button', { type: 'submit', class: 'btn btn-primary' }, 'Guardar requisitos')) : null,
    c.fields.requirements_override ? el('p', { class: 'muted' }, `Excepción del supervisor: ${c.fields.requirements_override}`) : null);
  reqForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const boxes = [...reqForm.querySelectorAll('input[name="req"]')];
    const met = boxes.filter((b) => b.checked).map((b) => b.value);
    const unmet = boxes.filter((b) => !b.checked).map((b) => b.value);
    const body = {};
    if (met.length) body.met = met;
    if (unmet.length) body.unmet = unmet;
    act('POST', 'requirements', body, `Requisitos guardados (${met.length} de ${boxes.length}).`,
      { button: reqForm.querySelector('button[type="submit"]') });
  });

  // ---- OTs -----------------------------------------------------------------------------

  const canAssign = CAN.dispatch.includes(role);
  const otRows = c.ots.map((o) => {
    const assignable = canAssign && ['issued', 'assigned', 'failed'].includes(o.status);
    let control = null;
    if (assignable) {
      const sel = el('select', { 'aria-label': `Técnico para la OT ${OT_KINDS[o.kind] || o.kind}`, class: 'bo-inline-select' },
        el('option', { value: '' }, '— Técnico —'));
      usersWithRole('technician').then((techs) => sel.append(...techs.map((u) =>
        el('option', { value: u.name }, u.full_name)))).catch(() => {});
      const verb = o.status === 'issued' ? 'Asignar' : 'Reasignar';
      control = el('div', { class: 'row' }, sel, el('button', {
        type: 'button', class: 'btn small', 'aria-label': `${verb} la OT ${OT_KINDS[o.kind] || o.kind}`,
        onclick: (ev) => {
          if (!sel.value) { say('Elija el técnico de la OT.', 'error'); sel.focus(); return; }
          act('POST', `/v1/ots/${o.id}/assign`, { technician: sel.value },
            `OT ${OT_KINDS[o.kind] || o.kind} asignada a ${sel.selectedOptions[0].textContent}.`,
            { button: ev.currentTarget, returnsCase: false });
        },
      }, verb));
    }
    return el('tr', { 'data-ot': o.id, 'data-kind': o.kind },
      el('td', {}, OT_KINDS[o.kind] || o.kind, el('div', { class: 'muted mono small' }, o.kind)),
      el('td', {}, statusLabel('work_order', o.status)),
      el('td', {}, o.technician || '—'),
      el('td', { class: 'mono muted' }, o.id.slice(0, 8)),
      canAssign ? el('td', {}, control || '—') : null);
  });
  const ots = c.ots.length
    ? el('div', { class: 'table-wrap' }, el('table', { class: 'data', id: 'ots-table' },
      el('thead', {}, el('tr', {}, ['OT', 'Estado', 'Técnico', 'Id', canAssign ? 'Asignar' : null]
        .filter(Boolean).map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, otRows)))
    : el('p', { class: 'muted' }, 'Todavía no se emitieron OTs.');

  const blockers = (c.closing_blockers || []).length
    ? el('div', {}, el('h3', {}, 'Falta para cerrar el caso'),
      el('ul', { class: 'bo-blockers' }, c.closing_blockers.map((b) => el('li', {}, blockerEs(b)))))
    : null;

  root.replaceChildren(
    el('div', { class: 'row bo-head' },
      el('h2', { id: 'detail-title', tabindex: '-1' }, `Caso ${c.fields.contract} · ${c.fields.customer_name}`),
      el('span', {}, el('span', { class: 'badge' }, statusLabel('case', st)))),
    msgNode,
    actions.length
      ? el('div', { class: 'row bo-toolbar', role: 'group', 'aria-label': 'Acciones del caso' }, actions)
      : el('p', { class: 'muted' }, final
        ? 'El caso está en un estado final: no admite más acciones.'
        : 'Su rol no tiene acciones para el caso en este estado.'),
    panel,
    el('div', { class: 'bo-detail-grid' },
      el('div', {}, el('h3', {}, 'Datos del caso'), summary(c)),
      el('div', {}, el('h3', {}, 'Requisitos'), reqForm)),
    el('h3', {}, 'Pasos del procedimiento'),
    stepTrail(c),
    el('h3', {}, 'Órdenes de trabajo (OT)'),
    ots,
    blockers || '');
  msgNode.tabIndex = -1;
  if (opts.flash && opts.flash[0]) say(opts.flash[0], opts.flash[1]);
}
