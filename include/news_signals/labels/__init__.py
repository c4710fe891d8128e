"""Human labels: the store of import batches, annotator file formats, validation and active learning.

Modules: ``store`` (LabelStore, LabelRow, the supersede rule), ``split`` (the held-out hash split),
``formats`` (JSONL and Label Studio), ``validation`` (the GX suite), ``sampler`` (the labelling
queue), ``sources`` (seeded label sources). Nothing here imports Airflow.
"""
