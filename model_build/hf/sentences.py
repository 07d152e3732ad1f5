"""The sentences a text model's parity gate runs on: varied on purpose, built without any
download, the same every build.

Short and long, sentences cut at the tokenizer's bound (longer than ``max_length`` tokens, so
truncation is part of what is compared), punctuation and digits, and non-ASCII scripts
(accents, Cyrillic, Greek, CJK, Arabic, emoji), plus the degenerate ones: an empty string and
whitespace only.
"""

from __future__ import annotations

import random

_SUBJECTS = [
    "The cat",
    "A young engineer",
    "Our quarterly revenue",
    "The old lighthouse keeper",
    "This recipe",
    "The committee",
    "A sudden storm",
    "The new compiler",
    "My grandmother",
    "The orbiting telescope",
]
_VERBS = [
    "quietly watched",
    "rapidly outgrew",
    "carefully documented",
    "never understood",
    "strongly recommended",
    "accidentally deleted",
    "happily rebuilt",
    "barely survived",
]
_OBJECTS = [
    "the harbour at dawn",
    "every unit test in the repository",
    "a bowl of tomato soup",
    "the price of electricity in 2024",
    "three hundred pages of notes",
    "the distant galaxy cluster",
    "our deployment pipeline",
    "an unfinished symphony",
]
_NON_ASCII = [
    "Le café est fermé le dimanche, mais la boulangerie reste ouverte.",
    "Die Straßenbahn fährt über die Brücke in Köln.",
    "¿Dónde está la estación de tren más cercana?",
    "Москва — столица России, и там очень холодно зимой.",
    "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",  # noqa: RUF001 - Greek on purpose
    "東京は日本の首都です。",
    "我喜欢在周末读书和喝茶。",
    "서울은 한국의 수도입니다.",
    "القاهرة هي عاصمة مصر.",
    "Emoji are text too 🙂🚀🔥 — and so are “curly quotes”.",
    "naïve coöperation façade résumé",
    "Ünïcödé ẗëẍẗ ŵïẗḧ ḋïäċṙïẗïċṡ",
]
_FIXED = [
    "",
    "   ",
    "Hello!",
    "ok",
    "A",
    "What is the capital of France?",
    "Paris is the capital of France.",
    "The quick brown fox jumps over the lazy dog.",
    "1234567890 3.14159 2.71828 -42 +7 1e-9",
    "C'est la vie... isn't it?!?",
    "https://example.com/path?query=1&other=two#fragment",
    "user@example.com wrote: >> quoted text <<",
    "UPPER CASE AND lower case and MiXeD cAsE",
    "tab\tseparated\tvalues\nand a new line",
]


def parity_sentences(*, count: int = 240, max_length: int = 256, seed: int = 20240) -> list[str]:
    """``count`` sentences (at least 200 for a real gate), a quarter of them longer than
    ``max_length`` tokens could hold."""
    rng = random.Random(seed)
    sentences = list(_FIXED) + list(_NON_ASCII)

    def clause() -> str:
        return f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"

    long_target = count // 4
    while len(sentences) < count:
        kind = len(sentences) % 4
        if kind == 0 and long_target > 0:
            # At least one word-piece per word: more words than the bound guarantees the cut.
            words: list[str] = []
            while len(words) <= max_length + 16:
                words.extend(clause().split())
                words.append(rng.choice([",", ";", "and", "while", "."]))
            sentences.append(" ".join(words))
            long_target -= 1
        elif kind == 1:
            sentences.append(f"{clause()}, and {clause().lower()} {rng.choice(_NON_ASCII)}")
        elif kind == 2:
            sentences.append(" ".join(clause() + "." for _ in range(rng.randint(2, 6))))
        else:
            sentences.append(clause() + rng.choice([".", "!", "?", "..."]))
    return sentences[:count]
