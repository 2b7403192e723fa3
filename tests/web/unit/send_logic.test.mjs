// Unit tests of the send logic (web/js/uploads.js, web/js/outbox.js) against
// an in-memory gateway with scripted faults. Run: node --test tests/web/unit/
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createOutbox, newRecord, sendBody } from '../../../web/js/outbox.js';
import { OfflineError, uploadBlob, uploadMetadata } from '../../../web/js/uploads.js';
import { FakeGateway, memoryStore } from './fake_gateway.mjs';

const noSleep = async () => {};

function fileOf(n, name = 'photo.jpg') {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 1) bytes[i] = (i * 7 + 3) % 251;
  return { file: new File([bytes], name, { type: 'image/jpeg' }), bytes };
}

test('upload metadata names the file in base64 of its UTF-8', () => {
  assert.equal(
    uploadMetadata({ name: 'Grüße.txt', type: 'text/plain' }),
    `filename ${Buffer.from('Grüße.txt').toString('base64')},filetype ${Buffer.from('text/plain').toString('base64')}`,
  );
});

test('an upload goes in chunks and ends with every byte, in order', async () => {
  const gw = new FakeGateway();
  const { file, bytes } = fileOf(1000);
  const states = [];
  const done = await uploadBlob(file, {}, {
    api: gw.api,
    chunkBytes: 300,
    sleep: noSleep,
    onState: (s) => states.push(s),
  });
  assert.equal(done.done, true);
  const up = gw.uploads.get(done.upload_id);
  assert.deepEqual(up.bytes, bytes);
  assert.equal(gw.requests.filter((r) => r.method === 'PATCH').length, 4);
  assert.deepEqual(
    states.map((s) => s.offset),
    [0, 300, 600, 900, 1000, 1000],
  );
});

test('a connection dropped mid-chunk resumes from the offset the server has', async () => {
  const gw = new FakeGateway();
  const { file, bytes } = fileOf(1000);
  let patches = 0;
  // The second PATCH delivers 120 of its 300 bytes, then the link drops.
  gw.fault = (method) => (method === 'PATCH' && ++patches === 2 ? 120 : undefined);
  const done = await uploadBlob(file, {}, { api: gw.api, chunkBytes: 300, sleep: noSleep });
  assert.deepEqual(gw.uploads.get(done.upload_id).bytes, bytes);
  const heads = gw.requests.filter((r) => r.method === 'HEAD');
  assert.equal(heads.length, 1, 'the offset is asked for once, after the drop');
  const offsets = gw.requests
    .filter((r) => r.method === 'PATCH')
    .map((r) => Number(r.headers['Upload-Offset']));
  assert.deepEqual(offsets, [0, 300, 420, 720]);
});

test('a lost answer to a PATCH that arrived whole does not append twice', async () => {
  const gw = new FakeGateway();
  const { file, bytes } = fileOf(700);
  let patches = 0;
  gw.fault = (method) =>
    method === 'PATCH' && ++patches === 1
      ? () => {
          throw new TypeError('answer lost');
        }
      : undefined;
  const done = await uploadBlob(file, {}, { api: gw.api, chunkBytes: 500, sleep: noSleep });
  assert.deepEqual(gw.uploads.get(done.upload_id).bytes, bytes);
});

test('an upload resumes from a kept state after a reload', async () => {
  const gw = new FakeGateway();
  const { file, bytes } = fileOf(900);
  let saved = {};
  gw.fault = (method, path, o) => (method === 'PATCH' && o.headers['Upload-Offset'] === '300' ? 0 : undefined);
  gw.online = true;
  await assert.rejects(
    uploadBlob(file, {}, {
      api: gw.api,
      chunkBytes: 300,
      sleep: noSleep,
      isOnline: () => !gw.fault,
      onState: (s) => (saved = s),
    }),
    OfflineError,
  );
  assert.equal(saved.offset, null, 'the offset is unknown after a failure');
  gw.fault = null;
  const creates = gw.requests.filter((r) => r.method === 'POST').length;
  const done = await uploadBlob(file, saved, { api: gw.api, chunkBytes: 300, sleep: noSleep });
  assert.equal(done.upload_id, saved.upload_id);
  assert.equal(gw.requests.filter((r) => r.method === 'POST').length, creates, 'no new upload');
  assert.deepEqual(gw.uploads.get(done.upload_id).bytes, bytes);
});

