// hushtale's lazily loaded analytics part, fetched by the core right after it starts: views
// for single-page-app navigations, dead clicks, pointer moves and resizes, form activity.
import { routes } from './routes.js';
import { deadClicks } from './dead.js';
import { pointer } from './pointer.js';
import { forms } from './forms.js';

window.hushtale?._m?.((core) => {
  const dead = deadClicks(core.e);
  core.k.c = dead.click;
  const typing = forms(core.e, core.s);
  core.k.h = () => (dead.live(), typing());
  routes(core.e, core.v, dead.live, core.k.u);
  pointer(core.e);
});
