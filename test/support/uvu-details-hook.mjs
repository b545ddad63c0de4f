// Module load hook (see uvu-details.mjs): patches uvu's format() so non-string err.details print as JSON.
const ORIGINAL = "let { details, operator='' } = err;";

export async function load(url, context, nextLoad) {
  const result = await nextLoad(url, context);
  if (!url.endsWith('/uvu/dist/index.mjs')) return result;
  const source = String(result.source);
  if (!source.includes(ORIGINAL)) throw new Error('uvu format() changed: update test/support/uvu-details-hook.mjs');
  const patched = source.replace(
    ORIGINAL,
    `${ORIGINAL} if (details != null && typeof details !== 'string') details = JSON.stringify(details, null, 2);`,
  );
  return { ...result, source: patched };
}
