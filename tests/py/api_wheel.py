"""The `drover` Python package, installed from its wheel, against `drover sim`.

Run by crates/drover/tests/python_api.rs with the Python of a fresh virtual environment into
which the wheel was installed (pandas visible through a .pth file). Environment:

  DROVER_TEST_FAST      comma-separated URLs of fast simulated instances (preset instant)
  DROVER_TEST_SLOW      comma-separated URLs of slow ones (time-scaled, small batches)
  DROVER_TEST_FIXTURES  JSON file: {"fast": [prompt…], "slow": [prompt…], "reviews": [text…],
                        "digest": {prompt: "sim-xxxxxxxx"}} (reviews are rendered as "Review: TEXT")
  DROVER_TEST_WORK      an empty folder for tasks and outputs

Prints `python api: all checks passed` at the end; any failed check raises.
"""

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import drover

FAST = os.environ["DROVER_TEST_FAST"]
SLOW = os.environ["DROVER_TEST_SLOW"]
FIXTURES = json.loads(Path(os.environ["DROVER_TEST_FIXTURES"]).read_text())
WORK = Path(os.environ["DROVER_TEST_WORK"])
DIGEST = FIXTURES["digest"]
# Seed variables of whoever runs the tests must not pick backends for us.
NO_SEED_ENV = {v: None for v in ["VLLM_PORTS", "USE_MULTI_VLLM", "USE_CONCURRENT", "MAX_WORKERS", "DROVER_BACKENDS", "DROVER_MODEL"]}


def step(name):
    print(f"python api: {name}", flush=True)


def expect_answer(record, prompt):
    """The record succeeded and its answer is the simulator's answer to `prompt`."""
    assert record["error"] is None, record
    text = record["response"]["body"]["choices"][0]["message"]["content"]
    assert text.startswith(DIGEST[prompt]), f"{record['custom_id']}: {text!r} is not the answer to {prompt!r}"


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.endswith(b"\n"))
    except FileNotFoundError:
        return 0


def cli(*args):
    """The installed binary, run directly."""
    return subprocess.run([drover.binary(), *args], capture_output=True, text=True, timeout=120)


