"""ImageLocality: prefer nodes that already have the pod's images, weighted by image size
and by how widely the image is spread (so one node holding a popular image does not attract
everything); thresholds 23 MiB .. 1000 MiB per container, as upstream."""

from __future__ import annotations

from scheduler.framework import CycleState, Plugin
from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo

NAME = "ImageLocality"
MB = 1024 * 1024
MIN_THRESHOLD = 23 * MB
MAX_CONTAINER_THRESHOLD = 1000 * MB


def normalized_image_name(name: str) -> str:
    """Add ":latest" when the reference has no tag (upstream normalizedImageName)."""
    if name.rfind(":") <= name.rfind("/"):
        name += ":latest"
    return name


def calculate_priority(sum_scores: int, num_containers: int) -> int:
    max_threshold = MAX_CONTAINER_THRESHOLD * num_containers
    if sum_scores < MIN_THRESHOLD:
        sum_scores = MIN_THRESHOLD
    elif sum_scores > max_threshold:
        sum_scores = max_threshold
    return 100 * (sum_scores - MIN_THRESHOLD) // (max_threshold - MIN_THRESHOLD)


class ImageLocality(Plugin):
    name = NAME

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int] | int:
        cache = self.handle.cache
        images = [normalized_image_name(i) for i in pod.images]
        spread = {img: cache.image_spread(img) for img in images}
        if not any(spread.values()) or not images:
            return 0  # the pod's images are nowhere: every node scores 0
        total = cache.num_nodes
        out = []
        for ni in nodes:
            s = 0
            have = ni.images
            for img in images:
                size = have.get(img)
                if size is not None:
                    s += int(size * (spread[img] / total))
            out.append(calculate_priority(s, len(images)))
        return out
