"""The text tokenizer: a small BPE trained on the dataset's own captions.

Nothing is downloaded, so the CLIP vocabulary of the public code is not
available. Instead a byte-pair encoding is trained with the ``tokenizers``
library on the captions and class prompts, and saved as JSON inside the
checkpoint card (:meth:`SpikeTextTokenizer.to_json`).

Choices, all made for a corpus of a few hundred short English captions:

* normalisation: NFKC, then lower case;
* pre-tokenisation: SentencePiece-style ``▁`` word markers (``Metaspace``) and
  punctuation split off, so :meth:`~SpikeTextTokenizer.decode` restores spacing;
* model: BPE with ``<unk>`` for characters never seen; the lower-case letters,
  digits and common punctuation are always in the alphabet, so an unseen English
  word still encodes as pieces rather than ``<unk>``;
* special tokens at fixed ids: ``<pad>`` 0, ``<sot>`` 1, ``<eot>`` 2, ``<unk>`` 3.

Training is deterministic: the same texts give the same JSON in any process.
(BPE with an end-of-word suffix, as CLIP uses, is not: ``tokenizers`` numbers
the suffixed characters in hash order.)
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from spklip_energy.errors import ConfigError

PAD_TOKEN, SOT_TOKEN, EOT_TOKEN, UNK_TOKEN = "<pad>", "<sot>", "<eot>", "<unk>"
SPECIAL_TOKENS = (PAD_TOKEN, SOT_TOKEN, EOT_TOKEN, UNK_TOKEN)  # their ids are their positions
PAD_ID, SOT_ID, EOT_ID, UNK_ID = range(len(SPECIAL_TOKENS))

_WORD_MARK = "\u2581"  # "▁", the Metaspace word-start marker
_BASE_ALPHABET = sorted(set(string.ascii_lowercase + string.digits + ".,;:!?'\"-()/&" + _WORD_MARK))


def _empty_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(replacement=_WORD_MARK), pre_tokenizers.Punctuation()]
    )
    tok.decoder = decoders.Metaspace(replacement=_WORD_MARK)
    return tok


class SpikeTextTokenizer:
    """Lower-case BPE with ``<pad>``/``<sot>``/``<eot>``/``<unk>`` at ids 0-3.

    Build one with :meth:`train` or :meth:`from_json`; :meth:`encode` gives the
    ``[N, context_length]`` id tensor the text tower reads.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        for expected_id, token in enumerate(SPECIAL_TOKENS):
            found = tokenizer.token_to_id(token)
            if found != expected_id:
                raise ConfigError(f"tokenizer special token {token} must have id {expected_id}, found {found}")
        self._tok = tokenizer

    # ------------------------------------------------------------------ building

    @classmethod
    def train(cls, texts: Sequence[str], vocab_size: int) -> SpikeTextTokenizer:
        """Train on ``texts``; the vocabulary has at most ``vocab_size`` entries.

        Raises :class:`ConfigError` when there is no text, or when ``vocab_size``
        cannot hold the special tokens and the characters of the texts.
        """
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= 0:
            raise ConfigError(f"tokenizer vocab_size must be a positive integer, got {vocab_size!r}")
        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise ConfigError("tokenizer training texts must all be strings")
        if not any(t.strip() for t in texts):
            raise ConfigError("tokenizer training needs at least one non-empty text")
        tok = _empty_tokenizer()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=_BASE_ALPHABET,
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        if tok.get_vocab_size() > vocab_size:
            raise ConfigError(
                f"tokenizer vocab_size={vocab_size} is too small: the special tokens and the "
                f"characters of the texts alone need {tok.get_vocab_size()}"
            )
        return cls(tok)

    @classmethod
    def from_json(cls, text: str) -> SpikeTextTokenizer:
        """Rebuild a tokenizer saved by :meth:`to_json`; ConfigError if it is not one."""
        if not isinstance(text, str):
            raise ConfigError(f"tokenizer JSON must be a string, got {type(text).__name__}")
        try:
            if not isinstance(json.loads(text), dict):
                raise ValueError("not an object")
            tok = Tokenizer.from_str(text)
        except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exception
            raise ConfigError(f"tokenizer JSON is not a saved tokenizer ({exc})") from None
        return cls(tok)

    def to_json(self) -> str:
        """The whole tokenizer (vocabulary, merges, normaliser) as one JSON string."""
        return self._tok.to_str()

    # ------------------------------------------------------------------ using

    def encode(self, texts: Sequence[str], context_length: int) -> torch.Tensor:
        """Token ids ``[N, context_length]`` (int64): ``<sot>`` tokens ``<eot>``, then ``<pad>`` (0).

        Texts too long are truncated so that ``<eot>`` is always the last real token.
        """
        if isinstance(context_length, bool) or not isinstance(context_length, int) or context_length < 2:
            raise ConfigError(
                f"context_length must be an integer of at least 2 (<sot> and <eot>), got {context_length!r}"
            )
        if isinstance(texts, str):
            raise ConfigError("tokenizer encode expects a list of texts, got a single string")
        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise ConfigError("tokenizer encode expects every text to be a string")
        out = torch.full((len(texts), context_length), PAD_ID, dtype=torch.long)
        if not texts:
            return out
        room = context_length - 2
        for row, enc in enumerate(self._tok.encode_batch(texts, add_special_tokens=False)):
            ids = [SOT_ID, *enc.ids[:room], EOT_ID]
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def decode(self, ids) -> str:
        """Text of one id sequence (list or 1-D tensor); ``<pad>``/``<sot>``/``<eot>`` are dropped."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ConfigError(f"tokenizer decode expects one id sequence, got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        drop = {PAD_ID, SOT_ID, EOT_ID}
        kept = [int(i) for i in ids if int(i) not in drop]
        return self._tok.decode(kept, skip_special_tokens=False)

    def tokens(self, text: str) -> list[str]:
        """The BPE pieces of one text, without special tokens (for debugging)."""
        return self._tok.encode(text, add_special_tokens=False).tokens

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def sot_id(self) -> int:
        return SOT_ID

    @property
    def eot_id(self) -> int:
        return EOT_ID

    @property
    def unk_id(self) -> int:
        return UNK_ID

    def __repr__(self) -> str:
        return f"SpikeTextTokenizer(vocab_size={self.vocab_size})"


__all__ = ["EOT_ID", "PAD_ID", "SOT_ID", "SPECIAL_TOKENS", "UNK_ID", "SpikeTextTokenizer"]
