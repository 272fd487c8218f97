"""The course's interactive figures: each drawing function returns its figure and the numbers it plots.

A drawing function is pure (inputs -> `Drawing`), so it can be unit-tested; `show` turns it
into `ipywidgets` sliders in a live notebook, or calls it once with the sliders' values when
`interactive=False` (papermill, CI), so a headless run draws the same figure and never blocks.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from facelab.binarizer import paper_eq1_as_printed, stochastic_sign
from facelab.codec import decode_code, encode_code, write_code
from facelab.image_io import to_tensor
from facelab.metrics import psnr
from facelab.model import FaceCodecNet
from facelab.rate import bpp
from facelab.recipes import LADDER_LAMBDAS, ladder_name


@dataclass
class Drawing:
    """What a drawing function returns: the matplotlib figure and the numbers it shows."""

    figure: Figure
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Slider:
    """A numeric control: its starting value and range (ints give an integer slider)."""

    value: float
    min: float
    max: float
    step: float | None = None

    def widget(self, description: str) -> Any:
        """The ipywidgets slider for this control, redrawn only when released (drawing can be slow)."""
        import ipywidgets

        integer = all(isinstance(v, int) for v in (self.value, self.min, self.max, self.step or 1))
        kind = ipywidgets.IntSlider if integer else ipywidgets.FloatSlider
        step = self.step if self.step is not None else (1 if integer else (self.max - self.min) / 100)
        return kind(value=self.value, min=self.min, max=self.max, step=step,
                    description=description, continuous_update=False)


def slider(value: float, min: float, max: float, step: float | None = None) -> Slider:
    """A slider starting at `value` over [min, max]; the value alone is used when not interactive."""
    if not min <= value <= max:
        raise ValueError(f"slider value {value} is outside [{min}, {max}]")
    return Slider(value, min, max, step)


def render(item: Drawing | Figure) -> dict[str, Any] | None:
    """Display a figure once, whatever matplotlib's backend, and close it; return a drawing's numbers."""
    from IPython.display import display

    figure = item.figure if isinstance(item, Drawing) else item
    display(figure)
    plt.close(figure)
    return item.values if isinstance(item, Drawing) else None


def show(fn: Callable[..., Drawing], interactive: bool = True, **params: Any) -> Any:
    """Draw `fn` with sliders for its `Slider` parameters (others stay fixed).

    interactive=True: an `ipywidgets.interactive` panel (returned). interactive=False: one call
    with each slider's value; its figure is displayed and its numbers returned.
    """
    if not interactive:
        values = {k: p.value if isinstance(p, Slider) else p for k, p in params.items()}
        return render(fn(**values))
    import ipywidgets
    from IPython.display import display

    controls = {k: p.widget(k) if isinstance(p, Slider) else ipywidgets.fixed(p) for k, p in params.items()}
    panel = ipywidgets.interactive(lambda **kw: render(fn(**kw)) and None, **controls)
    display(panel)
    return panel


def source(obj: Any) -> Any:
    """The source code of a facelab function or class, syntax-highlighted, so a lesson shows the real thing."""
    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")


def binarizer_histogram(x: float = 0.5, samples: int = 1000, seed: int = 0) -> Drawing:
    """Sample Bin(x) `samples` times with both Eq. 1 rules: the share of -1/+1 and the mean against x."""
    if not -1 <= x <= 1:
        raise ValueError(f"the binarizer's input is tanh(...), in [-1, 1]; got x = {x}")
    if samples < 1:
        raise ValueError("samples must be at least 1")
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.full((int(samples),), float(x), dtype=torch.float64)
    rules = {"unbiased (facelab)": stochastic_sign, "Eq. 1 as printed": paper_eq1_as_printed}
    draws = {name: rule(inputs, generator).numpy() for name, rule in rules.items()}
    means = {name: float(d.mean()) for name, d in draws.items()}
    plus = {name: float((d > 0).mean()) for name, d in draws.items()}

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    offsets = {"unbiased (facelab)": -0.2, "Eq. 1 as printed": 0.2}
    for name in rules:
        shares = [1 - plus[name], plus[name]]
        left.bar(np.array([-1, 1]) + offsets[name], shares, width=0.4, label=name)
    left.set(xticks=[-1, 1], ylim=(0, 1), ylabel="share of samples", title=f"Bin({x:+.2f}), {int(samples)} samples")
    left.legend(loc="upper center", fontsize=8)
    grid = np.linspace(-1, 1, 101)
    right.plot(grid, grid, label="E = x (unbiased)")
    right.plot(grid, -grid, label="E = -x (as printed)")
    stderr = 1 / np.sqrt(samples)
    for name, marker in zip(rules, "os"):
        right.errorbar([x], [means[name]], yerr=[stderr], fmt=marker, color="k", capsize=3)
    right.set(xlabel="x", ylabel="mean of Bin(x)", title="sample mean (points) vs x", xlim=(-1, 1), ylim=(-1.1, 1.1))
    right.legend(fontsize=8)
    figure.tight_layout()
    return Drawing(figure, {
        "x": float(x), "samples": int(samples),
        "mean_unbiased": means["unbiased (facelab)"], "mean_printed": means["Eq. 1 as printed"],
        "p_plus_unbiased": plus["unbiased (facelab)"], "p_plus_printed": plus["Eq. 1 as printed"],
    })


def channel_order(model: FaceCodecNet, image: np.ndarray, batch: int = 32) -> list[int]:
    """Code channels from most to least important for `image`: by the squared error zeroing each one adds."""
    code = torch.from_numpy(encode_code(model, image))
    device = next(model.parameters()).device
    size = image.shape[:2]
    reference = to_tensor(decode_code(model, code.numpy(), size), unit=False)[0].to(device)
    damage = []
    with torch.inference_mode():
        for start in range(0, code.shape[0], batch):
            channels = range(start, min(start + batch, code.shape[0]))
            dropped = code.repeat(len(channels), 1, 1, 1)
            for row, channel in enumerate(channels):
                dropped[row, channel] = 0
            decoded = model.decode(dropped.to(device), size=size).clamp(0, 1).mul(255).round()
            damage += ((decoded - reference) ** 2).flatten(1).mean(1).tolist()
    return [int(c) for c in np.argsort(damage, kind="stable")[::-1]]


def quality_vs_bits(image: np.ndarray, model: FaceCodecNet, kept: int = 128,
                    order: Sequence[int] | None = None) -> Drawing:
    """Keep only `kept` of the code's channels (the rest decoded as 0, 'unknown'): real .xz size and PSNR.

    The file is what facelab would write for a model with `kept` channels: header + kept bits, LZMA.
    `order` ranks the channels (default: `channel_order`), so the most useful bits are kept first.
    """
    code = encode_code(model, image)
    channels = code.shape[0]
    if not 1 <= kept <= channels:
        raise ValueError(f"kept must be between 1 and {channels}, got {kept}")
    order = list(order) if order is not None else channel_order(model, image)
    keep = sorted(order[:kept])
    partial = np.zeros_like(code)
    partial[keep] = code[keep]
    h, w = image.shape[:2]
    data = write_code(code[keep], h, w, model, "xz")
    reconstruction = decode_code(model, partial, (h, w))
    values = {
        "kept": int(kept), "raw_bpp": kept * code.shape[1] * code.shape[2] / (h * w),
        "xz_bytes": len(data), "xz_bpp": bpp(len(data), h, w), "psnr": psnr(image, reconstruction),
    }
    figure, axes = plt.subplots(1, 2, figsize=(8, 4.3))
    axes[0].imshow(image)
    axes[0].set_title(f"original, {h}x{w}")
    axes[1].imshow(reconstruction)
    axes[1].set_title(f"{kept}/{channels} channels: {values['xz_bpp']:.3f} bpp, {values['psnr']:.2f} dB")
    for ax in axes:
        ax.axis("off")
    figure.tight_layout()
    return Drawing(figure, values)


def sweep_model(log10_a: int, b: int) -> str:
    """The sweep model trained with a = 10**log10_a and b (b = 0 is one model, whatever a)."""
    return "face-b0" if b == 0 else f"face-a{10 ** log10_a:g}"


def loss_balance(log10_a: int, b: int, points: Sequence[Any], original: np.ndarray,
                 reconstructions: Mapping[str, np.ndarray]) -> Drawing:
    """Lesson 04's sliders over the retrained sweep: the chosen model's reconstruction and where it sits.

    `points` are `facelab.balance.BalancePoint`s, `reconstructions` maps each model to its reconstruction of
    `original`. Left: the face and the chosen model's reconstruction; right: PSNR against FaceNet cosine and
    against bpp (context coder) for every model, the chosen one ringed.
    """
    name = sweep_model(log10_a, b)
    chosen = next((p for p in points if p.model == name), None)
    if chosen is None:
        raise ValueError(f"no measured sweep model {name!r}: have {', '.join(p.model for p in points)}")
    figure, axes = plt.subplots(1, 4, figsize=(13, 3.4), gridspec_kw={"width_ratios": [1, 1, 2, 2]})
    axes[0].imshow(original)
    axes[0].set_title("original")
    axes[1].imshow(reconstructions[name])
    axes[1].set_title(f"{name}\n{psnr(original, reconstructions[name]):.1f} dB")
    for ax in axes[:2]:
        ax.axis("off")
    for ax, x, label in ((axes[2], "cosine", "FaceNet cosine, original vs reconstruction"),
                         (axes[3], "bpp_context", "bpp (context coder)")):
        for point in points:
            ax.scatter(getattr(point, x), point.psnr, s=40, color="C1" if point.model == name else "C0")
            ax.annotate(point.model.removeprefix("face-"), (getattr(point, x), point.psnr), fontsize=7,
                        xytext=(4, 2), textcoords="offset points")
        ax.scatter(getattr(chosen, x), chosen.psnr, s=180, facecolors="none", edgecolors="C1", linewidths=2)
        ax.set(xlabel=label, ylabel="PSNR (dB)")
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.margins(x=0.2, y=0.15)
    axes[2].set_title(f"a = {chosen.a:g}, b = {chosen.b:g}: held-out CelebA faces ({chosen.faces})", fontsize=9)
    figure.tight_layout()
    return Drawing(figure, {"model": name, "psnr": chosen.psnr, "cosine": chosen.cosine,
                            "bpp_context": chosen.bpp_context})


def image_row(images: Mapping[str, np.ndarray], title: str | None = None, size: float = 3.2) -> Figure:
    """Images side by side with their names as titles."""
    figure, axes = plt.subplots(1, len(images), figsize=(size * len(images), size + 0.4), squeeze=False)
    for ax, (name, image) in zip(axes[0], images.items()):
        ax.imshow(image)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def training_curves(history: Sequence[Mapping[str, float]], keys: Sequence[str]) -> Drawing:
    """Per-epoch curves of the history's `keys` (one panel each); values are each key's first and last."""
    epochs = [record["epoch"] for record in history]
    figure, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    values: dict[str, float] = {}
    for ax, key in zip(axes[0], keys):
        series = [record[key] for record in history]
        ax.plot(epochs, series, marker="o")
        ax.set(xlabel="epoch", title=key)
        values[f"{key}_first"], values[f"{key}_last"] = float(series[0]), float(series[-1])
    figure.tight_layout()
    return Drawing(figure, values)


def compare_runs(histories: Mapping[str, Sequence[Mapping[str, float]]], keys: Sequence[str]) -> Drawing:
    """Per-epoch curves of several training runs, one panel per key; values are each run's last value per key."""
    figure, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.4), squeeze=False)
    values: dict[str, dict[str, float]] = {name: {} for name in histories}
    for ax, key in zip(axes[0], keys):
        for name, history in histories.items():
            ax.plot([record["epoch"] for record in history], [record[key] for record in history], marker=".", label=name)
            values[name][key] = float(history[-1][key])
        ax.set(xlabel="epoch", title=key)
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    return Drawing(figure, values)


