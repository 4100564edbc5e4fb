"""The docs' first code lines run as written on a fresh install (no weights anywhere)."""
import os
import re
import warnings

import pytest

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def _blocks(page):
    with open(os.path.join(DOCS, page), encoding="utf-8") as f:
        text = f.read()
    found = re.findall(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text)
    return [re.sub(r"^    ", "", b, flags=re.M) for b in found]


def test_quickstart_first_block_runs_on_a_fresh_install(tmp_path, monkeypatch):
    monkeypatch.setenv("GLUONFR_HOME", str(tmp_path))  # an empty cache: nothing imported
    monkeypatch.delenv("GLUONFR_REPO_URL", raising=False)
    code = _blocks("quickstart.rst")[0]
    assert "get_model(" in code and "pretrained=True" not in code
    scope = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, "quickstart.rst", "exec"), scope)
    assert scope["net"].embedding_size == 128 and -1.0 <= scope["similarity"] <= 1.0
    # the second block needs imported weights: without them it says how to get them
    with pytest.raises(ValueError, match="gluonfr-import"):
        exec(compile(_blocks("quickstart.rst")[1], "quickstart.rst", "exec"), scope)


def test_browser_check_sees_bullets_and_overflow(tmp_path):
    import importlib.util
    import shutil

    if not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("no chromium (CI installs it: .ci/run)")
    spec = importlib.util.spec_from_file_location("check_browser",
                                                  os.path.join(DOCS, "check_browser.py"))
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    cells = "".join(f"<td>column{i}-wide-wide-wide</td>" for i in range(30))
    page = ("<html><body><div class='rst-content' style='width:600px'>"
            "<table class='docutils'><tr><td><ul><li></li></ul></td><td>ok</td></tr></table>"
            f"<table class='docutils'><tr>{cells}</tr></table>"
            "<table class='docutils'><tr><td>fine</td></tr></table></div></body></html>")
    (tmp_path / "p.html").write_text(page)
    problems = check.check_page(check._chromium(), str(tmp_path), "p.html")
    assert len(problems) == 2
    assert "table 0" in problems[0] and "bullet list" in problems[0]
    assert "table 1" in problems[1] and "scroll bar" in problems[1]
