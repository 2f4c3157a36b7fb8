// The pure rules, without a browser: masking and URL cleaning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mask, maskAll } from '../src/mask.js';
import { cleanUrl } from '../src/url.js';

test('balanced masking hides e-mails, phone and card numbers and keeps words and length', () => {
  const s = 'Mail jane.doe@example.com or call +1 (555) 010-4477, card 4242 4242 4242 4242.';
  const m = mask(s);
  assert.equal(m.length, s.length);
  assert.ok(m.startsWith('Mail ********************'));
  assert.ok(!/\d|@/.test(m));
  assert.ok(m.includes(' or call '));
  assert.equal(maskAll('Margaret Hamilton\n  Gold'), '******** ********\n  ****');
});

test('page URLs lose fragments, non-campaign query parameters and personal path segments', () => {
  assert.equal(cleanUrl('https://shop.example/a/b?utm_source=x&email=jo%40x.com&utm_medium=y#top'), 'https://shop.example/a/b?utm_source=x&utm_medium=y');
  assert.equal(cleanUrl('https://shop.example/users/jo@x.com/orders/12345678'), 'https://shop.example/users/:id/orders/:id');
  assert.equal(cleanUrl('https://shop.example/t/3f2a9c1e-4b5d-4e6f-8a9b-0c1d2e3f4a5b'), 'https://shop.example/t/:id');
  assert.equal(cleanUrl('https://shop.example/blog/2024/spring'), 'https://shop.example/blog/2024/spring');
});
