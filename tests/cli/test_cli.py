import pytest

from emo_backend import cli


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_every_command_explains_itself(capsys):
    for name in cli.COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: emosplat " + name in capsys.readouterr().out


def test_user_error_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad_avatar"
    bad.mkdir()
    (bad / "avatar.json").write_text("not json")
    code = cli.main(["preview", "--avatar", str(bad), "--out", str(tmp_path / "p.mp4")])
    err = capsys.readouterr().err
    assert code == 2
    assert "avatar.json" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_bug_is_reported_without_traceback(monkeypatch, capsys):
    def explode(args):
        raise ZeroDivisionError("boom")

    import emo_backend.commands.preview as preview

    monkeypatch.setattr(preview, "run", explode)
    assert cli.main(["preview"]) == 1
    err = capsys.readouterr().err
    assert "internal error" in err and "--debug" in err and "Traceback" not in err
