"""Recipes: whole training jobs as library code (the examples and benchmarks call these).

- :mod:`hf_genrec.recipes.etegrec`: ETEGRec end to end (``examples/run_etegrec.py``, ``hf-genrec-etegrec``).
- :mod:`hf_genrec.recipes.stages`: the stages recipes share (data, item embeddings, RQ-VAE, model building).
"""
