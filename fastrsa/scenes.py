"""A deterministic generator of small synthetic scenes with ground truth for a miniature Taskonomy.

Each scene: a floor receding to the top of the image, and 2-4 objects (spheres, tilted boxes,
tilted triangles) at random depths, each with its own colour and a striped 2-D texture, lit by one
light, composited by a z-buffer. Ground truth for eleven tasks of the paper's three kinds:

    2D:       autoencoder, denoise, edge2d, keypoint2d, segment2d
    3D:       depth, normal, edge3d, reshade
    semantic: class, segmentsemantic

numpy only; `make_scenes(n, size, seed)` gives the same scenes for the same arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "KINDS",
    "make_scenes",
    "Scenes",
    "SHAPES",
    "TASKS",
]

# task -> (kind, target: "image" regression | "map" regression | "labels" per pixel | "class")
TASKS = {
    "autoencoder": ("2D", "image", 3),
    "denoise": ("2D", "image", 3),
    "edge2d": ("2D", "map", 1),
    "keypoint2d": ("2D", "map", 1),
    "segment2d": ("2D", "labels", 6),
    "depth": ("3D", "map", 1),
    "normal": ("3D", "image", 3),
    "edge3d": ("3D", "map", 1),
    "reshade": ("3D", "map", 1),
    "class": ("semantic", "class", 3),
    "segmentsemantic": ("semantic", "labels", 4),
}
KINDS = {task: kind for task, (kind, _, _) in TASKS.items()}
SHAPES = ("sphere", "box", "triangle")  # object classes; semantic labels are 1 + index (0: floor)
_PALETTE = np.array(
    [
        [0.9, 0.2, 0.2],
        [0.2, 0.8, 0.3],
        [0.2, 0.3, 0.9],
        [0.9, 0.8, 0.2],
        [0.8, 0.3, 0.8],
        [0.5, 0.5, 0.5],
    ]
)
# Directions towards the lights (x right, y down, z into the scene; normals face the camera).
_LIGHT = np.array([-0.4, -0.5, -0.77])  # the scene's light: above, left, in front
_RESHADE_LIGHT = np.array([0.6, -0.3, -0.74])  # reshading: the same scene under another light


@dataclass
class Scenes:
    images: np.ndarray  # (N, 3, S, S) float32 in [-1, 1]
    noisy: np.ndarray  # (N, 3, S, S) float32: the denoising task's input
    targets: dict  # task -> (N, C, S, S) float32, (N, S, S) int64 labels, or (N,) int64 classes


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=0, keepdims=True)


def _scene(rng: np.random.Generator, size: int) -> dict:
    """One scene's buffers: rgb (3,S,S) in [0,1], depth, normal (3,S,S), albedo, labels."""
    ys, xs = np.mgrid[0:size, 0:size] / (size - 1)  # in [0, 1], y down
    depth = 10.0 - 7.0 * ys  # the floor: far at the top, near at the bottom
    normal = np.stack([np.zeros_like(xs), -np.ones_like(xs) * 0.8, -np.ones_like(xs) * 0.6])
    floor_colour = rng.uniform(0.3, 0.7, 3)
    albedo = floor_colour[:, None, None] * np.ones((3, size, size))
    semantic = np.zeros((size, size), dtype=np.int64)
    objects = []
    for _ in range(rng.integers(2, 5)):
        shape = int(rng.integers(0, 3))
        cx, cy = rng.uniform(0.15, 0.85, 2)
        r = rng.uniform(0.1, 0.22)
        z = rng.uniform(2.0, 6.0)
        dx, dy = (xs - cx) / r, (ys - cy) / r
        if shape == 0:  # sphere
            inside = dx**2 + dy**2 < 1
            bulge = np.sqrt(np.clip(1 - dx**2 - dy**2, 0, None))
            d = z - 0.8 * r * 10 * bulge
            n = np.stack([dx, dy, -bulge])
        else:  # a plane facing the camera, tilted: box (square) or triangle
            inside = (np.abs(dx) < 1) & (np.abs(dy) < 1)
            if shape == 2:
                inside &= dy > 2 * np.abs(dx) - 1
            a, b = rng.uniform(-0.6, 0.6, 2)
            d = z + a * dx * r * 10 + b * dy * r * 10
            n = _unit(np.stack([a * np.ones_like(xs), b * np.ones_like(xs), -np.ones_like(xs)]))
        colour = _PALETTE[rng.integers(0, len(_PALETTE))] * rng.uniform(0.7, 1.0)
        stripes = 0.5 + 0.5 * np.sin(
            2 * np.pi * rng.uniform(2, 6) * (dx * np.cos(rng.uniform(0, 3)))
        )
        front = inside & (d < depth)
        depth = np.where(front, d, depth)
        normal = np.where(front, n, normal)
        tex = colour[:, None, None] * (0.75 + 0.25 * stripes)
        albedo = np.where(front, tex, albedo)
        semantic = np.where(front, 1 + shape, semantic)
        objects.append((shape, front))
    normal = _unit(normal)
    shading = np.clip(np.tensordot(_unit(_LIGHT), normal, axes=1), 0, 1)
    rgb = np.clip(albedo * (0.35 + 0.65 * shading), 0, 1)
    visible = [(shape, int((semantic == 1 + shape).sum())) for shape, _ in objects]
    main = max(visible, key=lambda sv: sv[1])[0]
    return {"rgb": rgb, "depth": depth, "normal": normal, "semantic": semantic, "class": main}


