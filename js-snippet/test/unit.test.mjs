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

test('hash routes of single-page apps are kept like paths, other fragments dropped', () => {
  assert.equal(cleanUrl('https://app.example/?utm_source=x#/users/jo@x.com?tab=2'), 'https://app.example/?utm_source=x#/users/:id');
  assert.equal(cleanUrl('https://app.example/app#!/orders/12345678&token=abc'), 'https://app.example/app#!/orders/:id');
  assert.equal(cleanUrl('https://app.example/app#access_token=abc'), 'https://app.example/app');
  assert.equal(cleanUrl('https://app.example/app#section-2'), 'https://app.example/app');
  // what tells one page from another: the path and hash route, no query
  assert.equal(cleanUrl('https://app.example/a?utm_source=x&q=1#/b', 1), 'https://app.example/a#/b');
});
