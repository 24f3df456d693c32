"""Data: text corpora, character vocabularies and truncated-BPTT batches (see `rnnlab.data.text`), and
corpora of any size as token ids on disk (`rnnlab.data.corpus`)."""
from .corpus import Corpus, IdFile, open_corpus
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
    "Corpus", "IdFile", "open_corpus", "BUILTIN_MODULES", "TINYSHAKESPEARE_SHA256", "TINYSHAKESPEARE_URL", "DataError", "Epoch",
    "TBPTTBatches", "Vocab", "builtin_corpus", "cache_dir", "load_text", "split_text",
]
