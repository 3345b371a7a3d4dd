"""Keep credentials out of the store.

Three layers, applied to everything the capture writes that comes from outside autotrack
(argv, git remotes, diffs, the entry script, allow-listed environment values):

* flags named like a credential (``--hub_token=...``, ``--api-key X``, ``db.password=...``) have
  their values replaced;
* ``scheme://user:password@host`` loses its user info;
* well-known token shapes (GitHub, Hugging Face, AWS, OpenAI, Slack, private keys) and the values
  of this process's own secret-looking environment variables are replaced wherever they appear.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

REDACTED = "***"

#: Name parts that make a flag or variable a credential when they appear anywhere in its name.
_SECRET_PARTS = {"token", "secret", "password", "passwd", "credential", "credentials", "auth",
                 "apikey", "passphrase", "cookie"}
#: Name parts that make it a credential only as the last part (``--api_key`` yes, ``--key_size`` no).
_SECRET_LAST = {"key", "pat", "sas", "signature"}

#: Tokenizer special tokens are not credentials (``pad_token = "<pad>"``).
_TOKENIZER_WORDS = {"pad", "eos", "bos", "unk", "sep", "cls", "mask", "start", "end", "special", "additional"}

_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s:]*(?::[^/@\s]*)?)@")
_TOKEN_SHAPES = re.compile(
    "|".join(
        (
            r"gh[pousr]_[A-Za-z0-9_]{8,}",  # GitHub tokens
            r"github_pat_[A-Za-z0-9_]{20,}",
            r"glpat-[A-Za-z0-9_\-]{16,}",  # GitLab
            r"hf_[A-Za-z0-9]{16,}",  # Hugging Face
            r"(?:AKIA|ASIA)[A-Z0-9]{16}",  # AWS access key ids
            r"sk-[A-Za-z0-9_\-]{20,}",  # OpenAI and similar
            r"xox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack
            r"AIza[0-9A-Za-z_\-]{35}",  # Google API keys
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        )
    )
)
# `password = "hunter2"`, `api_key: 'abc'` in code and configs (diffs, the entry script).
_ASSIGNMENT = re.compile(
    r"""(?ix)
    (?P<name>\b[\w.\-]*(?:token|secret|password|passwd|api[_\-]?key|access[_\-]?key|private[_\-]?key|credentials?)\b)
    (?P<sep>\s*[:=]\s*)
    (?P<quote>["'])(?P<value>[^"'\n]{4,})(?P=quote)
    """
)


def is_secret_name(name: str) -> bool:
    """True for names like ``HF_TOKEN``, ``--hub_token``, ``aws_secret_access_key``, ``api-key``."""
    parts = [p for p in re.split(r"[^a-z0-9]+", name.lower()) if p]
    if not parts:
        return False
    if _is_tokenizer_word(parts):
        return False
    if any(p in _SECRET_PARTS for p in parts):
        return True
    return parts[-1] in _SECRET_LAST or "".join(parts[-2:]) in ("apikey", "accesskey", "privatekey")


def _is_tokenizer_word(parts: list[str]) -> bool:
    return len(parts) >= 2 and parts[-1] in ("token", "tokens") and parts[-2] in _TOKENIZER_WORDS


def secret_env_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of this process's secret-looking environment variables (8 characters or longer)."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if is_secret_name(k) and len(v) >= 8}
    return sorted(values, key=len, reverse=True)


def redact_url(url: str) -> str:
    """``https://user:pass@host/x`` -> ``https://host/x`` (user info of any URL removed)."""
    return _URL_USERINFO.sub(lambda m: m.group("scheme"), url)


def redact_text(text: str, extra: Sequence[str] | None = None) -> str:
    """Remove URL credentials, well-known token shapes, secret assignments and the given values."""
    for value in secret_env_values() if extra is None else extra:
        if value in text:
            text = text.replace(value, REDACTED)
    text = _URL_USERINFO.sub(lambda m: m.group("scheme"), text)
    text = _TOKEN_SHAPES.sub(REDACTED, text)
    return _ASSIGNMENT.sub(_redact_assignment, text)


def _redact_assignment(m: re.Match[str]) -> str:
    if _is_tokenizer_word([p for p in re.split(r"[^a-z0-9]+", m.group("name").lower()) if p]):
        return m.group(0)
    return f"{m.group('name')}{m.group('sep')}{m.group('quote')}{REDACTED}{m.group('quote')}"


def redact_argv(argv: Sequence[str]) -> list[str]:
    """Redact the values of credential-named flags in a command line, then redact each argument.

    Handles ``--flag=value``, ``--flag value``, ``-flag value`` and ``name=value`` (Hydra style).
    """
    secrets = secret_env_values()
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            hide_next = False
            if not arg.startswith("-") or arg == "-":
                out.append(REDACTED)
                continue
        if "=" in arg:
            name, _, value = arg.partition("=")
            if is_secret_name(name.lstrip("-+~")) and value:
                out.append(f"{name}={REDACTED}")
                continue
        elif arg.startswith("-") and is_secret_name(arg.lstrip("-")):
            hide_next = True
        out.append(redact_text(arg, secrets))
    return out
