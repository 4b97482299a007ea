// Browser tests of otsync's pages (issue: web pages tested in a real browser).
//
//   node tests/browser/run.mjs SERVER_BIN ADMIN_BIN WEB_DIR SCREENSHOT_DIR [FLOW...]
//
// Starts otsync-server with its demo data on an ephemeral loopback port in a temporary
// data folder, launches Debian's chromium through playwright-core, and runs the flows in
// order (flows/*.mjs; each exports `name` and `run(ctx)`). Every step prints a line; a
// failing step saves a screenshot FAILED-<flow>.png, stops the run and exits 1.
// Screenshots of each flow's key screens go to SCREENSHOT_DIR for review.
import { chromium } from 'playwright-core';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [serverBin, adminBin, webDir, shotDir, ...only] = process.argv.slice(2);
if (!serverBin || !adminBin || !webDir || !shotDir) {
  console.error('usage: run.mjs SERVER_BIN ADMIN_BIN WEB_DIR SCREENSHOT_DIR [FLOW...]');
  process.exit(2);
}
// In this order: the supervisor reads the indicators, the warehouse scans with a menu or
// a note focused and fails to send (the handover stays pending), the warehouse receives
// it, the back office opens a case and settles the warehouse's discrepancy (which closes
// a case), and the supervisor sees the indicators move.
const order = ['supervisor_before', 'almacen_scanner', 'almacen', 'backoffice', 'supervisor_after'];
const flows = [];
for (const name of order.filter((n) => only.length === 0 || only.includes(n))) {
  flows.push(await import(`./flows/${name}.mjs`));
}

const dataDir = mkdtempSync(join(tmpdir(), 'otsync-browser-'));
mkdirSync(shotDir, { recursive: true });

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(serverBin, [
      '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--demo', '--web-dir', webDir,
      '--pwhash-opslimit', '1', '--pwhash-memlimit', '8192', '--threads', '2',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 60000);
    child.stderr.on('data', (d) => {
      err += d.toString();
      const m = err.match(/listening on http:\/\/127\.0\.0\.1:(\d+) /);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]), log: () => err });
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited ${code}: ${err}`)));
  });
}

/** Calls the API as a demo user (for setup and checks outside the page). */
async function apiAs(base, name) {
  const r = await fetch(`${base}/v1/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name, password: 'otsync-demo' }),
  });
  if (!r.ok) throw new Error(`login ${name}: ${r.status} ${await r.text()}`);
  const { token } = await r.json();
  return async (method, path, body) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${name} ${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
}

let server;
let browser;
let failed = false;
try {
  server = await startServer();
  const base = `http://127.0.0.1:${server.port}`;
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'],
  });
  const shared = {}; // what one flow leaves for a later one (e.g. indicators before)
  for (const flow of flows) {
    const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'es-BO' });
    const page = await context.newPage();
    const consoleErrors = [];
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    page.on('console', (m) => {
      // A refusal the page shows in words (4xx) is expected; a script error is not.
      if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) {
        consoleErrors.push(m.text());
      }
    });
    let stepName = '';
    const ctx = {
      base, page, context, shared,
      admin: (...args) => execFileSync(adminBin, ['--data-dir', dataDir, ...args]).toString(),
      api: (name) => apiAs(base, name),
      step: (name) => { stepName = name; console.log(`[${flow.name}] ${name}`); },
      shot: async (name, p = page) => {
        await p.screenshot({ path: join(shotDir, `${flow.name}-${name}.png`), fullPage: true });
      },
      /** Signs in through the login page. */
      login: async (name, p = page) => {
        await p.goto(`${base}/web/index.html`);
        await p.getByLabel('Usuario').fill(name);
        await p.getByLabel('Contraseña').fill('otsync-demo');
        await p.getByRole('button', { name: 'Ingresar' }).click();
        await p.waitForURL((u) => !u.pathname.endsWith('/index.html'));
      },
      consoleErrors,
    };
    try {
      await flow.run(ctx);
      if (consoleErrors.length) {
        throw new Error(`errors in the page's console: ${consoleErrors.join(' | ')}`);
      }
      console.log(`[${flow.name}] ok`);
    } catch (e) {
      failed = true;
      console.error(`[${flow.name}] FAILED at "${stepName}": ${e.stack || e}`);
      await page.screenshot({ path: join(shotDir, `FAILED-${flow.name}.png`), fullPage: true }).catch(() => {});
      break;
    } finally {
      await context.close();
    }
  }
} catch (e) {
  failed = true;
  console.error(`browser tests: ${e.stack || e}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  if (server) server.child.kill('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
}
console.log(failed ? 'browser tests: FAILED' : `browser tests: ${flows.length} flows passed; screenshots in ${shotDir}`);
process.exit(failed ? 1 : 0);
