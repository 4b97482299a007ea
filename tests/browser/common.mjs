// What every browser flow shares.

/**
 * The server has no /favicon.ico, and Chromium asks for it on the first page of the
 * origin (the login page): that 404 is not this page's error. Returns a function that
 * drops those console lines from ctx.consoleErrors (call it at the end of the flow).
 */
export function ignoreFavicon(ctx) {
  const texts = [];
  ctx.page.on('console', (m) => {
    if (m.type() === 'error' && /\/favicon\.ico$/.test(m.location().url || '')) texts.push(m.text());
  });
  return () => {
    for (const t of texts) {
      const i = ctx.consoleErrors.indexOf(t);
      if (i >= 0) ctx.consoleErrors.splice(i, 1);
    }
  };
}
