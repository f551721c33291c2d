"""faust, and only here: the rates stream's app (`app`) and its whole-fetch consumer
(`fetching`). Each module names the faust internals it relies on; the version is pinned in
pyproject.toml, and tests/unit/test_faust_internals.py fails when an upgrade changes them."""

from streams.faust_app.app import FaustRates, StreamCrashed
from streams.faust_app.fetching import FetchedRecord, FetchHandler

FAUST_VERSION = "0.15.3"

__all__ = ["FAUST_VERSION", "FaustRates", "FetchHandler", "FetchedRecord", "StreamCrashed"]
