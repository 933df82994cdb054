"""The official `openai` client against `drover sim`.

Usage: python tests/py/sim_openai.py URL [URL ...]
  URL: base URL of a simulated instance (http://127.0.0.1:PORT); requests go to the first one,
  the others are checked to be up and untouched.
Env: DROVER_SIM_DIGESTS: JSON object {prompt: "sim-xxxxxxxx"} with the expected digest labels
  (computed by the caller with xxh3); without it only their shape is checked.

Exits 0 when every check passes; prints what failed otherwise (assertion errors).
"""

import json
import os
import re
import sys
import urllib.request

import jsonschema
import openai
from prometheus_client.parser import text_string_to_metric_families

DIGESTS = json.loads(os.environ.get("DROVER_SIM_DIGESTS", "{}"))
LABEL = re.compile(r"^sim-[0-9a-f]{8}")


def expect_label(text, prompt):
    match = LABEL.match(text)
    assert match, f"answer {text!r} does not start with sim-xxxxxxxx"
    if prompt in DIGESTS:
        assert match.group(0) == DIGESTS[prompt], f"{text!r} is not the answer to {prompt!r} ({DIGESTS[prompt]})"
    return match.group(0)


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


def main(urls):
    base = urls[0]
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=30)
    model = client.models.list().data[0].id
    assert model == "meta-llama/Llama-3.1-8B-Instruct", model

    # Chat, non-streaming.
    chat = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello from python"}], max_tokens=12
    )
    text = chat.choices[0].message.content
    expect_label(text, "hello from python")
    assert chat.choices[0].finish_reason == "length", chat
    assert chat.usage.completion_tokens == 12, chat.usage
    assert chat.usage.prompt_tokens == (17 + 3) // 4 + 4, chat.usage
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + 12
    assert chat.id.startswith("chatcmpl-"), chat.id

    # Completion.
    completion = client.completions.create(model=model, prompt="once upon a time", max_tokens=5)
    expect_label(completion.choices[0].text, "once upon a time")
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 5 and completion.usage.prompt_tokens == 4, completion.usage

    # Streaming chat with usage.
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "stream please"}],
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant", chunks[0]
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) == 8, f"one chunk per token, got {len(content_chunks)}"
    streamed = "".join(c.choices[0].delta.content for c in content_chunks)
    expect_label(streamed, "stream please")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"], finishes
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 8, chunks[-1]
    assert len({c.id for c in chunks}) == 1

    # Structured output.
    schema = {
        "type": "object",
        "properties": {
            "sentiment": {"type": "string", "enum": ["positive", "negative"]},
            "summary": {"type": "string", "minLength": 5},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        },
        "required": ["sentiment", "summary", "confidence", "tags"],
        "additionalProperties": False,
    }
    structured = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "rate this"}],
        max_tokens=500,
        response_format={"type": "json_schema", "json_schema": {"name": "rating", "schema": schema}},
    )
    answer = json.loads(structured.choices[0].message.content)
    jsonschema.validate(answer, schema)
    expect_label(answer["summary"], "rate this")
    assert structured.choices[0].finish_reason == "stop"

    # Errors come back as the client's exception classes.
    try:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("an unknown model must fail")
    except openai.NotFoundError as err:
        assert err.status_code == 404 and "does not exist" in str(err), err

    # Metrics parse as Prometheus text, with vLLM's names.
    status, text = get(base + "/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, kind in [
        ("vllm:num_requests_running", "gauge"),
        ("vllm:num_requests_waiting", "gauge"),
        ("vllm:kv_cache_usage_perc", "gauge"),
        ("vllm:gpu_cache_usage_perc", "gauge"),
        ("vllm:cache_config_info", "gauge"),
        ("vllm:prompt_tokens", "counter"),
        ("vllm:generation_tokens", "counter"),
        ("vllm:num_preemptions", "counter"),
        ("vllm:prefix_cache_queries", "counter"),
        ("vllm:prefix_cache_hits", "counter"),
        ("vllm:request_success", "counter"),
        ("vllm:time_to_first_token_seconds", "histogram"),
        ("vllm:inter_token_latency_seconds", "histogram"),
        ("vllm:e2e_request_latency_seconds", "histogram"),
        ("vllm:request_prompt_tokens", "histogram"),
        ("vllm:request_generation_tokens", "histogram"),
    ]:
        assert name in families, f"{name} missing from /metrics"
        assert families[name].type == kind, f"{name} is a {families[name].type}, not a {kind}"
        for sample in families[name].samples:
            assert sample.labels.get("engine") == "0", sample
            assert sample.labels.get("model_name") == model, sample

    def value(name, suffix="", **labels):
        for s in families[name].samples:
            if s.name == name + suffix and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        raise AssertionError(f"no sample {name}{suffix} {labels}")

    generated = 12 + 5 + 8 + structured.usage.completion_tokens
    assert value("vllm:generation_tokens", "_total") == generated, (value("vllm:generation_tokens", "_total"), generated)
    assert value("vllm:request_success", "_total", finished_reason="length") == 3
    assert value("vllm:request_success", "_total", finished_reason="stop") == 1
    assert value("vllm:time_to_first_token_seconds", "_count") == 4
    assert value("vllm:e2e_request_latency_seconds", "_count") == 4
    assert value("vllm:inter_token_latency_seconds", "_count") == generated - 4
    assert value("vllm:num_requests_running") == 0 and value("vllm:num_requests_waiting") == 0
    assert 0 <= value("vllm:kv_cache_usage_perc") <= 1
    assert value("vllm:cache_config_info", block_size="16") == 1
    ttft_sum = value("vllm:time_to_first_token_seconds", "_sum")
    assert 0 < ttft_sum < 10, f"TTFT sum {ttft_sum} s is not in simulated seconds"

    # The other instances are up and have served nothing.
    for other in urls[1:]:
        assert get(other + "/health") == (200, ""), other
        families = {f.name: f for f in text_string_to_metric_families(get(other + "/metrics")[1])}
        total = [s.value for s in families["vllm:generation_tokens"].samples if s.name.endswith("_total")]
        assert total == [0.0], (other, total)
    print(f"sim_openai: all checks passed against {len(urls)} instance(s)")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
