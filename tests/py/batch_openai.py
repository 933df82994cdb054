"""The official `openai` client against `drover batch-server`: the whole Batch API flow.

Usage: python tests/py/batch_openai.py URL KEY
  URL: the server's root (http://127.0.0.1:PORT); KEY: the --api-key it was started with.
Env: BATCH_REJECTED: how many requests of the first batch carry a prompt over the fleet's
  max_model_len (the backend refuses them: they belong in the error file). Default 3.
  BATCH_LARGE: requests in the batch that is cancelled (default 3000).

Checks, in order: a wrong key gets 401 in OpenAI's shape; an upload that is not batch JSONL
gets 400 naming its first bad line; upload, create, poll to `completed`, download the output
and error files (one line per request, right custom_ids); a batch whose lines target another
endpoint fails validation; a large batch is cancelled mid-way and ends `cancelled` with partial
counts; listing batches (cursor pagination) and files; deleting a file; 404 and 409 answers.

Exits 0 when every check passes; an assertion error says what failed otherwise.
"""

import json
import os
import sys
import time

import openai

REJECTED = int(os.environ.get("BATCH_REJECTED", "3"))
LARGE = int(os.environ.get("BATCH_LARGE", "3000"))
TERMINAL = {"completed", "failed", "expired", "cancelled"}


def request(custom_id, content, max_tokens, url="/v1/chat/completions"):
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": url,
        "body": {"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens},
    }


def jsonl(lines):
    return ("\n".join(json.dumps(line) for line in lines) + "\n").encode()


def poll(client, batch_id, until, timeout=120.0, seen=None):
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if seen is not None:
            seen.append(batch)
        if until(batch):
            return batch
        assert time.monotonic() < deadline, f"batch {batch_id} still {batch.status} after {timeout}s: {batch}"
        time.sleep(0.1)


def read_lines(client, file_id):
    text = client.files.content(file_id).text
    assert text.endswith("\n"), f"{file_id} does not end with a newline"
    return [json.loads(line) for line in text.splitlines()]


def check_auth(url):
    wrong = openai.OpenAI(base_url=url + "/v1", api_key="sk-wrong", max_retries=0, timeout=30)
    try:
        wrong.files.list()
    except openai.AuthenticationError as e:
        assert e.status_code == 401, e
        body = e.body
        assert body["code"] == "invalid_api_key", body
        assert body["type"] == "invalid_request_error", body
        assert "Incorrect API key provided" in body["message"], body
        assert "sk-wrong" not in body["message"], "the key must not be echoed"
    else:
        raise AssertionError("a wrong key was accepted")


def check_bad_upload(client):
    before = len(client.files.list().data)
    lines = [json.dumps(request("a", "hi", 4)), json.dumps(request("b", "hi", 4)), '{"custom_id": "c", oops', json.dumps(request("d", "x", 4))]
    try:
        client.files.create(file=("broken.jsonl", ("\n".join(lines) + "\n").encode()), purpose="batch")
    except openai.BadRequestError as e:
        assert e.status_code == 400
        message = e.body["message"]
        assert "line 3" in message, message
        assert e.body["type"] == "invalid_request_error", e.body
    else:
        raise AssertionError("a broken upload was accepted")
    # A line that is JSON but not a batch request is named too.
    try:
        client.files.create(file=("simple.jsonl", jsonl([request("a", "hi", 4), {"id": "b", "prompt": "x"}])), purpose="batch")
    except openai.BadRequestError as e:
        assert "line 2" in e.body["message"] and "custom_id" in e.body["message"], e.body
    else:
        raise AssertionError("a line without custom_id/method/url/body was accepted")
    assert len(client.files.list().data) == before, "a refused upload left a file behind"


