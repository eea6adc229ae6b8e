"""Raw public dumps in, benchmark sequences out: every format on small files written here."""

import gzip
import json

import pytest

from hf_genrec.data.formats import detect_format
from hf_genrec.data.raw import Interaction, k_core, load_raw, prepare_raw
from hf_genrec.data.readers import InteractionFormatError


def write(path, lines, gz=False):
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def test_k_core_needs_several_passes():
    # u3 has 2 items: dropping it leaves item c with 1 user, whose drop leaves u2 with 1 item ...
    pairs = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u2", "c"), ("u3", "c"), ("u3", "d"), ("u4", "a"), ("u4", "b")]
    users, items, passes = k_core(pairs, min_user=2, min_item=2)
    assert users == {"u1", "u2", "u4"} and items == {"a", "b"} and passes == 3
    users, items, _ = k_core(pairs, min_user=3, min_item=2)
    assert users == set() and items == set()


def test_prepare_orders_by_time_with_a_stable_tie_rule_drops_repeats_and_low_ratings():
    rows = [
        Interaction("u", "b", 20.0, 5.0),
        Interaction("u", "a", 10.0, 5.0),
        Interaction("u", "c", 20.0, 4.0),  # same time as b, later in the file: after b
        Interaction("u", "a", 30.0, 5.0),  # a repeat of (u, a): the earliest stays
        Interaction("u", "d", 5.0, 1.0),  # below the rating threshold
    ]
    data, summary = prepare_raw(iter(rows), 1, 1, min_rating=3.0)
    assert data.sequences == {"u": ["a", "b", "c"]} and data.timestamps == {"u": [10.0, 20.0, 20.0]}
    assert (summary["read"], summary["below_rating"], summary["repeated_pairs"]) == (5, 1, 1)
    assert summary["users"] == 1 and summary["items"] == 3 and summary["interactions"] == 3
    with pytest.raises(InteractionFormatError, match="core is empty"):
        prepare_raw(iter(rows), 5, 5)


def amazon_2014(tmp_path):
    reviews = [json.dumps({"reviewerID": f"U{u}", "asin": f"B{i}", "unixReviewTime": 1000 * u + i, "overall": 5.0})
               for u in range(3) for i in range(4)]
    # 2014 metadata lines are Python dict literals (single quotes), with fields missing here and there.
    meta = [
        "{'asin': 'B0', 'title': 'Rose &amp; Oud <b>Cream</b>', 'brand': 'Acme', 'categories': [['Beauty', 'Skin'], ['Beauty']]}",
        "{'asin': 'B1', 'description': 'A gentle soap', 'categories': [['Beauty', 'Bath']]}",
        "{'asin': 'B2', 'title': 'Lip balm', 'related': {'also_bought': ['B0']}}",
        "{'asin': 'B9', 'title': 'Never reviewed'}",
    ]
    return write(tmp_path / "reviews_Beauty_5.json.gz", reviews, gz=True), write(tmp_path / "meta_Beauty.json.gz", meta, gz=True)


def test_amazon_2014_reviews_and_python_literal_metadata(tmp_path):
    reviews, meta = amazon_2014(tmp_path)
    assert detect_format(reviews).name == "amazon2014"
    data, summary = load_raw(reviews, meta, min_user_interactions=2, min_item_interactions=2)
    assert data.sequences == {u: ["B0", "B1", "B2", "B3"] for u in ("U0", "U1", "U2")}
    assert data.item_text["B0"] == "title: Rose & Oud Creambrand: Acmecategories: Beauty, Skin"  # tags gone, &amp; decoded
    assert data.item_text["B1"] == "categories: Bath, Beautydescription: A gentle soap"
    assert data.item_text["B2"] == "title: Lip balm" and "B9" not in data.item_text and "B3" not in data.item_text
    assert summary["items_with_text"] == 3


