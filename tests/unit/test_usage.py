"""gateway/usage.py: the usage of a server that counts one answer's tokens however many it gave (llama.cpp, n > 1)."""

from __future__ import annotations

from gateway.protocol import ChatCompletionRequest
from gateway.usage import answer_usage, counts_one_choice, every_choice
from router.pricing import Usage


def _req(**kw: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}], **kw})


def test_only_an_answer_with_llama_cpps_timings_counts_one_choice() -> None:
    assert counts_one_choice({"usage": {}, "timings": {"predicted_n": 20}})
    assert not counts_one_choice({"usage": {}})
    assert not counts_one_choice({"usage": {}, "timings": 3})


def test_every_answer_is_counted_cut_ones_at_their_limit_others_by_their_text() -> None:
    reported = Usage(34, 20, 3)
    cut = every_choice(_req(max_tokens=20), reported, [("length", 17.2), ("length", 19.0), ("stop", 4.2)])
    assert cut == Usage(34, 20 + 20 + 5, 3)  # the prompt as reported, once
    assert every_choice(_req(max_completion_tokens=10), reported, [("length", 3.0), ("stop", 2.5)]) == Usage(34, 20, 3)
    # Without a limit, a cut answer is counted by its text too; never below what the server counted.
    assert every_choice(_req(), Usage(34, 6, 0), [("length", 4.5), ("stop", 2.1)]) == Usage(34, 8, 0)


def test_a_whole_answers_body_says_every_answers_tokens_where_its_server_counted_one() -> None:
    """The client reads what the ledger bills, as OpenAI's usage counts every answer; the server's other fields stay."""
    usage = {"prompt_tokens": 35, "completion_tokens": 8, "total_tokens": 43, "prompt_tokens_details": {"x": 1}}
    cut = {"message": {"content": "one two three"}, "finish_reason": "length"}
    body = {"choices": [cut, cut], "usage": usage, "timings": {}}
    assert answer_usage(_req(max_tokens=8, n=2), body) == (Usage(35, 16, 0), True)
    assert body["usage"] == {**usage, "completion_tokens": 16, "total_tokens": 51}
    hosted = {"choices": [cut, cut], "usage": dict(usage)}  # counts every answer itself: left as it is
    assert answer_usage(_req(max_tokens=8, n=2), hosted) == (Usage(35, 8, 0), False) and hosted["usage"] == usage
