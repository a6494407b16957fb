"""`benchmarks/run`: one benchmark run against the demo host, printed as a table and JSON.

Pure parts (tested in tests/benchmarks): options (argument checks), stats (percentiles,
throughput, recall), report (the table and the JSON). The rest drives the demo host, the
local anchors (Infinity, sentence-transformers) and HTTP load on 127.0.0.1.
"""
