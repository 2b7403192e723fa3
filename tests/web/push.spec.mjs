// Notifications: the settings screen (a browser that cannot subscribe says
// so), then real pushes from the gateway given to the service worker
// through the DevTools protocol (headless Chromium has no push service).

async function registration(t) {
  const cdp = await t.context.newCDPSession(t.page);
  const found = new Promise((resolve) => {
    cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
      const r = registrations.find((x) => x.scopeURL === `${t.url}/` && !x.isDeleted);
      if (r) resolve(r);
    });
  });
  await cdp.send('ServiceWorker.enable');
  return { cdp, id: (await found).registrationId };
}

async function deliver(t, sw, subject) {
  const { plaintext } = await t.oracle('POST', `/push?subject=${encodeURIComponent(subject)}`);
  const payload = JSON.parse(plaintext);
  t.assert.equal(payload.type, 'mail');
  await sw.cdp.send('ServiceWorker.deliverPushMessage', { origin: t.url, registrationId: String(sw.id), data: plaintext });
  // The notifications shown at the moment the new one is there (asked
  // again until it is, for at most 30 s).
  const shown = await t.page.evaluate(async (s) => {
    const reg = await navigator.serviceWorker.ready;
    for (let i = 0; i < 600; i++) {
      const all = (await reg.getNotifications()).map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data }));
      if (all.some((n) => n.body.includes(s))) return all;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return null;
  }, subject);
  t.assert.ok(shown, `no notification for "${subject}"`);
  return { payload, shown };
}

export default async function (t) {
  const { page, assert } = t;
  await t.signIn();
  await t.step('the settings say in words what a notification shows', async () => {
    await t.go('#/settings');
    await page.getByText('Sender, subject and the first lines of the message').waitFor();
    await page.locator('input[name=folder][value=INBOX]').waitFor();
    assert.ok(await page.locator('input[name=folder][value=INBOX]').isChecked());
    await t.shot('08-settings');
    await t.axe('settings');
  });
  await t.step('a browser that cannot subscribe says so, and the rest keeps working', async () => {
    await page.locator('#notify-on').click();
    const said = page.locator('.notice.error, .notice.ok');
    await said.first().waitFor();
    const text = await said.first().innerText();
    // Headless Chromium has no push service to subscribe with.
    assert.match(text, /could not subscribe|Notifications are on/);
    await t.go('#/mb/INBOX');
    await page.waitForSelector('ul.messages li');
  });
  await t.step('a push from the gateway shows a notification with sender, subject and preview', async () => {
    const sw = await registration(t);
    const { payload, shown } = await deliver(t, sw, 'Lunch tomorrow');
    assert.equal(shown.length, 1, JSON.stringify(shown));
    assert.equal(shown[0].title, 'Dana Sender');
    assert.match(shown[0].body, /^Lunch tomorrow\nAre we still on for lunch tomorrow\?/);
    assert.equal(shown[0].tag, `mail:${payload.account_id}:INBOX`);
    assert.equal(shown[0].data.hash, `#/m/INBOX/${payload.messages[0].uid}`);
    t.pushSession = sw;
  });
  await t.step('a second push for the same folder replaces the first', async () => {
    const { shown } = await deliver(t, t.pushSession, 'Dessert too');
    t.lastPush = { shown };
    assert.equal(shown.length, 1, JSON.stringify(shown));
    assert.match(shown[0].body, /^Dessert too\n/);
  });
  await t.step('mail read elsewhere takes its notification away', async () => {
    const shown = t.lastPush.shown[0];
    const { plaintext } = await t.oracle('POST', `/read?uid=${shown.data.uid}`);
    const payload = JSON.parse(plaintext);
    assert.equal(payload.type, 'read');
    assert.deepEqual(payload.uids, [shown.data.uid]);
    const sw = t.pushSession;
    await sw.cdp.send('ServiceWorker.deliverPushMessage', { origin: t.url, registrationId: String(sw.id), data: plaintext });
    const left = await page.evaluate(async () => {
      const reg = await navigator.serviceWorker.ready;
      for (let i = 0; i < 600; i++) {
        const all = await reg.getNotifications();
        if (all.length === 0) return 0;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return (await reg.getNotifications()).length;
    });
    assert.equal(left, 0, 'the notification of the message read elsewhere is gone');
  });
  await t.step('tapping the notification opens that message', async () => {
    const [worker] = t.context.serviceWorkers();
    assert.ok(worker, 'the service worker runs');
    const { shown } = t.lastPush;
    await worker.evaluate((data) => self.openFromNotification({ data, close() {} }), shown[0].data);
    await page.waitForFunction((h) => document.body.dataset.shown === h, shown[0].data.hash);
    await page.getByRole('heading', { name: 'Dessert too' }).waitFor();
  });
}
