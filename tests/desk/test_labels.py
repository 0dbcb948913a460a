"""`make export-labels`: labelled questions become NLU data that Rasa validates."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from desk.labels import FIELD, examples_of, export

ROOT = Path(__file__).resolve().parents[2]


def question(text, label, language="en"):
    return {"text": text, "label": label, "language": language}


def test_labelled_questions_become_a_field_file_that_rasa_validates(tmp_path):
    data = tmp_path / "nlu"
    shutil.copytree(ROOT / "data" / "nlu" / "en", data / "en")
    trained = next(iter(examples_of(data / "en" / "programme.yml")))
    written = export([
        question("is the bus ticket  home\nfree for me", "ask_cost"),
        question("call me on [phone] please", "request_human"),
        question(trained, "greet"),  # already trained, maybe under another intent: left out
        question("never labelled", None),
        question("ein Satz", "ask_cost", language="de"),  # not one of our languages
    ], data)

    assert written == {"en": 2}
    assert (data / "en" / FIELD).stat().st_mode & 0o777 == 0o600  # what people wrote
    assert examples_of(data / "en" / FIELD) == {
        "is the bus ticket home free for me": "ask_cost",
        "call me on [phone] please": "request_human"}
    # The file is what the desk holds now: a question relabelled moves, one deleted on
    # request (or expired) leaves, and so does the file when none is left.
    export([question("call me on [phone] please", "ask_contact")], data)
    assert examples_of(data / "en" / FIELD) == {"call me on [phone] please": "ask_contact"}
    assert export([], data) == {"en": 0}
    assert not (data / "en" / FIELD).exists()
    # What YAML cannot hold, and what Rasa would read as an entity, are not written.
    written = export([question("call [phone](viber) \x7f now\ufffe", "request_human"),
                      question("is the bus ticket free", "ask_cost")], data)
    assert written == {"en": 2}
    assert "call [phone] (viber) now" in examples_of(data / "en" / FIELD)

    env = dict(os.environ, RASA_TELEMETRY_ENABLED="false")
    checked = subprocess.run(
        [sys.executable, "-m", "rasa", "data", "validate", "--domain", "domain.yml",
         "--config", "config.yml", "--data", str(data / "en"), "data/rules", "data/stories",
         "--fail-on-warnings"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]


def test_make_train_and_make_validate_leave_the_exported_questions_out(tmp_path):
    """Unreviewed questions from the field, with names and places, never train a model."""
    field = ROOT / "data" / "nlu" / "en" / FIELD
    made = field.exists()
    if not made:
        field.write_text("nlu: []\n", encoding="utf-8")
    try:
        commands = subprocess.run(
            ["make", "-n", "-B", "train", "validate", "PYTHON310=/usr/bin/true"],
            cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    finally:
        if not made:
            field.unlink()
    lines = [line for line in commands.splitlines() if " train --data " in line
             or " data validate --data " in line]
    assert len(lines) == 2, commands[-2000:]
    for line in lines:
        assert "data/nlu/en/programme.yml" in line and "data/stories/" in line
        assert FIELD not in line
