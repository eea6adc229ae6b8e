"""The per-user layout: leave-one-out views against a brute-force split, the saved folder, the sampler,
and the preparation's refusal of bad input (one line naming the file and line, exit status 2, nothing
left in --output_dir)."""

import gzip
import json
import os
import random

import numpy as np
import pytest
import torch

from hf_genrec.data import (
    InteractionFormatError,
    PreparedDatasetError,
    leave_one_out,
    load_genrec_dataset,
)
from hf_genrec.data.sampling import length_grouped_indices


def brute_force_rows(seqs: dict, times: dict, max_history):
    """The rows the earlier code stored: every prefix, the validation and the test row of each user."""
    cut = (lambda h: h) if max_history is None else (lambda h: h[-max_history:])
    out = {"train": [], "validation": [], "test": []}
    for u, s in seqs.items():
        t = times[u]
        n = len(s)
        for p in range(1, n - 2):
            out["train"].append((u, cut(s[:p]), s[p], cut(t[:p])))
        out["validation"].append((u, cut(s[: n - 2]), s[n - 2], cut(t[: n - 2])))
        out["test"].append((u, cut(s[: n - 1]), s[n - 1], cut(t[: n - 1])))
    return out


def brute_force_windows(seqs: dict, window: int):
    rows = []
    for s in seqs.values():
        s = s[:-2]
        end = len(s)
        while end >= 2:
            start = max(0, end - window - 1)
            rows.append((s[start : end - 1], s[end - 1]))
            end -= window
    return rows


def random_log(seed=0, users=40):
    rng = random.Random(seed)
    seqs, times = {}, {}
    for u in range(users):
        n = rng.randint(3, 30)
        seqs[f"u{u}"] = [rng.randint(1, 25) for _ in range(n)]
        times[f"u{u}"] = sorted(rng.uniform(0, 1e9) for _ in range(n))
    return seqs, times


@pytest.mark.parametrize("max_history", [None, 1, 4, 50])
def test_views_give_exactly_the_brute_force_rows(max_history):
    from hf_genrec.data import SequenceData

    seqs, times = random_log()
    dsd = leave_one_out(SequenceData(seqs, timestamps=times), max_history=max_history, eval_max_history=max_history)
    dense = {u: dsd.item_map.to_dense_many(s)[0] for u, s in seqs.items()}
    expected = brute_force_rows(dense, times, max_history)
    for split, rows in expected.items():
        got = [(r["user"], r["history"], r["target"], r["history_timestamps"]) for r in dsd[split]]
        assert got == rows, split
        assert dsd[split].lengths.tolist() == [len(r[1]) for r in rows]
        assert dsd[split]["target"] == [r[2] for r in rows]
        batch = dsd[split].__getitems__([len(rows) - 1, 0])
        assert [(b["user"], b["target"]) for b in batch] == [rows[-1][:3:2], rows[0][:3:2]]
    # By default evaluation rows keep the whole history (seen items excluded means all of them).
    whole = brute_force_rows(dense, times, None)
    default = leave_one_out(SequenceData(seqs, timestamps=times), max_history=max_history)
    for split in ("validation", "test"):
        assert [r["history"] for r in default[split]] == [r[1] for r in whole[split]]
    for window in (1, 3, 50):
        got = [(r["history"], r["target"]) for r in dsd.whole_sequence_rows(window)]
        assert got == brute_force_windows(dense, window)
        assert dsd.whole_sequence_rows(window).lengths.tolist() == [len(h) for h, _ in got]


def test_select_and_shuffle_are_views_with_datasets_order():
    seqs, times = random_log(1)
    dsd = leave_one_out(seqs, max_history=5)
    val = dsd["validation"]
    shuffled = val.shuffle(seed=3)
    order = np.random.default_rng(3).permutation(len(val))
    assert [r["user"] for r in shuffled] == [val[int(i)]["user"] for i in order]
    picked = shuffled.select([2, 0])
    assert [r["user"] for r in picked] == [val[int(order[2])]["user"], val[int(order[0])]["user"]]
    assert picked.lengths.tolist() == [len(r["history"]) for r in picked]
    assert val[-1] == val[len(val) - 1]
    with pytest.raises(IndexError):
        val[len(val)]


