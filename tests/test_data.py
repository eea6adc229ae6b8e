import json

import pytest

from hf_genrec.data import (
    InteractionFormatError,
    ItemIdMap,
    UnknownItemError,
    leave_one_out,
    load_genrec_dataset,
    load_interactions,
    make_synthetic_sequences,
    read_etegrec_jsonl,
    read_interactions,
    read_json_sequences,
    read_recbole_inter,
)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_leave_one_out_rows_and_mapping():
    dsd = leave_one_out({"a": [10, 11, 12, 13, 14], "b": [12, 10, 11]}, max_history=3, eval_max_history=3)
    assert dsd.num_items == 5  # ids 10..14 -> 1..5
    assert dsd.item_map.to_dense(10) == 1 and dsd.item_map.to_original(5) == 14
    test = {r["user"]: r for r in dsd["test"]}
    val = {r["user"]: r for r in dsd["validation"]}
    assert test["a"]["history"] == [2, 3, 4] and test["a"]["target"] == 5  # truncated to last 3
    assert val["a"]["history"] == [1, 2, 3] and val["a"]["target"] == 4
    assert test["b"]["history"] == [3, 1] and test["b"]["target"] == 2
    assert val["b"]["history"] == [3] and val["b"]["target"] == 1
    train = [(r["user"], r["history"], r["target"]) for r in dsd["train"]]
    # a: prefixes of [1, 2, 3] -> ([1], 2), ([1, 2], 3); b has no training row (only 3 items).
    assert train == [("a", [1], 2), ("a", [1, 2], 3)]


def test_no_target_leaks_into_its_history():
    dsd = leave_one_out(make_synthetic_sequences(num_users=50, num_items=40, seed=1))
    seqs = make_synthetic_sequences(num_users=50, num_items=40, seed=1)
    for row in dsd["test"]:
        full = [dsd.item_map.to_dense(i) for i in seqs[row["user"]]]
        assert row["history"] == full[:-1][-50:] and row["target"] == full[-1]


def test_short_users_error_or_drop():
    seqs = {"a": [1, 2, 3, 4], "b": [1, 2]}
    with pytest.raises(ValueError, match="fewer than 3"):
        leave_one_out(seqs)
    dsd = leave_one_out(seqs, on_short="drop")
    assert dsd.num_dropped_users == 1 and len(dsd["test"]) == 1


def test_item_map_rejects_unknown_and_mixed_types():
    m = ItemIdMap([3, 1, 2])
    with pytest.raises(UnknownItemError, match="unknown item id 9"):
        m.to_dense(9)
    with pytest.raises(TypeError):
        ItemIdMap([1, "2"])


def test_save_and_load_keeps_item_map(tmp_path):
    dsd = leave_one_out({"a": ["x", "y", "z", "w"], "b": ["y", "z", "x"]})
    dsd.save_to_disk(str(tmp_path / "d"))
    back = load_genrec_dataset(str(tmp_path / "d"))
    assert back.item_map == dsd.item_map
    assert back["test"][:] == dsd["test"][:]


def test_json_reader_and_errors(tmp_path):
    p = write(tmp_path, "x.inter.json", json.dumps({"u1": [1, 2, 3], "u2": [3, 4, 5]}))
    data = read_json_sequences(p)
    assert data.sequences == {"u1": [1, 2, 3], "u2": [3, 4, 5]} and data.num_interactions == 6
    with pytest.raises(InteractionFormatError, match="empty"):
        read_json_sequences(write(tmp_path, "e.json", ""))
    with pytest.raises(InteractionFormatError, match="must be int or str"):
        read_json_sequences(write(tmp_path, "f.json", json.dumps({"u": [1.5, 2]})))
    with pytest.raises(InteractionFormatError, match="expected a JSON object"):
        read_json_sequences(write(tmp_path, "g.json", "[1, 2]"))


