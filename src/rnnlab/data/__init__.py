"""Data: text corpora, character vocabularies and truncated-BPTT batches (`rnnlab.data.text`); corpora
of any size as token ids on disk (`rnnlab.data.corpus`); a user's own tables and sequences: padding,
forecasting windows, labelled sequences (`rnnlab.data.tables`)."""
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
from .tables import (
    ClassifyData,
    ForecastData,
    ForecastWindows,
    SequenceEncoder,
    Standardizer,
    classify_data,
    forecast_data,
    pad_sequences,
    preprocessing_from_state,
    read_table,
)

__all__ = [
    "Corpus", "IdFile", "open_corpus",
    "BUILTIN_MODULES", "TINYSHAKESPEARE_SHA256", "TINYSHAKESPEARE_URL", "DataError", "Epoch",
    "TBPTTBatches", "Vocab", "builtin_corpus", "cache_dir", "load_text", "split_text",
    "ClassifyData", "ForecastData", "ForecastWindows", "SequenceEncoder", "Standardizer",
    "classify_data", "forecast_data", "pad_sequences", "preprocessing_from_state", "read_table",
]
