"""bench/load.py: the command line, and how main ends when a prerequisite is missing."""
import argparse
import signal

import pytest

from bench import load, processes


def test_defaults():
    args = load.parse_args([])
    assert args.concurrency == [1, 4, 16]
    assert (args.duration, args.warmup) == (20.0, 3.0)
    assert not (args.skip_starter or args.skip_ours or args.keep_sender or args.verbose)


def test_a_short_run_of_ours_only():
    args = load.parse_args(["--concurrency", "1,4", "--duration", "3", "--warmup", "0.5",
                            "--skip-starter", "--keep-sender", "-v"])
    assert args.concurrency == [1, 4]
    assert (args.duration, args.warmup) == (3.0, 0.5)
    assert args.skip_starter and args.keep_sender and args.verbose and not args.skip_ours


@pytest.mark.parametrize(
    ("text", "levels"),
    [("1,4,16", [1, 4, 16]), ("16, 4 ,16,1,", [16, 4, 1]), ("7", [7])],
)
def test_concurrency_levels_keep_their_order_once_each(text, levels):
    assert load.parse_concurrency(text) == levels


@pytest.mark.parametrize("text", ["", ",", "0", "-1", "two", "1.5"])
def test_bad_concurrency_levels_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        load.parse_concurrency(text)


@pytest.mark.parametrize(
    "argv",
    [["--skip-ours", "--skip-starter"], ["--duration", "0"], ["--warmup", "-1"],
     ["--concurrency", "0"], ["--unknown"]],
)
def test_bad_command_lines_exit_with_status_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        load.parse_args(argv)
    assert exit_.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_warm_up_may_be_zero():
    assert load.parse_args(["--warmup", "0"]).warmup == 0.0


def test_without_a_model_main_says_so_and_starts_nothing(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(processes, "OUR_MODEL", tmp_path / "models" / "avrr.tar.gz")
    monkeypatch.setattr(processes, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(load, "RESULTS_FILE", tmp_path / "results.md")
    started = []
    monkeypatch.setattr(processes, "start_process", lambda *a, **k: started.append(a))
    before = signal.getsignal(signal.SIGTERM)
    try:
        assert load.main(["--skip-starter"]) == 2
    finally:
        signal.signal(signal.SIGTERM, before)
    assert "no trained model at models/avrr.tar.gz" in caplog.text
    assert started == []
    assert not (tmp_path / "results.md").exists()
