"""COCO-panoptic class table and the official AdvSegLoss channel layouts.

The 133 COCO-panoptic classes in the contiguous order used by detectron2 and by the
Mask2Former / OneFormer COCO-panoptic checkpoints: 80 "thing" classes (contiguous ids
0..79) followed by 53 "stuff" classes (contiguous ids 80..132). ``COCO_IDS`` holds the
original (non-contiguous) COCO category id of each entry.

Official layouts (official-behaviour.md §5):

* binary map, 3 channels: ``[0 (never written), union of things, union of stuff]``;
* multi-class map, 135 channels: channel 0 never written, thing ``c`` (0..79) at ``1 + c``,
  stuff ``s`` (detectron2's contiguous semantic label 1..53) at ``81 + s``. Label 0 of
  detectron2's semantic head is the merged "things" class and is never emitted as stuff, so
  channel 81 stays empty and our stuff index ``j`` (0..52) lands on channel ``82 + j``.
"""

from __future__ import annotations

THING_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)

STUFF_CLASSES: tuple[str, ...] = (
    "banner", "blanket", "bridge", "cardboard", "counter", "curtain", "door-stuff",
    "floor-wood", "flower", "fruit", "gravel", "house", "light", "mirror-stuff", "net",
    "pillow", "platform", "playingfield", "railroad", "river", "road", "roof", "sand", "sea",
    "shelf", "snow", "stairs", "tent", "towel", "wall-brick", "wall-stone", "wall-tile",
    "wall-wood", "water-other", "window-blind", "window-other", "tree-merged",
    "fence-merged", "ceiling-merged", "sky-other-merged", "cabinet-merged", "table-merged",
    "floor-other-merged", "pavement-merged", "mountain-merged", "grass-merged",
    "dirt-merged", "paper-merged", "food-other-merged", "building-other-merged",
    "rock-merged", "wall-other-merged", "rug-merged",
)

COCO_IDS: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77,
    78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
    92, 93, 95, 100, 107, 109, 112, 118, 119, 122, 125, 128, 130, 133, 138, 141, 144, 145,
    147, 148, 149, 151, 154, 155, 156, 159, 161, 166, 168, 171, 175, 176, 177, 178, 180,
    181, 184, 185, 186, 187, 188, 189, 190, 191, 192, 193, 194, 195, 196, 197, 198, 199, 200,
)

NUM_THINGS = len(THING_CLASSES)  # 80
NUM_STUFF = len(STUFF_CLASSES)  # 53
CLASS_NAMES: tuple[str, ...] = THING_CLASSES + STUFF_CLASSES  # 133
IS_THING: tuple[bool, ...] = (True,) * NUM_THINGS + (False,) * NUM_STUFF

#: Channel count of the official multi-class map (80 things + 54 stuff incl. "things" + 1).
OFFICIAL_MULTI_CHANNELS = 135
#: Channel count of the official binary map ([0, things, stuff]).
OFFICIAL_BINARY_CHANNELS = 3
#: Detectron2's default PANOPTIC_FPN.COMBINE.STUFF_AREA_LIMIT (unchanged by the official repo).
STUFF_AREA_LIMIT = 4096


def official_multi_index() -> tuple[int, ...]:
    """Output channel of each of the 133 contiguous classes in the 135-channel official map."""
    things = tuple(1 + c for c in range(NUM_THINGS))
    stuff = tuple(NUM_THINGS + 2 + s for s in range(NUM_STUFF))
    return things + stuff


def normalize_name(name: str) -> str:
    """Canonical form for matching class names from other sources (case, '_' vs ' ')."""
    return name.strip().lower().replace("_", " ")


def match_coco_panoptic(names: list[str] | tuple[str, ...]) -> bool:
    """True when ``names`` is exactly the 133 COCO-panoptic classes in the contiguous order."""
    if len(names) != len(CLASS_NAMES):
        return False
    return all(normalize_name(a) == normalize_name(b) for a, b in zip(names, CLASS_NAMES))


assert len(CLASS_NAMES) == 133 and len(COCO_IDS) == 133
assert official_multi_index()[-1] == OFFICIAL_MULTI_CHANNELS - 1
