"""Dependencies: ranges in pyproject.toml (a library must live beside a user's torch), exact pins in constraints.txt,
and every set-up path (make setup, environment.yml, Binder) installing through those pins."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def requirements(*groups: str) -> list[Requirement]:
    """The requirements of the core dependencies ("") and of the named extras, facelab's own extras left out."""
    texts = [text for group in groups
             for text in (PROJECT["dependencies"] if group == "" else PROJECT["optional-dependencies"][group])]
    return [req for req in map(Requirement, texts) if canonicalize_name(req.name) != "facelab"]


def pins() -> dict[str, Version]:
    """constraints.txt as {canonical name: pinned version}; each line must be exactly `name==version`."""
    found = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][0-9A-Za-z.+!-]*)", line.strip())
            assert match, f"constraints.txt: {line!r} is not name==version"
            name = canonicalize_name(match[1])
            assert name not in found, f"constraints.txt pins {name} twice"
            found[name] = Version(match[2])
    return found


def test_no_dependency_is_pinned_exactly() -> None:
    for req in requirements("", *PROJECT["optional-dependencies"]):
        assert req.specifier, f"{req.name} has no version range"
        assert not any(spec.operator in ("==", "===") for spec in req.specifier), f"{req} pins one version"


def test_the_constraints_pin_every_dependency_inside_its_range() -> None:
    pinned = pins()
    for req in requirements("", *PROJECT["optional-dependencies"]):
        name = canonicalize_name(req.name)
        assert name in pinned, f"constraints.txt does not pin {req.name}"
        assert req.specifier.contains(pinned[name], prereleases=True), f"{req.name}=={pinned[name]} is outside {req}"
    assert "facelab" not in pinned


def test_the_course_extra_brings_the_second_judge_and_the_extra_codecs() -> None:
    course = PROJECT["optional-dependencies"]["course"]
    assert any(Requirement(text).name == "facelab" and {"judge", "codecs"} <= Requirement(text).extras
               for text in course)
    assert {req.name for req in requirements("judge")} == {"dlib-bin", "face-recognition-models"}
    assert {req.name for req in requirements("codecs")} == {"pillow-heif", "pillow-jxl-plugin"}


@pytest.mark.parametrize(("path", "line"), [
    ("Makefile", 'pip install --quiet -c constraints.txt -e ".[course,test]"'),
    ("environment.yml", "- -c constraints.txt"),
    ("binder/requirements.txt", "-c ../constraints.txt"),
])
def test_every_set_up_path_installs_through_the_constraints(path: str, line: str) -> None:
    assert line in (REPO / path).read_text()


def test_binders_cpu_torch_is_the_pinned_one() -> None:
    binder = (REPO / "binder/requirements.txt").read_text()
    found = re.findall(r"^(torch|torchvision)==(\S+)\+cpu$", binder, flags=re.M)
    cpu = {name: Version(version) for name, version in found}
    pinned = pins()
    assert cpu == {name: pinned[name] for name in ("torch", "torchvision")}
