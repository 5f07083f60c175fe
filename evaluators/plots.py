"""Pictures of samples, as PNG bytes (the dashboard's sample grids)."""

from __future__ import annotations

import io
import math

import torch


def samples_png(x: torch.Tensor, title: str = "") -> bytes:
    """A grid of images for image-shaped samples ``(B, 1|3, H, W)`` (model space, [−1, 1]); a scatter of
    the first two coordinates for any other shape."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = x.detach().cpu().float()
    if x.dim() == 4 and x.shape[1] in (1, 3):
        b, c, h, w = x.shape
        side = math.ceil(math.sqrt(b))
        canvas = torch.full((c, side * (h + 1) + 1, side * (w + 1) + 1), -1.0)
        for i in range(b):
            r, q = divmod(i, side)
            canvas[:, 1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (w + 1):1 + q * (w + 1) + w] = x[i].clamp(-1, 1)
        fig, ax = plt.subplots(figsize=(3, 3))
        if c == 1:
            ax.imshow(canvas[0].numpy(), cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
        else:
            ax.imshow(((canvas.permute(1, 2, 0) + 1) / 2).numpy(), interpolation="nearest")
        ax.axis("off")
    else:
        flat = x.reshape(x.shape[0], -1)
        fig, ax = plt.subplots(figsize=(3, 3))
        ax.scatter(flat[:, 0].numpy(), flat[:, 1].numpy() if flat.shape[1] > 1 else torch.zeros(len(flat)).numpy(), s=8)
        ax.set_xlabel("x[0]")
        ax.set_ylabel("x[1]" if flat.shape[1] > 1 else "")
    if title:
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