def _sobel(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel derivatives of (N, S, S) with edge padding."""
    p = np.pad(gray, ((0, 0), (1, 1), (1, 1)), mode="edge")
    gx = (p[:, :-2, 2:] + 2 * p[:, 1:-1, 2:] + p[:, 2:, 2:]) - (
        p[:, :-2, :-2] + 2 * p[:, 1:-1, :-2] + p[:, 2:, :-2]
    )
    gy = (p[:, 2:, :-2] + 2 * p[:, 2:, 1:-1] + p[:, 2:, 2:]) - (
        p[:, :-2, :-2] + 2 * p[:, :-2, 1:-1] + p[:, :-2, 2:]
    )
    return gx / 8, gy / 8


def _box3(a: np.ndarray) -> np.ndarray:
    p = np.pad(a, ((0, 0), (1, 1), (1, 1)), mode="edge")
    n = a.shape[-1]
    return np.asarray(sum(p[:, i : i + n, j : j + n] for i in range(3) for j in range(3))) / 9


def make_scenes(n: int, size: int = 64, seed: int = 0) -> Scenes:
    """`n` scenes of `size` x `size` pixels with every task's ground truth; deterministic."""
    if n < 1 or size < 16:
        raise ValueError(f"need n >= 1 and size >= 16; got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    scenes = [_scene(rng, size) for _ in range(n)]
    rgb = np.stack([s["rgb"] for s in scenes])  # (N, 3, S, S) in [0, 1]
    depth = np.stack([s["depth"] for s in scenes])
    normal = np.stack([s["normal"] for s in scenes])
    semantic = np.stack([s["semantic"] for s in scenes])
    gray = rgb.mean(axis=1)
    gx, gy = _sobel(gray)
    edge2d = np.hypot(gx, gy)
    sxx, syy, sxy = _box3(gx * gx), _box3(gy * gy), _box3(gx * gy)
    harris = sxx * syy - sxy**2 - 0.05 * (sxx + syy) ** 2
    keypoint2d = np.clip(harris / (np.abs(harris).max(axis=(1, 2), keepdims=True) + 1e-12), 0, 1)
    hue = rgb / (np.linalg.norm(rgb, axis=1, keepdims=True) + 1e-6)
    palette = _PALETTE / np.linalg.norm(_PALETTE, axis=1, keepdims=True)
    # nearest palette hue (cosine, blind to shading): an unsupervised 2-D grouping by colour
    segment2d = np.einsum("nchw,kc->nkhw", hue, palette).argmax(axis=1)
    dx, dy = _sobel(depth)
    edge3d = (np.hypot(dx, dy) > 0.5).astype(np.float32)
    reshade = np.clip(np.tensordot(_unit(_RESHADE_LIGHT), normal, axes=([0], [1])), 0, 1)
    noise = np.random.default_rng(seed + 1).normal(0, 0.15, rgb.shape)
    f32 = np.float32
    targets = {
        "autoencoder": (rgb * 2 - 1).astype(f32),
        "denoise": (rgb * 2 - 1).astype(f32),
        "edge2d": (edge2d / edge2d.max())[:, None].astype(f32),
        "keypoint2d": keypoint2d[:, None].astype(f32),
        "segment2d": segment2d.astype(np.int64),
        "depth": ((depth - 2.0) / 8.0)[:, None].astype(f32),
        "normal": normal.astype(f32),
        "edge3d": edge3d[:, None],
        "reshade": reshade[:, None].astype(f32),
        "class": np.array([s["class"] for s in scenes], dtype=np.int64),
        "segmentsemantic": semantic.astype(np.int64),
    }
    return Scenes(
        images=(rgb * 2 - 1).astype(f32),
        noisy=(np.clip(rgb + noise, 0, 1) * 2 - 1).astype(f32),
        targets=targets,
    )
