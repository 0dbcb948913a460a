"""The load benchmark (`make bench`): `bench/load.py` is its entry point.

- `processes`: starting, finding and stopping the servers, and sampling their memory;
- `generate`: the simulated conversations, the concurrency levels, the percentiles;
- `report`: the Markdown report (bench/results.md).
"""