def check_installation():
    step("installation")
    scripts = Path(sysconfig.get_path("scripts"))
    exe = Path(drover.binary())
    assert "DROVER_BIN" not in os.environ
    assert exe == scripts / "drover", f"the binary found is {exe}, not the wheel's {scripts / 'drover'}"
    assert Path(sys.prefix) in exe.parents, (exe, sys.prefix)
    module = Path(drover.__file__).resolve()
    assert Path(sys.prefix).resolve() in module.parents, f"drover imported from {module}, not from the venv {sys.prefix}"
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"drover {drover.__version__}", (version, drover.__version__)

    # python -m drover is the binary: same output, same exit code.
    mod = subprocess.run([sys.executable, "-m", "drover", "--version"], capture_output=True, text=True, timeout=60)
    assert (mod.returncode, mod.stdout) == (0, version.stdout), mod
    bad = subprocess.run([sys.executable, "-m", "drover", "run"], capture_output=True, text=True, timeout=60)
    direct = cli("run")
    assert bad.returncode == direct.returncode == 2, (bad, direct)
    assert bad.stderr == direct.stderr and "<INPUT>" in bad.stderr, (bad.stderr, direct.stderr)
    helped = subprocess.run([sys.executable, "-m", "drover", "run", "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "--resume" in helped.stdout, helped


def check_job():
    step("a job of 200 tasks from a list")
    prompts = FIXTURES["fast"]
    assert len(prompts) == 200
    # 150 dicts with ids, 50 bare prompts (custom_id line-N).
    tasks = [{"id": f"q{i}", "prompt": p} for i, p in enumerate(prompts[:150])] + prompts[150:]
    expected = {f"q{i}": p for i, p in enumerate(prompts[:150])}
    expected.update({f"line-{151 + i}": p for i, p in enumerate(prompts[150:])})
    out = WORK / "first.results.jsonl"
    res = drover.run(tasks, backends=FAST, output=out, max_tokens=8, env=NO_SEED_ENV)
    assert isinstance(res, drover.Results), type(res)
    assert res.exit_code == 0 and res.output == out
    assert len(res) == 200 and len(res.ok) == 200 and res.failed == [], res
    ids = collections.Counter(r["custom_id"] for r in res)
    assert set(ids) == set(expected) and set(ids.values()) == {1}, ids
    for r in res:
        expect_answer(r, expected[r["custom_id"]])
        assert r["id"].startswith("batch_req_") and r["drover"]["attempts"] >= 1, r
    assert res.summary["tasks"]["succeeded"] == 200 and res.summary["tasks"]["failed"] == 0, res.summary
    assert res.summary["output"] == str(out), res.summary
    # The tasks were written beside the output, so a resume finds them.
    assert count_lines(WORK / "first.results.tasks.jsonl") == 200
    assert "200 tasks (200 ok, 0 failed)" in repr(res), repr(res)

    step("results as a DataFrame")
    df = res.to_pandas()
    assert len(df) == 200 and list(df.columns[:3]) == ["custom_id", "line", "content"], df.columns
    assert list(df["line"]) == list(range(1, 201)), "rows are in input order"
    assert df["error_code"].isna().all() and (df["status_code"] == 200).all()
    assert (df["completion_tokens"] == 8).all(), df["completion_tokens"]
    for cid, content in zip(df["custom_id"], df["content"]):
        assert content.startswith(DIGEST[expected[cid]]), (cid, content)

    # A path as input, the CLI's default output beside it, a DataFrame straight away.
    path = WORK / "from_file.jsonl"
    path.write_text("".join(json.dumps({"id": f"f{i}", "prompt": p}) + "\n" for i, p in enumerate(prompts[:20])))
    df2 = drover.run(str(path), backends=FAST.split(","), mode="concurrent", workers=4, max_tokens=4,
                     as_dataframe=True, progress=False, env=NO_SEED_ENV)
    assert type(df2).__name__ == "DataFrame" and len(df2) == 20, df2
    assert list(df2["custom_id"]) == [f"f{i}" for i in range(20)]
    assert count_lines(WORK / "from_file.results.jsonl") == 20


def check_schema():
    step("structured answers (--schema) as DataFrame columns")
    reviews = FIXTURES["reviews"]
    schema = {
        "type": "object",
        "properties": {
            "sentiment": {"enum": ["positive", "negative", "mixed"]},
            "stars": {"type": "integer", "minimum": 1, "maximum": 5},
            "summary": {"type": "string", "minLength": 12},
        },
        "required": ["sentiment", "stars", "summary"],
        "additionalProperties": False,
    }
    tasks = [{"id": f"r{i}", "review": text, "stars": i % 5 + 1} for i, text in enumerate(reviews)]
    df = drover.run(tasks, backends=FAST, output=WORK / "reviews.results.jsonl", template="Review: {{ review }}",
                    schema=schema, max_tokens=200, as_dataframe=True, progress=False, env=NO_SEED_ENV)
    columns = list(df.columns)
    assert columns[:3] == ["custom_id", "line", "content"] and columns[6] == "error_code", columns
    assert sorted(columns[3:6]) == ["sentiment", "stars", "summary"], columns
    assert list(df["custom_id"]) == [t["id"] for t in tasks], "input order"
    assert df["error_code"].isna().all(), df[["custom_id", "error_code", "error_message"]]
    for i, row in df.iterrows():
        assert row["sentiment"] in ("positive", "negative", "mixed") and 1 <= row["stars"] <= 5, row
        # The simulator writes the digest of the rendered prompt into the first long string.
        assert row["summary"].startswith(DIGEST["Review: " + reviews[i]]), (row["summary"], reviews[i])
        assert json.loads(row["content"])["summary"] == row["summary"], row["content"]


def check_failures():
    step("failed tasks: returned by default, raised on request")
    tasks = [{"id": "good", "prompt": FIXTURES["fast"][0]}, {"id": "no-prompt", "text": "neither prompt nor messages"}]
    res = drover.run(tasks, backends=FAST, output=WORK / "failing.results.jsonl", max_tokens=4, progress=False, env=NO_SEED_ENV)
    assert res.exit_code == 1 and len(res) == 2, res
    assert [r["custom_id"] for r in res.ok] == ["good"], res.ok
    (bad,) = res.failed
    assert bad["error"]["code"] == "invalid_input" and "line 2" in bad["error"]["message"], bad
    row = {r["custom_id"]: r for r in res.rows()}["no-prompt"]
    assert row["error_code"] == "invalid_input" and row["content"] is None, row
    try:
        drover.run(tasks, backends=FAST, output=WORK / "failing.results.jsonl", overwrite=True, max_tokens=4,
                   raise_on_failure=True, env=NO_SEED_ENV)
        raise AssertionError("raise_on_failure=True must raise TasksFailed")
    except drover.TasksFailed as e:
        assert e.exit_code == 1 and isinstance(e, drover.DroverError), e
        assert len(e.results.failed) == 1 and len(e.results.ok) == 1
        assert "1 task(s) failed" in str(e), str(e)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_usage_errors():
    step("usage errors carry the CLI's message")
    tasks = ["hello"]
    # An unreachable backend: the message is what the CLI prints for the same command.
    port = free_port()
    try:
        drover.run(tasks, backends=f"127.0.0.1:{port}", output=WORK / "unreachable.results.jsonl", env=NO_SEED_ENV)
        raise AssertionError("an unreachable backend must raise UsageError")
    except drover.UsageError as e:
        assert e.exit_code == 2, e
        direct = subprocess.run(e.argv, capture_output=True, text=True, timeout=120)
        assert direct.returncode == 2, direct
        assert str(e).startswith("drover run: no backend is reachable"), str(e)
        assert str(e) in direct.stderr, (str(e), direct.stderr)
        assert f"127.0.0.1:{port}" in str(e) and "Connection refused" in str(e), str(e)
        assert str(e) in e.stderr, e.stderr
    assert not (WORK / "unreachable.results.jsonl").exists(), "nothing was written"

    # No backend at all: this wheel has no embedded engine, and says so.
    try:
        drover.run(tasks, output=WORK / "nobackend.results.jsonl", env=NO_SEED_ENV)
        raise AssertionError("no backend must raise UsageError")
    except drover.UsageError as e:
        assert str(e).startswith("drover run: ") and "no embedded engine" in str(e), str(e)

    # An existing output, neither resumed nor overwritten.
    try:
        drover.run(tasks, backends=FAST, output=WORK / "first.results.jsonl", env=NO_SEED_ENV)
        raise AssertionError("an existing output must be refused")
    except drover.UsageError as e:
        assert "--resume" in str(e) and "--overwrite" in str(e), str(e)
    assert count_lines(WORK / "first.results.jsonl") == 200, "the refused run left the output alone"
    assert count_lines(WORK / "first.results.tasks.jsonl") == 200, "and its tasks"

    # A misspelt flag (passed by name) is clap's error.
    try:
        drover.run(tasks, backends=FAST, output=WORK / "typo.results.jsonl", atempts=3, env=NO_SEED_ENV)
        raise AssertionError("an unknown flag must raise UsageError")
    except drover.UsageError as e:
        assert "--atempts" in str(e) and str(e).startswith("error:"), str(e)

    # A file where the tasks would go, with other content, is not replaced silently.
    mine = WORK / "mine.results.tasks.jsonl"
    mine.write_text('{"id": "my own", "prompt": "keep me"}\n')
    try:
        drover.run(tasks, backends=FAST, output=WORK / "mine.results.jsonl", env=NO_SEED_ENV)
        raise AssertionError("another file in the tasks' place must raise FileExistsError")
    except FileExistsError as e:
        assert str(mine) in str(e) and "overwrite=True" in str(e), str(e)
    assert mine.read_text() == '{"id": "my own", "prompt": "keep me"}\n'
    assert not (WORK / "mine.results.jsonl").exists()

    # Python-side mistakes are caught before anything starts.
    for kwargs, what in [({"mode": "fast"}, "mode"), ({"resume": True}, "output="), ({"retry_failed": True}, "resume")]:
        try:
            drover.run(tasks, backends=FAST, **kwargs)
            raise AssertionError(f"{kwargs} must raise ValueError")
        except ValueError as e:
            assert what in str(e), (kwargs, str(e))
    try:
        drover.run([1, 2], backends=FAST)
        raise AssertionError("a task that is neither a dict nor a string must raise TypeError")
    except TypeError as e:
        assert "task 0" in str(e), str(e)


def check_interrupt_and_resume():
    step("interrupt a slow job, then resume it")
    prompts = FIXTURES["slow"]
    tasks = [{"id": f"s{i}", "prompt": p} for i, p in enumerate(prompts)]
    out = WORK / "slow.results.jsonl"
    fired = {}

    def interrupt_when_started():
        # Ctrl-C as a terminal sends it: SIGINT to the Python process, once some results are in.
        deadline = time.monotonic() + 120
        while count_lines(out) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        fired["lines"] = count_lines(out)
        fired["at"] = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)

    # Python raises KeyboardInterrupt on SIGINT only if SIGINT was not ignored when it started,
    # and a non-interactive shell's background job (`.ci/run &`) starts with it ignored. This is
    # Ctrl-C at a terminal, so set up what an interactive Python has.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    watcher = threading.Thread(target=interrupt_when_started, daemon=True)
    watcher.start()
    started = time.monotonic()
    try:
        # At most 8 in flight per backend, so that a graceful stop leaves most of the job undone.
        drover.run(tasks, backends=SLOW, output=out, max_tokens=24, max_per_backend=8, grace="20s", env=NO_SEED_ENV)
        raise AssertionError(f"the job was not interrupted (watcher: {fired})")
    except drover.Interrupted as e:
        stopped = time.monotonic()
        assert isinstance(e, KeyboardInterrupt) and isinstance(e, drover.DroverError)
        assert e.exit_code == 130, (e.exit_code, e.stderr[-2000:])
        assert e.output == out and "resume=True" in str(e) and str(out) in str(e), str(e)
        assert "task(s) unfinished" in str(e), str(e)
        done = e.results
        resume_at = e.output
    watcher.join()
    assert fired.get("lines", 0) >= 30, f"the job ended before the watcher saw 30 results: {fired}"
    # The graceful stop lets requests in flight finish (a few seconds here), not the whole job.
    assert stopped - fired["at"] < 15, f"drover took {stopped - fired['at']:.1f}s to stop"
    first = count_lines(out)
    assert done is not None and len(done) == first, (first, done)
    assert fired["lines"] <= first < len(tasks), (fired, first, len(tasks))
    assert done.summary["interrupted"] is True and done.summary["tasks"]["unfinished"] > 0, done.summary
    for r in done:
        expect_answer(r, prompts[int(r["custom_id"][1:])])
    print(f"python api: interrupted after {stopped - started:.1f}s with {first}/{len(tasks)} results", flush=True)

    res = drover.run(tasks, backends=SLOW, output=resume_at, resume=True, max_tokens=24, env=NO_SEED_ENV)
    assert res.exit_code == 0, res.exit_code
    ids = collections.Counter(r["custom_id"] for r in res)
    assert set(ids) == {t["id"] for t in tasks}, set(t["id"] for t in tasks) - set(ids)
    assert max(ids.values()) == 1, [k for k, v in ids.items() if v > 1]
    assert len(res.ok) == len(tasks) and res.failed == []
    for r in res:
        expect_answer(r, prompts[int(r["custom_id"][1:])])
    assert res.summary["tasks"]["skipped_done"] == first, (res.summary["tasks"], first)
    assert res.summary["tasks"]["finished"] == len(tasks) - first, res.summary["tasks"]


def drover_processes_writing(out):
    """Pids of `drover run` processes whose command line names `out` (Linux /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 2 and argv[0].endswith(b"drover") and argv[1] == b"run" and str(out).encode() in argv:
            pids.append(int(entry))
    return pids


def check_killed_python():
    step("a killed Python takes its job down; resume completes it")
    prompts = FIXTURES["slow"]
    tasks = [{"id": f"k{i}", "prompt": p} for i, p in enumerate(prompts)]
    out = WORK / "orphan.results.jsonl"
    code = (
        "import drover, json, sys\n"
        f"drover.run(json.loads(sys.argv[1]), backends={SLOW!r}, output={str(out)!r}, max_tokens=24,"
        " max_per_backend=8, progress=False)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code, json.dumps(tasks)], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while count_lines(out) < 30 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.poll() is None, f"the job ended before it was killed ({count_lines(out)} lines)"
    assert drover_processes_writing(out), "no drover process found for the job"
    child.kill()  # SIGKILL: no Python code runs, no handler forwards anything
    child.wait()
    deadline = time.monotonic() + 30
    while drover_processes_writing(out) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not drover_processes_writing(out), "drover kept running after its Python was killed"
    first = count_lines(out)  # whole lines: a torn last one is repaired by the resume
    assert 30 <= first < len(tasks), (first, len(tasks))
    time.sleep(1)
    assert count_lines(out) == first, "the output still grows"
    res = drover.run(tasks, backends=SLOW, output=out, resume=True, max_tokens=24, progress=False, env=NO_SEED_ENV)
    ids = collections.Counter(r["custom_id"] for r in res)
    assert set(ids) == {t["id"] for t in tasks} and max(ids.values()) == 1, ids.most_common(3)
    assert len(res.ok) == len(tasks) and res.summary["tasks"]["skipped_done"] == first, res.summary["tasks"]
    for r in res:
        expect_answer(r, prompts[int(r["custom_id"][1:])])
    print(f"python api: killed Python: drover stopped with {first}/{len(tasks)} results", flush=True)


def check_structured_table():
    step("structured answers flatten into columns")
    # An output as drover writes it with --schema: the validated answer under drover.answer.
    lines = [
        {"id": "batch_req_2", "custom_id": "b", "response": {"status_code": 200, "request_id": "r2", "body": {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "{\"label\":\"neg\",\"score\":0.2,\"line\":9}"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7}}},
         "error": None, "drover": {"line": 2, "backend": "x:1", "attempts": 1, "latency_ms": 3,
                                   "answer": {"label": "neg", "score": 0.2, "line": 9}}},
        {"id": "batch_req_1", "custom_id": "a", "response": {"status_code": 200, "request_id": "r1", "body": {
            "choices": [{"index": 0, "text": "{\"label\":\"pos\",\"score\":0.9}"}]}},
         "error": None, "drover": {"line": 1, "backend": "x:1", "attempts": 2, "latency_ms": 4,
                                   "answer": {"label": "pos", "score": 0.9}}},
        {"id": "batch_req_3", "custom_id": "c", "response": None,
         "error": {"code": "invalid_answer", "message": "score: 7 is greater than the maximum of 1"},
         "drover": {"line": 3, "backend": "x:1", "attempts": 1, "latency_ms": 5}},
    ]
    path = WORK / "structured.results.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"custom_id": "torn')
    res = drover.Results.from_file(path)
    assert len(res) == 3, "a torn last line is not a result"
    df = res.to_pandas()
    assert list(df.columns) == ["custom_id", "drover_line", "content", "label", "score", "line", "error_code",
                                "error_message", "status_code", "backend", "attempts", "latency_ms",
                                "prompt_tokens", "completion_tokens"], list(df.columns)
    assert list(df["custom_id"]) == ["a", "b", "c"], "input order"
    assert list(df["label"][:2]) == ["pos", "neg"] and df["label"].isna()[2]
    assert df["line"][1] == 9 and df["drover_line"].tolist() == [1, 2, 3]
    assert df["content"][0] == "{\"label\":\"pos\",\"score\":0.9}" and df["content"].isna().tolist() == [False, False, True]
    assert df["error_code"].tolist()[2] == "invalid_answer"


def main():
    check_installation()
    check_structured_table()
    check_job()
    check_schema()
    check_failures()
    check_usage_errors()
    check_interrupt_and_resume()
    check_killed_python()
    print("python api: all checks passed", flush=True)


if __name__ == "__main__":
    main()
