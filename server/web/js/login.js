// The login page: signs in with the session cookie and goes to the page of the role
// (or back to the page that sent the person here).
import { login, homeFor, humanError } from './api.js';

const form = document.getElementById('login');
const message = document.getElementById('message');

function fieldError(id, text) {
  const p = document.getElementById(`${id}-error`);
  p.textContent = text;
  p.hidden = !text;
  document.getElementById(id).setAttribute('aria-invalid', text ? 'true' : 'false');
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const name = form.name.value.trim();
  const password = form.password.value;
  fieldError('name', name ? '' : 'Escriba su usuario.');
  fieldError('password', password ? '' : 'Escriba su contraseña.');
  if (!name || !password) return;
  message.hidden = true;
  try {
    const user = await login(name, password);
    const next = new URLSearchParams(location.search).get('next');
    location.href = next && next.startsWith('/web/') ? next : homeFor(user.role);
  } catch (err) {
    message.textContent = err.code === 'unauthenticated'
      ? 'Usuario o contraseña incorrectos.'
      : humanError(err);
    message.className = 'notice error';
    message.setAttribute('role', 'alert');
    message.hidden = false;
    form.password.select();
  }
});
