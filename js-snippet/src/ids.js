// Visitor and session ids. Both are random, first-party and per site; nothing here can link
// a visitor across sites. The visitor id is created lazily, when a batch is about to be sent,
// so an opted-out visitor never gets one.

const IDLE = 18e5; // a session ends after 30 minutes without activity

export const hex128 = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => (b | 256).toString(16).slice(1)).join('');

export const setCookie = (name, value, maxAge) => (document.cookie = name + '=' + value + ';path=/;SameSite=Lax;max-age=' + maxAge);

export function ids(site) {
  const vkey = 'hushtale_vid_' + site;
  const skey = 'hushtale_sid_' + site;
  let s; // the session: {sid, seq, last, rep}
  let saved = 0;
  let v; // the visitor id, once read: storage access can be slow
  const save = () => {
    try {
      sessionStorage[skey] = JSON.stringify(s);
    } catch (e) {}
    saved = s.last;
  };
  // localStorage, else a first-party cookie (storage can be disabled, or throw, in private modes)
  const vid = (v) => {
    try {
      if (v != null) v ? (localStorage[vkey] = v) : localStorage.removeItem(vkey);
      return localStorage[vkey];
    } catch (e) {
      if (v != null) setCookie(vkey, v, v ? 4e7 : 0);
      return document.cookie.match(vkey + '=(\\w+)')?.[1];
    }
  };
  return {
    // The visitor id: read, or created when `create` is set.
    vid_: (create) => (v ||= vid() || (create ? vid(hex128()) : undefined)),
    forget_() {
      v = vid('');
      try {
        sessionStorage.removeItem(skey);
      } catch (e) {}
    },
    // Marks activity at `t`; true when that starts a new session. `rep` (sampled for replay)
    // is drawn once per session so replay covers whole sessions.
    touch_(t, share) {
      try {
        s = s || JSON.parse(sessionStorage[skey]);
      } catch (e) {}
      if (!(t - s?.last < IDLE)) {
        s = { sid: hex128(), seq: 0, last: t, rep: Math.random() < share ? 1 : 0 };
        save();
        return 1;
      }
      s.last = t;
      if (t - saved > 5e3) save();
    },
    get s_() {
      return s;
    },
    seq_() {
      s.seq++;
      save();
      return s.seq - 1;
    },
  };
}
