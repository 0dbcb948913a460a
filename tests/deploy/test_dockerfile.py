"""The Dockerfile and its build context, read as Docker reads them: the official Python
3.10 image, the model trained as `make train` trains it, a non-root user, no secret in
the image. hadolint lints the file in `make lint`; no image is built here."""
import re
import shlex
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from avrr.settings import ROOT
from bot.launch import KEPT_SECRETS

# (instruction, its arguments), continuation lines joined, comments dropped.
Instruction = Tuple[str, str]
SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|KEY)\b")


def instructions() -> List[Instruction]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), " ".join(rest.split())))
    return found


def stages() -> Dict[str, List[Instruction]]:
    """Each stage's instructions, by its name (the last one: "final")."""
    named: Dict[str, List[Instruction]] = {}
    current: List[Instruction] = []
    for instruction, arguments in instructions():
        if instruction == "FROM":
            words = arguments.split()
            current = []
            named[words[2] if len(words) == 3 and words[1].upper() == "AS" else "final"] = current
        current.append((instruction, arguments))
    return named


def copied(stage: List[Instruction]) -> List[str]:
    """The build context's paths a stage copies (not those from another stage)."""
    sources = []
    for instruction, arguments in stage:
        if instruction == "COPY" and "--from=" not in arguments:
            sources += [word for word in shlex.split(arguments)[:-1] if not word.startswith("--")]
    return sources


def dockerignore_regex(pattern: str) -> str:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        else:
            out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
            i += 1
    return f"^{out}$"


def in_context(path: str) -> bool:
    """Whether `path` reaches the build context (.dockerignore: the last matching pattern
    wins, and a pattern that matches a folder matches everything in it)."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    included = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = dockerignore_regex(pattern.lstrip("!").rstrip("/"))
        if any(re.match(regex, prefix) for prefix in prefixes):
            included = negated
    return included


def test_every_stage_is_the_official_python_310_slim_image_or_built_on_one():
    names = list(stages())
    for stage in stages().values():
        base = stage[0][1].split()[0]
        assert base.startswith("python:3.10-slim") or base in names, base
    assert stages()["python"][0][1].split()[0].startswith("python:3.10-slim")


def test_the_model_is_trained_as_make_train_trains_it():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^\t\$\(RASA\) (train .*)$", makefile, re.MULTILINE).group(1)
    # make names the training data to leave out the exported questions (field.yml); the
    # image's build context never has them, so it trains on all of data/.
    assert "--data $(TRAINING_DATA) " in recipe
    assert not in_context("data/nlu/en/field.yml") and in_context("data/nlu/en/programme.yml")
    recipe = recipe.replace("--data $(TRAINING_DATA) ", "")
    runs = [arguments for instruction, arguments in stages()["model"] if instruction == "RUN"]
    assert [run for run in runs if f"rasa {recipe}" in run], (recipe, runs)
    final = " ".join(arguments for _, arguments in stages()["final"])
    assert "--from=model /build/models/avrr.tar.gz models/avrr.tar.gz" in final


def test_the_model_stage_has_every_file_the_model_depends_on():
    """The Makefile's TRAINING_FILES: a change to one retrains, in both."""
    sources = copied(stages()["model"])
    needed = ["config.yml", "domain.yml", "bot/handoff_policy.py"]
    needed += re.findall(r"avrr/\w+\.py", (ROOT / "Makefile").read_text())
    needed += [str(p.relative_to(ROOT)) for p in (ROOT / "data").rglob("*.yml")]
    needed += [str(p.relative_to(ROOT)) for folder in ("bot/language", "bot/safety")
               for p in (ROOT / folder).glob("*.py")]
    for path in needed:
        assert any(path == source or path.startswith(source.rstrip("/") + "/")
                   for source in sources), path


def test_the_model_stage_can_load_every_component_of_the_pipeline(tmp_path):
    """Its files, copied as the stage copies them, and nothing else of ours: each of our
    components in config.yml imports (a module one of them needs was left out once)."""
    import shutil
    import subprocess
    import sys

    for instruction, arguments in stages()["model"]:
        if instruction != "COPY" or "--from=" in arguments:
            continue
        *sources, destination = shlex.split(arguments)
        for source in sources:
            target = tmp_path / destination
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, target / Path(source).name)
    ours = re.findall(r"name: ((?:avrr|bot)\.[\w.]+)", (ROOT / "config.yml").read_text())
    assert len(ours) >= 5, ours
    script = "import importlib\n" + "".join(
        "getattr(importlib.import_module({!r}), {!r})\n".format(*name.rsplit(".", 1))
        for name in ours)
    loaded = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)})
    assert loaded.returncode == 0, loaded.stderr


def test_dependencies_come_from_requirements_txt_with_nothing_cached():
    runs = [arguments for instruction, arguments in stages()["dependencies"]
            if instruction == "RUN"]
    assert any("pip install --no-cache-dir -r /tmp/requirements.txt" in run for run in runs)


def test_the_servers_run_as_a_user_of_their_own_not_root():
    final = stages()["final"]
    users = [arguments for instruction, arguments in final if instruction == "USER"]
    assert users == ["10001:10001"]
    position = final.index(("USER", users[0]))
    assert all(instruction != "RUN" for instruction, _ in final[position:])
    assert any("--uid 10001" in arguments for instruction, arguments in final
               if instruction == "RUN")


def test_the_default_command_is_the_rasa_server():
    assert stages()["final"][-1] == ("CMD", '["python", "-m", "bot.replica"]')


def test_no_secret_is_set_in_the_image():
    for instruction, arguments in instructions():
        if instruction in ("ENV", "ARG", "LABEL"):
            assert not SECRET_NAME.search(arguments), arguments
            assert not any(name in arguments for name in KEPT_SECRETS), arguments


@pytest.mark.parametrize("path", [
    ".env", ".venv/bin/python", "var/rasa_api_token", "var/cluster/postgres_password",
    "models/avrr.tar.gz", ".git/HEAD", "widget/node_modules/socket.io-client/package.json",
    "tests/conftest.py", "bot/__pycache__/serve.cpython-310.pyc", "README.md", ".rasa/cache/x",
])
def test_what_must_not_reach_the_image_stays_out_of_the_build_context(path):
    assert not in_context(path)


def test_everything_the_dockerfile_copies_is_in_the_build_context():
    sources = {source for stage in stages().values() for source in copied(stage)}
    assert sources
    for source in sources:
        path = ROOT / source
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        assert files, source
        for file in files:
            relative = str(file.relative_to(ROOT))
            if "__pycache__" not in relative:
                assert in_context(relative), relative


def test_the_context_holds_what_the_servers_need():
    for path in ("desk/static/index.html", "content/en.yml", "bot/serve.py", "avrr/probe.py",
                 "endpoints.yml", "credentials.yml", "requirements.txt"):
        assert Path(ROOT / path).exists() and in_context(path), path
