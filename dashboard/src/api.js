// The operator API, with the token from sessionStorage as a Bearer header (never in a URL).

const KEY = 'hushtale_token';

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let onUnauthorized = () => {};
export const whenUnauthorized = (f) => (onUnauthorized = f);

export async function api(path, params, t = token.get()) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v != null && v !== '') q.set(k, v);
  // relative to this file (…/dashboard/api.js), so a first-party path prefix carries through
  const url = new URL('../api/' + path + (q.size ? '?' + q : ''), import.meta.url);
  const r = await fetch(url, { headers: { Authorization: 'Bearer ' + t }, cache: 'no-store', credentials: 'omit' });
  if (r.status == 401) {
    onUnauthorized();
    throw new ApiError(401, 'The token was refused.');
  }
  if (!r.ok) {
    let msg = r.statusText;
    try {
      msg = (await r.json()).error || msg;
    } catch (e) {}
    throw new ApiError(r.status, msg);
  }
  return r.json();
}

export const site = (s, rest) => `sites/${encodeURIComponent(s)}/${rest}`;
