"""JSON on the request path: orjson's speed, the standard library's results.

Parsing 784 numbers with `json.loads` was the largest single cost of a predict
request. orjson parses the same documents to the same Python values about 5x
faster, but it is stricter (no NaN/Infinity, UTF-8 only, no lone surrogates)
and reads integers past 64 bits as floats; so anything it rejects, and any body
with a 19-digit run, goes to `json.loads` as before. Callers therefore see the
exact values and the exact error messages `json.loads` would give.

Output text stays `json.dumps` text except for lists of ints (pixels), where
both libraries write the same bytes; orjson spells some floats differently
(`1e-5` vs `1e-05`), so floats are never written with it.
"""

import json
from typing import Any, Dict, Optional

import orjson

# A 19-digit run may be an int past 64 bits, which orjson reads as a float.
# (Found by mapping digits to '0' and a substring search: a regex took 40 us.)
_DIGITS_TO_ZERO = bytes.maketrans(b'123456789', b'0' * 9)
_LONG_INT = b'0' * 19
# What json.dumps(obj, separators=(',', ':')) builds on every call, built once.
_COMPACT = json.JSONEncoder(separators=(',', ':'))
_INT_CHARS = b'0123456789-,[]'


def loads(body: bytes) -> Any:
  """`json.loads(body)`, faster for the common case; raises what it raises."""
  if _LONG_INT not in body.translate(_DIGITS_TO_ZERO):
    try:
      return orjson.loads(body)
    except orjson.JSONDecodeError:
      pass  # let json.loads accept it (NaN, UTF-16, ...) or word the error
  return json.loads(body)


def dumps_compact(obj: Any) -> str:
  """`json.dumps(obj, separators=(',', ':'))`, without building an encoder."""
  return _COMPACT.encode(obj)


def _ints_text(value: Any) -> Optional[str]:
  """orjson's text for (nested lists of) ints, or None for anything else.

  For ints that fit in 64 bits both libraries write the same bytes; orjson
  raises on bigger ones, and anything else (floats, strings, true/null)
  leaves a character outside the digit set.
  """
  try:
    text = orjson.dumps(value)
  except TypeError:
    return None
  return None if text.translate(None, _INT_CHARS) else text.decode()


def dumps(row: Dict[str, Any], ints_key: str) -> str:
  """`json.dumps(row, separators=(',', ':'))`, with `row[ints_key]` by orjson.

  The list is written by orjson and spliced in at its place, so the line is
  byte-for-byte what json.dumps writes; a value that is not a list of ints
  makes it fall back to json.dumps for the whole row.
  """
  ints = _ints_text(row.get(ints_key)) if ints_key in row else None
  if ints is None:
    return dumps_compact(row)
  keys = list(row)
  i = keys.index(ints_key)
  parts = [_COMPACT.encode({k: row[k] for k in keys[:i]}),
           '{' + json.dumps(ints_key) + ':' + ints + '}',
           _COMPACT.encode({k: row[k] for k in keys[i + 1:]})]
  return '{' + ','.join(p[1:-1] for p in parts if p != '{}') + '}'
