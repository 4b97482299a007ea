// The barcode scanner on the Almacén page: the scanner is a keyboard
// that types the serial and Enter into whatever has focus, so a scan made while a result
// menu or a note has focus must still reach the scan field and change nothing else; and a
// receipt whose sending fails says so next to «Confirmar recepción». Works on Juan
// Mamani's handover before the `almacen` flow receives it, and leaves it pending: every
// scenario opens it afresh (no draft), and the failing sends never reach the server.

import { check, visible, text, scan } from '../warehouse.mjs';

export const name = 'almacen_scanner';

/**
 * Types a serial and Enter at a scanner's pace: a key every 8 ms by the events' own
 * clock (CDP's timestamps), however busy this machine is. page.keyboard.type's keys are
 * as far apart as the test's round trips, which on a loaded machine is a person's pace.
 */
async function scannerBurst(ctx, serial) {
  const cdp = await ctx.context.newCDPSession(ctx.page);
  const t0 = Date.now() / 1000;
  const keys = [...serial].map((ch) => ({ key: ch, text: ch }));
  keys.push({ key: 'Enter', code: 'Enter', windowsVirtualKeyCode: 13, text: '\r' });
  for (const [i, k] of keys.entries()) {
    const at = t0 + i * 0.008;
    await cdp.send('Input.dispatchKeyEvent', { type: 'keyDown', timestamp: at, ...k });
    await cdp.send('Input.dispatchKeyEvent', {
      type: 'keyUp', timestamp: at + 0.002, key: k.key, code: k.code, windowsVirtualKeyCode: k.windowsVirtualKeyCode,
    });
  }
  await cdp.detach();
}

/** What has focus: its id, or its tag when it has none ('BODY' when nothing has). */
async function focused(page) {
  return page.evaluate(() => {
    const a = document.activeElement;
    return !a ? 'none' : a.id || a.tagName;
  });
}

/** The words after a row's result menu, e.g. "Recibido · escaneado". */
async function rowState(page, serial) {
  return text(page.locator('#rows tr', { hasText: serial }).locator('.alm-state'));
}

/**
 * Drops the console lines Chromium writes for a favicon 404 on the login page and for
 * the receipts this flow makes fail on purpose (they are not the page's errors).
 */
function ignoreExpected(ctx) {
  const texts = [];
  ctx.page.on('console', (m) => {
    const url = m.location().url || '';
    if (m.type() === 'error' && (/\/favicon\.ico$/.test(url) || /\/receipt$/.test(url))) texts.push(m.text());
  });
  return () => {
    for (const t of texts) {
      const i = ctx.consoleErrors.indexOf(t);
      if (i >= 0) ctx.consoleErrors.splice(i, 1);
    }
  };
}

/** Signs in once as almacen.demo; returns the id of Juan Mamani's pending handover. */
async function signIn(ctx) {
  const { page } = ctx;
  await ctx.login('almacen.demo');
  check(page.url().includes('/web/almacen.html'), `after login the page is ${page.url()}`);
  await page.locator('#list[aria-busy="false"]').waitFor({ timeout: 10000 });
  const row = page.locator('#handovers tbody tr', { hasText: 'Juan Mamani' });
  await visible(row, 'the pending list does not show Juan Mamani\'s handover');
  return row.getAttribute('data-id');
}

/** Opens Juan Mamani's handover from the list with no draft: every row "Sin confirmar". */
async function openFresh(ctx) {
  const { page } = ctx;
  await page.evaluate(() => {
    for (const k of Object.keys(sessionStorage)) {
      if (k.startsWith('otsync.almacen.')) sessionStorage.removeItem(k);
    }
  });
  await page.goto(`${ctx.base}/web/almacen.html`);
  await page.locator('#list[aria-busy="false"]').waitFor({ timeout: 10000 });
  const row = page.locator('#handovers tbody tr', { hasText: 'Juan Mamani' });
  await row.getByRole('button', { name: /^Recibir/ }).click();
  await visible(page.getByRole('heading', { name: 'Entrega de Juan Mamani' }), 'the handover did not open');
  await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'scan',
    null, { timeout: 5000 }).catch(() => { throw new Error('the scan input is not focused after opening'); });
  for (const s of ['HWTC7F302888', 'PWR-12V-2888', 'RMT-2888']) {
    check(await rowState(page, s) === 'Sin confirmar', `row ${s} is not "Sin confirmar" on a fresh open`);
  }
}

