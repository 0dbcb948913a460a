"""bench/scaling.py: the cluster's parts by port, what each run yields, the report."""
import argparse
import datetime
import signal

import pytest

from bench import processes, scaling
from bench.generate import LevelResult
from bench.scaling import Extrapolation, Run
from bot.cluster import Layout
from tests.bench.markdown import table

STARTED = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
MIB = 1024**2


def test_every_port_of_a_cluster_names_its_part():
    layout = Layout(8500, replicas=2)
    assert scaling.part_name(layout, 8500) == "nginx"
    assert scaling.part_name(layout, 8502) == "nginx"
    assert scaling.part_name(layout, 8503) == "postgresql"
    assert scaling.part_name(layout, 8511) == "rasa-2"
    assert scaling.part_name(layout, 8520) == "actions-1"
    assert scaling.part_name(layout, 8531) == "desk-2"
    assert scaling.part_name(layout, 8512) is None
    assert scaling.expected_parts(layout) == {
        "nginx", "postgresql", "redis", "rasa-1", "rasa-2", "actions-1", "actions-2",
        "desk-1", "desk-2"}


def test_cluster_ports_stay_below_the_kernels_ports_for_outgoing_connections(monkeypatch,
                                                                              tmp_path):
    assert scaling.ephemeral_start("32768\t60999\n") == 32768
    ports = tmp_path / "ip_local_port_range"
    ports.write_text("12000\t60999\n")
    monkeypatch.setattr(scaling, "EPHEMERAL_PORTS", ports)
    for _ in range(20):
        assert 10000 <= scaling.free_base() < 12000 - scaling.PORT_SPAN


@pytest.mark.parametrize(
    ("part", "component"),
    [("rasa-10", "Rasa servers"), ("actions-2", "action servers"), ("desk-1", "desks"),
     ("postgresql", "PostgreSQL"), ("redis", "Redis"), ("nginx", "nginx")],
)
def test_each_part_belongs_to_a_component(part, component):
    assert scaling.component_of(part) == component


def test_the_cluster_gets_its_ports_no_limits_and_none_of_the_callers_secrets(
        monkeypatch, tmp_path):
    monkeypatch.setenv("AVRR_DATABASE_URL", "postgresql://someone@elsewhere/db")
    monkeypatch.setenv("RASA_API_TOKEN", "a-token-of-the-caller")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    env = scaling.cluster_env(tmp_path, Layout(23000, replicas=1))
    assert (env["CLUSTER_PORT"], env["REPLICAS"]) == ("23000", "1")
    assert env["AVRR_CLUSTER_DIR"] == str(tmp_path)
    assert env["RATE_LIMIT_PER_SENDER"] == env["RATE_LIMIT_PER_ADDRESS"] == "1000000"
    for name in ("AVRR_DATABASE_URL", "RASA_API_TOKEN", "TELEGRAM_BOT_TOKEN",
                 "REST_CHANNEL_TOKEN"):
        assert env[name] == ""


def make_run(number, replicas, messages, rasa_ms, others_ms=1.0, elapsed=10.0,
             latencies_ms=None, busy_extra_ms=0.0):
    latencies = latencies_ms or [100.0] * messages
    load = LevelResult(server=f"{replicas} replica(s)", concurrency=8, measured_s=elapsed,
                       latencies_s=[ms / 1000 for ms in latencies])
    cpu = {component: others_ms * messages for component in scaling.CLUSTER_COMPONENTS}
    cpu["Rasa servers"] = rasa_ms * messages
    cpu[scaling.LOAD] = 0.5 * messages
    run = Run(number=number, replicas=replicas, load=load, load_average_before=0.2,
              waited_quiet_s=0.0, elapsed_s=elapsed, cpu_ms=cpu,
              replica_cpu_ms=[cpu["Rasa servers"] / replicas] * replicas,
              throttled=[0.9] * replicas,
              machine_busy_ms=sum(cpu.values()) + busy_extra_ms,
              rss={"Rasa servers": [700 * MIB] * replicas, "PostgreSQL": [30 * MIB] * 5})
    return run


def test_what_a_run_yields_per_message_and_per_second():
    run = make_run(1, 2, messages=200, rasa_ms=20.0, others_ms=1.0, busy_extra_ms=500.0)
    assert run.throughput == 20.0
    assert run.ms_per_message("Rasa servers") == 20.0
    assert run.ms_per_message("nowhere") is None
    # Rasa: 20, and 1 for each of the six other cluster components.
    assert run.cluster_ms_per_message == pytest.approx(26.0)
    # 4,000 ms of Rasa CPU in 10 s against 2 x 0.5 core: 40 %.
    assert run.share_used(0.5) == pytest.approx(0.4)
    assert run.others_ms_per_s == pytest.approx(50.0)


def test_extrapolation_per_core_and_per_machine():
    model = Extrapolation(rasa_ms=20.0, others_ms={"PostgreSQL": 2.0, "nginx": 0.5,
                                                   "Redis": 2.5})
    assert model.total_ms == 25.0
    assert model.per_rasa_core == 50.0
    assert model.throughput(4) == 160.0
    assert model.cores_of(20.0, 4) == pytest.approx(3.2)
    assert model.ceiling("nginx") == 2000.0
    assert model.ceiling("desks") is None
    assert scaling.replicas_for(3.2, 0.5) == 7
    assert scaling.replicas_for(3.0, 0.5) == 6
    assert scaling.replicas_for(0.6 + 0.3 + 0.1, 1.0) == 1


