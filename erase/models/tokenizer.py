"""A CLIPTokenizer built offline from a word list the project ships (no hub download).

CLIP's tokenizer is byte-level BPE: every byte is a token (with and without the end-of-word mark "</w>"),
and merges join symbols into longer tokens. We add, for each word of the list, the merges that spell it as
one token; any other text still tokenizes, byte by byte. Merges are added after simulating BPE with the
merges so far, so a later word never changes how an earlier word is split.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from erase.config import REPO_ROOT

VOCABULARY_FILE = REPO_ROOT / "erase" / "data" / "vocabulary.txt"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
END = "</w>"


@lru_cache(maxsize=1)
def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's reversible byte -> printable unicode table, in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def _symbols(word: str) -> list[str]:
    table = _byte_symbols()
    chars = [table[b] for b in word.encode("utf-8")]
    return chars[:-1] + [chars[-1] + END]


def _apply(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """BPE: repeatedly join the adjacent pair with the lowest merge rank."""
    while len(symbols) > 1:
        pairs = [(ranks.get(p, None), i) for i, p in enumerate(zip(symbols, symbols[1:]))]
        ranked = [(r, i) for r, i in pairs if r is not None]
        if not ranked:
            break
        _, i = min(ranked)
        symbols = symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2:]
    return symbols


def read_words(path: Path = VOCABULARY_FILE) -> list[str]:
    words = []
    for line in path.read_text().splitlines():
        for word in line.lower().split():
            if word and word not in words:
                words.append(word)
    return words


def build_vocabulary(words: list[str]) -> tuple[dict[str, int], list[str]]:
    """(vocab, merges) that make every word in `words` a single token."""
    byte_tokens = _byte_symbols()
    tokens = byte_tokens + [s + END for s in byte_tokens]
    known = set(tokens)
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        symbols = _apply(_symbols(word), ranks)
        while len(symbols) > 1:  # join left to right with new, lower-priority merges
            pair = (symbols[0], symbols[1])
            ranks[pair] = len(ranks)
            joined = pair[0] + pair[1]
            if joined not in known:
                known.add(joined)
                tokens.append(joined)
            symbols = [joined] + symbols[2:]
    tokens += [BOS, EOS]
    merges = [f"{a} {b}" for (a, b), _ in sorted(ranks.items(), key=lambda kv: kv[1])]
    return {t: i for i, t in enumerate(tokens)}, merges


def write_tokenizer(folder: Path, max_length: int, words: list[str] | None = None) -> Path:
    """Write a CLIPTokenizer folder (vocab.json, merges.txt, tokenizer_config.json) for `words`."""
    vocab, merges = build_vocabulary(words if words is not None else read_words())
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "CLIPTokenizer", "model_max_length": max_length, "bos_token": BOS,
         "eos_token": EOS, "unk_token": EOS, "pad_token": EOS, "do_lower_case": True}, indent=2))
    return folder


def token_ids(tokenizer, prompts):
    """Prompts -> token ids padded to the tokenizer's max length, as Stable Diffusion pipelines encode them."""
    return tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


def load_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)


def build_tokenizer(folder: Path, max_length: int, words: list[str] | None = None):
    """The shipped vocabulary as a CLIPTokenizer (written to `folder`, then loaded from it)."""
    return load_tokenizer(write_tokenizer(folder, max_length, words))
