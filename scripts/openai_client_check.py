"""Checks kiln serve against the official OpenAI Python client.

Usage: openai_client_check.py BASE_URL API_KEY MODEL [EMBEDDER]
(BASE_URL like http://127.0.0.1:8080/v1). Exercises chat, chat streaming with usage,
completions with echo + logprobs, the model list, and a bad key; with EMBEDDER (the test
server's fake embedding model, whose vector of a text of n characters is
[cos n, sin n, 0, ...]), embeddings as the client fetches them by default (base64) and as
floats. Prints OK at the end and exits non-zero (with the failing assertion) otherwise.
"""

import math
import sys

import openai


def main() -> None:
    base_url, key, model = sys.argv[1:4]
    embedder = sys.argv[4] if len(sys.argv) > 4 else None
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)

    models = client.models.list()
    ids = [m.id for m in models.data]
    assert model in ids, ids

    chat = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "Hello!"}],
        max_tokens=8, temperature=0, seed=1, extra_body={"ignore_eos": True},
    )
    assert chat.object == "chat.completion", chat
    assert chat.choices[0].message.role == "assistant"
    assert isinstance(chat.choices[0].message.content, str)
    assert chat.choices[0].finish_reason == "length", chat.choices[0].finish_reason
    assert chat.usage.completion_tokens == 8, chat.usage
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + 8

    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "Hello!"}],
        max_tokens=8, temperature=0, stream=True, stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text == chat.choices[0].message.content, (text, chat.choices[0].message.content)
    assert finish == "length", finish
    assert usage is not None and usage.completion_tokens == 8, usage

    prompt = "The quick brown fox"
    comp = client.completions.create(
        model=model, prompt=prompt, echo=True, logprobs=2, max_tokens=3, temperature=0,
        extra_body={"ignore_eos": True},
    )
    choice = comp.choices[0]
    assert choice.text.startswith(prompt), choice.text
    lp = choice.logprobs
    assert "".join(lp.tokens).startswith(prompt), lp.tokens
    assert lp.token_logprobs[0] is None, lp.token_logprobs[:3]
    rest = lp.token_logprobs[1:]
    assert all(x is not None and math.isfinite(x) and x <= 0 for x in rest), rest
    assert len(lp.text_offset) == len(lp.tokens)
    assert comp.usage.completion_tokens == 3, comp.usage

    bad = openai.OpenAI(base_url=base_url, api_key=key + "-wrong", max_retries=0)
    try:
        bad.models.list()
    except openai.AuthenticationError as e:
        assert e.status_code == 401
    else:
        raise AssertionError("a bad key was accepted")

    try:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    except openai.NotFoundError:
        pass
    else:
        raise AssertionError("an unknown model was accepted")

    if embedder is not None:
        assert embedder in ids, ids
        texts = ["kiln", "a longer sentence"]
        for fmt in (None, "float"):
            extra = {} if fmt is None else {"encoding_format": fmt}
            emb = client.embeddings.create(model=embedder, input=texts, **extra)
            assert [d.index for d in emb.data] == [0, 1], emb.data
            for d, t in zip(emb.data, texts):
                v = d.embedding
                assert abs(v[0] - math.cos(len(t))) < 1e-6, (fmt, v[:2])
                assert abs(v[1] - math.sin(len(t))) < 1e-6, (fmt, v[:2])
            assert emb.usage.prompt_tokens > 0, emb.usage
        try:
            client.embeddings.create(model=model, input="x")
        except openai.NotFoundError:
            pass
        else:
            raise AssertionError("a chat model answered an embeddings request")

    print("OK")


if __name__ == "__main__":
    main()
