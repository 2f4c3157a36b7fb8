// Opt-out signals, checked before anything runs or is stored.
import { setCookie } from './ids.js';

export const optedOut = () =>
  /(^|;\s*)hushtale_optout=1/.test(document.cookie) ||
  navigator.globalPrivacyControl === true ||
  navigator.doNotTrack == 1;

// The collector's answer about this browser and site: its own opt-out cookie (set by its
// /disable page) and the site's replay text masking. A failed check does not count as consent
// being withdrawn (the server drops opted-out batches anyway, and enforces the masking too).
export const collectorStatus = (base, site) =>
  fetch(base + '/optout?site=' + site, { credentials: 'include' })
    .then((r) => r.json())
    .catch(() => ({}));

export const setOptOut = (on) => setCookie('hushtale_optout', on ? 1 : '', on ? 63072e3 : 0);