def test_etegrec_jsonl_reader(tmp_path):
    rows = [{"inter_history": [1, 2], "target_id": 3, "user": "a"}, {"inter_history": [1, 2, 3], "target_id": 4, "user": "a"}]
    p = write(tmp_path, "test.jsonl", "\n".join(json.dumps(r) for r in rows))
    assert read_etegrec_jsonl(p).sequences == {"a": [1, 2, 3, 4]}
    with pytest.raises(InteractionFormatError, match="inter_history"):
        read_etegrec_jsonl(write(tmp_path, "bad.jsonl", json.dumps({"x": 1})))


def test_recbole_reader_sorts_by_time(tmp_path):
    text = "user_id:token\titem_id:token\ttimestamp:float\nu\tb\t20\nu\ta\t10\nu\tc\t30\nv\ta\t5\n"
    data = read_recbole_inter(write(tmp_path, "d.inter", text))
    assert data.sequences == {"u": ["a", "b", "c"], "v": ["a"]}
    with pytest.raises(InteractionFormatError, match="item_id"):
        read_recbole_inter(write(tmp_path, "bad.inter", "user_id:token\tfoo:token\n1\t2\n"))


def test_movielens_reader_with_titles(tmp_path):
    d = tmp_path / "ml"
    d.mkdir()
    (d / "ratings.dat").write_text("1::20::5::300\n1::10::4::100\n1::30::3::200\n", encoding="latin-1")
    (d / "movies.dat").write_text("10::Heat (1995)::Action|Crime\n", encoding="latin-1")
    with pytest.raises(InteractionFormatError, match="5/5-core is empty"):  # a folder with ratings.dat: the raw path
        load_interactions(str(d))
    data, summary = read_interactions(str(d), min_user_interactions=1, min_item_interactions=1)
    assert data.sequences == {"1": ["10", "30", "20"]} and summary["format"] == "movielens"
    assert data.item_text == {"10": "title: Heat (1995)genres: Action, Crime"}


def test_unknown_format(tmp_path):
    p = write(tmp_path, "data.parquet", "a,b\n")
    with pytest.raises(InteractionFormatError, match="cannot tell the format"):
        load_interactions(p)
    csv = write(tmp_path, "data.csv", "a,b\n")  # .csv is HLLM's layout, which names its missing columns
    with pytest.raises(InteractionFormatError, match="no 'item_id' column"):
        load_interactions(csv)
    with pytest.raises(InteractionFormatError, match="unknown format"):
        load_interactions(p, format="parquet")


def test_synthetic_covers_catalogue_and_is_deterministic():
    a = make_synthetic_sequences(num_users=100, num_items=50, seed=3)
    assert a == make_synthetic_sequences(num_users=100, num_items=50, seed=3)
    assert {i for s in a.values() for i in s} == set(range(50))


def test_prepared_item_text_gives_each_item_its_own_text(tmp_path):
    """MovieLens ids 1, 3, 5, 7 become dense 1..4: the prepared item_text.json must still give
    movie 3 its own title wherever it is read (the HLLM alignment and the text-embedding path)."""
    import json

    from hf_genrec.cli.prepare_data import main as prepare
    from hf_genrec.data import align_item_texts, load_genrec_dataset
    from hf_genrec.embeddings import count_missing_text

    raw = tmp_path / "ml"
    raw.mkdir()
    movies = {1: "Alpha", 3: "Gamma", 5: "Epsilon", 7: "Eta"}
    (raw / "movies.dat").write_text("".join(f"{m}::{t} (1999)::Drama\n" for m, t in movies.items()), encoding="latin-1")
    lines = [f"{u}::{m}::5::{100 * u + j}" for u in range(1, 4) for j, m in enumerate([1, 3, 5, 7])]
    (raw / "ratings.dat").write_text("\n".join(lines) + "\n")
    out = tmp_path / "prepared"
    prepare(["--input", str(raw), "--output_dir", str(out), "--min_user_interactions", "1", "--min_item_interactions", "1"])
    dsd = load_genrec_dataset(str(out))
    text = json.loads((out / "item_text.json").read_text())
    aligned = align_item_texts(text, dsd.item_map)
    for dense, original in enumerate(dsd.item_map.original_ids, start=1):
        assert movies[int(original)] in aligned[dense - 1], (dense, original, aligned[dense - 1])
    assert count_missing_text(text, dsd.item_map) == 0


