"""lorascope: LoRA instruction tuning with MLX, and a rigorous account of what it changed."""

__version__ = "0.1.0"
