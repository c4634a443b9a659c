"""How well the router's token estimate (router/tokens.py) counts real text, against three real tokenizers.

    .venv/bin/python -m bench.tokens [--passages 20] [--chars 800]

Text: real translations, the message catalogues that Debian installs under /usr/share/locale (UI strings of GNU and
other programs, translated by people), gathered into passages of about `--chars` characters per language; and code
(the standard library's asyncio). Tokenizers: GPT-4's cl100k (tiktoken, from the file litellm ships), DeepSeek's
(litellm ships it too) and the local model's, SmolLM2-135M, counted by llama-server's /tokenize. Printed per
language: characters a token for each tokenizer, and the median of estimate / real count for the old rule (4
characters a token) and the shipped estimate. Under 1 is an undercount (a prompt that looks shorter than it is).
"""

from __future__ import annotations

import argparse
import gettext
import os
import random
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import litellm

import gateway  # noqa: F401  (offline environment variables)
from router.tokens import estimate_tokens
from tests.fakes.upstream import free_port
from tests.local_model import start_llama_server

LANGUAGES = ("de", "fr", "ru", "zh_CN", "ja", "ko", "ar", "hi")
TOKENIZERS = ("cl100k", "deepseek", "smollm2")
TOKENIZERS_SHOWN = "cl100k, DeepSeek, SmolLM2"


def translations(lang: str, passages: int, chars: int) -> list[str]:
    """`passages` texts of about `chars` characters, each made of whole translated messages in `lang`."""
    messages = []
    for mo in sorted(Path("/usr/share/locale", lang, "LC_MESSAGES").glob("*.mo")):
        try:
            with mo.open("rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog  # msgid -> msgstr
        except (OSError, ValueError):
            continue
        messages += [v for k, v in catalog.items() if isinstance(k, str) and k and isinstance(v, str) and len(v) > 20]
    random.Random(1).shuffle(messages)
    out, cur = [], ""
    for m in messages:
        cur += m + "\n"
        if len(cur) >= chars:
            out.append(cur)
            cur = ""
            if len(out) == passages:
                break
    return out


def code(passages: int, chars: int) -> list[str]:
    import asyncio

    text = "".join(p.read_text() for p in sorted(Path(asyncio.__file__).parent.glob("*.py")))
    return [text[i * chars * 3 : i * chars * 3 + chars] for i in range(passages)]


@dataclass(frozen=True)
class Count:
    chars: int
    estimate: float
    real: dict[str, int]  # by tokenizer


def medians(counts: list[Count], f: Callable[[Count, int], float]) -> str:
    """The median over passages of f(passage, its real count), for each tokenizer."""
    return ", ".join(f"{statistics.median(f(c, c.real[t]) for c in counts):.2f}" for t in TOKENIZERS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", type=int, default=20)
    ap.add_argument("--chars", type=int, default=800)
    args = ap.parse_args()
    shipped = Path(litellm.__file__).parent / "litellm_core_utils" / "tokenizers"
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(shipped))  # offline: tiktoken reads cl100k from litellm's copy
    import tiktoken
    from tokenizers import Tokenizer

    cl100k = tiktoken.get_encoding("cl100k_base")
    deepseek = Tokenizer.from_file(str(shipped / "deepseek_tokenizer.json"))
    texts = {lang: translations(lang, args.passages, args.chars) for lang in LANGUAGES}
    texts["code"] = code(args.passages, args.chars)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_llama_server(port, Path(tmp) / "llama.log")
        try:
            print(f"| text | passages | chars / token ({TOKENIZERS_SHOWN}) | 4 chars a token / real | shipped / real |")
            print("|---|---|---|---|---|")
            for lang, passages in texts.items():
                counts = [
                    Count(
                        len(p),
                        estimate_tokens(p),
                        {
                            "cl100k": len(cl100k.encode(p)),
                            "deepseek": len(deepseek.encode(p).ids),
                            "smollm2": len(
                                httpx.post(f"http://127.0.0.1:{port}/tokenize", json={"content": p}).json()["tokens"]
                            ),
                        },
                    )
                    for p in passages
                ]
                per_token = medians(counts, lambda c, real: c.chars / real)
                old = medians(counts, lambda c, real: c.chars / 4 / real)
                new = medians(counts, lambda c, real: c.estimate / real)
                print(f"| {lang} | {len(counts)} | {per_token} | {old} | {new} |")
        finally:
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    main()
