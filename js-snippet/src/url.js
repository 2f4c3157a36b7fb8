// Page URLs as they are sent: no query except utm_* campaign tags, no fragment except a
// single-page app's hash route (#/… or #!/…, cut at its own query: it is a path, while other
// fragments can carry tokens), and path segments that look personal (e-mails, long numbers,
// UUIDs, hex tokens) replaced by ":id".

const PERSONAL = /@|%40|^\d{6,}$|^[\da-f-]{16,}$/i;

const clean = (path) => path.split('/').map((seg) => (PERSONAL.test(seg) ? ':id' : seg)).join('/');

/** The cleaned URL; with `pathOnly`, without its query: what tells one page from another. */
export function cleanUrl(href, pathOnly) {
  const u = new URL(href);
  const utm = u.search
    .slice(1)
    .split('&')
    .filter((p) => !pathOnly && p.startsWith('utm_'))
    .join('&');
  return u.origin + clean(u.pathname) + (utm ? '?' + utm : '') + (/^#!?\//.test(u.hash) ? clean(u.hash.split(/[?&=]/)[0]) : '');
}
