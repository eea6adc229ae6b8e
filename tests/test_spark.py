"""The Spark preparation job gives the folder the polars path gives, on small generated raw dumps."""

import json
import os
import random
import shutil

import pytest

pytest.importorskip("pyspark")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs a Java runtime (none on PATH or in JAVA_HOME)", allow_module_level=True)

from hf_genrec.cli.main import cli  # noqa: E402
from hf_genrec.cli.prepare_data import prepare  # noqa: E402
from hf_genrec.data import load_genrec_dataset  # noqa: E402
from hf_genrec.data.errors import InteractionFormatError  # noqa: E402
from hf_genrec.data.spark import prepare_with_spark  # noqa: E402
from hf_genrec.utils.item_map import ItemIdMap  # noqa: E402

from .test_raw import write as write_lines  # noqa: E402

COUNTS = ("read", "below_rating", "repeated_pairs", "k_core_passes", "users", "items", "interactions", "dropped_short_users")


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("hf-genrec-test")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Small jobs start faster: no adaptive re-planning, the JIT's quick tier only.
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        # Two part files, and text files cut into several splits, so the file order and the user
        # order across part files are really tested.
        .config("spark.sql.files.maxPartitionBytes", "8192")
        .config("spark.sql.files.openCostInBytes", "1024")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def events(seed: int, users: int = 45, items: int = 30, n: int = 520) -> list[tuple[str, str, int, int | None]]:
    """(user, item, time, rating) rows: skewed item popularity (a k-core of several passes), a small time
    range (ties), repeated pairs (some at the same time) and low or missing ratings."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        u, i = rng.randrange(users), int(items * rng.random() ** 1.5)
        rows.append((str(u * 7 % 101), str(i * 13 % 97), rng.randrange(25), rng.choice([1, 2, 3, 4, 5, 5, None])))
    for u, i, t, r in rng.sample(rows, 40):  # repeats, earlier, later or at the same time
        rows.insert(rng.randrange(len(rows)), (u, i, t + rng.choice([-2, 0, 3]), r))
    return rows


def movielens_csv(tmp_path, seed):
    lines = ["userId,movieId,rating,timestamp"]
    lines += [f"{u},{i},{float(r or 1)},{1_000_000 + t}" for u, i, t, r in events(seed)]
    lines.insert(100, "")  # a blank line
    return write_lines(tmp_path / "ratings.csv", lines)


def amazon_2014(tmp_path, seed):
    lines = []
    for u, i, t, r in events(seed):
        record = {"reviewerID": f"A{u}", "asin": f"B{i:0>4}", "unixReviewTime": 1_400_000_000 + 86400 * t, "summary": "ok"}
        if r is not None:
            record["overall"] = float(r)
        lines.append(json.dumps(record))
    return write_lines(tmp_path / "reviews_Beauty_5.json.gz", lines, gz=True)


def amazon_2023(tmp_path, seed):
    rng = random.Random(seed + 1)
    lines = []
    for u, i, t, r in events(seed):
        # The item is parent_asin, else asin (when parent_asin is missing or empty).
        record = {"user_id": f"AE{u}X", "asin": f"P{i}", "timestamp": 1_600_000_000_000 + 1000 * t + rng.choice([0, 0, 1, 7])}
        kind = rng.random()
        if kind < 0.6:
            record.update(parent_asin=f"P{i}", asin=f"C{i}-{rng.randrange(3)}")
        elif kind < 0.8:
            record["parent_asin"] = ""
        record["rating"] = r
        lines.append(json.dumps(record))
    return write_lines(tmp_path / "Beauty.jsonl", lines)


def movielens_dat(tmp_path, seed):
    return write_lines(tmp_path / "ratings.dat", [f"{u}::{i}::{r or 0}::{900 + t}" for u, i, t, r in events(seed)])


def assert_same_folder(polars_dir, spark_dir):
    a, b = load_genrec_dataset(polars_dir), load_genrec_dataset(spark_dir)
    assert a.item_map.original_ids == b.item_map.original_ids
    assert a.table.num_users == b.table.num_users
    for u in range(a.table.num_users):
        assert a.table.user(u) == b.table.user(u)
        assert a.table.sequence(u).tolist() == b.table.sequence(u).tolist(), a.table.user(u)
    assert a.table.timestamps.tolist() == b.table.timestamps.tolist()
    assert a.table.offsets.tolist() == b.table.offsets.tolist()
    return a


@pytest.mark.parametrize(
    "writer, kwargs",
    [
        (movielens_csv, dict(min_rating=3.0, min_user_interactions=4, min_item_interactions=6)),
        (amazon_2014, dict(min_rating=2.0, min_user_interactions=6, min_item_interactions=6)),
        (amazon_2023, dict(min_rating=3.0, min_user_interactions=5, min_item_interactions=3)),
        (movielens_dat, dict(min_user_interactions=7, min_item_interactions=7)),
    ],
    ids=["movielens-csv", "amazon2014-gz", "amazon2023-jsonl", "movielens-dat"],
)
def test_spark_prepares_what_polars_prepares(spark, tmp_path, writer, kwargs):
    path = writer(tmp_path, seed=3)
    expected = prepare(path, str(tmp_path / "polars"), **kwargs)
    got = prepare_with_spark(spark, path, str(tmp_path / "spark"), **kwargs)
    # The fixture exercises every rule.
    assert expected["repeated_pairs"] > 0 and expected["k_core_passes"] >= 2
    assert expected["below_rating"] > 0 or "min_rating" not in kwargs
    for key in COUNTS:
        assert got[key] == expected[key], key
    assert got["sequence_length"] == expected["sequence_length"] and got["density"] == expected["density"]
    assert set(got) == set(expected)
    dsd = assert_same_folder(str(tmp_path / "polars"), str(tmp_path / "spark"))
    times = dsd.table.timestamps
    assert any(times[k] == times[k + 1] for k in range(len(times) - 1)), "no tie in time was kept"
    parts = [n for n in os.listdir(tmp_path / "spark" / "sequences.parquet") if n.endswith(".parquet")]
    assert len(parts) == 2  # users spread over part files, read back in order
    with open(tmp_path / "spark" / "summary.json") as f:
        assert json.load(f)["interactions"] == expected["interactions"]
    assert sorted(os.listdir(tmp_path)) == sorted([os.path.basename(path), "polars", "spark"])  # no temporary folder left


def test_short_users_dropped_as_polars_drops_them(spark, tmp_path):
    path = movielens_dat(tmp_path, seed=4)
    with open(path, "a") as f:  # users with one or two interactions, on popular items
        f.write("900::0::5::1\n900::13::5::2\n901::0::5::3\n")
    kwargs = dict(min_user_interactions=1, min_item_interactions=3, on_short="drop")
    expected = prepare(path, str(tmp_path / "polars"), **kwargs)
    got = prepare_with_spark(spark, path, str(tmp_path / "spark"), **kwargs)
    assert expected["dropped_short_users"] > 0
    assert {k: got[k] for k in COUNTS} == {k: expected[k] for k in COUNTS}
    assert_same_folder(str(tmp_path / "polars"), str(tmp_path / "spark"))
    with pytest.raises(ValueError, match="fewer than 3 interactions"):
        prepare_with_spark(spark, path, str(tmp_path / "error"), min_user_interactions=1, min_item_interactions=3)


def test_failures_leave_nothing_and_name_the_record(spark, tmp_path, monkeypatch, capsys):
    path = movielens_csv(tmp_path, seed=5)
    out = tmp_path / "out"
    with pytest.raises(InteractionFormatError, match="core is empty"):
        prepare_with_spark(spark, path, str(out), min_user_interactions=500)

    def broken(self, directory):
        raise OSError("disk full")

    # A failure while the folder is written, through the command line (which keeps the caller's session):
    # not an input mistake, so it keeps its traceback, and nothing is left behind.
    monkeypatch.setattr(ItemIdMap, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        cli(["prepare-spark", "--input", path, "--output_dir", str(out), "--master", "local[1]", "--min_rating", "3"])
    assert sorted(os.listdir(tmp_path)) == ["ratings.csv"]
    monkeypatch.undo()
    assert spark.range(3).count() == 3

    bad = write_lines(tmp_path / "reviews_Bad_5.json", [json.dumps({"reviewerID": "a", "asin": "b", "unixReviewTime": 1})] * 3
                      + [json.dumps({"reviewerID": "a", "asin": "c", "unixReviewTime": "soon"})])
    with pytest.raises(InteractionFormatError, match=r"reviews_Bad_5.json:4: unixReviewTime is not a finite number \('soon'\)"):
        prepare_with_spark(spark, bad, str(out))

    # Spark decodes bytes that are not UTF-8 to U+FFFD, which could merge two ids: refused, as polars does.
    undecodable = tmp_path / "latin" / "ratings.csv"
    undecodable.parent.mkdir()
    undecodable.write_bytes(b"userId,movieId,rating,timestamp\n1,2,4.0,10\n1,\xe9t\xe9,4.0,11\n")
    with pytest.raises(InteractionFormatError, match="not valid UTF-8"):
        prepare_with_spark(spark, str(undecodable), str(out), min_user_interactions=1, min_item_interactions=1)
    assert not out.exists()
