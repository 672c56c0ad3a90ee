"""History of generated images for the discriminators (Shrivastava et al. 2017; official §7).

Behaviour as in the official ``util/image_pool.py``: size 0 is a pass-through; until full,
every image is stored and returned; once full, each image is, with probability 1/2, swapped
for a random stored one (which is returned), otherwise returned as is. Differences, both on
purpose: the pool draws from its own ``torch.Generator`` (the official one uses Python's
global ``random``), and that generator's state is part of :meth:`state_dict`, so a resumed
run continues the exact same stream. State holds tensors and ints only
(``torch.load(weights_only=True)`` safe).
"""

from __future__ import annotations

import torch

__all__ = ["ImagePool"]


class ImagePool:
    """A pool of up to ``size`` detached images with a private, checkpointable RNG."""

    def __init__(self, size: int, seed: int = 0) -> None:
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = int(size)
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """Return ``(batch, swapped)``: the batch to show the discriminator and whether any
        of it came from the history (``False`` means it is ``images`` detached)."""
        if self.size == 0:
            return images.detach(), False
        out, swapped = [], False
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
                continue
            if torch.rand((), generator=self.generator).item() > 0.5:
                idx = int(torch.randint(0, self.size, (), generator=self.generator))
                out.append(self.images[idx].clone())
                self.images[idx] = image.clone()
                swapped = True
            else:
                out.append(image)
        return torch.cat(out, 0), swapped

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict:
        images = torch.cat(self.images, 0).cpu() if self.images else torch.empty(0)
        return {"size": self.size, "images": images, "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict, device: torch.device | str | None = None) -> None:
        if int(state["size"]) != self.size:
            raise ValueError(f"image pool size mismatch: checkpoint {state['size']}, config {self.size}")
        images = state["images"]
        self.images = (
            []
            if images.numel() == 0
            else [im.unsqueeze(0).to(device) if device is not None else im.unsqueeze(0) for im in images]
        )
        self.generator.set_state(state["rng"])