def crop_path(original: np.ndarray, reconstruction: np.ndarray, box: Sequence[float]) -> Drawing:
    """The feature loss's input path: one MTCNN box drawn on both images, and the two FaceNet crops it cuts.

    Values: the box, the crops' side and their mean absolute difference (0-255 scale).
    """
    from matplotlib.patches import Rectangle

    from facelab.faces import FACENET_SIZE, crop_faces
    from facelab.image_io import to_tensor, to_uint8

    boxes = torch.tensor([list(box)], dtype=torch.float32)
    crops = [to_uint8(crop_faces(to_tensor(image), boxes)) for image in (original, reconstruction)]
    x1, y1, x2, y2 = (float(v) for v in box)
    figure, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    for ax, image, title in zip(axes[:2], (original, reconstruction), ("original + MTCNN box", "reconstruction, same box")):
        ax.imshow(image)
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="lime", lw=2))
        ax.set_title(title, fontsize=9)
    for ax, crop, title in zip(axes[2:], crops, ("FaceNet input: original", "FaceNet input: reconstruction")):
        ax.imshow(crop)
        ax.set_title(f"{title}\n{FACENET_SIZE}x{FACENET_SIZE}", fontsize=9)
    for ax in axes:
        ax.axis("off")
    figure.tight_layout()
    difference = float(np.abs(crops[0].astype(np.float64) - crops[1].astype(np.float64)).mean())
    return Drawing(figure, {"box": [x1, y1, x2, y2], "crop_side": crops[0].shape[0], "crop_mean_abs_diff": difference})


