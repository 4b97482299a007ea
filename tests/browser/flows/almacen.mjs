// The warehouse clerk (almacen.demo, Silvia Rocha) receives Juan Mamani's handover of
// BT-200888 with the scanner (one serial typed in lower case, one unknown serial), marks
// the remote control as missing, signs, and prints the Anexo 4. Leaves
// ctx.shared.handover (its id) and ctx.shared.missingItem (the item id of RMT-2888) for
// the back office flow, which settles that discrepancy.

import { check, visible, text, scan } from '../warehouse.mjs';
import { ignoreFavicon } from '../common.mjs';

export const name = 'almacen';

const SERIALS = ['HWTC7F302888', 'PWR-12V-2888', 'RMT-2888'];


export async function run(ctx) {
  const { page } = ctx;
  const dropFavicon = ignoreFavicon(ctx);

  ctx.step('almacen.demo signs in and lands on Almacén with Juan Mamani\'s handover pending');
  await ctx.login('almacen.demo');
  check(page.url().includes('/web/almacen.html'), `after login the page is ${page.url()}`);
  await visible(page.getByRole('heading', { name: 'Entregas pendientes' }), 'no "Entregas pendientes" heading');
  await page.locator('#list[aria-busy="false"]').waitFor({ timeout: 10000 });
  const row = page.locator('#handovers tbody tr', { hasText: 'Juan Mamani' });
  await visible(row, 'the pending list does not show Juan Mamani\'s handover');
  check(await row.count() === 1, `Juan Mamani has ${await row.count()} pending handovers, expected 1`);
  const cells = await row.locator('td').allInnerTexts();
  check(cells[1] === 'Cercado', `Zona is "${cells[1]}", expected Cercado`);
  check(/^\d+ (h|d \d+ h)$/.test(cells[3].trim()), `Antigüedad is "${cells[3]}"`);
  check(cells[4].trim() === '3', `Filas is "${cells[4]}", expected 3`);
  const id = await row.getAttribute('data-id');
  check(/^[0-9a-f]{32}$/.test(id || ''), `the row has no handover id (${id})`);
  await visible(page.getByText('Silvia Rocha'), 'the header does not name Silvia Rocha');
  await ctx.shot('pendientes');

  ctx.step('opens it with the keyboard and scans HWTC7F302888, pwr-12v-2888 and an unknown serial');
  await row.getByRole('button', { name: /^Recibir/ }).focus();
  await page.keyboard.press('Enter');
  await visible(page.getByRole('heading', { name: 'Entrega de Juan Mamani' }), 'the handover did not open');
  const input = page.getByLabel('Escanear código');
  await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'scan',
    null, { timeout: 5000 }).catch(() => { throw new Error('the scan input is not focused after opening'); });
  for (const s of SERIALS) {
    await visible(page.locator('#rows tr', { hasText: s }), `the detail has no row ${s}`);
  }
  const live = page.locator('#scan-live');

  await scan(page, 'HWTC7F302888');
  await visible(live.getByText('HWTC7F302888 recibido (1 de 3)'), `after the first scan the live region says "${await text(live)}"`);
  check(await input.inputValue() === '', 'the scan input was not cleared after a good scan');
  check(await page.evaluate(() => document.activeElement.id) === 'scan', 'focus left the scan input');

  await scan(page, 'pwr-12v-2888');
  await visible(live.getByText('PWR-12V-2888 recibido (2 de 3)'), `a lower-case serial did not match: "${await text(live)}"`);
  for (const s of SERIALS.slice(0, 2)) {
    const state = await text(page.locator('#rows tr', { hasText: s }).locator('.alm-state'));
    check(/^Recibido/.test(state), `row ${s} shows "${state}", expected Recibido`);
    check(await page.getByLabel(`Resultado de ${s}`).inputValue() === 'received', `row ${s} result is not received`);
  }

  await scan(page, 'HWTC7F302888');
  const err = page.locator('#scan-error');
  await visible(err.getByText('ya fue escaneado'), `scanning twice does not say "ya fue escaneado": "${await text(err)}"`);
  await scan(page, 'XYZ-0000');
  await visible(err.getByText('El código XYZ-0000 no está en esta entrega'), `no error in words for an unknown serial: "${await text(err)}"`);
  check(await input.getAttribute('aria-invalid') === 'true', 'the scan input is not aria-invalid after an unknown serial');
  const selected = await page.evaluate(() => {
    const i = document.getElementById('scan');
    return document.activeElement === i && i.selectionStart === 0 && i.selectionEnd === i.value.length && i.value.length > 0;
  });
  check(selected, 'the unknown serial is not selected for a rescan');

  const rmtState = await text(page.locator('#rows tr', { hasText: 'RMT-2888' }).locator('.alm-state'));
  check(rmtState === 'Sin confirmar', `RMT-2888 shows "${rmtState}", expected Sin confirmar`);
  await ctx.shot('escaneo');

  ctx.step('a second tab of the same clerk opens the same handover and gets to its confirmation');
  const other = await ctx.context.newPage();
  const otherErrors = [];
  other.on('pageerror', (e) => otherErrors.push(String(e)));
  await other.goto(`${ctx.base}/web/almacen.html#${id}`);
  await visible(other.getByRole('heading', { name: 'Entrega de Juan Mamani' }), 'the #id link did not open the handover');
  await other.getByRole('button', { name: 'Marcar no escaneados como faltantes' }).click();
  await visible(other.locator('#scan-live').getByText('3 filas marcadas como faltantes'), 'the bulk button did not mark 3 rows');
  await other.getByRole('button', { name: 'Firmar y confirmar recepción' }).click();
  await visible(other.locator('#confirm-text').getByText('recibo 0 equipos (3 faltantes, 0 dañados)'), 'the other tab has no confirmation');
  await other.getByLabel('Confirmo la recepción').check();

  ctx.step('signing with RMT-2888 unconfirmed is refused in words; marks it Faltante and signs');
  await page.bringToFront();
  await page.getByRole('button', { name: 'Firmar y confirmar recepción' }).click();
  await visible(page.locator('#actions-error').getByText(/Falta el resultado de 1 fila: RMT-2888/),
    'signing with a row "Sin confirmar" did not say which row lacks a result');
  await page.getByLabel('Resultado de RMT-2888').selectOption('missing');
  check(await text(page.locator('#rows tr', { hasText: 'RMT-2888' }).locator('.alm-state')) === 'Faltante',
    'RMT-2888 does not show Faltante');
  await page.getByRole('button', { name: 'Firmar y confirmar recepción' }).click();
  const confirmText = page.locator('#confirm-text');
  await visible(confirmText, 'no confirmation step');
  const said = await text(confirmText);
  check(said.startsWith('Yo, Silvia Rocha, recibo 2 equipos (1 faltante, 0 dañados)'),
    `the confirmation says "${said}"`);
  await page.getByRole('button', { name: 'Confirmar recepción', exact: true }).click();
  await visible(page.locator('#confirm-check-error').getByText('Confirmo la recepción'),
    'sending without the checkbox did not ask for it');
  await page.getByLabel('Confirmo la recepción').check();
  await page.getByRole('button', { name: 'Confirmar recepción', exact: true }).click();
  await visible(page.getByRole('heading', { name: 'Recepción confirmada' }), 'the receipt did not show');
  check(await text(page.locator('#receipt-by')) === 'Silvia Rocha', 'the receipt does not name Silvia Rocha');
  check(/^\d\d\/\d\d\/\d{4} \d\d:\d\d$/.test(await text(page.locator('#receipt-at'))), 'the receipt has no time');
  const hash = await text(page.locator('#receipt-hash'));
  check(/^[0-9a-f]{64}$/.test(hash), `the rows hash is "${hash}"`);
  const link = page.getByRole('link', { name: 'Imprimir Anexo 4' });
  check(await link.getAttribute('href') === `/v1/handovers/${id}/anexo4`, 'the Anexo 4 link points elsewhere');
  check(await link.getAttribute('target') === '_blank', 'the Anexo 4 link does not open a new tab');
  check((await link.getAttribute('rel') || '').includes('noopener'), 'the Anexo 4 link lacks rel=noopener');
  await page.locator('#list[aria-busy="false"]').waitFor({ timeout: 10000 });
  check(await page.locator('#handovers tr[data-id="' + id + '"]').count() === 0,
    'the received handover is still in the pending list');
  await ctx.shot('recibido');

  ctx.step('the other tab signs too late: the 409 is shown in words and the view refreshed');
  await other.bringToFront();
  await other.getByRole('button', { name: 'Confirmar recepción', exact: true }).click();
  await visible(other.locator('#message').getByText('No se registró su recepción'), 'the 409 was not shown in words');
  const msg = await text(other.locator('#message'));
  check(msg.includes('Silvia Rocha'), `the 409 message does not say who received it: "${msg}"`);
  await visible(other.getByRole('heading', { name: 'Recepción confirmada' }), 'the other tab did not refresh to the receipt');
  const rmtOther = await text(other.locator('#rows tr', { hasText: 'RMT-2888' }).locator('.badge'));
  check(rmtOther === 'Faltante', `after the refresh RMT-2888 shows "${rmtOther}"`);
  const pwrOther = await text(other.locator('#rows tr', { hasText: 'PWR-12V-2888' }).locator('.badge'));
  check(pwrOther === 'Recibido', `after the refresh PWR-12V-2888 shows "${pwrOther}" (the other tab's "Faltante" must not win)`);
  check(otherErrors.length === 0, `errors in the other tab: ${otherErrors.join(' | ')}`);
  await ctx.shot('conflicto', other);
  await other.close();
  await page.bringToFront();

  ctx.step('opens the Anexo 4 print view: every code and both names');
  const [popup] = await Promise.all([ctx.context.waitForEvent('page'), link.click()]);
  await popup.waitForLoadState('load');
  const body = await popup.locator('body').innerText();
  for (const s of SERIALS) check(body.includes(s), `the Anexo 4 does not show ${s}`);
  for (const n of ['Juan Mamani', 'Silvia Rocha']) check(body.includes(n), `the Anexo 4 does not name ${n}`);
  check(body.includes('Faltante'), 'the Anexo 4 does not show RMT-2888 as Faltante');
  await ctx.shot('anexo4', popup);
  await popup.close();

  ctx.step('the API agrees: received, RMT-2888 missing');
  const alm = await ctx.api('almacen.demo');
  const h = await alm('GET', `/v1/handovers/${id}`);
  check(h.status === 'received', `the handover is '${h.status}'`);
  check(h.received_by === 'Silvia Rocha', `received_by is '${h.received_by}'`);
  check(h.received_rows_hash === hash, 'the page showed another rows hash than the API');
  const got = Object.fromEntries(h.rows.map((r) => [r.serial, r.receipt]));
  check(got['HWTC7F302888'] === 'received' && got['PWR-12V-2888'] === 'received',
    `receipts are ${JSON.stringify(got)}`);
  const rmt = h.rows.find((r) => r.serial === 'RMT-2888');
  check(rmt && rmt.receipt === 'missing', `RMT-2888 receipt is '${rmt && rmt.receipt}'`);

  ctx.step('"Ver recibidas" lists it');
  await page.getByLabel('Ver recibidas').check();
  await visible(page.getByRole('heading', { name: 'Entregas recibidas' }), 'the toggle did not switch the list');
  await visible(page.locator(`#handovers tr[data-id="${id}"]`), 'the received handover is not in "Ver recibidas"');

  ctx.shared.missingItem = rmt.item;
  ctx.shared.handover = id;
  dropFavicon();
}
