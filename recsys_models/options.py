"""Run-time settings kept apart from hyperparameters: seed, device, threads."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainingOptions(BaseModel):
    """How to train, not what: the same config with another seed or device is the same model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(default=42, ge=0, description="Seed of every random generator the model uses.")
    device: Literal["cpu", "cuda", "auto"] = Field(
        default="auto", description="Torch device; 'auto' takes CUDA when available."
    )

    def torch_device(self) -> str:
        """The concrete torch device name."""
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device
