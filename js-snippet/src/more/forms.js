// Form activity: `focus`, `blur` (with the field's length when left) and `submit` for fields in
// and outside forms, and `input` (the length after a pause in typing, dated at its first
// keystroke so focus -> first input measures hesitation). Nothing typed is read beyond
// `.length`; passwords and selects only say whether they are empty (0/1), checkboxes and
// radios whether they are checked.

// form-associated elements have `.form` (null outside a form); buttons and hidden inputs are no fields
const field = (el) => el.form !== undefined && !/^(su|bu|re|im|hi)/.test(el.type);

/** `sel` is the core's short CSS path, so fields are named alike in every event. */
export function forms(emit, sel) {
  const doc = document;
  const on = (type, f) => doc.addEventListener(type, f, true);
  const pending = new Map(); // field -> [timer of its `input` event, time of the first keystroke]
  const len = (el, n = (el.value ?? '').length) => (/check|radio/.test(el.type) ? +el.checked : /pass|select/.test(el.type) ? +!!n : n);
  const where = (el) => ({ sel: sel(el), form: el.form ? sel(el.form) : '' });

  const typed = (el) => {
    const p = pending.get(el);
    if (p) {
      clearTimeout(p[0]);
      pending.delete(el);
      emit({ k: 'input', t: p[1], sel: sel(el), len: len(el) });
    }
  };
  const blur = (el) => {
    typed(el);
    emit({ k: 'blur', ...where(el), len: len(el) });
  };

  on('input', (e) => {
    const el = e.target;
    const p = pending.get(el);
    if (!field(el)) return;
    clearTimeout(p?.[0]);
    pending.set(el, [setTimeout(typed, 1e3, el), p?.[1] || Date.now()]);
  });
  on('focusin', (e) => field(e.target) && emit({ k: 'focus', ...where(e.target) }));
  on('focusout', (e) => field(e.target) && blur(e.target));
  on('submit', (e) => {
    // a submit by Enter leaves its field without a blur: the page goes
    const a = doc.activeElement;
    if (field(a) && a.form == e.target) blur(a);
    emit({ k: 'submit', form: sel(e.target) });
  });

  // before the page is hidden: what is still waiting for a pause in typing
  return () => pending.forEach((_, el) => typed(el));
}
