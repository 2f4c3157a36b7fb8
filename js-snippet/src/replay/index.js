// hushtale replay recorder, loaded by the core only for sessions sampled by data-replay.
import { recorder } from './mutations.js';

const h = window.hushtale;
if (h && h._r) h._r(recorder);
