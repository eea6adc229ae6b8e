"""Raw-dump preparation on Apache Spark: the polars path of ``hf-genrec prepare`` for logs too big for one machine.

:func:`prepare_with_spark` reads an Amazon (2014 / 2018 / 2023) reviews dump or MovieLens ratings
(``ratings.csv`` / ``ratings.dat``; a file, a glob or a folder of files, gzip or not, on any file system
Spark reads) and applies the rules of :func:`hf_genrec.data.columnar.prepare_events` with the DataFrame
API: the optional rating threshold, repeated (user, item) pairs dropped keeping the earliest (ties in
time: file order), the iterative k-core (same counting, same number of passes), each user's items in
time order and users sorted by id. It writes the layout of :func:`hf_genrec.data.splits.write_prepared`
(``sequences.parquet``, here a folder of Spark part files in sorted user order, which pyarrow reads in
that order; ``item_map.json``; ``genrec_dataset.json``; ``summary.json``) into a temporary folder beside
``output_dir`` and renames it into place, so a failure leaves nothing behind. The result is read by
:func:`hf_genrec.data.load_genrec_dataset` like any prepared folder. Item text (``--meta``) is not read
here; the polars path adds it.

Two steps for a data lake:

1. Prepare on the Spark cluster. ``spark-submit`` takes a file, not a module, so pass this one::

       spark-submit --master yarn $(python -c "import hf_genrec.data.spark as m; print(m.__file__)") \\
           --input s3a://lake/amazon/reviews_Books.json.gz --format amazon2014 \\
           --output_dir /shared/genrec/books

   (or ``spark-submit path/to/hf_genrec/data/spark.py ...``; on one machine,
   ``python -m hf_genrec.data.spark --master "local[8]" --input ... --output_dir ...``). The driver needs
   ``hf_genrec`` installed; the executors run JVM code only (no Python UDFs), so they need nothing.
   ``output_dir`` is a POSIX path on storage mounted on the driver and every executor (NFS, Lustre, a
   FUSE-mounted bucket): Spark writes the part files there and the driver renames the folder into place.

2. Train on several nodes reading the prepared folder from that shared storage::

       accelerate launch --num_machines N --machine_rank R --main_process_ip HOST --main_process_port 29500 \\
           --num_processes P examples/run_etegrec.py --dataset_dir /shared/genrec/books ...

Work on the driver is O(users + items) (the item list for ``item_map.json``, the per-user lengths for the
summary's quantiles), never O(interactions). pyspark is imported inside the functions, so
``import hf_genrec`` works without it (``pip install hf_genrec[spark]``).

Differences from the polars path, all on malformed input only: a bad record is reported by file and
record (the line is given for local files read as a whole), an id that is not valid UTF-8 is refused by
the replacement character Spark decodes it to (so a genuine U+FFFD in an id is refused too), and
numbers Java parses but polars does not (``"1d"``, hex floats) are accepted.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from hf_genrec.data.columnar import describe_summary, summarise
from hf_genrec.data.errors import InteractionFormatError
from hf_genrec.data.formats import FORMATS, RAW_FORMATS
from hf_genrec.data.splits import MIN_LENGTH, check_replaceable
from hf_genrec.data.table import SEQUENCES_FILE, write_dataset_info
from hf_genrec.utils.atomic import staged_folder
from hf_genrec.utils.errors import InputError, MissingFileError
from hf_genrec.utils.item_map import ItemIdMap


# ------------------------------------------------------------------------------ reading
def _scan(spark, reader, path: str):
    """``reader(path)`` plus the file-order columns: ``f`` (file path), ``b`` (start of the file split in
    bytes) and ``m`` (increasing within a task). Rows of one split are read in file order by one task,
    so ``(f, b, m)`` orders the records as they stand in the files, whatever the partitioning."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    try:
        frame = reader(path)
    except AnalysisException as e:
        if "PATH_NOT_FOUND" in str(e):
            raise MissingFileError(f"raw data file not found: {path}") from None
        raise
    # The ids are taken here, right after the scan, before any filter or shuffle can reorder rows.
    return frame.select(
        "*",
        F.col("_metadata.file_path").alias("f"),
        F.col("_metadata.file_block_start").alias("b"),
        F.monotonically_increasing_id().alias("m"),
    )


