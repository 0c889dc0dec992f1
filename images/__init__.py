"""The cluster's own container images, built locally (no registry) and imported into containerd."""

from .build import BUSYBOX_IMAGE, BUSYBOX_VERSIONED, PAUSE_IMAGE, BuiltImage, build_images
from .load import load_image, load_images

__all__ = ["BUSYBOX_IMAGE", "BUSYBOX_VERSIONED", "PAUSE_IMAGE", "BuiltImage", "build_images", "load_image", "load_images"]
