"""The steps of the flow that flow.py runs: what an app does, in order, each
through `flow.call`/`flow.get` (the generated client), with the checks an
app would rely on. Returns what the Rust test checks afterwards."""

import base64
import time


def expect(condition, message):
    """Fails the step (an AssertionError keeps its message under -O too)."""
    if not condition:
        raise AssertionError(message)


def run(flow, config):
    mail = config["mail"]
    account = register(flow, config)
    device_id = add_device(flow, config)
    original_id = read(flow, mail)
    upload_id = upload(flow, base64.b64decode(mail["upload"]))
    send_id = reply(flow, mail, upload_id, original_id)
    change(flow, mail)
    search(flow, mail)
    flow.call("deleteDevice", device_id=device_id)
    flow.call("deleteAccount")
    return {**account, "device_id": device_id, "send_id": send_id}


def register(flow, config):
    _, created = flow.call(
        "createAccount",
        body={"email": config["email"], "imap": config["imap"], "smtp": config["smtp"]},
    )
    expect(created.account_id and created.token, f"no id or token: {created}")
    flow.authenticate(created.token)
    account = flow.get("getAccount")
    expect(account.account_id == created.account_id, f"another account: {account}")
    return {"account_id": created.account_id, "token": created.token}


RULES = {
    "quiet_hours": {"start": "22:00", "end": "07:00", "days": ["sat", "sun"],
                    "time_zone": "Europe/Berlin"},
    "except_vip": True,
    "vip": ["boss@example.org"],
    "only_direct": False,
    "mute_lists": True,
    "mute_senders": [],
}


def without(fields, name):
    return {k: v for k, v in fields.items() if k != name}


def add_device(flow, config):
    _, created = flow.call(
        "createDevice",
        body={"subscription": config["subscription"], "mailboxes": ["INBOX"], "payload": "count",
              "rules": RULES, "clear": True},
    )
    expect(created.device_id, f"no device id: {created}")
    expect(created.rules.vip == ["boss@example.org"] and created.clear, f"created: {created}")
    _, updated = flow.call(
        "updateDevice",
        device_id=created.device_id,
        body={"rules": {**without(RULES, "quiet_hours"), "only_direct": True}, "clear": False},
    )
    expect(updated.rules.only_direct and not updated.rules.HasField("quiet_hours"),
           f"updated: {updated}")
    expect(updated.device_id == created.device_id and not updated.clear, f"updated: {updated}")
    listed = flow.get("listDevices")
    ids = [d.device_id for d in listed.devices]
    expect(ids == [created.device_id], f"devices listed: {ids}")
    expect(listed.devices[0] == updated, f"listed {listed.devices[0]}, patched {updated}")
    _, tested = flow.call("testDevice", device_id=created.device_id)
    expect(tested.delivered, f"test push not delivered: {tested}")
    return created.device_id


def read(flow, mail):
    """Mailboxes, the listing, the original message and a range of its
    attachment; returns the original's Message-ID."""
    boxes = flow.get("listMailboxes")
    names = [m.name for m in boxes.mailboxes]
    expect("INBOX" in names and mail["archive"] in names, f"mailboxes: {names}")
    listing = flow.get("listMessages", mailbox="INBOX", limit=50)
    uids = [m.uid for m in listing.messages]
    expect(mail["original_uid"] in uids, f"listed: {uids}")
    message = flow.get("getMessage", mailbox="INBOX", uid=mail["original_uid"])
    expect(message.message_id == mail["original_message_id"], f"read: {message.message_id}")
    attachment = base64.b64decode(mail["attachment"])
    response, _ = flow.call(
        "getPart",
        mailbox="INBOX",
        uid=mail["original_uid"],
        part=mail["attachment_part"],
        range="bytes=100-1099",
    )
    expect(response.content == attachment[100:1100], "the range's bytes differ")
    content_range = response.headers.get("content-range")
    expect(content_range == f"bytes 100-1099/{len(attachment)}", f"Content-Range: {content_range}")
    return message.message_id


def upload(flow, data):
    """A resumable upload in two pieces; returns its id."""
    half = len(data) // 2
    _, created = flow.call("createUpload", body=data[:half], upload_length=len(data))
    expect(created.upload_id and not created.sha256, f"created: {created}")
    upload_id = created.upload_id
    head, _ = flow.call("headUpload", upload_id=upload_id)
    offset = head.headers.get("upload-offset")
    expect(offset == str(half), f"Upload-Offset after the first piece: {offset}")
    view = flow.get("getUpload", upload_id=upload_id)
    expect(view.upload_id == upload_id, f"viewed: {view}")
    _, done = flow.call(
        "appendUpload", upload_id=upload_id, body=data[half:], upload_offset=half
    )
    expect(done.sha256, f"complete but no sha256: {done}")
    return upload_id


def reply(flow, mail, upload_id, original_id):
    """A reply to the original with the upload attached; waits until done."""
    _, accepted = flow.call(
        "sendMessage",
        idempotency_key="contract-reply-1",
        body={
            "to": [mail["reply_to"]],
            "subject": "Re: the report",
            "text": "Thanks, attached.",
            "attachments": [{"upload_id": upload_id, "filename": "notes.bin"}],
            "in_reply_to": {"mailbox": "INBOX", "uid": mail["original_uid"]},
        },
    )
    send_id = accepted.send_id
    expect(send_id, f"no send id: {accepted}")
    deadline = time.monotonic() + 60
    while True:
        status = flow.get("getSendStatus", send_id=send_id)
        if status.status in ("done", "failed"):
            break
        expect(time.monotonic() < deadline, f"the send never finished: {status}")
        time.sleep(0.1)
    expect(status.status == "done", f"the send failed: {status}")
    expect(status.message_id and "<" not in status.message_id, f"Message-ID: {status.message_id}")
    expect(original_id not in ("", status.message_id), "the reply reuses the original's id")
    return send_id


def change(flow, mail):
    """Flags one paging message, moves the first, deletes the second."""
    first, second, third = mail["paging_uids"][:3]
    _, flagged = flow.call(
        "setFlags", body={"mailbox": "INBOX", "uids": [third], "add": ["\\Flagged"], "remove": []}
    )
    expect(list(flagged.uids) == [third], f"flagged: {flagged}")
    _, moved = flow.call(
        "moveMessages",
        body={"mailbox": "INBOX", "uids": [first], "destination": mail["archive"]},
    )
    expect(list(moved.uids) == [first], f"moved: {moved}")
    _, deleted = flow.call("deleteMessages", body={"mailbox": "INBOX", "uids": [second]})
    expect(list(deleted.uids) == [second], f"deleted: {deleted}")


def search(flow, mail):
    """Pages through the remaining paging messages two at a time."""
    wanted = sorted(mail["paging_uids"][2:], reverse=True)
    found, cursor, pages = [], None, 0
    while True:
        given = {"mailbox": "INBOX", "subject": "paging", "limit": 2}
        if cursor:
            given["cursor"] = cursor
        page = flow.get("searchMessages", **given)
        pages += 1
        found += [m.uid for m in page.messages]
        cursor = page.next_cursor
        expect(pages <= len(wanted), f"more pages than messages: {found}")
        if not cursor:
            break
    expect(found == wanted, f"search pages gave {found}, wanted {wanted}")
    expect(pages == 2, f"{pages} pages for {len(wanted)} messages two at a time")