def _as_double(column):
    from pyspark.sql import functions as F

    return F.expr(f"try_cast(trim(`{column}`) AS DOUBLE)")


def _amazon_events(spark, path: str, version: str):
    """``user``, ``item``, ``ts_raw`` (as read), ``timestamp``, ``rating`` of an Amazon reviews dump (see
    :func:`hf_genrec.data.raw.amazon_review_events`), with the file-order columns."""
    from pyspark.sql import functions as F

    if version == "amazon2023":
        fields = ["user_id", "parent_asin", "asin", "timestamp", "rating"]
    else:
        fields = ["reviewerID", "asin", "unixReviewTime", "overall"]
    schema = ", ".join(f"`{f}` STRING" for f in fields)
    raw = _scan(spark, lambda p: spark.read.json(p, schema=schema, mode="FAILFAST"), path)
    if version == "amazon2023":
        parent = F.col("parent_asin")
        return raw.select(
            F.col("user_id").alias("user"),
            F.when(parent.isNotNull() & (parent != ""), parent).otherwise(F.col("asin")).alias("item"),
            F.col("timestamp").alias("ts_raw"),
            (_as_double("timestamp") / 1000.0).alias("timestamp"),
            _as_double("rating").alias("rating"),
            F.lit(None).cast("int").alias("width"), "f", "b", "m",
        ), ("user_id", "parent_asin / asin", "timestamp")
    return raw.select(
        F.col("reviewerID").alias("user"),
        F.col("asin").alias("item"),
        F.col("unixReviewTime").alias("ts_raw"),
        _as_double("unixReviewTime").alias("timestamp"),
        _as_double("overall").alias("rating"),
        F.lit(None).cast("int").alias("width"), "f", "b", "m",
    ), ("reviewerID", "asin", "unixReviewTime")


def _is_csv(spark, path: str) -> bool:
    """Whether MovieLens ratings are ``ratings.csv`` (else ``::``-separated ``ratings.dat``): from the name,
    else (a folder, a glob) from the first line."""
    name = path.rstrip("/")
    if name.endswith((".csv", ".csv.gz", ".dat", ".dat.gz")):
        return name.endswith((".csv", ".csv.gz"))
    from pyspark.sql import functions as F

    first = _scan(spark, lambda p: spark.read.text(p), path).filter(F.trim("value") != "").first()
    return first is not None and "::" not in first["value"]


def _movielens_events(spark, path: str):
    """MovieLens ratings (see :func:`hf_genrec.data.raw.movielens_rating_events`): ``ratings.csv`` with
    its header, or ``user::movie::rating::timestamp`` lines (``ratings.dat``)."""
    from pyspark.sql import functions as F

    if _is_csv(spark, path):
        raw = _scan(spark, lambda p: spark.read.csv(p, header=True, mode="FAILFAST"), path)
        header = [c for c in raw.columns if c not in ("f", "b", "m")]
        for needed in ("userId", "movieId", "rating", "timestamp"):
            if needed not in header:
                raise InteractionFormatError(f"{path}: header {header} has no {needed!r} column (is the header line missing?)")
        user, item, rating, ts = "userId", "movieId", "rating", "timestamp"
        names = ("userId", "movieId", "timestamp")
        # Null, but it reads every column: Spark parses only the columns a query uses, and checks the
        # number of fields (FAILFAST) only when that is all of them.
        raw = raw.withColumn("width", F.when(F.concat_ws("\x1f", *(F.col(c) for c in header)) == "\x00", -1))
    else:
        lines = _scan(spark, lambda p: spark.read.text(p), path)
        lines = lines.filter(F.trim("value") != "").select(F.split("value", "::").alias("v"), "f", "b", "m")
        raw = lines.select(
            *(F.get("v", k).alias(n) for k, n in enumerate(("user", "item", "rating", "ts"))),
            F.size("v").alias("width"), "f", "b", "m",
        )
        user, item, rating, ts = "user", "item", "rating", "ts"
        names = ("user", "movie", "timestamp")
    return raw.select(
        F.col(user).alias("user"),
        F.col(item).alias("item"),
        F.col(ts).alias("ts_raw"),
        _as_double(ts).alias("timestamp"),
        _as_double(rating).alias("rating"),
        "width", "f", "b", "m",
    ), names


