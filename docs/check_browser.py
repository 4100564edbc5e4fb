"""Look at built doc pages in a real browser (headless Chromium at 1280 px), as readers do.

    python docs/check_browser.py docs/_build/html [model_zoo.html byom.html ...]
        [--screenshot OUT.png]

For each page, a copy with a small measuring script is loaded with ``chromium --headless
--dump-dom``; the script records, for every table of the page, whether a cell holds a list
(``<ul>``/``<ol>``: a lone ``-`` in an RST cell renders as a bullet) and whether the table is
wider than its container (columns hidden behind a scroll bar). Exit status 1 names each
offending table; 0 when every table is clean. ``--screenshot`` also writes a picture of the
first page. Without a Chromium binary the check fails under ``CI`` and is skipped otherwise.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

WIDTH = 1280
_PROBE = """<script>
window.addEventListener('load', function () {
  var out = [];
  document.querySelectorAll('table.docutils').forEach(function (t, i) {
    var box = t.closest('.wy-table-responsive') || t.parentElement;
    var inner = document.querySelector('.rst-content') || box;
    var lists = t.querySelectorAll('td ul, td ol, th ul, th ol').length;
    var head = t.querySelector('tr');
    out.push({index: i, header: head ? head.innerText.replace(/\\s+/g, ' ').slice(0, 80) : '',
              lists: lists, width: Math.round(t.getBoundingClientRect().width),
              room: Math.round(inner.clientWidth),
              right: Math.round(t.getBoundingClientRect().right),
              edge: Math.round(inner.getBoundingClientRect().right)});
  });
  document.body.setAttribute('data-table-check', JSON.stringify(out));
});
</script>"""


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _flags(profile):
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--no-first-run", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", f"--window-size={WIDTH},1400",
            "--virtual-time-budget=5000", "--hide-scrollbars"]


def check_page(browser, html_dir, page, screenshot=None):
    """Problems of ``page`` as a list of strings (empty when every table is clean)."""
    src = os.path.join(html_dir, page)
    with open(src, encoding="utf-8") as f:
        text = f.read()
    # absolute: "file://" + a relative path is an invalid URL to the browser
    probe = os.path.abspath(os.path.join(html_dir, "_browser_check_" + os.path.basename(page)))
    with open(probe, "w", encoding="utf-8") as f:
        f.write(text.replace("</body>", _PROBE + "</body>"))
    profile = tempfile.mkdtemp(prefix="gluonfr-chromium-")
    try:
        dom = subprocess.run([browser, *_flags(profile), "--dump-dom", "file://" + probe],
                             capture_output=True, text=True, timeout=120).stdout
        if screenshot:
            subprocess.run([browser, *_flags(profile), f"--screenshot={screenshot}",
                            "file://" + os.path.abspath(src)], capture_output=True,
                           timeout=120)
    finally:
        os.remove(probe)
        shutil.rmtree(profile, ignore_errors=True)
    match = re.search(r'data-table-check="([^"]*)"', dom)
    if not match:
        return [f"{page}: the browser did not run the table probe (no DOM result)"]
    tables = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    problems = []
    for t in tables:
        name = f"{page} table {t['index']} ({t['header']!r})"
        if t["lists"]:
            problems.append(f"{name}: {t['lists']} cell(s) hold a bullet list (a lone '-' "
                            f"in an RST cell; use a real dash)")
        if t["right"] > t["edge"] + 1 or t["width"] > t["room"] + 1:
            problems.append(f"{name}: {t['width']} px wide in {t['room']} px at a "
                            f"{WIDTH} px window: columns are hidden behind a scroll bar")
    return problems


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("html_dir")
    p.add_argument("pages", nargs="*", default=["model_zoo.html", "byom.html"])
    p.add_argument("--screenshot", help="PNG of the first page at 1280 px")
    args = p.parse_args(argv)
    browser = _chromium()
    if browser is None:
        msg = "no chromium binary (apt-get install -y chromium)"
        if os.environ.get("CI"):
            print(f"check_browser: error: {msg}", file=sys.stderr)
            return 1
        print(f"check_browser: skipped: {msg}")
        return 0
    problems = []
    for i, page in enumerate(args.pages):
        problems += check_page(browser, args.html_dir, page,
                               args.screenshot if i == 0 else None)
    for line in problems:
        print(line, file=sys.stderr)
    print(f"check_browser: {len(args.pages)} page(s), {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