def run_small_batch(client):
    good = [request(f"ok-{i}", f"question {i}", 8) for i in range(30 - REJECTED)]
    # ~3000 tokens of prompt: over the fleet's max_model_len, so the backend answers 400.
    bad = [request(f"long-{i}", "lorem ipsum " * 1000, 8) for i in range(REJECTED)]
    lines = good[:10] + bad + good[10:]
    data = jsonl(lines)
    uploaded = client.files.create(file=("requests.jsonl", data), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == len(data), uploaded
    assert uploaded.filename == "requests.jsonl" and uploaded.status == "processed", uploaded
    assert uploaded.id.startswith("file-"), uploaded.id
    assert client.files.retrieve(uploaded.id) == uploaded
    assert client.files.content(uploaded.id).read() == data, "content is not the upload, byte for byte"

    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"job": "e2e"}
    )
    assert batch.id.startswith("batch_") and batch.object == "batch", batch
    assert batch.status in ("validating", "in_progress"), batch.status
    assert batch.metadata == {"job": "e2e"} and batch.input_file_id == uploaded.id, batch
    assert batch.expires_at == batch.created_at + 24 * 3600, batch

    done = poll(client, batch.id, lambda b: b.status in TERMINAL)
    assert done.status == "completed", done
    counts = done.request_counts
    assert (counts.total, counts.completed, counts.failed) == (30, 30 - REJECTED, REJECTED), counts
    assert done.created_at <= done.in_progress_at <= done.finalizing_at <= done.completed_at, done
    assert done.output_file_id and done.error_file_id, done
    assert done.failed_at is None and done.cancelled_at is None, done

    out = read_lines(client, done.output_file_id)
    assert sorted(line["custom_id"] for line in out) == sorted(r["custom_id"] for r in good), [l["custom_id"] for l in out]
    for line in out:
        assert line["error"] is None and line["id"].startswith("batch_req_"), line
        assert line["response"]["status_code"] == 200, line
        assert line["response"]["body"]["choices"][0]["message"]["content"].startswith("sim-"), line
        assert line["drover"]["line"] >= 1, line
    errors = read_lines(client, done.error_file_id)
    assert sorted(line["custom_id"] for line in errors) == sorted(r["custom_id"] for r in bad), errors
    for line in errors:
        assert line["error"]["code"] == "invalid_request", line
        assert line["response"]["status_code"] == 400, line
    out_file = client.files.retrieve(done.output_file_id)
    assert out_file.purpose == "batch_output", out_file
    return uploaded, done


def check_endpoint_mismatch(client, uploaded):
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/completions", completion_window="24h")
    failed = poll(client, batch.id, lambda b: b.status in TERMINAL)
    assert failed.status == "failed", failed
    assert failed.failed_at is not None and failed.output_file_id is None, failed
    first = failed.errors.data[0]
    assert first.code == "mismatched_endpoint" and first.line == 1, failed.errors
    return failed


def run_cancelled_batch(client):
    data = jsonl([request(f"big-{i}", f"long story {i}", 256) for i in range(LARGE)])
    uploaded = client.files.create(file=("large.jsonl", data), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    running = poll(client, batch.id, lambda b: b.status in TERMINAL or (b.request_counts and b.request_counts.completed > 0))
    assert running.status == "in_progress", f"the large batch should still run when its first results arrive: {running}"
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled"), cancelling
    assert cancelling.cancelling_at is not None, cancelling
    cancelled = poll(client, batch.id, lambda b: b.status in TERMINAL, timeout=180)
    assert cancelled.status == "cancelled", cancelled
    counts = cancelled.request_counts
    assert counts.total == LARGE, counts
    assert 0 < counts.completed + counts.failed < LARGE, f"a cancel mid-way leaves partial counts: {counts}"
    assert cancelled.cancelled_at >= cancelled.cancelling_at, cancelled
    out = read_lines(client, cancelled.output_file_id)
    assert len(out) == counts.completed, (len(out), counts)
    ids = [line["custom_id"] for line in out]
    assert len(set(ids)) == len(ids), "a request has two lines"
    # Cancelling again is harmless; a completed batch cannot be cancelled.
    assert client.batches.cancel(batch.id).status == "cancelled"
    return uploaded, cancelled


def check_lists(client, batches, files):
    """`batches` in the order they were created."""
    # Cursor pagination, one batch a page: every batch once, newest first.
    first = client.batches.list(limit=1)
    assert len(first.data) == 1 and first.has_more, first
    listed = [b.id for b in client.batches.list(limit=1)]
    assert listed == [b.id for b in reversed(batches)], f"{listed} is not newest first"
    all_files = {f.id: f for f in client.files.list()}
    for f in files:
        assert f in all_files, f"file {f} is not listed"
    inputs = client.files.list(purpose="batch")
    assert all(f.purpose == "batch" for f in inputs), inputs


def main(url, key):
    client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=60)
    check_auth(url)
    check_bad_upload(client)
    uploaded, small = run_small_batch(client)
    mismatched = check_endpoint_mismatch(client, uploaded)
    large_file, cancelled = run_cancelled_batch(client)
    try:
        client.batches.cancel(small.id)
    except openai.ConflictError as e:
        assert "completed" in e.body["message"], e.body
    else:
        raise AssertionError("a completed batch was cancelled")
    try:
        client.batches.retrieve("batch_nope")
    except openai.NotFoundError as e:
        assert "batch_nope" in e.body["message"], e.body
    else:
        raise AssertionError("an unknown batch was found")
    check_lists(
        client,
        [small, mismatched, cancelled],
        [uploaded.id, large_file.id, small.output_file_id, small.error_file_id, cancelled.output_file_id],
    )
    deleted = client.files.delete(small.error_file_id)
    assert deleted.deleted and deleted.id == small.error_file_id, deleted
    try:
        client.files.retrieve(small.error_file_id)
    except openai.NotFoundError:
        pass
    else:
        raise AssertionError("a deleted file is still there")
    print(f"all checks passed: {small.id} completed, {cancelled.id} cancelled at {cancelled.request_counts.completed}/{LARGE}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