def _record_place(events, row, fmt: str, names: tuple[str, str, str]) -> str:
    """``file:line`` of a bad record where the file was read whole from a local disk, else the file and
    the record's index in its split."""
    from urllib.parse import unquote, urlparse

    from pyspark.sql import functions as F

    first = events.filter((F.col("f") == row["f"]) & (F.col("b") == row["b"])).agg(F.min("m")).first()[0]
    record = int(row["m"] - first)
    url = urlparse(row["f"])
    local = unquote(url.path) if url.scheme in ("", "file") else None
    if row["b"] == 0 and local and os.path.isfile(local):
        if fmt == "movielens" and names[0] == "user":
            return f"{local}:{record + 1}"  # text lines: every line, blank ones too, took an id
        from hf_genrec.data.sources import line_of_record

        return f"{local}:{line_of_record(local, record, header=fmt == 'movielens')}"
    return f"{row['f']} (record {record} of the split at byte {row['b']})"


def _bad_conditions(names: tuple[str, str, str]) -> list[tuple[str, object, str | None]]:
    """(count name, condition, message) of each check of :func:`hf_genrec.data.columnar.check_events`,
    in its order; the timestamp's message depends on the value."""
    from pyspark.sql import functions as F

    user, item, _ = names
    ts, width = F.col("timestamp"), F.col("width")
    return [
        ("bad_width", width.isNotNull() & (width != 4), None),
        ("bad_user", F.col("user").isNull(), f"missing {user}"),
        ("bad_item", F.col("item").isNull(), f"missing {item}"),
        # Spark decodes bytes that are not UTF-8 as U+FFFD: two different ids could become one, so an
        # id holding it is refused (as the polars path refuses the bytes).
        ("bad_text", F.col("user").contains("\ufffd") | F.col("item").contains("\ufffd"),
         "an id is not valid UTF-8 (it holds U+FFFD, Spark's replacement for undecodable bytes)"),
        ("bad_time", ts.isNull() | F.isnan(ts) | (F.abs(ts) == float("inf")), None),
    ]


def _check(events, counts: dict, names: tuple[str, str, str], fmt: str) -> None:
    """Refuse ragged ``::`` lines, null ids and missing / non-numeric / non-finite timestamps, as
    :func:`hf_genrec.data.columnar.check_events` does (the first bad record in file order is named)."""
    for key, condition, message in _bad_conditions(names):
        if counts[key]:
            row = events.filter(condition).orderBy("f", "b", "m").first()
            if key == "bad_width":
                message = f"expected 4 '::'-separated fields, found {row['width']}"
            elif key == "bad_time":
                value = row["ts_raw"]
                message = f"{names[2]} is " + ("missing" if value is None else f"not a finite number ({value!r})")
            raise InteractionFormatError(f"{_record_place(events, row, fmt, names)}: {message}")


