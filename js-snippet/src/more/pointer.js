// Pointer moves (for the move heatmap) and viewport resizes: positions that only matter once
// the page is in use, so they live in the lazily loaded part.

export function pointer(emit) {
  const on = (type, f) => addEventListener(type, f, true);
  let lx = -1e4;
  let ly = 0;
  let lt = 0;
  let rt;
  on('pointermove', (e) => {
    const x = e.pageX | 0;
    const y = e.pageY | 0;
    // at most 4 a second, and only when the pointer really moved
    if (e.timeStamp - lt > 250 && Math.abs(x - lx) + Math.abs(y - ly) > 32) {
      lt = e.timeStamp;
      lx = x;
      ly = y;
      emit({ k: 'move', x, y });
    }
  });
  // the size a quarter of a second after the first event of a burst
  on('resize', () => (rt ||= setTimeout(() => emit({ k: 'resize', w: innerWidth, h: innerHeight | (rt = 0) }), 250)));
}
