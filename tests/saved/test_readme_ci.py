"""The README's CI example (a GitHub Actions job, not a shell block test_readme runs)
uses `connectrpc-catalog run` as it is implemented: its flags parse, the variable names
it sets reach the secret they mean, and it uploads the file `--junit` writes, on failure
too."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from connectrpc_catalog.saved import runner
from connectrpc_catalog.saved.shapes import AUTH_SECRETS
from connectrpc_catalog.saved.variables import Resolved

yaml = pytest.importorskip("yaml", reason="PyYAML reads the README's workflow")

README = Path(__file__).resolve().parents[2] / "README.md"


def _ci_job() -> dict:
    section = README.read_text().split("## Saved requests", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the Saved requests section has one workflow example"
    workflow = yaml.safe_load(blocks[0])
    (job,) = workflow["jobs"].values()
    return job


def test_the_ci_example_runs_the_collection_as_implemented() -> None:
    job = _ci_job()
    steps = job["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@"), "the collection is in the repo"
    (step,) = [s for s in steps if "connectrpc-catalog run" in s.get("run", "")]
    line = next(x for x in step["run"].splitlines() if "connectrpc-catalog run" in x)
    argv = shlex.split(line)
    assert argv[:2] == ["connectrpc-catalog", "run"]
    args = runner._parser().parse_args(argv[2:])  # exits (SystemExit) on an unknown flag
    assert args.collection == "api-checks/weather" and args.env == "staging"
    uploads = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert uploads and uploads[0]["with"]["path"] == args.junit
    assert uploads[0].get("if") == "always()", "the report is kept when the step fails"

    # Each variable the step sets is one the runner reads, reaching the secret it names.
    assert step["env"] and all(k.startswith(runner.VAR_PREFIX) for k in step["env"])
    names = {k[len(runner.VAR_PREFIX) :] for k in step["env"]}
    environ = {k: "from-ci" for k in step["env"]}
    env = runner._with_overrides(Resolved(name="staging"), runner._overrides([], environ))
    for name in names:
        field = name.lower().removeprefix("auth_")
        assert field in AUTH_SECRETS, name
        assert getattr(env.auth, field) == "from-ci"
        assert "from-ci" in env.secret_values  # masked if an upstream echoes it
