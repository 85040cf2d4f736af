"""The reference's boxes at every CAM threshold from sweeps over the 256 quantized levels.

The reference (wsolevaluation ``compute_bboxes_from_scoremaps``) runs ``cv2.findContours`` with
``RETR_TREE`` / ``CHAIN_APPROX_SIMPLE`` once per threshold. Foreground sets ``q > T`` are nested,
so the kernels here grow them level by level with union-find and report, for every cut ``T``,
which IoU thresholds some box reaches (definitions 3 and 4 of issue 2):

* ``e``: the lowest cut at which a pixel is background 4-connected to the frame, i.e. the
  minimax level of 4-paths to the outside (a priority flood from the frame).
* multi-contour (V2): one box per 8-connected foreground component,
  ``[minx, miny, min(maxx + 1, W - 1), min(maxy + 1, H - 1)]`` (OpenCV's bounding rectangle of
  the outer contour, with the reference's off-by-one), and one per hole, a 4-connected
  background component not touching the frame, ``[hminx - 1, hminy - 1, min(hmaxx + 2, W - 1),
  min(hmaxy + 2, H - 1)]`` (the hole contour runs through the foreground pixels around it).
  Foreground components are swept from the top level down over every pixel; holes at cut ``T``
  are the 4-components of ``{q <= T < e}``, swept from the bottom up over the pixels with
  ``e > q`` only (a component shares one ``e``, the cut at which it opens to the outside).
* largest contour (v1): the reference keeps ``max(contours, key=cv2.contourArea)``. A contour's
  polygon area never exceeds its parent's, and OpenCV lists a parent before its children, so
  the winner is always the outer contour of a top-level component. The area of that polygon
  (through pixel centres) equals the count of 2x2 windows fully inside the filled component
  plus half the count of windows with three of its pixels; the filled components at cut ``T``
  are the 8-connected components of ``{e > T}``. OpenCV lists top-level contours in reverse
  raster order of their first pixel, so ties go to the component whose first pixel comes last.

IoUs are exact integer tests ``100 * intersection >= delta * union`` on inclusive boxes. With no
foreground the reference's box is ``[0, 0, 0, 0]``. Grids carry a one-pixel border of
background (``q = e = 0``, never added), so neighbour loops need no bounds checks. Kernels are
numba-compiled on first use (``cache=True``); :func:`wsol_lightning.cam.hits.threshold_hits` is
the entry point and imports this module (and numba) only when first called.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

LEVELS = 256


class Workspace(NamedTuple):
    """Per-pixel arrays shared by the kernels of one batch; grids are padded by one pixel."""

    qpad: np.ndarray  # uint8 grid: quantized map, padding 0
    epad: np.ndarray  # uint8 grid: exterior level e, padding 0
    added: np.ndarray  # uint8 grid: pixel is in the current set (or visited, in the flood)
    parent: np.ndarray  # int32 grid: union-find parent
    box: np.ndarray  # int32 grid x 4: x0, y0, x1, y1 of a root's component
    stamp: np.ndarray  # int32 grid: last level a root was touched
    first: np.ndarray  # int32 grid: a root's first pixel in raster order (v1); dying-list link (holes)
    position: np.ndarray  # int32 grid: a root's slot in the active list (v1); flood queue link
    wide: np.ndarray  # int64 grid: a root's counted hit mask (V2) or twice its area (v1)
    xy: np.ndarray  # int32 grid: y << 16 | x of each image pixel
    order: np.ndarray  # int32 [H * W]: pixels grouped by level
    coords: np.ndarray  # int32 [H * W]: y << 16 | x of order's pixels
    touched: np.ndarray  # int32 [H * W]: roots touched in a level (V2); active roots (v1)
    starts: np.ndarray  # int64 [257]: level v is order[starts[v]:starts[v + 1]]


def _workspace(height: int, width: int) -> Workspace:
    padded = (height + 2) * (width + 2)
    xy = np.zeros((height + 2, width + 2), np.int32)
    xy[1:-1, 1:-1] = (np.arange(height, dtype=np.int32)[:, None] << 16) | np.arange(width, dtype=np.int32)[
        None, :
    ]
    return Workspace(
        qpad=np.zeros(padded, np.uint8),
        epad=np.zeros(padded, np.uint8),
        added=np.zeros(padded, np.uint8),
        parent=np.empty(padded, np.int32),
        box=np.empty((padded, 4), np.int32),
        stamp=np.empty(padded, np.int32),
        first=np.empty(padded, np.int32),
        position=np.empty(padded, np.int32),
        wide=np.empty(padded, np.int64),
        xy=xy.ravel(),
        order=np.empty(height * width, np.int32),
        coords=np.empty(height * width, np.int32),
        touched=np.empty(height * width, np.int32),
        starts=np.empty(LEVELS + 1, np.int64),
    )


def _ring_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lookup tables over the 8-bit mask of present neighbours, in ring order N, NE, E, SE, S,
    SW, W, NW (consecutive neighbours are 4-adjacent, so present ones share a component).

    Returns ``runs[mask]`` (ring index starting each run of present neighbours; one for a full
    ring), ``n_runs[mask]`` and ``gain[mask]``: how many of the four 2x2 windows around the pixel
    already hold two or more members (twice the polygon-area gain of adding the pixel).
    """
    runs = np.zeros((256, 4), np.int64)
    n_runs = np.zeros(256, np.int64)
    gain = np.zeros(256, np.int64)
    windows = ((7, 0, 6), (0, 1, 2), (6, 5, 4), (2, 3, 4))
    for mask in range(256):
        bit = [(mask >> k) & 1 for k in range(8)]
        starts = [k for k in range(8) if bit[k] and not bit[(k + 7) % 8]]
        if mask == 255:
            starts = [0]
        runs[mask, : len(starts)] = starts
        n_runs[mask] = len(starts)
        gain[mask] = sum(bit[a] + bit[b] + bit[c] >= 2 for a, b, c in windows)
    return runs, n_runs, gain