# ------------------------------------------------------------------------------ filtering
def _k_core(pairs, min_user: int, min_item: int, persisted: list):
    """:func:`hf_genrec.data.columnar.k_core_codes` on a DataFrame of distinct (``user``, ``item``) rows:
    each pass counts users and items on the same rows and stops when the numbers of users and items
    that pass their thresholds both equal the previous pass's (the first pass compares with the
    numbers of distinct users and items). Returns the kept rows, the number of rows before the first
    pass, the number kept and the number of passes that dropped something. The frame each pass
    persists is added to ``persisted``; the previous pass's is released once the next is computed.

    One job per pass: two window operators (by user, by item) count each one's rows and mark its first
    row, so the distinct numbers are plain sums (no distinct aggregation)."""
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_user, by_item = Window.partitionBy("user").orderBy("item"), Window.partitionBy("item").orderBy("user")
    whole = (Window.unboundedPreceding, Window.unboundedFollowing)
    passes, previous, current, users, items, start = 0, None, pairs, None, None, None
    while True:
        counted = current.select(
            "user", "item",
            F.count(F.lit(1)).over(by_user.rowsBetween(*whole)).alias("cu"),
            (F.row_number().over(by_user) == 1).alias("fu"),
            F.count(F.lit(1)).over(by_item.rowsBetween(*whole)).alias("ci"),
            (F.row_number().over(by_item) == 1).alias("fi"),
        ).persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(counted)
        good_u, good_i = F.col("fu") & (F.col("cu") >= min_user), F.col("fi") & (F.col("ci") >= min_item)
        stats = counted.agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.col("fu").cast("long")).alias("users"),
            F.sum(F.col("fi").cast("long")).alias("items"),
            F.sum(good_u.cast("long")).alias("good_users"),
            F.sum(good_i.cast("long")).alias("good_items"),
        ).first()
        if previous is not None:
            previous.unpersist()
        previous = counted
        if start is None:
            start, users, items = int(stats["rows"]), stats["users"], stats["items"]
        if (stats["good_users"] or 0) == users and (stats["good_items"] or 0) == items:
            return counted.select("user", "item"), start, int(stats["rows"]), passes
        users, items = stats["good_users"] or 0, stats["good_items"] or 0
        passes += 1
        current = counted.filter((F.col("cu") >= min_user) & (F.col("ci") >= min_item)).select("user", "item")


