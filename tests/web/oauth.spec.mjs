// Signing in with a provider's button (run alone, by tests/send/web_oauth.rs,
// against a gateway with an OAuth provider).

export default async function (t) {
  const { page, assert } = t;
  await t.step('the provider button signs in through the provider and opens the inbox', async () => {
    await page.goto(t.url + '/');
    const button = page.getByRole('button', { name: 'Sign in with fakeas' });
    await button.waitFor();
    await t.shot('12-sign-in-with-provider');
    await t.axe('sign-in with a provider');
    await button.click();
    await page.waitForFunction(() => document.body.dataset.shown === '#/mb/INBOX');
    await page.getByText('Signed in by provider').waitFor();
    assert.equal(new URL(page.url()).search, '', 'the grant is gone from the address');
    await t.go('#/settings');
    await page.getByText(`Signed in as ${t.env.WEB_EMAIL}`).waitFor();
  });
}
