// Signing out revokes the token and leaves nothing of the mail behind.

export default async function (t) {
  const { page, assert } = t;
  await t.signIn();
  await t.step('signing out revokes the token and clears the stored mail', async () => {
    const token = await page.evaluate(() => JSON.parse(localStorage.getItem('lemonade.session')).token);
    await t.go('#/settings');
    await page.locator('#sign-out').click();
    await page.waitForFunction(() => location.hash === '#/signin');
    assert.equal(await page.evaluate(() => localStorage.getItem('lemonade.session')), null);
    const kept = await page.evaluate(() => new Promise((resolve, reject) => {
      const req = indexedDB.open('lemonade');
      req.onsuccess = () => {
        const db = req.result;
        const names = [...db.objectStoreNames];
        const tx = db.transaction(names, 'readonly');
        let total = 0;
        for (const n of names) tx.objectStore(n).count().onsuccess = (e) => { total += e.target.result; };
        tx.oncomplete = () => resolve(total);
        tx.onerror = () => reject(tx.error);
      };
      req.onerror = () => reject(req.error);
    }));
    assert.equal(kept, 0, 'nothing of the mail is kept');
    const answer = await fetch(`${t.url}/v1/accounts/me`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(answer.status, 401, 'the token is revoked');
  });
}