def codecs_at_rate(image: np.ndarray, bpp: float, codecs: Sequence[str] | None = None) -> Drawing:
    """One image through each classic codec at (at most) `bpp`, side by side: real sizes, PSNR and MS-SSIM.

    Each codec's quality is searched with `facelab.baselines.find_close`; values are per codec.
    """
    from facelab import baselines

    shown, values = codecs_under(image, bpp, codecs or baselines.CODECS)
    figure = image_row({"original": image, **shown}, title=f"every codec at <= {bpp:.3f} bpp", size=2.6)
    return Drawing(figure, values)


def codecs_under(image: np.ndarray, bpp: float, codecs: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Each classic codec's largest file of `image` at or under `bpp` (`baselines.find_close`): the decoded images
    titled with quality, bpp and PSNR, and per codec its bpp, quality, bytes, PSNR and MS-SSIM. A codec whose
    Pillow plugin is missing is left out with a warning naming its package."""
    from facelab import baselines
    from facelab.metrics import ms_ssim

    shown, values = {}, {}
    for name in baselines.installed(codecs):
        encoded = baselines.find_close(image, name, bpp)
        decoded = baselines.decode(encoded.data, name)
        values[name] = {"bpp": encoded.bpp, "quality": encoded.quality, "bytes": len(encoded.data),
                        "psnr": psnr(image, decoded), "ms_ssim": ms_ssim(image, decoded)}
        shown[f"{name} q={encoded.quality:g}\n{encoded.bpp:.3f} bpp, {values[name]['psnr']:.2f} dB"] = decoded
    return shown, values


def paper_figure3(image: np.ndarray, model: FaceCodecNet, jpeg_quality: int = 80) -> Drawing:
    """The paper's Fig. 3 for one face: original, facelab, JPEG at facelab's bpp, JPEG at `jpeg_quality`, metrics.

    Values: bpp, PSNR and MS-SSIM of each coded version, from real files.
    """
    from facelab import baselines
    from facelab.codec import bits_per_pixel, compress, decompress
    from facelab.metrics import ms_ssim

    data = compress(image, model)
    rate = bits_per_pixel(data, *image.shape[:2])
    equal = baselines.find_close(image, "jpeg", rate)
    paper = baselines.at_quality(image, "jpeg", jpeg_quality)
    versions = {
        "facelab": (rate, decompress(data, model)),
        f"JPEG q{equal.quality:g} (equal bpp)": (equal.bpp, baselines.decode(equal.data, "jpeg")),
        f"JPEG q{jpeg_quality} (paper's)": (paper.bpp, baselines.decode(paper.data, "jpeg")),
    }
    values = {name: {"bpp": bpp, "psnr": psnr(image, decoded), "ms_ssim": ms_ssim(image, decoded)}
              for name, (bpp, decoded) in versions.items()}
    figure, axes = plt.subplots(1, 5, figsize=(16, 3.6), gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.3]})
    for ax, (name, picture) in zip(axes, [("(a) original", image)] + [
            (f"({letter}) {name}", decoded) for letter, (name, (_, decoded)) in zip("bcd", versions.items())]):
        ax.imshow(picture)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    lines = ["(e) metrics", ""] + [f"{name}\n  {v['bpp']:.3f} bpp  PSNR {v['psnr']:.2f} dB\n  MS-SSIM {v['ms_ssim']:.4f}"
                                    for name, v in values.items()]
    axes[4].text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=8.5)
    axes[4].axis("off")
    figure.tight_layout()
    return Drawing(figure, values)


def hyperprior_at_rate(rung: int, face_loss: int, image: np.ndarray, coded: Mapping[str, tuple[int, np.ndarray]],
                       codecs: Sequence[str] = ("jpeg", "webp", "avif", "heic", "jxl")) -> Drawing:
    """Lesson 07's sliders: one face through the rate ladder's `rung` (a key of `recipes.LADDER_LAMBDAS`), trained
    with the face loss (`face_loss` = 1) or without (0), beside each classic codec at the same file size or less.

    `coded` maps each hyperprior model's name to (file bytes, reconstruction) of `image`; values are per method:
    bpp from the real file, bytes, PSNR (and each codec's quality and MS-SSIM).
    """
    name = ladder_name(rung, bool(face_loss))
    if name not in coded:
        raise ValueError(f"no coded face for rung {rung} ({name}): have {', '.join(coded)}")
    size, reconstruction = coded[name]
    file_bpp = bpp(size, *image.shape[:2])
    values = {name: {"bpp": file_bpp, "bytes": size, "psnr": psnr(image, reconstruction)}}
    shown, codec_values = codecs_under(image, file_bpp, codecs)
    shown = {"original": image, f"{name}\n{file_bpp:.3f} bpp, {values[name]['psnr']:.2f} dB": reconstruction, **shown}
    values.update(codec_values)
    loss = "with the face loss" if face_loss else "pixels only"
    title = f"rate ladder, rung {rung} (λ = {LADDER_LAMBDAS[rung]:g}), {loss}; each codec at <= its file size"
    figure = image_row(shown, title=title, size=2.4)
    return Drawing(figure, values)
