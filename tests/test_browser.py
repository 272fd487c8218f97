"""The sliders, tested in a real browser: JupyterLab + headless Chromium driven by Playwright.

The notebook tests run every lesson headless with INTERACTIVE=False, so nothing there checks that a
slider renders and redraws in JupyterLab, where widget version mismatches and front-end errors show
up. Here each lesson that calls `widgets.show(...)` is copied with its parameters cell set to smoke
sizes and INTERACTIVE=True, opened in JupyterLab (the course's "python3" kernel) and run with "Run
All"; then every slider must render (no "Error displaying widget", no widget or figure printed as
plain text), move with the keyboard, and redraw the figure it drives.

Every cell runs, so a figure printed as text anywhere in a lesson fails too; the lessons' caches are
shared with tests/test_notebooks.py (same FACELAB_CACHE, same smoke sizes), so a warm run of all four
lessons takes under two minutes on 2 cores. FACELAB_BROWSER_QUICK=1 ends each copy at its last slider
cell instead (quicker when iterating on a lesson).

Needs Playwright (`pip install playwright`, in the `test` extras) and Debian's `chromium` (no browser
download: Playwright drives the system one); without them the tests skip, except in CI (`.ci/run`
installs both), where that is a failure. Screenshots go under each test's tmp_path: one of the
sliders after moving them, and one of the page on failure.
"""

from __future__ import annotations

import ast
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

from facelab import course

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVER_START_TIMEOUT = 120  # s: JupyterLab answering /api/status
PAGE_TIMEOUT = 120_000  # ms: page loads, kernel start, a widget to appear (2 busy cores)
RUN_ALL_TIMEOUT = 2 * course.SMOKE_TIMEOUT  # s: every cell of one lesson at smoke sizes
REDRAW_TIMEOUT = 180  # s: one slider move redrawing its figure
PLAIN_TEXT_WIDGETS = ("interactive(children=", "IntSlider(", "FloatSlider(", "VBox(children=", "Output(")
QUICK = os.environ.get("FACELAB_BROWSER_QUICK", "") not in ("", "0")


@dataclass(frozen=True)
class SliderCell:
    """A `widgets.show(...)` call in a lesson and the names of its sliders, in order."""

    cell: int
    sliders: tuple[str, ...]


def slider_cells(path: Path) -> list[SliderCell]:
    """Every code cell calling `widgets.show(...)`, with its `name=widgets.slider(...)` keywords."""
    found = []
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type != "code" or "widgets.show(" not in cell.source:
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "show":
                names = tuple(k.arg for k in node.keywords if isinstance(k.value, ast.Call)
                              and isinstance(k.value.func, ast.Attribute) and k.value.func.attr == "slider")
                found.append(SliderCell(index, names))
    return found


LESSONS = [path for path in course.find_notebooks() if slider_cells(path)]


def browser_or_skip() -> tuple[str, Any]:
    """Chromium's path and Playwright's `sync_playwright`; skips (fails in CI) when either is missing."""
    problems = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        problems.append("Playwright is not installed (`pip install playwright`, part of `make setup`)")
    chromium = os.environ.get("FACELAB_CHROMIUM") or shutil.which("chromium")
    if not chromium:
        problems.append("Chromium is not installed (Debian: `apt-get install chromium`; or set FACELAB_CHROMIUM)")
    if problems:
        message = "browser tests need a browser: " + "; ".join(problems)
        if os.environ.get("CI"):
            pytest.fail(message + " (CI: .ci/run installs both)")
        pytest.skip(message)
    return chromium, sync_playwright


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


def lab_config(home: Path) -> dict[str, str]:
    """An isolated Jupyter config/settings/workspace/runtime home, quiet and offline; its environment."""
    config, settings = home / "config", home / "settings"
    (config / "labconfig").mkdir(parents=True)
    (config / "jupyter_server_config.json").write_text(json.dumps({
        "ServerApp": {"terminals_enabled": False, "shutdown_no_activity_timeout": 900},
        "LabApp": {"expose_app_in_browser": True, "news_url": None, "extension_manager": "readonly",
                   "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate"},
    }))
    (config / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    tracker = settings / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "IPYTHONDIR": str(home / "ipython")}
    env.pop("MPLBACKEND", None)  # a student's kernel draws with the inline backend, not Agg
    return env


def stop(process: subprocess.Popen, lab: Lab) -> None:
    """Shut the server down (kernels first, through its API), then its process group if it lingers."""
    try:
        request = urllib.request.Request(f"{lab.url}api/shutdown?token={lab.token}", method="POST")
        urllib.request.urlopen(request, timeout=10).close()
    except OSError:
        pass
    try:
        process.wait(timeout=30)
        return
    except subprocess.TimeoutExpired:
        pass
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue


@pytest.fixture(scope="module")
def chromium() -> tuple[str, Any]:
    return browser_or_skip()


