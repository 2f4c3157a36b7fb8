// hushtale replay recorder, loaded by the core only for sessions sampled by data-replay.
import { recorder } from './mutations.js';
import { siteMasked } from '../mask.js';

const h = window.hushtale;
if (h && h._r) siteMasked(recorder).then(h._r); // the site's mask_text decides how text is masked
