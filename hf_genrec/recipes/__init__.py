"""Recipes: whole training jobs as library code (``hf-genrec train FAMILY``, the examples and the
benchmarks call these). Each recipe module has ``ARGUMENTS`` (its dataclasses), ``parse_args(argv)``,
``run(*arguments)`` and ``main(argv)``.

- :mod:`hf_genrec.recipes.etegrec`: ETEGRec end to end (``hf-genrec train etegrec``, ``examples/run_etegrec.py``).
- :mod:`hf_genrec.recipes.hllm`: HLLM (``hf-genrec train hllm``).
- :mod:`hf_genrec.recipes.itemid`: item-ID LLaMA with a hierarchical softmax (``hf-genrec train itemid``).
- :mod:`hf_genrec.recipes.sasrec`: the SASRec baseline (``hf-genrec train sasrec``).
- :mod:`hf_genrec.recipes.arguments`: the argument groups they share (backbone and LoRA, dropout, RQ-VAE, SASRec).
- :mod:`hf_genrec.recipes.config`: defaults, ``--config`` YAML files and the shipped presets (``presets/``).
- :mod:`hf_genrec.recipes.stages`: the stages recipes share (data, item embeddings, RQ-VAE, model building, resume).
"""