@pytest.mark.parametrize(
    "name, first_line, expected",
    [
        ("reviews_Beauty_5.json.gz", None, "amazon2014"),
        ("Video_Games_5.json.gz", None, "amazon2018"),
        ("All_Beauty.jsonl.gz", None, "amazon2023"),
        ("All_Beauty.jsonl", '{"user_id": "u", "parent_asin": "a", "timestamp": 1}', "amazon2023"),
        ("Beauty.train.jsonl", '{"inter_history": [1, 2], "target_id": 3}', "etegrec_jsonl"),
        ("ratings.dat", None, "movielens"),
        ("ratings.csv.gz", None, "movielens"),
        ("Beauty.inter.json", None, "json"),
        ("beauty.inter", None, "recbole"),
        ("Pixel200K.csv", None, "hllm_csv"),
    ],
)
def test_one_registry_names_every_format(tmp_path, name, first_line, expected):
    from hf_genrec.data import detect_format

    path = tmp_path / name
    path.write_text((first_line or "") + "\n")
    assert detect_format(str(path)).name == expected


def test_a_metadata_file_or_an_unknown_name_is_not_an_interaction_format(tmp_path):
    from hf_genrec.data import detect_format

    for name in ("meta_All_Beauty.jsonl.gz", "notes.txt"):
        (tmp_path / name).write_text("\n")
        with pytest.raises(InteractionFormatError, match="cannot tell the format"):
            detect_format(str(tmp_path / name))


def test_prepare_and_a_recipe_read_a_raw_dump_the_same_way(tmp_path):
    """The k-core and de-duplication of a raw dump apply whether it is prepared first or given to a
    recipe as --dataset_dir: both read it through the one registry."""
    from hf_genrec.cli.prepare_data import prepare
    from hf_genrec.data import load_genrec_dataset
    from hf_genrec.recipes.stages import load_dataset

    lines = ["userId,movieId,rating,timestamp"]
    lines += [f"{u},{m},4.0,{10 * u + m}" for u in range(1, 8) for m in range(1, 7)]
    lines += ["9,1,4.0,1", "9,2,4.0,2", "1,1,5.0,999"]  # user 9 is below the 5-core; (1, 1) repeats
    (tmp_path / "ratings.csv").write_text("\n".join(lines) + "\n")
    prepare(str(tmp_path / "ratings.csv"), str(tmp_path / "prepared"))
    prepared = load_genrec_dataset(str(tmp_path / "prepared"))
    direct = load_dataset(str(tmp_path / "ratings.csv"))
    assert prepared.num_items == direct.num_items == 6 and len(direct["test"]) == len(prepared["test"]) == 7
    assert [r["history"] + [r["target"]] for r in direct["test"]] == [r["history"] + [r["target"]] for r in prepared["test"]]


def test_the_interaction_file_of_a_folder_is_chosen_through_the_registry(tmp_path):
    from hf_genrec.data import dataset_file_in

    amazon = tmp_path / "amazon"
    amazon.mkdir()
    for name in ("meta_Beauty.json", "reviews_Beauty_5.json.gz", "item_map.json"):
        (amazon / name).write_text("{}\n")
    assert dataset_file_in(str(amazon)) == str(amazon / "reviews_Beauty_5.json.gz")  # the raw dump first
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    for name in ("item_map.json", "meta_beauty.json", "x.inter.json"):
        (prepared / name).write_text("{}\n")
    assert dataset_file_in(str(prepared)) == str(prepared / "x.inter.json")  # metadata and layout files skipped
    ml = tmp_path / "ml-25m"
    ml.mkdir()
    for name in ("genome-scores.csv", "movies.csv", "ratings.csv", "README.txt"):
        (ml / name).write_text("x\n")
    assert dataset_file_in(str(ml)) == str(ml / "ratings.csv")  # the raw dump before any other .csv
    with pytest.raises(FileNotFoundError, match="no interaction file"):
        dataset_file_in(str(tmp_path))
