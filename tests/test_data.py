"""facelab.data: layouts, counts on the real data, splits, caches, downloads, and every kind of bad input."""

from __future__ import annotations

import hashlib
import io
import warnings
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from facelab import data
from facelab.data import align, celeba, natural, registry
from facelab.data.files import probe_image, read_rgb
from facelab.errors import DatasetError
from facelab.faces import Detection


def write_image(path: Path, size: tuple[int, int] = (64, 48), mode: str = "RGB", seed: int = 0,
                value: int | None = None, fmt: str | None = None) -> Path:
    """A noise (or constant `value`) image of size (w, h) in `mode`, saved at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "L": 1}[mode]
    rng = np.random.default_rng(seed)
    pixels = (np.full((size[1], size[0], channels), value, np.uint8) if value is not None
              else rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8))
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path, format=fmt)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to a fraction of its bytes, as an interrupted copy would."""
    content = path.read_bytes()
    path.write_bytes(content[: int(len(content) * keep)])
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private facelab cache, so cached detections from other runs cannot leak in."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("FACELAB_CACHE", str(folder))
    return folder


# --- the registry and downloads ---------------------------------------------------------------

def test_registry_lists_layouts_terms_and_checksummed_official_files() -> None:
    assert set(data.REGISTRY) == {"clic2020", "natural", "celeba", "lfw"}
    for info in data.REGISTRY.values():
        assert info.layouts and info.terms and info.homepage.startswith("http") and info.how_to_get
        assert info.checksums
        for official in info.files:
            assert official.sha256 or official.md5 or official.manifest or official.image_size, official.filename
    assert [f.filename for f in data.REGISTRY["clic2020"].files] == [
        "professional_train_2020.zip", "mobile_train_2020.zip", "professional_valid_2020.zip", "mobile_valid_2020.zip"]
    assert data.REGISTRY["lfw"].files[1].md5 == "9f1ba174e4e1c508ff7cdf10ac338a7d"


@pytest.mark.parametrize("name, words", [("lfw", ["umass-vis-lfw.github.io", "lfw-deepfunneled.zip", "/lfw/pairs.txt"]),
                                         ("celeba", ["mmlab", "quota", "img_align_celeba.zip", "identity_CelebA.txt"]),
                                         ("natural", ["r0k.us", "natural/kodak", "download kodak"])])
def test_each_dataset_says_how_to_download_it_or_fetch_it_by_hand(name: str, words: list[str]) -> None:
    how_to_get = data.dataset_info(name).how_to_get
    assert f"facelab data download {'kodak' if name == 'natural' else name}" in how_to_get
    for word in words:
        assert word in how_to_get


def test_download_of_an_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="lfw, kodak, celeba, clic2020, course"):
        data.download("imagenet", tmp_path)


