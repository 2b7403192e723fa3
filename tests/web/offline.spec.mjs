// Coming back to the foreground syncs the list (the state token); going
// offline shows the list and the messages loaded before.
import { row } from './lib.mjs';

export default async function (t) {
  const { page, context, assert } = t;
  await t.signIn();
  await t.step('mail that arrived while away shows when the app comes back', async () => {
    await t.go('#/mb/INBOX');
    await page.waitForSelector('ul.messages li');
    await t.oracle('POST', `/append/INBOX?subject=${encodeURIComponent('Arrived while away')}`);
    await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
    await row(page, 'Arrived while away').waitFor();
    const first = await page.locator('ul.messages li .subject').first().innerText();
    assert.equal(first, 'Arrived while away');
  });
  await t.step('offline, the list and an opened message are still there', async () => {
    await t.go(`#/m/INBOX/${t.uids.welcome}`);
    await page.getByRole('heading', { name: 'Welcome to Lemonade' }).waitFor();
    await t.go('#/mb/INBOX');
    await page.waitForSelector('ul.messages li');
    await context.setOffline(true);
    try {
      await page.reload();
      await row(page, 'Welcome to Lemonade').waitFor();
      assert.match(await page.locator('#online').innerText(), /Offline/);
      await page.getByText('Showing the messages loaded before.').waitFor();
      await t.shot('09-offline-list');
      await t.go(`#/m/INBOX/${t.uids.welcome}`);
      await page.getByRole('heading', { name: 'Welcome to Lemonade' }).waitFor();
      assert.match(await page.locator('#body-text').innerText(), /first message of the test/);
    } finally {
      await context.setOffline(false);
    }
    await page.reload();
    await page.waitForFunction(() => !document.body.classList.contains('offline'));
  });
}