def test_save_and_load_round_trip_and_old_layout_is_refused(tmp_path):
    from hf_genrec.data import SequenceData

    seqs, times = random_log(2)
    dsd = leave_one_out(SequenceData(seqs, timestamps=times), max_history=None)
    dsd.save_to_disk(str(tmp_path / "d"))
    back = load_genrec_dataset(str(tmp_path / "d"), max_history=None)
    assert back.item_map == dsd.item_map and back.has_timestamps
    for split in ("train", "validation", "test"):
        assert list(back[split]) == list(dsd[split])
    # What the folder holds grows with interactions: a sequence table, not rows.
    assert sorted(os.listdir(tmp_path / "d")) == ["genrec_dataset.json", "item_map.json", "sequences.parquet"]
    old = tmp_path / "old"
    old.mkdir()
    (old / "dataset_dict.json").write_text('{"splits": ["train"]}')
    with pytest.raises(PreparedDatasetError, match="re-run `hf-genrec prepare"):
        load_genrec_dataset(str(old))
    with pytest.raises(PreparedDatasetError, match="not found"):
        load_genrec_dataset(str(tmp_path / "nothing"))


def test_sampler_draws_transformers_length_grouped_order():
    from transformers.trainer_pt_utils import get_length_grouped_indices

    lengths = np.random.default_rng(0).integers(1, 50, size=5000)
    # One row far longer than the rest, so the rule that moves the longest row to the first batch acts.
    lengths[4321] = 1000
    for seed in (7, 8):
        torch.manual_seed(seed)
        theirs = get_length_grouped_indices(lengths.tolist(), 32)
        torch.manual_seed(seed)
        ours = length_grouped_indices(lengths, 32)
        assert ours.tolist() == list(theirs) and ours[0] == 4321


