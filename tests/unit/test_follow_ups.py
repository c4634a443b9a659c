"""A short reply later in a conversation is scored with the user turns before it (classifiers/features.py:
scoring_text), while a route still matches the reply's own words; a longer later turn, or an opening, is scored
alone."""

from __future__ import annotations

from typing import Any

from classifiers.base import Assessment
from classifiers.features import FOLLOW_UP_CHARS, scored_prompt, scoring_text
from classifiers.route_examples import RouteExamples
from gateway.pipeline import ChatPipeline
from gateway.protocol import ChatCompletionRequest
from gateway.trace import start_trace
from router.pricing import PriceTable
from tests.fakes.encoder import HashEncoder
from tests.policies import config
from tests.unit.test_pipeline import FakeProvider, ListLedger

TASK = "Write a recursive-descent parser for arithmetic expressions in Python, with tests."
OFFER = {"role": "assistant", "content": "Shall I write the whole parser now?"}


def conversation(*user: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, text in enumerate(user):
        if i:
            out.append(OFFER)
        out.append({"role": "user", "content": text})
    return out


def test_a_short_later_reply_is_scored_with_the_turns_before_it() -> None:
    assert scored_prompt(conversation("ok")) == ("ok", 1)  # an opening is read alone, however short
    assert scored_prompt(conversation(TASK, "ok")) == (f"{TASK}\nok", 2)
    assert scored_prompt(conversation("hi", TASK, "go on")) == (f"hi\n{TASK}\ngo on", 3)
    longer = "x" * FOLLOW_UP_CHARS  # at the bar: a turn of its own
    assert scored_prompt(conversation(TASK, longer)) == (longer, 2)
    parts = [{"type": "text", "text": TASK}]
    assert scoring_text(
        [{"role": "user", "content": parts}, OFFER, {"role": "user", "content": " ok "}], " ok ", 2
    ) == (f"{TASK}\n ok ")


class Recorder:
    """The classifier's two seams: `score` and `assess` (the score with the text's embedding), each recording the
    texts it was asked about."""

    def __init__(self) -> None:
        self.enc = HashEncoder()
        self.scored: list[str] = []
        self.assessed: list[str] = []

    async def score(self, text: str, turns: int) -> float:
        self.scored.append(text)
        return min(len(text) / 1000.0, 1.0)

    async def assess(self, text: str, turns: int) -> Assessment:
        self.assessed.append(text)
        return Assessment(min(len(text) / 1000.0, 1.0), self.enc.encode([text])[0])


def pipeline(rec: Recorder, routes: list[dict[str, Any]] | None = None) -> ChatPipeline:
    cfg = config(routes=routes or [])
    examples = {"default": RouteExamples.embed(rec.enc, [r["examples"] for r in routes or []])}
    return ChatPipeline(
        cfg,
        PriceTable(cfg, {}),
        rec.score,
        FakeProvider(),
        ListLedger(),
        (),
        assess=rec.assess,
        route_examples=examples,
    )


def request(messages: list[dict[str, Any]]) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "auto", "messages": messages})


async def test_the_pipeline_scores_a_later_ok_as_the_conversation_and_a_new_question_alone() -> None:
    rec = Recorder()
    pipe = pipeline(rec)
    await pipe.route(request(conversation(TASK, "ok")), *_trace(pipe, conversation(TASK, "ok")))
    assert rec.scored == [f"{TASK}\nok"] and not rec.assessed  # no routes: the score's call only
    question = "What is the boiling point of water at the top of Mount Everest?"
    await pipe.route(request(conversation(TASK, question)), *_trace(pipe, conversation(TASK, question)))
    assert rec.scored[-1] == question


async def test_a_route_matches_a_later_reply_by_its_own_words_while_the_score_reads_the_conversation() -> None:
    rec = Recorder()
    thanks = {"name": "thanks", "examples": ["thanks"], "tier": 0, "min_similarity": 0.99}
    pipe = pipeline(rec, [thanks])
    msgs = conversation(TASK, "thanks")
    decision, _ = await pipe.route(request(msgs), *_trace(pipe, msgs))
    assert rec.assessed == ["thanks"] and rec.scored == [f"{TASK}\nthanks"]
    assert decision.reason.startswith("route 'thanks' (similarity 1.000)")
    # An opening: one call gives both.
    rec.assessed.clear()
    rec.scored.clear()
    await pipe.route(request(conversation("thanks")), *_trace(pipe, conversation("thanks")))
    assert rec.assessed == ["thanks"] and rec.scored == []


def _trace(pipe: ChatPipeline, messages: list[dict[str, Any]]) -> tuple[Any, Any, list[dict[str, Any]]]:
    """`route`'s other arguments: the trace and policy `begin` gives, and the messages as sent upstream."""
    req = request(messages)
    trace = start_trace(req, "r", False, None, None, "chat.completions")
    policy, _, _ = pipe.begin(req, trace)
    return trace, policy, [m.model_dump(exclude_none=True) for m in req.messages]


def test_the_recorded_prompt_is_the_text_the_classifier_scores() -> None:
    cfg = config(record_prompts=True)
    pipe = ChatPipeline(cfg, PriceTable(cfg, {}), Recorder().score, FakeProvider(), ListLedger(), ())
    req = request(conversation(TASK, "ok"))
    trace = start_trace(req, "r", False, None, None, "chat.completions")
    pipe.begin(req, trace)
    assert trace.prompt == f"{TASK}\nok"
