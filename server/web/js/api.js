// Shared by every page: calls to the otsync API with the session cookie and the CSRF
// token, errors in words a clerk understands, small DOM and format helpers, the header.
// Plain ES module, no build step, nothing from outside this server.

/** An answer of the API that is not 2xx, or the network failing. */
export class ApiError extends Error {
  constructor(status, code, message, field, problems) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || '';
    this.problems = problems || [];
  }
}

const WORDS = {
  unauthenticated: 'Su sesión terminó o no es válida. Ingrese de nuevo.',
  permission_denied: 'Su rol no permite esta acción.',
  not_found: 'No se encontró el registro pedido.',
  conflict: 'Otra persona ya registró este cambio. Actualice la página.',
  rate_limited: 'Demasiados intentos fallidos. Espere unos minutos e intente de nuevo.',
  requirements_incomplete: 'Faltan requisitos del Anexo 2 (o la excepción del supervisor).',
  invalid_transition: 'El caso u OT no está en el paso que permite esta acción.',
  missing_field: 'Falta completar un dato obligatorio.',
  invalid_value: 'Un dato no es válido.',
  out_of_range: 'Un número está fuera del rango permitido.',
  too_large: 'Un dato es demasiado largo.',
  wrong_type: 'Un dato tiene un formato incorrecto.',
  unknown_field: 'La página envió un dato que el servidor no conoce.',
  invalid_utf8: 'Un texto tiene caracteres no válidos.',
  malformed: 'La página envió datos dañados.',
  internal: 'El servidor no pudo completar la acción. Intente de nuevo en un momento.',
  network: 'Sin conexión con el servidor. Revise la red e intente de nuevo.',
};

/** The error in words for people, with the server's detail after it. */
export function humanError(err) {
  if (!(err instanceof ApiError)) {
    return WORDS.internal;
  }
  const words = WORDS[err.code] || WORDS.invalid_value;
  return err.message && err.code !== 'network' && err.code !== 'internal'
    ? `${words} (${err.message})`
    : words;
}

let csrf = sessionStorage.getItem('otsync.csrf') || '';

/**
 * Calls the API. `body` is sent as JSON (or as is when `type` is given). Returns the
 * parsed JSON (or text for non-JSON answers). Throws ApiError. A 401 sends the person to
 * the login page, unless `noRedirect`.
 */
export async function api(method, path, body, { type, noRedirect } = {}) {
  const headers = {};
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = type || 'application/json';
    payload = type ? body : JSON.stringify(body);
  }
  if (method !== 'GET' && csrf) {
    headers['X-CSRF-Token'] = csrf;
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  } catch (e) {
    throw new ApiError(0, 'network', String(e));
  }
  const ct = res.headers.get('Content-Type') || '';
  const data = ct.startsWith('application/json') ? await res.json().catch(() => null) : await res.text();
  if (!res.ok) {
    const e = data && data.error ? data.error : { code: 'internal', message: '' };
    const err = new ApiError(res.status, e.code, e.message, e.field, e.problems);
    if (res.status === 401 && !noRedirect) {
      goLogin();
    }
    throw err;
  }
  return data;
}

export function goLogin() {
  const next = location.pathname + location.search;
  location.href = '/web/index.html?next=' + encodeURIComponent(next);
}

/** Signs in; keeps the CSRF token for this tab. Returns the user. */
export async function login(name, password) {
  const r = await api('POST', '/v1/auth/login', { name, password }, { noRedirect: true });
  csrf = r.csrf;
  sessionStorage.setItem('otsync.csrf', csrf);
  return r.user;
}

export async function logout() {
  try {
    await api('POST', '/v1/auth/logout', undefined, { noRedirect: true });
  } finally {
    sessionStorage.removeItem('otsync.csrf');
    location.href = '/web/index.html';
  }
}

/** The signed-in user, or a trip to the login page. `roles`: who may see this page. */
export async function requireUser(roles) {
  const s = await api('GET', '/v1/auth/session');
  csrf = s.csrf;
  sessionStorage.setItem('otsync.csrf', csrf);
  if (roles && !roles.includes(s.user.role)) {
    document.body.replaceChildren(
      el('main', { class: 'page' },
        el('p', { class: 'alert', role: 'alert' },
          `Su rol (${s.user.role_label}) no tiene acceso a esta página.`),
        el('a', { href: homeFor(s.user.role) }, 'Ir a mi página')));
    throw new Error('role');
  }
  return s.user;
}

/** The page a role starts on. */
export function homeFor(role) {
  if (role === 'warehouse_clerk') return '/web/almacen.html';
  if (role === 'supervisor') return '/web/supervisor.html';
  return '/web/backoffice.html';
}

/** The header: the product, the pages this role may open, who is signed in, logout. */
export function header(user) {
  const links = [];
  const office = user.role !== 'technician';
  if (['warehouse_clerk', 'back_office', 'supervisor'].includes(user.role)) {
    links.push(['/web/almacen.html', 'Almacén']);
  }
  if (office && user.role !== 'warehouse_clerk') {
    links.push(['/web/backoffice.html', 'Casos']);
  }
  if (user.role === 'supervisor') {
    links.push(['/web/supervisor.html', 'Supervisión']);
  }
  const nav = el('nav', { 'aria-label': 'Páginas' },
    ...links.map(([href, label]) => el('a', {
      href, 'aria-current': location.pathname === href ? 'page' : null,
    }, label)));
  const out = el('button', { type: 'button', class: 'btn btn-link', id: 'logout' }, 'Salir');
  out.addEventListener('click', logout);
  return el('header', { class: 'top' },
    el('span', { class: 'brand' }, 'otsync · Traslados BOOT'),
    nav,
    el('span', { class: 'who' }, `${user.full_name || user.name} — ${user.role_label}`),
    out);
}

/** el('tag', {attr: value, onclick: fn}, ...children): a small DOM builder. */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      node.addEventListener(k.slice(2), v);
    } else if (v === true) {
      node.setAttribute(k, '');
    } else {
      node.setAttribute(k, String(v));
    }
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const TZ_OFFSET_MIN = -240; // the server's report offset (Bolivia)

function local(ms) {
  return new Date(ms + TZ_OFFSET_MIN * 60000);
}
const pad = (n) => String(n).padStart(2, '0');

/** dd/mm/yyyy HH:MM in Bolivia's time. */
export function fmtDateTime(ms) {
  if (!ms) return '—';
  const d = local(ms);
  return `${pad(d.getUTCDate())}/${pad(d.getUTCMonth() + 1)}/${d.getUTCFullYear()} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

/** yyyy-mm-dd (the API's date format) of a time, in Bolivia's time. */
export function isoDate(ms) {
  const d = local(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

/** Bs 146,28 from centavos. */
export function fmtMoney(centavos) {
  const bs = Math.floor(centavos / 100);
  return `Bs ${bs.toLocaleString('es-BO')},${pad(centavos % 100)}`;
}

/** Hours as "3 h" or "2 d 4 h". */
export function fmtAge(hours) {
  return hours >= 24 ? `${Math.floor(hours / 24)} d ${hours % 24} h` : `${hours} h`;
}

/** A message area: `show(text, kind)` with kind 'ok' | 'error'. */
export function notice(node) {
  return (text, kind = 'ok') => {
    node.textContent = text;
    node.className = `notice ${kind}`;
    node.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    node.hidden = !text;
  };
}
