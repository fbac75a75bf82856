"""The CI entry point and the parity workflow: valid, complete, and using only the README's commands."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml
from conftest import REPO

README = (REPO / "README.md").read_text()
CI_RUN = REPO / ".ci" / "run"
WORKFLOW = REPO / ".github" / "workflows" / "parity.yml"


def readme_code_lines() -> set[str]:
    """Every line inside the README's fenced code blocks, stripped of a trailing '# comment'."""
    lines, inside = set(), False
    for line in README.splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        command = re.sub(r"\s+#.*$", "", line).strip()
        if inside and command:
            lines.add(command)
    return lines


def readme_test_command() -> str:
    block = re.search(r"## Tests\n+```bash\n(.*?)\n```", README, re.DOTALL)
    assert block, "README has no '## Tests' section with a bash block"
    return block.group(1).strip()


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def run_lines(job: dict) -> list[str]:
    return [line.strip() for step in job["steps"] if "run" in step for line in step["run"].splitlines() if line.strip()]


def test_ci_run_is_executable_valid_bash_and_runs_the_readme_test_command():
    assert os.access(CI_RUN, os.X_OK)
    subprocess.run(["bash", "-n", str(CI_RUN)], check=True)
    script = CI_RUN.read_text()
    assert "set -euo pipefail" in script  # any failing step, the tests included, fails CI
    lines = [line.strip() for line in script.splitlines()]
    assert lines[-1] == readme_test_command() == "python -m pytest -n 2"


def test_ci_run_installs_everything_the_tests_need_in_order():
    script = CI_RUN.read_text()
    torch = script.index("pip install --quiet torch==2.13.0")
    package = script.index('pip install --quiet -e ".[test]"')
    assert script.index("python3 -m venv .venv") < torch < package, "torch must be pinned and installed first"
    for package_name in ("kotlin", "junit4", "chromium", "nodejs", "npm"):
        assert re.search(rf"missing\+=\({package_name}\)", script), package_name
    assert "(cd web_demo && npm ci" in script and (REPO / "web_demo" / "package-lock.json").is_file()
    assert "SDEPLOY_REQUIRE_WEB_DEMO=1" in script and "SDEPLOY_REQUIRE_ANDROID_DEMO=1" in script


def test_parity_workflow_is_valid_and_has_a_linux_and_a_macos_job():
    data = workflow()
    assert data["name"] == "parity"
    # YAML reads the bare key `on` as True.
    triggers = data.get("on", data.get(True))
    assert {"push", "pull_request"} <= set(triggers)
    jobs = data["jobs"]
    assert "ubuntu" in jobs["linux"]["runs-on"] and "macos" in jobs["macos"]["runs-on"]
    for job in jobs.values():
        assert job["timeout-minutes"] <= 120
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
            if "uses" in step:
                assert re.fullmatch(r"actions/[\w-]+@v\d+", step["uses"]), step["uses"]


@pytest.mark.parametrize("job", ["linux", "macos"])
def test_parity_workflow_installs_tests_exports_and_verifies(job):
    lines = run_lines(workflow()["jobs"][job])
    assert readme_test_command() in lines
    exports = [line for line in lines if line.startswith("sdeploy export")]
    verifies = [line for line in lines if line.startswith("sdeploy verify")]
    assert len(exports) >= 2 and all("--target all" in line for line in exports)
    for line in exports:
        arch = re.search(r"--arch (\S+)", line).group(1)
        assert any(f"exports/{arch} " in v and "--json" in v for v in verifies), arch


@pytest.mark.parametrize("job", ["linux", "macos"])
def test_parity_workflow_runs_only_commands_written_in_the_readme(job):
    documented = readme_code_lines()
    undocumented = [line for line in run_lines(workflow()["jobs"][job]) if line not in documented]
    assert not undocumented, f"commands in parity.yml that README.md does not show: {undocumented}"


def test_readme_documents_every_cli_command():
    from shufflenet_deploy.cli import main

    def names(group, prefix=""):
        for name, command in group.commands.items():
            yield f"{prefix}{name}"
            if hasattr(command, "commands"):
                yield from names(command, f"{prefix}{name} ")

    missing = [name for name in names(main) if f"sdeploy {name}" not in README]
    assert not missing, f"commands README.md does not mention: {missing}"


def test_readme_documents_every_option_of_every_command():
    from shufflenet_deploy.cli import main

    def commands(group, prefix=""):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from commands(command, f"{prefix}{name} ")
            else:
                yield f"{prefix}{name}", command

    missing = []
    for name, command in commands(main):
        for param in command.params:
            for opt in getattr(param, "opts", []):
                documented = re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", README)
                if opt.startswith("--") and opt != "--help" and not documented:
                    missing.append(f"sdeploy {name} {opt}")
    assert not missing, f"options README.md does not document: {missing}"
