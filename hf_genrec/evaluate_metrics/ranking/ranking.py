"""Leave-one-out ranking metrics as an ``evaluate`` module: Recall@K, NDCG@K, HR@K and MRR@K from each
user's 0-based target rank.

    import evaluate, hf_genrec
    ranking = evaluate.load(hf_genrec.metrics.RANKING_METRIC_PATH)   # or hf_genrec.metrics.load_ranking_metric()
    ranking.compute(ranks=[0, 3, 25], ks=[1, 10])
    # {"recall@1": 0.333, "ndcg@1": 0.333, "hr@1": 0.333, "mrr@1": 0.333, "recall@10": 0.667, ...}

One held-out item per user: a rank is where the target sits in the user's ranking (0 = first); a
rank at or past every cutoff (e.g. the length of a top-K list the target is not in) is a miss.
Only the ranks are kept, so memory grows with the users, not users x items. HR@K equals Recall@K
with one relevant item; both are given because papers use both names. MRR@K counts 1 / (rank + 1)
for a hit within K. Composes with ``evaluate.combine``; ``add_batch(ranks=...)`` accumulates.
"""

import datasets
import evaluate

from hf_genrec.metrics import DEFAULT_KS, ranking_metrics_from_ranks

_CITATION = ""
_KWARGS = """
Args:
    ranks: one 0-based target rank per user (int).
    ks: the cutoffs K (default 1, 5, 10, 20).
Returns: recall@K, ndcg@K, hr@K and mrr@K for every K, each the mean over users.
"""


@evaluate.utils.file_utils.add_start_docstrings(__doc__, _KWARGS)
class Ranking(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=datasets.Features({"ranks": datasets.Value("int64")}),
        )

    def _compute(self, ranks, ks=DEFAULT_KS):
        import torch

        return ranking_metrics_from_ranks(torch.as_tensor(ranks, dtype=torch.long), ks, extended=True)
