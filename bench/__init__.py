"""The load benchmark (`make bench`, entry point `bench/load.py`), the soak run
(`make soak`, entry point `bench/soak.py`) and the scaling benchmark (`make
bench-cluster`, entry point `bench/scaling.py`).

- `processes`: starting, finding and stopping the servers, sampling their memory, and
  the command-line skeleton the entry points share;
- `generate`: the simulated conversations, the concurrency levels, the percentiles;
- `report`: the load benchmark's Markdown report (bench/results.md);
- `soak`: Telegram conversations while parts are killed, its report in bench/soak.md;
- `scaling`: one Rasa replica against two behind nginx, each held to the same CPU
  share, its report in bench/scaling.md;
- `cgroups`: the CPU limits (control groups, v2 or v1);
- `procfs`: CPU time and resident memory of process trees, from /proc.
"""
