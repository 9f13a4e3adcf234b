"""`sagan evaluate`'s core: the FID Inception and the metrics computed on its features, and SWD, computed
on the images themselves.

inception.py (the network), resize.py (TF1 bilinear), weights.py (lookup, strict load, download),
sources.py (generator / dataset / image folder), features.py (extraction), fid.py, isc.py, kid.py,
prc.py, swd.py (the metrics), table.py (what `sagan evaluate` knows about each metric: flag, counts, needs,
compute, protocol line, rows), stats_cache.py (real statistics files), evaluate.py (orchestration),
report.py (table and metrics.jsonl). See docs/evaluate.md.
"""
