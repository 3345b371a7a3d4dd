"""Planted fake secrets of every shape the detector knows, through the real code paths (params,
tags, a failing run's exception, an entry script with a dirty git diff, argv, env, the remote),
then every byte of the store, a report, a reproduce bundle and the CLI's JSON output is read:
no planted secret may appear anywhere. Unit tests of each rule follow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autotrack import _redact
from autotrack._redact import REDACTED, redact_value, scan

ROOT = Path(__file__).resolve().parents[1]

# Fake secrets, built by concatenation so that the test file itself does not look like a leak.
S = {
    "aws_key_id": "AKIA" + "PLANTED0TESTKEY1",
    "aws_secret": "wJalrXUtnFEMIK7MDENG" + "bPxRfiCYPLANTED00001",  # 40 characters
    "aws_secret_ini": "Zm9vYmFyYmF6cXV4cXV1" + "eGNvcmdlZ3JhdWx0MDAx",
    "aws_secret_sh": "c2hlbGxzZWNyZXRrZXlz" + "aGVsbHNlY3JldGtleTAx",
    "ghp": "ghp_" + "Planted0GitHubToken000000000000000000",
    "gho": "gho_" + "Planted0OAuthToken0000000000000000000",
    "github_pat": "github_pat_" + "11PLANTED0_" + "abcdefghijklmnopqrstuvwxyz0123456789",
    "hf": "hf_" + "PlantedHuggingFaceTokenAbCdEfGhIjKl",
    "openai": "sk-" + "PlantedOpenAIKey0123456789abcdefABCDEF",
    "openai_proj": "sk-proj-" + "PlantedProjectKey_0123456789-abcdef",
    "slack": "xoxb-" + "123456789012-1234567890123-PlantedSlack",
    "stripe": "sk_live_" + "PlantedStripeKey0123456789",
    "google": "AIza" + "SyPlantedGoogleApiKey0123456789abcd",
    "jwt": "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiJwbGFudGVkIn0." + "PlantedSignature0123456789",
    "pem_body": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" + "PLANTEDPEMBODY",
    "bearer": "PlantedBearer" + "Token0123456789abcdef",
    "nested_pw": "planted-nested-" + "password-value",
    "nargs_token": "planted-nargs-" + "auth-token-value",
    "bytes_token": "ghp_" + "PlantedBytesToken00000000000000000000",
    "error_token": "hf_" + "PlantedErrorTokenInTheMessage0000000",
    "yaml_pw": "planted-yaml-" + "password",
    "comment_pw": "planted-comment-" + "password",
    "env_hf": "hf_" + "PlantedEnvironmentToken000000000000",
    "remote": "ghp_" + "PlantedRemoteToken000000000000000000",
    "user_pattern": "ACME-" + "PLANTED-0123456789",
    "argv_flag": "planted-argv-" + "api-key-value",
}
PEM = ("-----BEGIN RSA " + "PRIVATE KEY-----\n" + S["pem_body"] + "\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n"
       "-----END RSA " + "PRIVATE KEY-----")

SCRIPT = '''\
import argparse, json, os, sys
import autotrack

p = argparse.ArgumentParser()
p.add_argument("--auth-token", nargs=1)
p.add_argument("--api-key")
p.add_argument("--fail", action="store_true")
args, _ = p.parse_known_args()
autotrack.set_store(sys.argv[1])
with open(os.environ["PLANTED_FILE"]) as f:  # outside the repository: only what is logged is planted
    SECRETS, PEM = json.load(f)
with autotrack.start_run(name="planted") as run:
    run.log_params({{
        "note": SECRETS["ghp"], "gho": SECRETS["gho"], "pat": SECRETS["github_pat"], "model": SECRETS["hf"],
        "llm": [SECRETS["openai"], SECRETS["openai_proj"]], "chat": {{"hook": SECRETS["slack"]}},
        "pay": SECRETS["stripe"], "maps": SECRETS["google"], "session": SECRETS["jwt"], "cert": PEM,
        "header": "Authorization: Bearer " + SECRETS["bearer"], "aws_id": SECRETS["aws_key_id"],
        "aws_b": SECRETS["aws_secret"], "password": {{"value": SECRETS["nested_pw"]}},
        "auth_token": args.auth_token, "blob": SECRETS["bytes_token"].encode(), "custom": SECRETS["user_pattern"],
        "lr": 0.1, "pad_token_id": 0, "max_tokens": 512,
    }})
    run.set_tags({{"comment": "see " + SECRETS["openai"], "ci": SECRETS["jwt"], "team": "vision"}})
    run.log_metric("train/loss", 0.5, step=0)
    print(run.id, flush=True)
    if args.fail:
        # {literal} (literals in the source lines the traceback quotes)
        raise RuntimeError("upload failed for token " + SECRETS["error_token"] + " and aws key " + SECRETS["aws_secret"])
'''


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=env)


def _cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "autotrack", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout + done.stderr


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink())


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_planted_secrets_reach_no_file_and_no_output(tmp_path):
    repo = tmp_path / "project"
    repo.mkdir()
    _git(repo, "init", "-q")
    script = SCRIPT.format(literal="{literal}")
    (repo / "train.py").write_text(script.replace("{literal}", "placeholder"))
    (repo / "config.yaml").write_text("db:\n  user: bob\n")
    (repo / "settings.ini").write_text("[default]\nregion = eu-west-1\n")
    (repo / "env.sh").write_text("export REGION=eu-west-1\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    _git(repo, "remote", "add", "origin", f"https://bob:{S['remote']}@git.example.com/team/repo.git")
    # uncommitted changes that paste credentials into tracked files: the diff and the script
    literal = f'AUTH = "Authorization: Bearer {S["bearer"]}"; JWT = "{S["jwt"]}"'
    (repo / "train.py").write_text(script.replace("{literal}", literal)
                                   + f"# run me with --password={S['comment_pw']}\n"
                                   + "".join(f"# {line}\n" for line in PEM.splitlines()))
    (repo / "config.yaml").write_text(f"db:\n  user: bob\n  password: {S['yaml_pw']}\n")
    (repo / "settings.ini").write_text(f"[default]\nregion = eu-west-1\naws_secret_access_key = {S['aws_secret_ini']}\n")
    (repo / "env.sh").write_text(f"export REGION=eu-west-1\nexport AWS_SECRET_ACCESS_KEY={S['aws_secret_sh']}\n")
    (repo / ".env").write_text(f"HF_TOKEN={S['env_hf']}\n")  # untracked: only its name may be listed
    store = tmp_path / "store"
    planted = tmp_path / "planted.json"
    planted.write_text(json.dumps([S, PEM]))
    env = {"PLANTED_FILE": str(planted), **os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_STRICT": "1", "AUTOTRACK_SYSTEM_METRICS": "0",
           "AUTOTRACK_CAPTURE": "1", "HF_TOKEN": S["env_hf"], "AUTOTRACK_DIR": str(store),
           "AUTOTRACK_REDACT_PATTERNS": r"ACME-PLANTED-\d+"}
    ids = []
    for extra in ([], ["--fail"]):
        argv = [sys.executable, "train.py", str(store), "--auth-token", S["nargs_token"], "--api-key", S["argv_flag"],
                *extra]
        out = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == (1 if extra else 0), out.stderr
        ids.append(out.stdout.split()[0])

    import autotrack

    ok, failed = (autotrack.get_run(i, store=store) for i in ids)
    assert failed.status == "failed" and failed.error["type"] == "RuntimeError"
    assert {"source/git.diff", "source/train.py"} <= {a.name for a in ok.artifacts}

    outputs = [_cli(env, tmp_path, "runs", "--json"), _cli(env, tmp_path, "show", ids[0], "--json"),
               _cli(env, tmp_path, "show", ids[1], "--json"), _cli(env, tmp_path, "show", ids[1]),
               _cli(env, tmp_path, "report", *ids, "-o", str(tmp_path / "report.html")),
               _cli(env, tmp_path, "reproduce", ids[0], "--dir", str(tmp_path / "bundle"))]
    everything = "\n".join(outputs).encode() + _all_bytes(store) + (tmp_path / "report.html").read_bytes()
    everything += _all_bytes(tmp_path / "bundle")
    assert len(everything) > 50_000
    for name, secret in S.items():
        assert secret.encode() not in everything, f"planted {name} ({secret!r}) was written somewhere"

    # what was redacted is still useful, and where it happened is recorded (never the value)
    assert ok.params["lr"] == 0.1 and ok.params["pad_token_id"] == 0 and ok.params["max_tokens"] == 512
    assert ok.params["note"] == ok.params["password.value"] == REDACTED
    assert ok.params["auth_token"] == [REDACTED]
    assert ok.params["header"] == f"Authorization: Bearer {REDACTED}"
    assert ok.tags["team"] == "vision" and ok.tags["comment"] == f"see {REDACTED}"
    where = ok.info("redactions")["values"]
    assert {"where": "params", "key": "password.value", "rule": "secret-name"} in where
    assert {"where": "tags", "key": "ci", "rule": "jwt"} in where
    source = ok.info("source")
    files = {(r.get("file"), r["rule"]) for r in source["redactions"]}
    assert ("source/git.diff", "secret-assignment") in files and ("source/train.py", "authorization-header") in files
    assert source["git"]["remote_url"] == "https://git.example.com/team/repo.git"
    assert ".env" in source["git"]["untracked_files"]
    diff = next(a for a in ok.artifacts if a.name == "source/git.diff")
    text = Path(diff.path).read_text() if diff.path else ""
    if text:
        assert f"password: {REDACTED}" in text and "user: bob" in text
    assert "upload failed for token ***" in failed.error["message"]
    assert failed.error["redactions"]
    assert all(secret not in str(r) for r in where + source["redactions"] for secret in S.values())


# -- the rules, one by one -----------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in S if n not in ("nested_pw", "nargs_token", "yaml_pw", "comment_pw",
                                                             "argv_flag", "user_pattern", "aws_secret_ini",
                                                             "aws_secret_sh", "bearer", "pem_body", "aws_secret")])
def test_token_shapes_under_a_neutral_name(name):
    secret = S[name]
    assert redact_value("note", secret) == REDACTED
    cleaned, findings = scan(f"line one\nthe value {secret} here\n", extra=[])
    assert secret not in cleaned and findings[0]["line"] == 2


def test_context_shapes():
    assert scan(f"aws_b = {S['aws_secret']}", extra=[])[0] == "aws_b = ***"
    assert redact_value("aws_b", S["aws_secret"]) == REDACTED
    assert scan(S["aws_secret"], extra=[])[0] == S["aws_secret"]  # 40 characters alone: not known as a key
    assert scan(f"curl -H 'Authorization: Bearer {S['bearer']}'", extra=[])[0] == "curl -H 'Authorization: Bearer ***'"
    assert scan(f"Authorization: Basic {S['bearer']}", extra=[])[0] == "Authorization: Basic ***"
    cleaned, findings = scan(f"key:\n{PEM}\nafter\n", extra=[])
    assert cleaned == "key:\n***\nafter\n" and findings == [{"rule": "private-key", "line": 2}]


@pytest.mark.parametrize(("path", "text", "expected"), [
    ("config.yaml", "db:\n  password: two words  # prod\n  token: null\n", "db:\n  password: ***  # prod\n  token: null\n"),
    ("settings.ini", "aws_secret_access_key = abc/DEF+123\n", "aws_secret_access_key = ***\n"),
    ("env.sh", "export AWS_SECRET_ACCESS_KEY=abcdef123\n", "export AWS_SECRET_ACCESS_KEY=***\n"),
    (".env", "HF_TOKEN=abcdef123\nDEBUG=1\n", "HF_TOKEN=***\nDEBUG=1\n"),
    ("conf.json", '{"client_secret": "abcdef123", "n": 3}', '{"client_secret": "***", "n": 3}'),
    ("train.py", 'password = "hunter22"\ntoken = tokenizer(x)\napi_key = os.environ["K"]\n',
     'password = "***"\ntoken = tokenizer(x)\napi_key = os.environ["K"]\n'),
    ("train.py", "# call with --password=hunter22 --lr=3\n", "# call with --password=*** --lr=3\n"),
    ("train.py", 'tok.pad_token = "<pad>"\nmax_tokens = 512\n', 'tok.pad_token = "<pad>"\nmax_tokens = 512\n'),
    (None, "python train.py --api-key abcdef123 --lr 3", "python train.py --api-key *** --lr 3"),
    (None, "login failed: invalid token: abc123def", "login failed: invalid token: ***"),
    (None, "https://user:pw@host/x", "https://host/x"),
])
def test_name_rules_by_file_type(path, text, expected):
    assert scan(text, path=path, extra=[])[0] == expected


def test_diff_is_read_file_by_file():
    diff = ("diff --git a/train.py b/train.py\n+token = make_token()\n+password = hunter2\n"
            "diff --git a/c.yaml b/c.yaml\n+password: hunter2\n")
    cleaned, findings = scan(diff, extra=[])
    assert "+password = hunter2" in cleaned  # code: an unquoted name is an expression, not a literal
    assert cleaned.endswith("+password: ***\n") and findings == [{"rule": "secret-assignment", "line": 5}]


def test_nested_lists_and_bytes_under_secret_names():
    assert redact_value("password", {"value": "x", "n": 3}) == {"value": REDACTED, "n": 3}
    assert redact_value("auth_token", ["abc"]) == [REDACTED]
    assert redact_value("db.password", b"hunter2") == REDACTED
    assert redact_value("pad_token_id", 0) == 0 and redact_value("token_budget", 512) == 512
    found: list = []
    redact_value("creds.password", "x", found=found)
    assert found == [{"where": "params", "key": "creds.password", "rule": "secret-name"}]


def test_user_patterns_and_allow_list(monkeypatch):
    monkeypatch.setenv("AUTOTRACK_REDACT_PATTERNS", '["ACME-[0-9]+", "id=(\\\\d{6})"]')
    assert scan("x ACME-123 id=123456", extra=[])[0] == "x *** id=***"
    monkeypatch.setenv("AUTOTRACK_REDACT_ALLOW", "token_budget_name,fixtures/*")
    assert redact_value("token_budget_name", "gpt-4") == "gpt-4"
    assert redact_value("token_budget_name", S["ghp"]) == REDACTED  # token shapes are never allowed
    assert scan("password: plain-text-ok\n", path="fixtures/c.yaml", extra=[])[0] == "password: plain-text-ok\n"
    try:
        _redact.add_patterns(r"XYZ-\d{4}")
        _redact.allow("my_secret_flag")
        assert scan("a XYZ-1234", extra=[])[0] == "a ***"
        assert redact_value("my_secret_flag", "on") == "on"
        with pytest.raises(ValueError, match="regular expression"):
            _redact.add_patterns("(")
    finally:
        _redact.reset()


def test_old_import_path_still_works():
    from autotrack._capture import redact

    assert redact.redact_text is _redact.redact_text and redact.REDACTED == REDACTED


def test_stored_error_of_a_failed_run_is_redacted(store):
    import autotrack

    with pytest.raises(RuntimeError):
        with autotrack.start_run() as run:
            raise RuntimeError(f"push failed: {S['ghp']} password={S['yaml_pw']}")
    error = autotrack.get_run(run.id).error
    assert error["message"] == "push failed: *** password=***"
    assert S["ghp"] not in error["traceback"] and S["yaml_pw"] not in error["traceback"]
    assert {r["rule"] for r in error["redactions"]} == {"github-token", "secret-assignment"}


def test_text_whose_lower_case_is_longer_keeps_offsets():
    assert scan("İstanbul\npassword: hunter22\n", path="a.yaml", extra=[]) == (
        "İstanbul\npassword: ***\n", [{"rule": "secret-assignment", "line": 2}])
