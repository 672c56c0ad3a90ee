"""advseg-bench: latency and throughput of advseg models across backends, precisions, batches and sizes.

The parent process (:mod:`advseg_bench.runner`) plans a matrix, runs each backend × precision in its
own worker process (:mod:`advseg_bench.worker`), and writes one JSON document
(:mod:`advseg_bench.schema`, ``advseg-bench/1``), a markdown table (:mod:`advseg_bench.report`) and
PNG plots (:mod:`advseg_bench.plots`). ``advseg-bench compare`` prints ratios between two runs;
``advseg-bench scale`` shows how cost grows with image size, tiled above a limit.
"""
