// Page URLs as they are sent: no fragment, no query except utm_* campaign tags, and path
// segments that look personal (e-mails, long numbers, UUIDs, hex tokens) replaced by ":id".

const PERSONAL = /@|%40|^\d{6,}$|^[\da-f-]{16,}$/i;

export function cleanUrl(href) {
  const u = new URL(href);
  const utm = u.search
    .slice(1)
    .split('&')
    .filter((p) => p.startsWith('utm_'))
    .join('&');
  return u.origin + u.pathname.split('/').map((seg) => (PERSONAL.test(seg) ? ':id' : seg)).join('/') + (utm ? '?' + utm : '');
}