/** (a) A scan while a result menu has focus goes to the scan field; the menu keeps its result. */
export async function scanWithMenuFocused(ctx) {
  const { page } = ctx;
  const live = page.locator('#scan-live');
  ctx.step('(a) with the "Resultado de PWR-12V-2888" menu set to Faltante and focused, RMT-2888 is scanned');
  await openFresh(ctx);
  const pwr = page.getByLabel('Resultado de PWR-12V-2888');
  await pwr.focus();
  await pwr.selectOption('missing');
  check(await rowState(page, 'PWR-12V-2888') === 'Faltante', 'PWR-12V-2888 does not show Faltante');
  await pwr.focus(); // the clerk's last touch was this menu: it still has focus
  check(await focused(page) === 'row-1-result', `the menu is not focused but ${await focused(page)}`);
  await scan(page, 'RMT-2888');
  const pwrValue = await pwr.inputValue();
  check(pwrValue === 'missing',
    `scanning with the menu focused changed PWR-12V-2888 to '${pwrValue}' ("${await rowState(page, 'PWR-12V-2888')}"), expected it to stay 'missing'`);
  const rmt = await rowState(page, 'RMT-2888');
  check(rmt === 'Recibido · escaneado', `RMT-2888 shows "${rmt}" after its scan, expected "Recibido · escaneado"`);
  check(await page.getByLabel('Resultado de RMT-2888').inputValue() === 'received', 'RMT-2888 result is not received');
  await visible(live.getByText('RMT-2888 recibido (1 de 3)'), `the live region says "${await text(live)}"`);
  check(await page.getByLabel('Escanear código').inputValue() === '', 'the scan input was not cleared');
  check(await focused(page) === 'scan', `after the scan focus is on ${await focused(page)}, not the scan input`);

  ctx.step('(a) a result chosen from the menu sends focus back to the scan field');
  const hw = page.getByLabel('Resultado de HWTC7F302888');
  await hw.selectOption('damaged_on_arrival');
  check(await focused(page) === 'scan', `after choosing a result focus is on ${await focused(page)}, not the scan input`);
  await hw.selectOption('');

  ctx.step('(a) stepping through a menu with the arrow keys keeps it focused; a scan still goes to the scan field');
  await hw.focus();
  await page.keyboard.press('ArrowDown');
  check(await hw.inputValue() === 'received', `ArrowDown on the menu gave '${await hw.inputValue()}'`);
  await page.keyboard.press('ArrowDown');
  check(await hw.inputValue() === 'missing', `a second ArrowDown on the menu gave '${await hw.inputValue()}'`);
  check(await focused(page) === 'row-0-result', `stepping with the arrows moved focus to ${await focused(page)}`);
  await scan(page, 'HWTC7F302888');
  const hwState = await rowState(page, 'HWTC7F302888');
  check(hwState === 'Recibido · escaneado', `HWTC7F302888 shows "${hwState}" after its scan from a focused menu`);
  check(await pwr.inputValue() === 'missing', 'PWR-12V-2888 lost its Faltante');
  await visible(live.getByText('HWTC7F302888 recibido (2 de 3)'), `the live region says "${await text(live)}"`);
  await ctx.shot('menu-enfocado');
}

