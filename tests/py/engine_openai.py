"""The official `openai` client against `drover serve` (the embedded llama.cpp engine, real model).

Usage: python tests/py/engine_openai.py URL
  URL: base URL of `drover serve` (http://127.0.0.1:PORT), started with --ctx CTX.
Env: DROVER_ENGINE_CTX: the server's --ctx (default 2048), to build a prompt that overflows it.

Checks a chat answer, a streamed answer, a json_schema answer that parses and validates, a raw
completion, a prompt over the context (400 with vLLM's message) and 8 concurrent requests (all
answered with text). Every generation is bounded by a small max_tokens. Exits 0 when every check
passes; otherwise the failing assertion says what went wrong.
"""

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import openai

CITY_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 40},
        "country": {"type": "string", "maxLength": 40},
        "population_millions": {"type": "number"},
        "is_capital": {"type": "boolean"},
    },
    "required": ["city", "country", "population_millions", "is_capital"],
    "additionalProperties": False,
}

QUESTIONS = [
    "What is the capital of France?",
    "Give me three tips for staying healthy.",
    "Explain what a computer is to a child.",
    "Write a short poem about the sea.",
    "What is photosynthesis?",
    "Name three famous painters.",
    "Why is the sky blue?",
    "How do I boil an egg?",
]


def check(name, fn):
    start = time.monotonic()
    fn()
    print(f"ok: {name} ({time.monotonic() - start:.1f}s)", flush=True)


def main(base):
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=120)
    model = client.models.list().data[0].id
    ctx = int(os.environ.get("DROVER_ENGINE_CTX", "2048"))

    def chat_answer():
        chat = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
            max_tokens=24,
            temperature=0,
        )
        text = chat.choices[0].message.content
        assert "Paris" in text, f"a greedy SmolLM2 answer names Paris: {text!r}"
        assert chat.choices[0].finish_reason in ("stop", "length"), chat
        assert chat.id.startswith("chatcmpl-"), chat.id
        assert chat.usage.prompt_tokens > 10 and 0 < chat.usage.completion_tokens <= 24, chat.usage
        assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens, chat.usage

    def streamed_answer():
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Name three colours."}],
            max_tokens=24,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces, finish, usage, chunks = [], None, None, 0
        for chunk in stream:
            chunks += 1
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                if choice.finish_reason:
                    finish = choice.finish_reason
        text = "".join(pieces)
        assert text.strip(), "the stream carried no text"
        assert len(pieces) > 1, f"a streamed answer arrives in several deltas: {pieces!r}"
        assert finish in ("stop", "length"), finish
        assert usage is not None and usage.completion_tokens > 0, usage

    def json_schema_answer():
        chat = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Describe Paris as JSON."}],
            max_tokens=160,
            temperature=0,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "city", "schema": CITY_SCHEMA, "strict": True},
            },
        )
        text = chat.choices[0].message.content
        assert chat.choices[0].finish_reason == "stop", f"cut before the object ended: {text!r}"
        value = json.loads(text)
        jsonschema.validate(value, CITY_SCHEMA)

    def completion():
        done = client.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0)
        assert done.choices[0].text.strip(), done
        assert done.id.startswith("cmpl-"), done.id

    def over_context():
        long_prompt = "word " * (ctx + 100)
        try:
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": long_prompt}], max_tokens=4
            )
        except openai.BadRequestError as err:
            assert err.status_code == 400, err
            assert f"maximum context length is {ctx} tokens" in str(err), str(err)
        else:
            raise AssertionError("a prompt over the context was accepted")

    def concurrent_eight():
        def ask(question):
            chat = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": question}], max_tokens=24, temperature=0
            )
            return chat.choices[0].message.content

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(ask, QUESTIONS))
        empty = [q for q, a in zip(QUESTIONS, answers) if not (a and a.strip())]
        assert not empty, f"no text for {empty}: {answers!r}"

    check("chat answer", chat_answer)
    check("streamed answer", streamed_answer)
    check("json_schema answer parses and validates", json_schema_answer)
    check("completion", completion)
    check("prompt over the context -> 400", over_context)
    check("8 concurrent requests answered", concurrent_eight)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1].rstrip("/"))
