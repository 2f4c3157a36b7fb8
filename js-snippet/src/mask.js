// Text masking shared by the analytics core (error messages) and the replay recorder
// (snapshot text and attributes). "Balanced" masking, as Clarity calls it: every
// whitespace-separated token that holds a digit or an "@" is replaced, so e-mail addresses,
// phone and card numbers, prices and dates disappear while ordinary words stay readable.
// Masks keep the length of what they replace, so a replayed page keeps its layout.

const TOKEN = /\S*[\d@]\S*/g;

/** Replace every non-space character. */
export const maskAll = (s) => s.replace(/\S/g, '*');

/** Replace tokens that contain a digit or an "@". */
export const mask = (s) => s.replace(TOKEN, maskAll);

/**
 * Resolves to `recorder` as the site's settings at the collector ask: masking all page text
 * (`mask_text = "all"`), canvas frames (`replay_canvas`, as `H.c`). Called by the lazily loaded
 * recorder while its script runs (`document.currentScript` is its own tag), so the core carries
 * none of this.
 */
export const siteMasked = (recorder) =>
  fetch(document.currentScript.src.replace(/[^/]*$/, 'optout?site=') + document.querySelector('script[data-site]')?.dataset.site, {
    credentials: 'include',
  })
    .then((r) => r.json())
    .catch(() => ({}))
    .then((s) => (H) => recorder({ ...H, m: s.mask_text == 'all' ? H.a : H.m, c: s.replay_canvas }));
