"""The datasets facelab knows: where they go under the data root, their official files and checksums, and their terms.

Every official file is checked before it is unpacked or used: by the size and hash its publisher (or a
loader that pins it) gives; for LFW's zip, whose hash is unpublished, by the SHA-256 of every file it
unpacks to (a packaged manifest); for the Kodak images, whose bytes facelab cannot pin, by decoding each
at its known size. Each DatasetInfo's `checksums` says which. `facelab data download` names: DOWNLOADS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facelab.errors import DatasetError


@dataclass(frozen=True)
class OfficialFile:
    """One file as its publisher distributes it, with what it is checked against."""

    filename: str
    url: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    unpack_to: str = ""
    """For an archive: the folder (under the data root) its single top folder, or its files, become; "" otherwise."""
    save_as: str = ""
    """For a plain file: where it goes, relative to the data root; "" for <dataset folder>/<filename>."""
    manifest: str = ""
    """For an archive without a published hash: the packaged manifest (facelab/data/manifests/) its files must match."""
    image_size: tuple[int, int] | None = None
    """For an image whose bytes cannot be pinned: the (width, height) it must decode to."""


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's name, accepted layouts under the data root, official files, terms, checks and how to get it."""

    name: str
    title: str
    folder: str
    layouts: tuple[str, ...]
    homepage: str
    terms: str
    files: tuple[OfficialFile, ...]
    checksums: str
    """What the download verifies, and against what."""
    how_to_get: str


CLIC_URL = "https://data.vision.ee.ethz.ch/cvl/clic"
LFW_URL = "https://umass-vis-lfw.github.io"
KODAK_URL = "https://r0k.us/graphics/kodak/kodak"
KODAK_PORTRAIT = (4, 9, 10, 17, 18, 19)
"""The Kodak images that stand upright (512x768); the others are 768x512."""
DRIVE_URL = "https://drive.google.com/uc?export=download&id="

