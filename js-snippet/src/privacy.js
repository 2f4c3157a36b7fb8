// Opt-out signals, checked before anything runs or is stored.
import { setCookie } from './ids.js';

export const optedOut = () =>
  /(^|;\s*)hushtale_optout=1/.test(document.cookie) ||
  navigator.globalPrivacyControl === true ||
  navigator.doNotTrack == 1;

// The collector's own opt-out cookie (set by its /disable page); a failed check does not
// count as consent being withdrawn, the server drops opted-out batches anyway.
export const collectorOptedOut = (base) =>
  fetch(base + '/optout', { credentials: 'include' })
    .then((r) => r.json())
    .then((j) => j.opted_out === true, () => false);

export const setOptOut = (on) => setCookie('hushtale_optout', on ? 1 : '', on ? 63072e3 : 0);
