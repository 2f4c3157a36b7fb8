// Low-rate PNG/JPEG frames of <canvas> elements, for sites whose config switches them on
// (`replay_canvas`, learnt from the collector with `mask_text`). A canvas can show what a visitor
// typed or drew (editors, signature pads) and pixels cannot be masked: so this is off unless the
// site asks, never for canvases inside masked or blocked parts of the page, never where the site
// masks all page text (the collector drops frames in both of those cases too).
//
// Every 2 s each canvas in view is looked at; a frame goes out (a mut event `v: [[id, dataURL]]`)
// when it changed, scaled to at most 480 px, as PNG or JPEG, whichever is shorter (flat charts:
// PNG, lossless and transparent; photos: JPEG), and only while the canvas
// allowance lasts: 6 KB a minute (24 KB saved up at most), so canvases take a bounded share of
// the replay's bytes whatever the page draws.

const EVERY = 2000; // ms between looks
const RATE = 6e3 / 6e4; // bytes of frames per ms
const CAP = 24e3; // bytes saved up at most (and at the start)
const LONGEST = 3e4; // a frame longer than this is not sent
const SIDE = 480; // px, longest side of a frame

// The colour the canvas is seen on: JPEG has no transparency.
function backdrop(el) {
  for (; el && el.nodeType == 1; el = el.parentElement) {
    const b = getComputedStyle(el).backgroundColor;
    if (!/^transparent$|, 0\)$/.test(b)) return b;
  }
  return '#fff';
}

function image(c) {
  const k = Math.min(1, SIDE / Math.max(c.width, c.height));
  const o = document.createElement('canvas');
  o.width = Math.max(1, Math.round(c.width * k));
  o.height = Math.max(1, Math.round(c.height * k));
  const x = o.getContext('2d');
  try {
    x.drawImage(c, 0, 0, o.width, o.height);
    const png = o.toDataURL();
    x.globalCompositeOperation = 'destination-over';
    x.fillStyle = backdrop(c);
    x.fillRect(0, 0, o.width, o.height);
    const jpeg = o.toDataURL('image/jpeg', 0.6);
    const url = png.length < jpeg.length ? png : jpeg;
    return url.length <= LONGEST && url;
  } catch (e) {} // a canvas tainted by another origin's image cannot be read
}

// `roots`: the document, shadow roots and frame documents watched; `busy()`: a snapshot or round
// is being serialised (its ids are not sent yet); `emit` sends an event.
export function canvasFrames(roots, ids, S, busy, emit) {
  let sent = new WeakMap(); // canvas -> the frame last sent
  let allowance = CAP;
  let at = Date.now();
  const look = () => {
    const now = Date.now();
    allowance = Math.min(CAP, allowance + (now - at) * RATE);
    at = now;
    if (busy()) return;
    const v = [];
    roots.forEach((r) =>
      r.querySelectorAll('canvas').forEach((c) => {
        const id = ids.get(c);
        const box = c.getBoundingClientRect();
        if (!id || !c.width || !c.height || !box.width || box.bottom < 0 || box.top > innerHeight || S.inside(c, '[data-hushtale-mask],[data-hushtale-block]')) return;
        const url = image(c);
        if (!url || url == sent.get(c) || url.length > allowance) return;
        sent.set(c, url);
        allowance -= url.length;
        v.push([id, url]);
      })
    );
    if (v.length) emit({ k: 'mut', d: { v } });
  };
  const timer = setInterval(look, EVERY);
  return (again) => (again ? (sent = new WeakMap()) : clearInterval(timer));
}