REGISTRY: dict[str, DatasetInfo] = {
    "clic2020": DatasetInfo(
        name="clic2020",
        title="CLIC 2020 (professional + mobile)",
        folder="clic2020",
        layouts=(
            "clic2020/{professional,mobile}/{train,valid}/*.png (what `facelab data download clic2020` makes)",
            "clic2020/{train,valid}/*.png (the official zips unpacked into one folder)",
            "clic2020/<any folders>/*.png: a path part named *valid* means validation, *test* is ignored, "
            "anything else is training (e.g. clic2020/professional_train_2020/train/*.png)",
        ),
        homepage="https://www.compression.cc/",
        terms="CLIC 2020 challenge data (photographs from Unsplash); see https://www.compression.cc/ for the "
              "terms of use before redistributing any image",
        files=(
            OfficialFile("professional_train_2020.zip", f"{CLIC_URL}/professional_train_2020.zip", 2003385131,
                         "54a2a684b5cbd0db91770a8695efb774fed1f612194fee68bceaf6b1c48e5d5f",
                         unpack_to="clic2020/professional/train"),
            OfficialFile("mobile_train_2020.zip", f"{CLIC_URL}/mobile_train_2020.zip", 4042923971,
                         "4bf9d890e6785426fb41cb4f43df3d8cd6db25fafcc76fc1eb629141166d6529",
                         unpack_to="clic2020/mobile/train"),
            OfficialFile("professional_valid_2020.zip", f"{CLIC_URL}/professional_valid_2020.zip", 134834429,
                         "00be38092ade2ab5163b65f7f6523d46c7bca147007f559adbb02c0afc236b7d",
                         unpack_to="clic2020/professional/valid"),
            OfficialFile("mobile_valid_2020.zip", f"{CLIC_URL}/mobile_valid_2020.zip", 236556531,
                         "ff0280382eeb32fdceb28c81a7f47ac9ad86d933ebe901680845635d04e47a10",
                         unpack_to="clic2020/mobile/valid"),
        ),
        checksums="each zip's size and SHA-256, as pinned here, before it is unzipped",
        how_to_get=f"run `facelab data download clic2020` (6.4 GB, SHA-256 checked), or fetch "
                   f"{CLIC_URL}/{{professional,mobile}}_{{train,valid}}_2020.zip and unzip each into "
                   "<data root>/clic2020/{professional,mobile}/",
    ),
    "natural": DatasetInfo(
        name="natural",
        title="natural images (Kodak + photos; CLIC's fallback)",
        folder="natural",
        layouts=("natural/kodak/*.png (Kodak PhotoCD, 24 images: every 4th validates, the others train)",
                 "natural/photos/*.png (training, with random crops of the Kodak images too)"),
        homepage="https://r0k.us/graphics/kodak/",
        terms="Kodak images: released by Eastman Kodak for unrestricted use; photos: Wikimedia Commons and Debian "
              "wallpapers, each under its own licence (see natural/photos/SOURCES.md)",
        files=tuple(OfficialFile(f"kodim{n:02d}.png", f"{KODAK_URL}/kodim{n:02d}.png",
                                 save_as=f"natural/kodak/kodim{n:02d}.png",
                                 image_size=(512, 768) if n in KODAK_PORTRAIT else (768, 512))
                    for n in range(1, 25)),
        checksums="no hash: r0k.us publishes none, and the course's copies are re-encoded PNGs (their bytes differ "
                  "from r0k.us's), so each of the 24 images is checked to decode as an RGB PNG of its known size "
                  "(768x512, or 512x768 for the upright ones) before it is put in place",
        how_to_get="run `facelab data download kodak`, or fetch kodim01.png..kodim24.png from "
                   "https://r0k.us/graphics/kodak/ and put them in <data root>/natural/kodak/; natural/photos/ is "
                   "part of facelab's course data only (training then uses the Kodak images without it)",
    ),
    "celeba": DatasetInfo(
        name="celeba",
        title="CelebA faces (aligned 178x218, with identities)",
        folder="celeba",
        layouts=("celeba/img_align_celeba/*.jpg (the official aligned set; also img_align_celeba_png/*.png)",
                 "celeba/img_celeba/*.jpg (in-the-wild; facelab aligns them with MTCNN and caches the crops)",
                 "celeba/identity_CelebA.txt or celeba/Anno/identity_CelebA.txt (optional identities)"),
        homepage="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
        terms="CelebA: non-commercial research and educational use only; the images are not the property of "
              "CUHK and must not be redistributed (CelebA's agreement on its homepage)",
        files=(
            OfficialFile("img_align_celeba.zip", f"{DRIVE_URL}0B7EVK8r0v71pZjFTYXZWM3FlRnM",
                         md5="00d2c5bc6d35e252742224ab0c1e8fcb", unpack_to="celeba/img_align_celeba"),
            OfficialFile("identity_CelebA.txt", f"{DRIVE_URL}1_ee_0u7vcNLOfNLegJRHmolfH5ICW-XS",
                         md5="32bd1bd63d3c78cd57e08160ec5ed1e2"),
        ),
        checksums="the MD5 of img_align_celeba.zip (1.4 GB, 202,599 faces) and of identity_CelebA.txt, as "
                  "torchvision's CelebA loader pins them, before anything is unzipped",
        how_to_get="run `facelab data download celeba`; its files sit on Google Drive links with a daily quota "
                   "that often refuse scripted downloads, so if it fails, download by hand from "
                   "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html Img/img_align_celeba.zip "
                   "(MD5 00d2c5bc6d35e252742224ab0c1e8fcb) and Anno/identity_CelebA.txt "
                   "(MD5 32bd1bd63d3c78cd57e08160ec5ed1e2), put both in <data root>/downloads/ and run `facelab data download celeba` again (it checks and "
                   "unzips them), or unzip to <data root>/celeba/img_align_celeba/ and put the text file at "
                   "<data root>/celeba/identity_CelebA.txt",
    ),
    "lfw": DatasetInfo(
        name="lfw",
        title="LFW deep-funneled (250x250, with View 2 pairs)",
        folder="lfw",
        layouts=("lfw/lfw-deepfunneled/<Name>/<Name>_NNNN.jpg (what `facelab data download lfw` makes)",
                 "lfw/lfw-deepfunneled/lfw-deepfunneled/<Name>/... (the Kaggle mirror's zip)",
                 "lfw/<Name>/<Name>_NNNN.jpg (plain layout, e.g. the original lfw.zip)",
                 "lfw/pairs.txt (View 2, 6,000 pairs), lfw/lfw-names.txt (optional)"),
        homepage=f"{LFW_URL}/",
        terms="LFW: news photographs collected from the web for face-recognition research; the LFW authors grant "
              "no licence to the images themselves",
        files=(
            OfficialFile("lfw-deepfunneled.zip", f"{LFW_URL}/lfw-deepfunneled.zip", unpack_to="lfw/lfw-deepfunneled",
                         manifest="lfw-deepfunneled"),
            OfficialFile("pairs.txt", f"{LFW_URL}/pairs.txt", 155335, md5="9f1ba174e4e1c508ff7cdf10ac338a7d"),
            OfficialFile("lfw-names.txt", f"{LFW_URL}/lfw-names.txt", 94727, md5="a6d0a479bd074669f656265a6e693f6d"),
        ),
        checksums="lfw-deepfunneled.zip has no published hash, so each of the 13,233 images it unpacks to is checked "
                  "by name and SHA-256 against facelab/data/manifests/lfw-deepfunneled.txt.gz (made from the course's "
                  "copy, which came from LFW's site) before it is moved into place; pairs.txt and lfw-names.txt: "
                  "size and MD5, as torchvision's LFW loader pins them",
        how_to_get=f"run `facelab data download lfw`, or fetch lfw-deepfunneled.zip and pairs.txt from {LFW_URL}/ "
                   "(LFW's home since http://vis-www.cs.umass.edu/lfw/ stopped answering), put them in "
                   "<data root>/downloads/ and run `facelab data download lfw` again (it checks and unzips them), or "
                   "unzip so the images are at <data root>/lfw/lfw-deepfunneled/<Name>/<Name>_NNNN.jpg and put "
                   "pairs.txt at <data root>/lfw/pairs.txt",
    ),
}
"""Every dataset facelab reads, by name."""

DOWNLOADS = {"lfw": "lfw", "kodak": "natural", "celeba": "celeba", "clic2020": "clic2020"}
"""`facelab data download` names -> the dataset each fills (Kodak is the downloadable part of natural/)."""

COURSE = ("lfw", "kodak", "celeba")
"""What the course's default run reads: LFW (lessons 00, 02, 04-06), Kodak (03) and CelebA's aligned faces (04)."""

COURSE_OPTIONAL = ("celeba",)
"""Course downloads that may fail without stopping the course: CelebA's Drive quota; lessons 03-04 then use the
shipped models."""


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry for `name`, or DatasetError listing the known names."""
    if name not in REGISTRY:
        raise DatasetError(f"unknown dataset {name!r}: choose from {', '.join(REGISTRY)}")
    return REGISTRY[name]


def missing_error(name: str, root: Path, problem: str) -> DatasetError:
    """A DatasetError saying what is wrong under `root`, then exactly what to download, from where, and where to put it."""
    info = dataset_info(name)
    return DatasetError(f"{info.title}: {problem} (data root {root}); {info.how_to_get}")
