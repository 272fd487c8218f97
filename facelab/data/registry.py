"""The datasets facelab knows: where they go under the data root, their official files and checksums, and their terms."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facelab.errors import DatasetError


@dataclass(frozen=True)
class OfficialFile:
    """One file as its publisher distributes it, with the checksum it must have."""

    filename: str
    url: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    unpack_to: str = ""
    """Folder (relative to the data root) an archive is unpacked into; "" for a plain file."""


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's name, accepted layouts under the data root, official files, terms and how to get it."""

    name: str
    title: str
    folder: str
    layouts: tuple[str, ...]
    homepage: str
    terms: str
    files: tuple[OfficialFile, ...]
    downloadable: bool
    how_to_get: str


CLIC_URL = "https://data.vision.ee.ethz.ch/cvl/clic"

REGISTRY: dict[str, DatasetInfo] = {
    "clic2020": DatasetInfo(
        name="clic2020",
        title="CLIC 2020 (professional + mobile)",
        folder="clic2020",
        layouts=(
            "clic2020/{professional,mobile}/{train,valid}/*.png (what `facelab.data.download('clic2020')` makes)",
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
                         unpack_to="clic2020/professional"),
            OfficialFile("mobile_train_2020.zip", f"{CLIC_URL}/mobile_train_2020.zip", 4042923971,
                         "4bf9d890e6785426fb41cb4f43df3d8cd6db25fafcc76fc1eb629141166d6529",
                         unpack_to="clic2020/mobile"),
            OfficialFile("professional_valid_2020.zip", f"{CLIC_URL}/professional_valid_2020.zip", 134834429,
                         "00be38092ade2ab5163b65f7f6523d46c7bca147007f559adbb02c0afc236b7d",
                         unpack_to="clic2020/professional"),
            OfficialFile("mobile_valid_2020.zip", f"{CLIC_URL}/mobile_valid_2020.zip", 236556531,
                         "ff0280382eeb32fdceb28c81a7f47ac9ad86d933ebe901680845635d04e47a10",
                         unpack_to="clic2020/mobile"),
        ),
        downloadable=True,
        how_to_get=f"run `facelab.data.download('clic2020')` (6.4 GB, SHA-256 checked), or fetch "
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
        terms="Kodak images: released by Eastman Kodak for unrestricted use; photos: Wikimedia Commons, "
              "each under its own licence (see natural/photos/SOURCES.md)",
        files=(),
        downloadable=False,
        how_to_get="natural/ is part of facelab's course data (point FACELAB_DATA at it); the Kodak set alone is at "
                   "https://r0k.us/graphics/kodak/ -> put kodim01.png..kodim24.png in <data root>/natural/kodak/",
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
            OfficialFile("img_align_celeba.zip", "https://drive.google.com/uc?id=0B7EVK8r0v71pZjFTYXZWM3FlRnM",
                         md5="00d2c5bc6d35e252742224ab0c1e8fcb", unpack_to="celeba"),
            OfficialFile("identity_CelebA.txt", "https://drive.google.com/uc?id=1_ee_0u7vcNLOfNLegJRHmolfH5ICW-XS",
                         md5="32bd1bd63d3c78cd57e08160ec5ed1e2"),
        ),
        downloadable=False,
        how_to_get="CelebA's official files sit on quota-limited Google Drive links that refuse scripted downloads: "
                   "from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html download "
                   "Img/img_align_celeba.zip (MD5 00d2c5bc6d35e252742224ab0c1e8fcb) and Anno/identity_CelebA.txt "
                   "(MD5 32bd1bd63d3c78cd57e08160ec5ed1e2) by hand, unzip to <data root>/celeba/img_align_celeba/ "
                   "and put the text file at <data root>/celeba/identity_CelebA.txt",
    ),
    "lfw": DatasetInfo(
        name="lfw",
        title="LFW deep-funneled (250x250, with View 2 pairs)",
        folder="lfw",
        layouts=("lfw/lfw-deepfunneled/<Name>/<Name>_NNNN.jpg (official tgz unpacked into lfw/)",
                 "lfw/lfw-deepfunneled/lfw-deepfunneled/<Name>/... (the Kaggle mirror's zip)",
                 "lfw/<Name>/<Name>_NNNN.jpg (plain layout, e.g. the original lfw.tgz)",
                 "lfw/pairs.txt (View 2, 6,000 pairs), lfw/lfw-names.txt (optional)"),
        homepage="http://vis-www.cs.umass.edu/lfw/",
        terms="LFW: news photographs collected from the web for face-recognition research; the LFW authors grant "
              "no licence to the images themselves",
        files=(
            OfficialFile("lfw-deepfunneled.tgz", "http://vis-www.cs.umass.edu/lfw/lfw-deepfunneled.tgz",
                         md5="68331da3eb755a505a502b5aacb3c201", unpack_to="lfw"),
            OfficialFile("pairs.txt", "http://vis-www.cs.umass.edu/lfw/pairs.txt",
                         md5="9f1ba174e4e1c508ff7cdf10ac338a7d"),
            OfficialFile("lfw-names.txt", "http://vis-www.cs.umass.edu/lfw/lfw-names.txt",
                         md5="a6d0a479bd074669f656265a6e693f6d"),
        ),
        downloadable=False,
        how_to_get="LFW's own server (http://vis-www.cs.umass.edu/lfw/) no longer answers (pytorch/vision#8888): "
                   "get lfw-deepfunneled.tgz (MD5 68331da3eb755a505a502b5aacb3c201) and pairs.txt "
                   "(MD5 9f1ba174e4e1c508ff7cdf10ac338a7d) from a mirror such as "
                   "https://www.kaggle.com/datasets/jessicali9530/lfw-dataset, unpack so the images are at "
                   "<data root>/lfw/lfw-deepfunneled/<Name>/<Name>_NNNN.jpg and put pairs.txt at <data root>/lfw/pairs.txt",
    ),
}
"""Every dataset facelab reads, by name."""


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry for `name`, or DatasetError listing the known names."""
    if name not in REGISTRY:
        raise DatasetError(f"unknown dataset {name!r}: choose from {', '.join(REGISTRY)}")
    return REGISTRY[name]


def missing_error(name: str, root: Path, problem: str) -> DatasetError:
    """A DatasetError saying what is wrong under `root`, then exactly what to download, from where, and where to put it."""
    info = dataset_info(name)
    return DatasetError(f"{info.title}: {problem} (data root {root}); {info.how_to_get}")
