"""Every console script of setup.py: registered once, importable, ``--help`` names the command."""
import ast
import contextlib
import importlib
import io
import os
import pkgutil

import gluonfr.cli

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def console_scripts():
    """``[(command, module, function)]`` from setup.py's ``CONSOLE_SCRIPTS`` list."""
    with open(os.path.join(REPO, "setup.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == \
                "CONSOLE_SCRIPTS":
            entries = ast.literal_eval(node.value)
            break
    else:
        raise AssertionError("setup.py has no CONSOLE_SCRIPTS list")
    out = []
    for entry in entries:
        command, target = (s.strip() for s in entry.split("="))
        module, func = target.split(":")
        out.append((command, module, func))
    return out


SCRIPTS = console_scripts()


def test_every_cli_module_is_registered_once_under_its_name():
    commands = [c for c, _, _ in SCRIPTS]
    assert len(commands) == len(set(commands))
    modules = {m for _, m, _ in SCRIPTS}
    found = {f"gluonfr.cli.{m.name}" for m in pkgutil.iter_modules(gluonfr.cli.__path__)
             if not m.name.startswith("_")}
    assert found == modules
    for command, module, func in SCRIPTS:
        assert func == "main"
        # a trailing underscore avoids a keyword (gluonfr.cli.import_ is gluonfr-import)
        stem = module.rsplit(".", 1)[1].rstrip("_")
        assert command == "gluonfr-" + stem.replace("_", "-")


@pytest.mark.parametrize("command,module,func", SCRIPTS, ids=[c for c, _, _ in SCRIPTS])
def test_help(command, module, func):
    main = getattr(importlib.import_module(module), func)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = out.getvalue()
    assert text.startswith(f"usage: {command} ")
    # the command's own description, not an empty parser
    summary = importlib.import_module(module).__doc__.strip().splitlines()[0]
    assert summary in text
    if command != "gluonfr-launch-dist":  # its options are MXNet's launcher's
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
            main(["--version"])
        assert exit_.value.code == 0
        assert out.getvalue() == f"{command} {gluonfr.__version__}\n"


def test_launch_dist_without_a_command_is_a_usage_error(capsys):
    from gluonfr.cli.launch_dist import main

    assert main(["-n", "2"]) == 2
    err = capsys.readouterr().err
    assert "usage: gluonfr-launch-dist" in err and "after --" in err


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    from gluonfr.cli import pack_bin, pack_rec, publish

    missing = tmp_path / "nowhere.txt"
    assert pack_bin.main([str(missing), str(tmp_path / "out.bin")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gluonfr-pack-bin: error: ") and str(missing) in err
    assert len(err.strip().splitlines()) == 1  # no traceback
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("a.jpg b.jpg 1\nc.jpg d.jpg maybe\n")
    assert pack_bin.main([str(pairs), str(tmp_path / "out.bin")]) == 2
    assert f"{pairs}:2: expected 'image_a image_b 1|0'" in capsys.readouterr().err
    assert pack_rec.main([str(missing), str(tmp_path / "rec")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "bogus.params").write_bytes(b"not parameters")
    assert publish.main([str(tmp_path / "bogus.params"), "--model", "mobilefacenet",
                         "--out-dir", str(tmp_path / "store")]) == 2
    assert "bogus.params" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["bogus.params", "pairs.txt"]  # nothing written
