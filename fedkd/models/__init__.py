"""Networks: classifiers here; generator and diffusion modules live beside them and are imported on use."""

from fedkd.models.classifiers import CLASSIFIERS, build_classifier

__all__ = ["CLASSIFIERS", "build_classifier"]
