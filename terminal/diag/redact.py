"""Keeping personal data and secrets out of what diag prints and bundles.

Three tools, used together: card-like digit runs are masked wherever they appear in free text,
holder names found in free text are masked (the candidates are looked up in the database, see
:func:`name_candidates`), and config values that could be inline secrets are replaced. Results
built from the database never select names, ID numbers, templates or photos in the first place;
these tools are for the text that is not under our control (log lines, decision details).
"""

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from models.cards import mask_card_number
from models.pin import mask_name

# 11+ digits: card numbers (20), ID numbers (18, maybe ending in X), phone numbers (11), also
# written in groups ("3601 0020 …", "138-0013-8000"); the count is checked in _mask_run.
_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]{2,}(?:[ -][0-9]{2,}){0,9}[Xx]?(?![0-9])")
_SEPARATORS = re.compile(r"[ -]")
_MIN_DIGITS = 11
# Chinese names are two to four characters; anything of that length inside a run is a candidate.
_CJK_RUN = re.compile(r"[\u3400-\u9fff]+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_SECRET_KEY = re.compile(r"password|passwd|secret|token|passphrase|psk|private", re.IGNORECASE)
_REFERENCE = ("file:", "credential:")
REDACTED = "<redacted>"


def _mask_run(match: re.Match[str]) -> str:
    run = _SEPARATORS.sub("", match.group(0))
    if len(run) < _MIN_DIGITS:
        return match.group(0)
    # Long runs follow the project's card convention (first and last four); shorter ones, such
    # as phone numbers, would give most of themselves away that way, so keep only the last four.
    return mask_card_number(run) if len(run) >= 16 else "*" * (len(run) - 4) + run[-4:]


def mask_digits(text: str) -> str:
    """``text`` with every run of 11 or more digits masked (fullwidth digits and groups too)."""
    return _DIGIT_RUN.sub(_mask_run, unicodedata.normalize("NFKC", text))


def name_candidates(text: str) -> set[str]:
    """Substrings of ``text`` that could be a holder's name, to look up in the holders table."""
    found: set[str] = set()
    for run in _CJK_RUN.findall(text):
        for size in (2, 3, 4):
            found.update(run[i : i + size] for i in range(len(run) - size + 1))
    words = _WORD.findall(text)
    for size in (1, 2, 3):
        found.update(" ".join(words[i : i + size]) for i in range(len(words) - size + 1))
    return found


def scrub_names(text: str, names: Iterable[str]) -> str:
    """``text`` with each of ``names`` replaced by its masked form (family name only)."""
    for name in sorted(set(names), key=len, reverse=True):
        if name:
            text = text.replace(name, mask_name(name))
    return text


def redact_config(value: Any, secrets: frozenset[str] = frozenset(), path: str = "") -> Any:
    """A config dump with inline secrets replaced; secret *references* (paths) are kept.

    ``secrets`` are the dotted paths of the secret fields (``models.settings.secret_paths``); keys
    named like secrets anywhere else are replaced too, as are key-like runs in free text."""
    if isinstance(value, Mapping):
        return {
            str(k): redact_config(v, secrets, f"{path}.{k}" if path else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_config(v, secrets, path) for v in value]
    key = path.rpartition(".")[2]
    if (path in secrets or _SECRET_KEY.search(key)) and value not in (None, ""):
        if isinstance(value, str) and value.startswith(_REFERENCE):
            return value
        return REDACTED
    return mask_secrets(value) if isinstance(value, str) else value


# Key material pasted where it does not belong: 32+ hex digits (an AES-128 key and up), or a
# base64 run of 22+ characters mixing digits, upper and lower case (16 bytes and up).
_HEX_RUN = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32,}(?![0-9A-Fa-f])")
_B64_RUN = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{22,}={0,2}(?![A-Za-z0-9+/=])")


def _keylike(match: re.Match[str]) -> str:
    run = match.group(0)
    mixed = any(c.isdigit() for c in run) and any(c.isupper() for c in run)
    return REDACTED if mixed and any(c.islower() for c in run) else run


def mask_secrets(text: str) -> str:
    """``text`` with runs that look like keys (long hex, mixed-case base64) replaced."""
    return _B64_RUN.sub(_keylike, _HEX_RUN.sub(REDACTED, text))