test('an error that cannot be helped by trying again ends the upload', async () => {
  const gw = new FakeGateway();
  const { file } = fileOf(10);
  gw.fault = (method) => {
    if (method === 'POST') {
      const err = new Error('quota');
      Object.assign(err, { status: 507, code: 'upload_quota_exceeded' });
      throw err;
    }
  };
  await assert.rejects(uploadBlob(file, {}, { api: gw.api, sleep: noSleep }), { code: 'upload_quota_exceeded' });
  assert.equal(gw.requests.length, 1);
});

function outboxOn(gw, store = memoryStore(), extra = {}) {
  return createOutbox({
    api: gw.api,
    store,
    describeError: (e) => `words for ${e.code}`,
    isOnline: () => gw.online,
    sleep: noSleep,
    uploadOptions: { chunkBytes: 256 },
    ...extra,
  });
}

test('a message with a file and a forwarded part is uploaded, sent once and followed to done', async () => {
  const gw = new FakeGateway();
  const store = memoryStore();
  const outbox = outboxOn(gw, store);
  const { file, bytes } = fileOf(600, 'notes.txt');
  const seen = [];
  outbox.subscribe((r) => seen.push(r.state));
  const record = await outbox.enqueue({
    to: ['a@example.org'],
    subject: 'Re: hi',
    text: 'body',
    in_reply_to: { mailbox: 'INBOX', uid: 7 },
    attachments: [{ file }, { ref: { mailbox: 'INBOX', uid: 3, part: '2' }, filename: 'plan.pdf' }],
  });
  const final = await outbox.process(record.id);
  assert.equal(final.state, 'done');
  assert.equal(gw.sends.size, 1);
  const [send] = gw.sends.values();
  assert.deepEqual(send.json.in_reply_to, { mailbox: 'INBOX', uid: 7 });
  assert.equal(send.json.attachments.length, 2);
  assert.deepEqual(send.json.attachments[1], { ref: { mailbox: 'INBOX', uid: 3, part: '2' }, filename: 'plan.pdf' });
  assert.deepEqual(gw.uploads.get(send.json.attachments[0].upload_id).bytes, bytes);
  assert.equal(send.json.attachments[0].filename, 'notes.txt');
  const posts = gw.requests.filter((r) => r.path === '/v1/send');
  assert.equal(posts[0].headers['Idempotency-Key'], record.key);
  assert.ok(seen.includes('uploading') && seen.includes('sending'));
  assert.equal(store.records.has(record.id), false, 'nothing kept once sent');
});

test('a send made offline waits, then goes out once when the connection returns', async () => {
  const gw = new FakeGateway();
  gw.online = false;
  const outbox = outboxOn(gw);
  const { file } = fileOf(300);
  const record = await outbox.enqueue({ to: ['a@example.org'], subject: 's', text: 't', attachments: [{ file }] });
  assert.equal((await outbox.process(record.id)).state, 'waiting');
  assert.equal(gw.requests.length, 0, 'nothing tried while offline');
  gw.online = true;
  // The online event and the app start may both flush at once.
  const final = await Promise.all([outbox.flush(), outbox.flush(), outbox.process(record.id)]);
  assert.equal(final[2].state, 'done');
  assert.equal(await outbox.get(record.id), undefined, 'nothing kept once sent');
  assert.equal(gw.sends.size, 1);
  assert.equal(gw.requests.filter((r) => r.path === '/v1/send').length, 1);
});

test('a POST whose answer was lost is repeated with the same key and sends once', async () => {
  const gw = new FakeGateway();
  let posts = 0;
  gw.fault = (method, path) => {
    if (path === '/v1/send' && ++posts === 1) {
      return () => {
        gw.online = false;
        throw new TypeError('Failed to fetch');
      };
    }
  };
  const outbox = outboxOn(gw);
  const record = await outbox.enqueue({ to: ['a@example.org'], subject: 's', text: 't' });
  assert.equal((await outbox.process(record.id)).state, 'waiting');
  assert.equal(gw.sends.size, 1, 'the gateway took it');
  gw.online = true;
  await outbox.flush();
  assert.equal(await outbox.get(record.id), undefined, 'sent, so not kept');
  assert.equal(gw.sends.size, 1, 'still one send');
  const keys = gw.requests.filter((r) => r.path === '/v1/send').map((r) => r.headers['Idempotency-Key']);
  assert.deepEqual(keys, [record.key, record.key]);
});

