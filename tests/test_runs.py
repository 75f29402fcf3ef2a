"""Run folders: unique names under concurrency, atomic writes."""
from concurrent.futures import ThreadPoolExecutor

from erase.files import write_json_atomic
from erase.runs.folders import create_run_folder


def test_concurrent_runs_get_distinct_folders(workdir):
    with ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(lambda _: create_run_folder(None, "same-name"), range(16)))
    assert len({f.resolve() for f in folders}) == 16
    assert all(f.is_dir() and f.parent.name == "runs" for f in folders)


def test_atomic_json_leaves_no_temporary_files(workdir):
    write_json_atomic(workdir / "a" / "EVAL.json", {"x": 1})
    assert [p.name for p in (workdir / "a").iterdir()] == ["EVAL.json"]
