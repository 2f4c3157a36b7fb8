// Dead clicks: a click on something meant to be clicked, after which nothing happened within
// 1 s — no DOM change, navigation, scroll, focus move, dialog or change of the text selection.
// Such clicks are held back that long and sent with `dead: true`; whatever happens first sends
// every waiting click at once, without the flag. Never dead: text fields, selects, labels,
// plain text without a clickable ancestor, download links, media and frames (what happens
// inside them cannot be seen), and anything inside data-hushtale-nodead.

const NEVER =
  '[data-hushtale-nodead],a[download],label,select,textarea,[contenteditable],video,audio,iframe,canvas,embed,object,input:not([type=button],[type=submit],[type=reset],[type=image])';
const CLICKABLE = 'a,button,input,summary,[role=button],[role=link],[role=tab],[role=menuitem],[onclick]';

export function deadClicks(emit) {
  const doc = document;
  let waiting = [];
  const watch = new MutationObserver(() => live());
  // what a click may change without touching the DOM
  const state = () => [location.href, doc.activeElement, getSelection() + ''];
  let submit; // the last form submission

  const send = (c, dead) => {
    clearTimeout(c.timer);
    waiting = waiting.filter((w) => w != c);
    if (!waiting.length) watch.disconnect();
    if (dead) c.ev.dead = true;
    emit(c.ev);
  };
  const live = () => waiting.forEach((c) => send(c));

  const expire = (c) => {
    const now = state();
    // a link or a form submission that was not prevented leaves (or opens another tab)
    const leaves = (c.a?.href && !c.e.defaultPrevented) || (submit?.timeStamp > c.e.timeStamp && !submit.defaultPrevented);
    send(c, !leaves && c.s.every((v, i) => v === now[i]));
  };

  const on = (type, f, target = doc) => target.addEventListener(type, f, true);
  on('scroll', live);
  on('submit', (e) => (submit = e));
  for (const m of ['alert', 'confirm', 'prompt', 'open', 'print']) {
    const f = window[m];
    window[m] = function () {
      live();
      return f.apply(this, arguments);
    };
  }

  return {
    // a click event about to be sent; `e` is the DOM event
    click(ev, e) {
      const t = e.target;
      if (!t.closest || t.closest(NEVER) || !(t.closest(CLICKABLE) || getComputedStyle(t).cursor == 'pointer')) return emit(ev);
      ev.t = Date.now(); // sent late, dated now
      const c = { ev, e, a: t.closest('a'), s: state() };
      c.timer = setTimeout(expire, 1e3, c);
      if (!waiting.length) watch.observe(doc, { subtree: true, childList: true, attributes: true, characterData: true });
      waiting.push(c);
    },
    live,
  };
}