def _detect_format(path: str) -> str | None:
    """The raw format a path (a file, glob or folder Spark reads; possibly remote) is named as, or None."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return next((f.name for f in FORMATS if f.raw and f.claims(name)), None)


def prepare_with_spark(
    spark,
    input_path: str,
    output_dir: str,
    format: str | None = None,
    min_user_interactions: int = 5,
    min_item_interactions: int = 5,
    min_rating: float | None = None,
    on_short: str = "error",
) -> dict:
    """Prepare a raw dump with Spark into the prepared folder ``output_dir`` (see the module docstring).

    Args:
        spark: the ``SparkSession``.
        input_path: the reviews / ratings file (or a glob / folder of them), any path Spark reads.
        output_dir: the prepared folder, a POSIX path the driver and the executors share.
        format: ``amazon2014`` | ``amazon2018`` | ``amazon2023`` | ``movielens`` (default: from the name).
        min_user_interactions, min_item_interactions: the k-core thresholds.
        min_rating: keep interactions rated at least this (null ratings are dropped then).
        on_short: users left with fewer than 3 interactions: ``"error"`` or ``"drop"`` (as ``hf-genrec prepare``).

    Returns the summary written to ``summary.json`` (the keys of the polars path's summary).
    """
    fmt = format or _detect_format(input_path)
    if fmt not in RAW_FORMATS:
        raise InteractionFormatError(f"cannot tell which raw dump {input_path!r} is; pass format= one of {RAW_FORMATS}")
    if on_short not in ("error", "drop"):
        raise InputError(f"on_short must be 'error' or 'drop', got {on_short!r}")
    if "://" in output_dir:
        raise InputError(f"output_dir must be a POSIX path on shared storage (it is renamed into place), got {output_dir!r}")
    check_replaceable(output_dir, (input_path,))

    try:
        return _prepare(spark, input_path, output_dir, fmt, min_user_interactions, min_item_interactions, min_rating,
                        on_short)
    except Exception as e:
        error = _malformed(e, input_path)
        if error is None:
            raise
        raise error from None


def _malformed(error: Exception, path: str) -> InteractionFormatError | None:
    """The one-line error for Spark's FAILFAST refusal of a record (a line that is not JSON, a ragged
    CSV row), or None for any other error."""
    import re

    text = str(error)
    if isinstance(error, InteractionFormatError) or "MALFORMED" not in text.upper():
        return None
    file = re.search(r"reading file (\S+?)\.?\s", text)
    causes = [line.split(": ", 2)[-1] for line in text.splitlines() if line.startswith("Caused by: ")]
    reason = re.sub(r"\s*SQLSTATE: \w+$", "", causes[-1]) if causes else "malformed record"
    return InteractionFormatError(f"{file.group(1) if file else path}: malformed record ({reason[:300]})")


def _prepare(spark, input_path, output_dir, fmt, min_user_interactions, min_item_interactions, min_rating, on_short) -> dict:
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if fmt == "movielens":
        events, names = _movielens_events(spark, input_path)
    else:
        events, names = _amazon_events(spark, input_path, fmt)
    persisted = []
    try:
        keep = F.col("rating").isNotNull() & (F.col("rating") >= min_rating) if min_rating is not None else F.lit(True)
        bad = _bad_conditions(names)
        # One pass over the input: each (user, item) pair's earliest kept record, i.e. its least (time,
        # file, split, record) key, with the counts of records read, kept and bad.
        key = F.struct(F.col("timestamp").alias("t"), "f", "b", "m")
        groups = events.groupBy("user", "item").agg(
            F.count(F.lit(1)).alias("n"),
            F.sum(keep.cast("long")).alias("kept"),
            *(F.sum(condition.cast("long")).alias(name) for name, condition, _ in bad),
            F.min(F.when(keep, key)).alias("key"),
        ).persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(groups)
        counts = groups.agg(
            F.sum("n").alias("read"), F.sum("kept").alias("kept"), *(F.sum(name).alias(name) for name, _, _ in bad)
        ).first()
        counts = {k: int(v or 0) for k, v in counts.asDict().items()}
        _check(events, counts, names, fmt)
        read = counts["read"]
        below = read - counts["kept"] if min_rating is not None else 0
        if counts["kept"] == 0:
            raise InteractionFormatError("no interactions left to prepare (empty input, or every rating below the threshold)")
        pairs = groups.filter(F.col("kept") > 0).select("user", "item", "key")
        # The k-core runs on the (user, item) pairs alone; the keys are joined back at the end.
        kept, distinct_pairs, rows, passes = _k_core(pairs.select("user", "item"), min_user_interactions,
                                                     min_item_interactions, persisted)
        repeated = read - below - distinct_pairs
        if rows == 0:
            raise InteractionFormatError(
                f"the {min_user_interactions}/{min_item_interactions}-core is empty: lower --min_user_interactions / "
                "--min_item_interactions"
            )

        dropped = 0
        if min_user_interactions < MIN_LENGTH:  # the k-core leaves users at least this long otherwise
            lengths = kept.groupBy("user").count()
            short = lengths.filter(F.col("count") < MIN_LENGTH)
            n_short = short.count()
            if n_short and on_short == "error":
                example = short.orderBy("user").first()
                raise InputError(
                    f"{n_short} user(s) have fewer than {MIN_LENGTH} interactions (e.g. user {example['user']!r} with "
                    f"{example['count']}); pass on_short='drop' to drop them"
                )
            if n_short:
                kept = kept.join(short.select("user"), "user", "left_anti").persist(StorageLevel.MEMORY_AND_DISK)
                persisted.append(kept)
                if kept.count() == 0:
                    raise InputError("every user was dropped as too short; nothing to split")
            dropped = int(n_short)

        # Dense ids 1..N in the sorted order of the original ids (Spark compares strings by their UTF-8
        # bytes, as polars and Python do). One task ranks the distinct items: O(items), like the driver's list.
        item_ids = (
            kept.select("item").distinct()
            .select("item", F.row_number().over(Window.orderBy("item")).cast("int").alias("iid"))
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        persisted.append(item_ids)
        original = [r["item"] for r in sorted(item_ids.collect(), key=lambda r: r["iid"])]
        if original != sorted(original):
            raise RuntimeError("Spark's string order differs from Python's (a non-binary collation?); cannot build item_map.json")
        item_map = ItemIdMap.from_ordered(original)

        ordered = F.sort_array(F.collect_list(F.struct(F.col("key"), F.col("iid"))))
        sequences = (
            kept.join(pairs, ["user", "item"])
            .join(item_ids, "item")
            .groupBy("user")
            .agg(ordered.alias("s"))
            .select(
                "user",
                F.transform("s", lambda x: x["iid"]).alias("items"),
                F.transform("s", lambda x: x["key"]["t"]).alias("timestamps"),
            )
            .orderBy("user")  # range-partitioned: part-00000 holds the first users, and pyarrow reads parts by name
        )

        with staged_folder(output_dir, keep_other_files=False) as tmp:
            target = os.path.join(tmp, SEQUENCES_FILE)
            sequences.write.option("compression", "zstd").parquet("file://" + target)
            _check_user_order(target)
            lengths = np.array(
                [r[0] for r in spark.read.parquet("file://" + target).select(F.size("items")).collect()], dtype=np.int64
            )
            summary = summarise(lengths, item_map.num_items)
            summary.update(read=read, below_rating=below, repeated_pairs=repeated, k_core_passes=passes,
                           format=fmt, source=input_path, meta=None, dropped_short_users=dropped)
            item_map.save(tmp)
            with open(os.path.join(tmp, "summary.json"), "w") as f:
                json.dump(summary, f, indent=2)
            write_dataset_info(tmp, {
                "users": summary["users"],
                "items": item_map.num_items,
                "interactions": summary["interactions"],
                "timestamps": True,
                "dropped_users": dropped,
                "summary": summary,
            })
        return summary
    finally:
        for frame in persisted:
            frame.unpersist()


def _check_user_order(path: str) -> None:
    """Make sure pyarrow reads the part files back in sorted user order (it reads them by name)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    users = pq.read_table(path, columns=["user"]).column("user").combine_chunks()
    if len(users) > 1 and not pc.all(pc.less(users.slice(0, len(users) - 1), users.slice(1))).as_py():
        raise RuntimeError(f"{path}: the part files do not read back in sorted user order")