def args(**more):
    values = dict(replicas=[1, 2], rasa_cpu=0.5, services_cpu=None, load_cpu=None, weight=8,
                  concurrency=8, warmup=5.0, duration=10.0, repeats=2, quiet_load=1.0)
    values.update(more)
    return argparse.Namespace(**values)


def test_the_report_has_every_run_the_ratio_and_the_extrapolation():
    runs = [make_run(1, 1, 100, 20.0), make_run(2, 2, 190, 20.0),
            make_run(3, 1, 110, 20.0), make_run(4, 2, 200, 20.0)]
    runs[3].load.errors["HTTP 502"] = 2
    runs[2].load_average_before = 1.4
    runs[2].waited_quiet_s = 1200
    runs[1].failed_starts = 1
    report = scaling.render_report(runs, args(), STARTED, "nproc 2, CPU X", "cgroup v1")
    lines = report.splitlines()
    assert lines[0] == "# Scaling benchmark: one Rasa replica, then two, the same CPU share each"
    assert "- Machine: nproc 2, CPU X" in lines
    assert any("50000 µs of CPU every 100000 µs (0.5 core)" in line for line in lines)
    rows = table(report, "| Run | Replicas | Throughput")
    assert rows[0] == ("| 1 | 1 | 10.0 | 100 | 100 | 100 | 100 | 0 | 40 % | 90 % | 0 | 0.20 |")
    assert [row.split(" | ")[2] for row in rows] == ["10.0", "19.0", "11.0", "20.0"]
    # Medians 19.5 / 10.5; run by run 19/10 and 20/11.
    assert ("- **T(2)/T(1) = 1.86** (medians 19.5 / 10.5 msg/s; run by run, in order: "
            "1.90, 1.82); target >= 1.8: **PASS**") in lines
    assert ("- CPU time the Rasa servers got, 2 replicas against 1: 1.86 (medians 390 / 210 "
            "ms/s): the throughput ratio if a message cost the same CPU in every run") in lines
    assert "| 1 | 1 | 20.00 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 0.50 | 26.00 |" in lines
    assert "| Rasa servers | 700 | 700, 700 |" in lines
    assert ("| PostgreSQL | 5 processes: 30 largest, 30 median, 150 sum "
            "| 5 processes: 30 largest, 30 median, 150 sum |") in lines
    assert any(line.startswith("**Extrapolation, not a measurement.**") for line in lines)
    assert "| 4 | 154 | 3.08 | 7 | 4 | 0.15 | 0.15 | 0.15 | 0.15 | 0.15 | 0.15 |" in lines
    assert "- Run 4: 2 failed request(s): {'HTTP 502': 2}." in lines
    assert ("- Run 2: its first cluster did not start (the log says why; nothing was "
            "measured on it); a second one did.") in lines
    assert ("- Run 3: the machine was not quiet before it (load average 1.40 after 1200 s "
            "of waiting).") in lines


def test_the_spread_of_cpu_per_message_from_run_to_run():
    runs = [make_run(1, 1, 100, 20.0, others_ms=1.0), make_run(2, 2, 200, 22.0, others_ms=1.1),
            make_run(3, 1, 100, 18.0, others_ms=0.9)]
    assert scaling.spread_lines(runs) == [
        "- From run to run a message cost Rasa 18.0 to 22.0 ms of CPU, and PostgreSQL + Redis "
        "+ nginx 2.70 to 3.30 ms (programs in C, whose work per message does not change); "
        "correlation 1.00. With each replica at its full quota, a replica's throughput is "
        "its quota divided by that cost."]
    # Too few runs, or nothing that varies: nothing to say.
    assert scaling.spread_lines(runs[:2]) == []
    assert scaling.spread_lines([make_run(i, 1, 100, 20.0) for i in (1, 2, 3)]) == []


def test_a_ratio_under_the_target_fails():
    runs = [make_run(1, 1, 100, 20.0), make_run(2, 2, 150, 20.0)]
    report = scaling.render_report(runs, args(repeats=1), STARTED, "m", "h")
    assert ("- **T(2)/T(1) = 1.50** (medians 15.0 / 10.0 msg/s; run by run, in order: "
            "1.50); target >= 1.8: **FAIL**") in report.splitlines()


def test_defaults_and_bad_shares():
    parsed = scaling.parse_args([])
    assert parsed.replicas == [1, 2] and parsed.rasa_cpu == 0.5
    assert (parsed.warmup, parsed.duration, parsed.repeats) == (20.0, 60.0, 2)
    assert parsed.services_cpu is None and parsed.load_cpu is None and parsed.weight == 8
    for share in ("0", "-1", "1000"):
        with pytest.raises(argparse.ArgumentTypeError):
            scaling.cores(share)


def test_without_a_model_main_says_so_and_starts_nothing(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(processes, "OUR_MODEL", tmp_path / "models" / "avrr.tar.gz")
    monkeypatch.setattr(scaling, "RESULTS_FILE", tmp_path / "scaling.md")
    started = []
    monkeypatch.setattr(processes, "start_process", lambda *a, **k: started.append(a))
    before = signal.getsignal(signal.SIGTERM)
    try:
        assert scaling.main([]) == 2
    finally:
        signal.signal(signal.SIGTERM, before)
    assert "no trained model at" in caplog.text
    assert started == []
    assert not (tmp_path / "scaling.md").exists()
