"""The load benchmark (`make bench`, entry point `bench/load.py`) and the soak run
(`make soak`, entry point `bench/soak.py`).

- `processes`: starting, finding and stopping the servers, sampling their memory, and
  the command-line skeleton both entry points share;
- `generate`: the simulated conversations, the concurrency levels, the percentiles;
- `report`: the load benchmark's Markdown report (bench/results.md);
- `soak`: Telegram conversations while parts are killed, its report in bench/soak.md.
"""
