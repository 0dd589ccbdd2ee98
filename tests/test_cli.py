from fewshot import cli


def test_top_level_help(capsys):
    assert cli.main(["--help"]) == 0
    assert "run" in capsys.readouterr().out


def test_no_arguments_prints_usage(capsys):
    assert cli.main([]) == 2
    assert "usage: fewshot" in capsys.readouterr().out