# ------------------------------------------------------------------------------ command line
def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(
        prog="hf-genrec prepare-spark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--input", required=True, help="reviews / ratings file, glob or folder (any path Spark reads)")
    p.add_argument("--output_dir", required=True, help="the prepared folder (a POSIX path shared by driver and executors)")
    p.add_argument("--format", default=None, choices=RAW_FORMATS, help="the raw dump (default: from the input's name)")
    p.add_argument("--min_user_interactions", type=int, default=5)
    p.add_argument("--min_item_interactions", type=int, default=5)
    p.add_argument("--min_rating", type=float, default=None, help="keep interactions rated at least this")
    p.add_argument("--on_short", default="error", choices=["error", "drop"],
                   help=f"users with fewer than {MIN_LENGTH} interactions: refuse, or drop them")
    p.add_argument("--master", default=None, help="Spark master (e.g. local[8]); leave unset under spark-submit")
    p.add_argument("--app_name", default="hf-genrec prepare-spark")
    a = p.parse_args(argv)
    from pyspark.sql import SparkSession

    existing = SparkSession.getActiveSession()
    builder = SparkSession.builder.appName(a.app_name)
    if a.master:
        builder = builder.master(a.master)
    spark = builder.getOrCreate()
    try:
        s = prepare_with_spark(spark, a.input, a.output_dir, a.format, a.min_user_interactions, a.min_item_interactions,
                               a.min_rating, a.on_short)
    finally:
        if existing is None:  # a session of the caller's (a notebook, a test) stays up
            spark.stop()
    print(describe_summary(s, a.output_dir))
    return s


if __name__ == "__main__":  # spark-submit runs this file (the cluster's driver need not have the console script)
    from hf_genrec.cli.errors import run_cli

    run_cli(main, "hf-genrec prepare-spark")
