"""Keep credentials out of the store: one detector for every value and every stored text file.

What is replaced by ``***`` (``REDACTED``) before anything is written:

* **token shapes, under any name and anywhere in a text**: AWS access key ids (and 40-character
  AWS secret keys next to the word ``aws``), GitHub (``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_``,
  ``github_pat_``), GitLab ``glpat-``, Hugging Face ``hf_``, OpenAI/Anthropic ``sk-``/``sk-proj-``,
  Stripe ``sk_live_``/``rk_live_``, Slack ``xox?-`` tokens and webhooks, Google ``AIza``, npm,
  PyPI, JWTs, PEM private key blocks, ``Authorization: Bearer|Basic|Token ...`` and ``Bearer ...``;
* **values under secret-looking names**: ``key = value``, ``key: value``, ``"key": "value"``,
  ``--key=value``, ``--key value``, ``export KEY=value`` lines in scripts, diffs, YAML, INI, shell
  and ``.env`` text; params and tags whose dotted name has a secret-looking part (so
  ``{"password": {"value": x}}`` is caught), in strings, lists and bytes; numbers stay
  (``pad_token_id=0``, ``max_tokens=512``);
* ``scheme://user:password@host`` loses its user info;
* the values of this process's own secret-looking environment variables, wherever they appear;
* user patterns: ``AUTOTRACK_REDACT_PATTERNS`` (one regular expression per line, or a JSON list)
  and :func:`add_patterns`; a pattern with a group replaces only its first group.

Allow-listed names and paths (``AUTOTRACK_REDACT_ALLOW``: comma-separated names or ``fnmatch``
globs, and :func:`allow`) are exempt from the *name* rules only; token shapes are always replaced.

Each redaction can be reported as a finding, ``{"rule": ..., "line": n}`` (plus where: the
caller adds section/param/file), never the value.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

REDACTED = "***"

Finding = dict[str, Any]


class _Lazy:
    """A regular expression compiled on first use: ``import autotrack`` compiles none."""

    __slots__ = ("args", "rx")

    def __init__(self, *args: Any) -> None:
        self.args, self.rx = args, None

    def __getattr__(self, name: str) -> Any:
        if self.rx is None:
            self.rx = re.compile(*self.args)
        return getattr(self.rx, name)



#: Name parts that make a param/flag/variable name a credential wherever they appear in it.
_SECRET_PARTS = {"token", "secret", "password", "passwd", "credential", "credentials", "auth",
                 "apikey", "passphrase", "cookie", "privatekey", "accesstoken", "authtoken", "secretkey"}
#: ... only as the last part (``--api_key`` yes, ``--key_size`` no).
_SECRET_LAST = {"key", "pat", "sas", "signature"}
#: In free text (code, configs) a bare ``key``/``auth``/``signature`` is too common to mean a
#: credential: there the name must carry one of these.
_TEXT_PARTS = _SECRET_PARTS - {"auth"}
_COMPOUND = ("apikey", "accesskey", "privatekey", "secretkey", "clientsecret", "authtoken")

#: Tokenizer special tokens are not credentials (``pad_token = "<pad>"``).
_TOKENIZER_WORDS = {"pad", "eos", "bos", "unk", "sep", "cls", "mask", "start", "end", "special", "additional"}

_URL_USERINFO = _Lazy(r"(?<![A-Za-z0-9+.\-])(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s:]*(?::[^/@\s]*)?)@")

#: (rule id, pattern, group to replace). Learnt from the shapes secret scanners document; every
#: pattern is anchored on a fixed prefix or structure so that ordinary text does not match.
_SHAPE_SOURCES: tuple[tuple[str, str, int], ...] = (
        ("private-key", r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
                        r"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|\Z)", 0),
        ("jwt", r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}", 0),
        ("github-token", r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})", 0),
        ("gitlab-token", r"\bglpat-[A-Za-z0-9_\-]{20,}", 0),
        ("huggingface-token", r"\bhf_[A-Za-z0-9]{20,}", 0),
        ("openai-key", r"\bsk-(?:proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}", 0),
        ("stripe-key", r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}", 0),
        ("slack-token", r"\bxox[abeoprs]-[A-Za-z0-9\-]{10,}", 0),
        ("slack-webhook", r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]+", 0),
        ("google-api-key", r"\bAIza[0-9A-Za-z_\-]{35}", 0),
        ("aws-access-key-id", r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b", 0),
        ("aws-secret-key", r"(?i:aws)[^\n]{0,40}?(?<![A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])", 1),
        ("npm-token", r"\bnpm_[A-Za-z0-9]{36}\b", 0),
        ("pypi-token", r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}", 0),
        ("authorization-header", r"(?i:authorization)[\"']?\s*[:=]\s*[\"']?\s*(?:(?i:bearer|basic|token|digest)\s+)?"
                                 r"([A-Za-z0-9\-._~+/]{8,}=*)", 1),
        ("bearer-token", r"\b(?i:bearer)\s+([A-Za-z0-9\-._~+/]{16,}=*)", 1),
)


#: Fixed strings one of which every match of a shape contains (lower case): a text without any of
#: them skips that shape's regular expression (a C substring search instead of a regex scan).
_NEEDLES = {
    "private-key": ("private key",), "jwt": ("eyj",), "github-token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "gitlab-token": ("glpat-",), "huggingface-token": ("hf_",), "openai-key": ("sk-",),
    "stripe-key": ("_live_", "_test_"), "slack-token": ("xox",), "slack-webhook": ("hooks.slack.com",),
    "google-api-key": ("aiza",), "aws-access-key-id": ("akia", "asia", "abia", "acca", "agpa", "aida", "aroa",
                                                        "anpa", "anva", "aipa"),
    "aws-secret-key": ("aws",), "npm-token": ("npm_",), "pypi-token": ("pypi-",),
    "authorization-header": ("authorization",), "bearer-token": ("bearer",),
}
#: A line that can hold a secret-named assignment contains one of these (lower case).
_NAME_WORDS = ("token", "secret", "passw", "credential", "passphrase", "cookie", "auth", *(
    f"{a}{sep}key" for a in ("api", "access", "private") for sep in ("", "_", "-", ".")))


@functools.lru_cache(maxsize=1)
def _shapes() -> list[tuple[str, re.Pattern[str], int, tuple[str, ...]]]:
    """The token shapes, compiled on first use (``import autotrack`` stays light)."""
    return [(rule, re.compile(pattern), group, _NEEDLES[rule]) for rule, pattern, group in _SHAPE_SOURCES]

# `name = value`, `name: value`, `"name": "value"`, `--name=value` under a secret-looking name.
_ASSIGN = _Lazy(
    r"""(?<![\w.\-])(?P<dash>--?)?(?P<q>["']?)(?P<name>[A-Za-z_][\w.\-]*)(?P=q)
        (?P<sep>[ \t]*(?::=|=|:(?!//))[ \t]*|(?(dash)[ \t]+(?=[^\s\-=:])|(?!)))
        (?P<value>"[^"\n]*"|'[^'\n]*'|[^\s"'`]+)""",
    re.X,
)
_NUMBER = _Lazy(r"^[+\-]?(?:\d[\d_]*\.?\d*(?:[eE][+\-]?\d+)?|\.\d+|0x[0-9a-fA-F]+|inf|nan)$")
_IDENT = _Lazy(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
_NOT_VALUES = {"true", "false", "null", "none", "nil", "~", "yes", "no", "on", "off", "required", "optional",
               REDACTED.lower(), "<redacted>", "redacted", "xxx", "changeme"}
_CONFIG_SUFFIXES = (".yaml", ".yml", ".ini", ".cfg", ".conf", ".toml", ".env", ".properties", ".sh", ".bash",
                    ".zsh", ".envrc", ".netrc", ".npmrc", ".pypirc", ".json", ".tfvars")
_CODE_SUFFIXES = (".py", ".pyi", ".ipynb", ".js", ".ts", ".java", ".go", ".rs", ".rb", ".scala", ".kt", ".c",
                  ".cc", ".cpp", ".h", ".hpp", ".jl", ".r", ".R", ".lua")
_DIFF_FILE = _Lazy(r"^diff --git a/.*? b/(?P<path>.*)$", re.M)


# -- configuration -------------------------------------------------------------------------------

_user_patterns: list[re.Pattern[str]] = []
_user_allow: list[str] = []
_env_cache: dict[str, Any] = {}


def add_patterns(*patterns: str) -> None:
    """Also redact text matching these regular expressions (a group: only its first group)."""
    from ._errors import InvalidArgumentError

    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise InvalidArgumentError("pattern", pattern, "pass a regular expression as a non-empty str")
        try:
            _user_patterns.append(re.compile(pattern))
        except re.error as exc:
            raise InvalidArgumentError("pattern", pattern, f"not a valid regular expression ({exc})") from None


def allow(*names: str) -> None:
    """Exempt these param/tag/flag names or file paths (``fnmatch`` globs) from the name rules."""
    from ._errors import InvalidArgumentError

    for name in names:
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError("name", name, "pass a name such as 'token_budget' or a glob such as 'tests/*'")
        _user_allow.append(name)


def reset() -> None:
    """Forget patterns and allow-list entries added by :func:`add_patterns` / :func:`allow`."""
    _user_patterns.clear()
    _user_allow.clear()


def _env_patterns() -> list[re.Pattern[str]]:
    raw = os.environ.get("AUTOTRACK_REDACT_PATTERNS", "")
    cached = _env_cache.get("patterns")
    if cached is not None and cached[0] == raw:
        return cached[1]
    out = []
    texts: list[str]
    try:
        texts = [str(p) for p in json.loads(raw)] if raw.lstrip().startswith("[") else raw.splitlines()
    except ValueError:
        texts = raw.splitlines()
    for text in texts:
        if text.strip():
            try:
                out.append(re.compile(text.strip()))
            except re.error as exc:
                from ._patching import report_failure

                report_failure("AUTOTRACK_REDACT_PATTERNS", ValueError(f"{text.strip()!r} is not a valid regular "
                                                                     f"expression ({exc}); it is ignored"))
    _env_cache["patterns"] = (raw, out)
    return out


def _allow_list() -> list[str]:
    raw = os.environ.get("AUTOTRACK_REDACT_ALLOW", "")
    return [*(p.strip() for p in raw.split(",") if p.strip()), *_user_allow]


def is_allowed(name: str) -> bool:
    """True when ``name`` (a param/tag name or a file path) is allow-listed."""
    entries = _allow_list()
    if not entries:
        return False
    lowered = name.lower()
    return any(lowered == e.lower() or fnmatch.fnmatchcase(name, e) for e in entries)


# -- names ---------------------------------------------------------------------------------------


def _parts(name: str) -> list[str]:
    return [p for p in re.split(r"[^a-z0-9]+", name.lower()) if p]


def _is_tokenizer_word(parts: list[str]) -> bool:
    return len(parts) >= 2 and parts[-1] in ("token", "tokens") and parts[-2] in _TOKENIZER_WORDS


_verdicts: dict[str, bool] = {}
_verdicts_for: list[Any] = [None]  # the allow-list the cached verdicts were made under


def is_secret_name(name: str) -> bool:
    """True for names like ``HF_TOKEN``, ``--hub_token``, ``aws_secret_access_key``, ``api-key``
    (not for ``pad_token``, ``max_tokens``, ``key_size`` or allow-listed names). Verdicts are
    cached while the allow-list stays the same (every logged key is checked)."""
    allow = (os.environ.get("AUTOTRACK_REDACT_ALLOW", ""), tuple(_user_allow))
    if _verdicts_for[0] != allow:
        _verdicts.clear()
        _verdicts_for[0] = allow
    verdict = _verdicts.get(name)
    if verdict is None:
        if len(_verdicts) > 10_000:
            _verdicts.clear()
        verdict = _verdicts[name] = _is_secret_name(name)
    return verdict


def _is_secret_name(name: str) -> bool:
    parts = _parts(name)
    if not parts or _is_tokenizer_word(parts) or is_allowed(name.lstrip("-")):
        return False
    if any(p in _SECRET_PARTS for p in parts):
        return True
    return parts[-1] in _SECRET_LAST or "".join(parts[-2:]) in _COMPOUND


def _is_secret_text_name(name: str) -> bool:
    parts = _parts(name)
    if not parts or _is_tokenizer_word(parts) or is_allowed(name):
        return False
    joined = "".join(parts)
    return any(p in _TEXT_PARTS for p in parts) or any(c in joined for c in _COMPOUND)


def secret_env_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of this process's secret-looking environment variables (8 characters or longer)."""
    if environ is None:
        # called for every value logged: recomputed only when the environment (or allow-list) changed
        raw = getattr(os.environ, "_data", None)
        key = (hash(frozenset(raw.items())) if isinstance(raw, dict) else None, _verdicts_for[0])
        cached = _env_cache.get("secret_values")
        if key[0] is not None and cached is not None and cached[0] == key:
            return list(cached[1])
        values = _secret_values(os.environ)
        _env_cache["secret_values"] = ((key[0], _verdicts_for[0]), values)
        return list(values)
    return _secret_values(environ)


def _secret_values(env: Mapping[str, str]) -> list[str]:
    values = {v for k, v in env.items() if is_secret_name(k) and len(v) >= 8}
    return sorted(values, key=len, reverse=True)


def redact_url(url: str) -> str:
    """``https://user:pass@host/x`` -> ``https://host/x`` (user info of any URL removed)."""
    return _URL_USERINFO.sub(lambda m: m.group("scheme"), url)


# -- texts ---------------------------------------------------------------------------------------


def _mode(path: str | None) -> str:
    if not path:
        return "text"
    base = path.rsplit("/", 1)[-1]
    if base.startswith(".env") or base.endswith(_CONFIG_SUFFIXES) or base in ("Dockerfile", "credentials", "config"):
        return "config"
    if base.endswith(_CODE_SUFFIXES):
        return "code"
    return "text"


def _literal(value: str, mode: str, quoted: bool) -> bool:
    """Whether ``value`` (after a secret-looking name) is a literal worth hiding rather than code
    (``token = tokenizer(x)``), a reference (``$TOKEN``, ``${{ secrets.X }}``) or a plain word."""
    if quoted:
        value = value[1:-1]
        if len(value) < 3:
            return False
    elif len(value) < 4:
        return False
    v = value.strip().lower()
    if v in _NOT_VALUES or _NUMBER.match(v) or v.startswith(("$", "{{", "<", "%(", "os.environ", "getenv")):
        return False
    if not quoted:
        if mode == "code" and (_IDENT.match(value) or any(c in value for c in "()[]{}")):
            return False
        if mode == "text" and any(c in value for c in "()[]{}") and _IDENT.match(value.split("(")[0].split("[")[0]):
            return False
    return True


def _name_spans(text: str, mode: str, spans: list[tuple[int, int, str, str]]) -> None:
    lowered = text.lower()
    if len(lowered) != len(text):  # a character whose lower case is longer ('İ'): no shortcut
        _line_spans(text, 0, len(text), mode, spans)
        return
    lines: set[tuple[int, int]] = set()
    for word in _NAME_WORDS:  # only lines with a secret-looking word are parsed
        pos = lowered.find(word)
        while pos >= 0:
            lo = text.rfind("\n", 0, pos) + 1
            hi = text.find("\n", pos)
            hi = len(text) if hi < 0 else hi
            lines.add((lo, hi))
            pos = lowered.find(word, hi)
    for lo, hi in sorted(lines):
        _line_spans(text, lo, hi, mode, spans)


def _line_spans(text: str, lo: int, hi: int, mode: str, spans: list[tuple[int, int, str, str]]) -> None:
    for m in _ASSIGN.finditer(text, lo, hi):
        name, value, sep = m.group("name"), m.group("value"), m.group("sep")
        if not _is_secret_text_name(name):
            continue
        if sep.strip() == "" and not m.group("dash"):
            continue  # `name value` only for flags: `--api-key X`
        quoted = value[:1] in "\"'" and len(value) >= 2
        start = m.start("value")
        if not quoted and mode != "config":
            # outside config files an unquoted value is one word: `token=abc and more`
            word = re.match(r"[^\s,;)}\]]+", value)
            value = word.group(0) if word else ""
        elif not quoted:  # in a config file the value is the rest of the line, less a comment
            end = text.find("\n", start)
            value = text[start:len(text) if end < 0 else end].split(" #", 1)[0].rstrip()
        if not value or not _literal(value, "config" if m.group("dash") else mode, quoted):
            continue
        if quoted:
            spans.append((start + 1, start + len(value) - 1, REDACTED, "secret-assignment"))
        else:
            spans.append((start, start + len(value), REDACTED, "secret-assignment"))


def _chunk_spans(text: str, mode: str, extra: Sequence[str], skip_names: bool) -> list[tuple[int, int, str, str]]:
    spans: list[tuple[int, int, str, str]] = []
    lowered = text.lower()
    for rule, rx, group, needles in _shapes():
        if not any(n in lowered for n in needles):
            continue
        for m in rx.finditer(text):
            if m.end(group) > m.start(group):
                spans.append((m.start(group), m.end(group), REDACTED, rule))
    # the scheme pattern would rescan every letter run from each start (quadratic on long words)
    for m in (_URL_USERINFO.finditer(text) if "://" in text and "@" in text else ()):
        if m.group("userinfo"):
            spans.append((m.start("userinfo"), m.end(), "", "url-credentials"))
    for value in extra:
        start = text.find(value)
        while start >= 0:
            spans.append((start, start + len(value), REDACTED, "environment-value"))
            start = text.find(value, start + len(value))
    for rx in (*_env_patterns(), *_user_patterns):
        for m in rx.finditer(text):
            group = 1 if rx.groups else 0
            if m.end(group) > m.start(group):
                spans.append((m.start(group), m.end(group), REDACTED, "user-pattern"))
    if not skip_names:
        _name_spans(text, mode, spans)
    return spans


def scan(text: str, *, path: str | None = None, extra: Sequence[str] | None = None) -> tuple[str, list[Finding]]:
    """Return (``text`` with every secret replaced, findings ``{"rule", "line"}``).

    ``path`` (a file name) selects how ``key = value`` lines are read: configs (YAML, INI, shell,
    ``.env``...) take the rest of the line as the value; code keeps unquoted expressions. A git
    diff is read file by file. ``extra``: values to replace (default: this process's secret
    environment values).
    """
    if not isinstance(text, str) or not text:
        return text, []
    secrets = secret_env_values() if extra is None else list(extra)
    spans: list[tuple[int, int, str, str]] = []
    heads = list(_DIFF_FILE.finditer(text)) if "diff --git " in text else []
    if heads:
        bounds = [0, *(h.start() for h in heads), len(text)]
        paths = [None, *(h.group("path") for h in heads)]
        for i in range(len(bounds) - 1):
            lo, hi = bounds[i], bounds[i + 1]
            if hi <= lo:
                continue
            file = paths[i]
            chunk = text[lo:hi]
            for s, e, rep, rule in _chunk_spans(chunk, _mode(file), secrets, bool(file) and is_allowed(file)):
                spans.append((s + lo, e + lo, rep, rule))
    else:
        spans = _chunk_spans(text, _mode(path), secrets, bool(path) and is_allowed(path or ""))
    if not spans:
        return text, []
    spans.sort(key=lambda s: (s[0], -s[1]))
    merged: list[list[Any]] = []
    for s, e, rep, rule in spans:
        if merged and s < merged[-1][1]:
            last = merged[-1]
            if e > last[1]:
                last[1] = e
                if rep:  # a wider span hiding a value wins over an empty (URL user-info) one
                    last[2], last[3] = rep, rule
            continue
        merged.append([s, e, rep, rule])
    out, findings, pos, line = [], [], 0, 1
    for s, e, rep, rule in merged:
        line += text.count("\n", pos, s)
        findings.append({"rule": rule, "line": line})
        line += text.count("\n", s, e)
        out.append(text[pos:s])
        out.append(rep)
        pos = e
    out.append(text[pos:])
    return "".join(out), findings


def redact_text(text: str, extra: Sequence[str] | None = None, *, path: str | None = None,
                found: list[Finding] | None = None, where: Mapping[str, Any] | None = None) -> str:
    """``scan`` returning only the text; findings (with ``where`` merged in) go to ``found``."""
    cleaned, findings = scan(text, path=path, extra=extra)
    if found is not None:
        found.extend({**(where or {}), **f} for f in findings)
    return cleaned


# -- values (params, tags, argv) -----------------------------------------------------------------


def _secret_key(key: str) -> bool:
    """A dotted param name with any secret-looking part: ``db.password``, ``password.value``."""
    if is_allowed(key):
        return False
    return any(is_secret_name(part) for part in key.split(".")) or is_secret_name(key.rsplit(".", 1)[-1])


def redact_value(key: str, value: Any, *, found: list[Finding] | None = None, where: str = "params",
                 extra: Sequence[str] | None = None) -> Any:
    """A param or tag value with its secrets replaced. Under a secret-looking name every text
    (str, bytes, inside lists and dicts) becomes ``***``; numbers, bools and None stay. Under any
    other name texts are scanned for token shapes, URL credentials and ``key=value`` secrets."""
    secrets = secret_env_values() if extra is None else list(extra)
    hidden = _secret_key(key)
    hits: list[Finding] = []

    def walk(v: Any, path: str, hide: bool) -> Any:
        if isinstance(v, (bytes, bytearray, memoryview)):
            try:
                v = bytes(v).decode("utf-8", "backslashreplace")
            except Exception:  # noqa: BLE001 - an odd buffer
                return v
            cleaned = walk(v, path, hide)
            return cleaned
        if isinstance(v, str):
            if hide:
                if v:
                    hits.append({"where": where, "key": path, "rule": "secret-name"})
                    return REDACTED
                return v
            cleaned, findings = scan(v, extra=secrets)
            hits.extend({"where": where, "key": path, "rule": f["rule"]} for f in findings)
            if "aws" in path.lower() and re.fullmatch(r"[A-Za-z0-9/+]{40}", cleaned):
                hits.append({"where": where, "key": path, "rule": "aws-secret-key"})
                return REDACTED
            return cleaned
        if isinstance(v, Mapping):
            return {k: walk(item, f"{path}.{k}", hide or _secret_key(str(k))) for k, item in v.items()}
        if isinstance(v, (list, tuple, set, frozenset)):
            return [walk(item, path, hide) for item in v]
        return v

    try:
        out = walk(value, key, hidden)
    except RecursionError:
        out = REDACTED if hidden else value
    if found is not None:
        found.extend(hits)
    return out


def redact_mapping(values: Mapping[str, Any], *, found: list[Finding] | None = None,
                   where: str = "params") -> dict[str, Any]:
    """Every value of a flat ``name -> value`` mapping through :func:`redact_value`."""
    secrets = secret_env_values()
    return {k: redact_value(k, v, found=found, where=where, extra=secrets) for k, v in values.items()}


def redact_argv(argv: Sequence[str], *, found: list[Finding] | None = None) -> list[str]:
    """Redact the values of credential-named flags in a command line, then redact each argument.

    Handles ``--flag=value``, ``--flag value``, ``-flag value`` and ``name=value`` (Hydra style).
    """
    secrets = secret_env_values()
    out: list[str] = []
    hide_next = False
    for index, arg in enumerate(argv):
        if hide_next:
            hide_next = False
            if not arg.startswith("-") or arg == "-":
                out.append(REDACTED)
                if found is not None:
                    found.append({"where": "argv", "index": index, "rule": "secret-name"})
                continue
        if "=" in arg:
            name, _, value = arg.partition("=")
            if is_secret_name(name.lstrip("-+~")) and value:
                out.append(f"{name}={REDACTED}")
                if found is not None:
                    found.append({"where": "argv", "index": index, "rule": "secret-name"})
                continue
        elif arg.startswith("-") and is_secret_name(arg.lstrip("-")):
            hide_next = True
        cleaned, findings = scan(arg, extra=secrets)
        if found is not None:
            found.extend({"where": "argv", "index": index, "rule": f["rule"]} for f in findings)
        out.append(cleaned)
    return out


def describe(findings: Iterable[Finding]) -> list[Finding]:
    """Findings deduplicated, in order: what a ``redactions`` record stores."""
    seen, out = set(), []
    for f in findings:
        key = tuple(sorted((k, str(v)) for k, v in f.items()))
        if key not in seen:
            seen.add(key)
            out.append(dict(f))
    return out


def describe_error(error: BaseException, *, max_traceback: int = 8000) -> dict[str, Any]:
    """The stored error of a failed run: type, message and the traceback's last ``max_traceback``
    characters, secrets replaced (the message and the source lines a traceback quotes are
    scanned like any text) and findings listed under ``redactions`` (rule and line, no value).
    Never raises, whatever the exception's ``__str__`` does."""
    import traceback

    from ._values import _safe_str, safe_text

    try:
        tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    except Exception:  # noqa: BLE001 - a raising __str__ inside the chain
        tb = f"{type(error).__qualname__}: <the traceback could not be formatted>"
    found: list[Finding] = []
    message = redact_text(safe_text(_safe_str(error)), found=found, where={"where": "error", "key": "message"})
    trace = redact_text(safe_text(tb), found=found, where={"where": "error", "key": "traceback"})[-max_traceback:]
    out: dict[str, Any] = {"type": type(error).__qualname__, "message": message, "traceback": trace}
    if found:
        out["redactions"] = describe(found)
    return out