def test_amazon_2018_and_2023(tmp_path):
    r18 = [json.dumps({"reviewerID": "A", "asin": a, "unixReviewTime": t, "overall": 4.0}) for a, t in (("x", 2), ("y", 1))]
    m18 = [json.dumps({"asin": "x", "title": "X", "category": ["Games", "PC"], "description": ["Fast", "fun"]})]
    data, _ = load_raw(write(tmp_path / "Video_Games_5.json", r18), write(tmp_path / "meta.json", m18), None, 1, 1)
    assert data.sequences == {"A": ["y", "x"]} and data.item_text == {"x": "title: Xcategories: Games, PCdescription: Fast, fun"}
    # 2023: parent_asin groups variants, timestamps are milliseconds.
    r23 = [json.dumps({"user_id": "U", "asin": f"v{i}", "parent_asin": p, "timestamp": ms, "rating": 5})
           for i, (p, ms) in enumerate((("P1", 3000), ("P2", 1000), ("P1", 2000)))]
    m23 = [json.dumps({"parent_asin": "P1", "title": "One", "store": "S", "categories": []})]
    reviews23 = write(tmp_path / "All_Beauty.jsonl.gz", r23, gz=True)
    data, summary = load_raw(reviews23, write(tmp_path / "meta_All_Beauty.jsonl", m23), None, 1, 1)
    assert data.sequences == {"U": ["P2", "P1"]} and data.timestamps == {"U": [1.0, 2.0]}  # P1's earliest, in seconds
    assert data.item_text == {"P1": "title: Onebrand: S"} and summary["repeated_pairs"] == 1


def test_movielens_dat_and_csv(tmp_path):
    ml1 = tmp_path / "ml-1m"
    ml1.mkdir()
    write(ml1 / "ratings.dat", [f"{u}::{m}::{r}::{100 * u + m}" for u in (1, 2) for m, r in ((10, 5), (20, 2), (30, 4))])
    (ml1 / "movies.dat").write_text("10::Heat (1995)::Action|Crime\n20::Up (2009)::Animation\n30::Amélie (2001)::Comedy\n",
                                    encoding="latin-1")
    data, _ = load_raw(str(ml1 / "ratings.dat"), min_user_interactions=1, min_item_interactions=1, min_rating=4)
    assert data.sequences == {"1": ["10", "30"], "2": ["10", "30"]}
    assert data.item_text["10"] == "title: Heat (1995)genres: Action, Crime" and "Amélie" in data.item_text["30"]
    ml20 = tmp_path / "ml-20m"
    ml20.mkdir()
    write(ml20 / "ratings.csv", ["userId,movieId,rating,timestamp", "7,1,4.0,50", "7,2,3.5,40"])
    movies = ["movieId,title,genres", '1,"Toy Story, Part 1 (1995)",Animation|Children', "2,Jumanji (1995),Adventure"]
    write(ml20 / "movies.csv", movies)
    data, _ = load_raw(str(ml20 / "ratings.csv"), min_user_interactions=1, min_item_interactions=1)
    assert data.sequences == {"7": ["2", "1"]}
    assert data.item_text["1"] == "title: Toy Story, Part 1 (1995)genres: Animation, Children"


def test_prepare_cli_writes_the_sequences_the_text_and_a_summary(tmp_path):
    from hf_genrec.cli.prepare_data import main as prepare
    from hf_genrec.data import align_item_texts, load_genrec_dataset

    reviews, meta = amazon_2014(tmp_path)
    out = tmp_path / "prepared"
    prepare(["--input", reviews, "--meta", meta, "--output_dir", str(out), "--min_user_interactions", "3",
             "--min_item_interactions", "3"])
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["users"], summary["items"], summary["interactions"]) == (3, 4, 12)
    dsd = load_genrec_dataset(str(out))  # one row per user, timestamps included
    u1 = [dsd.table.user(u) for u in range(dsd.table.num_users)].index("U1")
    assert dsd.item_map.to_original_many(dsd.table.sequence(u1)) == ["B0", "B1", "B2", "B3"]
    test_row = dsd["test"][u1]
    assert test_row["history_timestamps"] == [1000.0, 1001.0, 1002.0] and test_row["target"] == dsd.item_map.to_dense("B3")
    texts = align_item_texts(json.loads((out / "item_text.json").read_text()), dsd.item_map)
    assert texts[dsd.item_map.to_dense("B2") - 1] == "title: Lip balm"


def test_bad_raw_input_is_named():
    with pytest.raises(FileNotFoundError, match="raw data file not found"):
        load_raw("/no/such/reviews_X_5.json.gz")
    with pytest.raises(InteractionFormatError, match="cannot tell the format"):
        load_raw(__file__)
