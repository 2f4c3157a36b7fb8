// Single-page apps: a `view` with `spa: true` for every same-document navigation that changes
// the path or hash route — history.pushState/replaceState, back and forward, hash changes.
// A query-only change, or the same path again, is no new view.
import { cleanUrl } from '../url.js';

/** `navigated()` runs on every same-document navigation, before its view (if any) is sent;
 * `first` is the view the core sent when the page loaded. */
export function routes(emit, view, navigated, first) {
  const path = (href = location.href) => cleanUrl(href, 1);
  let last = path(first.url);
  let t;
  const check = () => {
    t = 0;
    const p = path();
    if (p != last) {
      last = p;
      emit({ ...view(Date.now()), spa: true });
      // a route that keeps the scroll position is read from there on
      scrollY && emit({ k: 'scroll', y: scrollY | 0 });
    }
  };
  // The view is measured a task later, so an app that renders after changing the URL shows
  // its new document size.
  const changed = () => {
    navigated();
    t ||= setTimeout(check);
  };
  for (const m of ['pushState', 'replaceState']) {
    const f = history[m];
    history[m] = function () {
      const r = f.apply(this, arguments);
      changed();
      return r;
    };
  }
  addEventListener('popstate', changed);
  addEventListener('hashchange', changed);
  // navigations between the page's first view and this part loading
  check();
}
