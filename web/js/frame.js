// Message HTML, made safe to show: parsed (never run), scripts and
// refreshes removed, remote images held back until the reader asks, and
// put in a sandboxed iframe (no scripts, no same origin) whose own
// Content-Security-Policy blocks anything remote that slipped through.

import { h } from './dom.js';

const REMOTE = /^\s*(https?:)?\/\//i;

/** The srcdoc of a message's HTML; `remoteImages` lets https images load. */
export function srcdoc(html, { remoteImages = false } = {}) {
  const doc = new DOMParser().parseFromString(html, 'text/html');
  let held = 0;
  doc.querySelectorAll('script, noscript, iframe, frame, frameset, object, embed, applet, base, link, meta').forEach((el) => el.remove());
  doc.querySelectorAll('form').forEach((el) => el.removeAttribute('action'));
  for (const el of doc.querySelectorAll('*')) {
    for (const attr of [...el.attributes]) {
      const name = attr.name.toLowerCase();
      if (name.startsWith('on') || name === 'srcdoc' || name === 'formaction') el.removeAttribute(attr.name);
      else if ((name === 'href' || name === 'xlink:href') && /^\s*javascript:/i.test(attr.value)) el.removeAttribute(attr.name);
    }
    if (!remoteImages) {
      for (const name of ['src', 'srcset', 'background', 'poster']) {
        const value = el.getAttribute(name);
        if (value && (REMOTE.test(value) || (name === 'srcset' && /https?:/i.test(value)))) {
          el.removeAttribute(name);
          el.setAttribute(`data-held-${name}`, value);
          held += 1;
        }
      }
    }
    if (el.tagName === 'A') {
      el.setAttribute('target', '_blank');
      el.setAttribute('rel', 'noopener noreferrer');
    }
  }
  const images = remoteImages ? 'data: cid: https:' : 'data: cid:';
  const policy = `default-src 'none'; img-src ${images}; style-src 'unsafe-inline'; font-src data:`;
  const head = doc.head || doc.documentElement.insertBefore(doc.createElement('head'), doc.body);
  const meta = doc.createElement('meta');
  meta.setAttribute('http-equiv', 'Content-Security-Policy');
  meta.setAttribute('content', policy);
  head.prepend(meta);
  const charset = doc.createElement('meta');
  charset.setAttribute('charset', 'utf-8');
  head.prepend(charset);
  return { html: '<!doctype html>' + doc.documentElement.outerHTML, held };
}

/** A sandboxed iframe showing `html`. */
export function frame(html, options) {
  const { html: doc, held } = srcdoc(html, options);
  const el = h('iframe', {
    class: 'html-frame',
    title: 'Message (formatted)',
    sandbox: 'allow-popups allow-popups-to-escape-sandbox',
    referrerpolicy: 'no-referrer',
  });
  el.srcdoc = doc;
  return { el, held };
}
