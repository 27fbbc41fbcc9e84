"""The two-step KD recipe: presets and stages (run it with ``python recipes/two_step.py``)."""
from tinyse_tf.recipe.presets import PRESETS, RecipeConfig, get_preset

__all__ = ["PRESETS", "RecipeConfig", "get_preset"]
