"""``lmfoundry generate`` / ``chat``: greedy equals argmax decoding, seeded sampling repeats, tokens stream."""

from __future__ import annotations

import io
import logging

import pytest
import torch
from test_hub_fixtures import build_tiny_model

from lmfoundry.cli import main
from lmfoundry.generation import ChatSession, SamplingSettings, generate, load_model, run_chat

PROMPT = "In the beginning"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "model"
    build_tiny_model(path, seed=3)
    return path


@pytest.fixture(scope="module")
def loaded(model_dir):
    return load_model(str(model_dir), device="cpu")


class CountingWriter(io.StringIO):
    """Counts writes, to tell streamed output from one print at the end."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _argmax_continuation(model, tokenizer, prompt: str, n: int) -> str:
    """Greedy decoding the slow way: a full forward pass per token, no KV cache."""
    ids = [tokenizer.bos_token_id, *tokenizer(prompt)["input_ids"]]
    new = []
    with torch.no_grad():
        for _ in range(n):
            token = int(model(torch.tensor([ids + new])).logits[0, -1].argmax())
            if token == tokenizer.eos_token_id:
                break
            new.append(token)
    return tokenizer.decode(new, skip_special_tokens=True)


def test_temperature_zero_is_greedy_and_streams(loaded):
    model, tokenizer = loaded
    out = CountingWriter()
    text = generate(model, tokenizer, PROMPT, SamplingSettings(max_new_tokens=12, temperature=0), out)
    assert text == out.getvalue() == _argmax_continuation(model, tokenizer, PROMPT, 12)
    assert out.writes > 1  # streamed piece by piece


def test_seeded_sampling_is_deterministic_from_the_command_line(model_dir, capsys):
    def run(seed: int) -> str:
        argv = ["generate", "--model", str(model_dir), "--prompt", PROMPT, "--max-new-tokens", "16", "--temperature", "1.5",
                "--top-k", "0", "--top-p", "1.0", "--seed", str(seed), "--device", "cpu"]
        assert main(argv) == 0
        return capsys.readouterr().out

    first, again, other = run(11), run(11), run(12)
    assert first.startswith(PROMPT) and len(first) > len(PROMPT) + 1
    assert first == again
    assert first != other


def test_chat_keeps_history_and_resets(loaded):
    model, tokenizer = loaded
    settings = SamplingSettings(max_new_tokens=5, temperature=0)
    session = ChatSession(model, tokenizer, settings)
    first = session.respond("hello there", io.StringIO())
    assert session.history == "hello there" + first + "\n"
    second = session.respond("the fox", io.StringIO())
    expected = generate(model, tokenizer, "hello there" + first + "\n" + "the fox", settings, io.StringIO())
    assert second == expected
    session.reset()
    assert session.history == ""


def test_chat_repl_reads_stdin(loaded):
    model, tokenizer = loaded
    session = ChatSession(model, tokenizer, SamplingSettings(max_new_tokens=4, temperature=0))
    out = io.StringIO()
    run_chat(session, io.StringIO("the quick\n/reset\nbrown fox\n/quit\nnever read\n"), out)
    assert "(history cleared)" in out.getvalue()
    assert session.history.startswith("brown fox")  # the turn before /reset is forgotten
    assert "never read" not in session.history


def test_chat_command_ends_at_end_of_input(model_dir, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("the quick\n"))
    assert main(["chat", "--model", str(model_dir), "--max-new-tokens", "3", "--temperature", "0", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.count("> ") == 2


def test_long_prompt_is_cut_to_the_context(loaded, caplog):
    model, tokenizer = loaded
    prompt = "the quick brown fox " * 80  # far beyond the 128-token context
    with caplog.at_level(logging.WARNING):
        text = generate(model, tokenizer, prompt, SamplingSettings(max_new_tokens=8, temperature=0), io.StringIO())
    assert "keeping its last 120" in caplog.text
    ids = [tokenizer.bos_token_id, *tokenizer(prompt)["input_ids"]]
    with torch.no_grad():  # the first new token is the argmax after the last 120 prompt tokens
        first = int(model(torch.tensor([ids[-120:]])).logits[0, -1].argmax())
    assert text.startswith(tokenizer.decode([first]))


@pytest.mark.parametrize(("flags", "message"), [
    (["--temperature", "-1"], "--temperature"),
    (["--top-p", "0"], "--top-p"),
    (["--max-new-tokens", "0"], "--max-new-tokens"),
])
def test_bad_settings_are_clear_errors(model_dir, capsys, flags, message):
    assert main(["generate", "--model", str(model_dir), "--prompt", PROMPT, *flags]) == 2
    assert message in capsys.readouterr().err


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    assert main(["generate", "--model", str(tmp_path / "nope"), "--prompt", PROMPT]) == 2
    assert "no such model folder" in capsys.readouterr().err
