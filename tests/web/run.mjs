// Runs the web app's browser tests: Debian's Chromium, headless, driven by
// playwright-core, at phone size (360×740). Each `*.spec.mjs` here exports
// `default async function (t)` and runs in one shared browser session, in
// the order below (other spec files run before sign-out, by name).
//
// Environment (set by tests/send/web_app.rs): WEB_URL (the gateway),
// WEB_ORACLE (what the servers hold, see web_oracle.rs), WEB_CHROMIUM,
// WEB_NODE_MODULES (playwright-core, axe-core), WEB_OUT (screenshots),
// WEB_EMAIL, WEB_USER, WEB_PASS, WEB_IMAP_HOST, WEB_IMAP_PORT,
// WEB_SMTP_PORT, WEB_UIDS (JSON: the seeded messages' UIDs by name).

import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { fillSignIn } from './lib.mjs';

const env = process.env;
const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(env.WEB_NODE_MODULES, '..', 'package.json'));
const { chromium } = require('playwright-core');
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const ORDER = ['signin', 'read', 'act', 'push', 'offline', 'send'];
const LAST = ['signout'];

function specs() {
  const names = readdirSync(here).filter((f) => f.endsWith('.spec.mjs')).map((f) => f.replace(/\.spec\.mjs$/, ''));
  const known = [...ORDER, ...LAST];
  const others = names.filter((n) => !known.includes(n)).sort();
  return [...ORDER.filter((n) => names.includes(n)), ...others, ...LAST.filter((n) => names.includes(n))];
}

async function oracle(method, route) {
  const response = await fetch(env.WEB_ORACLE + route, { method });
  assert.equal(response.status, 200, `oracle ${method} ${route}: ${response.status}`);
  return response.json();
}

/** The shared helpers every spec gets. */
function harness(browser, context, page) {
  mkdirSync(env.WEB_OUT, { recursive: true });
  const t = {
    env,
    url: env.WEB_URL,
    uids: JSON.parse(env.WEB_UIDS || '{}'),
    browser,
    context,
    page,
    assert,
    oracle,
    /** Runs one named check; the first failure ends the run. */
    async step(name, fn) {
      process.stdout.write(`- ${name} … `);
      try {
        await fn();
        console.log('ok');
      } catch (e) {
        console.log('FAILED');
        await page.screenshot({ path: path.join(env.WEB_OUT, `failed-${name.replace(/\W+/g, '-')}.png`) }).catch(() => {});
        throw e;
      }
    },
    /** A phone-size screenshot for people to look at. */
    async shot(name) {
      await page.screenshot({ path: path.join(env.WEB_OUT, `${name}.png`) });
    },
    /** axe-core on the page as it is: no serious or critical violations. */
    async axe(screen) {
      await page.evaluate(axeSource);
      const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
      const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      const words = bad.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
      assert.deepEqual(words, [], `accessibility on ${screen}`);
    },
    /** Goes to a route of the app (#/…) and waits for the screen to settle. */
    async go(hash) {
      await page.evaluate((h) => { location.hash = h; }, hash);
      await page.waitForFunction((h) => document.body.dataset.shown === h, hash);
    },
    /** Signs in with the test account unless signed in already. */
    async signIn() {
      const signed = await page.evaluate(() => !!localStorage.getItem('lemonade.session'));
      if (signed) return;
      await page.goto(env.WEB_URL + '/#/signin');
      await fillSignIn(page, env, env.WEB_PASS);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForSelector('ul.messages li');
    },
  };
  return t;
}

async function main() {
  const browser = await chromium.launch({
    executablePath: env.WEB_CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  let failed = false;
  try {
    const context = await browser.newContext({
      viewport: { width: 360, height: 740 },
      deviceScaleFactor: 1,
      hasTouch: true,
      serviceWorkers: 'allow',
      acceptDownloads: true,
    });
    await context.grantPermissions(['notifications'], { origin: env.WEB_URL });
    const page = await context.newPage();
    page.on('pageerror', (e) => console.log(`  [page error] ${e.message}`));
    page.on('requestfailed', (r) => console.log(`  [request failed] ${r.url()}: ${r.failure() && r.failure().errorText}`));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') console.log(`  [console ${m.type()}] ${m.text()}`);
    });
    const t = harness(browser, context, page);
    for (const name of specs()) {
      console.log(`${name}:`);
      const spec = await import(pathToFileURL(path.join(here, `${name}.spec.mjs`)).href);
      await spec.default(t);
    }
  } catch (e) {
    failed = true;
    console.log(e && e.stack ? e.stack : String(e));
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
}

main();
