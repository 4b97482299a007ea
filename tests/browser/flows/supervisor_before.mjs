// The supervisor reads today's indicators (efficacy count and total, cross-checked with
// the API), opens the cases behind Eficacia, and looks at the devices and the users.
// Leaves ctx.shared.efficacyBefore / totalBefore for supervisor_after.

export const name = 'supervisor_before';

/** Throws `message` unless `cond`. */
export function check(cond, message) {
  if (!cond) throw new Error(message);
}

/** Today as YYYY-MM-DD in the server's report offset (UTC-4). */
export function todayBolivia(now = Date.now()) {
  return new Date(now - 4 * 3600000).toISOString().slice(0, 10);
}

/** Sets Desde/Hasta to `from`/`to`, submits, and waits until the page shows that range. */
export async function setRange(page, from, to) {
  await page.getByLabel('Desde').fill(from);
  await page.getByLabel('Hasta').fill(to);
  await page.getByRole('button', { name: 'Actualizar', exact: true }).first().click();
  await page.locator(`#results[data-range="${from}..${to}"][aria-busy="false"]`)
    .waitFor({ timeout: 10000 })
    .catch(() => { throw new Error(`the indicators did not show the range ${from}..${to}`); });
}

/** Reads "N de M" of a KPI card: { count, total }. */
export async function readKpi(page, id) {
  const text = (await page.locator(`#${id} .kpi-count`).innerText()).trim();
  const m = /^(\d+) de (\d+)$/.exec(text);
  check(m, `KPI #${id} shows "${text}", expected "N de M"`);
  return { count: Number(m[1]), total: Number(m[2]) };
}

import { ignoreFavicon } from '../common.mjs';

export { ignoreFavicon }; // supervisor_after's too

/** Waits for the supervisor page to finish its first load. */
export async function openPage(ctx) {
  const { page, base } = ctx;
  if (!page.url().endsWith('/web/supervisor.html')) {
    await page.goto(`${base}/web/supervisor.html`);
  }
  await page.getByRole('heading', { name: 'Supervisión', level: 1 }).waitFor();
  await page.locator('#results[data-range][aria-busy="false"]').waitFor({ timeout: 10000 });
}

export async function run(ctx) {
  const { page } = ctx;
  const today = todayBolivia();
  const dropFavicon = ignoreFavicon(ctx);

  ctx.step('supervisor.demo signs in and lands on Supervisión');
  await ctx.login('supervisor.demo');
  check(page.url().endsWith('/web/supervisor.html'), `after login the page is ${page.url()}`);
  await openPage(ctx);
  const from30 = todayBolivia(Date.now() - 30 * 86400000);
  check(await page.getByLabel('Desde').inputValue() === from30,
    `Desde defaults to ${await page.getByLabel('Desde').inputValue()}, expected ${from30}`);
  check(await page.getByLabel('Hasta').inputValue() === today, 'Hasta does not default to today');

  ctx.step(`sets the range to today (${today}) and reads Eficacia`);
  await setRange(page, today, today);
  const eff = await readKpi(page, 'kpi-efficacy');
  const tim = await readKpi(page, 'kpi-timeliness');
  check(eff.total === tim.total, `Eficacia total ${eff.total} and Oportunidad total ${tim.total} differ`);

  ctx.step('cross-checks the page with the API');
  const sup = await ctx.api('supervisor.demo');
  const r = await sup('GET', `/v1/reports/indicators?from=${today}&to=${today}`);
  check(r.efficacy.count === eff.count && r.total === eff.total,
    `page shows Eficacia ${eff.count} de ${eff.total}, API says ${r.efficacy.count} de ${r.total}`);
  check(r.timeliness.count === tim.count, `page Oportunidad ${tim.count}, API ${r.timeliness.count}`);
  const pct = (await page.locator('#kpi-efficacy .kpi-pct').innerText()).trim();
  const want = r.total ? `${r.efficacy.percent.toFixed(2).replace('.', ',')} %` : '— %';
  check(pct === want, `Eficacia percent shows "${pct}", expected "${want}"`);
  const pending = (await page.locator('#kpi-pending .kpi-count').innerText()).trim();
  check(pending === String(r.pending), `Casos en curso shows ${pending}, API ${r.pending}`);
  check(await page.locator('#chart svg title').first().count() === 1, 'the chart has no <title>');
  const csv = await page.locator('#csv').getAttribute('href');
  check(csv.includes(`from=${today}`) && csv.includes('format=csv'), `CSV link is ${csv}`);
  ctx.shared.efficacyBefore = eff.count;
  ctx.shared.totalBefore = eff.total;
  ctx.shared.today = today;
  console.log(`[${name}] Eficacia ${eff.count} de ${eff.total}, Oportunidad ${tim.count} de ${tim.total}`);

  ctx.step('opens the cases behind Eficacia (keyboard)');
  await page.locator('#kpi-efficacy').focus();
  await page.keyboard.press('Enter');
  await page.locator('#cases-panel').waitFor({ state: 'visible' });
  const rows = await page.locator('#cases-panel tbody tr[data-contract]').count();
  check(rows === eff.total, `the case list has ${rows} rows, the total is ${eff.total}`);
  await ctx.shot('indicadores-antes');

  ctx.step('opens Dispositivos');
  await page.getByRole('tab', { name: 'Dispositivos' }).click();
  await page.locator('#devices-table').waitFor({ timeout: 10000 });
  const devs = await sup('GET', '/v1/devices');
  const devRows = await page.locator('#devices-table tbody tr').count();
  check(devRows === devs.devices.length, `devices table has ${devRows} rows, API ${devs.devices.length}`);
  if (devs.devices.length) {
    check(await page.getByRole('button', { name: /^Revocar el dispositivo/ }).count() > 0,
      'no Revocar button for an active device');
  }
  await ctx.shot('dispositivos');

  ctx.step('opens Usuarios (arrow key from the tab)');
  await page.getByRole('tab', { name: 'Dispositivos' }).focus();
  await page.keyboard.press('ArrowRight');
  await page.locator('#users-table').waitFor({ timeout: 10000 });
  const users = await page.locator('#users-table tbody tr').count();
  check(users >= 8, `users table has ${users} rows`);
  check(await page.locator('#users-table').getByText('Gestión / Div. Servicio al Cliente').count() > 0,
    'the supervisor role label is not in the users table');
  await ctx.shot('usuarios');

  ctx.step('tablet width');
  await page.setViewportSize({ width: 820, height: 1180 });
  await page.getByRole('tab', { name: 'Indicadores' }).click();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the page overflows a tablet width by ${overflow}px`);
  await ctx.shot('tablet');
  dropFavicon();
}