def fake_zip_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, members: dict[str, bytes],
                     sha256: str | None = None) -> Path:
    """Register a 'clic2020' whose single official file is a local zip of `members` (file:// URL)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, content in members.items():
            bundle.writestr(name, content)
    source = tmp_path / "server" / "professional_train_2020.zip"
    source.parent.mkdir()
    source.write_bytes(buffer.getvalue())
    official = registry.OfficialFile(source.name, source.as_uri(), len(buffer.getvalue()),
                                     sha256 or hashlib.sha256(buffer.getvalue()).hexdigest(),
                                     unpack_to="clic2020/professional/train")
    info = replace(registry.REGISTRY["clic2020"], files=(official,))
    monkeypatch.setitem(registry.REGISTRY, "clic2020", info)
    return tmp_path / "root"


def test_download_verifies_the_checksum_then_unpacks_into_the_clic_layout(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    png = io.BytesIO()
    Image.new("RGB", (300, 300), "gray").save(png, format="PNG")
    root = fake_zip_dataset(tmp_path, monkeypatch, {"train/a.png": png.getvalue(), "train/b.png": png.getvalue()})
    assert data.download("clic2020", root, progress=False) == root / "clic2020"
    assert sorted(p.name for p in (root / "clic2020" / "professional" / "train").iterdir()) == ["a.png", "b.png"]
    assert not (root / "downloads" / "professional_train_2020.zip").exists()
    assert data.NaturalImages(root, crop=64).describe()["dataset"] == "clic2020"


def test_download_with_a_wrong_checksum_keeps_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_zip_dataset(tmp_path, monkeypatch, {"train/a.png": b"x"}, sha256="0" * 64)
    with pytest.raises(DatasetError, match="SHA256 .* instead of 0000"):
        data.download("clic2020", root, progress=False)
    assert not any((root / "downloads").iterdir())
    assert not (root / "clic2020").exists()


def test_download_refuses_a_zip_that_writes_outside_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_zip_dataset(tmp_path, monkeypatch, {"../../escaped.png": b"x"})
    with pytest.raises(DatasetError, match="outside"):
        data.download("clic2020", root, progress=False)
    assert not (tmp_path / "escaped.png").exists() and not (root / "escaped.png").exists()


def test_download_from_an_unreachable_address_says_where_to_put_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_zip_dataset(tmp_path, monkeypatch, {"train/a.png": b"x"})
    (tmp_path / "server" / "professional_train_2020.zip").unlink()
    with pytest.raises(DatasetError, match="no answer from the server .* put it at .*downloads/professional_train_2020.zip"):
        data.download("clic2020", root, progress=False)


# --- the data root --------------------------------------------------------------------------

def test_the_data_root_comes_from_the_argument_then_facelab_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_image(tmp_path / "env" / "lfw" / "Ann_Lee" / "Ann_Lee_0001.jpg", fmt="JPEG")
    write_image(tmp_path / "arg" / "lfw" / "Bo_Ng" / "Bo_Ng_0001.jpg", fmt="JPEG")
    monkeypatch.setenv("FACELAB_DATA", str(tmp_path / "env"))
    assert data.LFWImages().people == ["Ann_Lee"]
    assert data.LFWImages(tmp_path / "arg").people == ["Bo_Ng"]


# --- natural images (CLIC or natural/) -----------------------------------------------------------

@pytest.mark.data
def test_natural_images_fall_back_to_natural_and_say_so(data_root: Path, readme_count) -> None:
    train = data.NaturalImages(data_root, split="train", crop=128)
    val = data.NaturalImages(data_root, split="val", crop=128)
    assert train.describe()["dataset"] == "natural" and "CLIC 2020 not found" in train.describe()["source"]
    kodak, photos = readme_count("natural/kodak/", "images"), readme_count("natural/photos/", "images")
    held_out = kodak // natural.KODAK_VAL_EVERY
    training = photos + kodak - held_out
    assert (len(train.paths), len(train), len(val)) == (training, training * natural.NATURAL_CROPS_PER_IMAGE, held_out)
    assert [p.name for p in val.paths] == [f"kodim{n:02d}.png" for n in range(4, kodak + 1, natural.KODAK_VAL_EVERY)]
    assert not set(val.paths) & set(train.paths) and "held out of training" in val.describe()["source"]
    crop = train[0]
    assert crop.shape == (3, 128, 128) and crop.dtype == torch.float32 and 0 <= crop.min() <= crop.max() <= 1
    assert torch.equal(val[3], val[3])


def test_random_crops_follow_torch_seed(tmp_path: Path) -> None:
    write_image(tmp_path / "natural" / "kodak" / "kodim01.png", (200, 150))
    train = data.NaturalImages(tmp_path, crop=32)
    torch.manual_seed(5)
    first = [train[i] for i in range(4)]
    torch.manual_seed(5)
    assert all(torch.equal(a, train[i]) for i, a in enumerate(first))
    assert not torch.equal(first[0], first[1])


@pytest.mark.parametrize("layout", [
    {"professional/train": 3, "mobile/train": 2, "professional/valid": 1, "mobile/valid": 1},
    {"train": 5, "valid": 2},
    {"professional_train_2020/train": 3, "mobile_train_2020/train": 2, "professional_valid_2020/valid": 2,
     "CLIC2020Professional_test/test": 4},
])
def test_clic_layouts_are_found_and_preferred_to_natural(tmp_path: Path, layout: dict[str, int]) -> None:
    for folder, count in layout.items():
        for i in range(count):
            write_image(tmp_path / "clic2020" / folder / f"{i}.png", (80, 80), seed=i)
    write_image(tmp_path / "natural" / "kodak" / "kodim01.png", (80, 80))
    train, val = data.NaturalImages(tmp_path, crop=64), data.NaturalImages(tmp_path, "val", crop=64)
    assert train.describe()["dataset"] == "clic2020"
    assert (len(train), len(val)) == (5, 2)
    used = [str(p.relative_to(tmp_path)) for p in train.paths + val.paths]
    assert all("kodim" not in p and "test" not in p for p in used)


def test_clic_without_valid_images_validates_on_kodak_or_says_it_cannot(tmp_path: Path) -> None:
    write_image(tmp_path / "clic2020" / "train" / "a.png", (80, 80))
    assert len(data.NaturalImages(tmp_path, "train", crop=64)) == 1
    with pytest.raises(DatasetError, match="no val images in .*clic2020 .*natural/kodak"):
        data.NaturalImages(tmp_path, "val", crop=64)
    write_image(tmp_path / "natural" / "kodak" / "kodim01.png", (80, 80))
    val = data.NaturalImages(tmp_path, "val", crop=64)
    assert [p.name for p in val.paths] == ["kodim01.png"] and "natural/kodak" in val.describe()["source"]


def test_no_natural_images_at_all_says_what_to_download(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="neither CLIC 2020 nor the natural/ fallback.*professional,mobile"):
        data.NaturalImages(tmp_path)
    (tmp_path / "natural" / "photos").mkdir(parents=True)
    with pytest.raises(DatasetError, match="neither CLIC"):
        data.NaturalImages(tmp_path)


def test_broken_small_and_grayscale_natural_images_are_counted(tmp_path: Path) -> None:
    photos = tmp_path / "natural" / "photos"
    write_image(tmp_path / "natural" / "kodak" / "kodim01.png", (100, 100))
    write_image(photos / "good.png", (100, 100))
    write_image(photos / "gray.png", (100, 100), mode="L")
    write_image(photos / "small.png", (40, 100))
    truncate(write_image(photos / "cut.png", (100, 100)))
    (photos / "text.png").write_text("not an image")
    train = data.NaturalImages(tmp_path, crop=64)
    summary = train.describe()
    assert sorted(p.name for p in train.paths) == ["good.png", "gray.png", "kodim01.png"]
    assert (summary["skipped"], summary["grayscale_as_rgb"]) == (3, 1)
    assert train.scan.skipped[str(photos / "small.png")] == "smaller than the 64-px crop"
    assert train.scan.skipped[str(photos / "cut.png")] == "truncated"
    assert train.scan.skipped[str(photos / "text.png")] == "not an image"
    gray = train[[p.name for p in train.paths].index("gray.png")]
    assert gray.shape == (3, 64, 64) and torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def test_a_file_that_breaks_after_the_scan_raises_a_clear_dataset_error(tmp_path: Path) -> None:
    write_image(tmp_path / "natural" / "kodak" / "kodim01.png", (100, 100))
    val = data.NaturalImages(tmp_path, "val", crop=64)
    (tmp_path / "natural" / "kodak" / "kodim01.png").write_bytes(b"gone bad")
    with pytest.raises(DatasetError, match="kodim01.png.*facelab data check"):
        next(iter(DataLoader(val, batch_size=1)))


def test_probe_keeps_a_jpeg_with_bytes_after_its_end_marker(tmp_path: Path) -> None:
    path = write_image(tmp_path / "a.jpg", fmt="JPEG")
    path.write_bytes(path.read_bytes() + b"camera trailer")
    assert probe_image(path) == (None, False)
    assert probe_image(truncate(write_image(tmp_path / "b.jpg", fmt="JPEG"))) == ("truncated", False)
    with pytest.raises(DatasetError, match="b.jpg"):
        read_rgb(tmp_path / "b.jpg")


# --- CelebA -----------------------------------------------------------------------------------

def fake_detect(crop_has_face: bool = True, calls: list[int] | None = None):
    """A stand-in for facelab.faces.detect_faces: dark images have no face; others have one where
    CELEBA_TEMPLATE scaled to the image says (so in-the-wild images align to their whole frame)."""
    def detect(images, device=None, batch_size=32, progress=False):
        if calls is not None:
            calls.append(len(images))
        found = []
        for image in images:
            height, width = image.shape[:2]
            is_crop = (height, width) == align.CELEBA_SIZE and not crop_has_face
            if image.mean() < 10 or is_crop:
                found.append(None)
                continue
            scale = width / 178
            found.append(Detection(box=np.array([48, 68, 130, 180], np.float32) * scale, prob=0.99,
                                   landmarks=(align.CELEBA_TEMPLATE * scale).astype(np.float32)))
        return found
    return detect


def fake_celeba(root: Path, folder: str, names: list[str], size: tuple[int, int], identities: bool = True) -> Path:
    images = root / "celeba" / folder
    for number, name in enumerate(names):
        write_image(images / name, size, seed=number, fmt="JPEG")
    if identities:
        (root / "celeba" / "identity_CelebA.txt").write_text(
            "".join(f"{name} {100 + number // 2}\n" for number, name in enumerate(names)))
    return images


def test_aligned_celeba_items_boxes_resizing_and_face_filter(tmp_path: Path, cache: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"{i:06d}.jpg" for i in range(1, 7)]
    images = fake_celeba(tmp_path, "img_align_celeba", names, (178, 218))
    write_image(images / "000003.jpg", (178, 218), value=0, fmt="JPEG")
    monkeypatch.setattr("facelab.faces.detect_faces", fake_detect())
    faces = data.CelebAFaces(tmp_path, split="all", progress=False)
    assert len(faces) == 5 and faces.counts()["no_face"] == 1
    item = faces[0]
    assert set(item) == {"image", "box", "identity", "path", "source"}
    assert item["image"].shape == (3, 218, 178) and item["identity"] == 100
    assert item["box"].tolist() == [48, 68, 130, 180] and item["path"].endswith("000001.jpg")
    small = data.CelebAFaces(tmp_path, split="all", size=(109, 89), progress=False)[0]
    assert small["image"].shape == (3, 109, 89)
    assert small["box"].tolist() == pytest.approx([24, 34, 65, 90])
    batch = next(iter(DataLoader(faces, batch_size=4)))
    assert batch["image"].shape == (4, 3, 218, 178) and batch["box"].shape == (4, 4)


def test_celeba_detections_are_cached_and_a_changed_file_is_detected_again(tmp_path: Path, cache: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"{i:06d}.jpg" for i in range(1, 5)]
    images = fake_celeba(tmp_path, "img_align_celeba", names, (178, 218))
    calls: list[int] = []
    monkeypatch.setattr("facelab.faces.detect_faces", fake_detect(calls=calls))
    data.CelebAFaces(tmp_path, split="all", progress=False)
    assert calls == [4]
    data.CelebAFaces(tmp_path, split="all", progress=False)
    assert calls == [4]
    write_image(images / "000002.jpg", (178, 218), value=0, fmt="JPEG")
    faces = data.CelebAFaces(tmp_path, split="all", progress=False)
    assert calls == [4, 1] and len(faces) == 3
    assert list(cache.glob("celeba/img_align_celeba-*/detections.json"))
    celeba_status = next(s for s in data.check(tmp_path, progress=False) if s.name == "celeba")
    assert "MTCNN results cached for 4 of 4 images (3 with a face)" in celeba_status.notes
    assert (celeba_status.images, celeba_status.identities) == (4, 2)


def test_unreadable_and_grayscale_celeba_images_are_counted(tmp_path: Path, cache: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"{i:06d}.jpg" for i in range(1, 5)]
    images = fake_celeba(tmp_path, "img_align_celeba", names, (178, 218))
    truncate(images / "000001.jpg")
    write_image(images / "000002.jpg", (178, 218), mode="L", fmt="JPEG")
    monkeypatch.setattr("facelab.faces.detect_faces", fake_detect())
    faces = data.CelebAFaces(tmp_path, split="all", progress=False)
    assert faces.counts() == {"candidates": 4, "faces": 3, "unreadable": 1, "no_face": 0, "grayscale_as_rgb": 1}
    assert "000001.jpg" in next(iter(faces.describe()["skipped_examples"]))


def test_in_the_wild_celeba_is_aligned_to_cached_178x218_crops(tmp_path: Path, cache: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"{i:06d}.jpg" for i in range(1, 4)]
    fake_celeba(tmp_path, "img_celeba", names, (356, 436))
    monkeypatch.setattr("facelab.faces.detect_faces", fake_detect())
    faces = data.CelebAFaces(tmp_path, split="all", progress=False)
    crops = sorted(p.name for p in cache.glob("celeba/img_celeba-*/*.png"))
    assert crops == ["000001.png", "000002.png", "000003.png"] and len(faces) == 3
    item = faces[1]
    assert item["image"].shape == (3, 218, 178) and item["source"].endswith("img_celeba/000002.jpg")
    whole = np.asarray(Image.open(tmp_path / "celeba" / "img_celeba" / "000002.jpg").convert("RGB").resize((178, 218)))
    assert np.abs(item["image"].permute(1, 2, 0).numpy() * 255 - whole).mean() < 40
    monkeypatch.setattr("facelab.faces.detect_faces", fake_detect(crop_has_face=False))
    (cache / "celeba").rename(cache / "old")
    with pytest.raises(DatasetError, match="no usable face among the 3"):
        data.CelebAFaces(tmp_path, split="all", progress=False)


def test_celeba_split_is_by_identity_and_deterministic(tmp_path: Path) -> None:
    files = [tmp_path / f"{i:06d}.jpg" for i in range(1, 61)]
    identities = {path.name: i // 3 for i, path in enumerate(files)}
    train, val = (celeba.split_files(files, identities, split) for split in ("train", "val"))
    val_ids = {identities[p.name] for p in val}
    assert val_ids == {9, 19} and not val_ids & {identities[p.name] for p in train}
    assert len(train) + len(val) == 60 and celeba.split_files(files, identities, "all") == files
    no_ids = celeba.split_files(files, {}, "val")
    assert [p.name for p in no_ids] == [f"{i:06d}.jpg" for i in range(10, 61, 10)]
    with pytest.raises(ValueError, match="split"):
        celeba.split_files(files, identities, "test")


def test_missing_or_empty_celeba_and_bad_identity_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no img_align_celeba/ or img_celeba/.*mmlab.*img_align_celeba.zip"):
        data.CelebAFaces(tmp_path)
    (tmp_path / "celeba" / "img_celeba").mkdir(parents=True)
    with pytest.raises(DatasetError, match="img_celeba holds no images"):
        data.CelebAFaces(tmp_path)
    bad = tmp_path / "identity_CelebA.txt"
    bad.write_text("000001.jpg 12\n000002.jpg twelve\n")
    with pytest.raises(DatasetError, match=r"identity_CelebA.txt:2: expected 'file identity'"):
        data.read_identities(bad)


def test_similarity_fit_recovers_a_known_transform() -> None:
    angle, scale, shift = 0.3, 0.4, np.array([12.0, -7.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = np.random.default_rng(0).uniform(0, 500, (5, 2))
    fitted = align.fit_similarity(source, source @ (scale * rotation).T + shift)
    assert fitted == pytest.approx(np.hstack([scale * rotation, shift[:, None]]))
    assert align.similarity_scale(fitted) == pytest.approx(scale)


@pytest.mark.data
def test_real_in_the_wild_celeba_faces_are_aligned_like_celeba(data_root: Path, cache: Path) -> None:
    faces = data.CelebAFaces(data_root, split="val", max_images=2, device="cpu", progress=False)
    identities = data.read_identities(data_root / "celeba" / "identity_CelebA.txt")
    assert len(faces) == 2
    for index in range(2):
        item = faces[index]
        x1, y1, x2, y2 = item["box"].tolist()
        assert item["image"].shape == (3, 218, 178)
        assert 0.38 < (x2 - x1) / 178 < 0.55 and 60 < (x1 + x2) / 2 < 118 and 90 < (y1 + y2) / 2 < 160
        assert item["identity"] == identities[Path(item["source"]).name]


# --- LFW --------------------------------------------------------------------------------------

@pytest.mark.data
def test_real_lfw_images_and_identities(data_root: Path) -> None:
    lfw = data.LFWImages(data_root)
    assert (len(lfw), len(lfw.people)) == (13233, 5749)
    assert lfw.describe()["source"].startswith("deep-funneled")
    item = data.LFWImages(data_root, limit=3)[2]
    assert item["image"].shape == (3, 250, 250) and item["name"] == "Aaron_Eckhart" and item["identity"] == 2
    assert data.LFWImages(data_root, limit=1, size=(112, 96))[0]["image"].shape == (3, 112, 96)


@pytest.mark.data
def test_real_lfw_pairs_are_view_2(data_root: Path) -> None:
    pairs = data.read_pairs(data_root)
    assert len(pairs) == 6000 and sum(p.same for p in pairs) == 3000
    assert [sum(p.fold == fold for p in pairs) for fold in range(10)] == [600] * 10
    assert all(p.same for p in pairs[:300]) and not any(p.same for p in pairs[300:600])
    first = pairs[0]
    assert (first.name1, first.number1, first.number2) == ("Abel_Pacheco", 1, 4)
    assert first.path2.name == "Abel_Pacheco_0004.jpg" and first.path2.is_file()


@pytest.mark.parametrize("folder, variant", [("lfw/lfw-deepfunneled", "deep-funneled"),
                                             ("lfw/lfw-deepfunneled/lfw-deepfunneled", "deep-funneled (Kaggle"),
                                             ("lfw", "plain layout")])
def test_lfw_layouts(tmp_path: Path, folder: str, variant: str) -> None:
    for name in ("Ann_Lee", "Bo_Ng"):
        write_image(tmp_path / folder / name / f"{name}_0001.jpg", (250, 250), fmt="JPEG")
    lfw = data.LFWImages(tmp_path)
    assert lfw.people == ["Ann_Lee", "Bo_Ng"] and lfw.layout.variant.startswith(variant)


def test_missing_or_empty_lfw_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist.*umass-vis-lfw.*<data root>/lfw/pairs.txt"):
        data.LFWImages(tmp_path)
    (tmp_path / "lfw" / "lfw-deepfunneled" / "Ann_Lee").mkdir(parents=True)
    with pytest.raises(DatasetError, match="has no <Name>/<Name>_NNNN.jpg folders"):
        data.read_pairs(tmp_path)


def test_broken_lfw_files_are_skipped_and_counted(tmp_path: Path) -> None:
    people = tmp_path / "lfw" / "lfw-deepfunneled"
    write_image(people / "Ann_Lee" / "Ann_Lee_0001.jpg", fmt="JPEG")
    truncate(write_image(people / "Ann_Lee" / "Ann_Lee_0002.jpg", fmt="JPEG"))
    write_image(people / "Bo_Ng" / "Bo_Ng_0001.jpg", mode="L", fmt="JPEG")
    lfw = data.LFWImages(tmp_path)
    assert len(lfw) == 2 and lfw.describe()["skipped"] == 1 and lfw.describe()["grayscale_as_rgb"] == 1


def fake_lfw_with_pairs(root: Path, pairs: str) -> Path:
    for name, count in (("Ann_Lee", 2), ("Bo_Ng", 1)):
        for number in range(1, count + 1):
            write_image(root / "lfw" / "lfw-deepfunneled" / name / f"{name}_{number:04d}.jpg", fmt="JPEG")
    (root / "lfw" / "pairs.txt").write_text(pairs)
    return root / "lfw" / "pairs.txt"


def test_pairs_files_are_parsed_into_folds_and_labels(tmp_path: Path) -> None:
    fake_lfw_with_pairs(tmp_path, "2\t1\nAnn_Lee\t1\t2\nAnn_Lee\t1\tBo_Ng\t1\nAnn_Lee\t2\t1\nBo_Ng\t1\tAnn_Lee\t2\n")
    pairs = data.read_pairs(tmp_path)
    assert [(p.fold, p.same) for p in pairs] == [(0, True), (0, False), (1, True), (1, False)]
    assert pairs[1].path2 == tmp_path / "lfw" / "lfw-deepfunneled" / "Bo_Ng" / "Bo_Ng_0001.jpg"


@pytest.mark.parametrize("content, message", [
    ("", "first line must be"),
    ("ten 300\n", "first line must be"),
    ("1 1\nAnn_Lee 1 2\nAnn_Lee 1\n", "line 3 is neither"),
    ("1 1\nAnn_Lee 1 two\nAnn_Lee 1 Bo_Ng 1\n", "line 2 is neither"),
    ("1 2\nAnn_Lee 1 2\nAnn_Lee 1 Bo_Ng 1\n", "2 pairs, but its first line promises 1 folds of 2 same"),
])
def test_malformed_pairs_files_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    fake_lfw_with_pairs(tmp_path, content)
    with pytest.raises(DatasetError, match=message):
        data.read_pairs(tmp_path)


def test_pairs_naming_missing_images_raise_or_are_skipped_and_counted(tmp_path: Path) -> None:
    fake_lfw_with_pairs(tmp_path, "1 2\nAnn_Lee 1 2\nAnn_Lee 1 3\nAnn_Lee 1 Bo_Ng 1\nCy_Ho 1 Bo_Ng 1\n")
    with pytest.raises(DatasetError, match="2 of 4 pairs name images missing .*Ann_Lee_0003.jpg.*missing='skip'"):
        data.read_pairs(tmp_path)
    with pytest.warns(UserWarning, match="2 of 4 pairs name images missing"):
        pairs = data.read_pairs(tmp_path, missing="skip")
    assert [(p.name1, p.name2) for p in pairs] == [("Ann_Lee", "Ann_Lee"), ("Ann_Lee", "Bo_Ng")]
    with pytest.raises(DatasetError, match="pairs file .*nope.txt not found"):
        data.read_pairs(tmp_path, path=tmp_path / "nope.txt")


# --- check ------------------------------------------------------------------------------------

@pytest.mark.data
def test_check_counts_the_real_data(data_root: Path, readme_count) -> None:
    statuses = {status.name: status for status in data.check(data_root, progress=False)}
    assert not statuses["clic2020"].found and "facelab data download clic2020" in statuses["clic2020"].missing[0]
    kodak, photos = readme_count("natural/kodak/", "images"), readme_count("natural/photos/", "images")
    assert statuses["natural"].images == kodak + photos
    assert f"kodak: {kodak} images (every 4th validates), photos: {photos} images" in statuses["natural"].notes
    aligned, wild = "celeba/img_align_celeba/", "celeba/img_celeba/"
    assert statuses["celeba"].location == data_root / aligned.rstrip("/")
    assert (statuses["celeba"].images, statuses["celeba"].identities) == (readme_count(aligned, "images"),
                                                                          readme_count(aligned, "identities"))
    assert (f"also img_celeba/: {readme_count(wild, 'images')} in-the-wild images, {readme_count(wild, 'identities')} "
            "identities (read with source='wild')") in statuses["celeba"].notes
    assert (statuses["lfw"].images, statuses["lfw"].identities) == (readme_count("lfw/lfw-deepfunneled/", "images"),
                                                                    readme_count("lfw/lfw-deepfunneled/", "people"))
    pairs = readme_count("lfw/pairs.txt", "pairs")
    text = data.format_check(list(statuses.values()))
    assert f"data root: {data_root}" in text
    assert f"pairs.txt: {pairs} pairs ({pairs // 2} same, {pairs // 2} different), MD5 matches the official file" in text
    assert "natural-image pretraining uses: natural/ fallback" in text
    assert "[missing] clic2020" in text and "[found]   lfw" in text
    assert not any(status.problems for status in statuses.values())


def test_check_of_an_empty_root_says_what_is_missing(tmp_path: Path) -> None:
    statuses = data.check(tmp_path, progress=False)
    assert [s.name for s in statuses] == ["clic2020", "natural", "celeba", "lfw"] and not any(s.found for s in statuses)
    text = data.format_check(statuses)
    assert text.count("[missing]") == 4 and "facelab data download lfw" in text and "img_align_celeba.zip" in text


def test_check_reports_problems_in_the_data(tmp_path: Path) -> None:
    fake_lfw_with_pairs(tmp_path, "1 1\nAnn_Lee 1 5\nAnn_Lee 1 Bo_Ng 1\n")
    (tmp_path / "lfw" / "lfw-deepfunneled" / "Dee_Oh").mkdir()
    truncate(tmp_path / "lfw" / "lfw-deepfunneled" / "Bo_Ng" / "Bo_Ng_0001.jpg")
    lfw = next(s for s in data.check(tmp_path, progress=False) if s.name == "lfw")
    assert (lfw.images, lfw.identities) == (2, 1)
    problems = " | ".join(lfw.problems)
    assert "1 unusable image file(s)" in problems and "1 empty person folder(s), e.g. Dee_Oh" in problems
    assert "1 pair(s) in pairs.txt name images that are missing" in problems
    assert "MD5" in " ".join(lfw.notes) and "not the official" in " ".join(lfw.notes)


def test_describe_handles_subsets_and_plain_datasets(tmp_path: Path) -> None:
    write_image(tmp_path / "natural" / "kodak" / "kodim01.png", (80, 80))
    val = data.NaturalImages(tmp_path, "val", crop=64)
    assert data.describe(torch.utils.data.Subset(val, [0]))["subset"] == 1
    assert data.describe(torch.utils.data.TensorDataset(torch.zeros(3))) == {"dataset": "TensorDataset", "items": 3}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert data.describe(val)["images"] == 1
