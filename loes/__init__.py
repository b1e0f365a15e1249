"""loes: predict the Loes score of cerebral adrenoleukodystrophy from 3D brain MRI."""

__version__ = "0.1.0"

__all__ = ["__version__"]
