"""Jobs built in Python and from job files: the job-file correspondence."""
import os
import subprocess
import tomllib

import pytest

import tensair

WORDS = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "wordcount.toml")


def word_job():
    job = tensair.Job("counts", metrics_interval=1.0)
    job.add("gen", "generator", count=100, batch_size=10,
            columns={"k": "randint(5)"}, placement=0)
    job.add("count", "reduce", inputs={"in": {"from": "gen", "routing": "key_hash", "key": "k"}},
            group_by="k", aggregate={"n": "count"})
    job.add("sink", "csv_sink", inputs="count", path="counts.csv", sort_by="k",
            routing="to_rank", rank=0, placement=0)
    return job


def test_toml_of_a_python_job_is_a_job_file_the_cli_accepts(tmp_path, cli):
    job = word_job()
    text = job.to_toml()
    tables = tomllib.loads(text)
    assert tables["job"] == {"name": "counts", "metrics_interval": 1.0}
    assert tables["count"]["from"] == "gen" and tables["count"]["routing"] == "key_hash"
    path = tmp_path / "counts.toml"
    path.write_text(text)
    cli_text = subprocess.run([cli, "validate", str(path), "--ranks", "2"], check=True,
                              capture_output=True, text=True).stdout
    # The same description, but for the file name in the first line.
    ours = job.validate(ranks=2)
    assert ours.splitlines()[1:] == cli_text.splitlines()[1:]
    assert "key_hash(k)" in ours


def test_run_writes_what_the_cli_writes(tmp_path, cli, out):
    job = word_job()
    result = job.run(out=out)
    assert result.status == "finished"
    assert result.summary["operators"]["gen"]["records_out"] == 100
    assert sum(v["records_in"] for k, v in result.summary["operators"].items()
               if k == "count") == 100
    path = tmp_path / "counts.toml"
    path.write_text(job.to_toml())
    subprocess.run([cli, "run", str(path), "--out", str(tmp_path / "cli")], check=True,
                   capture_output=True)
    assert open(os.path.join(out, "counts.csv")).read() == \
        open(tmp_path / "cli" / "counts.csv").read()


def test_from_toml_with_set_resolves_paths_against_the_file(out):
    job = tensair.Job.from_toml(WORDS, set={"sink.path": "top.csv", "count.window": tensair.Job.DROP})
    assert job.name == "wordcount"
    assert job.operators["sink"]["path"] == "top.csv"
    assert "window" not in job.operators["count"]
    result = job.run(out=out)  # the file's relative data paths still resolve
    assert result.status == "finished"
    assert os.path.getsize(os.path.join(out, "top.csv")) > 0


def test_several_ports_become_input_tables():
    job = tensair.Job("j")
    job.add("m", "model", inputs={"train": "a", "predict": ["b", "c.out"]})
    table = tomllib.loads(job.to_toml())["m"]
    assert table["inputs"] == {"train": {"from": "a"}, "predict": {"from": ["b", "c.out"]}}


def test_configuration_mistakes_are_config_errors_with_the_loaders_line(out):
    job = tensair.Job("bad")
    job.add("gen", "generator", count=10, columns={"x": "uniform"}, windw=3)
    with pytest.raises(tensair.ConfigError, match=r'\[gen\] unknown key "windw"'):
        job.run(out=out)
    with pytest.raises(tensair.ConfigError, match='already has an operator "gen"'):
        job.add("gen", "text_source")
    missing = tensair.Job("missing")
    missing.add("t", "text_source", path="/nonexistent/words.txt")
    with pytest.raises(tensair.IoError, match="/nonexistent/words.txt"):
        missing.run(out=out)
    with pytest.raises(tensair.ConfigError, match=r"unknown operator type|unknown type"):
        tensair.Job("x").add("a", "no_such_type").validate()


def test_operator_types_match_the_cli(cli):
    text = subprocess.run([cli, "operators"], check=True, capture_output=True, text=True).stdout
    for name, _ in tensair.operator_types():
        if not name.startswith("python_"):
            assert name in text
    assert {"python_source", "python_sink", "python_map", "python_filter"} <= \
        {n for n, _ in tensair.operator_types()}