/** (b) A note keeps exactly what the clerk typed; the scan after it goes to the scan field. */
export async function scanAfterNote(ctx) {
  const { page } = ctx;
  const live = page.locator('#scan-live');
  ctx.step('(b) a note committed with Enter, then PWR-12V-2888 is scanned');
  await openFresh(ctx);
  const note = page.getByLabel('Nota de HWTC7F302888');
  await note.click();
  await page.keyboard.type('Carcasa rota', { delay: 80 }); // a person typing
  await page.keyboard.press('Enter');
  const afterEnter = await focused(page);
  await scan(page, 'PWR-12V-2888');
  const v = await note.inputValue();
  check(v === 'Carcasa rota', `the note is "${v}", expected "Carcasa rota"`);
  const pwr = await rowState(page, 'PWR-12V-2888');
  check(pwr === 'Recibido · escaneado', `PWR-12V-2888 shows "${pwr}" after its scan, expected "Recibido · escaneado"`);
  await visible(live.getByText('PWR-12V-2888 recibido (1 de 3)'), `the live region says "${await text(live)}"`);
  check(afterEnter === 'scan', `after Enter in the note focus was on ${afterEnter}, not the scan input`);

  ctx.step('(b) a note committed by touching elsewhere on the page, then RMT-2888 is scanned');
  const rmtNote = page.getByLabel('Nota de RMT-2888');
  await rmtNote.click();
  await page.keyboard.type('Sin pilas', { delay: 80 });
  await page.locator('#detail-meta').click(); // plain text: nothing there takes focus
  await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'scan',
    null, { timeout: 2000 }).catch(async () => {
    throw new Error(`after the note lost focus, focus is on ${await focused(page)}, not the scan input`);
  });
  await scan(page, 'RMT-2888');
  check(await rmtNote.inputValue() === 'Sin pilas', `the note is "${await rmtNote.inputValue()}", expected "Sin pilas"`);
  const rmt = await rowState(page, 'RMT-2888');
  check(rmt === 'Recibido · escaneado', `RMT-2888 shows "${rmt}" after its scan`);

  ctx.step('(b) a scan that arrives while a note still has focus goes to the scan field, not the note');
  await note.click();
  await page.keyboard.press('End');
  await page.keyboard.type(' y rayada', { delay: 80 });
  await page.waitForTimeout(200); // the clerk stops typing; the scanner fires
  await scannerBurst(ctx, 'HWTC7F302888');
  const v2 = await note.inputValue();
  check(v2 === 'Carcasa rota y rayada', `the note is "${v2}", expected "Carcasa rota y rayada"`);
  const hw = await rowState(page, 'HWTC7F302888');
  check(hw === 'Recibido · escaneado', `HWTC7F302888 shows "${hw}" after its scan`);
  await visible(live.getByText('HWTC7F302888 recibido (3 de 3)'), `the live region says "${await text(live)}"`);
  check(await focused(page) === 'scan', `after the scan focus is on ${await focused(page)}, not the scan input`);
  await ctx.shot('nota');
}

/** Where the visible alerts are, and the button, in the viewport's coordinates. */
async function alertsNear(page, buttonId) {
  return page.evaluate((id) => {
    const box = (n) => {
      const r = n.getBoundingClientRect();
      return { top: r.top, bottom: r.bottom, left: r.left, right: r.right };
    };
    const alerts = [...document.querySelectorAll('[role="alert"]')]
      .filter((n) => n.checkVisibility() && n.innerText.trim())
      .map((n) => ({ id: n.id, text: n.innerText.trim(), ...box(n) }));
    return { alerts, button: box(document.getElementById(id)), height: innerHeight, width: innerWidth };
  }, buttonId);
}