RUNS, N_RUNS, GAIN = _ring_tables()


@numba.njit(cache=True, nogil=True)
def quantize_maps(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fused definitions 1-2: ``uint8(255 * (x - min) / max(x - min))`` per map, in float64.

    Bit-identical to :func:`wsol_lightning.metrics.functional.quantize_cam` of
    :func:`~wsol_lightning.metrics.functional.normalize_cam` (``max(x - min)`` is
    ``max(x) - min`` exactly, as rounding is monotone).

    Args:
        maps: float64 ``[N, H, W]``, C-contiguous.

    Returns:
        uint8 maps ``[N, H, W]`` and, per map, 0 (normalized), 1 (NaN or constant: all zeros) or
        2 (non-constant with +-inf: invalid, left zero).
    """
    n_maps = maps.shape[0]
    flat = maps.reshape(n_maps, -1)
    out = np.zeros(flat.shape, np.uint8)
    status = np.zeros(n_maps, np.int64)
    for i in range(n_maps):
        row = flat[i]
        lowest = row[0]
        highest = row[0]
        for value in row:
            if np.isnan(value):
                status[i] = 1
                break
            lowest = min(lowest, value)
            highest = max(highest, value)
        if status[i] != 0:
            continue
        if lowest == highest:
            status[i] = 1
            continue
        if not (np.isfinite(lowest) and np.isfinite(highest)):
            status[i] = 2
            continue
        span = highest - lowest
        for j in range(row.shape[0]):
            out[i, j] = np.uint8((row[j] - lowest) / span * 255)
    return out.reshape(maps.shape), status


@numba.njit(cache=True, nogil=True)
def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(cache=True, nogil=True)
def _hit_mask(x0: int, y0: int, x1: int, y1: int, gt: np.ndarray, deltas: np.ndarray) -> int:
    """Bit ``d`` set iff the box reaches IoU ``deltas[d]`` percent with some GT box."""
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    mask = 0
    for g in range(gt.shape[0]):
        inter_w = min(x1, gt[g, 2]) - max(x0, gt[g, 0]) + 1
        inter_h = min(y1, gt[g, 3]) - max(y0, gt[g, 1]) + 1
        inter = inter_w * inter_h if inter_w > 0 and inter_h > 0 else 0
        union = area + (gt[g, 2] - gt[g, 0] + 1) * (gt[g, 3] - gt[g, 1] + 1) - inter
        for d in range(deltas.shape[0]):
            if 100 * inter >= deltas[d] * union:
                mask |= 1 << d
    return mask


@numba.njit(cache=True, nogil=True)
def _component_hit_mask(box: np.ndarray, width: int, height: int, gt: np.ndarray, deltas: np.ndarray) -> int:
    """:func:`_hit_mask` of a foreground component's reference box.

    The box is ``[x0, y0, min(x1 + 1, W - 1), min(y1 + 1, H - 1)]`` (one pixel too big unless clipped).
    """
    return _hit_mask(box[0], box[1], min(box[2] + 1, width - 1), min(box[3] + 1, height - 1), gt, deltas)


@numba.njit(cache=True, nogil=True)
def _count_mask(counts: np.ndarray, mask: int, sign: int) -> None:
    if mask:
        for d in range(counts.shape[0]):
            if (mask >> d) & 1:
                counts[d] += sign


@numba.njit(cache=True, nogil=True)
def _mask_of_counts(counts: np.ndarray) -> int:
    mask = 0
    for d in range(counts.shape[0]):
        if counts[d] > 0:
            mask |= 1 << d
    return mask


@numba.njit(cache=True, nogil=True)
def _sort_pixels(ws: Workspace, height: int, width: int, basin_only: bool) -> None:
    """Counting sort of the image pixels by ``q`` (only those with ``e > q`` if ``basin_only``).

    Fills ``ws.order`` (padded indices, raster order within a level), ``ws.coords`` and
    ``ws.starts``.
    """
    qpad, epad, starts = ws.qpad, ws.epad, ws.starts
    stride = width + 2
    starts[:] = 0
    for y in range(1, height + 1):
        for p in range(y * stride + 1, y * stride + 1 + width):
            if not basin_only or epad[p] > qpad[p]:
                starts[qpad[p] + 1] += 1
    for v in range(LEVELS):
        starts[v + 1] += starts[v]
    fill = starts[:LEVELS].copy()
    for y in range(1, height + 1):
        for p in range(y * stride + 1, y * stride + 1 + width):
            if not basin_only or epad[p] > qpad[p]:
                k = fill[qpad[p]]
                ws.order[k] = p
                ws.coords[k] = ws.xy[p]
                fill[qpad[p]] = k + 1


@numba.njit(cache=True, nogil=True)
def _exterior_levels(ws: Workspace, height: int, width: int, record: bool) -> None:
    """``ws.epad`` = ``e`` (see module docstring) by a priority flood from the frame (bucket queue).

    Pixels leave the queue in nondecreasing ``e``; with ``record`` that order is written to
    ``ws.order``/``ws.coords``/``ws.starts`` as by :func:`_sort_pixels`. Padding is never queued.
    """
    qpad, epad, visited, following = ws.qpad, ws.epad, ws.added, ws.position
    stride = width + 2
    visited[:] = 1
    for y in range(1, height + 1):
        visited[y * stride + 1 : y * stride + 1 + width] = 0
    head = np.full(LEVELS, -1, np.int64)
    for y in range(1, height + 1):
        step = 1 if y == 1 or y == height else max(width - 1, 1)
        for x in range(1, width + 1, step):
            p = y * stride + x
            visited[p] = 1
            level = qpad[p]
            epad[p] = level
            following[p] = head[level]
            head[level] = p
    n = 0
    for v in range(LEVELS):
        ws.starts[v] = n
        while head[v] >= 0:
            p = head[v]
            head[v] = following[p]
            if record:
                ws.order[n] = p
                ws.coords[n] = ws.xy[p]
                n += 1
            for other in (p - stride, p + stride, p - 1, p + 1):
                if visited[other]:
                    continue
                visited[other] = 1
                level = max(qpad[other], v)
                epad[other] = level
                following[other] = head[level]
                head[level] = other
    ws.starts[LEVELS] = n


@numba.njit(cache=True, nogil=True)
def _ring(stride: int) -> np.ndarray:
    return np.array([-stride, -stride + 1, 1, stride + 1, stride, stride - 1, -1, -stride - 1], np.int64)


@numba.njit(cache=True, nogil=True)
def _ring_mask(added: np.ndarray, p: int, ring: np.ndarray) -> int:
    present = 0
    for k in range(8):
        present |= np.int64(added[p + ring[k]]) << k
    return present


@numba.njit(cache=True, nogil=True)
def _start(ws: Workspace, p: int, xy: int) -> None:
    ws.parent[p] = p
    ws.box[p, 0] = xy & 0xFFFF
    ws.box[p, 1] = xy >> 16
    ws.box[p, 2] = xy & 0xFFFF
    ws.box[p, 3] = xy >> 16


@numba.njit(cache=True, nogil=True)
def _attach(ws: Workspace, p: int, xy: int, root: int) -> None:
    box = ws.box
    ws.parent[p] = root
    box[root, 0] = min(box[root, 0], xy & 0xFFFF)
    box[root, 1] = min(box[root, 1], xy >> 16)
    box[root, 2] = max(box[root, 2], xy & 0xFFFF)
    box[root, 3] = max(box[root, 3], xy >> 16)


@numba.njit(cache=True, nogil=True)
def _union(ws: Workspace, root: int, other: int) -> None:
    """Hang root ``other`` under root ``root``, merging bounding boxes."""
    box = ws.box
    ws.parent[other] = root
    box[root, 0] = min(box[root, 0], box[other, 0])
    box[root, 1] = min(box[root, 1], box[other, 1])
    box[root, 2] = max(box[root, 2], box[other, 2])
    box[root, 3] = max(box[root, 3], box[other, 3])


@numba.njit(cache=True, nogil=True)
def _component_masks(
    ws: Workspace, height: int, width: int, gt: np.ndarray, deltas: np.ndarray, out: np.ndarray
):
    """``out[T]`` = hit mask of the foreground components' boxes of ``q > T`` (8-connectivity).

    ``ws.order`` holds every pixel by ``q``. ``counted[r]`` is the mask root ``r`` contributes
    to ``counts``: a root absorbed by a merge withdraws it at once, a grown root is re-evaluated
    at the end of the level.
    """
    ring = _ring(width + 2)
    parent, added, box, stamp, counted, touched = ws.parent, ws.added, ws.box, ws.stamp, ws.wide, ws.touched
    added[:] = 0
    stamp[:] = -1
    counts = np.zeros(deltas.shape[0], np.int64)
    for v in range(LEVELS - 1, 0, -1):
        n_touched = 0
        for i in range(ws.starts[v], ws.starts[v + 1]):
            p = np.int64(ws.order[i])
            xy = ws.coords[i]
            present = _ring_mask(added, p, ring)
            added[p] = 1
            if present == 0:
                _start(ws, p, xy)
                counted[p] = 0
                root = p
            else:
                root = _find(parent, p + ring[RUNS[present, 0]])
                for k in range(1, N_RUNS[present]):
                    other = _find(parent, p + ring[RUNS[present, k]])
                    if other != root:
                        _union(ws, root, other)
                        _count_mask(counts, counted[other], -1)
                _attach(ws, p, xy, root)
            if stamp[root] != v:
                stamp[root] = v
                touched[n_touched] = root
                n_touched += 1
        for k in range(n_touched):
            r = touched[k]
            if parent[r] != r:
                continue
            _count_mask(counts, counted[r], -1)
            counted[r] = _component_hit_mask(box[r], width, height, gt, deltas)
            _count_mask(counts, counted[r], 1)
        out[v - 1] = _mask_of_counts(counts)


@numba.njit(cache=True, nogil=True)
def _hole_masks(ws: Workspace, height: int, width: int, gt: np.ndarray, deltas: np.ndarray, out: np.ndarray):
    """``out[T]`` = hit mask of the hole boxes at cut ``T``: 4-components of ``{q <= T < e}``.

    ``ws.order`` holds only the pixels with ``e > q``, by ``q``. A component shares one ``e`` and
    stops being a hole at cut ``e`` (it opens to the outside); it is then withdrawn through the
    list of roots dying at that level (links in ``ws.first``; entries of absorbed roots are skipped).
    """
    stride = width + 2
    parent, added, box, stamp, counted, touched, epad = (
        ws.parent,
        ws.added,
        ws.box,
        ws.stamp,
        ws.wide,
        ws.touched,
        ws.epad,
    )
    link = ws.first
    added[:] = 0
    stamp[:] = -1
    link[:] = -2
    dying = np.full(LEVELS, -1, np.int64)
    counts = np.zeros(deltas.shape[0], np.int64)
    for v in range(LEVELS - 1):
        r = dying[v]
        while r >= 0:
            if parent[r] == r:
                _count_mask(counts, counted[r], -1)
                counted[r] = 0
            r = link[r]
        n_touched = 0
        for i in range(ws.starts[v], ws.starts[v + 1]):
            p = np.int64(ws.order[i])
            root = -1
            for other in (p - stride, p + stride, p - 1, p + 1):
                if not added[other] or epad[other] <= v:
                    continue
                other = _find(parent, other)
                if root < 0:
                    root = other
                elif other != root:
                    _union(ws, root, other)
                    _count_mask(counts, counted[other], -1)
            added[p] = 1
            if root < 0:
                _start(ws, p, ws.coords[i])
                counted[p] = 0
                root = p
            else:
                _attach(ws, p, ws.coords[i], root)
            if stamp[root] != v:
                stamp[root] = v
                touched[n_touched] = root
                n_touched += 1
        for k in range(n_touched):
            r = touched[k]
            if parent[r] != r:
                continue
            _count_mask(counts, counted[r], -1)
            counted[r] = _hit_mask(
                box[r, 0] - 1,
                box[r, 1] - 1,
                min(box[r, 2] + 2, width - 1),
                min(box[r, 3] + 2, height - 1),
                gt,
                deltas,
            )
            _count_mask(counts, counted[r], 1)
            if link[r] == -2:
                link[r] = dying[epad[r]]
                dying[epad[r]] = r
        out[v] = _mask_of_counts(counts)
    out[LEVELS - 1] = 0


@numba.njit(cache=True, nogil=True)
def _largest_masks(
    ws: Workspace, height: int, width: int, gt: np.ndarray, deltas: np.ndarray, out: np.ndarray
):
    """``out[T]`` = hit mask of the box of the largest-area outer contour at cut ``T`` (v1).

    ``ws.order`` holds every pixel by ``e``; the filled set ``{e > T}`` grows as ``T`` falls.
    """
    ring = _ring(width + 2)
    parent, added, box, first, position, area2, active = (
        ws.parent,
        ws.added,
        ws.box,
        ws.first,
        ws.position,
        ws.wide,
        ws.touched,
    )
    added[:] = 0
    n_active = 0
    previous = 0
    for v in range(LEVELS - 1, 0, -1):
        if ws.starts[v] == ws.starts[v + 1]:
            out[v - 1] = previous
            continue
        for i in range(ws.starts[v], ws.starts[v + 1]):
            p = np.int64(ws.order[i])
            xy = ws.coords[i]
            raster = (xy >> 16) * width + (xy & 0xFFFF)
            present = _ring_mask(added, p, ring)
            added[p] = 1
            if present == 0:
                _start(ws, p, xy)
                area2[p] = 0
                first[p] = raster
                active[n_active] = p
                position[p] = n_active
                n_active += 1
                continue
            root = _find(parent, p + ring[RUNS[present, 0]])
            for k in range(1, N_RUNS[present]):
                other = _find(parent, p + ring[RUNS[present, k]])
                if other == root:
                    continue
                _union(ws, root, other)
                area2[root] += area2[other]
                first[root] = min(first[root], first[other])
                n_active -= 1
                last = active[n_active]
                active[position[other]] = last
                position[last] = position[other]
            _attach(ws, p, xy, root)
            area2[root] += GAIN[present]
            first[root] = min(first[root], raster)
        best = active[0]
        for k in range(1, n_active):
            r = active[k]
            if area2[r] > area2[best] or (area2[r] == area2[best] and first[r] > first[best]):
                best = r
        previous = _component_hit_mask(box[best], width, height, gt, deltas)
        out[v - 1] = previous
    out[LEVELS - 1] = 0


@numba.njit(cache=True, nogil=True)
def _level_hit_masks(
    ws: Workspace,
    quantized: np.ndarray,
    gt: np.ndarray,
    gt_offsets: np.ndarray,
    deltas: np.ndarray,
    multi_contour: bool,
) -> np.ndarray:
    n_maps, height, width = quantized.shape
    stride = width + 2
    out = np.zeros((n_maps, LEVELS), np.int64)
    components = np.zeros(LEVELS, np.int64)
    holes = np.zeros(LEVELS, np.int64)
    for i in range(n_maps):
        top = 0
        for y in range(height):
            for x in range(width):
                value = quantized[i, y, x]
                ws.qpad[(y + 1) * stride + 1 + x] = value
                top = max(top, np.int64(value))
        boxes = gt[gt_offsets[i] : gt_offsets[i + 1]]
        _exterior_levels(ws, height, width, not multi_contour)
        if multi_contour:
            _sort_pixels(ws, height, width, False)
            _component_masks(ws, height, width, boxes, deltas, components)
            _sort_pixels(ws, height, width, True)
            _hole_masks(ws, height, width, boxes, deltas, holes)
        else:
            _largest_masks(ws, height, width, boxes, deltas, components)
            holes[:] = 0
        empty = _hit_mask(0, 0, 0, 0, boxes, deltas)
        for cut in range(LEVELS):
            out[i, cut] = components[cut] | holes[cut] if cut < top else empty
    return out


def level_hit_masks(
    quantized: np.ndarray, gt: np.ndarray, gt_offsets: np.ndarray, deltas: np.ndarray, multi_contour: bool
) -> np.ndarray:
    """Per map and integer cut ``T`` (0..255), the bit mask of IoU thresholds some box reaches.

    Args:
        quantized: uint8 maps ``[N, H, W]``, ``q = uint8(255 * normalized)``, ``H, W < 32768``.
        gt: int64 GT boxes of all maps ``[M, 4]``, inclusive ``x0, y0, x1, y1``.
        gt_offsets: int64 ``[N + 1]``; map ``i`` owns ``gt[gt_offsets[i]:gt_offsets[i + 1]]``.
        deltas: int64 IoU thresholds in percent ``[D]`` (``D <= 63``).
        multi_contour: every contour's box (V2) or the largest contour's (v1).

    Returns:
        int64 ``[N, 256]``; bit ``d`` of ``[i, T]`` is set iff at cut ``T`` (foreground ``q > T``)
        some box of map ``i`` reaches IoU ``deltas[d]`` with some GT box. Cuts at or above the
        map's maximum use the reference's ``[0, 0, 0, 0]`` box.
    """
    _, height, width = quantized.shape
    if not (0 < height < 32768 and 0 < width < 32768):
        raise ValueError(f"maps must be 1 to 32767 pixels high and wide, got {height}x{width}")
    return _level_hit_masks(
        _workspace(height, width),
        np.ascontiguousarray(quantized, dtype=np.uint8),
        np.ascontiguousarray(gt, dtype=np.int64),
        np.ascontiguousarray(gt_offsets, dtype=np.int64),
        np.ascontiguousarray(deltas, dtype=np.int64),
        bool(multi_contour),
    )