test('a send the gateway reports failed shows its reason in words', async () => {
  const gw = new FakeGateway();
  gw.statusScript = ['queued', 'failed'];
  const outbox = outboxOn(gw);
  const record = await outbox.enqueue({ to: ['a@example.org'], subject: 's', text: 't' });
  const final = await outbox.process(record.id);
  assert.equal(final.state, 'failed');
  assert.equal(final.error.code, 'smtp_rejected');
  assert.equal(final.error.message, 'words for smtp_rejected');
});

test('a send refused before it was stored can be tried again with its files', async () => {
  const gw = new FakeGateway();
  let refuse = true;
  gw.fault = (method, path) => {
    if (path === '/v1/send' && refuse) {
      const err = new Error('down');
      Object.assign(err, { status: 502, code: 'smtp_unreachable' });
      throw err;
    }
  };
  const outbox = outboxOn(gw);
  const { file } = fileOf(100);
  const record = await outbox.enqueue({ to: ['a@example.org'], subject: 's', text: 't', attachments: [{ file }] });
  const failed = await outbox.process(record.id);
  assert.equal(failed.state, 'failed');
  assert.equal(failed.error.message, 'words for smtp_unreachable');
  refuse = false;
  assert.equal((await outbox.retry(record.id)).state, 'done');
  assert.equal(gw.sends.size, 1);
});

test('the send body carries uploads by id and parts by reference', () => {
  const record = newRecord({
    to: ['a@example.org'],
    attachments: [{ ref: { mailbox: 'INBOX', uid: 1, part: '3' } }],
  });
  assert.deepEqual(sendBody(record).attachments, [{ ref: { mailbox: 'INBOX', uid: 1, part: '3' } }]);
  assert.notEqual(record.key, newRecord({}).key);
});

test('a request that fails while the browser thinks it is online is tried again by itself', async () => {
  const gw = new FakeGateway();
  let failures = 2;
  gw.fault = (method, path) => {
    if (path === '/v1/send' && failures > 0) {
      failures -= 1;
      throw new TypeError('Failed to fetch');
    }
  };
  const waits = [];
  const outbox = outboxOn(gw, memoryStore(), { sleep: async (ms) => void waits.push(ms) });
  const done = new Promise((resolve) => outbox.subscribe((r) => r.state === 'done' && resolve(r)));
  const record = await outbox.enqueue({ to: ['a@example.org'], subject: 's', text: 't' });
  assert.equal((await done).id, record.id);
  assert.equal(gw.sends.size, 1);
  assert.deepEqual(waits.slice(0, 2), [2000, 4000], 'waits longer each time');
});

test('a send refused for what it is (4xx) is not tried again', async () => {
  const gw = new FakeGateway();
  gw.fault = (method, path) => {
    if (path === '/v1/send') {
      const err = new Error('gone');
      Object.assign(err, { status: 422, code: 'unknown_message' });
      throw err;
    }
  };
  const outbox = outboxOn(gw);
  const record = await outbox.enqueue({ to: ['a@example.org'], subject: 's', text: 't' });
  const failed = await outbox.process(record.id);
  assert.equal(failed.state, 'failed');
  assert.equal(failed.error.retryable, false);
  assert.equal((await outbox.retry(record.id)).state, 'failed');
  assert.equal(gw.requests.filter((r) => r.path === '/v1/send').length, 1);
});

test('a message removed while it is being sent (sign-out) is not written back', async () => {
  const gw = new FakeGateway();
  const store = memoryStore();
  gw.fault = (method, path) => {
    if (path === '/v1/send') {
      store.records.clear();
      const err = new Error('revoked');
      Object.assign(err, { status: 401, code: 'unauthorized' });
      throw err;
    }
  };
  const outbox = outboxOn(gw, store);
  const { file } = fileOf(300);
  const record = await outbox.enqueue({ to: ['a@example.org'], subject: 's', text: 't', attachments: [{ file }] });
  assert.equal(await outbox.process(record.id), undefined);
  assert.equal(store.records.size, 0, 'nothing kept');
});