/** Checks that an alert saying `words` is in the viewport within 150 px of the button. */
async function checkAlertBesideButton(page, words) {
  const { alerts, button, height, width } = await alertsNear(page, 'confirm-send');
  const said = alerts.map((a) => `"${a.text}" at y ${Math.round(a.top)}..${Math.round(a.bottom)}`).join('; ');
  const inView = alerts.filter((a) => a.top >= 0 && a.bottom <= height && a.left >= 0 && a.right <= width);
  const near = inView.filter((a) => Math.max(a.top - button.bottom, button.top - a.bottom, 0) <= 150);
  check(near.length > 0, `no visible alert within 150 px of «Confirmar recepción» (button at y ` +
    `${Math.round(button.top)}..${Math.round(button.bottom)}, viewport ${height} px high); alerts: ${said || 'none'}`);
  check(near.some((a) => words.test(a.text)), `the alert beside the button says "${near.map((a) => a.text).join(' | ')}"`);
}

/** (c) A receipt the server does not take is said next to the button; focus stays there. */
export async function sendFails(ctx, id) {
  const { page } = ctx;
  ctx.step('(c) the rows are scanned and marked, the clerk confirms, the server answers 503');
  await openFresh(ctx);
  await scan(page, 'HWTC7F302888');
  await scan(page, 'PWR-12V-2888');
  await page.getByRole('button', { name: 'Marcar no escaneados como faltantes' }).click();
  await page.getByRole('button', { name: 'Firmar y confirmar recepción' }).click();
  await visible(page.locator('#confirm-text').getByText('recibo 2 equipos (1 faltante, 0 dañados)'), 'no confirmation step');
  await page.getByLabel('Confirmo la recepción').check();
  let posts = 0;
  const receipt = `**/v1/handovers/${id}/receipt`;
  await page.route(receipt, (route) => {
    posts++;
    return route.fulfill({
      status: 503, contentType: 'application/json',
      body: JSON.stringify({ error: { code: 'internal', message: 'service unavailable' } }),
    });
  });
  await page.getByRole('button', { name: 'Confirmar recepción', exact: true }).click();
  await page.waitForFunction(() => document.getElementById('confirm-send').textContent === 'Confirmar recepción',
    null, { timeout: 10000 });
  check(posts === 1, `the page sent ${posts} receipts, expected 1`);
  await checkAlertBesideButton(page, /No se registró la recepción/);
  const f = await focused(page);
  check(f === 'confirm-send' || f === 'scan', `after the failed send focus is on ${f}, expected the button or the scan input`);
  check(!(await page.getByRole('heading', { name: 'Recepción confirmada' }).isVisible()), 'the page shows a receipt');
  await ctx.shot('envio-fallido');

  ctx.step('(c) sent again without a network: said beside the button too');
  await page.unroute(receipt);
  await page.route(receipt, (route) => { posts++; return route.abort('internetdisconnected'); });
  // Focus may be on the button or back on the scan input (both allowed above): send from
  // the keyboard on the button either way.
  await page.locator('#confirm-send').focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => /Sin conexión/.test(document.getElementById('confirm').innerText),
    null, { timeout: 10000 }).catch(() => {});
  check(posts === 2, `the page sent ${posts} receipts, expected 2`);
  await checkAlertBesideButton(page, /No se registró la recepción.*Sin conexión/s);
  const f2 = await focused(page);
  check(f2 === 'confirm-send' || f2 === 'scan', `after the second failed send focus is on ${f2}`);
  await page.unroute(receipt);

  ctx.step('(c) the server never got a receipt: the handover is still pending');
  const alm = await ctx.api('almacen.demo');
  const h = await alm('GET', `/v1/handovers/${id}`);
  check(h.status !== 'received', `the handover is '${h.status}'`);
}

export async function run(ctx) {
  const dropExpected = ignoreExpected(ctx);
  ctx.step('almacen.demo signs in and finds Juan Mamani\'s handover pending');
  const id = await signIn(ctx);
  check(/^[0-9a-f]{32}$/.test(id || ''), `the row has no handover id (${id})`);
  await scanWithMenuFocused(ctx);
  await scanAfterNote(ctx);
  await sendFails(ctx, id);
  dropExpected();
}
