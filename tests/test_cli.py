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


def test_help_texts_print_no_doubled_percent_signs(capsys):
    """argparse does not %-format descriptions: "95%%" printed as written."""
    import pytest

    for command in cli.COMMANDS:
        with pytest.raises(SystemExit) as info:
            cli.main([command, "--help"])
        assert info.value.code == 0
        assert "%%" not in capsys.readouterr().out, command
    with pytest.raises(SystemExit):
        cli.main(["summarize", "--help"])
    assert "95% Student-t" in " ".join(capsys.readouterr().out.split())


RECIPE = __import__("pathlib").Path(__file__).parents[1] / "recipes" / "sinusoid"


def test_run_finds_the_recipe_after_options_that_take_values(tmp_path, capsys, monkeypatch):
    """A runner option's value before the recipe is not taken for the recipe."""
    import pytest

    from fewshot.recipes import sinusoid

    seen = []
    monkeypatch.setattr(sinusoid, "run", lambda config, args: seen.append(args))
    out = str(tmp_path / "o")
    assert cli.main(["run", "--meta-steps", "7", "--eval-tasks", "3", str(RECIPE), "--out", out]) == 0
    assert (seen[0].recipe, seen[0].meta_steps, seen[0].eval_tasks, seen[0].out) == (str(RECIPE), 7, 3, out)
    assert cli.main(["run", "--out", out, "--seed", "4", "--meta-steps", "2", str(RECIPE / "recipe.toml")]) == 0
    assert (seen[1].recipe, seen[1].seed, seen[1].meta_steps) == (str(RECIPE / "recipe.toml"), 4, 2)
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "--meta-steps", "7", str(RECIPE), "--help"])
    assert info.value.code == 0 and "--meta-steps" in capsys.readouterr().out
    # No recipe among the arguments: the first positional one is named, as before.
    assert cli.main(["run", str(tmp_path / "nowhere"), "--out", out]) == 2
    assert "No recipe found at" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert info.value.code == 0 and "recipe folder" in text
    assert "`fewshot run RECIPE --help` lists them" in text and "recipes/omniglot" in text


def test_commands_that_load_models_silence_tensorflow_notices(tmp_path, capsys):
    """Retracing warnings (an ensemble's members) are not for users: run, export, recommend, predict-molecules."""
    import logging

    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    try:
        for argv in (
            ["export", str(tmp_path / "missing.keras"), str(tmp_path / "sm")],
            ["recommend", "--model", "m", "--ratings", "r.csv", "--data-dir", str(tmp_path)],
            ["predict-molecules", "--model", "m", "--support", "s.csv", "--query", "q.csv",
             "--out", str(tmp_path / "p.csv")],
        ):
            logger.setLevel(logging.WARNING)
            assert cli.main(argv) == 2  # the inputs do not exist
            assert logger.level == logging.ERROR, argv[0]
    finally:
        logger.setLevel(level)
