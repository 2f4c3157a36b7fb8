// Reads the snippet's own <script> tag: the collector's base URL (where this file was loaded
// from), the site id and the share of sessions recorded for replay.

export function readConfig() {
  const s = document.currentScript;
  const site = s?.getAttribute('data-site');
  return (
    site && {
      base: s.src.slice(0, s.src.lastIndexOf('/')),
      site,
      // a share: absent or garbage (NaN) is 0, anything from 1 up samples every session
      replay: +s.getAttribute('data-replay') || 0,
    }
  );
}
