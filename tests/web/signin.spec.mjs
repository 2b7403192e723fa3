// Signing in: a wrong password is said in words, the right one opens the inbox.
import { fillSignIn } from './lib.mjs';

export default async function (t) {
  const { page, assert, env } = t;
  await t.step('the sign-in screen shows, and passes the accessibility check', async () => {
    await page.goto(t.url + '/');
    await page.waitForSelector('form #email');
    assert.match(page.url(), /#\/signin$/);
    await t.shot('01-sign-in');
    await t.axe('sign-in');
  });
  await t.step('a wrong password is shown as such', async () => {
    await fillSignIn(page, env, 'not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.innerText(), /did not accept your user name or password/);
    await t.shot('02-sign-in-wrong-password');
  });
  await t.step('the right password opens the inbox with the mailbox’s mail', async () => {
    await page.getByLabel('Password').fill(env.WEB_PASS);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForSelector('ul.messages li');
    assert.match(page.url(), /#\/mb\/INBOX$/);
    const first = await page.locator('ul.messages li').first().innerText();
    assert.match(first, /Welcome to Lemonade/);
    assert.match(first, /This is the first message of the test/);
    const token = await page.evaluate(() => JSON.parse(localStorage.getItem('lemonade.session')).token);
    assert.ok(token && !page.url().includes(token), 'the token is never in the URL');
  });
}
