"""The whole flow of an app, through a client generated from the served
OpenAPI document by openapi-python-client, with every answer decoded
strictly as the proto message the document names for it.

Run by tests/contract/mod.rs, which starts the gateway, Dovecot (relaying
to an SMTP sink) and a Web Push receiver, generates the client, compiles
proto/ for Python and passes their places here. Requests go through the
generated client only; the one exception is the protobuf re-check of the
GETs (see `Flow.recheck_protobuf`), which the generated client cannot ask
for.

Before the flow runs, the document is checked for what the flow needs
(operationIds, request bodies, parameters, answers and their schemas), so
that one run lists every gap. The flow then stops at its first failing
step, with a traceback.
"""

import argparse
import base64
import importlib
import inspect
import io
import json
import pkgutil
import re
import sys
import time
import typing
import urllib.request

from steps import run  # the steps of the flow, beside this file

# What the flow calls: operationId -> (statuses it expects, body kind,
# header parameters it sends). Body kinds: "json", "bytes" or None.
OPERATIONS = {
    "createAccount": ((201,), "json", ()),
    "createDevice": ((201,), "json", ()),
    "listDevices": ((200,), None, ()),
    "updateDevice": ((200,), "json", ()),
    "testDevice": ((200,), None, ()),
    "getAccount": ((200,), None, ()),
    "listMailboxes": ((200,), None, ()),
    "listMessages": ((200,), None, ()),
    "getMessage": ((200,), None, ()),
    "getPart": ((206,), None, ("Range",)),
    "createUpload": ((201,), "bytes", ("Upload-Length",)),
    "headUpload": ((200,), None, ()),
    "getUpload": ((200,), None, ()),
    "appendUpload": ((200,), "bytes", ("Upload-Offset",)),
    "sendMessage": ((200, 202), "json", ("Idempotency-Key",)),
    "getSendStatus": ((200,), None, ()),
    "setFlags": ((200,), "json", ()),
    "moveMessages": ((200,), "json", ()),
    "deleteMessages": ((200,), "json", ()),
    "searchMessages": ((200,), None, ()),
    "deleteDevice": ((204,), None, ()),
    "deleteAccount": ((204,), None, ()),
}

PROTOBUF = "application/x-protobuf"


class StepFailed(Exception):
    """A step of the flow did not get what the contract promises."""


def snake(name):
    """openapi-python-client's module name for an operationId."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


class Document:
    """The served OpenAPI document, by operationId."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.raw = json.load(f)
        self.ops = {}
        for url, item in self.raw.get("paths", {}).items():
            for method, op in item.items():
                if isinstance(op, dict) and "operationId" in op:
                    self.ops[op["operationId"]] = (method, url, op)

    def answer(self, op_id, status):
        """The document's response object for `status`, or None."""
        _, _, op = self.ops[op_id]
        return op.get("responses", {}).get(str(status))

    def message_name(self, op_id, status, media="application/json"):
        """The schema name the answer's `media` content refers to, or None."""
        answer = self.answer(op_id, status) or {}
        schema = answer.get("content", {}).get(media, {}).get("schema", {})
        ref = schema.get("$ref", "")
        return ref.rsplit("/", 1)[-1] or None

    def gaps(self):
        """What the flow needs that the document lacks, one line each."""
        found = []
        for op_id, (statuses, body, headers) in OPERATIONS.items():
            if op_id not in self.ops:
                found.append(f"{op_id}: no operation with this operationId")
                continue
            method, url, op = self.ops[op_id]
            where = f"{op_id} ({method.upper()} {url})"
            content = op.get("requestBody", {}).get("content", {})
            if body == "json" and "application/json" not in content:
                found.append(f"{where}: no application/json request body")
            if body == "bytes" and not content:
                found.append(f"{where}: no request body")
            declared = {p.get("name", "").lower() for p in op.get("parameters", [])}
            for header in headers:
                if header.lower() not in declared:
                    found.append(f"{where}: no `{header}` header parameter")
            for status in statuses:
                answer = self.answer(op_id, status)
                if answer is None:
                    found.append(f"{where}: no {status} answer")
                elif status not in (204, 206) and method != "head":
                    if not self.message_name(op_id, status):
                        found.append(f"{where}: the {status} answer has no schema $ref")
        return found


class Messages:
    """The proto messages compiled by grpcio-tools' protoc, by short name."""

    def __init__(self, pb_dir):
        sys.path.insert(0, pb_dir)
        from google.protobuf import json_format, message_factory
        from google.protobuf import descriptor_pool

        self.json_format = json_format
        for info in pkgutil.walk_packages([pb_dir + "/lemonade/v1"], "lemonade.v1."):
            if info.name.endswith("_pb2"):
                importlib.import_module(info.name)
        self.pool = descriptor_pool.Default()
        self.factory = message_factory

    def new(self, name):
        try:
            descriptor = self.pool.FindMessageTypeByName(f"lemonade.v1.{name}")
        except KeyError:
            raise StepFailed(f"no message lemonade.v1.{name} in proto/") from None
        return self.factory.GetMessageClass(descriptor)()

    def from_json(self, name, content):
        """Strict proto3 JSON parsing: unknown fields are errors."""
        message = self.new(name)
        try:
            self.json_format.Parse(content, message, ignore_unknown_fields=False)
        except self.json_format.ParseError as e:
            raise StepFailed(f"the JSON answer is not a {name}: {e}: {content[:600]!r}") from None
        return message

    def from_protobuf(self, name, content):
        """Binary parsing that fails on fields the message does not have."""
        message = self.new(name)
        message.ParseFromString(content)
        size = message.ByteSize()
        message.DiscardUnknownFields()
        if message.ByteSize() != size:
            raise StepFailed(f"the protobuf answer has fields {name} does not know")
        return message


