"""Data: text corpora, character vocabularies and truncated-BPTT batches (see `rnnlab.data.text`)."""
from .text import (
    BUILTIN_MODULES,
    TINYSHAKESPEARE_SHA256,
    TINYSHAKESPEARE_URL,
    DataError,
    Epoch,
    TBPTTBatches,
    Vocab,
    builtin_corpus,
    cache_dir,
    load_text,
    split_text,
)

__all__ = [
    "BUILTIN_MODULES", "TINYSHAKESPEARE_SHA256", "TINYSHAKESPEARE_URL", "DataError", "Epoch",
    "TBPTTBatches", "Vocab", "builtin_corpus", "cache_dir", "load_text", "split_text",
]
