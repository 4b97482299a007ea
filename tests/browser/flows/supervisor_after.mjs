// After the warehouse and back-office flows closed BT-200888's case, the supervisor sees
// Eficacia go up and the case in the list behind it. Run alone, the flow first reads the
// count, then closes the case itself through the API (the warehouse receives the pending
// handover), so the check still means something.
import { check, todayBolivia, setRange, readKpi, openPage, ignoreFavicon } from './supervisor_before.mjs';

export const name = 'supervisor_after';
const CONTRACT = 'BT-200888';

async function closeThroughWarehouse(ctx) {
  const alm = await ctx.api('almacen.demo');
  const list = await alm('GET', '/v1/handovers');
  check(list.handovers.length > 0,
    'no pending handover to receive (GET /v1/handovers as almacen.demo is empty): ' +
    `the demo's handover for ${CONTRACT} is missing`);
  for (const h of list.handovers) {
    const detail = await alm('GET', `/v1/handovers/${h.id}`);
    const rows = detail.rows.filter((row) => !row.voided)
      .map((row) => ({ serial: row.serial, result: 'received' }));
    await alm('POST', `/v1/handovers/${h.id}/receipt`, { rows });
  }
}

export async function run(ctx) {
  const { page } = ctx;
  const today = ctx.shared.today || todayBolivia();
  let before = ctx.shared.efficacyBefore;
  const dropFavicon = ignoreFavicon(ctx);

  ctx.step('supervisor.demo signs in again, range today');
  await ctx.login('supervisor.demo');
  await openPage(ctx);
  await setRange(page, today, today);

  // Run alone (no count from supervisor_before), or run with supervisor_before but
  // without the warehouse flow (the handover still waits): close the case here.
  let closeHere = before === undefined;
  if (!closeHere && (await readKpi(page, 'kpi-efficacy')).count === before) {
    const alm = await ctx.api('almacen.demo');
    closeHere = (await alm('GET', '/v1/handovers')).handovers.length > 0;
  }
  if (closeHere) {
    ctx.step('the warehouse flow did not run: reads Eficacia, then receives the handover via the API');
    before = (await readKpi(page, 'kpi-efficacy')).count;
    await closeThroughWarehouse(ctx);
    await page.reload();
    await openPage(ctx);
    await setRange(page, today, today);
  }

  ctx.step(`checks Eficacia went up from ${before}`);
  const eff = await readKpi(page, 'kpi-efficacy');
  check(eff.count >= before + 1,
    `Eficacia shows ${eff.count} de ${eff.total}; expected at least ${before + 1} (it was ${before})`);
  const sup = await ctx.api('supervisor.demo');
  const r = await sup('GET', `/v1/reports/indicators?from=${today}&to=${today}`);
  check(r.efficacy.count === eff.count, `page Eficacia ${eff.count}, API ${r.efficacy.count}`);
  console.log(`[${name}] Eficacia ${before} → ${eff.count} de ${eff.total}`);

  ctx.step(`opens the cases behind Eficacia: ${CONTRACT} is there`);
  await page.locator('#kpi-efficacy').click();
  await page.locator('#cases-panel').waitFor({ state: 'visible' });
  const row = page.locator(`#cases-in tr[data-contract="${CONTRACT}"]`);
  check(await row.count() === 1, `${CONTRACT} is not in the list of effective cases`);
  check((await row.innerText()).includes('Cerrado'), `${CONTRACT}'s row does not say Cerrado`);

  ctx.step('opens the case summary inline');
  await row.getByRole('button', { name: `Resumen del caso ${CONTRACT}` }).click();
  await page.locator('tr.summary-row dl.summary').waitFor({ timeout: 10000 });
  await ctx.shot('indicadores-despues');
  dropFavicon();
}