@pytest.fixture(scope="module")
def lab(chromium, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on a free loopback port, serving a temporary folder; always shut down."""
    home = tmp_path_factory.mktemp("jupyter")
    root = home / "notebooks"
    root.mkdir()
    port, token = free_port(), secrets.token_hex(16)
    lab = Lab(f"http://127.0.0.1:{port}/", token, root, home / "jupyterlab.log")
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--port-retries=0", "--allow-root", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    with lab.log.open("w") as log:
        process = subprocess.Popen(command, cwd=root, env=lab_config(home), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with {process.returncode}:\n{lab.log_tail()}")
            try:
                with urllib.request.urlopen(f"{lab.url}api/status?token={token}", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within {SERVER_START_TIMEOUT} s:\n{lab.log_tail()}")
            time.sleep(0.5)
        yield lab
    finally:
        stop(process, lab)


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless system Chromium with a fresh profile, driven by Playwright."""
    executable, sync_playwright = chromium
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000}, timeout=PAGE_TIMEOUT)
        try:
            context.set_default_timeout(PAGE_TIMEOUT)
            yield context
        finally:
            context.close()


def smoke_copy(path: Path, folder: Path, data_root: Path, last_cell: int | None = None) -> Path:
    """`path` copied into `folder` with its parameters cell set to smoke sizes and live sliders.

    `last_cell`: the copy ends with that cell (None: every cell).
    """
    notebook = nbformat.read(path, as_version=4)
    if last_cell is not None:
        notebook.cells = notebook.cells[:last_cell + 1]
    cell = next((c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])), None)
    assert cell is not None, f"{path.name}: no cell is tagged parameters"
    assert notebook.metadata.get("kernelspec", {}).get("name") == course.KERNEL
    work = folder / f"{path.stem}-work"
    overrides = {"SMOKE": True, "INTERACTIVE": True, "DATA_ROOT": str(data_root),
                 "RUN_DIR": str(work / "runs"), "OUTPUT": str(work / "results")}
    lines = cell.source.splitlines()
    declared = set()
    for node in reversed(ast.parse(cell.source).body):
        name = node.targets[0].id if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) else None
        if name in overrides:
            lines[node.lineno - 1:node.end_lineno] = [f"{name} = {overrides[name]!r}  # set by tests/test_browser.py"]
            declared.add(name)
    assert {"SMOKE", "INTERACTIVE"} <= declared, f"{path.name}'s parameters cell lacks SMOKE or INTERACTIVE"
    cell.source = "\n".join(lines)
    target = folder / path.name
    nbformat.write(notebook, target)
    return target


NOTEBOOK_STATE = """(path) => {
  const panel = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && w.context.path === path);
  if (!panel || !panel.context.isReady || !panel.sessionContext.session) return null;
  const kernel = panel.sessionContext.session.kernel;
  const state = {kernel: kernel ? kernel.status : 'none', pending: 0, running: 0, errors: [], stopped_after: null};
  panel.content.widgets.forEach((cell, index) => {
    if (cell.model.type !== 'code' || !cell.model.sharedModel.getSource().trim()) return;
    const outputs = cell.model.outputs.toJSON();
    if (cell.model.executionCount === null) state.pending += 1;
    else state.stopped_after = {cell: index, outputs: outputs.map(o => o.text || '').join('').slice(-1000)};
    if (cell.model.executionState === 'running') state.running += 1;
    for (const out of outputs)
      if (out.output_type === 'error') state.errors.push(`${out.ename}: ${out.evalue}`);
  });
  return state;
}"""

RUN_ALL = """async (path) => {
  const app = window.jupyterapp;
  const panel = Array.from(app.shell.widgets('main')).find(w => w.context && w.context.path === path);
  app.shell.activateById(panel.id);
  await panel.sessionContext.ready;
  // not awaited: the command resolves only once every cell ran; run_all polls, with a time limit
  app.commands.execute('notebook:run-all-cells').catch(error => console.error(error));
}"""

SHUTDOWN_KERNEL = """async (path) => {
  const panel = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && w.context.path === path);
  if (panel) await panel.sessionContext.shutdown();
}"""


