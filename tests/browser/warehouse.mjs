// Steps the warehouse flows share: checks, waits and the scanner's keystrokes.

/** Throws `message` unless `cond`. */
export function check(cond, message) {
  if (!cond) throw new Error(message);
}

/** Waits until `locator` is visible, or throws `message`. */
export async function visible(locator, message, timeout = 10000) {
  await locator.first().waitFor({ state: 'visible', timeout })
    .catch(() => { throw new Error(message); });
}

/** The trimmed text of `locator`. */
export async function text(locator) {
  return (await locator.innerText()).trim();
}

/** Types a serial and Enter, as a barcode scanner (keyboard wedge) does. */
export async function scan(page, serial) {
  await page.keyboard.type(serial, { delay: 15 });
  await page.keyboard.press('Enter');
}