def test_trainer_groups_view_rows_by_length():
    from hf_genrec.data.sampling import LengthGroupedRowSampler
    from hf_genrec.recipes.stages import with_length_grouping
    from hf_genrec.training import RecommenderTrainer, RecommenderTrainingArguments

    from .conftest import tiny_recommender

    seqs, _ = random_log(3)
    dsd = leave_one_out(seqs, max_history=8)
    args = with_length_grouping(RecommenderTrainingArguments(output_dir="/tmp/unused", use_cpu=True, report_to=[]), dsd)
    trainer = RecommenderTrainer(model=tiny_recommender(num_items=dsd.num_items), args=args, train_dataset=dsd["train"])
    sampler = trainer.train_sampler()
    order = list(sampler)
    assert isinstance(sampler, LengthGroupedRowSampler) and sorted(order) == list(range(len(dsd["train"])))
    # Batches hold rows of similar length: within each mega-batch of 50 batches, longest first.
    lengths = dsd["train"].lengths
    mega = max(1, min(len(order) // (args.train_batch_size * 4), 50)) * args.train_batch_size
    for start in range(0, len(order), mega):
        chunk = lengths[order[start:start + mega]][1:]  # the first row may be the swapped-in longest
        assert (np.diff(chunk) <= 0).all()
    # Evaluation under grouping reads the view's lengths too (a `datasets`-only path would need `input_ids`).
    metrics = trainer.evaluate(dsd["validation"])
    assert 0 <= metrics["eval_ndcg@10"] <= 1 and isinstance(trainer.eval_sampler(dsd["validation"]), LengthGroupedRowSampler)


def test_non_ascii_ids_sort_as_python_does_and_stay_distinct():
    seqs = {"u": ["é", "e", "z", "ß", "e\u0301"], "v": ["e", "z", "é"]}
    dsd = leave_one_out(seqs)
    assert dsd.item_map.original_ids == sorted({i for s in seqs.values() for i in s})
    assert dsd.num_items == 5  # "é" and "e" + combining accent are different ids


# ------------------------------------------------------------------ bad input, through the CLI
def run_prepare(capsys, *args) -> tuple[int, str]:
    """The console entry point in-process: its exit status and what it printed to stderr."""
    from hf_genrec.cli.main import cli

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        cli(["prepare", *args])
    return exit_.value.code, capsys.readouterr().err.strip()


def write_bytes(path, data: bytes, gz=False):
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return str(path)


def review(user, item, t):
    return json.dumps({"reviewerID": user, "asin": item, "unixReviewTime": t, "overall": 5.0})


GOOD = [review(f"U{u}", f"B{i}", 100 * u + i) for u in range(6) for i in range(6)]
BAD_INPUTS = {
    "invalid JSON line": ("reviews_X_5.json", GOOD[:3] + ['{"reviewerID": "U9", '] + GOOD[3:], 4, "not valid JSON"),
    "non-object JSON line": ("reviews_X_5.json", GOOD[:2] + ["[1, 2, 3]"] + GOOD[2:], 3, "expected a JSON object"),
    "missing timestamp": ("reviews_X_5.json", GOOD[:5] + [json.dumps({"reviewerID": "U1", "asin": "B1"})] + GOOD[5:], 6,
                          "unixReviewTime is missing"),
    "null timestamp": ("reviews_X_5.json", GOOD[:1] + ['{"reviewerID": "U1", "asin": "B1", "unixReviewTime": null}'] + GOOD,
                       2, "unixReviewTime is missing"),
    "non-numeric timestamp": ("reviews_X_5.json", GOOD + [review("U1", "B2", "yesterday")], len(GOOD) + 1,
                              "not a finite number ('yesterday')"),
    "NaN timestamp": ("ratings.csv", ["userId,movieId,rating,timestamp", "1,2,4.0,10", "1,3,4.0,nan"], 3, "not a finite number"),
    "infinite timestamp": ("ratings.csv", ["userId,movieId,rating,timestamp", "1,2,4.0,inf", "1,3,4.0,5"], 2,
                           "not a finite number"),
    "short CSV row": ("ratings.csv", ["userId,movieId,rating,timestamp", "1,2,4.0,10", "1,3"], 3, "fields"),
    "long CSV row": ("ratings.csv", ["userId,movieId,rating,timestamp", "1,2,4.0,10,7"], 2, "fields"),
    "CSV without its header": ("ratings.csv", ["1,2,4.0,10", "1,3,4.0,11"], None, "header"),
    "short .dat row": ("ratings.dat", ["1::2::4::10", "1::3::4"], 2, "fields"),
    "short RecBole row": ("x.inter", ["user_id:token\titem_id:token\ttimestamp:float", "u\ta\t1", "u\tb"], 3, "fields"),
    "HLLM csv empty timestamp": ("x.csv", ["item_id,user_id,timestamp", "a,u,1", "b,u,"], 3, "timestamp is missing"),
    "HLLM csv non-numeric timestamp": ("x.csv", ["item_id,user_id,timestamp", "a,u,1", "b,u,soon"], 3,
                                       "timestamp is not a finite number ('soon')"),
    ".dat non-numeric timestamp": ("ratings.dat", ["1::2::4::10", "1::3::4::x"], 2, "timestamp is not a finite number"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_ends_in_one_line_naming_file_and_line(tmp_path, capsys, case):
    name, lines, line, message = BAD_INPUTS[case]
    path = write_bytes(tmp_path / name, ("\n".join(lines) + "\n").encode())
    out = tmp_path / "out"
    code, err = run_prepare(capsys, "--input", path, "--output_dir", str(out), "--min_user_interactions", "1",
                            "--min_item_interactions", "1")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert message in err and path in err, err
    if line is not None:
        assert f"{path}:{line}:" in err, err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == [name]  # nothing written, no temporary left


def test_truncated_gzip_and_bad_utf8_are_named(tmp_path, capsys):
    full = ("\n".join(GOOD * 50) + "\n").encode()
    path = write_bytes(tmp_path / "reviews_X_5.json.gz", full, gz=True)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    code, err = run_prepare(capsys, "--input", path, "--output_dir", str(tmp_path / "o"))
    assert code == 2 and "truncated or corrupt" in err and path in err, err
    lines = ["userId,movieId,rating,timestamp", "1,2,4.0,10"]
    bad = ("\n".join(lines) + "\n").encode() + b"1,\xff\xfe,4.0,11\n"
    path = write_bytes(tmp_path / "ratings.csv", bad)
    code, err = run_prepare(capsys, "--input", path, "--output_dir", str(tmp_path / "o"))
    assert code == 2 and f"{path}:3: not valid UTF-8" in err, err
    assert not (tmp_path / "o").exists()


def test_a_failed_preparation_leaves_the_previous_folder_untouched(tmp_path):
    from hf_genrec.cli.prepare_data import prepare

    good = write_bytes(tmp_path / "reviews_X_5.json", ("\n".join(GOOD) + "\n").encode())
    out = tmp_path / "out"
    prepare(good, str(out), min_user_interactions=1, min_item_interactions=1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = write_bytes(tmp_path / "reviews_Y_5.json", ("\n".join(GOOD + ["{oops"]) + "\n").encode())
    with pytest.raises(InteractionFormatError, match="not valid JSON"):
        prepare(bad, str(out), min_user_interactions=1, min_item_interactions=1)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "reviews_X_5.json", "reviews_Y_5.json"]


def test_preparation_never_replaces_a_folder_of_other_files(tmp_path):
    from hf_genrec.cli.prepare_data import prepare

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    good = write_bytes(mine / "reviews_X_5.json", ("\n".join(GOOD) + "\n").encode())
    with pytest.raises(ValueError, match="inside the output folder"):
        prepare(good, str(mine), min_user_interactions=1, min_item_interactions=1)
    other = write_bytes(tmp_path / "reviews_Y_5.json", ("\n".join(GOOD) + "\n").encode())
    with pytest.raises(FileExistsError, match="not empty and not a prepared dataset folder"):
        prepare(other, str(mine), min_user_interactions=1, min_item_interactions=1)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "reviews_X_5.json"]


MORE_BAD_INPUTS = {
    "every field empty": ("ratings.csv", ["userId,movieId,rating,timestamp", "1,2,4.0,10", ",,,"], 3, "every field is empty"),
    "NaN literal in JSON": ("reviews_X_5.json", GOOD[:2] + ['{"reviewerID": "U1", "asin": "B1", "unixReviewTime": NaN}'], 3,
                            "NaN is not a JSON number"),
    "non-numeric rating": ("reviews_X_5.json",
                           GOOD + ['{"reviewerID": "U1", "asin": "B9", "unixReviewTime": 5, "overall": "five"}'],
                           len(GOOD) + 1, "the rating 'five' is not a number"),
    "Amazon 2023 missing user": ("All_X.jsonl",
                                 ['{"user_id": "U", "asin": "a", "timestamp": 1000}', '{"asin": "b", "timestamp": 2}'],
                                 2, "missing user_id"),
    ".inter.json not an object": ("x.inter.json", ["[1, 2]"], None, "expected a JSON object"),
    "ETEGRec jsonl without keys": ("x.jsonl", ['{"inter_history": [1, 2], "target_id": 3}', '{"history": [1]}'], 2,
                                   "expected keys 'inter_history' and 'target_id'"),
}


@pytest.mark.parametrize("case", sorted(MORE_BAD_INPUTS))
def test_more_bad_input_is_named(tmp_path, capsys, case):
    name, lines, line, message = MORE_BAD_INPUTS[case]
    path = write_bytes(tmp_path / name, ("\n".join(lines) + "\n").encode())
    fmt = ["--format", "etegrec_jsonl"] if "ETEGRec" in case else []  # a bare .jsonl is read as Amazon 2023
    code, err = run_prepare(capsys, "--input", path, "--output_dir", str(tmp_path / "out"), "--min_user_interactions", "1",
                            "--min_item_interactions", "1", *fmt)
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    if line is not None:
        assert f"{path}:{line}:" in err, err
    assert not (tmp_path / "out").exists()


def test_amazon_2023_milliseconds_become_exact_seconds_and_dat_gz_reads(tmp_path):
    from hf_genrec.data.raw import load_raw

    ms = [1588687728906, 1588687728907, 1600000000123]
    rows = [json.dumps({"user_id": "U", "parent_asin": f"P{i}", "timestamp": t, "rating": 5}) for i, t in enumerate(ms)]
    data, _ = load_raw(write_bytes(tmp_path / "All_X.jsonl", ("\n".join(rows) + "\n").encode()), None, None, 1, 1)
    assert data.timestamps == {"U": [t / 1000 for t in ms]}  # Python's (exactly rounded) division
    dat = write_bytes(tmp_path / "ratings.dat.gz", b"1::10::5::300\n1::20::4::100\n1::30::3::200\n", gz=True)
    data, _ = load_raw(dat, None, "movielens", 1, 1)
    assert data.sequences == {"1": ["20", "30", "10"]}


#: sha256 of [users, item map, every user's dense sequence] as the earlier (Python-object) preparation
#: gave them for Amazon Beauty's Beauty.inter.json (22,363 users, 12,101 items, 198,502 interactions)
BEAUTY_BEFORE = "24b05e32f06a14e79172bd9d53184af8e366e1719b6aa413fee7e9db7d7813ce"
BEAUTY = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "amazon-beauty", "Beauty.inter.json")


@pytest.mark.skipif(not os.path.exists(BEAUTY), reason="the benchmark data is not beside the checkout")
def test_amazon_beauty_prepares_exactly_as_before():
    import hashlib

    from hf_genrec.data import load_interactions

    dsd = leave_one_out(load_interactions(BEAUTY), max_history=None)
    table = dsd.table
    users = [table.user(u) for u in range(table.num_users)]
    canon = json.dumps([users, dsd.item_map.original_ids, [table.sequence(u).tolist() for u in range(table.num_users)]],
                       separators=(",", ":"))
    assert (table.num_users, dsd.num_items, table.num_interactions) == (22363, 12101, 198502)
    assert hashlib.sha256(canon.encode()).hexdigest() == BEAUTY_BEFORE