def wait_for(page: Any, what: str, timeout: float, check, interval: float = 1.0) -> Any:
    """Poll `check()` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        page.wait_for_timeout(interval * 1000)


def run_all(page: Any, name: str) -> None:
    """Run every cell; fail on the first error output, return once every code cell ran and the kernel idles."""
    wait_for(page, f"{name} to open with a kernel", PAGE_TIMEOUT / 1000,
             lambda: (page.evaluate(NOTEBOOK_STATE, name) or {}).get("kernel") == "idle")
    page.evaluate(RUN_ALL, name)

    idle_polls = []

    def done() -> bool:
        state = page.evaluate(NOTEBOOK_STATE, name)
        if state["errors"]:
            pytest.fail(f"{name} raised in JupyterLab: {'; '.join(state['errors'])}")
        idle = state["kernel"] == "idle" and not state["running"]
        if idle and state["pending"]:  # the kernel stopped short of the last cell (an abort, a UsageError...)
            idle_polls.append(state)
            if len(idle_polls) >= 3:
                last = state["stopped_after"] or {}
                pytest.fail(f"{name} stopped with {state['pending']} cells not run, after cell {last.get('cell')}, "
                            f"whose output ends: {last.get('outputs', '')!r}")
        else:
            idle_polls.clear()
        return idle and not state["pending"]

    wait_for(page, f"every cell of {name} to run", RUN_ALL_TIMEOUT, done, interval=2.0)


def assert_widgets_render(page: Any) -> None:
    """No widget failed to display, and none fell back to its plain-text repr."""
    notebook = page.locator(".jp-NotebookPanel:visible .jp-Notebook")
    if "Error displaying widget" in notebook.inner_text():
        pytest.fail("a widget failed to display: 'Error displaying widget' in the notebook")
    for pre in page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output pre").all_inner_texts():
        text = pre.strip()
        if text.startswith(PLAIN_TEXT_WIDGETS):
            pytest.fail(f"a widget is shown as plain text (is the widget front end missing?): {text[:200]!r}")
        if text.startswith("<Figure size"):
            pytest.fail(f"a figure is shown as plain text, {text[:60]!r}: the kernel's matplotlib backend is not "
                        "inline when it is drawn (did an import call matplotlib.use('Agg')?)")


def figure_sources(panel: Any) -> list[str]:
    return [img.get_attribute("src") or "" for img in panel.locator(".widget-output img").all()]


def move_slider(page: Any, panel: Any, name: str, where: str) -> str:
    """Move slider `name` one step with the keyboard; wait for its figure to be redrawn; its new readout."""
    slider = panel.locator(".widget-slider").filter(has=page.locator(".widget-label", has_text=name)).first
    handle, readout = slider.locator(".noUi-handle").first, slider.locator(".widget-readout").first
    before_value, before_figure = readout.inner_text(), figure_sources(panel)
    assert before_figure and all(before_figure), f"{where}: no figure under the sliders before moving {name}"
    at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
    handle.focus()
    handle.press("ArrowLeft" if at_max else "ArrowRight")
    wait_for(page, f"{where}: slider {name} to move from {before_value}", 30,
             lambda: readout.inner_text() != before_value, interval=0.2)

    def redrawn() -> bool:
        errors = panel.locator(".widget-output [data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
        if any("Error" in e or "Traceback" in e for e in errors):
            pytest.fail(f"{where}: moving {name} raised:\n{errors[-1][-2000:]}")
        figure = figure_sources(panel)
        return bool(figure) and all(figure) and figure != before_figure

    wait_for(page, f"{where}: the figure under {name} to change ({before_value} -> {readout.inner_text()})",
             REDRAW_TIMEOUT, redrawn, interval=0.5)
    return readout.inner_text()


@pytest.mark.slow
@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_sliders_render_and_redraw(path: Path, browser, lab: Lab, data_root: Path, tmp_path: Path) -> None:
    expected = slider_cells(path)
    notebook = smoke_copy(path, lab.root, data_root, expected[-1].cell if QUICK else None)
    page = browser.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    start = time.monotonic()
    try:
        page.goto(f"{lab.url}lab/workspaces/{path.stem}/tree/{notebook.name}?token={lab.token}")
        page.locator(".jp-NotebookPanel:visible .jp-Notebook").wait_for()
        run_all(page, notebook.name)
        ran = time.monotonic() - start
        assert_widgets_render(page)
        panels = page.locator(".jp-NotebookPanel:visible .widget-interact")
        assert panels.count() == len(expected), (
            f"{len(expected)} widgets.show(...) cells but {panels.count()} slider panels rendered")
        moved = {}
        for index, cell in enumerate(expected):
            panel = panels.nth(index)
            panel.scroll_into_view_if_needed()
            labels = panel.locator(".widget-slider .widget-label").all_inner_texts()
            assert labels == list(cell.sliders), f"cell {cell.cell}: sliders {labels}, expected {list(cell.sliders)}"
            for name in cell.sliders:
                moved[name] = move_slider(page, panel, name, f"{path.stem} cell {cell.cell}")
            panel.screenshot(path=str(tmp_path / f"{path.stem}-sliders-{index}.png"))
        assert_widgets_render(page)
        cells = f"cells 0-{expected[-1].cell}" if QUICK else "every cell"
        moving = time.monotonic() - start - ran
        print(f"{path.stem}: opened and ran {cells} in {ran:.0f} s, moved {moved} in {moving:.0f} s")
    except BaseException:
        try:
            page.screenshot(path=str(tmp_path / f"{path.stem}-failure.png"))
        except Exception as error:  # noqa: BLE001 - the screenshot must not hide the failure
            print(f"no failure screenshot: {error}")
        print(f"page errors: {page_errors}\nJupyterLab log:\n{lab.log_tail()}")
        raise
    finally:
        try:
            page.evaluate(SHUTDOWN_KERNEL, notebook.name)
        except Exception as error:  # noqa: BLE001 - the server's shutdown stops any kernel left
            print(f"kernel of {notebook.name} not shut down here: {error}")
        page.close()