class Flow:
    """The generated client, the document and the messages, with the checks
    every call gets."""

    def __init__(self, args, config):
        self.doc = Document(args.document)
        self.messages = Messages(args.pb)
        sys.path.insert(0, args.client)
        self.package = importlib.import_module("lemonade_client")
        self.types = importlib.import_module("lemonade_client.types")
        self.modules = self.operation_modules()
        self.config = config
        self.token = None
        self.last_url = None
        self.client = self.package.Client(base_url=config["base_url"], httpx_args=self.hooks())
        self.log = []

    def operation_modules(self):
        """Each generated operation module, by its name (under any tag)."""
        api = importlib.import_module("lemonade_client.api")
        modules = {}
        for info in pkgutil.walk_packages(api.__path__, "lemonade_client.api."):
            if not info.ispkg:
                modules[info.name.rsplit(".", 1)[-1]] = info.name
        return modules

    def function(self, op_id):
        name = self.modules.get(snake(op_id))
        if name is None:
            raise StepFailed(
                f"{op_id}: the generated client has no `{snake(op_id)}` "
                f"(it has {sorted(self.modules)})"
            )
        return importlib.import_module(name).sync_detailed

    def hooks(self):
        """Remembers the URL of the generated client's last request, for
        the protobuf re-check."""

        def remember(request):
            self.last_url = str(request.url)

        return {"event_hooks": {"request": [remember]}}

    def authenticate(self, token):
        self.token = token
        self.client = self.package.AuthenticatedClient(
            base_url=self.config["base_url"], token=token, httpx_args=self.hooks()
        )

    def arguments(self, op_id, fn, given):
        """Maps the flow's argument names onto the generated function's."""
        params = inspect.signature(fn).parameters
        hints = typing.get_type_hints(fn)
        out = {}
        for name, value in given.items():
            match = [p for p in params if p.rstrip("_") == name.rstrip("_")]
            if not match:
                raise StepFailed(
                    f"{op_id}: the generated function takes no `{name}` "
                    f"(it takes {list(params)})"
                )
            if name == "body":
                value = self.body(op_id, hints.get("body"), value)
            out[match[0]] = value
        return out

    def body(self, op_id, hint, value):
        """A generated model (from a dict) or a File (from bytes)."""
        candidates = typing.get_args(hint) or (hint,)
        if isinstance(value, bytes):
            if self.types.File in candidates:
                return self.types.File(payload=io.BytesIO(value))
            raise StepFailed(f"{op_id}: the generated body is {hint}, not a file")
        for candidate in candidates:
            if hasattr(candidate, "from_dict"):
                return candidate.from_dict(value)
        raise StepFailed(f"{op_id}: the generated body is {hint}, not a model")

    def call(self, op_id, **given):
        """Calls `op_id` through the generated client; checks the status and
        decodes the JSON answer strictly as its message. Returns
        (response, message or None)."""
        statuses = OPERATIONS[op_id][0]
        fn = self.function(op_id)
        response = fn(client=self.client, **self.arguments(op_id, fn, given))
        status = int(response.status_code)
        self.log.append(f"{op_id} -> {status}")
        if status not in statuses:
            raise StepFailed(
                f"{op_id}: answered {status}, expected {statuses}: {response.content[:600]!r}"
            )
        return response, self.decode(op_id, status, response)

    def decode(self, op_id, status, response):
        content = response.content
        method = self.doc.ops[op_id][0] if op_id in self.doc.ops else ""
        if status == 206 or (not content and (status == 204 or method == "head")):
            return None
        name = self.doc.message_name(op_id, status)
        if name is None:
            if content:
                raise StepFailed(f"{op_id}: the {status} answer has no schema in the document")
            return None
        return self.messages.from_json(name, content)

    def get(self, op_id, **given):
        """A GET: also re-fetched as protobuf where the document offers it."""
        response, message = self.call(op_id, **given)
        self.recheck_protobuf(op_id, response, message)
        return message

    def recheck_protobuf(self, op_id, response, from_json):
        # The generated client only asks for JSON, so this one request is
        # made with urllib: the same URL as the generated call, with
        # `Accept: application/x-protobuf`. It checks the protobuf form of
        # an answer already fetched through the client; no step of the flow
        # depends on it.
        status = int(response.status_code)
        name = self.doc.message_name(op_id, status, PROTOBUF)
        if name is None:
            return
        url = self.last_url
        request = urllib.request.Request(url, headers={"Accept": PROTOBUF})
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=60) as answer:
            kind = answer.headers.get("Content-Type", "")
            body = answer.read()
        if kind != PROTOBUF:
            raise StepFailed(f"{op_id}: asked for protobuf, got {kind}: {body[:300]!r}")
        from_protobuf = self.messages.from_protobuf(name, body)
        if from_protobuf != from_json:
            raise StepFailed(f"{op_id}: the protobuf and JSON answers differ ({url})")


def main():
    parser = argparse.ArgumentParser()
    for name in ("document", "client", "pb", "config", "result"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    with open(args.config, encoding="utf-8") as f:
        config = json.load(f)
    gaps = Document(args.document).gaps()
    for gap in gaps:
        print(f"document gap: {gap}", file=sys.stderr)
    flow = Flow(args, config)
    try:
        result = run(flow, config)
    finally:
        print("calls: " + ", ".join(flow.log), file=sys.stderr)
    if gaps:
        raise StepFailed(f"the flow ran, but the document has {len(gaps)} gaps (above)")
    with open(args.result, "w", encoding="utf-8") as f:
        json.dump(result, f)



if __name__ == "__main__":
    main()
