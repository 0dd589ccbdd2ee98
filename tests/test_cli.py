from fewshot import cli


def test_top_level_help(capsys):
    assert cli.main(["--help"]) == 0
    assert "run" in capsys.readouterr().out


def test_no_arguments_prints_usage(capsys):
    assert cli.main([]) == 2
    assert "usage: fewshot" in capsys.readouterr().out


def test_an_unwritable_output_is_one_line_before_any_work(tmp_path, capsys):
    # The model and input files do not exist: the output path is checked first.
    missing = str(tmp_path / "no" / "out.csv")
    common = ["--model", "m", "--support", "s.csv", "--query", "q.csv", "--out"]
    assert cli.main(["predict-molecules", *common, missing]) == 2
    assert capsys.readouterr().err == (
        f"fewshot predict-molecules: error: --out: the folder {str(tmp_path / 'no')!r} "
        f"does not exist. Received: --out {missing}\n"
    )
    assert cli.main(["predict-molecules", *common, str(tmp_path)]) == 2
    assert "--out must be a file to write, not a folder" in capsys.readouterr().err
    recommend = ["recommend", "--model", "m", "--ratings", "r.csv", "--data-dir", str(tmp_path)]
    assert cli.main([*recommend, "--output", missing]) == 2
    assert "--output: the folder" in capsys.readouterr().err


def test_operating_system_errors_are_one_line(tmp_path, capsys, monkeypatch):
    def full_disk(argv):
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(cli.COMMANDS, "summarize", (full_disk, "test"))
    assert cli.main(["summarize"]) == 2
    assert capsys.readouterr().err == "fewshot summarize: error: [Errno 28] No space left on device\n"
