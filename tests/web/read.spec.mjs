// Reading: the list (newest first, more on scrolling), a message's text,
// HTML in the sandbox without its script, attachments, folders.
import { row } from './lib.mjs';

export default async function (t) {
  const { page, assert } = t;
  await t.signIn();
  await t.step('the inbox lists newest first, with previews', async () => {
    await t.go('#/mb/INBOX');
    const subjects = await page.locator('ul.messages li .subject').allInnerTexts();
    assert.equal(subjects[0], 'Welcome to Lemonade');
    assert.ok(subjects.indexOf('Fruit order') < subjects.indexOf('Newsletter number 60'));
    assert.ok(!subjects.includes('Newsletter number 1'), 'the first page is not everything');
    await t.shot('03-inbox');
    await t.axe('inbox');
  });
  await t.step('scrolling down loads older messages', async () => {
    await page.waitForFunction(() => {
      const sentinel = document.querySelector('.sentinel');
      sentinel.scrollIntoView();
      return sentinel.textContent === 'No older messages.';
    });
    assert.equal(await row(page, 'Newsletter number 1').count(), 1);
    assert.equal(await page.locator('ul.messages li').count(), 67);
  });
  await t.step('opening a message shows its text', async () => {
    await t.go(`#/m/INBOX/${t.uids.welcome}`);
    await page.getByRole('heading', { name: 'Welcome to Lemonade' }).waitFor();
    assert.match(await page.locator('#body-text').innerText(), /This is the first message of the test\./);
    await t.shot('04-message');
    await t.axe('message');
  });
  await t.step('an HTML message renders in the sandbox without running its script', async () => {
    await t.go(`#/m/INBOX/${t.uids.html}`);
    assert.match(await page.locator('#body-text').innerText(), /in plain words/);
    await page.locator('#show-html').click();
    const iframe = page.locator('iframe.html-frame');
    await iframe.waitFor();
    const sandbox = await iframe.getAttribute('sandbox');
    assert.ok(!sandbox.includes('allow-scripts') && !sandbox.includes('allow-same-origin'), sandbox);
    const frame = page.frameLocator('iframe.html-frame');
    await frame.locator('#title').waitFor();
    assert.equal(await frame.locator('#title').innerText(), 'Weekly report');
    assert.equal(await frame.locator('body').getAttribute('data-ran'), null, 'no script ran');
    assert.equal(await frame.locator('#remote').getAttribute('src'), null, 'the remote image waits');
    assert.match(await page.locator('#show-images').innerText(), /Show 1 remote image/);
    const doc = await page.locator('iframe.html-frame').getAttribute('srcdoc');
    assert.ok(!/onerror|<script/i.test(doc), doc);
    await t.shot('05-message-html');
    await t.axe('message (HTML)');
  });
  await t.step('attachments are listed with their sizes and download on tap', async () => {
    await t.go(`#/m/INBOX/${t.uids.report}`);
    const item = page.locator('.attachments li', { hasText: 'report.bin' });
    assert.match(await item.innerText(), /4\.9 kB/);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      item.getByRole('button', { name: 'Download report.bin' }).click(),
    ]);
    assert.equal(download.suggestedFilename(), 'report.bin');
    const file = await download.path();
    const { statSync } = await import('node:fs');
    assert.equal(statSync(file).size, 5000);
  });
  await t.step('folders show their unread counts', async () => {
    await t.go('#/folders');
    const inbox = page.locator('.folders li', { hasText: 'INBOX' });
    assert.match(await inbox.locator('.count').getAttribute('aria-label'), /^\d+ unread$/);
    assert.equal(await page.locator('.folders li', { hasText: 'Archive' }).count(), 1);
    await t.shot('06-folders');
    await t.axe('folders');
  });
  await t.step('the data used figure counts what came and went', async () => {
    const text = await page.locator('#data-used').innerText();
    assert.match(text, /Data used: [\d.]+ (kB|MB) received/);
  });
  await t.step('on a desktop the same screens fit a wide window', async () => {
    await page.setViewportSize({ width: 1280, height: 800 });
    try {
      await t.go('#/mb/INBOX');
      await page.waitForSelector('ul.messages li');
      await t.shot('10-inbox-desktop');
      await t.go(`#/m/INBOX/${t.uids.welcome}`);
      await page.getByRole('heading', { name: 'Welcome to Lemonade' }).waitFor();
      await t.shot('11-message-desktop');
      await t.axe('message (desktop)');
    } finally {
      await page.setViewportSize({ width: 360, height: 740 });
    }
  });
}
