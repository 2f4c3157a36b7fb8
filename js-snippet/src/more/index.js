// hushtale's lazily loaded analytics part, fetched by the core right after it starts: views
// for single-page-app navigations, dead clicks, pointer moves and resizes.
import { routes } from './routes.js';
import { deadClicks } from './dead.js';
import { pointer } from './pointer.js';

window.hushtale?._m?.((core) => {
  const dead = deadClicks(core.e);
  core.k.c = dead.click;
  core.k.h = dead.live;
  routes(core.e, core.v, dead.live, core.k.u);
  pointer(core.e);
});
